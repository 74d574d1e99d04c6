//! Your own images in a model's input format.
//!
//! A model only understands inputs that look like its training data. A digit drawn with dark
//! ink on white paper, 280×280 and off-centre, is nothing like an MNIST digit (light ink on
//! black, 20 px tall, centred by mass in 28×28), and a naive resize feeds the model nonsense.
//! A [`Preprocessor`] brings an image into the model's format the way its data set was made:
//!
//! - **MNIST** (LeCun et al.): ink made bright on a dark background; the paper's background
//!   and uneven lighting removed; cropped to the ink; the longer side scaled to 20 px with
//!   antialiasing, keeping the aspect ratio; placed in 28×28 so that the centre of mass lands
//!   on pixel (14, 14).
//! - **Fashion-MNIST** (Xiao et al. 2017, §2): edges close to the corner colour trimmed (5 %
//!   fuzz); the longer edge resized to 28 by subsampling; sharpened with a 1×1.0 Gaussian
//!   operator, more near outlines; the shorter edge extended to 28, centred; negated; 8-bit
//!   grayscale.
//! - **Colour and other models**: an aspect-preserving resize of the shorter side and a
//!   centre crop (torchvision's `Resize` + `CenterCrop`).
//!
//! [`Preprocess::Auto`] picks the pipeline from the model's data set and leaves images that
//! are already in the model's format untouched; [`Preprocess::None`] is a plain resize, with
//! a warning when the image is far from the training data.
//!
//! Every step is a small public function on `[C, H, W]` f32 tensors in `[0, 1]`, and
//! [`Prepared::steps`] keeps each intermediate image for display ([`steps_figure`]).

use crate::data::{DatasetName, CIFAR10_CLASSES, FASHION_MNIST_CLASSES};
use crate::model::Classifier;
use anyhow::{bail, ensure, Context, Result};
use image::DynamicImage;
use std::path::Path;
use tch::{Device, Kind, Tensor};

/// Rec. 709 luma weights, the `image` crate's grayscale conversion.
const LUMA: [f64; 3] = [0.2126, 0.7152, 0.0722];

/// The MNIST digit box: the longer side of the ink is scaled to this many pixels.
pub const MNIST_BOX: i64 = 20;
/// The centre of mass of an MNIST digit, `(row, column)` in pixel indices of the 28×28 field
/// (the bundled test digits: every one within 0.5 px of it).
pub const MNIST_CENTRE: (f64, f64) = (14.0, 14.0);
/// Zalando's front-look thumbnails that Fashion-MNIST was made from were 51×73.
pub const FASHION_THUMBNAIL: i64 = 73;
/// Fashion-MNIST's trim fuzz: 5 % of the largest possible intensity distance.
pub const FASHION_TRIM_FUZZ: f64 = 0.05;
/// A background (median of the image's outer frame) above this is "light".
pub const LIGHT_BACKGROUND: f64 = 0.5;
/// Mean pixel value of the training images (`tests/preprocess.rs` recomputes both).
pub const MNIST_MEAN: f64 = 0.1307;
pub const FASHION_MNIST_MEAN: f64 = 0.2860;

/// What to do with an image before it reaches the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Preprocess {
    /// The model's own convention, unless the image is already in the model's format.
    #[default]
    Auto,
    /// LeCun's MNIST normalization (1×28×28 models only).
    Mnist,
    /// Zalando's Fashion-MNIST conversion (1×28×28 models only).
    FashionMnist,
    /// A plain resize to the model's shape (and a warning when that looks wrong).
    None,
}

impl Preprocess {
    pub fn as_str(self) -> &'static str {
        match self {
            Preprocess::Auto => "auto",
            Preprocess::Mnist => "mnist",
            Preprocess::FashionMnist => "fashion-mnist",
            Preprocess::None => "none",
        }
    }
}

impl std::str::FromStr for Preprocess {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().replace('_', "-").as_str() {
            "auto" => Ok(Preprocess::Auto),
            "mnist" => Ok(Preprocess::Mnist),
            "fashion-mnist" | "fashion" => Ok(Preprocess::FashionMnist),
            "none" => Ok(Preprocess::None),
            other => bail!("unknown preprocessing '{other}': expected auto, mnist, fashion-mnist or none"),
        }
    }
}

impl std::fmt::Display for Preprocess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a model's training images were made, which decides how to prepare new ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Convention {
    Mnist,
    FashionMnist,
    /// Photographs (CIFAR-10, unknown colour models): resize and centre crop.
    Natural,
}

impl Convention {
    pub fn for_dataset(d: DatasetName) -> Convention {
        match d {
            DatasetName::Mnist => Convention::Mnist,
            DatasetName::FashionMnist => Convention::FashionMnist,
            DatasetName::Cifar10 => Convention::Natural,
        }
    }

    /// The model's data set when it is known (built-in models), else guessed from its class
    /// names; any other 1×28×28 model is taken to be MNIST-like.
    pub fn for_model(model: &dyn Classifier) -> Convention {
        if let Some(d) = model.dataset() {
            return Convention::for_dataset(d);
        }
        let names = model.class_names();
        let same =
            |known: &[&str]| names.len() == known.len() && names.iter().zip(known).all(|(a, b)| a == b);
        if same(&FASHION_MNIST_CLASSES) {
            Convention::FashionMnist
        } else if same(&CIFAR10_CLASSES) || model.input_shape() != [1, 28, 28] {
            Convention::Natural
        } else {
            Convention::Mnist
        }
    }

    fn training_mean(self) -> Option<f64> {
        match self {
            Convention::Mnist => Some(MNIST_MEAN),
            Convention::FashionMnist => Some(FASHION_MNIST_MEAN),
            Convention::Natural => None,
        }
    }
}

/// One intermediate image of a pipeline, `[C, H, W]`, for display.
#[derive(Debug)]
pub struct Step {
    pub name: String,
    pub image: Tensor,
}

/// One image made ready for a model.
#[derive(Debug)]
pub struct Prepared {
    /// The model input `[1, C, H, W]` in `[0, 1]`.
    pub image: Tensor,
    /// What was done, e.g. `inverted (light background), cropped 212×260 → 16×20, centred`;
    /// empty when the image was used as it is.
    pub summary: String,
    /// Set when the result looks unlike the model's training data (`none` only).
    pub warning: Option<String>,
    /// The decoded image, each intermediate image and the result.
    pub steps: Vec<Step>,
}

/// Brings images into one model's input format.
#[derive(Debug, Clone, Copy)]
pub struct Preprocessor {
    pub mode: Preprocess,
    pub convention: Convention,
    /// The model's `[C, H, W]`.
    pub shape: [i64; 3],
}

impl Preprocessor {
    /// Fails when `mode` cannot produce `shape` (MNIST pipelines make 1×28×28 only).
    pub fn new(mode: Preprocess, convention: Convention, shape: [i64; 3]) -> Result<Preprocessor> {
        ensure!(
            shape.iter().all(|&d| d > 0) && (shape[0] == 1 || shape[0] == 3),
            "cannot make images of shape {shape:?}: expected [1 or 3, H, W]"
        );
        if matches!(mode, Preprocess::Mnist | Preprocess::FashionMnist) {
            ensure!(
                shape == [1, 28, 28],
                "--preprocess {mode} makes 1x28x28 images, but the model takes {}x{}x{}",
                shape[0],
                shape[1],
                shape[2]
            );
        }
        Ok(Preprocessor {
            mode,
            convention,
            shape,
        })
    }

    /// The preprocessing for `model`'s inputs.
    pub fn for_model(model: &dyn Classifier, mode: Preprocess) -> Result<Preprocessor> {
        Preprocessor::new(mode, Convention::for_model(model), model.input_shape())
    }

    /// Reads an image file and prepares it; errors name the file.
    pub fn load(&self, path: impl AsRef<Path>) -> Result<Prepared> {
        let path = path.as_ref();
        let img = crate::io::decode_image(path)?;
        self.apply(&img).with_context(|| format!("{}", path.display()))
    }

    /// Prepares a decoded image.
    pub fn apply(&self, img: &DynamicImage) -> Result<Prepared> {
        let [_, h, w] = self.shape;
        let same_size = (img.height() as i64, img.width() as i64) == (h, w);
        let pipeline = match self.mode {
            Preprocess::None => None,
            Preprocess::Mnist => Some(Convention::Mnist),
            Preprocess::FashionMnist => Some(Convention::FashionMnist),
            Preprocess::Auto => {
                let in_format = same_size
                    && (self.convention == Convention::Natural
                        || background_level(&to_grayscale(&image_to_tensor(img))) <= LIGHT_BACKGROUND);
                (!in_format).then_some(self.convention)
            }
        };
        match pipeline {
            None => self.plain(img),
            Some(c) => {
                let x = image_to_tensor(img);
                let mut steps = vec![Step {
                    name: format!("input {}×{}", img.width(), img.height()),
                    image: x.shallow_clone(),
                }];
                let (out, done) = match c {
                    Convention::Mnist => mnist(&x, &mut steps)?,
                    Convention::FashionMnist => fashion_mnist(&x, &mut steps)?,
                    Convention::Natural => resize_and_centre_crop(&x, self.shape, &mut steps),
                };
                Ok(Prepared {
                    image: out.unsqueeze(0),
                    summary: done.join(", "),
                    warning: None,
                    steps,
                })
            }
        }
    }

    /// `none`, and `auto` on an image already in format: exactly the plain loader's result.
    fn plain(&self, img: &DynamicImage) -> Result<Prepared> {
        let (t, notes) = crate::io::plain_resize(img, self.shape)?;
        let warning = match self.mode {
            Preprocess::None => self.training_data_warning(&t.get(0)),
            _ => None,
        };
        let steps = vec![Step {
            name: "as loaded".into(),
            image: t.get(0),
        }];
        Ok(Prepared {
            image: t,
            summary: notes.join(", "),
            warning,
            steps,
        })
    }

    /// A warning when a plainly resized image is far from the model's training data.
    fn training_data_warning(&self, x: &Tensor) -> Option<String> {
        let train_mean = self.convention.training_mean()?;
        let gray = to_grayscale(x);
        let bg = background_level(&gray);
        let mean = gray.mean(Kind::Float).double_value(&[]);
        if bg > LIGHT_BACKGROUND {
            Some(format!(
                "the image has a light background ({bg:.2}) but the model was trained on light strokes on black; it will likely misread it (try --preprocess auto)"
            ))
        } else if (mean - train_mean).abs() > 0.35 {
            Some(format!(
                "the image's mean value {mean:.2} is far from the training data's {train_mean:.2} (try --preprocess auto)"
            ))
        } else {
            None
        }
    }
}

// ---------------------------------------------------------------------------------------
// Pipelines

/// LeCun's MNIST normalization of any grayscale or colour image `[C, H, W]`, recording each
/// step; returns the 1×28×28 digit and what was done.
fn mnist(x: &Tensor, steps: &mut Vec<Step>) -> Result<(Tensor, Vec<String>)> {
    let mut done = Vec::new();
    let gray = to_grayscale(x);
    let (ink, inverted) = ink_on_black(&gray);
    done.push(polarity_note(inverted));
    done.push("evened the lighting".into());
    push(steps, "ink on black, lighting evened", &ink);
    let ink = stretch_ink(&ink)?;
    push(steps, "paper removed", &ink);
    let [top, left, h, w] = ink_box(&ink).context("no ink found: the image looks blank")?;
    let crop = ink.narrow(1, top, h).narrow(2, left, w);
    push(steps, "cropped to the ink", &crop);
    let boxed = fit_longer_side(&crop, MNIST_BOX);
    let s = boxed.size();
    done.push(format!("cropped {w}×{h} → {}×{}", s[2], s[1]));
    push(steps, "longer side 20 px", &boxed);
    let out = centre_by_mass(&boxed, 28, MNIST_CENTRE)?;
    done.push("centred".into());
    push(steps, "centred by mass in 28×28", &out);
    Ok((out, done))
}

/// Fashion-MNIST's conversion (Xiao et al. 2017, §2) of a product photo `[C, H, W]`.
///
/// Zalando's thumbnails were shot on white; a photo's background is brought to white first
/// (evening out the lighting), and a photo larger than a thumbnail is first shrunk to one
/// with antialiasing, since subsampling a large photo directly would alias.
fn fashion_mnist(x: &Tensor, steps: &mut Vec<Step>) -> Result<(Tensor, Vec<String>)> {
    let mut done = Vec::new();
    let dark = background_level(&to_grayscale(x)) <= LIGHT_BACKGROUND;
    // The pipeline expects a light background; a dark one is flipped here and not negated later.
    let x = if dark { invert(x) } else { x.shallow_clone() };
    let x = whiten_background(&x);
    done.push("evened the lighting".into());
    push(steps, "background made white", &x);
    let (trimmed, [_, _, h, w]) =
        trim_background(&x, FASHION_TRIM_FUZZ).context("no object found: the image looks blank")?;
    push(steps, "trimmed (5% fuzz)", &trimmed);
    let thumb = if h.max(w) > FASHION_THUMBNAIL {
        fit_longer_side(&trimmed, FASHION_THUMBNAIL)
    } else {
        trimmed
    };
    let small = subsample_longer_side(&thumb, 28);
    let s = small.size();
    done.push(format!("trimmed {w}×{h} → {}×{}", s[2], s[1]));
    push(steps, "longer edge 28 (subsampled)", &small);
    let sharp = adaptive_sharpen(&small);
    push(steps, "sharpened near outlines", &sharp);
    let square = extend_to_square(&sharp, 28, 1.0);
    push(steps, "extended to 28×28", &square);
    let out = quantize_8bit(&to_grayscale(&invert(&square)));
    done.push(if dark {
        "kept the dark background".into()
    } else {
        "negated".into()
    });
    push(steps, "negated, 8-bit grayscale", &out);
    Ok((out, done))
}

/// Aspect-preserving resize of the shorter side to the model's and a centre crop, in the
/// model's number of channels: torchvision's `Resize(min(H, W))` (the longer side truncated
/// to whole pixels, as torchvision does) then `CenterCrop((H, W))`.
fn resize_and_centre_crop(x: &Tensor, shape: [i64; 3], steps: &mut Vec<Step>) -> (Tensor, Vec<String>) {
    let [c, h, w] = shape;
    let s = x.size();
    let (ih, iw) = (s[1], s[2]);
    let side = h.min(w);
    let (nh, nw) = if ih <= iw {
        (side, ((side as f64 * iw as f64 / ih as f64) as i64).max(w))
    } else {
        (((side as f64 * ih as f64 / iw as f64) as i64).max(h), side)
    };
    let (nh, nw) = (nh.max(h), nw.max(w));
    let resized = resize(x, nh, nw);
    push(steps, "shorter side resized", &resized);
    let (top, left) = (
        round_half_even((nh - h) as f64 / 2.0),
        round_half_even((nw - w) as f64 / 2.0),
    );
    let crop = resized.narrow(1, top, h).narrow(2, left, w);
    let out = match (c, crop.size()[0]) {
        (1, 3) => to_grayscale(&crop),
        (3, 1) => crop.expand([3, h, w], false).contiguous(),
        _ => crop,
    };
    push(steps, "centre crop", &out);
    (
        out,
        vec![format!(
            "resized {iw}×{ih} → {nw}×{nh}, centre-cropped to {w}×{h}"
        )],
    )
}

/// Python's `round`: halves go to the even neighbour.
fn round_half_even(v: f64) -> i64 {
    let r = v.round();
    if (v - v.trunc()).abs() == 0.5 && r as i64 % 2 != 0 {
        r as i64 - v.signum() as i64
    } else {
        r as i64
    }
}

fn push(steps: &mut Vec<Step>, name: &str, image: &Tensor) {
    steps.push(Step {
        name: name.to_string(),
        image: image.shallow_clone(),
    });
}

fn polarity_note(inverted: bool) -> String {
    if inverted {
        "inverted (light background)".into()
    } else {
        "kept the dark background".into()
    }
}

// ---------------------------------------------------------------------------------------
// Steps: small pieces on [C, H, W] f32 tensors in [0, 1]

/// A decoded image as `[C, H, W]` f32 in `[0, 1]`: one channel for grayscale files, three
/// for colour; transparent pixels are laid over white paper.
pub fn image_to_tensor(img: &DynamicImage) -> Tensor {
    let (w, h) = (img.width() as i64, img.height() as i64);
    let rgba = Tensor::from_slice(img.to_rgba32f().as_raw())
        .view([h, w, 4])
        .permute([2, 0, 1]);
    let alpha = rgba.narrow(0, 3, 1);
    let rgb = rgba.narrow(0, 0, 3) * &alpha - &alpha + 1.0;
    let x = if img.color().has_color() {
        rgb
    } else {
        rgb.narrow(0, 0, 1)
    };
    x.clamp(0.0, 1.0).contiguous()
}

/// `Y = 0.2126 R + 0.7152 G + 0.0722 B` (Rec. 709); one channel is returned as it is.
pub fn to_grayscale(x: &Tensor) -> Tensor {
    if x.size()[0] == 1 {
        return x.shallow_clone();
    }
    let wts = Tensor::from_slice(&LUMA.map(|v| v as f32)).view([3, 1, 1]);
    (x * wts).sum_dim_intlist([0i64].as_slice(), true, Kind::Float)
}

/// The background's brightness: the median of the outer frame (a ring 1/28 of the shorter
/// side wide) of a grayscale image `[1, H, W]`.
pub fn background_level(gray: &Tensor) -> f64 {
    let s = gray.size();
    let (h, w) = (s[1], s[2]);
    let r = (h.min(w) / 28).max(1).min(h.min(w));
    let parts = [
        gray.narrow(1, 0, r),
        gray.narrow(1, h - r, r),
        gray.narrow(2, 0, r),
        gray.narrow(2, w - r, r),
    ];
    let frame: Vec<Tensor> = parts.iter().map(|p| p.reshape([-1])).collect();
    Tensor::cat(&frame, 0).median().double_value(&[])
}

/// The paper's brightness at every pixel of a dark-on-light grayscale image `[1, H, W]`:
/// a quadratic surface `b(u, v) = c₀ + c₁u + c₂v + c₃u² + c₄uv + c₅v²` fitted by least
/// squares to the pixels that are not ink: refitted to the pixels above the fit, then to those
/// within 2.5 robust σ below it. Smooth uneven lighting (a lamp, vignetting) is what it
/// models; ink may cover a large part of the image, not most of it.
pub fn paper_lighting(gray: &Tensor) -> Tensor {
    let s = gray.size();
    let (h, w) = (s[1], s[2]);
    // Lighting is smooth: fit on a copy of at most 64 px per side.
    let f = 64.0 / h.max(w) as f64;
    let (sh, sw) = if f < 1.0 {
        (
            ((h as f64 * f).round() as i64).max(1),
            ((w as f64 * f).round() as i64).max(1),
        )
    } else {
        (h, w)
    };
    let small = gray
        .unsqueeze(0)
        .adaptive_avg_pool2d([sh, sw])
        .reshape([-1])
        .to_kind(Kind::Double);
    let basis = quadratic_basis(sh, sw);
    let mut keep = Tensor::ones([sh * sw], (Kind::Double, Device::Cpu));
    let mut coef = Tensor::zeros([6, 1], (Kind::Double, Device::Cpu));
    for round in 0..8 {
        let wa = &basis * keep.unsqueeze(1);
        let ata = wa.tr().mm(&basis) + Tensor::eye(6, (Kind::Double, Device::Cpu)) * 1e-9;
        let aty = wa.tr().mm(&small.unsqueeze(1));
        match Tensor::f_linalg_solve(&ata, &aty, true) {
            Ok(c) if c.isfinite().all().int64_value(&[]) == 1 => coef = c,
            _ => break,
        }
        let resid = &small - basis.mm(&coef).squeeze_dim(1);
        // Ink only ever lies below the paper: the first rounds keep what is above the fit
        // (climbing out of a fit dragged down by a large dark object), the later ones keep
        // the paper's noise band, its σ estimated from the residuals above the fit.
        let above = resid.masked_select(&resid.gt(0.0));
        let sigma = if above.numel() > 0 {
            above.median().double_value(&[]) * 1.4826
        } else {
            0.0
        };
        let tolerance = if round < 3 { 0.0 } else { 2.5 * sigma.max(0.01) };
        let next = resid.ge(-tolerance).to_kind(Kind::Double);
        if next.sum(Kind::Double).double_value(&[]) < 6.0 {
            break;
        }
        keep = next;
    }
    quadratic_basis(h, w)
        .mm(&coef)
        .view([1, h, w])
        .to_kind(Kind::Float)
        .clamp(0.02, 1.0)
}

/// `[H·W, 6]` rows `(1, u, v, u², uv, v²)` with `u, v ∈ [-1, 1]` across the columns and rows.
fn quadratic_basis(h: i64, w: i64) -> Tensor {
    let opts = (Kind::Double, Device::Cpu);
    let lin = |n: i64| {
        if n > 1 {
            Tensor::linspace(-1.0, 1.0, n, opts)
        } else {
            Tensor::zeros([1], opts)
        }
    };
    let v = lin(h).view([h, 1]).expand([h, w], false).reshape([-1]);
    let u = lin(w).view([1, w]).expand([h, w], false).reshape([-1]);
    Tensor::stack(
        &[
            u.ones_like(),
            u.shallow_clone(),
            v.shallow_clone(),
            &u * &u,
            &u * &v,
            &v * &v,
        ],
        1,
    )
}

/// The ink of a grayscale image `[1, H, W]` as bright strokes on black:
/// `ink = clamp(1 − p / b(p), 0, 1)` for the dark-on-light version `p` of the image and its
/// paper brightness `b` ([`paper_lighting`]). The flag says whether the image was inverted
/// (its background was light).
pub fn ink_on_black(gray: &Tensor) -> (Tensor, bool) {
    let light = background_level(gray) > LIGHT_BACKGROUND;
    let paper = if light { gray.shallow_clone() } else { invert(gray) };
    let lighting = paper_lighting(&paper);
    (invert(&(paper / lighting)).clamp(0.0, 1.0), light)
}

/// Divides every channel of a light-background image `[C, H, W]` by its paper brightness,
/// so that the background becomes white.
pub fn whiten_background(x: &Tensor) -> Tensor {
    let lighting = paper_lighting(&to_grayscale(x));
    (x / lighting).clamp(0.0, 1.0)
}

/// Removes what is left of the paper and makes the strokes fully bright:
/// `(ink − floor) / (level − floor)`, clamped to `[0, 1]`, where `level` is the median of the
/// pixels above Otsu's threshold (the strokes) and `floor` is 4 robust σ above the median of
/// the pixels below it (the paper's noise, JPEG artefacts). Fails on a blank image.
pub fn stretch_ink(ink: &Tensor) -> Result<Tensor> {
    let t = otsu_threshold(ink);
    let strokes = ink.masked_select(&ink.gt(t));
    let paper = ink.masked_select(&ink.le(t));
    ensure!(
        strokes.numel() > 0 && paper.numel() > 0,
        "no ink found: the image looks blank"
    );
    let level = strokes.median().double_value(&[]);
    let pm = paper.median().double_value(&[]);
    let sigma = (&paper - pm).abs().median().double_value(&[]) * 1.4826;
    let floor = (pm + 4.0 * sigma).max(0.25 * t).min(0.6 * t);
    ensure!(
        level - floor > 0.1,
        "no ink found: the image looks blank (stroke level {level:.2}, paper {floor:.2})"
    );
    Ok(((ink - floor) / (level - floor)).clamp(0.0, 1.0))
}

/// Otsu's threshold of the values of `x` in `[0, 1]` (256 bins): the split that maximizes
/// the between-class variance `ω₀ω₁(μ₀ − μ₁)²`.
pub fn otsu_threshold(x: &Tensor) -> f64 {
    let bins = (x * 256.0)
        .floor()
        .clamp(0.0, 255.0)
        .to_kind(Kind::Int64)
        .reshape([-1]);
    let hist =
        Vec::<f64>::try_from(&bins.bincount(None::<Tensor>, 256).to_kind(Kind::Double)).unwrap_or_default();
    let total: f64 = hist.iter().sum();
    let centre = |i: usize| (i as f64 + 0.5) / 256.0;
    let sum_all: f64 = hist.iter().enumerate().map(|(i, n)| n * centre(i)).sum();
    let (mut w0, mut sum0, mut best, mut t) = (0.0, 0.0, -1.0, 0.5);
    for (i, n) in hist.iter().enumerate().take(255) {
        w0 += n;
        sum0 += n * centre(i);
        let w1 = total - w0;
        if w0 == 0.0 || w1 == 0.0 {
            continue;
        }
        let (m0, m1) = (sum0 / w0, (sum_all - sum0) / w1);
        let between = w0 * w1 * (m0 - m1).powi(2);
        if between > best {
            best = between;
            t = (i as f64 + 1.0) / 256.0;
        }
    }
    t
}

/// The bounding box `[top, left, height, width]` of the strokes of a stretched ink image
/// `[1, H, W]` ([`stretch_ink`]): the rows and columns that hold a pixel of at least half the
/// stroke level, so that faint left-overs of the paper do not stretch the box. `None` when
/// there is no such pixel.
pub fn ink_box(ink: &Tensor) -> Option<[i64; 4]> {
    let strokes = ink.ge(0.5).any_dims([0i64].as_slice(), false);
    let span = |hits: Tensor| -> Option<(i64, i64)> {
        let v = Vec::<bool>::try_from(&hits).ok()?;
        let first = v.iter().position(|&b| b)? as i64;
        let last = v.iter().rposition(|&b| b)? as i64;
        Some((first, last - first + 1))
    };
    let (top, h) = span(strokes.any_dims([1i64].as_slice(), false))?;
    let (left, w) = span(strokes.any_dims([0i64].as_slice(), false))?;
    Some([top, left, h, w])
}

/// Antialiased bilinear resize of `[C, H, W]` to `h × w` (as torchvision's
/// `resize(antialias=True)`).
pub fn resize(x: &Tensor, h: i64, w: i64) -> Tensor {
    x.unsqueeze(0)
        .internal_upsample_bilinear2d_aa([h, w], false, None, None)
        .squeeze_dim(0)
        .clamp(0.0, 1.0)
}

/// Scales `[C, H, W]` so that its longer side is `side` pixels, keeping the aspect ratio
/// (antialiased).
pub fn fit_longer_side(x: &Tensor, side: i64) -> Tensor {
    let s = x.size();
    let (h, w) = (s[1] as f64, s[2] as f64);
    let f = side as f64 / h.max(w);
    let nh = ((h * f).round() as i64).clamp(1, side);
    let nw = ((w * f).round() as i64).clamp(1, side);
    resize(x, nh, nw)
}

/// The centre of mass `(row, column)` of `[1, H, W]` in pixel indices; `None` if it is all 0.
pub fn centre_of_mass(x: &Tensor) -> Option<(f64, f64)> {
    let s = x.size();
    let (h, w) = (s[1], s[2]);
    let m = x.sum(Kind::Double).double_value(&[]);
    if m <= 0.0 {
        return None;
    }
    let plane = x.sum_dim_intlist([0i64].as_slice(), false, Kind::Double);
    let rows = Tensor::arange(h, (Kind::Double, Device::Cpu));
    let cols = Tensor::arange(w, (Kind::Double, Device::Cpu));
    let cy = (plane.sum_dim_intlist([1i64].as_slice(), false, Kind::Double) * rows).sum(Kind::Double);
    let cx = (plane.sum_dim_intlist([0i64].as_slice(), false, Kind::Double) * cols).sum(Kind::Double);
    Some((cy.double_value(&[]) / m, cx.double_value(&[]) / m))
}

/// Places `[C, h, w]` on a black `size × size` canvas, shifted by whole pixels so that its
/// centre of mass lands within 0.5 px of `centre` (as MNIST did), but never past the edge.
pub fn centre_by_mass(x: &Tensor, size: i64, centre: (f64, f64)) -> Result<Tensor> {
    let s = x.size();
    let (c, h, w) = (s[0], s[1], s[2]);
    ensure!(
        h <= size && w <= size,
        "a {w}×{h} image does not fit in {size}×{size}"
    );
    let (cy, cx) = centre_of_mass(x).context("cannot centre an all-black image")?;
    let top = ((centre.0 - cy).round() as i64).clamp(0, size - h);
    let left = ((centre.1 - cx).round() as i64).clamp(0, size - w);
    let canvas = Tensor::zeros([c, size, size], (Kind::Float, Device::Cpu));
    canvas.narrow(1, top, h).narrow(2, left, w).copy_(x);
    Ok(canvas)
}

/// Trims the edges of `[C, H, W]` whose pixels are all within `fuzz` of the corner colour
/// (ImageMagick's `-fuzz 5% -trim`), with the distance `√(mean_c (x_c − b_c)²)`; a row or
/// column may hold 0.5 % of off pixels (noise). Returns the trimmed image and its box
/// `[top, left, height, width]`, or `None` when nothing but background is left.
pub fn trim_background(x: &Tensor, fuzz: f64) -> Option<(Tensor, [i64; 4])> {
    let s = x.size();
    let (c, h, w) = (s[0], s[1], s[2]);
    let corners = Tensor::stack(
        &[
            x.select(1, 0).select(1, 0),
            x.select(1, 0).select(1, w - 1),
            x.select(1, h - 1).select(1, 0),
            x.select(1, h - 1).select(1, w - 1),
        ],
        1,
    );
    let bg = corners.median_dim(1, false).0.view([c, 1, 1]);
    let dist = (x - bg)
        .square()
        .mean_dim([0i64].as_slice(), false, Kind::Float)
        .sqrt();
    let off = dist.gt(fuzz).to_kind(Kind::Float);
    let span = |counts: Tensor, len: i64| -> Option<(i64, i64)> {
        let allowed = (0.005 * len as f64).floor();
        let v = Vec::<f64>::try_from(&counts.to_kind(Kind::Double)).ok()?;
        let first = v.iter().position(|&n| n > allowed)? as i64;
        let last = v.iter().rposition(|&n| n > allowed)? as i64;
        Some((first, last - first + 1))
    };
    let (top, th) = span(off.sum_dim_intlist([1i64].as_slice(), false, Kind::Float), w)?;
    let (left, tw) = span(off.sum_dim_intlist([0i64].as_slice(), false, Kind::Float), h)?;
    Some((x.narrow(1, top, th).narrow(2, left, tw), [top, left, th, tw]))
}

/// Resizes `[C, H, W]` so that its longer edge is `side` by subsampling (keeping every
/// k-th row and column, ImageMagick's `-sample`): output pixel `i` takes input pixel
/// `⌊(i + ½)·n / m⌋`.
pub fn subsample_longer_side(x: &Tensor, side: i64) -> Tensor {
    let s = x.size();
    let (h, w) = (s[1], s[2]);
    let f = side as f64 / h.max(w) as f64;
    let nh = ((h as f64 * f).round() as i64).clamp(1, side);
    let nw = ((w as f64 * f).round() as i64).clamp(1, side);
    let idx = |m: i64, n: i64| {
        let v: Vec<i64> = (0..m)
            .map(|i| (((i as f64 + 0.5) * n as f64 / m as f64) as i64).min(n - 1))
            .collect();
        Tensor::from_slice(&v)
    };
    x.index_select(1, &idx(nh, h)).index_select(2, &idx(nw, w))
}

/// ImageMagick's `-adaptive-sharpen 1x1.0`, the paper's "Gaussian operator of radius and
/// standard deviation 1.0, with increasing effect near outlines":
///
/// - edges: `E = clamp(8x − Σ neighbours)`, levelled from [20 %, 95 %] to [0, 1], blurred
///   by the 3×3 Gaussian (σ = 1), levelled from [10 %, 95 %];
/// - where the edge intensity is at least ½ (ImageMagick picks the 3×3 kernel there and
///   the identity elsewhere), `x` is replaced by the sharpened `Σ k·x / Σ k` with
///   `k = −g` off the centre and `2 Σ g` in the centre, `g(u, v) = exp(−(u² + v²)/2) / 2π`.
pub fn adaptive_sharpen(x: &Tensor) -> Tensor {
    let c = x.size()[0];
    let g: Vec<f32> = (-1..=1)
        .flat_map(|v: i32| {
            (-1..=1).map(move |u: i32| {
                ((-(u * u + v * v) as f64 / 2.0).exp() / (2.0 * std::f64::consts::PI)) as f32
            })
        })
        .collect();
    let sum_g: f32 = g.iter().sum();
    let mut sharpen: Vec<f32> = g.iter().map(|v| -v).collect();
    sharpen[4] = 2.0 * sum_g;
    let norm: f32 = sharpen.iter().sum();
    let sharpen: Vec<f32> = sharpen.iter().map(|v| v / norm).collect();
    let mut laplace = vec![-1.0f32; 9];
    laplace[4] = 8.0;
    let blur: Vec<f32> = g.iter().map(|v| v / sum_g).collect();
    let conv = |img: &Tensor, k: &[f32]| {
        let kernel = Tensor::from_slice(k)
            .view([1, 1, 3, 3])
            .repeat([img.size()[0], 1, 1, 1]);
        img.unsqueeze(0)
            .pad([1, 1, 1, 1], "replicate", None)
            .conv2d(&kernel, None::<Tensor>, [1, 1], [0, 0], [1, 1], img.size()[0])
            .squeeze_dim(0)
    };
    let level = |t: Tensor, lo: f64, hi: f64| ((t - lo) / (hi - lo)).clamp(0.0, 1.0);
    let edges = to_grayscale(&conv(x, &laplace).clamp(0.0, 1.0));
    let edges = level(conv(&level(edges, 0.2, 0.95), &blur), 0.1, 0.95);
    let sharp = conv(x, &sharpen).clamp(0.0, 1.0);
    sharp.where_self(&edges.ge(0.5).expand([c, -1, -1], false), x)
}

/// Pads `[C, h, w]` to `size × size` with `fill`, centred (ImageMagick's
/// `-gravity center -extent`).
pub fn extend_to_square(x: &Tensor, size: i64, fill: f64) -> Tensor {
    let s = x.size();
    let (c, h, w) = (s[0], s[1].min(size), s[2].min(size));
    let canvas = Tensor::full([c, size, size], fill, (Kind::Float, Device::Cpu));
    canvas
        .narrow(1, (size - h) / 2, h)
        .narrow(2, (size - w) / 2, w)
        .copy_(&x.narrow(1, 0, h).narrow(2, 0, w));
    canvas
}

/// `1 − x`: light becomes dark.
pub fn invert(x: &Tensor) -> Tensor {
    x.neg() + 1.0
}

/// Rounds to the 256 levels of an 8-bit image.
pub fn quantize_8bit(x: &Tensor) -> Tensor {
    (x * 255.0).round() / 255.0
}

// ---------------------------------------------------------------------------------------
// Display

/// The steps of one [`Prepared`] image side by side, each letterboxed into a square of
/// `size` pixels on grey (so that the frame of every step shows), captioned with its name.
pub fn steps_figure(prepared: &Prepared, size: i64) -> Result<crate::plot::Figure> {
    ensure!(!prepared.steps.is_empty(), "no steps to show");
    let tiles: Vec<Tensor> = prepared.steps.iter().map(|s| letterbox(&s.image, size)).collect();
    let captions: Vec<String> = prepared.steps.iter().map(|s| s.name.clone()).collect();
    crate::plot::image_grid(&Tensor::stack(&tiles, 0), &captions, tiles.len(), 1)
}

/// `[C, H, W]` scaled to fit `size × size` (nearest neighbour, so that pixels stay visible)
/// on a mid-grey square, as RGB.
fn letterbox(x: &Tensor, size: i64) -> Tensor {
    let s = x.size();
    let (h, w) = (s[1], s[2]);
    let f = size as f64 / h.max(w) as f64;
    let (nh, nw) = (
        ((h as f64 * f).round() as i64).clamp(1, size),
        ((w as f64 * f).round() as i64).clamp(1, size),
    );
    let rgb = if s[0] == 1 {
        x.expand([3, h, w], false)
    } else {
        x.shallow_clone()
    };
    let scaled = rgb
        .unsqueeze(0)
        .upsample_nearest2d([nh, nw], None, None)
        .squeeze_dim(0);
    extend_to_square(&scaled, size, 0.5)
}
