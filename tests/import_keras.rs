//! A student's Keras model end to end through the `gradviz` command line: built and saved by
//! Keras in the test (tests/reference/keras_reference.py), imported with `gradviz import`
//! from `.keras` and `.h5`, and compared with Keras' own numbers: logits, a hidden layer and
//! input gradients. Then the analyses by the model's Keras layer names (ascent, Grad-CAM,
//! LRP against Zennit, receptive fields), the errors, and the shipped course model.

mod common;
mod import_helpers;

use gradviz::ascend::{ascend, AscendConfig};
use gradviz::exemplars::{ReceptiveField, Span};
use gradviz::model::{Classifier, TorchScriptModel};
use gradviz::objective::Objective;
use gradviz::saliency::{last_conv_layer, Attribution, GradCam, Gradient, Score, Target};
use import_helpers::*;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use tch::{Kind, Tensor};

/// The Keras layers of the test's model, in forward order (the input layer is no layer of
/// the import: it has nothing to compute).
const STUDENT_LAYERS: [&str; 8] = [
    "conv_a", "bn_a", "pool_a", "conv_b", "drop", "flat", "hidden", "probs",
];

struct Fixture {
    dir: PathBuf,
    /// Keras' accuracy of the shipped model on the bundled test split, as the reference printed it.
    keras_accuracy: f64,
    /// What `gradviz import` printed for `student.keras`.
    import_stdout: String,
}

/// Keras' models and numbers, and their imports by the command line, made once per run.
fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let dir = fresh_dir("import-keras");
        let d = dir.to_str().unwrap();
        let out = run_python("tests/reference/keras_reference.py", &[d]);
        let keras_accuracy = out
            .lines()
            .find_map(|l| l.strip_prefix("keras accuracy "))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no accuracy in {out}"));
        let import_stdout = gradviz_ok(
            &dir,
            &[
                "import",
                "student.keras",
                "--out",
                "from_keras.pt",
                "--dataset",
                "mnist",
            ],
        );
        gradviz_ok(
            &dir,
            &[
                "import",
                "student.h5",
                "--out",
                "from_h5.pt",
                "--dataset",
                "mnist",
            ],
        );
        let shipped = repo().join("models/keras_mnist_cnn.keras");
        gradviz_ok(
            &dir,
            &[
                "import",
                shipped.to_str().unwrap(),
                "--out",
                "shipped.pt",
                "--dataset",
                "mnist",
            ],
        );
        Fixture {
            dir,
            keras_accuracy,
            import_stdout,
        }
    })
}

fn dir() -> &'static Path {
    &fixture().dir
}

fn imported(name: &str) -> TorchScriptModel {
    TorchScriptModel::load(dir().join(name), None, None).unwrap()
}

#[test]
fn keras_and_h5_imports_give_keras_own_logits_on_noise_and_real_digits() {
    let stdout = &fixture().import_stdout;
    assert!(
        stdout.contains("note: removed the final softmax of layer 'probs' (Dense)"),
        "{stdout}"
    );
    assert!(stdout.contains("layer graph: verified"), "{stdout}");
    for file in ["from_keras.pt", "from_h5.pt"] {
        let m = imported(file);
        assert_eq!(m.layer_names(), STUDENT_LAYERS, "{file}");
        assert_eq!(m.input_shape(), [1, 28, 28]);
        assert_eq!(m.class_names()[7], "7");
        let info = m.imported().unwrap();
        assert!(info.softmax_removed && !info.outputs_probabilities);
        for set in ["random", "digits"] {
            let x = npy(dir(), &format!("x_{set}.npy"));
            let (logits, acts) = m.forward_with(&x, &["conv_b"]).unwrap();
            let d = rel_diff(&logits, &npy(dir(), &format!("logits_{set}.npy")));
            eprintln!("{file} {set}: logits max |Δ| to Keras {d:.2e}");
            assert!(d <= 1e-4, "{file} {set}: logits differ from Keras' by {d:.2e}");
            let probs = logits.softmax(-1, Kind::Float);
            let d = rel_diff(&probs, &npy(dir(), &format!("probs_{set}.npy")));
            assert!(
                d <= 1e-5,
                "{file} {set}: softmax differs from Keras' output by {d:.2e}"
            );
            let d = rel_diff(&acts[0], &npy(dir(), &format!("conv_b_{set}.npy")));
            assert!(
                d <= 1e-4,
                "{file} {set}: layer conv_b differs from Keras' by {d:.2e}"
            );
        }
    }
}

#[test]
fn input_gradients_of_a_class_logit_equal_keras() {
    let targets = Vec::<i64>::try_from(&npy(dir(), "targets.npy")).unwrap();
    for file in ["from_keras.pt", "from_h5.pt"] {
        let m = imported(file);
        for set in ["random", "digits"] {
            let x = npy(dir(), &format!("x_{set}.npy"));
            let t = Target::Classes(targets[..x.size()[0] as usize].to_vec());
            let ours = Gradient::new(Score::Logit).attribute(&m, &x, &t).unwrap();
            let keras = npy(dir(), &format!("grad_{set}.npy"));
            let scale = keras.abs().max().double_value(&[]);
            assert!(scale > 0.0, "Keras' gradient is zero: the check would be empty");
            let d = (&ours - &keras).abs().max().double_value(&[]) / scale;
            eprintln!("{file} {set}: input gradient max |Δ| / max |Keras| = {d:.2e}");
            assert!(d <= 1e-4, "{file} {set}: gradients differ from Keras' by {d:.2e}");
        }
    }
}

#[test]
fn hidden_units_and_grad_cam_by_keras_layer_names() {
    let m = imported("from_keras.pt");
    let x = npy(dir(), "x_digits.npy").narrow(0, 0, 4);
    let before: Vec<Tensor> = m.parameters().iter().map(|t| t.copy()).collect();

    let cfg = AscendConfig {
        steps: 30,
        lr: 0.05,
        ..Default::default()
    };
    let start = x.narrow(0, 0, 2) * 0.5 + 0.25;
    let r = ascend(&m, &Objective::channel("conv_b", 5), &start, &cfg).unwrap();
    let (first, last) = (&r.history[0].objective, &r.final_record().objective);
    assert!(
        last[0] > first[0] && last[1] > first[1],
        "ascent raised channel 5 of conv_b: {first:?} -> {last:?}"
    );

    assert_eq!(last_conv_layer(&m).as_deref(), Some("conv_b"));
    for layer in ["conv_a", "bn_a", "pool_a", "conv_b"] {
        let cam = GradCam::new(layer).attribute(&m, &x, &Target::Predicted).unwrap();
        assert_eq!(cam.size(), x.size(), "{layer}");
        assert!(
            cam.max().double_value(&[]) > 0.0,
            "{layer}: an empty Grad-CAM map"
        );
    }
    let e = format!(
        "{:#}",
        GradCam::new("conv2")
            .attribute(&m, &x, &Target::Predicted)
            .unwrap_err()
    );
    assert!(
        e.contains("unknown layer 'conv2'") && e.contains("\"conv_b\""),
        "{e}"
    );
    for (a, b) in before.iter().zip(&m.parameters()) {
        assert!(a.equal(b), "a weight changed during the analyses");
    }

    // The same through the command line, by the Keras names.
    let out = gradviz_ok(
        dir(),
        &[
            "ascend",
            "--model",
            "from_h5.pt",
            "--layer",
            "conv_b",
            "--channel",
            "0-3",
            "--steps",
            "20",
            "--lr",
            "0.05",
            "--save-npy",
            "units.npy",
        ],
    );
    assert!(out.contains("conv_b:3"), "{out}");
    assert_eq!(npy(dir(), "units.npy").size(), [4, 1, 28, 28]);
    gradviz_ok(
        dir(),
        &[
            "saliency",
            "--model",
            "from_h5.pt",
            "--dataset",
            "mnist",
            "--indices",
            "0..4",
            "--method",
            "grad-cam",
            "--layer",
            "pool_a",
            "--save-npy",
            "cam.npy",
            "--plot",
            "cam.png",
        ],
    );
    assert_eq!(npy(dir(), "cam.npy").size(), [4, 1, 28, 28]);
    let err = gradviz_err(
        dir(),
        &[
            "ascend",
            "--model",
            "from_h5.pt",
            "--layer",
            "dense_1",
            "--steps",
            "2",
        ],
    );
    assert!(err.contains("'dense_1'") && err.contains("hidden"), "{err}");
    let listing = gradviz_ok(dir(), &["layers", "--model", "from_h5.pt"]);
    // Rows are `#  layer  output shape  parameters`, aligned in columns.
    let rows: Vec<String> = listing
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    for row in [
        "3 conv_b [16, 7, 7] 1168",
        "6 hidden [32] 25120",
        "1 bn_a [8, 28, 28] 32",
    ] {
        assert!(rows.iter().any(|r| r == row), "{row} not in\n{listing}");
    }
}

/// Zennit on the eager PyTorch module the converter builds from the same file (the converter
/// is checked against Keras to 1e-4 by tests/keras_convert.rs; here, its logits are checked
/// against Keras' again).
#[test]
fn lrp_on_imported_keras_models_equals_zennit() {
    let root = fresh_dir("import-keras-zennit");
    let x = npy(dir(), "x_digits.npy").narrow(0, 0, 8);
    let targets: Vec<i64> = (0..8).map(|i| (3 * i) % 10).collect();
    let student = dir().join("student.keras");
    let shipped = repo().join("models/keras_mnist_cnn.keras");
    let jobs = [
        zennit_job(&root.join("student"), student.to_str().unwrap(), &x, &targets),
        zennit_job(&root.join("shipped"), shipped.to_str().unwrap(), &x, &targets),
    ];
    run_zennit(&jobs);
    let d = rel_diff(
        &npy(&root.join("student"), "logits.npy"),
        &npy(dir(), "logits_digits.npy").narrow(0, 0, 8),
    );
    assert!(
        d <= 1e-4,
        "the reference module's logits differ from Keras' by {d:.2e}"
    );
    for (job, file) in [
        ("student", "from_keras.pt"),
        ("student", "from_h5.pt"),
        ("shipped", "shipped.pt"),
    ] {
        let worst = assert_lrp_matches_zennit(&imported(file), &root.join(job));
        eprintln!("{file}: LRP vs Zennit, worst {worst:.2e}");
    }
}

#[test]
fn receptive_fields_are_the_hand_computed_ones() {
    let m = imported("from_keras.pt");
    let span = |size, stride, offset| Span { size, stride, offset };
    let local = |s: Span| ReceptiveField::Local { rows: s, cols: s };
    // conv_a: 3×3, "same" (1 pixel each side) → 3 pixels from −1. pool_a: 2×2 of those, stride 2.
    // conv_b: 3×3, stride 2, "same" on 14×14 pads only after the map (Keras' odd pixel), so
    // unit i starts at pool unit 2i: 4 + 2·2 = 8 pixels, stride 4, from −1.
    for (layer, want) in [
        ("conv_a", local(span(3, 1, -1))),
        ("bn_a", local(span(3, 1, -1))),
        ("pool_a", local(span(4, 2, -1))),
        ("conv_b", local(span(8, 4, -1))),
        ("drop", local(span(8, 4, -1))),
        ("flat", ReceptiveField::Global),
        ("hidden", ReceptiveField::Global),
    ] {
        assert_eq!(ReceptiveField::of(&m, layer).unwrap(), want, "{layer}");
    }
    // The model agrees: the input gradient of conv_b's unit (3, 3), over all channels and a
    // batch of noise, is non-zero exactly on the rectangle the field gives.
    let rf = ReceptiveField::of(&m, "conv_b").unwrap();
    let crop = rf.crop(Some((3, 3)), 28, 28);
    assert_eq!((crop.top, crop.bottom, crop.left, crop.right), (11, 19, 11, 19));
    let x = npy(dir(), "x_random.npy").set_requires_grad(true);
    let (_, acts) = m.forward_with(&x, &["conv_b"]).unwrap();
    let unit = acts[0].narrow(2, 3, 1).narrow(3, 3, 1).sum(Kind::Float);
    let g = Tensor::run_backward(&[unit], &[&x], false, false)[0]
        .abs()
        .sum_dim_intlist([0i64, 1].as_slice(), false, Kind::Float);
    let nonzero = g.gt(0.0);
    let rows = Vec::<bool>::try_from(nonzero.any_dim(1, false)).unwrap();
    let cols = Vec::<bool>::try_from(nonzero.any_dim(0, false)).unwrap();
    let extent = |v: &[bool]| {
        let first = v.iter().position(|&b| b).unwrap() as i64;
        let last = v.iter().rposition(|&b| b).unwrap() as i64;
        (first, last + 1)
    };
    assert_eq!(extent(&rows), (crop.top, crop.bottom));
    assert_eq!(extent(&cols), (crop.left, crop.right));
}

/// The output directory holds nothing new after a failed import: no destination, no temp file.
fn assert_fails_and_leaves_nothing(args: &[&str], expect: &[&str]) {
    let out_dir = tempfile::tempdir().unwrap();
    let dst = out_dir.path().join("never.pt");
    let mut all: Vec<&str> = args.to_vec();
    all.extend(["--out", dst.to_str().unwrap()]);
    let err = gradviz_err(dir(), &all);
    for want in expect {
        assert!(err.contains(want), "{args:?}: the error lacks '{want}':\n{err}");
    }
    let left: Vec<_> = std::fs::read_dir(out_dir.path()).unwrap().collect();
    assert!(left.is_empty(), "{args:?} left {left:?} behind");
}

#[test]
fn an_unsupported_layer_and_a_wrong_input_shape_are_clear_errors_that_leave_no_file() {
    assert_fails_and_leaves_nothing(
        &["import", "unsupported.keras"],
        &[
            "layer 'upsample' (Conv2DTranspose) is not supported",
            "Conv2D, Dense",
        ],
    );
    // A model that pools globally runs on any image size: the shape Keras states decides.
    assert_fails_and_leaves_nothing(
        &["import", "gap.keras", "--input-shape", "1,32,32"],
        &[
            "gap.keras takes inputs of shape (28, 28, 1)",
            "--input-shape 1,28,28, not 1,32,32",
        ],
    );
    assert_fails_and_leaves_nothing(
        &["import", "student.h5", "--input-shape", "3,28,28"],
        &["--input-shape 1,28,28, not 3,28,28"],
    );
    assert_fails_and_leaves_nothing(
        &["import", "student.keras", "--dataset", "cifar10"],
        &["--input-shape 1,28,28, not 3,32,32"],
    );
    assert_fails_and_leaves_nothing(
        &["import", "student.keras", "--input-shape", "1,28"],
        &["--input-shape '1,28'", "C,H,W"],
    );
    std::fs::write(dir().join("notes.keras"), "not a model").unwrap();
    assert_fails_and_leaves_nothing(&["import", "notes.keras"], &["notes.keras is not a Keras model"]);
}

#[test]
fn the_shipped_course_model_keeps_keras_accuracy_when_imported() {
    let f = fixture();
    let out = gradviz_ok(dir(), &["eval", "--model", "shipped.pt", "--dataset", "mnist"]);
    let acc: f64 = out
        .lines()
        .find_map(|l| l.strip_prefix("accuracy: "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no accuracy in {out}"));
    eprintln!(
        "shipped Keras model: imported {acc:.4}, Keras {:.4}",
        f.keras_accuracy
    );
    assert_eq!(format!("{acc:.4}"), format!("{:.4}", f.keras_accuracy));
    assert!(acc >= 0.97, "{acc}");
    let m = imported("shipped.pt");
    let test = gradviz::data::bundled_mnist().unwrap().test;
    let logits = tch::no_grad(|| m.logits(&test.images)).unwrap();
    let d = rel_diff(&logits, &npy(dir(), "shipped_logits.npy"));
    assert!(
        d <= 1e-4,
        "logits on the 2,000 test digits differ from Keras' by {d:.2e}"
    );
}
