//! Files in and out: atomic writes, `.npy` tensors and PNG images.
//!
//! Every writer goes through [`write_atomic`] (or a temp file + rename), so a failure
//! never leaves a half-written file behind.

use anyhow::{ensure, Context, Result};
use std::io::Write;
use std::path::Path;
use tch::{Kind, Tensor};

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
    let t =
        Tensor::read_npy(path).with_context(|| format!("{}: not a readable .npy file", path.display()))?;
    Ok(t.to_kind(Kind::Float))
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

/// Loads a PNG/JPEG as one image of the model's shape `[1, C, H, W]` in `[0, 1]`,
/// converting colour and resizing when needed. The second value says what was converted.
pub fn load_image(path: impl AsRef<Path>, shape: [i64; 3]) -> Result<(Tensor, Option<String>)> {
    let path = path.as_ref();
    let img = image::open(path).with_context(|| format!("{}: cannot read image", path.display()))?;
    let [c, h, w] = shape;
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
    let note = (!notes.is_empty()).then(|| format!("{}: {}", path.display(), notes.join(", ")));
    Ok((t, note))
}
