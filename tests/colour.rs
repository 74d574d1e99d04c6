//! Colour models end to end on generated 3×32×32 data (no real colour data set is reachable
//! here): the generator, training `cifar10-cnn`, every saliency method and the colour
//! figures, class and hidden-unit ascent with the 32×32 RGB preset, and the command line on
//! an image folder and on pickled CIFAR-format batches written by the test.

mod common;

use common::{enrichment, gradient_methods};
use gradviz::ascend::{ascend, AscendConfig, Init};
use gradviz::data::{self, shapes, Dataset};
use gradviz::model::{accuracy, Arch, BuiltinModel, Classifier};
use gradviz::objective::Objective;
use gradviz::plot::saliency::{channel_maps, channel_reductions, saliency_rows, SaliencyStyle, REDUCTIONS};
use gradviz::regularize::{Parameterization, Regularization};
use gradviz::saliency::{reduce, Attribution, Gradient, Reduce, Target};
use gradviz::tch::{Kind, Tensor};
use gradviz::train::{train, TrainConfig};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// Test images, never seen in training.
const TEST_SEED: u64 = 99;

/// `cifar10-cnn` trained briefly on generated shapes, saved once and shared by the tests.
fn trained_model() -> &'static Path {
    static MODEL: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    let (_, path) = MODEL.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let data = shapes::splits(2000, 200, 0);
        let mut m = BuiltinModel::for_data(Arch::Cifar10Cnn, &data, 0).unwrap();
        let cfg = TrainConfig {
            epochs: 3,
            batch_size: 32,
            learning_rate: 2e-3,
            augment: false,
            show_progress: false,
            ..Default::default()
        };
        train(&mut m, &data.train, None, &cfg).unwrap();
        let path = dir.path().join("shapes.safetensors");
        m.save(&path).unwrap();
        (dir, path)
    });
    path
}

fn model() -> BuiltinModel {
    BuiltinModel::load(trained_model()).unwrap()
}

#[test]
fn generated_shapes_are_deterministic_balanced_and_coloured() {
    let (a, masks) = shapes::generate_with_masks(40, 3);
    let b = shapes::generate(40, 3);
    let c = shapes::generate(40, 4);
    assert_eq!(a.images, b.images);
    assert_ne!(a.images, c.images);
    assert_eq!(a.input_shape(), [3, 32, 32]);
    assert_eq!(a.class_names.len(), 10);
    for k in 0..10 {
        assert_eq!(a.indices_of_class(k).len(), 4);
    }
    // Each shape covers a real part of the image, never all of it.
    let cover = Vec::<f64>::try_from(&masks.mean_dim([1i64, 2, 3].as_slice(), false, Kind::Double)).unwrap();
    assert!(cover.iter().all(|&f| (0.04..0.4).contains(&f)), "{cover:?}");
    // Inside the shape, red classes are red and blue classes are blue.
    for i in 0..40 {
        let img = a.images.get(i);
        let m = masks.get(i).ge(0.99).to_kind(Kind::Float);
        let mean = |ch: i64| {
            (img.get(ch) * m.get(0)).sum(Kind::Double).double_value(&[])
                / m.sum(Kind::Double).double_value(&[])
        };
        let red = i % 2 == 0;
        assert_eq!(mean(0) > mean(2), red, "image {i}: R {} B {}", mean(0), mean(2));
    }
}

#[test]
fn cifar10_cnn_learns_shape_and_colour() {
    let m = model();
    assert_eq!(m.describe(), "cifar10-cnn (colour-shapes, 3x32x32 -> 10 classes)");
    assert_eq!(m.dataset, None);
    let test = shapes::generate(500, TEST_SEED);
    let acc = accuracy(&m, &test.images, &test.labels).unwrap();
    println!("test accuracy on generated shapes: {acc:.4}");
    // Measured 0.834 (3 epochs on 2,000 images; chance is 0.1).
    assert!(acc >= 0.75, "accuracy {acc}");
    // Swapping red and blue turns each red class into its blue twin: the model uses colour.
    let swapped = test.images.flip([1]);
    let twin: Vec<i64> = Vec::<i64>::try_from(&test.labels)
        .unwrap()
        .iter()
        .map(|l| l ^ 1)
        .collect();
    let twin = Tensor::from_slice(&twin);
    let acc_twin = accuracy(&m, &swapped, &twin).unwrap();
    println!("accuracy on R/B-swapped images against the twin class: {acc_twin:.4}");
    assert!(acc_twin >= 0.6, "{acc_twin}");
}

#[test]
fn every_saliency_method_points_at_the_coloured_shape() {
    let m = model();
    let (test, masks) = shapes::generate_with_masks(10, TEST_SEED);
    let target = Target::labels(&test.labels);
    let methods = gradient_methods("conv4");
    for method in &methods {
        let attr = method.attribute(&m, &test.images, &target).unwrap();
        assert_eq!(attr.size(), [10, 3, 32, 32], "{}", method.name());
        let e = enrichment(&reduce(&attr, Reduce::MaxAbs).unwrap(), &masks);
        println!("{}: saliency on the shape {e:.2}x its area", method.name());
        assert!(e > 1.3, "{}: enrichment {e}", method.name());
    }
}

/// Whether a figure shows colour: some pixel whose red and blue differ strongly.
fn has_colour_pixels(rgb: &[u8]) -> bool {
    rgb.chunks_exact(3)
        .any(|p| (p[0] as i32 - p[2] as i32).abs() > 100 && p[1] < 80)
}

#[test]
fn colour_figures_show_rgb_images_beside_their_maps() {
    let m = model();
    let test = shapes::generate(4, TEST_SEED);
    let attr = Gradient::default()
        .attribute(&m, &test.images, &Target::labels(&test.labels))
        .unwrap();
    let titles: Vec<String> = (0..4).map(|i| test.class_names[i % 10].clone()).collect();
    let style = SaliencyStyle::default();
    let rows = saliency_rows(
        &test.images,
        &reduce(&attr, Reduce::Signed).unwrap(),
        &titles,
        "signed",
        &style,
    )
    .unwrap();
    let all = channel_reductions(&test.images, &attr, &REDUCTIONS, &titles, &style).unwrap();
    let per = channel_maps(&test.images, &attr, &titles, &style).unwrap();
    // The colour image itself: its first panel carries the red and blue shapes.
    let image_only = SaliencyStyle {
        colorbars: false,
        overlay: false,
        ..SaliencyStyle::default()
    };
    let gray_images = test.to_channels(1).unwrap().images;
    let gray_fig = saliency_rows(
        &gray_images,
        &reduce(&attr, Reduce::Signed).unwrap(),
        &titles,
        "m",
        &image_only,
    )
    .unwrap();
    let col_fig = saliency_rows(
        &test.images,
        &reduce(&attr, Reduce::Signed).unwrap(),
        &titles,
        "m",
        &image_only,
    )
    .unwrap();
    assert_eq!((gray_fig.width, gray_fig.height), (col_fig.width, col_fig.height));
    let panel_w = (32 * image_only.scale) as usize;
    let first_panel = |f: &gradviz::Figure| -> Vec<u8> {
        f.rgb
            .chunks_exact(f.width as usize * 3)
            .flat_map(|row| row[8 * 3..(8 + panel_w) * 3].to_vec())
            .collect()
    };
    assert!(has_colour_pixels(&first_panel(&col_fig)));
    assert!(!has_colour_pixels(&first_panel(&gray_fig)));
    // Five panels per row in the reductions figure, four (image, R, G, B) in the channel one.
    assert!(all.width > per.width && per.width > rows.width / 2);
    let dir = tempfile::tempdir().unwrap();
    all.save(dir.path().join("reductions.png")).unwrap();
    let back = image::open(dir.path().join("reductions.png")).unwrap();
    assert_eq!((back.width(), back.height()), (all.width, all.height));
    // Shape mismatches are errors, not panics.
    assert!(channel_reductions(&test.images, &attr.narrow(1, 0, 1), &REDUCTIONS, &titles, &style).is_err());
    assert!(channel_reductions(&test.images, &attr, &[], &titles, &style).is_err());
}

#[test]
fn rgb_preset_is_named_and_round_trips() {
    let preset = Regularization::colour_32x32();
    assert_eq!(Regularization::parse("colour").unwrap(), preset);
    assert_eq!(Regularization::parse(&preset.to_string()).unwrap(), preset);
    assert!(matches!(preset.param, Parameterization::Fourier { .. }));
    assert_eq!(AscendConfig::regularized_32x32().regularization, preset);
}

/// Mean of red minus blue over the images of `rows`.
fn red_minus_blue(images: &Tensor) -> Vec<f64> {
    let x = images.clamp(0.0, 1.0);
    let d = x.select(1, 0) - x.select(1, 2);
    Vec::try_from(&d.mean_dim([1i64, 2].as_slice(), false, Kind::Double)).unwrap()
}

#[test]
fn rgb_preset_class_visualizations_have_the_class_colour() {
    let m = model();
    let classes: Vec<i64> = (0..10).collect();
    let x0 = Init::noise(0.5, 0.1, 0).make(10, [3, 32, 32]).unwrap();
    let cfg = AscendConfig {
        snapshot_every: 0,
        ..AscendConfig::regularized_32x32()
    };
    let run = ascend(&m, &Objective::logits(&classes), &x0, &cfg).unwrap();
    let p = run.final_target_probs();
    println!("model's target probabilities: {p:?}");
    // Measured: mean 0.87, eight of ten classes above 0.9 (seed 0, 200 steps).
    let reached: Vec<usize> = (0..10).filter(|&k| p[k] > 0.5).collect();
    assert!(p.iter().sum::<f64>() / 10.0 > 0.75 && reached.len() >= 8, "{p:?}");
    // Each red class reached comes out redder than its blue twin (measured: red − blue
    // 0.22/0.02, 0.24/0.04, 0.18/−0.02, 0.18/0.03; the red triangle was not reached).
    let rb = red_minus_blue(&run.images);
    println!("red minus blue per class: {rb:?}");
    for k in (0..10)
        .step_by(2)
        .filter(|k| reached.contains(k) && reached.contains(&(k + 1)))
    {
        assert!(
            rb[k] > rb[k + 1] + 0.05,
            "classes {k}/{}: red − blue {} vs {}",
            k + 1,
            rb[k],
            rb[k + 1]
        );
    }
    // Weights untouched.
    let again = model();
    assert_eq!(m.logits(&x0).unwrap(), again.logits(&x0).unwrap());
}

#[test]
fn rgb_preset_hidden_units_raise_their_activation() {
    let m = model();
    let x0 = Init::noise(0.5, 0.1, 1).make(4, [3, 32, 32]).unwrap();
    let objective = Objective::channels("conv5", &[0, 1, 2, 3]);
    let cfg = AscendConfig {
        steps: 60,
        snapshot_every: 0,
        ..AscendConfig::regularized_32x32()
    };
    let run = ascend(&m, &objective, &x0, &cfg).unwrap();
    let start = &run.history[0].objective;
    let end = &run.final_record().objective;
    for i in 0..4 {
        assert!(
            end[i] > 2.0 * start[i] + 0.01,
            "channel {i}: {} -> {}",
            start[i],
            end[i]
        );
    }
}

// ---------------------------------------------------------------------------------------
// The command line on colour data written to disk

fn gradviz(args: &[&str]) -> (String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_gradviz"))
        .args(args)
        .output()
        .expect("run gradviz");
    let (so, se) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    assert!(out.status.success(), "gradviz {args:?} failed:\n{se}");
    (so, se)
}

fn accuracy_line(stdout: &str) -> f64 {
    stdout
        .lines()
        .find_map(|l| l.strip_prefix("accuracy: "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no accuracy in {stdout}"))
}

/// Writes `train` and `test` as CIFAR-10's Python batches with the venv's Python (protocol 2).
fn write_pickled(train: &Dataset, test: &Dataset, dir: &Path) {
    let npy = |d: &Dataset, name: &str| {
        let x = (d.images.clamp(0.0, 1.0) * 255.0).round().reshape([-1, 3072]);
        gradviz::io::save_npy(dir.join(format!("{name}_x.npy")), &x).unwrap();
        gradviz::io::save_npy(dir.join(format!("{name}_y.npy")), &d.labels.to_kind(Kind::Float)).unwrap();
    };
    npy(train, "train");
    npy(test, "test");
    let script = r#"
import json, os, pickle, sys
import numpy as np
d = sys.argv[1]; names = json.loads(sys.argv[2])
out = os.path.join(d, "cifar-10-batches-py"); os.makedirs(out)
for src, dst in [("train", "data_batch_1"), ("test", "test_batch")]:
    x = np.load(os.path.join(d, src + "_x.npy")).astype(np.uint8)
    y = [int(v) for v in np.load(os.path.join(d, src + "_y.npy"))]
    with open(os.path.join(out, dst), "wb") as f:
        pickle.dump({b"batch_label": dst.encode(), b"labels": y, b"data": x}, f, protocol=2)
with open(os.path.join(out, "batches.meta"), "wb") as f:
    pickle.dump({b"label_names": [n.encode() for n in names]}, f, protocol=2)
"#;
    let python = std::env::var_os("GRADVIZ_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python"));
    let out = Command::new(python)
        .arg("-c")
        .arg(script)
        .arg(dir)
        .arg(serde_json::to_string(&train.class_names).unwrap())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn cli_trains_evaluates_explains_and_visualizes_colour_data_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let data = shapes::splits(300, 50, 5);
    let folder = d.join("shapes");
    data::folder::save_image_folder(&data.train, &folder.join("train")).unwrap();
    data::folder::save_image_folder(&data.test, &folder.join("test")).unwrap();
    let pickled = d.join("pickled");
    std::fs::create_dir(&pickled).unwrap();
    write_pickled(&data.train, &data.test, &pickled);
    let f = folder.to_str().unwrap();
    let p = pickled.to_str().unwrap();
    let model = d.join("m.safetensors");
    let m = model.to_str().unwrap();

    let (out, err) = gradviz(&[
        "train",
        "--data",
        f,
        "--epochs",
        "1",
        "--batch-size",
        "32",
        "--no-augment",
        "--out",
        m,
    ]);
    assert!(
        err.contains("training cifar10-cnn on 300 shapes images (image folder)"),
        "{err}"
    );
    assert!(
        out.contains("cifar10-cnn (shapes, 3x32x32 -> 10 classes)"),
        "{out}"
    );

    // The same test images from the folder and from the pickled batches give one accuracy.
    let (from_folder, _) = gradviz(&["eval", "--model", m, "--data", f]);
    let (from_pickle, _) = gradviz(&["eval", "--model", m, "--data", p]);
    assert!(
        from_folder.contains("test images: 50 (shapes, image folder)"),
        "{from_folder}"
    );
    assert!(from_pickle.contains("CIFAR-10 pickled batches"), "{from_pickle}");
    assert_eq!(accuracy_line(&from_folder), accuracy_line(&from_pickle));

    let plot = d.join("sal.png");
    let npy = d.join("sal.npy");
    gradviz(&[
        "saliency",
        "--model",
        m,
        "--data",
        p,
        "--indices",
        "0..4",
        "--targets",
        "label",
        "--all-reductions",
        "--plot",
        plot.to_str().unwrap(),
        "--save-npy",
        npy.to_str().unwrap(),
    ]);
    assert_eq!(gradviz::io::load_npy(&npy).unwrap().size(), [4, 3, 32, 32]);
    assert!(image::open(&plot).unwrap().width() > 5 * 32 * 5);
    gradviz(&[
        "saliency",
        "--model",
        m,
        "--data",
        f,
        "--indices",
        "0,1",
        "--method",
        "grad-cam",
        "--plot",
        plot.to_str().unwrap(),
    ]);

    let vis = d.join("vis.npy");
    let (out, err) = gradviz(&[
        "ascend",
        "--model",
        m,
        "--classes",
        "0-3",
        "--regularize",
        "colour",
        "--step-rule",
        "adam",
        "--lr",
        "0.05",
        "--steps",
        "20",
        "--save-npy",
        vis.to_str().unwrap(),
        "--plot",
        d.join("vis.png").to_str().unwrap(),
    ]);
    assert!(err.contains("regularization fourier=1,jitter="), "{err}");
    // The model keeps the folder's class names, sorted as torchvision sorts them.
    assert!(out.contains("0 blue cross"), "{out}");
    assert_eq!(gradviz::io::load_npy(&vis).unwrap().size(), [4, 3, 32, 32]);
    gradviz(&[
        "ascend",
        "--model",
        m,
        "--classes",
        "1",
        "--init",
        "dataset:3",
        "--data",
        f,
        "--steps",
        "5",
        "--save-npy",
        vis.to_str().unwrap(),
    ]);

    // A model for colour data given gray data, or a folder that is not data: clear errors.
    let bad = Command::new(env!("CARGO_BIN_EXE_gradviz"))
        .args(["eval", "--model", m, "--dataset", "mnist"])
        .output()
        .unwrap();
    let e = String::from_utf8_lossy(&bad.stderr);
    assert!(
        !bad.status.success() && e.contains("28x28") && e.contains("3x32x32"),
        "{e}"
    );
    let bad = Command::new(env!("CARGO_BIN_EXE_gradviz"))
        .args(["train", "--data", d.join("nothing").to_str().unwrap(), "--out", m])
        .output()
        .unwrap();
    let e = String::from_utf8_lossy(&bad.stderr);
    assert!(!bad.status.success() && e.contains("does not exist"), "{e}");
}
