//! Same inputs, seed and thread count → byte-identical output files, for every subcommand
//! that uses randomness: `train` (shuffling, augmentation, dropout), `saliency`
//! (SmoothGrad's noise; IG for completeness) and `ascend` (noise starts, jitter, scale,
//! rotation), and for `import` (whose Python exporter writes a zip archive). Each test runs
//! the command line twice and compares the files' bytes.

mod common;

use common::{gradviz, repo, small_mnist};
use std::path::Path;

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn bytes(p: &Path) -> Vec<u8> {
    std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// Runs the command line `args_for(dir)` twice in one directory (removing its outputs in
/// between, so that both runs have the same command line, which the outputs' provenance
/// records) and asserts that every named output file has the same bytes.
fn assert_reruns_identical(outputs: &[&str], args_for: impl Fn(&Path) -> Vec<String>) {
    let dir = tempfile::tempdir().unwrap();
    let args = args_for(dir.path());
    let mut runs = vec![];
    for _ in 0..2 {
        gradviz(&args.iter().map(String::as_str).collect::<Vec<_>>(), 2);
        let files: Vec<Vec<u8>> = outputs.iter().map(|n| bytes(&dir.path().join(n))).collect();
        for n in outputs {
            std::fs::remove_file(dir.path().join(n)).unwrap();
        }
        runs.push(files);
    }
    for (i, name) in outputs.iter().enumerate() {
        let (a, b) = (&runs[0][i], &runs[1][i]);
        assert!(!a.is_empty(), "{name} is empty");
        assert!(a == b, "{name} differs between two runs with the same seed");
    }
}

fn model() -> String {
    repo().join("models/mnist_cnn.safetensors").display().to_string()
}

/// A command line written as one string (the paths used here have no spaces).
fn words(line: String) -> Vec<String> {
    line.split_whitespace().map(String::from).collect()
}

#[test]
fn train_reruns_write_identical_models() {
    let data = tempfile::tempdir().unwrap();
    small_mnist(data.path(), 384, 64);
    assert_reruns_identical(&["m.safetensors"], |d| {
        words(format!(
            "train --dataset mnist --arch lenet --epochs 2 --seed 3 --batch-size 64 --data {} --out {}",
            s(data.path()),
            s(&d.join("m.safetensors"))
        ))
    });
}

#[test]
fn smoothgrad_and_ig_reruns_write_identical_files() {
    for method in ["smoothgrad", "integrated-gradients"] {
        assert_reruns_identical(&["a.npy", "a.png"], |d| {
            words(format!(
                "saliency --model {} --dataset mnist --indices 0..4 --method {method} --samples 8 \
                 --steps 8 --seed 5 --save-npy {} --plot {}",
                model(),
                s(&d.join("a.npy")),
                s(&d.join("a.png"))
            ))
        });
    }
}

#[test]
fn ascend_reruns_with_noise_and_random_transforms_write_identical_files() {
    assert_reruns_identical(&["x.npy", "x.png"], |d| {
        words(format!(
            "ascend --model {} --classes 0-3 --init noise --seed 9 --steps 20 --step-rule adam \
             --lr 0.02 --regularize default,scale=0.9-1.1,rotate=5 --snapshot-every 10 \
             --save-npy {} --plot {}",
            model(),
            s(&d.join("x.npy")),
            s(&d.join("x.png"))
        ))
    });
}

/// Imports `src` (with `extra` options) twice, into differently named files in two
/// directories, and asserts that both files have the same bytes and name no local path
/// (the exporter's temporary directory, the venv's torch, the repository).
fn assert_imports_identical(src: &str, extra: &[&str]) {
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (a, b) = (d1.path().join("first.pt"), d2.path().join("second_name.pt"));
    for out in [&a, &b] {
        let mut args = vec!["import", src, "--out", s(out)];
        args.extend(extra);
        gradviz(&args, 2);
    }
    let (a, b) = (bytes(&a), bytes(&b));
    assert!(a == b, "importing {src} twice gave different bytes");
    for local in [repo().to_path_buf(), std::env::temp_dir()] {
        let local = format!("{}/", local.display());
        let leaked = a.windows(local.len()).any(|w| w == local.as_bytes());
        assert!(!leaked, "the file imported from {src} contains the path {local}");
    }
}

#[test]
fn keras_imports_write_identical_files() {
    assert_imports_identical(
        &repo().join("models/keras_mnist_cnn.keras").display().to_string(),
        &[],
    );
    let h5 = repo().join("tests/fixtures/keras/tf2_15_sequential.h5");
    assert_imports_identical(&h5.display().to_string(), &[]);
}

#[test]
fn pytorch_class_and_torchscript_imports_write_identical_files() {
    let class = format!("{}:SkipCNN", repo().join("models/torch_skip_cnn.py").display());
    let weights = repo().join("models/torch_skip_cnn.pth").display().to_string();
    assert_imports_identical(&class, &["--weights", &weights, "--dataset", "mnist"]);
    let dir = tempfile::tempdir().unwrap();
    let ts = dir.path().join("mnist_cnn.pt");
    let export = std::process::Command::new(gradviz::import::python_interpreter(None))
        .arg(repo().join("scripts/export_torchscript.py"))
        .args([Path::new(&model()), &ts])
        .output()
        .unwrap();
    assert!(
        export.status.success(),
        "{}",
        String::from_utf8_lossy(&export.stderr)
    );
    assert_imports_identical(s(&ts), &["--dataset", "mnist"]);
}
