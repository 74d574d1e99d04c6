//! Provenance round trips: every output kind of every subcommand that writes files carries a
//! record that `gradviz info` prints back (command, effective parameters with defaults,
//! seed, model SHA-256, data, indices); the library writers and readers agree; files that
//! are not gradviz outputs are clear errors.

mod common;

use common::{gradviz, repo, small_mnist};
use gradviz::model::{Arch, BuiltinModel};
use gradviz::provenance::{read_record, sha256_file, Provenance};
use gradviz::DatasetName;
use std::path::Path;

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn info(p: &Path) -> String {
    String::from_utf8(gradviz(&["info", s(p)], 1).stdout).unwrap()
}

fn info_error(p: &Path) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_gradviz"))
        .args(["info", s(p)])
        .output()
        .unwrap();
    assert!(!out.status.success(), "gradviz info {} succeeded", p.display());
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn model_path() -> std::path::PathBuf {
    repo().join("models/mnist_cnn.safetensors")
}

/// Checks what `gradviz info` prints for `file` against the record of a run of `command`.
fn assert_info_names(file: &Path, command: &str, expected: &[&str]) {
    let text = info(file);
    assert!(text.contains(&format!("command: {command}")), "{text}");
    assert!(text.contains("made by: gradviz "), "{text}");
    for e in expected {
        assert!(text.contains(e), "{}: '{e}' missing in:\n{text}", file.display());
    }
}

#[test]
fn saliency_outputs_record_their_run() {
    let d = tempfile::tempdir().unwrap();
    let (npy, png) = (d.path().join("a.npy"), d.path().join("a.png"));
    let model = model_path();
    gradviz(
        &[
            "saliency",
            "--model",
            s(&model),
            "--dataset",
            "mnist",
            "--indices",
            "0..3",
            "--method",
            "smoothgrad",
            "--samples",
            "4",
            "--seed",
            "7",
            "--save-npy",
            s(&npy),
            "--plot",
            s(&png),
        ],
        2,
    );
    let sha = sha256_file(&model).unwrap();
    for f in [&npy, &png] {
        assert_info_names(
            f,
            "saliency",
            &[
                "seed: 7",
                &format!("sha256 {sha}"),
                "data: mnist",
                "indices: 0..3",
                "  method: smoothgrad",
                "  samples: 4",
                // A default the command line did not give.
                "  noise: 0.15",
            ],
        );
    }
    let r = read_record(&npy).unwrap();
    assert_eq!(r, read_record(&png).unwrap());
    assert_eq!(r.model.as_ref().unwrap().sha256, sha);
    // The .npy's record lives in its sidecar: without it, info says so.
    std::fs::remove_file(d.path().join("a.npy.json")).unwrap();
    let e = info_error(&npy);
    assert!(e.contains("no sidecar") && e.contains("a.npy.json"), "{e}");
}

#[test]
fn ascend_outputs_record_their_run() {
    let d = tempfile::tempdir().unwrap();
    let (npy, png) = (d.path().join("x.npy"), d.path().join("x.png"));
    gradviz(
        &[
            "ascend",
            "--model",
            s(&model_path()),
            "--classes",
            "1,3",
            "--seed",
            "9",
            "--steps",
            "4",
            "--save-npy",
            s(&npy),
            "--plot",
            s(&png),
        ],
        2,
    );
    for f in [&npy, &png] {
        assert_info_names(
            f,
            "ascend",
            &["seed: 9", "  classes: 1,3", "  steps: 4", "  regularize: "],
        );
    }
}

#[test]
fn train_records_its_run_and_info_prints_the_model() {
    let data = tempfile::tempdir().unwrap();
    small_mnist(data.path(), 128, 32);
    let out = data.path().join("m.safetensors");
    gradviz(
        &[
            "train",
            "--dataset",
            "mnist",
            "--arch",
            "lenet",
            "--epochs",
            "1",
            "--seed",
            "4",
            "--half",
            "odd",
            "--data",
            s(data.path()),
            "--out",
            s(&out),
        ],
        2,
    );
    assert_info_names(
        &out,
        "train",
        &[
            "architecture: lenet",
            "trained on: odd of the train split",
            "classes (10): 0, 1, 2",
            "seed: 4",
            &format!("data: mnist at {}", data.path().display()),
            "  epochs: 1",
            "  batch-size: 128",
            "conv1",
        ],
    );
}

#[test]
fn exemplars_outputs_record_their_run() {
    let d = tempfile::tempdir().unwrap();
    let model = d.path().join("m.safetensors");
    BuiltinModel::new(Arch::Lenet, DatasetName::Mnist, 1)
        .unwrap()
        .save(&model)
        .unwrap();
    let (png, json) = (d.path().join("rows.png"), d.path().join("ex.json"));
    gradviz(
        &[
            "exemplars",
            "--model",
            s(&model),
            "--layer",
            "conv2",
            "--channel",
            "0",
            "--k",
            "2",
            "--steps",
            "0",
            "--plot",
            s(&png),
            "--save-json",
            s(&json),
        ],
        2,
    );
    let sha = sha256_file(&model).unwrap();
    for f in [&png, &json] {
        assert_info_names(f, "exemplars", &["  layer: conv2", &format!("sha256 {sha}")]);
    }
}

#[test]
fn a_plain_model_file_shows_its_contents_and_says_it_has_no_record() {
    let text = info(&model_path());
    assert!(text.contains("architecture: mnist-cnn"), "{text}");
    assert!(text.contains("provenance: none recorded"), "{text}");
    assert!(text.contains("conv1") && text.contains("logits"), "{text}");
}

#[test]
fn library_writers_round_trip_and_a_notebook_figure_carries_its_record() {
    let d = tempfile::tempdir().unwrap();
    let record = Provenance::new("notebook: étude «saliency»")
        .param("method", "integrated-gradients")
        .param("classes", "chat, 猫, 🐈")
        .seed(3)
        .model_file(model_path())
        .unwrap()
        .data("mnist")
        .indices("0..4");
    let fig = gradviz::plot::Figure::draw(20, 10, |_| Ok(())).unwrap();
    let png = d.path().join("f.png");
    fig.save_with(&png, &record).unwrap();
    assert_eq!(read_record(&png).unwrap(), record);
    // The record is in a tEXt chunk (Latin-1), as plain ASCII JSON.
    let bytes = std::fs::read(&png).unwrap();
    let at = bytes.windows(4).position(|w| w == b"tEXt").unwrap();
    assert!(bytes[at..at + 200].is_ascii());
    let npy = d.path().join("t.npy");
    gradviz::io::save_npy_with(
        &npy,
        &gradviz::tch::Tensor::ones([2, 3], gradviz::tch::kind::FLOAT_CPU),
        &record,
    )
    .unwrap();
    assert_eq!(read_record(&npy).unwrap(), record);
    let model = d.path().join("m.safetensors");
    BuiltinModel::new(Arch::Lenet, DatasetName::Mnist, 0)
        .unwrap()
        .save_with(&model, &record)
        .unwrap();
    assert_eq!(read_record(&model).unwrap(), record);
    // The model still loads as before.
    BuiltinModel::load(&model).unwrap();
}

#[test]
fn files_that_are_not_gradviz_outputs_are_clear_errors() {
    let d = tempfile::tempdir().unwrap();
    let plain_png = d.path().join("plain.png");
    gradviz::plot::Figure::draw(4, 4, |_| Ok(()))
        .unwrap()
        .save(&plain_png)
        .unwrap();
    assert!(info_error(&plain_png).contains("no gradviz provenance record"));
    let text = d.path().join("notes.txt");
    std::fs::write(&text, "hello").unwrap();
    assert!(info_error(&text).contains("not a gradviz output"));
    let json = d.path().join("other.json");
    std::fs::write(&json, "{\"a\": 1}").unwrap();
    assert!(info_error(&json).contains("no gradviz provenance record"));
    let bad = d.path().join("bad.json");
    std::fs::write(&bad, "{\"provenance\": {\"command\": 3}}").unwrap();
    assert!(info_error(&bad).contains("bad provenance record"));
    assert!(info_error(&d.path().join("missing.png")).contains("does not exist"));
}
