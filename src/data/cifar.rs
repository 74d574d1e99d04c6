//! CIFAR-10 as distributed: the binary batches (`data_batch_N.bin`) and the Python version
//! (`cifar-10-batches-py/data_batch_N`, pickled dicts that Keras and torchvision download).

use super::pickle::{self, Value};
use super::{check_labels, Dataset, DatasetName};
use anyhow::{bail, ensure, Context, Result};
use std::path::{Path, PathBuf};
use tch::{Kind, Tensor};

/// One CIFAR-10 record: a label byte and 3×32×32 pixel bytes.
pub const CIFAR10_RECORD_BYTES: usize = 1 + CIFAR10_IMAGE_BYTES;
/// One CIFAR image, channel-major: 1024 red, 1024 green, 1024 blue bytes.
pub const CIFAR10_IMAGE_BYTES: usize = 3 * 32 * 32;

/// `[N, 3, 32, 32]` f32 in `[0, 1]` from channel-major pixel bytes.
fn images_of(pixels: &[u8]) -> Tensor {
    let n = (pixels.len() / CIFAR10_IMAGE_BYTES) as i64;
    Tensor::from_slice(pixels)
        .view([n, 3, 32, 32])
        .to_kind(Kind::Float)
        / 255.0
}

/// Pixels and labels of a binary batch.
pub fn parse_cifar10_binary(bytes: &[u8]) -> Result<(Vec<u8>, Vec<i64>)> {
    ensure!(
        !bytes.is_empty() && bytes.len().is_multiple_of(CIFAR10_RECORD_BYTES),
        "size {} is not a multiple of the CIFAR-10 record size {CIFAR10_RECORD_BYTES} (truncated or not a CIFAR-10 binary batch)",
        bytes.len()
    );
    let n = bytes.len() / CIFAR10_RECORD_BYTES;
    let mut labels = Vec::with_capacity(n);
    let mut pixels = Vec::with_capacity(n * CIFAR10_IMAGE_BYTES);
    for rec in bytes.chunks_exact(CIFAR10_RECORD_BYTES) {
        labels.push(rec[0] as i64);
        pixels.extend_from_slice(&rec[1..]);
    }
    Ok((pixels, labels))
}

/// Reads one CIFAR-10 binary batch (`data_batch_N.bin`, `test_batch.bin`).
pub fn read_cifar10_batch(path: impl AsRef<Path>) -> Result<Dataset> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let (pixels, labels) = parse_cifar10_binary(&bytes).with_context(|| format!("{}", path.display()))?;
    dataset(&pixels, labels, DatasetName::Cifar10.class_names(), path)
}

fn dataset(pixels: &[u8], labels: Vec<i64>, class_names: Vec<String>, path: &Path) -> Result<Dataset> {
    let labels = Tensor::from_slice(&labels);
    check_labels(&labels, class_names.len(), path)?;
    Ok(Dataset {
        images: images_of(pixels),
        labels,
        class_names,
    })
}

/// Pixels (channel-major rows of 3072 bytes) and labels of a pickled batch: a dict with
/// `data`, a uint8 array `[N, 3072]`, and `labels`, a list of ints (keys as bytes or str).
pub fn parse_cifar10_pickle(bytes: &[u8]) -> Result<(Vec<u8>, Vec<i64>)> {
    let v = pickle::parse(bytes)?;
    ensure!(
        matches!(v, Value::Dict(_)),
        "the pickle holds no dict: not a CIFAR batch"
    );
    let data = match v.get("data") {
        Some(Value::Array(a)) => a,
        Some(other) => bail!("'data' is not a numpy array: {other:?}"),
        None => bail!("the dict has no 'data' entry: not a CIFAR batch"),
    };
    ensure!(
        data.shape.len() == 2 && data.shape[1] == CIFAR10_IMAGE_BYTES,
        "'data' has shape {:?}, expected [N, {CIFAR10_IMAGE_BYTES}]",
        data.shape
    );
    let pixels = data.to_u8().context("'data'")?;
    let labels: Vec<i64> = match v.get("labels") {
        Some(Value::List(l) | Value::Tuple(l)) => l
            .iter()
            .map(|x| match x {
                Value::Int(i) => Ok(*i),
                other => bail!("'labels' holds a non-integer: {other:?}"),
            })
            .collect::<Result<_>>()?,
        Some(Value::Array(a)) => a.to_i64().context("'labels'")?,
        Some(_) => bail!("'labels' is not a list of ints"),
        None => bail!("the dict has no 'labels' entry (CIFAR-100's 'fine_labels' is not supported)"),
    };
    ensure!(
        labels.len() == data.shape[0],
        "{} labels for {} images",
        labels.len(),
        data.shape[0]
    );
    Ok((pixels, labels))
}

/// The class names of `batches.meta`: a dict whose `label_names` lists them.
pub fn parse_cifar10_meta(bytes: &[u8]) -> Result<Vec<String>> {
    let v = pickle::parse(bytes)?;
    let Some(Value::List(names)) = v.get("label_names") else {
        bail!("no 'label_names' list: not CIFAR's batches.meta");
    };
    let names: Vec<String> = names
        .iter()
        .map(|n| n.as_text().context("a label name is not text"))
        .collect::<Result<_>>()?;
    ensure!(!names.is_empty(), "'label_names' is empty");
    Ok(names)
}

/// Reads one pickled batch (`data_batch_N`, `test_batch`) with the given class names.
pub fn read_cifar10_pickle(path: impl AsRef<Path>, class_names: Vec<String>) -> Result<Dataset> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let (pixels, labels) = parse_cifar10_pickle(&bytes).with_context(|| format!("{}", path.display()))?;
    dataset(&pixels, labels, class_names, path)
}

/// Which CIFAR-10 layout a directory holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Layout {
    Binary,
    Pickled,
}

/// The directory with the batches: `dir` itself or the sub-folder the archives unpack to.
pub(crate) fn find_batches(dir: &Path) -> Option<(PathBuf, Layout)> {
    let candidates = [
        dir.join("cifar-10-batches-py"),
        dir.join("cifar-10-batches-bin"),
        dir.join("cifar-10-batches-py-target").join("cifar-10-batches-py"),
        dir.to_path_buf(),
    ];
    candidates.into_iter().find_map(|d| {
        if d.join("data_batch_1").is_file() || d.join("test_batch").is_file() {
            Some((d, Layout::Pickled))
        } else if d.join("data_batch_1.bin").is_file() || d.join("test_batch.bin").is_file() {
            Some((d, Layout::Binary))
        } else {
            None
        }
    })
}

/// Reads train (`data_batch_1..5`) and test batches of either layout.
pub(crate) fn load_cifar10_dir(dir: &Path, layout: Layout) -> Result<(Dataset, Dataset)> {
    let ext = if layout == Layout::Binary { ".bin" } else { "" };
    let read = |p: &Path| match layout {
        Layout::Binary => read_cifar10_batch(p),
        Layout::Pickled => read_cifar10_pickle(p, class_names_in(dir)?),
    };
    let mut train = Vec::new();
    for i in 1..=5 {
        let p = dir.join(format!("data_batch_{i}{ext}"));
        if p.is_file() {
            train.push(read(&p)?);
        }
    }
    ensure!(!train.is_empty(), "{}: no data_batch_*{ext} found", dir.display());
    let test = dir.join(format!("test_batch{ext}"));
    ensure!(test.is_file(), "{}: test_batch{ext} not found", dir.display());
    Ok((super::concat(train), read(&test)?))
}

/// `batches.meta`'s class names if the file is there, else CIFAR-10's.
fn class_names_in(dir: &Path) -> Result<Vec<String>> {
    let meta = dir.join("batches.meta");
    if !meta.is_file() {
        return Ok(DatasetName::Cifar10.class_names());
    }
    let bytes = std::fs::read(&meta).with_context(|| format!("cannot read {}", meta.display()))?;
    parse_cifar10_meta(&bytes).with_context(|| format!("{}", meta.display()))
}
