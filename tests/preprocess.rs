//! Preprocessing of the user's own images: each MNIST step on constructed images, `auto`
//! leaving data-set images alone, `none` = the plain resize, Fashion-MNIST's conversion, the
//! colour resize + crop against torchvision, input expansion, and the robustness test:
//! held-out digits drawn on uneven paper, classified by `gradviz predict`.

mod common;

use common::repo;
use gradviz::data::{self, DatasetName};
use gradviz::model::{Arch, BuiltinModel};
use gradviz::preprocess::*;
use gradviz::tch::{Device, Kind, Tensor};
use image::{DynamicImage, GrayImage, ImageFormat, RgbImage};
use rand::{rngs::StdRng, Rng, SeedableRng};
use std::path::{Path, PathBuf};
use std::process::Command;

fn mnist_model() -> PathBuf {
    repo().join("models/mnist_cnn.safetensors")
}

fn pre(mode: Preprocess) -> Preprocessor {
    Preprocessor::new(mode, Convention::Mnist, [1, 28, 28]).unwrap()
}

/// A grayscale image `[1, H, W]` from a closure giving each pixel's value.
fn gray_image(h: i64, w: i64, f: impl Fn(i64, i64) -> f32) -> Tensor {
    let v: Vec<f32> = (0..h)
        .flat_map(|y| (0..w).map(move |x| (y, x)))
        .map(|(y, x)| f(y, x))
        .collect();
    Tensor::from_slice(&v).view([1, h, w])
}

fn to_dynamic(x: &Tensor) -> DynamicImage {
    let s = x.size();
    let bytes: Vec<u8> = Vec::<f32>::try_from(&(x.clamp(0.0, 1.0) * 255.0).round().reshape([-1]))
        .unwrap()
        .into_iter()
        .map(|v| v as u8)
        .collect();
    if s[0] == 1 {
        DynamicImage::ImageLuma8(GrayImage::from_raw(s[2] as u32, s[1] as u32, bytes).unwrap())
    } else {
        let hwc = Vec::<f32>::try_from(&(x.permute([1, 2, 0]) * 255.0).round().reshape([-1])).unwrap();
        let bytes = hwc.into_iter().map(|v| v as u8).collect();
        DynamicImage::ImageRgb8(RgbImage::from_raw(s[2] as u32, s[1] as u32, bytes).unwrap())
    }
}

/// Row and column extent of the pixels above `thr` of a `[1, H, W]` image.
fn extent(x: &Tensor, thr: f64) -> (i64, i64) {
    let m = x.gt(thr).squeeze_dim(0);
    let count = |v: Vec<bool>| -> i64 {
        let first = v.iter().position(|&b| b).unwrap() as i64;
        let last = v.iter().rposition(|&b| b).unwrap() as i64;
        last - first + 1
    };
    let rows = Vec::<bool>::try_from(&m.any_dims([1i64].as_slice(), false)).unwrap();
    let cols = Vec::<bool>::try_from(&m.any_dims([0i64].as_slice(), false)).unwrap();
    (count(rows), count(cols))
}

#[test]
fn inversion_only_when_the_background_is_light() {
    let stroke = |y: i64, x: i64| (60..140).contains(&y) && (90..110).contains(&x);
    let light = gray_image(200, 200, |y, x| if stroke(y, x) { 0.1 } else { 0.9 });
    let dark = gray_image(200, 200, |y, x| if stroke(y, x) { 0.9 } else { 0.05 });
    for (img, want_inverted) in [(&light, true), (&dark, false)] {
        let (ink, inverted) = ink_on_black(img);
        assert_eq!(inverted, want_inverted);
        // Either way the stroke comes out bright and the background dark.
        assert!(ink.double_value(&[0, 100, 100]) > 0.8, "stroke");
        assert!(ink.double_value(&[0, 10, 10]) < 0.05, "background");
        let p = pre(Preprocess::Mnist).apply(&to_dynamic(img)).unwrap();
        let said = p.summary.contains("inverted (light background)");
        assert_eq!(said, want_inverted, "{}", p.summary);
        assert!(p.image.max().double_value(&[]) > 0.9);
    }
}

#[test]
fn uneven_lighting_is_removed() {
    // Paper from 0.45 (dark corner) to 1.0, a pencil stroke 0.35 times as bright as the paper.
    let light = |y: i64, x: i64| 1.0 - 0.55 * ((x + y) as f32 / 600.0).powi(2);
    let img = gray_image(300, 300, |y, x| {
        let ink = (100..220).contains(&y) && (140..165).contains(&x);
        light(y, x) * if ink { 0.35 } else { 0.95 }
    });
    let (ink, _) = ink_on_black(&img);
    let ink = stretch_ink(&ink).unwrap();
    let paper = ink.narrow(1, 0, 80).max().double_value(&[]);
    let far = ink.narrow(1, 250, 50).narrow(2, 250, 50).max().double_value(&[]);
    assert!(paper < 0.05 && far < 0.05, "paper left: {paper} {far}");
    assert!(ink.double_value(&[0, 150, 150]) > 0.95);
    // A blank page has no ink: a clear error, not a black digit.
    let blank = gray_image(100, 100, |y, x| 0.9 - 0.002 * (x + y) as f32);
    let e = format!(
        "{:#}",
        pre(Preprocess::Mnist).apply(&to_dynamic(&blank)).unwrap_err()
    );
    assert!(e.contains("no ink found"), "{e}");
}

/// Off-centre, lopsided, tall, wide, tiny and huge shapes, on light and dark backgrounds.
#[test]
fn centre_of_mass_lands_on_14_14_and_the_longer_side_is_20_px() {
    type Shape = fn(i64, i64) -> bool;
    let cases: [(i64, i64, Shape, bool); 5] = [
        // an L with most mass in its foot, off-centre in a wide image
        (
            200,
            320,
            |y, x| {
                ((20..150).contains(&y) && (30..50).contains(&x))
                    || ((130..150).contains(&y) && (30..140).contains(&x))
            },
            true,
        ),
        // a thin "1" in a tall image
        (
            500,
            180,
            |y, x| (40..420).contains(&y) && (120..140).contains(&x),
            true,
        ),
        // a lopsided blob in the corner of a dark image
        (
            400,
            400,
            |y, x| {
                ((300..390).contains(&y) && (300..330).contains(&x))
                    || ((360..390).contains(&y) && (250..390).contains(&x))
            },
            false,
        ),
        // a wide bar: the longer side is horizontal
        (
            120,
            300,
            |y, x| (50..70).contains(&y) && (20..280).contains(&x),
            true,
        ),
        // smaller than the box: scaled up
        (28, 28, |y, x| (3..13).contains(&y) && (3..9).contains(&x), true),
    ];
    for (i, (h, w, shape, light)) in cases.into_iter().enumerate() {
        let (ink, bg) = if light { (0.1, 0.92) } else { (0.95, 0.03) };
        let img = gray_image(h, w, |y, x| if shape(y, x) { ink } else { bg });
        let out = pre(Preprocess::Mnist)
            .apply(&to_dynamic(&img))
            .unwrap()
            .image
            .get(0);
        assert_eq!(out.size(), [1, 28, 28]);
        let (cy, cx) = centre_of_mass(&out).unwrap();
        assert!(
            (cy - 14.0).abs() <= 0.5 && (cx - 14.0).abs() <= 0.5,
            "case {i}: centre ({cy}, {cx})"
        );
        let (eh, ew) = extent(&out, 0.0);
        assert_eq!(eh.max(ew), 20, "case {i}: extent {eh}×{ew}");
    }
}

#[test]
fn the_centring_step_alone() {
    let digit = gray_image(20, 10, |y, x| if y < 5 && x > 6 { 1.0 } else { 0.2 });
    let out = centre_by_mass(&digit, 28, (14.0, 14.0)).unwrap();
    let (cy, cx) = centre_of_mass(&out).unwrap();
    assert!(
        (cy - 14.0).abs() <= 0.5 && (cx - 14.0).abs() <= 0.5,
        "({cy}, {cx})"
    );
    assert!(
        (out.sum(Kind::Double).double_value(&[]) - digit.sum(Kind::Double).double_value(&[])).abs() < 1e-3
    );
    assert!(centre_by_mass(
        &Tensor::zeros([1, 5, 5], (Kind::Float, Device::Cpu)),
        28,
        (14.0, 14.0)
    )
    .is_err());
    assert_eq!(
        fit_longer_side(&gray_image(300, 120, |_, _| 1.0), 20).size(),
        [1, 20, 8]
    );
}

/// Test digits exported as 28×28 PNG files come back exactly as they are in the data set.
#[test]
fn auto_leaves_images_in_the_model_format_alone() {
    let dir = tempfile::tempdir().unwrap();
    let test = data::bundled_mnist().unwrap().test.head(20);
    let model = BuiltinModel::load(mnist_model()).unwrap();
    let auto = Preprocessor::for_model(&model, Preprocess::Auto).unwrap();
    assert_eq!(auto.convention, Convention::Mnist);
    let mut paths = vec![];
    for i in 0..20 {
        let p = dir.path().join(format!("d{i:02}.png"));
        to_dynamic(&test.images.get(i)).save(&p).unwrap();
        paths.push(p);
    }
    let batch = gradviz::io::load_images(&paths, &auto).unwrap();
    assert_eq!(batch.images.size(), [20, 1, 28, 28]);
    assert_eq!(batch.images, test.images, "auto changed a data-set image");
    assert!(batch.notes.iter().all(|n| n.is_empty()), "{:?}", batch.notes);
    assert!(batch.warnings.is_empty());

    let fashion_dir = Path::new(data::DEBIAN_FASHION_MNIST_DIR);
    if !fashion_dir.is_dir() {
        eprintln!("Fashion-MNIST not installed: skipping its half");
        return;
    }
    let f = data::load(DatasetName::FashionMnist, None).unwrap().test.head(10);
    let fm = BuiltinModel::new(Arch::MnistCnn, DatasetName::FashionMnist, 0).unwrap();
    let auto = Preprocessor::for_model(&fm, Preprocess::Auto).unwrap();
    assert_eq!(auto.convention, Convention::FashionMnist);
    for i in 0..10 {
        let p = auto.apply(&to_dynamic(&f.images.get(i))).unwrap();
        assert_eq!(p.image, f.images.get(i).unsqueeze(0));
        assert!(p.summary.is_empty());
    }
}

/// `none` is the loader as it was: an exact resize, then grayscale, with a warning for a
/// light background.
#[test]
fn none_gives_the_plain_resize() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("three.png");
    let img = gray_image(280, 280, |y, x| {
        if (60..220).contains(&y) && (100..130).contains(&x) {
            0.1
        } else {
            0.95
        }
    });
    to_dynamic(&img).save(&path).unwrap();
    let p = pre(Preprocess::None).load(&path).unwrap();
    let want = image::open(&path)
        .unwrap()
        .resize_exact(28, 28, image::imageops::FilterType::Triangle)
        .to_luma8()
        .into_raw();
    let want = Tensor::from_slice(&want)
        .to_kind(Kind::Float)
        .view([1, 1, 28, 28])
        / 255.0;
    assert_eq!(p.image, want);
    assert_eq!(gradviz::io::load_image(&path, [1, 28, 28]).unwrap().0, want);
    let w = p
        .warning
        .expect("a white image for an MNIST model is warned about");
    assert!(w.contains("light background"), "{w}");
    // The same file through auto is not the plain resize.
    assert_ne!(pre(Preprocess::Auto).load(&path).unwrap().image, want);
    // Asking MNIST preprocessing of a colour model is an error.
    let e = Preprocessor::new(Preprocess::Mnist, Convention::Natural, [3, 32, 32]).unwrap_err();
    assert!(format!("{e:#}").contains("makes 1x28x28 images"), "{e:#}");
}

/// A product on white under uneven light: trimmed, longer edge 28, extended, negated, 8-bit.
#[test]
fn fashion_mnist_conversion() {
    let light = |_: i64, x: i64| 1.0 - 0.3 * (x as f32 / 300.0);
    // A dark "trouser" 300 tall, 120 wide, off-centre on a 300×420 photo.
    let photo = gray_image(420, 300, |y, x| {
        let item = (60..360).contains(&y)
            && (40..160).contains(&x)
            && !((200..360).contains(&y) && (90..110).contains(&x));
        light(y, x) * if item { 0.3 } else { 0.97 }
    });
    let fpre = Preprocessor::new(Preprocess::FashionMnist, Convention::FashionMnist, [1, 28, 28]).unwrap();
    let p = fpre.apply(&to_dynamic(&photo)).unwrap();
    let out = p.image.get(0);
    assert!(
        p.summary.contains("negated") && p.summary.contains("trimmed 120×300 → 11×28"),
        "{}",
        p.summary
    );
    // The longer edge fills the field, the shorter is centred, the background is black.
    assert_eq!(extent(&out, 0.2), (28, 11));
    assert!(out.double_value(&[0, 14, 2]) < 0.05 && out.double_value(&[0, 14, 25]) < 0.05);
    assert!(
        out.double_value(&[0, 5, 14]) > 0.5,
        "the item is bright after negation"
    );
    let bytes = &out * 255.0;
    assert_eq!(bytes.round(), bytes, "8-bit grayscale");
    // The trim step on its own: 5 % fuzz around the corner colour.
    let framed = gray_image(50, 40, |y, x| {
        if (10..30).contains(&y) && (5..25).contains(&x) {
            0.5
        } else {
            0.97
        }
    });
    let noisy = framed + gray_image(50, 40, |y, x| if (y * 7 + x * 3) % 11 == 0 { 0.03 } else { 0.0 });
    let (_, b) = trim_background(&noisy, FASHION_TRIM_FUZZ).unwrap();
    assert_eq!(b, [10, 5, 20, 20]);
    // Subsampling keeps pixels, it does not average them.
    let stripes = gray_image(56, 56, |_, x| (x % 2) as f32);
    let s = subsample_longer_side(&stripes, 28);
    assert_eq!(s.size(), [1, 28, 28]);
    assert!(s.eq(0.0).logical_or(&s.eq(1.0)).all().int64_value(&[]) == 1);
}

/// The colour path is torchvision's `Resize(32)` + `CenterCrop(32)` on the same file.
#[test]
fn colour_models_get_torchvision_resize_and_centre_crop() {
    let Ok(python) = std::env::var("GRADVIZ_PYTHON") else {
        eprintln!("GRADVIZ_PYTHON not set; skipping");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let png = dir.path().join("photo.png");
    let npy = dir.path().join("tv.npy");
    let x = gray_image(3 * 75, 110, |y, x| (((y * 31 + x * 17) % 97) as f32) / 96.0).view([3, 75, 110]);
    to_dynamic(&x).save(&png).unwrap();
    let script = "import sys, numpy as np, torchvision.transforms.functional as F\n\
                  from torchvision.io import read_image\n\
                  x = read_image(sys.argv[1]).float() / 255\n\
                  y = F.center_crop(F.resize(x, 32, antialias=True), 32)\n\
                  np.save(sys.argv[2], y.numpy())\n";
    let out = Command::new(python)
        .args(["-c", script])
        .arg(&png)
        .arg(&npy)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let want = Tensor::read_npy(&npy).unwrap();
    let p = Preprocessor::new(Preprocess::Auto, Convention::Natural, [3, 32, 32])
        .unwrap()
        .load(&png)
        .unwrap();
    let diff = (p.image.get(0) - want.clamp(0.0, 1.0))
        .abs()
        .max()
        .double_value(&[]);
    assert!(diff < 1e-5, "differs from torchvision by {diff}");
    assert!(
        p.summary
            .contains("resized 110×75 → 46×32, centre-cropped to 32×32"),
        "{}",
        p.summary
    );
}

#[test]
fn inputs_expand_from_files_directories_and_globs() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for n in ["b.png", "a.jpg", "c.JPEG"] {
        to_dynamic(&gray_image(8, 8, |_, _| 0.5))
            .save_with_format(
                d.join(n),
                if n.ends_with("png") {
                    ImageFormat::Png
                } else {
                    ImageFormat::Jpeg
                },
            )
            .unwrap();
    }
    std::fs::write(d.join("notes.txt"), "not an image").unwrap();
    std::fs::create_dir(d.join("empty")).unwrap();
    let got = gradviz::io::expand_inputs(&[d.to_path_buf()]).unwrap();
    let names: Vec<_> = got
        .iter()
        .map(|p| p.file_name().unwrap().to_str().unwrap())
        .collect();
    assert_eq!(names, ["a.jpg", "b.png", "c.JPEG"]);
    let got = gradviz::io::expand_inputs(&[d.join("*.png"), d.join("a.jpg")]).unwrap();
    assert_eq!(got, vec![d.join("b.png"), d.join("a.jpg")]);
    let err = |p: PathBuf| format!("{:#}", gradviz::io::expand_inputs(&[p]).unwrap_err());
    assert!(err(d.join("missing.png")).contains("missing.png does not exist"));
    assert!(err(d.join("empty")).contains("holds no PNG or JPEG"));
    assert!(err(d.join("*.gif")).contains("no file matches"));
}

fn gradviz_cmd(args: &[&str], inputs: &[&Path]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_gradviz"))
        .args(args)
        .arg("--input")
        .args(inputs)
        .output()
        .unwrap()
}

/// A directory with one corrupt image fails naming that file, and writes nothing.
#[test]
fn a_corrupt_image_is_named_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let imgs = dir.path().join("imgs");
    std::fs::create_dir(&imgs).unwrap();
    let digit = gray_image(60, 60, |y, x| {
        if (10..50).contains(&y) && (25..35).contains(&x) {
            0.0
        } else {
            1.0
        }
    });
    to_dynamic(&digit).save(imgs.join("a_good.png")).unwrap();
    let mut jpeg = vec![];
    to_dynamic(&digit)
        .write_to(&mut std::io::Cursor::new(&mut jpeg), ImageFormat::Jpeg)
        .unwrap();
    std::fs::write(imgs.join("b_truncated.jpg"), &jpeg[..jpeg.len() / 3]).unwrap();
    std::fs::write(
        imgs.join("c_good.png"),
        std::fs::read(imgs.join("a_good.png")).unwrap(),
    )
    .unwrap();
    let model = BuiltinModel::new(Arch::MnistCnn, DatasetName::Mnist, 0).unwrap();
    let model_path = dir.path().join("m.safetensors");
    model.save(&model_path).unwrap();
    let m = model_path.to_str().unwrap();
    let out = gradviz_cmd(&["predict", "--model", m], &[&imgs]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("b_truncated.jpg") && err.contains("cannot decode"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
    assert!(out.stdout.is_empty(), "predict printed lines before failing");
    let npy = dir.path().join("maps.npy");
    let out = gradviz_cmd(
        &["saliency", "--model", m, "--save-npy", npy.to_str().unwrap()],
        &[&imgs],
    );
    assert!(!out.status.success() && !npy.exists());
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        2,
        "stray files left"
    );

    // Without the corrupt file: one batch, and the same images work for saliency and ascend.
    std::fs::remove_file(imgs.join("b_truncated.jpg")).unwrap();
    let out = gradviz_cmd(&["predict", "--model", m, "--top", "3"], &[&imgs]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<Vec<&str>> = stdout.lines().map(|l| l.split('\t').collect()).collect();
    assert_eq!(lines.len(), 2);
    assert!(
        lines[0][0].ends_with("a_good.png") && lines[0].len() == 6,
        "{stdout}"
    );
    let p: f64 = lines[0][2].parse().unwrap();
    assert!((0.0..=1.0).contains(&p) && lines[0][3] == format!("{} ({p:.4})", lines[0][1]));
    let out = gradviz_cmd(
        &["saliency", "--model", m, "--save-npy", npy.to_str().unwrap()],
        &[&imgs],
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(Tensor::read_npy(&npy).unwrap().size(), [2, 1, 28, 28]);
    let init = format!("image:{}", imgs.join("a_good.png").display());
    let out = Command::new(env!("CARGO_BIN_EXE_gradviz"))
        .args([
            "ascend",
            "--model",
            m,
            "--classes",
            "0-2",
            "--steps",
            "2",
            "--init",
            &init,
        ])
        .arg("--save-npy")
        .arg(&npy)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(Tensor::read_npy(&npy).unwrap().size(), [3, 1, 28, 28]);
    let out = gradviz_cmd(&["predict", "--model", m, "--top", "11"], &[&imgs]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("--top 11: expected 1 to 10"));
}

#[test]
fn training_means_are_the_data_sets() {
    let train = data::bundled_mnist().unwrap().train;
    let m = train.images.mean(Kind::Double).double_value(&[]);
    assert!((m - MNIST_MEAN).abs() < 0.005, "MNIST mean {m}");
    if Path::new(data::DEBIAN_FASHION_MNIST_DIR).is_dir() {
        let f = data::load(DatasetName::FashionMnist, None).unwrap().train;
        let m = f.images.mean(Kind::Double).double_value(&[]);
        assert!((m - FASHION_MNIST_MEAN).abs() < 0.005, "Fashion-MNIST mean {m}");
    }
}

/// A held-out test digit as a user brings it: dark ink on light paper, rescaled, shifted off
/// centre, under uneven lighting, with noise.
fn on_paper(digit: &Tensor, rng: &mut StdRng) -> DynamicImage {
    let s = rng.gen_range(50..=160i64);
    let up = digit
        .unsqueeze(0)
        .upsample_bicubic2d([s, s], false, None, None)
        .squeeze_dim(0);
    let strokes = ((up - 0.25) / 0.3).clamp(0.0, 1.0);
    let (h, w) = (s * rng.gen_range(12..=25) / 10, s * rng.gen_range(12..=25) / 10);
    let (y0, x0) = (rng.gen_range(0..=h - s), rng.gen_range(0..=w - s));
    let canvas = Tensor::zeros([1, h, w], (Kind::Float, Device::Cpu));
    canvas.narrow(1, y0, s).narrow(2, x0, s).copy_(&strokes);
    let (a, b, c) = (
        rng.gen_range(-0.2..0.2),
        rng.gen_range(-0.2..0.2),
        rng.gen_range(0.0..0.25),
    );
    let v = Tensor::linspace(-1.0, 1.0, h, (Kind::Float, Device::Cpu)).view([1, h, 1]);
    let u = Tensor::linspace(-1.0, 1.0, w, (Kind::Float, Device::Cpu)).view([1, 1, w]);
    let lighting = (&u * a + &v * b - (&u * &u + &v * &v) * c + 0.9).clamp(0.3, 1.0);
    let (paper, ink) = (rng.gen_range(0.85..1.0), rng.gen_range(0.0..0.4));
    let tile: Vec<f32> = (0..64 * 64).map(|_| rng.gen_range(-0.04..0.04)).collect();
    let noise = Tensor::from_slice(&tile)
        .view([1, 64, 64])
        .repeat([1, h / 64 + 1, w / 64 + 1])
        .narrow(1, 0, h)
        .narrow(2, 0, w);
    let img = ((canvas.neg() + 1.0) * paper + &canvas * ink) * lighting + noise;
    to_dynamic(&img)
}

fn accuracy(stdout: &str, labels: &[i64]) -> f64 {
    let right = stdout
        .lines()
        .zip(labels)
        .filter(|(l, &y)| l.split('\t').nth(1) == Some(y.to_string().as_str()))
        .count();
    assert_eq!(stdout.lines().count(), labels.len());
    right as f64 / labels.len() as f64
}

/// The target: 100 held-out test digits, inverted, rescaled, shifted and put on
/// uneven paper here (every other one as JPEG), classified by `gradviz predict` with the
/// shipped model: `auto` ≥ 90 %, and far better than `none` on the same files.
#[test]
fn predict_auto_reads_digits_on_uneven_paper() {
    if !mnist_model().is_file() {
        eprintln!("skipped: shipped model not present");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let test = data::bundled_mnist().unwrap().test;
    let idx: Vec<i64> = (0..100).map(|i| i * 20 + 3).collect();
    let picked = test.select(&idx).unwrap();
    let labels = Vec::<i64>::try_from(&picked.labels).unwrap();
    let mut rng = StdRng::seed_from_u64(2026);
    for i in 0..idx.len() {
        let img = on_paper(&picked.images.get(i as i64), &mut rng);
        let (ext, fmt) = if i % 2 == 0 {
            ("png", ImageFormat::Png)
        } else {
            ("jpg", ImageFormat::Jpeg)
        };
        img.save_with_format(dir.path().join(format!("{i:03}.{ext}")), fmt)
            .unwrap();
    }
    let model = mnist_model();
    let run = |mode: &str| {
        let out = gradviz_cmd(
            &[
                "predict",
                "--model",
                model.to_str().unwrap(),
                "--preprocess",
                mode,
            ],
            &[dir.path()],
        );
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        accuracy(&String::from_utf8_lossy(&out.stdout), &labels)
    };
    let (auto, none) = (run("auto"), run("none"));
    eprintln!("accuracy on 100 digits on uneven paper: auto {auto:.2}, none {none:.2}");
    assert!(auto >= 0.9, "auto: {auto}");
    assert!(none < 0.5, "none: {none}: the test images are not hard enough");
}

/// A Fashion-MNIST test image as a product photo: negated back to dark-on-white, upscaled
/// 4–8×, with a white margin on some sides and uneven lighting.
fn as_product_photo(item: &Tensor, rng: &mut StdRng) -> DynamicImage {
    let s = rng.gen_range(4..=8i64) * 28;
    let up = item
        .unsqueeze(0)
        .upsample_bicubic2d([s, s], false, None, None)
        .squeeze_dim(0)
        .clamp(0.0, 1.0);
    let (h, w) = (s + rng.gen_range(0..=s / 2), s + rng.gen_range(0..=s / 2));
    let canvas = Tensor::zeros([1, h, w], (Kind::Float, Device::Cpu));
    canvas
        .narrow(1, rng.gen_range(0..=h - s), s)
        .narrow(2, rng.gen_range(0..=w - s), s)
        .copy_(&up);
    let (a, b) = (rng.gen_range(-0.12..0.12), rng.gen_range(-0.12..0.12));
    let v = Tensor::linspace(-1.0, 1.0, h, (Kind::Float, Device::Cpu)).view([1, h, 1]);
    let u = Tensor::linspace(-1.0, 1.0, w, (Kind::Float, Device::Cpu)).view([1, 1, w]);
    let lighting = &u * a + &v * b + 0.85;
    to_dynamic(&((canvas.neg() + 1.0) * lighting))
}

/// The shipped Fashion-MNIST model on 100 test items photographed on white: `auto` uses
/// Zalando's conversion and reads them about as well as the 28×28 originals; a plain resize
/// reads few.
#[test]
fn predict_auto_reads_fashion_product_photos() {
    let model = repo().join("models/fashion_mnist_cnn.safetensors");
    if !model.is_file() || !Path::new(data::DEBIAN_FASHION_MNIST_DIR).is_dir() {
        eprintln!("skipped: Fashion-MNIST model or data not present");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let test = data::load(DatasetName::FashionMnist, None).unwrap().test;
    let idx: Vec<i64> = (0..100).map(|i| i * 97 + 5).collect();
    let picked = test.select(&idx).unwrap();
    let labels = Vec::<i64>::try_from(&picked.labels).unwrap();
    let names = DatasetName::FashionMnist.class_names();
    let mut rng = StdRng::seed_from_u64(7);
    for i in 0..idx.len() {
        let img = as_product_photo(&picked.images.get(i as i64), &mut rng);
        img.save(dir.path().join(format!("{i:03}.png"))).unwrap();
    }
    let run = |mode: &str| {
        let out = gradviz_cmd(
            &[
                "predict",
                "--model",
                model.to_str().unwrap(),
                "--preprocess",
                mode,
            ],
            &[dir.path()],
        );
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let right = stdout
            .lines()
            .zip(&labels)
            .filter(|(l, &y)| l.split('\t').nth(1) == Some(names[y as usize].as_str()))
            .count();
        right as f64 / labels.len() as f64
    };
    let (auto, none) = (run("auto"), run("none"));
    let plain = gradviz::model::accuracy(
        &BuiltinModel::load(&model).unwrap(),
        &picked.images,
        &picked.labels,
    )
    .unwrap();
    eprintln!(
        "Fashion-MNIST product photos: auto {auto:.2}, none {none:.2} (the 28×28 originals: {plain:.2})"
    );
    assert!(
        auto >= plain - 0.08 && auto >= none + 0.3,
        "auto {auto}, none {none}, originals {plain}"
    );
}
