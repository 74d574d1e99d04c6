//! Image classification data as users have it on disk, read into one [`Dataset`] type.
//!
//! [`open`] detects the format of a path (`--data PATH` on the command line):
//!
//! | on disk | what is read |
//! |---|---|
//! | IDX files `train-images-idx3-ubyte[.gz]`, … (MNIST, Fashion-MNIST, Keras' `fashion-mnist/` cache) | [`idx`] |
//! | Keras' `mnist.npz` (`x_train`, `y_train`, `x_test`, `y_test`) | [`keras`], [`npy`] |
//! | CIFAR-10's Python version `cifar-10-batches-py/` (pickled dicts) | [`cifar`], [`pickle`] (a safe reader that runs no code) |
//! | CIFAR-10's binary version `cifar-10-batches-bin/` | [`cifar`] |
//! | a folder with one sub-folder of PNG/JPEG images per class (torchvision's `ImageFolder`), optionally split into `train/` and `test/` | [`folder`] |
//!
//! Every loader returns images `[N, C, H, W]` f32 in `[0, 1]` and labels `[N]` i64, so the
//! rest of gradviz never cares where data came from. Every parser is a pure function of
//! bytes that returns `Result`; a bad file is an error that names it.
//!
//! [`shapes`] generates a small colour data set (for tests and demonstrations: no real
//! colour data ships with gradviz).

pub mod cifar;
pub mod folder;
pub mod idx;
pub mod keras;
pub mod npy;
pub mod pickle;
pub mod shapes;

pub use cifar::{read_cifar10_batch, read_cifar10_pickle, CIFAR10_RECORD_BYTES};
pub use idx::{read_idx_images, read_idx_labels, read_idx_pair};

use anyhow::{bail, ensure, Context, Result};
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
    /// The known data set these are (`None` for user data such as an image folder).
    pub known: Option<DatasetName>,
    /// A short name for messages and model files: `mnist`, or the folder's name.
    pub name: String,
    /// The format the files were read from.
    pub format: DataFormat,
    pub train: Dataset,
    pub test: Dataset,
    /// False when the source has one split only: `test` then holds the same images as `train`.
    pub held_out: bool,
    /// What was inferred or converted while reading (shown by the command line).
    pub notes: Vec<String>,
}

impl Splits {
    pub fn class_names(&self) -> &[String] {
        &self.train.class_names
    }

    /// `[C, H, W]` of one image.
    pub fn input_shape(&self) -> [i64; 3] {
        self.train.input_shape()
    }

    /// Converts both splits to `channels` (1 or 3), noting it.
    pub fn to_channels(mut self, channels: i64) -> Result<Splits> {
        let have = self.input_shape()[0];
        if have != channels {
            self.train = self.train.to_channels(channels)?;
            self.test = self.test.to_channels(channels)?;
            self.notes.push(format!(
                "converted {have}-channel images to {channels} channel(s) ({})",
                if channels == 1 {
                    "luma 0.299 R + 0.587 G + 0.114 B"
                } else {
                    "gray repeated in R, G and B"
                }
            ));
        }
        Ok(self)
    }
}

impl Splits {
    /// The splits made fit for a model taking `[C, H, W]` images of the classes
    /// `class_names`: channels are converted (1 ↔ 3); when the data names the same classes
    /// in another order (an image folder's sorted names, say), labels are renumbered to the
    /// model's order. Both are noted. Another image size, or more classes than the model
    /// has, is an error.
    pub fn fit(self, shape: [i64; 3], class_names: &[String]) -> Result<Splits> {
        let [c, h, w] = self.input_shape();
        ensure!(
            [h, w] == shape[1..],
            "{} images are {c}x{h}x{w}, but the model takes {}x{}x{}",
            self.name,
            shape[0],
            shape[1],
            shape[2]
        );
        let (k, m) = (self.class_names().len(), class_names.len());
        ensure!(
            k <= m,
            "{} has {k} classes, but the model has only {m} outputs",
            self.name
        );
        let mut s = self.to_channels(shape[0])?;
        if s.class_names() != class_names && same_classes(s.class_names(), class_names) {
            s.train = s.train.relabelled(class_names)?;
            s.test = s.test.relabelled(class_names)?;
            s.notes.push(format!(
                "labels renumbered to the model's class order {class_names:?}"
            ));
        }
        Ok(s)
    }
}

fn same_classes(a: &[String], b: &[String]) -> bool {
    let (mut a, mut b) = (a.to_vec(), b.to_vec());
    a.sort();
    b.sort();
    a == b
}

/// The on-disk formats [`open`] reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataFormat {
    /// IDX files (MNIST, Fashion-MNIST; also Keras' `fashion-mnist/` cache).
    Idx,
    /// A Keras `.npz` such as `mnist.npz`.
    KerasNpz,
    /// CIFAR-10's binary batches.
    Cifar10Binary,
    /// CIFAR-10's Python version: pickled batches.
    Cifar10Pickle,
    /// One sub-folder of images per class.
    ImageFolder,
    /// Made in memory ([`shapes`]), not read.
    Generated,
}

impl std::fmt::Display for DataFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            DataFormat::Idx => "IDX files",
            DataFormat::KerasNpz => "Keras .npz",
            DataFormat::Cifar10Binary => "CIFAR-10 binary batches",
            DataFormat::Cifar10Pickle => "CIFAR-10 pickled batches",
            DataFormat::ImageFolder => "image folder",
            DataFormat::Generated => "generated",
        })
    }
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
    /// `[C, H, W]` of one image.
    pub fn input_shape(&self) -> [i64; 3] {
        let s = self.images.size();
        [s[1], s[2], s[3]]
    }

    /// The same images with `channels` channels: RGB → gray by luma (ITU-R 601, as PIL's
    /// `convert("L")`), gray → RGB by repetition.
    pub fn to_channels(&self, channels: i64) -> Result<Dataset> {
        let c = self.input_shape()[0];
        let images = match (c, channels) {
            (a, b) if a == b => self.images.shallow_clone(),
            (3, 1) => {
                let w = Tensor::from_slice(&[0.299f32, 0.587, 0.114])
                    .view([1, 3, 1, 1])
                    .to_device(self.images.device());
                (&self.images * w).sum_dim_intlist(1, true, Kind::Float)
            }
            (1, 3) => self.images.repeat([1, 3, 1, 1]),
            (a, b) => bail!("cannot convert {a}-channel images to {b} channels"),
        };
        Ok(Dataset {
            images,
            labels: self.labels.shallow_clone(),
            class_names: self.class_names.clone(),
        })
    }

    /// The same images with labels renumbered to the class order `names`, which must hold
    /// this data set's class names (in any order).
    pub fn relabelled(&self, names: &[String]) -> Result<Dataset> {
        let map: Vec<i64> = self
            .class_names
            .iter()
            .map(|c| {
                names
                    .iter()
                    .position(|n| n == c)
                    .map(|i| i as i64)
                    .with_context(|| format!("class '{c}' is not one of {names:?}"))
            })
            .collect::<Result<_>>()?;
        Ok(Dataset {
            labels: Tensor::from_slice(&map).index_select(0, &self.labels),
            images: self.images.shallow_clone(),
            class_names: names.to_vec(),
        })
    }

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

pub(crate) fn check_labels(labels: &Tensor, k: usize, path: &Path) -> Result<()> {
    if labels.numel() > 0 {
        let (lo, hi) = (labels.min().int64_value(&[]), labels.max().int64_value(&[]));
        ensure!(
            lo >= 0 && (hi as usize) < k,
            "{}: label {} is out of range for {k} classes",
            path.display(),
            if lo < 0 { lo } else { hi }
        );
    }
    Ok(())
}

pub(crate) fn concat(parts: Vec<Dataset>) -> Dataset {
    let class_names = parts[0].class_names.clone();
    let images: Vec<Tensor> = parts.iter().map(|d| d.images.shallow_clone()).collect();
    let labels: Vec<Tensor> = parts.iter().map(|d| d.labels.shallow_clone()).collect();
    Dataset {
        images: Tensor::cat(&images, 0),
        labels: Tensor::cat(&labels, 0),
        class_names,
    }
}

/// The directory of the bundled MNIST subset (10,000 real digits, see `data/mnist/README.md`).
pub fn bundled_mnist_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("data").join("mnist")
}

/// Loads a known data set's train and test splits.
///
/// `dir = None` means the default place: the bundled MNIST subset, or the Debian
/// `dataset-fashion-mnist` package for Fashion-MNIST. CIFAR-10 always needs a directory.
/// A directory may hold any format [`open`] reads.
pub fn load(name: DatasetName, dir: Option<&Path>) -> Result<Splits> {
    match (name, dir) {
        (_, Some(d)) => open(d, Some(name)),
        (DatasetName::Cifar10, None) => {
            bail!("CIFAR-10 needs a directory: pass the folder holding cifar-10-batches-py (data_batch_1…5, test_batch) or the binary data_batch_*.bin")
        }
        (DatasetName::Mnist, None) => open(&bundled_mnist_dir(), Some(name)),
        (DatasetName::FashionMnist, None) => {
            let d = Path::new(DEBIAN_FASHION_MNIST_DIR);
            ensure!(
                d.is_dir(),
                "Fashion-MNIST not found at {DEBIAN_FASHION_MNIST_DIR}: install the Debian package dataset-fashion-mnist or pass a directory"
            );
            open(d, Some(name))
        }
    }
}

/// What the command line's `--dataset NAME` and `--data PATH` select: the data at `PATH` in
/// any format [`open`] reads (with `NAME` as a hint), or data set `NAME` from its default place.
pub fn select(name: Option<DatasetName>, path: Option<&Path>) -> Result<Splits> {
    match (name, path) {
        (_, Some(p)) => open(p, name),
        (Some(n), None) => load(n, None),
        (None, None) => bail!(
            "no data given: pass --data PATH (a folder or .npz) or --dataset mnist|fashion-mnist|cifar10"
        ),
    }
}

/// The bundled MNIST subset: 8,000 train and 2,000 test digits.
pub fn bundled_mnist() -> Result<Splits> {
    load(DatasetName::Mnist, None)
}

/// Where a known data set lives inside Keras' cache folder (`~/.keras/datasets`).
fn keras_cache_entry(dir: &Path, name: DatasetName) -> PathBuf {
    match name {
        DatasetName::Mnist => dir.join("mnist.npz"),
        DatasetName::FashionMnist => dir.join("fashion-mnist"),
        DatasetName::Cifar10 => dir.join("cifar-10-batches-py-target"),
    }
}

/// The format of the data at `path`, and the file or folder to read it from.
pub fn detect(path: &Path, name: Option<DatasetName>) -> Result<(DataFormat, PathBuf)> {
    let p = path.display();
    ensure!(path.exists(), "data path {p} does not exist");
    if path.is_file() {
        let is_zip = std::fs::read(path)
            .map(|b| b.starts_with(b"PK\x03\x04"))
            .unwrap_or(false);
        ensure!(
            is_zip || path.extension().is_some_and(|e| e == "npz"),
            "{p}: a data file must be a Keras .npz (x_train, y_train, x_test, y_test); for IDX, CIFAR-10 or image data pass their folder"
        );
        return Ok((DataFormat::KerasNpz, path.to_path_buf()));
    }
    if let Some(n) = name {
        let inner = keras_cache_entry(path, n);
        if inner.exists() {
            return detect(&inner, name);
        }
    }
    if let Some((d, layout)) = cifar::find_batches(path) {
        let f = match layout {
            cifar::Layout::Binary => DataFormat::Cifar10Binary,
            cifar::Layout::Pickled => DataFormat::Cifar10Pickle,
        };
        return Ok((f, d));
    }
    if idx::is_idx_dir(path) {
        return Ok((DataFormat::Idx, path.to_path_buf()));
    }
    if folder::is_image_folder(path) {
        return Ok((DataFormat::ImageFolder, path.to_path_buf()));
    }
    if path.join("mnist.npz").is_file() {
        return Ok((DataFormat::KerasNpz, path.join("mnist.npz")));
    }
    match name {
        // Let the reader name the files it expected.
        Some(DatasetName::Mnist | DatasetName::FashionMnist) => Ok((DataFormat::Idx, path.to_path_buf())),
        Some(DatasetName::Cifar10) => bail!(
            "{p}: no CIFAR-10 batches found (data_batch_1…5 and test_batch, pickled or .bin, here or in cifar-10-batches-py/)"
        ),
        None => bail!(
            "{p}: no data set found; expected IDX files (train-images-idx3-ubyte[.gz], …), CIFAR-10 batches (data_batch_1…5 and test_batch, pickled or .bin), a Keras .npz, or an image folder (one sub-folder of PNG/JPEG images per class)"
        ),
    }
}

/// Reads the data set at `path` in whatever format it has (see the module docs).
///
/// `name` says which known data set it is, when the files cannot tell: IDX files do not
/// say whether they are MNIST or Fashion-MNIST (without a name, a folder whose name
/// contains "fashion" is taken as Fashion-MNIST, any other as MNIST). With a name, the data
/// must have that data set's image shape and classes; an image folder's labels are then put
/// in the data set's class order.
pub fn open(path: &Path, name: Option<DatasetName>) -> Result<Splits> {
    let (format, at) = detect(path, name)?;
    let mut notes = Vec::new();
    let (train, test, known) = match format {
        DataFormat::Idx => {
            let known = name.unwrap_or_else(|| {
                let fashion = at.to_string_lossy().to_ascii_lowercase().contains("fashion");
                let guess = if fashion { DatasetName::FashionMnist } else { DatasetName::Mnist };
                notes.push(format!(
                    "{}: IDX files do not name their data set; taken as {guess} from the folder name (pass --dataset to choose)",
                    at.display()
                ));
                guess
            });
            ensure!(
                known != DatasetName::Cifar10,
                "{}: holds IDX files (MNIST-like), not CIFAR-10",
                at.display()
            );
            let (tr, te) = idx::load_idx_dir(&at, &known.class_names())?;
            (tr, Some(te), Some(known))
        }
        DataFormat::KerasNpz => {
            let stem_is_mnist = at.file_stem().is_some_and(|s| s == "mnist");
            let known = name.or(stem_is_mnist.then_some(DatasetName::Mnist));
            let (tr, te) = keras::load_keras_npz(&at, known.map(DatasetName::class_names))?;
            (tr, Some(te), known)
        }
        DataFormat::Cifar10Binary | DataFormat::Cifar10Pickle => {
            ensure!(
                name.is_none_or(|n| n == DatasetName::Cifar10),
                "{}: holds CIFAR-10, not {}",
                at.display(),
                name.map(|n| n.as_str()).unwrap_or_default()
            );
            let layout = if format == DataFormat::Cifar10Binary {
                cifar::Layout::Binary
            } else {
                cifar::Layout::Pickled
            };
            let (tr, te) = cifar::load_cifar10_dir(&at, layout)?;
            let known =
                (tr.class_names == DatasetName::Cifar10.class_names()).then_some(DatasetName::Cifar10);
            (tr, Some(te), known)
        }
        DataFormat::Generated => bail!("generated data is not read from disk"),
        DataFormat::ImageFolder => {
            let (tr, te) = folder::load_image_folder(&at)?;
            match name {
                Some(n) => {
                    let (tr, te) = in_known_order(tr, te, n, &at)?;
                    (tr, te, Some(n))
                }
                None => (tr, te, None),
            }
        }
    };
    let held_out = test.is_some();
    let test = match test {
        Some(t) => t,
        None => {
            notes.push(format!(
                "{}: no train/ and test/ sub-folders: the test split is the same {} images as the train split",
                at.display(),
                train.len()
            ));
            Dataset {
                images: train.images.shallow_clone(),
                labels: train.labels.shallow_clone(),
                class_names: train.class_names.clone(),
            }
        }
    };
    let label = known.map(|k| k.as_str().to_string()).unwrap_or_else(|| {
        let base = if format == DataFormat::KerasNpz {
            at.file_stem()
        } else {
            at.file_name()
        };
        base.map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "data".into())
    });
    let splits = Splits {
        known,
        name: label,
        format,
        train,
        test,
        held_out,
        notes,
    };
    match known {
        Some(k) if splits.input_shape() != k.input_shape() => {
            let [c, h, w] = splits.input_shape();
            ensure!(
                [h, w] == k.input_shape()[1..],
                "{}: images are {c}x{h}x{w}, but {k} images are {:?}",
                at.display(),
                k.input_shape()
            );
            splits.to_channels(k.input_shape()[0])
        }
        _ => Ok(splits),
    }
}

/// An image folder's splits with labels in the class order of the known data set `name`.
fn in_known_order(
    train: Dataset,
    test: Option<Dataset>,
    name: DatasetName,
    at: &Path,
) -> Result<(Dataset, Option<Dataset>)> {
    let want = name.class_names();
    ensure!(
        same_classes(&train.class_names, &want),
        "{}: class folders {:?} are not the {name} classes {want:?} (leave out the data set name to use the folders' own classes)",
        at.display(),
        train.class_names
    );
    let test = test.map(|t| t.relabelled(&want)).transpose()?;
    Ok((train.relabelled(&want)?, test))
}
