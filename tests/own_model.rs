//! "Your own model" as the README shows it: the commands of its section "Your own model" are
//! extracted and run as written (with this build's `gradviz` for `cargo run --release --`), and
//! the models they import are checked: the three PyTorch forms give the same logits, `.keras`
//! and `.h5` the same model, and LRP on the imported PyTorch model with skip connections equals
//! Zennit on the PyTorch source. Then a student's PyTorch colour CNN, trained on generated
//! 3×32×32 shapes and imported: saliency (with the colour figures), class and hidden-unit
//! ascent with the RGB preset, Grad-CAM and LRP (against Zennit) on it.

mod common;
mod import_helpers;

use common::{enrichment, gradient_methods};
use gradviz::ascend::{ascend, AscendConfig, Init};
use gradviz::data::shapes;
use gradviz::lrp::{Composite, Lrp};
use gradviz::model::{accuracy, load_model, Classifier, TorchScriptModel};
use gradviz::objective::Objective;
use gradviz::plot::saliency::{channel_maps, channel_reductions, SaliencyStyle, REDUCTIONS};
use gradviz::saliency::{last_conv_layer, reduce, Attribution, Gradient, Reduce, Target};
use import_helpers::*;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use tch::Tensor;

const README_SECTION: &str = "## Your own model";
const CARGO_RUN: &str = "cargo run --release --";

/// The first ```sh block of the README's section "Your own model".
fn readme_commands() -> String {
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let start = readme
        .find(&format!("\n{README_SECTION}\n"))
        .unwrap_or_else(|| panic!("README.md has no section '{README_SECTION}'"));
    let section = &readme[start + 1..];
    let section = &section[..section[3..].find("\n## ").map_or(section.len(), |e| e + 3)];
    let block = section
        .split("```sh\n")
        .nth(1)
        .and_then(|b| b.split("\n```").next())
        .unwrap_or_else(|| panic!("no ```sh block in '{README_SECTION}'"));
    block.to_string()
}

struct Fixture {
    dir: PathBuf,
    stdout: String,
}

/// The README's commands, run once in a fresh directory that links the repository's
/// `models/` and `.venv/` (the commands are written for the repository root).
fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let dir = fresh_dir("own-model-readme");
        for link in ["models", ".venv"] {
            std::os::unix::fs::symlink(repo().join(link), dir.join(link)).unwrap();
        }
        let block = readme_commands();
        let runs = block.matches(CARGO_RUN).count();
        assert!(
            runs >= 9,
            "expected the README's import and analysis commands, found {runs}:\n{block}"
        );
        let script = block.replace(CARGO_RUN, env!("CARGO_BIN_EXE_gradviz"));
        let out = Command::new("bash")
            .args(["-euo", "pipefail", "-c", &script])
            .current_dir(&dir)
            .env("GRADVIZ_PYTHON", python())
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "the README's commands failed:\n{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        Fixture { dir, stdout }
    })
}

fn model(name: &str) -> Box<dyn Classifier> {
    let path = fixture().dir.join(name);
    load_model(&path).unwrap_or_else(|e| panic!("{name}: {e:#}"))
}

/// The README's commands run as written, and what they print and write is what the README says.
#[test]
fn the_readme_commands_run_and_do_what_it_says() {
    let f = fixture();
    let out = &f.stdout;
    for line in [
        "note: removed the final softmax of layer 'predictions' (Dense)",
        "layers (25): stem, stem_bn, stem_relu, pool, block1.conv1",
        "add, block1.relu2, block1,",
        "accuracy: 0.9790",
    ] {
        assert!(out.contains(line), "'{line}' not in the output:\n{out}");
    }
    let listing: Vec<String> = out
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    assert!(
        listing.iter().any(|l| l == "2 conv2 [32, 11, 11] 4640"),
        "no conv2 row in the layer listing:\n{out}"
    );
    assert!(
        out.contains("block1.conv2:7"),
        "no ascent on block1.conv2 channel 7:\n{out}"
    );
    for png in ["keras_cam.png", "skip_block1.png"] {
        let img = image::open(f.dir.join(png)).unwrap_or_else(|e| panic!("{png}: {e}"));
        assert!(
            img.width() > 100 && img.height() > 50,
            "{png} is {}×{}",
            img.width(),
            img.height()
        );
    }
}

/// The same model in each form gives the same logits on real digits.
#[test]
fn every_form_of_a_model_imports_to_the_same_logits() {
    let x = gradviz::data::bundled_mnist().unwrap().test.head(64).images;
    for (reference, others) in [
        ("keras_cnn.pt", &["keras_cnn_h5.pt"][..]),
        ("skip.pt", &["skip_from_traced.pt", "skip_from_module.pt"][..]),
    ] {
        let want = tch::no_grad(|| model(reference).logits(&x)).unwrap();
        for other in others {
            let m = model(other);
            assert_eq!(m.layer_names(), model(reference).layer_names(), "{other}");
            let got = tch::no_grad(|| m.logits(&x)).unwrap();
            let d = rel_diff(&got, &want);
            eprintln!("{other} vs {reference}: logits max |Δ| {d:.2e}");
            assert!(d <= 1e-5, "{other}: logits differ from {reference}'s by {d:.2e}");
        }
    }
}

/// LRP on the imported skip-connection model (from its class and from its TorchScript file)
/// equals Zennit on the PyTorch class, whose `x + y` the reference computes with Zennit's `Sum`.
#[test]
fn lrp_on_the_imported_skip_model_equals_zennit() {
    let root = fresh_dir("own-model-zennit");
    let x = gradviz::data::bundled_mnist().unwrap().test.head(8).images;
    let targets: Vec<i64> = (0..8).map(|i| (7 * i + 1) % 10).collect();
    let repo_file = |p: &str| repo().join(p).to_str().unwrap().to_string();
    let source = format!(
        "{}:SkipCNN:{}",
        repo_file("models/torch_skip_cnn.py"),
        repo_file("models/torch_skip_cnn.pth")
    );
    let job = zennit_job(&root.join("skip"), &source, &x, &targets);
    run_zennit(&[job]);
    for file in ["skip.pt", "skip_from_traced.pt"] {
        let worst = assert_lrp_matches_zennit(model(file).as_ref(), &root.join("skip"));
        eprintln!("{file}: LRP vs Zennit, worst {worst:.2e}");
    }
}

#[test]
fn the_readme_section_is_found_and_names_every_source_form() {
    let block = readme_commands();
    for form in [
        "import models/keras_mnist_cnn.keras",
        "import keras_cnn.h5",
        ".py:SkipCNN --weights",
        "import skip_traced.pt",
        "import skip_module.pth",
    ] {
        assert!(block.contains(form), "the README does not show '{form}'");
    }
}

// ---------------------------------------------------------------------------------------
// An imported colour model: a student's PyTorch CNN on 3×32×32 images

/// Test images of the generated colour shapes, never seen in training.
const COLOUR_TEST_SEED: u64 = 99;

/// tests/reference/colour_cnn.py's `ColourCNN`, trained on 2,000 generated colour shapes by
/// that script (`colour_cnn.pth`) and imported from its class and state_dict (`colour.pt`),
/// once per run; returns their directory.
fn colour_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = fresh_dir("own-model-colour");
        let train = shapes::generate(2000, 0);
        train.images.write_npy(dir.join("x_train.npy")).unwrap();
        train.labels.write_npy(dir.join("y_train.npy")).unwrap();
        eprint!(
            "{}",
            run_python("tests/reference/colour_cnn.py", &[dir.to_str().unwrap()])
        );
        let src = format!(
            "{}:ColourCNN",
            repo().join("tests/reference/colour_cnn.py").display()
        );
        let classes = train.class_names.join(",");
        gradviz_ok(
            &dir,
            &[
                "import",
                &src,
                "--weights",
                "colour_cnn.pth",
                "--input-shape",
                "3,32,32",
                "--classes",
                &classes,
                "--out",
                "colour.pt",
            ],
        );
        dir
    })
}

fn colour_model() -> TorchScriptModel {
    TorchScriptModel::load(colour_dir().join("colour.pt"), None, None).unwrap()
}

#[test]
fn an_imported_colour_model_learns_and_its_saliency_points_at_the_shapes() {
    let m = colour_model();
    assert_eq!(m.input_shape(), [3, 32, 32]);
    assert_eq!(m.class_names(), shapes::class_names());
    assert_eq!(last_conv_layer(&m).as_deref(), Some("conv3"));
    let test = shapes::generate(500, COLOUR_TEST_SEED);
    let acc = accuracy(&m, &test.images, &test.labels).unwrap();
    eprintln!("imported colour model: test accuracy on generated shapes {acc:.4}");
    assert!(acc >= 0.75, "accuracy {acc}");

    let (x, masks) = shapes::generate_with_masks(10, COLOUR_TEST_SEED);
    let target = Target::labels(&x.labels);
    let mut methods = gradient_methods("conv3");
    methods.push(Box::new(Lrp::new(Composite::epsilon_plus(0.25))));
    for method in &methods {
        let attr = method.attribute(&m, &x.images, &target).unwrap();
        assert_eq!(attr.size(), [10, 3, 32, 32], "{}", method.name());
        let e = enrichment(&reduce(&attr, Reduce::MaxAbs).unwrap(), &masks);
        eprintln!("{}: saliency on the shape {e:.2}x its area", method.name());
        assert!(e > 1.3, "{}: enrichment {e}", method.name());
    }

    // The colour figures: the RGB image beside each of four channel reductions (wider), and
    // beside its three channels; a row per image.
    let attr = Gradient::default().attribute(&m, &x.images, &target).unwrap();
    let titles: Vec<String> = x.class_names.clone();
    let style = SaliencyStyle::default();
    let all = channel_reductions(&x.images, &attr, &REDUCTIONS, &titles, &style).unwrap();
    let per = channel_maps(&x.images, &attr, &titles, &style).unwrap();
    assert!(
        all.width > per.width && per.height > 10 * 32,
        "{}x{} vs {}x{}",
        all.width,
        all.height,
        per.width,
        per.height
    );
}

#[test]
fn class_and_hidden_unit_ascent_with_the_rgb_preset_on_an_imported_colour_model() {
    let m = colour_model();
    let before: Vec<Tensor> = m.parameters().iter().map(|t| t.copy()).collect();
    let classes: Vec<i64> = (0..10).collect();
    let x0 = Init::noise(0.5, 0.1, 0).make(10, [3, 32, 32]).unwrap();
    let cfg = AscendConfig {
        snapshot_every: 0,
        ..AscendConfig::regularized_32x32()
    };
    let run = ascend(&m, &Objective::logits(&classes), &x0, &cfg).unwrap();
    let p = run.final_target_probs();
    eprintln!("class visualizations: the model's target probabilities {p:?}");
    let reached = p.iter().filter(|&&v| v > 0.5).count();
    assert!(reached >= 8, "{p:?}");

    let cfg = AscendConfig { steps: 60, ..cfg };
    let start = x0.narrow(0, 0, 4);
    let run = ascend(&m, &Objective::channels("conv3", &[0, 1, 2, 3]), &start, &cfg).unwrap();
    let (first, last) = (&run.history[0].objective, &run.final_record().objective);
    eprintln!("conv3 channels 0-3: {first:?} -> {last:?}");
    for i in 0..4 {
        assert!(
            last[i] > 2.0 * first[i] + 0.01,
            "channel {i}: {} -> {}",
            first[i],
            last[i]
        );
    }
    for (a, b) in before.iter().zip(&m.parameters()) {
        assert!(a.equal(b), "a weight changed during ascent");
    }
}

#[test]
fn lrp_on_the_imported_colour_model_equals_zennit() {
    let m = colour_model();
    let root = fresh_dir("own-model-colour-zennit");
    let x = shapes::generate(8, COLOUR_TEST_SEED).images;
    let targets: Vec<i64> = (0..8).map(|i| (3 * i + 2) % 10).collect();
    let weights = colour_dir().join("colour_cnn.pth");
    let source = format!(
        "{}:ColourCNN:{}",
        repo().join("tests/reference/colour_cnn.py").display(),
        weights.display()
    );
    run_zennit(&[zennit_job(&root.join("colour"), &source, &x, &targets)]);
    let worst = assert_lrp_matches_zennit(&m, &root.join("colour"));
    eprintln!("colour model: LRP vs Zennit, worst {worst:.2e}");
}
