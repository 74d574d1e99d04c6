//! Built-in models (save/load, wrong architecture, named layers), TorchScript models, and the
//! shipped models' accuracy.

mod common;

use common::{python, repo};
use gradviz::data::{self, DatasetName};
use gradviz::model::{self, Arch, BuiltinModel, Classifier, TorchScriptModel};
use std::path::{Path, PathBuf};
use std::process::Command;
use tch::{Kind, Tensor};

fn err_of<T>(r: anyhow::Result<T>) -> String {
    match r {
        Ok(_) => panic!("expected an error"),
        Err(e) => format!("{e:#}"),
    }
}

fn run_python(script: &str, args: &[&Path]) -> String {
    let out = Command::new(python())
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "python failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn save_load_round_trip_keeps_logits_and_metadata() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.safetensors");
    let m = BuiltinModel::new(Arch::MnistCnn, DatasetName::FashionMnist, 3).unwrap();
    m.save(&path).unwrap();
    let back = BuiltinModel::load(&path).unwrap();
    assert_eq!(back.arch, Arch::MnistCnn);
    assert_eq!(back.dataset, Some(DatasetName::FashionMnist));
    assert_eq!(back.class_names()[9], "Ankle boot");
    let x = Tensor::rand([4, 1, 28, 28], (Kind::Float, tch::Device::Cpu));
    assert_eq!(m.logits(&x).unwrap(), back.logits(&x).unwrap());
    // Loaded weights are frozen: analyses can never train them.
    assert!(back.parameters().iter().all(|p| !p.requires_grad()));
    // No temp files left beside the model.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
}

#[test]
fn different_seeds_give_different_models() {
    let a = BuiltinModel::new(Arch::Lenet, DatasetName::Mnist, 1).unwrap();
    let b = BuiltinModel::new(Arch::Lenet, DatasetName::Mnist, 2).unwrap();
    let x = Tensor::ones([1, 1, 28, 28], (Kind::Float, tch::Device::Cpu));
    assert_ne!(a.logits(&x).unwrap(), b.logits(&x).unwrap());
}

#[test]
fn loading_into_the_wrong_architecture_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.safetensors");
    BuiltinModel::new(Arch::MnistCnn, DatasetName::Mnist, 0)
        .unwrap()
        .save(&path)
        .unwrap();
    let e = err_of(BuiltinModel::load_as(&path, Arch::Lenet));
    assert!(
        e.contains("holds a 'mnist-cnn' model, not the requested 'lenet'"),
        "{e}"
    );
    // Metadata that lies about the architecture is caught by the tensors themselves.
    let mut bytes = std::fs::read(&path).unwrap();
    let (from, to) = (b"\"mnist-cnn\"", b"\"lenet\"    "); // same length keeps the header valid
    let at = bytes
        .windows(from.len())
        .position(|w| w == from)
        .expect("arch in header");
    bytes[at..at + from.len()].copy_from_slice(to);
    let forged_path = dir.path().join("forged.safetensors");
    std::fs::write(&forged_path, &bytes).unwrap();
    let e = err_of(BuiltinModel::load(&forged_path));
    assert!(e.contains("does not belong to architecture lenet"), "{e}");
}

#[test]
fn corrupt_and_missing_model_files_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let e = err_of(model::load_model(dir.path().join("none.safetensors")));
    assert!(e.contains("does not exist"), "{e}");
    let bad = dir.path().join("bad.safetensors");
    std::fs::write(&bad, b"this is not a model").unwrap();
    let e = err_of(model::load_model(&bad));
    assert!(
        e.contains("bad.safetensors") && e.contains("not a valid safetensors"),
        "{e}"
    );
    let bad_pt = dir.path().join("bad.pt");
    std::fs::write(&bad_pt, b"nope").unwrap();
    let e = err_of(model::load_model(&bad_pt));
    assert!(e.contains("bad.pt") && e.contains("TorchScript"), "{e}");
}

#[test]
fn wrong_input_shape_is_an_error_not_a_panic() {
    let m = BuiltinModel::new(Arch::MnistCnn, DatasetName::Mnist, 0).unwrap();
    let e = err_of(m.logits(&Tensor::zeros([2, 3, 32, 32], (Kind::Float, tch::Device::Cpu))));
    assert!(
        e.contains("[2, 3, 32, 32]") && e.contains("expected [N, 1, 28, 28]"),
        "{e}"
    );
    let e = err_of(m.logits(&Tensor::zeros([28, 28], (Kind::Float, tch::Device::Cpu))));
    assert!(e.contains("expected [N, 1, 28, 28]"), "{e}");
    let nan = Tensor::full([1, 1, 28, 28], f64::NAN, (Kind::Float, tch::Device::Cpu));
    let e = err_of(model::check_finite(&nan, "input"));
    assert!(e.contains("784 NaN"), "{e}");
}

#[test]
fn named_layers_give_activations_and_unknown_ones_list_the_valid() {
    let m = BuiltinModel::new(Arch::MnistCnn, DatasetName::Mnist, 0).unwrap();
    let x = Tensor::rand([2, 1, 28, 28], (Kind::Float, tch::Device::Cpu));
    let (logits, acts) = m.forward_with(&x, &["conv2", "pool2", "fc1"]).unwrap();
    assert_eq!(acts[0].size(), [2, 32, 28, 28]);
    assert_eq!(acts[1].size(), [2, 64, 7, 7]);
    assert_eq!(acts[2].size(), [2, 128]);
    assert_eq!(logits, m.logits(&x).unwrap());
    assert!(
        acts[0].min().double_value(&[]) >= 0.0,
        "conv blocks include their ReLU"
    );
    let e = err_of(m.forward_with(&x, &["conv9"]));
    assert!(
        e.contains("unknown layer 'conv9'") && e.contains("\"conv1\"") && e.contains("\"logits\""),
        "{e}"
    );
}

#[test]
fn tiny_torchscript_model_built_by_python_loads_and_agrees() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tiny.pt");
    // A linear classifier with known weights; prints its logits for a constant 0.5 image.
    let script = r#"
import sys, torch
from torch import nn
net = nn.Sequential(nn.Flatten(), nn.Linear(784, 3))
with torch.no_grad():
    net[1].weight.copy_(torch.linspace(-1, 1, 3 * 784).reshape(3, 784))
    net[1].bias.copy_(torch.tensor([0.1, -0.2, 0.3]))
torch.jit.script(net).save(sys.argv[1])
print(" ".join(f"{v:.6f}" for v in net(torch.full((1, 1, 28, 28), 0.5))[0].tolist()))
"#;
    let expected: Vec<f64> = run_python(script, &[&path])
        .split_whitespace()
        .map(|s| s.parse().unwrap())
        .collect();
    let m = TorchScriptModel::load(&path, None, Some(vec!["a".into(), "b".into(), "c".into()])).unwrap();
    assert_eq!(m.input_shape(), [1, 28, 28]);
    assert_eq!(m.num_classes(), 3);
    let got = m
        .logits(&Tensor::full(
            [1, 1, 28, 28],
            0.5,
            (Kind::Float, tch::Device::Cpu),
        ))
        .unwrap();
    for (k, e) in expected.iter().enumerate() {
        assert!(
            (got.double_value(&[0, k as i64]) - e).abs() < 1e-3,
            "logit {k}: {got} vs {e}"
        );
    }
    let e = err_of(m.forward_with(
        &Tensor::zeros([1, 1, 28, 28], (Kind::Float, tch::Device::Cpu)),
        &["fc"],
    ));
    assert!(e.contains("exposes no named layers"), "{e}");
    let e = err_of(TorchScriptModel::load(&path, None, Some(vec!["only one".into()])));
    assert!(e.contains("3 outputs but 1 class names"), "{e}");
    // The generic loader probes the input shape.
    assert_eq!(model::load_model(&path).unwrap().input_shape(), [1, 28, 28]);
}

#[test]
fn exported_torchscript_matches_the_builtin_model() {
    let dir = tempfile::tempdir().unwrap();
    let st = dir.path().join("m.safetensors");
    let pt = dir.path().join("m.pt");
    let m = BuiltinModel::new(Arch::MnistCnn, DatasetName::Mnist, 11).unwrap();
    m.save(&st).unwrap();
    let out = Command::new(python())
        .arg(repo().join("scripts/export_torchscript.py"))
        .args([&st, &pt])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let ts = model::load_model(&pt).unwrap();
    let x = data::bundled_mnist().unwrap().test.head(16).images;
    let diff = (m.logits(&x).unwrap() - ts.logits(&x).unwrap())
        .abs()
        .max()
        .double_value(&[]);
    assert!(diff < 1e-4, "max logit difference {diff}");
}

fn shipped(name: &str) -> PathBuf {
    repo().join("models").join(name)
}

#[test]
fn shipped_mnist_model_reaches_98_percent() {
    let m = model::load_model(shipped("mnist_cnn.safetensors")).unwrap();
    let test = data::bundled_mnist().unwrap().test;
    let acc = model::accuracy(m.as_ref(), &test.images, &test.labels).unwrap();
    assert!(acc >= 0.98, "accuracy {acc}");
}

#[test]
fn shipped_judge_is_an_independent_architecture() {
    let judge = BuiltinModel::load(shipped("mnist_lenet_judge.safetensors")).unwrap();
    assert_eq!(judge.arch, Arch::Lenet);
    let test = data::bundled_mnist().unwrap().test;
    let acc = model::accuracy(&judge, &test.images, &test.labels).unwrap();
    assert!(acc >= 0.95, "judge accuracy {acc}");
}

#[test]
fn shipped_fashion_model_reaches_90_percent() {
    if !Path::new(data::DEBIAN_FASHION_MNIST_DIR).is_dir() {
        eprintln!("skipping: Fashion-MNIST not installed");
        return;
    }
    let m = model::load_model(shipped("fashion_mnist_cnn.safetensors")).unwrap();
    let test = data::load(DatasetName::FashionMnist, None).unwrap().test;
    let acc = model::accuracy(m.as_ref(), &test.images, &test.labels).unwrap();
    assert!(acc >= 0.90, "accuracy {acc}");
}
