//! Same inputs, seed and thread count → byte-identical output files, for every subcommand
//! that uses randomness: `train` (shuffling, augmentation, dropout), `saliency`
//! (SmoothGrad's noise; IG for completeness) and `ascend` (noise starts, jitter, scale,
//! rotation). Each test runs the command line twice and compares the files' bytes.

mod common;

use common::{gradviz, repo, small_mnist};
use std::path::Path;

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn bytes(p: &Path) -> Vec<u8> {
    std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// Runs `args_for(run_dir)` twice in two directories and asserts that every named output
/// file has the same bytes.
fn assert_reruns_identical(outputs: &[&str], args_for: impl Fn(&Path) -> Vec<String>) {
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    for d in &dirs {
        let args = args_for(d.path());
        gradviz(&args.iter().map(String::as_str).collect::<Vec<_>>(), 2);
    }
    for name in outputs {
        let (a, b) = (
            bytes(&dirs[0].path().join(name)),
            bytes(&dirs[1].path().join(name)),
        );
        assert!(!a.is_empty(), "{name} is empty");
        assert!(a == b, "{name} differs between two runs with the same seed");
    }
}

fn model() -> String {
    repo().join("models/mnist_cnn.safetensors").display().to_string()
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[test]
fn train_reruns_write_identical_models() {
    let data = tempfile::tempdir().unwrap();
    small_mnist(data.path(), 384, 64);
    assert_reruns_identical(&["m.safetensors"], |d| {
        let out = d.join("m.safetensors");
        let mut a = strings(&[
            "train",
            "--dataset",
            "mnist",
            "--arch",
            "lenet",
            "--epochs",
            "2",
            "--seed",
            "3",
        ]);
        a.extend(strings(&[
            "--batch-size",
            "64",
            "--data",
            s(data.path()),
            "--out",
            s(&out),
        ]));
        a
    });
}

#[test]
fn smoothgrad_and_ig_reruns_write_identical_files() {
    for method in ["smoothgrad", "integrated-gradients"] {
        assert_reruns_identical(&["a.npy", "a.png"], |d| {
            let mut a = strings(&[
                "saliency",
                "--model",
                &model(),
                "--dataset",
                "mnist",
                "--indices",
                "0..4",
            ]);
            a.extend(strings(&[
                "--method",
                method,
                "--samples",
                "8",
                "--steps",
                "8",
                "--seed",
                "5",
            ]));
            a.extend(strings(&[
                "--save-npy",
                s(&d.join("a.npy")),
                "--plot",
                s(&d.join("a.png")),
            ]));
            a
        });
    }
}

#[test]
fn ascend_reruns_with_noise_and_random_transforms_write_identical_files() {
    assert_reruns_identical(&["x.npy", "x.png"], |d| {
        let mut a = strings(&[
            "ascend",
            "--model",
            &model(),
            "--classes",
            "0-3",
            "--init",
            "noise",
        ]);
        a.extend(strings(&[
            "--seed",
            "9",
            "--steps",
            "20",
            "--step-rule",
            "adam",
            "--lr",
            "0.02",
        ]));
        a.extend(strings(&[
            "--regularize",
            "default,scale=0.9-1.1,rotate=5",
            "--snapshot-every",
            "10",
        ]));
        a.extend(strings(&[
            "--save-npy",
            s(&d.join("x.npy")),
            "--plot",
            s(&d.join("x.png")),
        ]));
        a
    });
}
