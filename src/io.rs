//! Files in and out: atomic writes, `.npy` tensors and PNG images.
//!
//! Every writer goes through [`write_atomic`] (or a temp file + rename), so a failure
//! never leaves a half-written file behind. Writers hold [`write_lock`] while a temp file
//! exists, so that Ctrl-C ([`crate::interrupt`]) lets the file finish instead of leaving
//! the temp file behind.
//!
//! Readers of untrusted bytes ([`npy_from_bytes`], [`decode_image`]) check every size a
//! header claims against the bytes actually there before allocating anything.

use anyhow::{bail, ensure, Context, Result};
use std::io::Write;
use std::path::Path;
use std::sync::{Mutex, MutexGuard};
use tch::{Kind, Tensor};

static WRITING: Mutex<()> = Mutex::new(());

/// Held while an output file is being written (temp file created, not yet renamed).
pub fn write_lock() -> MutexGuard<'static, ()> {
    WRITING.lock().unwrap_or_else(|e| e.into_inner())
}

fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Temp files are created 0600; results should be as readable as any other output file.
fn make_readable(f: &std::fs::File) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    f.set_permissions(std::fs::Permissions::from_mode(0o644))?;
    Ok(())
}

/// Writes `bytes` to `path` through a temporary file in the same directory.
pub fn write_atomic(path: impl AsRef<Path>, bytes: &[u8]) -> Result<()> {
    let path = path.as_ref();
    let dir = parent_dir(path);
    let _writing = write_lock();
    let mut tmp = tempfile::NamedTempFile::new_in(dir)
        .with_context(|| format!("cannot create a file in {}", dir.display()))?;
    tmp.write_all(bytes)
        .with_context(|| format!("cannot write {}", path.display()))?;
    make_readable(tmp.as_file())?;
    tmp.persist(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

/// Saves a tensor as float32 `.npy`, atomically.
pub fn save_npy(path: impl AsRef<Path>, t: &Tensor) -> Result<()> {
    let path = path.as_ref();
    let dir = parent_dir(path);
    let _writing = write_lock();
    let tmp = tempfile::Builder::new()
        .suffix(".npy")
        .tempfile_in(dir)
        .with_context(|| format!("cannot create a file in {}", dir.display()))?;
    let t = t
        .detach()
        .to_device(tch::Device::Cpu)
        .to_kind(Kind::Float)
        .contiguous();
    t.write_npy(tmp.path())
        .with_context(|| format!("cannot write {}", path.display()))?;
    make_readable(tmp.as_file())?;
    tmp.persist(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

/// Loads a `.npy` file as a float32 tensor.
pub fn load_npy(path: impl AsRef<Path>) -> Result<Tensor> {
    let path = path.as_ref();
    ensure!(path.is_file(), "{} does not exist", path.display());
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let t =
        npy_from_bytes(&bytes).with_context(|| format!("{}: not a readable .npy file", path.display()))?;
    Ok(t.to_kind(Kind::Float))
}

/// numpy's own limit on the header of a `.npy` file it will read (`max_header_size`).
const NPY_MAX_HEADER: usize = 10_000;

/// The element kinds of a `.npy` file that gradviz reads: `(descr code, kind, bytes)`.
const NPY_KINDS: [(&str, Kind, usize); 8] = [
    ("f4", Kind::Float, 4),
    ("f8", Kind::Double, 8),
    ("i1", Kind::Int8, 1),
    ("i2", Kind::Int16, 2),
    ("i4", Kind::Int, 4),
    ("i8", Kind::Int64, 8),
    ("u1", Kind::Uint8, 1),
    ("b1", Kind::Bool, 1),
];

/// The value of `'key': VALUE` in a `.npy` header dict (up to the next `,` outside
/// parentheses, or the closing brace).
fn npy_header_value<'a>(header: &'a str, key: &str) -> Result<&'a str> {
    let at = [format!("'{key}'"), format!("\"{key}\"")]
        .iter()
        .find_map(|k| header.find(k.as_str()).map(|i| i + k.len()))
        .with_context(|| format!("the header names no '{key}'"))?;
    let rest = header[at..].trim_start();
    let rest = rest
        .strip_prefix(':')
        .with_context(|| format!("the header has no ':' after '{key}'"))?
        .trim_start();
    let end = if rest.starts_with('(') {
        rest.find(')').map(|i| i + 1)
    } else {
        rest.find([',', '}'])
    }
    .with_context(|| format!("the header's '{key}' value is not terminated"))?;
    Ok(rest[..end].trim())
}

/// Parses a `.npy` file held in memory (format 1.0–3.0, C order, little- or big-endian
/// `f4 f8 i1 i2 i4 i8 u1 b1`) into a tensor of the stored kind. The header's shape must
/// account for exactly the bytes that follow it.
pub fn npy_from_bytes(bytes: &[u8]) -> Result<Tensor> {
    ensure!(
        bytes.len() >= 10 && bytes.starts_with(b"\x93NUMPY"),
        "no .npy magic string (\\x93NUMPY)"
    );
    let (len_bytes, start) = match bytes[6] {
        1 => (2, 10),
        2 | 3 => (4, 12),
        v => bail!("unsupported .npy format version {v}"),
    };
    ensure!(bytes.len() >= start, "truncated .npy header");
    let header_len = bytes[8..8 + len_bytes]
        .iter()
        .rev()
        .fold(0usize, |acc, &b| (acc << 8) | b as usize);
    ensure!(
        header_len <= NPY_MAX_HEADER && start + header_len <= bytes.len(),
        "the .npy header claims {header_len} bytes, but the file has {} after the preamble (numpy reads at most {NPY_MAX_HEADER})",
        bytes.len() - start
    );
    let header =
        std::str::from_utf8(&bytes[start..start + header_len]).context("the .npy header is not text")?;
    let descr = npy_header_value(header, "descr")?.trim_matches(['\'', '"']);
    let (big_endian, code) = match descr.split_at_checked(1) {
        Some((p @ ("<" | ">" | "|" | "="), code)) => (p == ">", code),
        _ => (false, descr),
    };
    let (_, kind, size) = NPY_KINDS.iter().find(|(c, _, _)| *c == code).with_context(|| {
        format!("unsupported .npy dtype '{descr}' (expected one of f4 f8 i1 i2 i4 i8 u1 b1)")
    })?;
    let fortran = npy_header_value(header, "fortran_order")?;
    ensure!(
        fortran == "False",
        "fortran_order {fortran} is not supported (save a C-ordered array)"
    );
    let shape_text = npy_header_value(header, "shape")?;
    let inner = shape_text
        .strip_prefix('(')
        .and_then(|s| s.strip_suffix(')'))
        .with_context(|| format!("the .npy shape '{shape_text}' is not a tuple"))?;
    let shape: Vec<i64> = inner
        .split(',')
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .map(|d| d.trim_end_matches('L').parse::<i64>().ok().filter(|&v| v >= 0))
        .collect::<Option<_>>()
        .with_context(|| format!("the .npy shape '{shape_text}' is not a tuple of sizes"))?;
    let data = &bytes[start + header_len..];
    let want = shape
        .iter()
        .try_fold(*size as u64, |acc, &d| acc.checked_mul(d as u64))
        .filter(|&b| b == data.len() as u64)
        .with_context(|| {
            format!(
                "the .npy header claims shape {shape:?} of {descr}, which does not match the {} data bytes in the file",
                data.len()
            )
        })?;
    let mut data = data.to_vec();
    if big_endian && *size > 1 {
        data.chunks_exact_mut(*size).for_each(|c| c.reverse());
    }
    debug_assert_eq!(want as usize, data.len());
    Ok(Tensor::f_from_data_size(&data, &shape, *kind)?)
}

/// Loads a `.npy` batch of images `[N, C, H, W]`, checking shape, range and NaNs.
pub fn load_npy_images(path: impl AsRef<Path>, shape: [i64; 3]) -> Result<Tensor> {
    let path = path.as_ref();
    let t = load_npy(path)?;
    let p = path.display();
    crate::model::check_batch(&t, shape).with_context(|| format!("{p}"))?;
    crate::model::check_finite(&t, &format!("{p}"))?;
    let (lo, hi) = (t.min().double_value(&[]), t.max().double_value(&[]));
    ensure!(
        lo >= 0.0 && hi <= 1.0,
        "{p}: values span [{lo}, {hi}], expected images in [0, 1]"
    );
    Ok(t)
}

/// The largest image [`decode_image`] accepts, in pixels per side and bytes decoded.
const MAX_IMAGE_SIDE: u32 = 16_384;
const MAX_IMAGE_BYTES: u64 = 256 << 20;

/// Loads a PNG/JPEG as one image of the model's shape `[1, C, H, W]` in `[0, 1]`,
/// converting colour and resizing when needed. The second value says what was converted.
pub fn load_image(path: impl AsRef<Path>, shape: [i64; 3]) -> Result<(Tensor, Option<String>)> {
    let path = path.as_ref();
    let p = path.display();
    let bytes = std::fs::read(path).with_context(|| format!("{p}: cannot read image"))?;
    let (t, notes) = decode_image(&bytes, shape).with_context(|| format!("{p}: cannot read image"))?;
    let note = (!notes.is_empty()).then(|| format!("{p}: {}", notes.join(", ")));
    Ok((t, note))
}

/// Decodes PNG or JPEG bytes into `[1, C, H, W]` in `[0, 1]` for `shape = [C, H, W]`; the
/// second value lists the conversions made. Images larger than 16384 px a side or 256 MiB
/// decoded are refused before decoding.
pub fn decode_image(bytes: &[u8], shape: [i64; 3]) -> Result<(Tensor, Vec<String>)> {
    let [c, h, w] = shape;
    ensure!(
        matches!(c, 1 | 3) && h > 0 && w > 0,
        "cannot make images of shape {shape:?} (need 1 or 3 channels)"
    );
    let mut reader = image::ImageReader::new(std::io::Cursor::new(bytes)).with_guessed_format()?;
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(MAX_IMAGE_SIDE);
    limits.max_image_height = Some(MAX_IMAGE_SIDE);
    limits.max_alloc = Some(MAX_IMAGE_BYTES);
    reader.limits(limits);
    let img = reader.decode()?;
    ensure!(img.width() > 0 && img.height() > 0, "the image is empty");
    let mut notes = Vec::new();
    if (img.width(), img.height()) != (w as u32, h as u32) {
        notes.push(format!("resized {}x{} to {w}x{h}", img.width(), img.height()));
    }
    let img = img.resize_exact(w as u32, h as u32, image::imageops::FilterType::Triangle);
    let data: Vec<u8> = if c == 1 {
        if img.color().channel_count() != 1 {
            notes.push("converted to grayscale".into());
        }
        img.to_luma8().into_raw()
    } else {
        if img.color().channel_count() < 3 {
            notes.push("converted to RGB".into());
        }
        img.to_rgb8().into_raw()
    };
    // HWC bytes -> CHW floats
    let t = Tensor::from_slice(&data)
        .view([h, w, c])
        .permute([2, 0, 1])
        .to_kind(Kind::Float)
        .unsqueeze(0)
        / 255.0;
    Ok((t, notes))
}
