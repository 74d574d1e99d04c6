//! The Keras converter (scripts/gradviz_import/keras_model.py) against Keras' own computation.
//!
//! Each test runs one group of tests/fixtures/keras/keras_checks.py with the venv's python
//! (`GRADVIZ_PYTHON`, as in tests/model.rs). A group builds Keras models, saves them as
//! `.keras` and `.h5`, converts them and compares logits (1e-4), every layer's output (1e-4),
//! input gradients (1e-4 relative), and checks that torch.fx traces each module into ops of
//! src/graph.rs. The script prints one `ok ...` line per passed check and `FAIL ...` on the
//! first failure; these tests also count the `ok` lines, so a group that silently checks less
//! fails.

mod common;

use common::{python, repo};
use std::process::Command;

/// Runs one check group and returns its `ok` lines; panics with the script's output on failure.
fn run_group(group: &str) -> Vec<String> {
    let script = repo().join("tests/fixtures/keras/keras_checks.py");
    let out = Command::new(python())
        .arg(&script)
        .arg(group)
        .env("KERAS_BACKEND", "torch")
        .output()
        .expect("run python");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "keras_checks.py {group} failed:\n{stdout}\n{stderr}"
    );
    println!("{stdout}");
    stdout
        .lines()
        .filter(|l| l.starts_with("ok "))
        .map(str::to_string)
        .collect()
}

fn assert_checked(oks: &[String], at_least: usize, must_name: &[&str]) {
    assert!(
        oks.len() >= at_least,
        "only {} checks passed, expected at least {at_least}",
        oks.len()
    );
    for name in must_name {
        assert!(
            oks.iter().any(|l| l.contains(name)),
            "no passed check mentions {name}"
        );
    }
}

#[test]
fn every_layer_type_and_option_matches_keras_in_both_formats() {
    let oks = run_group("layers");
    assert_checked(
        &oks,
        92,
        &[
            "conv_same_stride2_odd_input.h5",
            "conv_groups.keras",
            "max_pool_same_3s2.h5",
            "avg_pool_same_asymmetric_tf.keras",
            "batch_norm_dense.h5",
            "reshape_image_to_image.keras",
            "rescaling_255.h5",
            "normalization_adapted.h5",
        ],
    );
}

#[test]
fn every_keras_activation_with_a_graph_equivalent_matches_keras() {
    let oks = run_group("activations");
    assert_checked(
        &oks,
        66,
        &[
            "activation_gelu.h5",
            "activation_hard_tanh.keras",
            "relu_layer_slope_max.h5",
        ],
    );
}

#[test]
fn sequential_functional_and_nested_models_strip_the_final_softmax() {
    let oks = run_group("models");
    assert_checked(
        &oks,
        16,
        &[
            "final_softmax_layer.h5",
            "sigmoid_head.keras",
            "functional_chain.h5",
            "tutorial_with_augmentation.keras",
            "mlp_28x28.h5",
            "load under any name",
        ],
    );
}

#[test]
fn legacy_tf_keras_2_h5_files_convert() {
    let oks = run_group("legacy_h5");
    assert_checked(
        &oks,
        5,
        &[
            "tf2_15_sequential.h5 vs NumPy",
            "tf2_15_functional.h5 vs NumPy",
            "byte for byte",
        ],
    );
}

#[test]
fn unsupported_models_and_bad_files_are_clear_errors() {
    let oks = run_group("errors");
    assert_checked(
        &oks,
        22,
        &[
            "unsupported LSTM",
            "a Lambda layer",
            "a skip connection",
            "a truncated .keras",
            "a truncated .h5",
            "a text file",
        ],
    );
}

#[test]
fn the_shipped_keras_mnist_model_matches_keras_on_real_digits() {
    let oks = run_group("mnist");
    assert_checked(&oks, 2, &["2000 real test digits"]);
}

#[test]
fn the_shipped_keras_mnist_model_is_reproduced_from_its_seed() {
    // Retrains (about 50 s of one core) and compares weights, test logits and accuracy.
    let oks = run_group("reproduce");
    assert_checked(&oks, 1, &[": REPRODUCED"]);
}
