//! A folder of images with one sub-folder per class, as torchvision's `ImageFolder` reads it.
//!
//! - Class names are the sorted sub-folder names; label `k` is the `k`-th name.
//! - `train/` and `test/` (or `val/`, `valid/`, `validation/`) sub-folders, each with the
//!   class folders, are two splits; otherwise the folder is one split.
//! - PNG and JPEG files are read (searched recursively inside each class folder, sorted by
//!   path); hidden files and files that are not images are skipped, as torchvision does;
//!   other image formats (BMP, GIF, WebP, TIFF, …) are an error that names the file.
//! - All images must have one size (no silent resizing: it would change what the model
//!   sees); the first image of another size is an error naming it.
//! - Grayscale images give 1 channel; if any image has colour, all are RGB (gray ones
//!   repeated into three channels). An alpha channel is dropped, as PIL's `convert("RGB")`
//!   in torchvision's loader does.

use super::Dataset;
use crate::progress::Progress;
use anyhow::{bail, ensure, Context, Result};
use std::path::{Path, PathBuf};
use tch::{Kind, Tensor};

const READ: [&str; 3] = ["png", "jpg", "jpeg"];
const UNSUPPORTED: [&str; 9] = ["bmp", "gif", "webp", "tif", "tiff", "ppm", "pgm", "pbm", "heic"];
/// The names a held-out split's folder may have, in order of preference.
const TEST_NAMES: [&str; 4] = ["test", "val", "valid", "validation"];

/// Decodes a PNG or JPEG from its bytes (with [`crate::io::decode_image_bytes`]'s size limits).
pub fn decode_image(bytes: &[u8]) -> Result<image::DynamicImage> {
    let format = image::guess_format(bytes).context("not a PNG or JPEG image")?;
    ensure!(
        matches!(format, image::ImageFormat::Png | image::ImageFormat::Jpeg),
        "{format:?} images are not supported (convert to PNG)"
    );
    crate::io::decode_image_bytes(bytes)
}

fn extension(p: &Path) -> String {
    p.extension()
        .and_then(|e| e.to_str())
        .unwrap_or_default()
        .to_ascii_lowercase()
}

fn is_hidden(p: &Path) -> bool {
    p.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with('.'))
}

fn sorted_entries(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot list {}", dir.display()))?
        .map(|e| e.map(|e| e.path()))
        .collect::<std::io::Result<_>>()
        .with_context(|| format!("cannot list {}", dir.display()))?;
    v.retain(|p| !is_hidden(p));
    v.sort();
    Ok(v)
}

/// The image files under `dir`, recursively: a folder's own files (sorted) before those of
/// its sub-folders, in torchvision's order.
fn image_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let (dirs, files): (Vec<PathBuf>, Vec<PathBuf>) =
        sorted_entries(dir)?.into_iter().partition(|p| p.is_dir());
    let mut out = Vec::new();
    for p in files {
        let ext = extension(&p);
        if READ.contains(&ext.as_str()) {
            out.push(p);
        } else if UNSUPPORTED.contains(&ext.as_str()) {
            bail!(
                "{}: {ext} images are not supported; convert them to PNG",
                p.display()
            );
        }
    }
    for d in dirs {
        out.extend(image_files(&d)?);
    }
    Ok(out)
}

/// The class folders of a split: its sub-folders, sorted.
fn class_dirs(dir: &Path) -> Result<Vec<PathBuf>> {
    Ok(sorted_entries(dir)?.into_iter().filter(|p| p.is_dir()).collect())
}

fn has_images(dir: &Path) -> bool {
    image_files(dir).is_ok_and(|f| !f.is_empty())
}

/// Whether `dir` looks like an image folder: a class sub-folder (or `train/`) with images.
pub(crate) fn is_image_folder(dir: &Path) -> bool {
    let root = if dir.join("train").is_dir() {
        dir.join("train")
    } else {
        dir.to_path_buf()
    };
    class_dirs(&root).is_ok_and(|c| c.iter().any(|d| has_images(d)))
}

/// The train and test folders: `(train, Some(test))` for a split layout, `(dir, None)` otherwise.
pub(crate) fn split_dirs(dir: &Path) -> (PathBuf, Option<PathBuf>) {
    let train = dir.join("train");
    let test = TEST_NAMES.iter().map(|n| dir.join(n)).find(|d| d.is_dir());
    match (train.is_dir(), test) {
        (true, Some(test)) => (train, Some(test)),
        (true, None) => (train, None),
        _ => (dir.to_path_buf(), None),
    }
}

/// Every image of a split with its label; `classes` are the class names to use (those of
/// the train split), and each class folder must be one of them.
fn list_split(dir: &Path, classes: &[String]) -> Result<Vec<(PathBuf, i64)>> {
    let mut out = Vec::new();
    for d in class_dirs(dir)? {
        let name = d
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_string();
        let label = classes.iter().position(|c| *c == name).with_context(|| {
            format!(
                "{}: class folder '{name}' is not one of the training classes {classes:?}",
                d.display()
            )
        })?;
        let files = image_files(&d)?;
        ensure!(
            !files.is_empty(),
            "{}: class folder '{name}' holds no PNG or JPEG images",
            d.display()
        );
        out.extend(files.into_iter().map(|f| (f, label as i64)));
    }
    ensure!(!out.is_empty(), "{}: no class folders with images", dir.display());
    Ok(out)
}

/// The class names of a split folder: its sorted sub-folder names.
pub(crate) fn class_names(dir: &Path) -> Result<Vec<String>> {
    let names: Vec<String> = class_dirs(dir)?
        .iter()
        .filter_map(|d| d.file_name().and_then(|n| n.to_str()).map(str::to_string))
        .collect();
    ensure!(
        !names.is_empty(),
        "{}: no class sub-folders (an image folder has one sub-folder of images per class)",
        dir.display()
    );
    Ok(names)
}

/// Decodes `files`, checks they share one size, and stacks them as `[N, C, H, W]`.
fn read_images(files: &[(PathBuf, i64)], label: &str) -> Result<Tensor> {
    let progress = if files.len() >= 2000 {
        Progress::new(label, files.len() as u64)
    } else {
        Progress::hidden()
    };
    let mut images = Vec::with_capacity(files.len());
    let mut size = None;
    for (i, (f, _)) in files.iter().enumerate() {
        let bytes = std::fs::read(f).with_context(|| format!("cannot read {}", f.display()))?;
        let img = decode_image(&bytes).with_context(|| format!("{}: cannot decode image", f.display()))?;
        let dims = (img.width(), img.height());
        match size {
            None => size = Some((dims, f.clone())),
            Some((want, ref first)) => ensure!(
                dims == want,
                "{}: image is {}x{}, but {} is {}x{}; all images of a folder must have one size",
                f.display(),
                dims.0,
                dims.1,
                first.display(),
                want.0,
                want.1
            ),
        }
        images.push(img);
        progress.update(i as u64 + 1, String::new);
    }
    progress.finish();
    let colour = images.iter().any(|i| i.color().has_color());
    let ((w, h), _) = size.context("no images")?;
    let c = if colour { 3 } else { 1 };
    let mut bytes = Vec::with_capacity(images.len() * (w * h) as usize * c);
    for img in &images {
        if colour {
            bytes.extend_from_slice(img.to_rgb8().as_raw());
        } else {
            bytes.extend_from_slice(img.to_luma8().as_raw());
        }
    }
    Ok(Tensor::from_slice(&bytes)
        .view([images.len() as i64, h as i64, w as i64, c as i64])
        .permute([0, 3, 1, 2])
        .contiguous()
        .to_kind(Kind::Float)
        / 255.0)
}

fn read_split(dir: &Path, classes: &[String], label: &str) -> Result<Dataset> {
    let files = list_split(dir, classes)?;
    let images = read_images(&files, label)?;
    let labels: Vec<i64> = files.iter().map(|(_, l)| *l).collect();
    Ok(Dataset {
        images,
        labels: Tensor::from_slice(&labels),
        class_names: classes.to_vec(),
    })
}

/// Reads an image folder: `(train, Some(test))` for a `train/` + `test/` layout, else
/// `(all, None)`.
pub(crate) fn load_image_folder(dir: &Path) -> Result<(Dataset, Option<Dataset>)> {
    let (train_dir, test_dir) = split_dirs(dir);
    let classes = class_names(&train_dir)?;
    let train = read_split(&train_dir, &classes, "images")?;
    let test = match test_dir {
        Some(t) => {
            let test = read_split(&t, &classes, "test images")?;
            let (a, b) = (test.input_shape(), train.input_shape());
            ensure!(
                a[1..] == b[1..],
                "{}: test images are {}x{}, train images {}x{}",
                t.display(),
                a[2],
                a[1],
                b[2],
                b[1]
            );
            // One split may be all gray while the other has colour.
            Some(test.to_channels(b[0])?)
        }
        None => None,
    };
    Ok((train, test))
}

/// Writes `data` as an image folder, `dir/CLASS/NNNNN.png` (a folder for each class that
/// has images), that [`super::open`] reads back
/// (8-bit PNGs, so values are rounded to multiples of 1/255). Each file is written atomically.
pub fn save_image_folder(data: &Dataset, dir: &Path) -> Result<()> {
    let [c, h, w] = data.input_shape();
    ensure!(c == 1 || c == 3, "images must have 1 or 3 channels, not {c}");
    for name in &data.class_names {
        ensure!(
            !name.is_empty() && !name.contains(['/', '\\']) && !name.starts_with('.'),
            "class name '{name}' cannot be a folder name"
        );
    }
    let bytes = (data.images.clamp(0.0, 1.0) * 255.0)
        .round()
        .to_kind(Kind::Uint8)
        .permute([0, 2, 3, 1])
        .contiguous();
    let labels = Vec::<i64>::try_from(&data.labels)?;
    let per = (c * h * w) as usize;
    let flat = Vec::<u8>::try_from(&bytes.flatten(0, -1))?;
    for (i, &l) in labels.iter().enumerate() {
        let class = data
            .class_names
            .get(l as usize)
            .with_context(|| format!("label {l} has no class name"))?;
        let class_dir = dir.join(class);
        std::fs::create_dir_all(&class_dir)
            .with_context(|| format!("cannot create {}", class_dir.display()))?;
        let px = flat[i * per..(i + 1) * per].to_vec();
        let img: image::DynamicImage = if c == 1 {
            image::GrayImage::from_raw(w as u32, h as u32, px).map(Into::into)
        } else {
            image::RgbImage::from_raw(w as u32, h as u32, px).map(Into::into)
        }
        .context("image buffer does not match its size")?;
        let mut png = std::io::Cursor::new(Vec::new());
        img.write_to(&mut png, image::ImageFormat::Png)?;
        crate::io::write_atomic(class_dir.join(format!("{i:05}.png")), png.get_ref())?;
    }
    Ok(())
}
