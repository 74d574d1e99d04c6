//! Devices: `--device auto|cpu|cuda[:N]` and the `load_model_on` loaders.
//!
//! No machine here has a GPU, so the CUDA paths are tested as far as they can be without
//! one: the parsing, the errors for a CUDA device that does not exist, the choice among a
//! given number of devices (`resolve_among`), `auto`'s fallback to the CPU, and that
//! naming the CPU changes no output byte. Where libtorch does see a GPU, the same tests
//! check the success path instead. A lint (the last test) keeps tensors of an analysis from
//! being created on the CPU behind the model's back, which a CPU-only run cannot notice.

mod common;

use common::{gradviz, repo, small_mnist};
use gradviz::data;
use gradviz::device::{cuda_device_count, DeviceChoice, ACCEPTED, NO_CUDA_NOTE};
use gradviz::model::{self, BuiltinModel, Classifier, TorchScriptModel};
use gradviz::saliency::{Attribution, Gradient, IntegratedGradients, Score, Target};
use gradviz::tch::{CModule, Device, Tensor};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn mnist_model() -> PathBuf {
    repo().join("models/mnist_cnn.safetensors")
}

/// Runs the command line `gradviz LINE` (paths without spaces) and returns its output,
/// whether it succeeded or not.
fn run(line: &str) -> Output {
    Command::new(env!("CARGO_BIN_EXE_gradviz"))
        .args(line.split_whitespace())
        .env("OMP_NUM_THREADS", "2")
        .output()
        .unwrap()
}

/// Saliency maps of two MNIST test images plotted to `png`, on `device`.
fn saliency_line(png: &Path, device: &str) -> String {
    format!(
        "saliency --model {} --dataset mnist --indices 0..2 --plot {} --device {device}",
        s(&mnist_model()),
        s(png)
    )
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

// ---------------------------------------------------------------------------------------
// Parsing and resolving

#[test]
fn device_spellings_parse_and_print_back() {
    for (text, want) in [
        ("auto", DeviceChoice::Auto),
        ("cpu", DeviceChoice::Cpu),
        ("cuda", DeviceChoice::Cuda(0)),
        ("cuda:0", DeviceChoice::Cuda(0)),
        ("cuda:12", DeviceChoice::Cuda(12)),
    ] {
        let got: DeviceChoice = text.parse().unwrap();
        assert_eq!(got, want, "{text}");
        assert_eq!(got.to_string().parse::<DeviceChoice>().unwrap(), want);
    }
    assert_eq!(DeviceChoice::default(), DeviceChoice::Cpu);
}

#[test]
fn other_device_spellings_are_errors_that_list_the_accepted_ones() {
    for text in [
        "", "gpu", "CPU", "Cuda", "cuda:", "cuda:-1", "cuda:x", "cuda0", "cuda:1:2", " cpu", "mps",
    ] {
        let e = text.parse::<DeviceChoice>().unwrap_err().to_string();
        assert!(
            e.contains(&format!("'{text}'")) && e.contains(ACCEPTED),
            "{text:?}: {e}"
        );
    }
}

#[test]
fn cuda_choices_resolve_against_the_number_of_devices() {
    let two = 2;
    assert_eq!(
        DeviceChoice::Auto.resolve_among(two).unwrap(),
        (Device::Cuda(0), None)
    );
    assert_eq!(
        DeviceChoice::Cuda(1).resolve_among(two).unwrap(),
        (Device::Cuda(1), None)
    );
    assert_eq!(DeviceChoice::Cpu.resolve_among(two).unwrap(), (Device::Cpu, None));
    let e = DeviceChoice::Cuda(3).resolve_among(two).unwrap_err().to_string();
    assert!(
        e.contains("cuda:3") && e.contains("2 CUDA devices (cuda:0, cuda:1)"),
        "{e}"
    );
    let e = DeviceChoice::Cuda(1).resolve_among(1).unwrap_err().to_string();
    assert!(
        e.contains("cuda:1") && e.contains("1 CUDA device (cuda:0)"),
        "{e}"
    );
    assert_eq!(
        DeviceChoice::Auto.resolve_among(0).unwrap(),
        (Device::Cpu, Some(NO_CUDA_NOTE))
    );
    let e = DeviceChoice::Cuda(0).resolve_among(0).unwrap_err().to_string();
    assert!(e.contains("cuda:0") && e.contains("no CUDA device"), "{e}");
}

#[test]
fn this_machine_resolves_as_libtorch_sees_it() {
    let count = cuda_device_count();
    assert_eq!(DeviceChoice::Cpu.resolve().unwrap(), Device::Cpu);
    if count == 0 {
        assert_eq!(DeviceChoice::Auto.resolve().unwrap(), Device::Cpu);
        for choice in [DeviceChoice::Cuda(0), DeviceChoice::Cuda(3)] {
            let e = choice.resolve().unwrap_err().to_string();
            assert!(
                e.contains(&choice.to_string()) && e.contains("no CUDA device"),
                "{e}"
            );
        }
    } else {
        assert_eq!(DeviceChoice::Auto.resolve().unwrap(), Device::Cuda(0));
        assert_eq!(DeviceChoice::Cuda(0).resolve().unwrap(), Device::Cuda(0));
        let e = DeviceChoice::Cuda(count).resolve().unwrap_err().to_string();
        assert!(e.contains(&format!("cuda:{count}")), "{e}");
    }
}

// ---------------------------------------------------------------------------------------
// The command line

#[test]
fn every_subcommand_that_runs_a_model_takes_device() {
    for sub in [
        "train",
        "eval",
        "ascend",
        "saliency",
        "predict",
        "exemplars",
        "layers",
    ] {
        let out = run(&format!("{sub} --help"));
        let help = String::from_utf8_lossy(&out.stdout);
        assert!(
            help.contains("--device <DEVICE>") && help.contains("auto") && help.contains("[default: cpu]"),
            "gradviz {sub} --help:\n{help}"
        );
    }
}

#[test]
fn asking_for_a_missing_cuda_device_is_a_clear_error_and_writes_nothing() {
    if cuda_device_count() > 0 {
        eprintln!("skipping: this machine has a CUDA device (the success path is tested above)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let png = dir.path().join("a.png");
    for device in ["cuda", "cuda:3"] {
        let out = run(&saliency_line(&png, device));
        let e = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{e}");
        let asked = if device == "cuda" { "cuda:0" } else { device };
        assert!(
            e.contains(&format!("device {asked} was asked for")) && e.contains("no CUDA device"),
            "{e}"
        );
        assert!(!png.exists(), "--device {device} wrote {}", png.display());
    }
    let out = run(&format!("layers --model {} --device cuda:1", s(&mnist_model())));
    assert!(!out.status.success() && stderr(&out).contains("cuda:1"));
}

#[test]
fn an_unknown_device_is_an_error_exit_that_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let png = dir.path().join("a.png");
    let out = run(&saliency_line(&png, "bogus"));
    let e = stderr(&out);
    assert!(!out.status.success(), "{e}");
    assert!(
        e.contains("unknown device 'bogus'") && e.contains(ACCEPTED),
        "{e}"
    );
    assert!(!png.exists());
}

#[test]
fn auto_without_a_gpu_notes_the_cpu_and_the_record_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let png = dir.path().join("a.png");
    let line = saliency_line(&png, "auto");
    let out = gradviz(&line.split_whitespace().collect::<Vec<_>>(), 2);
    let used = if cuda_device_count() == 0 { "cpu" } else { "cuda:0" };
    let notes = stderr(&out).lines().filter(|l| *l == NO_CUDA_NOTE).count();
    assert_eq!(notes, usize::from(used == "cpu"), "{}", stderr(&out));
    let info = String::from_utf8_lossy(&gradviz(&["info", s(&png)], 2).stdout).into_owned();
    let has = |want: &str| info.lines().any(|l| l.trim() == want);
    assert!(has(&format!("device: {used}")), "{info}");
    assert_eq!(has("device-asked: auto"), used == "cpu", "{info}");
}

#[test]
fn naming_the_cpu_changes_no_output_byte() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let data = tempfile::tempdir().unwrap();
    small_mnist(data.path(), 128, 16);
    // The same output paths both times: the files' provenance records them.
    let (npy, png, st) = (d.join("a.npy"), d.join("a.png"), d.join("m.safetensors"));
    let saliency = format!(
        "saliency --model {} --dataset mnist --indices 0..3 --method smoothgrad --samples 4 --seed 2 \
         --save-npy {} --plot {}",
        s(&mnist_model()),
        s(&npy),
        s(&png)
    );
    let train = format!(
        "train --dataset mnist --arch lenet --epochs 1 --batch-size 32 --seed 4 --data {} --out {}",
        s(data.path()),
        s(&st)
    );
    let runs = |extra: &str| -> Vec<Vec<u8>> {
        for line in [&saliency, &train] {
            let line = format!("{line} {extra}");
            gradviz(&line.split_whitespace().collect::<Vec<_>>(), 2);
        }
        [&npy, &png, &st]
            .iter()
            .map(|p| {
                let bytes = std::fs::read(p).unwrap();
                std::fs::remove_file(p).unwrap();
                bytes
            })
            .collect()
    };
    let default = runs("");
    let cpu = runs("--device cpu");
    for (name, (a, b)) in ["saliency .npy", "saliency .png", "trained model"]
        .iter()
        .zip(default.iter().zip(&cpu))
    {
        assert!(
            !a.is_empty() && a == b,
            "{name}: --device cpu differs from no flag"
        );
    }
}

// ---------------------------------------------------------------------------------------
// The library

fn attributions(m: &dyn Classifier, x: &Tensor) -> Vec<Tensor> {
    let target = Target::Classes(vec![0, 1, 2, 3]);
    vec![
        Gradient::new(Score::Logit).attribute(m, x, &target).unwrap(),
        IntegratedGradients::new(8).attribute(m, x, &target).unwrap(),
    ]
}

fn assert_bitwise_equal(a: &[Tensor], b: &[Tensor], what: &str) {
    for (x, y) in a.iter().zip(b) {
        assert_eq!(x.device(), Device::Cpu, "{what}: result not on the CPU");
        assert!(x.equal(y), "{what}: results differ");
    }
}

#[test]
fn a_model_loaded_on_the_cpu_gives_the_default_results() {
    let x = data::bundled_mnist().unwrap().test.head(4).images;
    let path = mnist_model();
    let default = model::load_model(&path).unwrap();
    let on_cpu = model::load_model_on(&path, Device::Cpu).unwrap();
    assert_eq!(on_cpu.device(), Device::Cpu);
    assert_bitwise_equal(
        &attributions(&*default, &x),
        &attributions(&*on_cpu, &x),
        "safetensors",
    );
    let for_data = model::load_model_for_on(&path, Some(data::DatasetName::Mnist), Device::Cpu).unwrap();
    assert_bitwise_equal(
        &attributions(&*default, &x),
        &attributions(&*for_data, &x),
        "load_model_for_on",
    );

    // A TorchScript file (the built-in model traced) goes through CModule::load_on_device.
    let dir = tempfile::tempdir().unwrap();
    let pt = dir.path().join("m.pt");
    let builtin = BuiltinModel::load(&path).unwrap();
    let traced = CModule::create_by_tracing("m", "forward", &[x.shallow_clone()], &mut |xs| {
        vec![builtin.logits(&xs[0]).unwrap()]
    })
    .unwrap();
    traced.save(&pt).unwrap();
    let ts_default = model::load_model(&pt).unwrap();
    let ts_cpu = TorchScriptModel::load_on(&pt, None, None, Device::Cpu).unwrap();
    assert_eq!(ts_cpu.device(), Device::Cpu);
    assert_bitwise_equal(
        &attributions(&*ts_default, &x),
        &attributions(&ts_cpu, &x),
        "TorchScript",
    );
}

#[test]
fn moving_to_the_cpu_keeps_graph_and_builtin_models_as_they_are() {
    let x = data::bundled_mnist().unwrap().test.head(4).images;
    let mut builtin = BuiltinModel::load(mnist_model()).unwrap();
    let before = attributions(&builtin, &x);
    let graph = gradviz::metrics::copy_as_graph(&builtin)
        .unwrap()
        .to_device(Device::Cpu)
        .unwrap();
    assert_eq!(graph.device(), Device::Cpu);
    let diff = (graph.logits(&x).unwrap() - builtin.logits(&x).unwrap())
        .abs()
        .max()
        .double_value(&[]);
    assert!(diff < 1e-5, "graph and built-in logits differ by {diff}");
    builtin.to_device(Device::Cpu).unwrap();
    assert_eq!(builtin.device(), Device::Cpu);
    assert_bitwise_equal(&before, &attributions(&builtin, &x), "built-in moved to the CPU");
}

#[test]
fn a_missing_cuda_device_is_an_error_when_loading_too() {
    if cuda_device_count() > 0 {
        let m = model::load_model_on(mnist_model(), Device::Cuda(0)).unwrap();
        assert_eq!(m.device(), Device::Cuda(0));
        let x = data::bundled_mnist().unwrap().test.head(4).images;
        let cpu = model::load_model(mnist_model()).unwrap();
        let diff = (m.logits(&x).unwrap().to_device(Device::Cpu) - cpu.logits(&x).unwrap())
            .abs()
            .max()
            .double_value(&[]);
        assert!(diff < 1e-4, "GPU and CPU logits differ by {diff}");
        return;
    }
    // An error, not a panic in tch, from every loader and mover.
    let err = |r: anyhow::Result<()>| r.unwrap_err().to_string();
    let dir = tempfile::tempdir().unwrap();
    let pt = dir.path().join("m.pt");
    let x = data::bundled_mnist().unwrap().test.head(1).images;
    let builtin = BuiltinModel::load(mnist_model()).unwrap();
    CModule::create_by_tracing("m", "forward", &[x], &mut |xs| {
        vec![builtin.logits(&xs[0]).unwrap()]
    })
    .unwrap()
    .save(&pt)
    .unwrap();
    let graph = || gradviz::metrics::copy_as_graph(&builtin).unwrap();
    let cuda = Device::Cuda(0);
    for e in [
        err(model::load_model_on(mnist_model(), cuda).map(drop)),
        err(model::load_model_on(&pt, cuda).map(drop)),
        err(model::load_model_for_on(&pt, Some(data::DatasetName::Mnist), cuda).map(drop)),
        err(BuiltinModel::load(mnist_model()).unwrap().to_device(cuda)),
        err(graph().to_device(cuda).map(drop)),
    ] {
        assert!(e.contains("cuda:0") && e.contains("no CUDA device"), "{e}");
    }
    let e = err(model::load_model_on(mnist_model(), Device::Mps).map(drop));
    assert!(e.contains("CPU or a CUDA device"), "{e}");
}

// ---------------------------------------------------------------------------------------
// The lint

/// Modules whose tensors are data on their way in (loaders, preprocessing) or results on
/// their way out (plots, files): they may make tensors on the CPU.
const CPU_MODULES: &[&str] = &[
    "src/data/",
    "src/plot/",
    "src/figures.rs",
    "src/io.rs",
    "src/preprocess.rs",
    "src/import.rs",
    "src/cli/",
    "src/device.rs",
    "src/prelude.rs",
];

/// Where an analysis module may make a tensor on the CPU, and why. A new one fails the lint:
/// make it on the model's device (`model.device()`, `x.device()`, `to_model_device`), or
/// add it here with its reason.
const ALLOWED: &[(&str, usize, &str)] = &[
    (
        "src/ascend.rs",
        7,
        "Init draws its noise with a Rust generator and makes constants on the CPU (inputs, moved \
         at the entry of `ascend`); records, snapshots and the final images come back to the CPU",
    ),
    (
        "src/exemplars.rs",
        3,
        "crops and labels for the plots; activations read as numbers",
    ),
    ("src/graph.rs", 1, "the device of a GraphModel without tensors"),
    (
        "src/metrics.rs",
        6,
        "rankings are sorted on the CPU (with seeded tie-breaks), scores read as numbers, the \
         random ranking drawn by a Rust generator; randomized weights move to the weights' device",
    ),
    (
        "src/model.rs",
        8,
        "weights are initialized and loaded on the CPU (one generator, the same model on every \
         device) and moved after; predictions and saved tensors come back to the CPU",
    ),
    (
        "src/naturalness.rs",
        16,
        "images and features come back to the CPU for f64 statistics (pixel distances, \
         covariances, the Fréchet distance, spectra); the judges run on their own devices",
    ),
    ("src/robustness.rs", 1, "maps read as numbers"),
    (
        "src/saliency.rs",
        6,
        "targets and SmoothGrad/IG draws made on the CPU by a Rust generator, then moved; \
         predicted classes and IG's completeness read as numbers",
    ),
];

/// The places in `text` that make a tensor on the CPU: `Device::Cpu`, and statements with
/// `Tensor::from_slice(…)` or `Tensor::from(…)` (always on the CPU) that do not move it.
fn cpu_tensors(text: &str) -> usize {
    let explicit = text.matches("Device::Cpu").count();
    let implicit = ["Tensor::from_slice(", "Tensor::from("]
        .iter()
        .flat_map(|pat| text.match_indices(pat))
        .filter(|(at, _)| {
            let end = text[*at..].find(';').map_or(text.len(), |e| at + e);
            !text[*at..end].contains("to_device")
        })
        .count();
    explicit + implicit
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let p = entry.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
}

#[test]
fn analyses_make_no_tensor_on_the_cpu_outside_the_allow_list() {
    let mut files = vec![];
    rust_files(&repo().join("src"), &mut files);
    files.sort();
    let mut problems = vec![];
    for f in files {
        let rel = f
            .strip_prefix(repo())
            .unwrap()
            .to_string_lossy()
            .replace('\\', "/");
        if CPU_MODULES.iter().any(|m| rel.starts_with(m)) {
            continue;
        }
        let found = cpu_tensors(&std::fs::read_to_string(&f).unwrap());
        let allowed = ALLOWED.iter().find(|(p, _, _)| *p == rel).map_or(0, |a| a.1);
        if found != allowed {
            problems.push(format!("{rel}: {found} CPU tensors, {allowed} allowed"));
        }
    }
    assert!(
        problems.is_empty(),
        "tensors made on the CPU in analysis code (use the model's device, or update ALLOWED in tests/device.rs with a reason):\n{}",
        problems.join("\n")
    );
}

#[test]
fn the_lint_sees_cpu_tensors() {
    assert_eq!(
        cpu_tensors("let a = Tensor::zeros([2], (Kind::Float, Device::Cpu));"),
        1
    );
    assert_eq!(cpu_tensors("let t = Tensor::from_slice(&v);"), 1);
    assert_eq!(
        cpu_tensors("let t = Tensor::from_slice(&v).to_device(x.device());"),
        0
    );
    assert_eq!(
        cpu_tensors("let a = Tensor::zeros([2], (Kind::Float, model.device()));"),
        0
    );
}
