//! Files in and out: atomic writes, `.npy` tensors, and PNG/JPEG images (one file, or the
//! files, directories and globs given on a command line).
//!
//! Every writer goes through [`write_atomic`] (or a temp file + rename), so a failure
//! never leaves a half-written file behind. Writers hold [`write_lock`] while a temp file
//! exists, so that Ctrl-C ([`crate::interrupt`]) lets the file finish instead of leaving
//! the temp file behind.
//!
//! Readers of untrusted bytes ([`npy_from_bytes`], [`decode_image`]) check every size a
//! header claims against the bytes actually there before allocating anything.

use anyhow::{ensure, Context, Result};
use std::io::Write;
use std::path::{Path, PathBuf};
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
/// By path, not by handle: a temporary file may have been replaced by another program's
/// (the importer's exporter writes its own).
pub(crate) fn make_readable(path: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644))
        .with_context(|| format!("cannot make {} readable", path.display()))
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
    make_readable(tmp.path())?;
    tmp.persist(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

/// Saves a tensor as float32 `.npy`, atomically.
pub fn save_npy(path: impl AsRef<Path>, t: &Tensor) -> Result<()> {
    let path = path.as_ref();
    let _writing = write_lock();
    let tmp = npy_temp_file(path, t)?;
    tmp.persist(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

/// Saves a tensor as float32 `.npy` with its provenance record in the sidecar
/// `NAME.npy.json`. Both are written to temp files first and renamed together (sidecar
/// first), with Ctrl-C held off in between; if the `.npy` cannot be renamed, the new
/// sidecar is removed again.
pub fn save_npy_with(
    path: impl AsRef<Path>,
    t: &Tensor,
    record: &crate::provenance::Provenance,
) -> Result<()> {
    let path = path.as_ref();
    let side = crate::provenance::sidecar_path(path);
    let dir = parent_dir(path);
    let _writing = write_lock();
    let npy = npy_temp_file(path, t)?;
    let mut json = tempfile::NamedTempFile::new_in(dir)
        .with_context(|| format!("cannot create a file in {}", dir.display()))?;
    json.write_all(record.to_json()?.as_bytes())
        .with_context(|| format!("cannot write {}", side.display()))?;
    make_readable(json.path())?;
    json.persist(&side)
        .with_context(|| format!("cannot write {}", side.display()))?;
    if let Err(e) = npy.persist(path) {
        let _ = std::fs::remove_file(&side);
        return Err(e).with_context(|| format!("cannot write {}", path.display()));
    }
    Ok(())
}

/// `t` written as float32 `.npy` into a temp file next to `path`.
fn npy_temp_file(path: &Path, t: &Tensor) -> Result<tempfile::NamedTempFile> {
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
    make_readable(tmp.path())?;
    Ok(tmp)
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

/// Parses a `.npy` file held in memory ([`crate::data::npy::parse_npy`]: format 1.0–3.0,
/// C or Fortran order, little- or big-endian) into a tensor of the stored kind. The
/// header's shape must account for the bytes that follow it.
pub fn npy_from_bytes(bytes: &[u8]) -> Result<Tensor> {
    crate::data::npy::parse_npy(bytes)?.to_tensor()
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

/// The largest image [`decode_image_bytes`] accepts, in pixels per side and bytes decoded.
const MAX_IMAGE_SIDE: u32 = 16_384;
const MAX_IMAGE_BYTES: u64 = 256 << 20;

/// Decodes PNG or JPEG bytes. Images larger than 16384 px a side or 256 MiB decoded are
/// refused before decoding, and an empty image is an error.
pub fn decode_image_bytes(bytes: &[u8]) -> Result<image::DynamicImage> {
    let mut reader = image::ImageReader::new(std::io::Cursor::new(bytes)).with_guessed_format()?;
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(MAX_IMAGE_SIDE);
    limits.max_image_height = Some(MAX_IMAGE_SIDE);
    limits.max_alloc = Some(MAX_IMAGE_BYTES);
    reader.limits(limits);
    let img = decoder_panics_as_errors(|| reader.decode())??;
    ensure!(img.width() > 0 && img.height() > 0, "the image is empty");
    Ok(img)
}

/// Runs a third-party decoder, turning a panic inside it into an error. The fuzz run found
/// a corrupt JPEG on which zune-jpeg 0.5.15 (image's JPEG decoder, the newest that image 0.25
/// takes) panics in its AVX2 IDCT: fuzz/regressions/jpeg/. The panic message is kept off
/// stderr for the calling thread only; other threads' panics print as usual.
fn decoder_panics_as_errors<T>(decode: impl FnOnce() -> T) -> Result<T> {
    use std::cell::Cell;
    thread_local!(static QUIET: Cell<bool> = const { Cell::new(false) });
    static HOOK: std::sync::Once = std::sync::Once::new();
    HOOK.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !QUIET.with(Cell::get) {
                default(info)
            }
        }));
    });
    QUIET.with(|q| q.set(true));
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(decode));
    QUIET.with(|q| q.set(false));
    result.map_err(|_| anyhow::anyhow!("the image decoder failed on corrupt data"))
}

/// Decodes a PNG or JPEG file ([`decode_image_bytes`]); the error names the file.
pub fn decode_image(path: impl AsRef<Path>) -> Result<image::DynamicImage> {
    let path = path.as_ref();
    ensure!(path.is_file(), "{} does not exist", path.display());
    let bytes = std::fs::read(path).with_context(|| format!("{}: cannot open image", path.display()))?;
    decode_image_bytes(&bytes).with_context(|| {
        format!(
            "{}: cannot decode image (corrupt, truncated or not a PNG/JPEG)",
            path.display()
        )
    })
}

/// A plain resize of a decoded image to `[1, C, H, W]` in `[0, 1]`: an exact (aspect
/// changing) resize, then grayscale or RGB. The notes say what was converted.
pub fn plain_resize(img: &image::DynamicImage, shape: [i64; 3]) -> Result<(Tensor, Vec<String>)> {
    let [c, h, w] = shape;
    ensure!(
        matches!(c, 1 | 3) && h > 0 && w > 0,
        "cannot make images of shape {shape:?} (need 1 or 3 channels)"
    );
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

/// Loads a PNG/JPEG as one image of the model's shape `[1, C, H, W]` in `[0, 1]` with a
/// plain resize ([`plain_resize`]); the second value says what was converted. See
/// [`load_images`] for preprocessing that matches the model's training data.
pub fn load_image(path: impl AsRef<Path>, shape: [i64; 3]) -> Result<(Tensor, Option<String>)> {
    let path = path.as_ref();
    let img = decode_image(path)?;
    let (t, notes) = plain_resize(&img, shape)?;
    let note = (!notes.is_empty()).then(|| format!("{}: {}", path.display(), notes.join(", ")));
    Ok((t, note))
}

/// File extensions taken from a directory.
const IMAGE_EXTENSIONS: [&str; 3] = ["png", "jpg", "jpeg"];

fn has_extension(path: &Path, exts: &[&str]) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| exts.iter().any(|x| e.eq_ignore_ascii_case(x)))
}

/// The files that inputs name, in order: a file as it is, a directory as every PNG/JPEG in it
/// (sorted by name), anything else as a glob pattern (`digits/*.png`, matches sorted).
pub fn expand_inputs(inputs: &[impl AsRef<Path>]) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for input in inputs {
        let p = input.as_ref();
        if p.is_file() {
            out.push(p.to_path_buf());
        } else if p.is_dir() {
            let mut found: Vec<PathBuf> = std::fs::read_dir(p)
                .with_context(|| format!("cannot list directory {}", p.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|f| f.is_file() && has_extension(f, &IMAGE_EXTENSIONS))
                .collect();
            ensure!(
                !found.is_empty(),
                "directory {} holds no PNG or JPEG images",
                p.display()
            );
            found.sort();
            out.extend(found);
        } else {
            let pattern = p.to_string_lossy();
            let is_glob = pattern.contains(['*', '?', '[']);
            ensure!(is_glob, "{} does not exist", p.display());
            let mut found: Vec<PathBuf> = glob::glob(&pattern)
                .with_context(|| format!("'{pattern}' is not a valid glob pattern"))?
                .filter_map(|m| m.ok())
                .filter(|f| f.is_file())
                .collect();
            ensure!(!found.is_empty(), "no file matches '{pattern}'");
            found.sort();
            out.extend(found);
        }
    }
    ensure!(!out.is_empty(), "no input images given");
    Ok(out)
}

/// A batch of images loaded from files for one model.
#[derive(Debug)]
pub struct ImageBatch {
    /// `[N, C, H, W]` in `[0, 1]`.
    pub images: Tensor,
    /// One name per image: the file, or `file.npy[i]` for a row of a `.npy` batch.
    pub names: Vec<String>,
    /// What preprocessing did to each image (empty when nothing).
    pub notes: Vec<String>,
    /// Warnings, each naming its image.
    pub warnings: Vec<String>,
}

/// Loads every image that `inputs` name ([`expand_inputs`]: files, directories, globs) as one
/// batch for the preprocessor's model: PNG/JPEG files through `pre`, `.npy` files as batches
/// of the model's shape. Every file is decoded before anything is returned, and a file that
/// fails to decode is named in the error.
pub fn load_images(inputs: &[impl AsRef<Path>], pre: &crate::preprocess::Preprocessor) -> Result<ImageBatch> {
    let files = expand_inputs(inputs)?;
    let progress = crate::progress::Progress::new("loading images", files.len() as u64);
    let (mut images, mut names, mut notes, mut warnings) = (vec![], vec![], vec![], vec![]);
    for (i, f) in files.iter().enumerate() {
        let name = f.display().to_string();
        if has_extension(f, &["npy"]) {
            let t = load_npy_images(f, pre.shape)?;
            for r in 0..t.size()[0] {
                names.push(format!("{name}[{r}]"));
                notes.push(String::new());
            }
            images.push(t);
        } else {
            let p = pre.load(f)?;
            if let Some(w) = p.warning {
                warnings.push(format!("{name}: {w}"));
            }
            images.push(p.image);
            names.push(name);
            notes.push(p.summary);
        }
        progress.update(i as u64 + 1, || f.display().to_string());
    }
    progress.finish();
    Ok(ImageBatch {
        images: Tensor::cat(&images, 0),
        names,
        notes,
        warnings,
    })
}
