//! Image classification data sets: IDX (MNIST, Fashion-MNIST) and CIFAR-10 binary batches.
//!
//! Every loader returns a [`Dataset`] whose images are `[N, C, H, W]` f32 in `[0, 1]`
//! and whose labels are `[N]` i64, so the rest of gradviz never cares where data came from.

use anyhow::{bail, ensure, Context, Result};
use flate2::read::GzDecoder;
use std::io::Read;
use std::path::{Path, PathBuf};
use tch::{Kind, Tensor};

/// Class names of MNIST.
pub const MNIST_CLASSES: [&str; 10] = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"];
/// Class names of Fashion-MNIST, in label order.
pub const FASHION_MNIST_CLASSES: [&str; 10] = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
];
/// Class names of CIFAR-10, in label order.
pub const CIFAR10_CLASSES: [&str; 10] = [
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
];

/// Where the Debian package `dataset-fashion-mnist` puts its files.
pub const DEBIAN_FASHION_MNIST_DIR: &str = "/usr/share/datasets/fashion-mnist";

/// A labelled batch of images.
#[derive(Debug)]
pub struct Dataset {
    /// `[N, C, H, W]` f32 in `[0, 1]`.
    pub images: Tensor,
    /// `[N]` i64 class indices.
    pub labels: Tensor,
    pub class_names: Vec<String>,
}

/// The train and test splits of one data set.
#[derive(Debug)]
pub struct Splits {
    pub name: DatasetName,
    pub train: Dataset,
    pub test: Dataset,
}

/// The data sets gradviz knows how to find and read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DatasetName {
    Mnist,
    FashionMnist,
    Cifar10,
}

impl DatasetName {
    pub fn as_str(self) -> &'static str {
        match self {
            DatasetName::Mnist => "mnist",
            DatasetName::FashionMnist => "fashion-mnist",
            DatasetName::Cifar10 => "cifar10",
        }
    }

    pub fn class_names(self) -> Vec<String> {
        let names: &[&str] = match self {
            DatasetName::Mnist => &MNIST_CLASSES,
            DatasetName::FashionMnist => &FASHION_MNIST_CLASSES,
            DatasetName::Cifar10 => &CIFAR10_CLASSES,
        };
        names.iter().map(|s| s.to_string()).collect()
    }

    /// `[C, H, W]` of one image.
    pub fn input_shape(self) -> [i64; 3] {
        match self {
            DatasetName::Mnist | DatasetName::FashionMnist => [1, 28, 28],
            DatasetName::Cifar10 => [3, 32, 32],
        }
    }
}

impl std::str::FromStr for DatasetName {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().replace('_', "-").as_str() {
            "mnist" => Ok(DatasetName::Mnist),
            "fashion-mnist" | "fashionmnist" => Ok(DatasetName::FashionMnist),
            "cifar10" | "cifar-10" => Ok(DatasetName::Cifar10),
            other => bail!("unknown dataset '{other}': expected mnist, fashion-mnist or cifar10"),
        }
    }
}

impl std::fmt::Display for DatasetName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Dataset {
    pub fn len(&self) -> usize {
        self.labels.size()[0] as usize
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The images and labels at `indices`, e.g. `test.select(&[0, 1, 2])`.
    pub fn select(&self, indices: &[i64]) -> Result<Dataset> {
        let n = self.len() as i64;
        if let Some(bad) = indices.iter().find(|&&i| i < 0 || i >= n) {
            bail!("index {bad} is out of range for a data set of {n} images");
        }
        let idx = Tensor::from_slice(indices);
        Ok(Dataset {
            images: self.images.index_select(0, &idx),
            labels: self.labels.index_select(0, &idx),
            class_names: self.class_names.clone(),
        })
    }

    /// The first `n` images (or all of them, if there are fewer).
    pub fn head(&self, n: usize) -> Dataset {
        let n = n.min(self.len()) as i64;
        Dataset {
            images: self.images.narrow(0, 0, n),
            labels: self.labels.narrow(0, 0, n),
            class_names: self.class_names.clone(),
        }
    }

    /// Indices of the images whose label is `class`.
    pub fn indices_of_class(&self, class: i64) -> Vec<i64> {
        let labels = Vec::<i64>::try_from(&self.labels).unwrap_or_default();
        (0..labels.len() as i64)
            .filter(|&i| labels[i as usize] == class)
            .collect()
    }

    /// The mean image of each class, `[K, C, H, W]`.
    pub fn class_means(&self) -> Result<Tensor> {
        let k = self.class_names.len() as i64;
        let mut means = Vec::with_capacity(k as usize);
        for c in 0..k {
            let idx = self.indices_of_class(c);
            ensure!(!idx.is_empty(), "class {c} has no images in this data set");
            let sel = self.images.index_select(0, &Tensor::from_slice(&idx));
            means.push(sel.mean_dim(0, false, Kind::Float));
        }
        Ok(Tensor::stack(&means, 0))
    }
}

/// Deflate cannot compress better than about 1032:1, so a gzip stream of `n` bytes holds at
/// most this many bytes per input byte: a bound on what an IDX header may claim.
const MAX_GZIP_RATIO: u64 = 1032;

/// The dimensions and payload of an IDX file of unsigned bytes (raw, or gzip-compressed),
/// held in memory. The sizes in the header are checked against the bytes that are there
/// before anything is allocated for them.
fn decode_idx(bytes: &[u8], want_dims: usize, what: &str) -> Result<(Vec<usize>, Vec<u8>)> {
    if !bytes.starts_with(&[0x1f, 0x8b]) {
        let (shape, header) = parse_idx_header(bytes, want_dims, what)?;
        let expected = idx_payload_len(&shape, what)?;
        let got = bytes.len() - header;
        ensure!(
            got as u64 == expected,
            "{what}: truncated or oversized IDX payload: header says {shape:?} = {expected} bytes, file has {got}"
        );
        return Ok((shape, bytes[header..].to_vec()));
    }
    let corrupt = || format!("{what}: corrupt or truncated gzip stream");
    let mut gz = GzDecoder::new(bytes);
    let mut head = vec![0u8; 4];
    gz.read_exact(&mut head).with_context(corrupt)?;
    let dims = head[3] as usize;
    if head[..3] == [0, 0, 0x08] && dims == want_dims {
        head.resize(4 + 4 * dims, 0);
        gz.read_exact(&mut head[4..]).with_context(corrupt)?;
    }
    let (shape, _) = parse_idx_header(&head, want_dims, what)?;
    let expected = idx_payload_len(&shape, what)?;
    let most = MAX_GZIP_RATIO * bytes.len() as u64;
    ensure!(
        expected <= most,
        "{what}: IDX header claims {shape:?} = {expected} bytes, more than a {}-byte gzip stream can hold (at most {most})",
        bytes.len()
    );
    let mut payload = Vec::with_capacity(expected as usize);
    gz.take(expected + 1)
        .read_to_end(&mut payload)
        .with_context(corrupt)?;
    ensure!(
        payload.len() as u64 == expected,
        "{what}: truncated or oversized IDX payload: header says {shape:?} = {expected} bytes, stream has {}{}",
        payload.len(),
        if payload.len() as u64 > expected { " or more" } else { "" }
    );
    Ok((shape, payload))
}

/// Checks the magic number of an IDX file of unsigned bytes and reads its dimensions;
/// returns them and the header's length.
fn parse_idx_header(bytes: &[u8], want_dims: usize, what: &str) -> Result<(Vec<usize>, usize)> {
    let p = what;
    ensure!(
        bytes.len() >= 4,
        "{p}: file is too short to be IDX ({} bytes)",
        bytes.len()
    );
    if bytes[0] != 0 || bytes[1] != 0 {
        bail!(
            "{p}: bad IDX magic number {:02x?} (must start with two zero bytes)",
            &bytes[..4]
        );
    }
    ensure!(
        bytes[2] == 0x08,
        "{p}: IDX data type 0x{:02x} is not unsigned byte (0x08)",
        bytes[2]
    );
    let dims = bytes[3] as usize;
    ensure!(
        dims == want_dims,
        "{p}: IDX file has {dims} dimensions, expected {want_dims} (bad magic number 0x0000080{dims:x}?)"
    );
    let header = 4 + 4 * dims;
    ensure!(bytes.len() >= header, "{p}: truncated IDX header");
    let shape: Vec<usize> = bytes[4..header]
        .chunks_exact(4)
        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize)
        .collect();
    Ok((shape, header))
}

/// The payload size an IDX header claims, without overflow.
fn idx_payload_len(shape: &[usize], what: &str) -> Result<u64> {
    shape
        .iter()
        .try_fold(1u64, |acc, &d| acc.checked_mul(d as u64))
        .with_context(|| format!("{what}: IDX header claims an impossible size {shape:?}"))
}

/// Parses IDX image bytes (`.gz` or raw) into `[N, 1, H, W]` f32 in `[0, 1]`; `what` names
/// the source in errors.
pub fn idx_images_from_bytes(bytes: &[u8], what: &str) -> Result<Tensor> {
    let (shape, data) = decode_idx(bytes, 3, what)?;
    ensure!(
        shape[1] > 0 && shape[2] > 0,
        "{what}: IDX images of size {}x{} are empty",
        shape[1],
        shape[2]
    );
    let t = Tensor::from_slice(&data)
        .view([shape[0] as i64, 1, shape[1] as i64, shape[2] as i64])
        .to_kind(Kind::Float)
        / 255.0;
    Ok(t)
}

/// Parses IDX label bytes (`.gz` or raw) into `[N]` i64.
pub fn idx_labels_from_bytes(bytes: &[u8], what: &str) -> Result<Tensor> {
    let (_, data) = decode_idx(bytes, 1, what)?;
    Ok(Tensor::from_slice(&data).to_kind(Kind::Int64))
}

fn read_file(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))
}

/// Reads an IDX image file (`.gz` or raw) into `[N, 1, H, W]` f32 in `[0, 1]`.
pub fn read_idx_images(path: impl AsRef<Path>) -> Result<Tensor> {
    let path = path.as_ref();
    idx_images_from_bytes(&read_file(path)?, &path.display().to_string())
}

/// Reads an IDX label file (`.gz` or raw) into `[N]` i64.
pub fn read_idx_labels(path: impl AsRef<Path>) -> Result<Tensor> {
    let path = path.as_ref();
    idx_labels_from_bytes(&read_file(path)?, &path.display().to_string())
}

/// Reads an image/label pair of IDX files and checks that they agree.
pub fn read_idx_pair(
    images: impl AsRef<Path>,
    labels: impl AsRef<Path>,
    class_names: Vec<String>,
) -> Result<Dataset> {
    let (ip, lp) = (images.as_ref(), labels.as_ref());
    let images = read_idx_images(ip)?;
    let labels = read_idx_labels(lp)?;
    let (ni, nl) = (images.size()[0], labels.size()[0]);
    ensure!(
        ni == nl,
        "label/image count mismatch: {} has {ni} images but {} has {nl} labels",
        ip.display(),
        lp.display()
    );
    check_labels(&labels, class_names.len(), lp)?;
    Ok(Dataset {
        images,
        labels,
        class_names,
    })
}

fn check_labels(labels: &Tensor, k: usize, path: &Path) -> Result<()> {
    if labels.numel() > 0 {
        let max = labels.max().int64_value(&[]);
        ensure!(
            (max as usize) < k,
            "{}: label {max} is out of range for {k} classes",
            path.display()
        );
    }
    Ok(())
}

/// One CIFAR-10 record: a label byte and 3×32×32 pixel bytes.
pub const CIFAR10_RECORD_BYTES: usize = 1 + 3 * 32 * 32;

/// Reads one CIFAR-10 binary batch (`data_batch_N.bin`, `test_batch.bin`).
pub fn read_cifar10_batch(path: impl AsRef<Path>) -> Result<Dataset> {
    let path = path.as_ref();
    cifar10_batch_from_bytes(&read_file(path)?, &path.display().to_string())
}

/// Parses the bytes of one CIFAR-10 binary batch; `what` names the source in errors.
pub fn cifar10_batch_from_bytes(bytes: &[u8], what: &str) -> Result<Dataset> {
    ensure!(
        !bytes.is_empty() && bytes.len() % CIFAR10_RECORD_BYTES == 0,
        "{what}: size {} is not a multiple of the CIFAR-10 record size {CIFAR10_RECORD_BYTES} (truncated or not a CIFAR-10 binary batch)",
        bytes.len()
    );
    let n = bytes.len() / CIFAR10_RECORD_BYTES;
    let mut labels = Vec::with_capacity(n);
    let mut pixels = Vec::with_capacity(n * (CIFAR10_RECORD_BYTES - 1));
    for rec in bytes.chunks_exact(CIFAR10_RECORD_BYTES) {
        labels.push(rec[0] as i64);
        pixels.extend_from_slice(&rec[1..]);
    }
    let labels = Tensor::from_slice(&labels);
    check_labels(&labels, 10, Path::new(what))?;
    let images = Tensor::from_slice(&pixels)
        .view([n as i64, 3, 32, 32])
        .to_kind(Kind::Float)
        / 255.0;
    Ok(Dataset {
        images,
        labels,
        class_names: DatasetName::Cifar10.class_names(),
    })
}

fn concat(parts: Vec<Dataset>) -> Dataset {
    let class_names = parts[0].class_names.clone();
    let images: Vec<Tensor> = parts.iter().map(|d| d.images.shallow_clone()).collect();
    let labels: Vec<Tensor> = parts.iter().map(|d| d.labels.shallow_clone()).collect();
    Dataset {
        images: Tensor::cat(&images, 0),
        labels: Tensor::cat(&labels, 0),
        class_names,
    }
}

fn find_file(dir: &Path, stems: &[&str]) -> Result<PathBuf> {
    for stem in stems {
        for candidate in [dir.join(format!("{stem}.gz")), dir.join(stem)] {
            if candidate.is_file() {
                return Ok(candidate);
            }
        }
    }
    bail!("{}: none of {stems:?} (.gz or raw) found", dir.display())
}

fn load_idx_dir(name: DatasetName, dir: &Path) -> Result<Splits> {
    let read = |prefix: &str| -> Result<Dataset> {
        let images = find_file(
            dir,
            &[
                &format!("{prefix}-images-idx3-ubyte"),
                &format!("{prefix}-images.idx3-ubyte"),
            ],
        )?;
        let labels = find_file(
            dir,
            &[
                &format!("{prefix}-labels-idx1-ubyte"),
                &format!("{prefix}-labels.idx1-ubyte"),
            ],
        )?;
        read_idx_pair(images, labels, name.class_names())
    };
    Ok(Splits {
        name,
        train: read("train")?,
        test: read("t10k")?,
    })
}

fn load_cifar10_dir(dir: &Path) -> Result<Splits> {
    let dir = if dir.join("cifar-10-batches-bin").is_dir() {
        dir.join("cifar-10-batches-bin")
    } else {
        dir.to_path_buf()
    };
    let mut train = Vec::new();
    for i in 1..=5 {
        let p = dir.join(format!("data_batch_{i}.bin"));
        if p.is_file() {
            train.push(read_cifar10_batch(&p)?);
        }
    }
    ensure!(!train.is_empty(), "{}: no data_batch_*.bin found", dir.display());
    let test = read_cifar10_batch(dir.join("test_batch.bin"))?;
    Ok(Splits {
        name: DatasetName::Cifar10,
        train: concat(train),
        test,
    })
}

/// The directory of the bundled MNIST subset (10,000 real digits, see `data/mnist/README.md`).
pub fn bundled_mnist_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("data").join("mnist")
}

/// Loads a data set's train and test splits.
///
/// `dir = None` means the default place: the bundled MNIST subset, or the Debian
/// `dataset-fashion-mnist` package for Fashion-MNIST. CIFAR-10 always needs a directory
/// holding `data_batch_*.bin` and `test_batch.bin`.
pub fn load(name: DatasetName, dir: Option<&Path>) -> Result<Splits> {
    match (name, dir) {
        (DatasetName::Cifar10, Some(d)) => load_cifar10_dir(d),
        (DatasetName::Cifar10, None) => {
            bail!("CIFAR-10 needs a directory: pass the folder holding data_batch_*.bin and test_batch.bin")
        }
        (_, Some(d)) => load_idx_dir(name, d),
        (DatasetName::Mnist, None) => load_idx_dir(name, &bundled_mnist_dir()),
        (DatasetName::FashionMnist, None) => {
            let d = Path::new(DEBIAN_FASHION_MNIST_DIR);
            ensure!(
                d.is_dir(),
                "Fashion-MNIST not found at {DEBIAN_FASHION_MNIST_DIR}: install the Debian package dataset-fashion-mnist or pass a directory"
            );
            load_idx_dir(name, d)
        }
    }
}

/// The bundled MNIST subset: 8,000 train and 2,000 test digits.
pub fn bundled_mnist() -> Result<Splits> {
    load(DatasetName::Mnist, None)
}
