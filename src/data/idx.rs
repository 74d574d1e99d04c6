//! IDX files (MNIST, Fashion-MNIST): a big-endian header of dimensions, then unsigned bytes.

use super::{check_labels, Dataset};
use anyhow::{bail, ensure, Context, Result};
use flate2::read::GzDecoder;
use std::io::Read;
use std::path::Path;
use tch::{Kind, Tensor};

/// The file's bytes, gunzipped when they start with the gzip magic number.
pub fn read_maybe_gz(path: &Path) -> Result<Vec<u8>> {
    let raw = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    gunzip_if_gz(&raw).with_context(|| format!("{}", path.display()))
}

/// `bytes` gunzipped if they are gzip, else unchanged.
pub fn gunzip_if_gz(bytes: &[u8]) -> Result<Vec<u8>> {
    if bytes.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        GzDecoder::new(bytes)
            .read_to_end(&mut out)
            .context("corrupt or truncated gzip stream")?;
        Ok(out)
    } else {
        Ok(bytes.to_vec())
    }
}

/// The dimensions and payload of an IDX file of unsigned bytes with `want_dims` dimensions.
pub fn parse_idx(bytes: &[u8], want_dims: usize) -> Result<(Vec<usize>, &[u8])> {
    ensure!(
        bytes.len() >= 4,
        "file is too short to be IDX ({} bytes)",
        bytes.len()
    );
    if bytes[0] != 0 || bytes[1] != 0 {
        bail!(
            "bad IDX magic number {:02x?} (must start with two zero bytes)",
            &bytes[..4]
        );
    }
    ensure!(
        bytes[2] == 0x08,
        "IDX data type 0x{:02x} is not unsigned byte (0x08)",
        bytes[2]
    );
    let dims = bytes[3] as usize;
    ensure!(
        dims == want_dims,
        "IDX file has {dims} dimensions, expected {want_dims} (bad magic number 0x0000080{dims:x}?)"
    );
    let header = 4 + 4 * dims;
    ensure!(bytes.len() >= header, "truncated IDX header");
    let shape: Vec<usize> = bytes[4..header]
        .chunks_exact(4)
        .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]) as usize)
        .collect();
    let expected = shape
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .with_context(|| format!("IDX header {shape:?} is impossibly large"))?;
    let got = bytes.len() - header;
    ensure!(
        got == expected,
        "truncated or oversized IDX payload: header says {shape:?} = {expected} bytes, file has {got}"
    );
    Ok((shape, &bytes[header..]))
}

/// Images `[N, 1, H, W]` f32 in `[0, 1]` from the bytes of an IDX image file.
pub fn parse_idx_images(bytes: &[u8]) -> Result<Tensor> {
    let (shape, data) = parse_idx(bytes, 3)?;
    Ok(Tensor::from_slice(data)
        .view([shape[0] as i64, 1, shape[1] as i64, shape[2] as i64])
        .to_kind(Kind::Float)
        / 255.0)
}

/// Labels `[N]` i64 from the bytes of an IDX label file.
pub fn parse_idx_labels(bytes: &[u8]) -> Result<Tensor> {
    let (_, data) = parse_idx(bytes, 1)?;
    Ok(Tensor::from_slice(data).to_kind(Kind::Int64))
}

/// Reads an IDX image file (`.gz` or raw) into `[N, 1, H, W]` f32 in `[0, 1]`.
pub fn read_idx_images(path: impl AsRef<Path>) -> Result<Tensor> {
    let path = path.as_ref();
    parse_idx_images(&read_maybe_gz(path)?).with_context(|| format!("{}", path.display()))
}

/// Reads an IDX label file (`.gz` or raw) into `[N]` i64.
pub fn read_idx_labels(path: impl AsRef<Path>) -> Result<Tensor> {
    let path = path.as_ref();
    parse_idx_labels(&read_maybe_gz(path)?).with_context(|| format!("{}", path.display()))
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

/// The file in `dir` named by the first of `stems` that exists, as `.gz` or raw.
pub(crate) fn find_file(dir: &Path, stems: &[String]) -> Option<std::path::PathBuf> {
    stems.iter().find_map(|stem| {
        [dir.join(format!("{stem}.gz")), dir.join(stem)]
            .into_iter()
            .find(|c| c.is_file())
    })
}

/// The names the official files (and Keras' fashion-mnist cache) use for a split.
pub(crate) fn split_files(prefix: &str) -> [Vec<String>; 2] {
    [
        vec![
            format!("{prefix}-images-idx3-ubyte"),
            format!("{prefix}-images.idx3-ubyte"),
        ],
        vec![
            format!("{prefix}-labels-idx1-ubyte"),
            format!("{prefix}-labels.idx1-ubyte"),
        ],
    ]
}

/// Whether `dir` holds the IDX files of a train split.
pub(crate) fn is_idx_dir(dir: &Path) -> bool {
    let [images, _] = split_files("train");
    find_file(dir, &images).is_some()
}

/// Reads `train-*` and `t10k-*` from `dir`.
pub(crate) fn load_idx_dir(dir: &Path, class_names: &[String]) -> Result<(Dataset, Dataset)> {
    let read = |prefix: &str| -> Result<Dataset> {
        let [images, labels] = split_files(prefix);
        let find = |stems: &[String]| {
            find_file(dir, stems)
                .with_context(|| format!("{}: none of {stems:?} (.gz or raw) found", dir.display()))
        };
        read_idx_pair(find(&images)?, find(&labels)?, class_names.to_vec())
    };
    Ok((read("train")?, read("t10k")?))
}
