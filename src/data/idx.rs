//! IDX files (MNIST, Fashion-MNIST): a big-endian header of dimensions, then unsigned bytes.

use super::{check_labels, Dataset};
use anyhow::{bail, ensure, Context, Result};
use flate2::read::GzDecoder;
use std::io::Read;
use std::path::Path;
use tch::{Kind, Tensor};

/// Deflate cannot compress better than about 1032:1, so a gzip stream of `n` bytes holds at
/// most this many bytes per input byte: a bound on what an IDX header may claim.
const MAX_GZIP_RATIO: u64 = 1032;

/// The dimensions and payload of IDX bytes of unsigned bytes with `want_dims` dimensions,
/// raw or gzip-compressed. The sizes in the header are checked against the bytes that are
/// there before anything is allocated for them (a gzip stream is decoded only as far as the
/// header claims, and only if the stream can hold that much).
pub fn decode_idx(bytes: &[u8], want_dims: usize) -> Result<(Vec<usize>, Vec<u8>)> {
    if !bytes.starts_with(&[0x1f, 0x8b]) {
        let (shape, header) = parse_idx_header(bytes, want_dims)?;
        let expected = idx_payload_len(&shape)?;
        let got = bytes.len() - header;
        ensure!(
            got as u64 == expected,
            "truncated or oversized IDX payload: header says {shape:?} = {expected} bytes, file has {got}"
        );
        return Ok((shape, bytes[header..].to_vec()));
    }
    let corrupt = "corrupt or truncated gzip stream";
    let mut gz = GzDecoder::new(bytes);
    let mut head = vec![0u8; 4];
    gz.read_exact(&mut head).context(corrupt)?;
    let dims = head[3] as usize;
    if head[..3] == [0, 0, 0x08] && dims == want_dims {
        head.resize(4 + 4 * dims, 0);
        gz.read_exact(&mut head[4..]).context(corrupt)?;
    }
    let (shape, _) = parse_idx_header(&head, want_dims)?;
    let expected = idx_payload_len(&shape)?;
    let most = MAX_GZIP_RATIO * bytes.len() as u64;
    ensure!(
        expected <= most,
        "IDX header claims {shape:?} = {expected} bytes, more than a {}-byte gzip stream can hold (at most {most})",
        bytes.len()
    );
    let mut payload = Vec::with_capacity(expected as usize);
    gz.take(expected + 1).read_to_end(&mut payload).context(corrupt)?;
    ensure!(
        payload.len() as u64 == expected,
        "truncated or oversized IDX payload: header says {shape:?} = {expected} bytes, stream has {}{}",
        payload.len(),
        if payload.len() as u64 > expected {
            " or more"
        } else {
            ""
        }
    );
    Ok((shape, payload))
}

/// Checks the magic number of an IDX file of unsigned bytes with `want_dims` dimensions and
/// reads its dimensions; returns them and the header's length.
fn parse_idx_header(bytes: &[u8], want_dims: usize) -> Result<(Vec<usize>, usize)> {
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
    Ok((shape, header))
}

/// The payload size an IDX header claims, without overflow.
fn idx_payload_len(shape: &[usize]) -> Result<u64> {
    shape
        .iter()
        .try_fold(1u64, |acc, &d| acc.checked_mul(d as u64))
        .with_context(|| format!("IDX header {shape:?} is impossibly large"))
}

/// Images `[N, 1, H, W]` f32 in `[0, 1]` from the bytes of an IDX image file (raw or gzip).
pub fn parse_idx_images(bytes: &[u8]) -> Result<Tensor> {
    let (shape, data) = decode_idx(bytes, 3)?;
    ensure!(
        shape[1] > 0 && shape[2] > 0,
        "IDX images of size {}x{} are empty",
        shape[1],
        shape[2]
    );
    Ok(Tensor::from_slice(&data)
        .view([shape[0] as i64, 1, shape[1] as i64, shape[2] as i64])
        .to_kind(Kind::Float)
        / 255.0)
}

/// Labels `[N]` i64 from the bytes of an IDX label file (raw or gzip).
pub fn parse_idx_labels(bytes: &[u8]) -> Result<Tensor> {
    let (_, data) = decode_idx(bytes, 1)?;
    Ok(Tensor::from_slice(&data).to_kind(Kind::Int64))
}

fn read_file(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))
}

/// Reads an IDX image file (`.gz` or raw) into `[N, 1, H, W]` f32 in `[0, 1]`.
pub fn read_idx_images(path: impl AsRef<Path>) -> Result<Tensor> {
    let path = path.as_ref();
    parse_idx_images(&read_file(path)?).with_context(|| format!("{}", path.display()))
}

/// Reads an IDX label file (`.gz` or raw) into `[N]` i64.
pub fn read_idx_labels(path: impl AsRef<Path>) -> Result<Tensor> {
    let path = path.as_ref();
    parse_idx_labels(&read_file(path)?).with_context(|| format!("{}", path.display()))
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
