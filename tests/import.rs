//! `gradviz import` of PyTorch models (TorchScript, `torch.save`d module, class + state_dict):
//! logits and activations against PyTorch's own (the same layer names from every form), the layer graph against the TorchScript
//! forward, analyses by the model's own layer names with frozen weights, softmax stripping,
//! and clear errors that leave no file behind.

mod common;

use common::{python, repo};
use gradviz::ascend::{ascend, AscendConfig};
use gradviz::graph::GraphModel;
use gradviz::import::{import_model, verify, ImportOptions, ImportReport};
use gradviz::metrics::{cascading_randomization, copy_as_graph, parametrized_layers, randomize_layer};
use gradviz::model::{Classifier, TorchScriptModel};
use gradviz::objective::Objective;
use gradviz::saliency::{last_conv_layer, Attribution, GradCam, Gradient, Reduce, Target};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use tch::{Kind, Tensor};

fn run_python(script: &str, dir: &Path) -> String {
    let out = Command::new(python())
        .arg("-c")
        .arg(script)
        .arg(dir)
        .env("PYTHONPATH", repo().join("scripts"))
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "python failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A residual CNN with BatchNorm and functional calls (`F.relu`, `x + y`, `torch.flatten`),
/// saved in all three forms (TorchScript both scripted and traced), with inputs, PyTorch's logits and forward-hook activations.
const MAKE_MODEL: &str = r#"
import os, sys, numpy as np, torch
d = sys.argv[1]
open(os.path.join(d, "resnet_def.py"), "w").write('''
import torch
from torch import nn
import torch.nn.functional as F

class Block(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv1 = nn.Conv2d(c, c, 3, padding=1)
        self.bn = nn.BatchNorm2d(c)
        self.conv2 = nn.Conv2d(c, c, 3, padding=1, bias=False)

    def forward(self, x):
        h = F.relu(self.bn(self.conv1(x)))
        return F.relu(self.conv2(h) + x)

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(1, 6, 3, padding=1)
        self.block1 = Block(6)
        self.pool = nn.MaxPool2d(2)
        self.fc = nn.Linear(6 * 14 * 14, 10)

    def forward(self, x):
        x = self.pool(self.block1(F.relu(self.stem(x))))
        return self.fc(torch.flatten(x, 1))
''')
sys.path.insert(0, d)
from resnet_def import Net
torch.manual_seed(0)
net = Net()
with torch.no_grad():  # statistics far from (0, 1), so that BatchNorm matters
    net.block1.bn.running_mean.uniform_(-0.5, 0.5)
    net.block1.bn.running_var.uniform_(0.5, 2.0)
    net.block1.bn.weight.uniform_(0.5, 1.5)
    net.block1.bn.bias.uniform_(-0.2, 0.2)
net.eval()
torch.save(net, os.path.join(d, "whole.pth"))
torch.save(net.state_dict(), os.path.join(d, "state.pth"))
torch.jit.script(net).save(os.path.join(d, "script.pt"))
torch.jit.trace(net, torch.rand(1, 1, 28, 28)).save(os.path.join(d, "traced.pt"))
x = torch.rand(5, 1, 28, 28, generator=torch.Generator().manual_seed(1))
acts = {}
for name in ["stem", "block1.bn", "block1.conv2", "block1", "pool", "fc"]:
    net.get_submodule(name).register_forward_hook(lambda m, i, o, name=name: acts.__setitem__(name, o))
with torch.no_grad():
    logits = net(x)
np.save(os.path.join(d, "x.npy"), x.numpy())
np.save(os.path.join(d, "logits.npy"), logits.numpy())
for name, a in acts.items():
    np.save(os.path.join(d, f"act_{name}.npy"), a.numpy())
with torch.no_grad():  # what the model gives for inputs normalized with mean 0.5, std 0.25
    np.save(os.path.join(d, "logits_normalized.npy"), net((x - 0.5) / 0.25).numpy())
bad = net.state_dict()
bad["fc.weight"] = torch.zeros(10, 99)
del bad["stem.bias"]
bad["head.weight"] = torch.zeros(3)
torch.save(bad, os.path.join(d, "bad_state.pth"))
"#;

/// The residual model's directory, made once per test run (the tests share it): the model
/// in all forms, PyTorch's outputs, and its import from `FILE.py:ClassName` + state_dict
/// (`imported_class.pt`).
fn residual() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("import-residual");
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        run_python(MAKE_MODEL, &dir);
        import_form(&dir, "class");
        dir
    })
}

fn imported_class() -> TorchScriptModel {
    TorchScriptModel::load(residual().join("imported_class.pt"), None, None).unwrap()
}

const HOOKED: [&str; 6] = ["stem", "block1.bn", "block1.conv2", "block1", "pool", "fc"];

fn npy(dir: &Path, name: &str) -> Tensor {
    gradviz::io::load_npy(dir.join(name)).unwrap()
}

fn quiet() -> ImportOptions {
    ImportOptions {
        quiet: true,
        ..Default::default()
    }
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f64 {
    (a - b).abs().max().double_value(&[])
}

/// The model in `dir` imported from one of its three forms.
fn import_form(dir: &Path, form: &str) -> ImportReport {
    let (src, opts) = match form {
        "torchscript" => (dir.join("script.pt").display().to_string(), quiet()),
        "traced" => (dir.join("traced.pt").display().to_string(), quiet()),
        "module" => (
            dir.join("whole.pth").display().to_string(),
            ImportOptions {
                module_files: vec![dir.join("resnet_def.py")],
                ..quiet()
            },
        ),
        "class" => (
            format!("{}:Net", dir.join("resnet_def.py").display()),
            ImportOptions {
                weights: Some(dir.join("state.pth")),
                ..quiet()
            },
        ),
        _ => unreachable!(),
    };
    let dst = dir.join(format!("imported_{form}.pt"));
    import_model(&src, &dst, &opts).unwrap_or_else(|e| panic!("{form}: {e:#}"))
}

#[test]
fn a_residual_model_imports_from_all_forms_with_pytorchs_logits_and_activations() {
    let dir = residual();
    let x = npy(dir, "x.npy");
    let want = npy(dir, "logits.npy");
    for form in ["torchscript", "traced", "module", "class"] {
        if form != "class" {
            import_form(dir, form); // the class form is the shared fixture's
        }
        let path = dir.join(format!("imported_{form}.pt"));
        let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&path).unwrap().permissions());
        assert_eq!(
            mode & 0o777,
            0o644,
            "{form}: an imported model is readable by all, like any output"
        );
        let m = &TorchScriptModel::load(&path, None, None).unwrap();
        assert_eq!(m.input_shape(), [1, 28, 28], "{form}");
        let d = max_abs_diff(&m.logits(&x).unwrap(), &want);
        assert!(d < 1e-5, "{form}: logits differ from PyTorch's by {d}");
        let layers = m.layer_names();
        for l in [
            "stem",
            "relu",
            "block1.conv1",
            "block1.bn",
            "add",
            "block1",
            "pool",
            "flatten",
            "fc",
        ] {
            assert!(
                layers.contains(&l.to_string()),
                "{form}: no layer {l} in {layers:?}"
            );
        }
        let (logits, acts) = m.forward_with(&x, &HOOKED).unwrap();
        assert!(max_abs_diff(&logits, &want) < 1e-5, "{form}");
        for (name, a) in HOOKED.iter().zip(&acts) {
            let hook = npy(dir, &format!("act_{name}.npy"));
            let d = max_abs_diff(a, &hook);
            assert!(
                d < 1e-5,
                "{form}: layer {name} differs from the forward hook by {d}"
            );
        }
        // The layer graph runs natively to the same logits and layer outputs.
        let g = m.graph().expect("a traced model has a layer graph");
        assert_eq!(g.layers(), layers, "{form}");
        let gm = GraphModel::new(
            g.clone(),
            m.named_tensors().into_iter().collect(),
            m.input_shape(),
            m.class_names().to_vec(),
        )
        .unwrap();
        let (glogits, gacts) = gm.forward_with(&x, &HOOKED).unwrap();
        assert!(max_abs_diff(&glogits, &logits) < 1e-5, "{form}");
        for (a, b) in acts.iter().zip(&gacts) {
            assert!(max_abs_diff(a, b) < 1e-5, "{form}");
        }
        assert!(
            g.layer_tensors("block1.bn")
                .contains(&"block1.bn.running_var".to_string()),
            "BatchNorm statistics are named tensors"
        );
        assert!(verify(m).unwrap().is_some(), "{form}");
    }
    // The normalization a model expects is folded in: the import takes images in [0, 1].
    let opts = ImportOptions {
        weights: Some(dir.join("state.pth")),
        normalize: Some((vec![0.5], vec![0.25])),
        ..quiet()
    };
    let src = format!("{}:Net", dir.join("resnet_def.py").display());
    let r = import_model(&src, &dir.join("normalized.pt"), &opts).unwrap();
    assert_eq!(r.model.layer_names()[0], "normalize");
    let d = max_abs_diff(&r.model.logits(&x).unwrap(), &npy(dir, "logits_normalized.npy"));
    assert!(d < 1e-5, "normalized logits differ by {d}");
}

#[test]
fn analyses_run_by_the_models_own_layer_names_and_leave_the_weights_untouched() {
    let m = imported_class();
    let x = npy(residual(), "x.npy");
    let before: Vec<Tensor> = m.parameters().iter().map(|t| t.copy()).collect();
    let named_before: HashMap<String, Tensor> = m
        .named_tensors()
        .into_iter()
        .map(|(n, t)| (n, t.copy()))
        .collect();

    let start = x.narrow(0, 0, 2) * 0.5 + 0.25;
    let cfg = AscendConfig {
        steps: 20,
        lr: 0.05,
        ..Default::default()
    };
    let r = ascend(&m, &Objective::channel("block1.conv2", 3), &start, &cfg).unwrap();
    let (first, last) = (&r.history[0].objective, &r.history[r.history.len() - 1].objective);
    assert!(
        last[0] > first[0] && last[1] > first[1],
        "ascent raised the channel: {first:?} -> {last:?}"
    );

    assert_eq!(last_conv_layer(&m).as_deref(), Some("block1.conv2"));
    let builtin = gradviz::model::BuiltinModel::new(
        gradviz::model::Arch::MnistCnn,
        gradviz::data::DatasetName::Mnist,
        0,
    )
    .unwrap();
    assert_eq!(last_conv_layer(&builtin).as_deref(), Some("conv4"));
    let cam = GradCam::new("block1.conv2")
        .attribute(&m, &x, &Target::Predicted)
        .unwrap();
    assert_eq!(cam.size(), x.size());
    assert!(cam.abs().sum(Kind::Float).double_value(&[]) > 0.0);
    let e = format!(
        "{:#}",
        GradCam::new("fc")
            .attribute(&m, &x, &Target::Predicted)
            .unwrap_err()
    );
    assert!(e.contains("not spatial maps"), "{e}");

    let steps = cascading_randomization(
        &m,
        &Gradient::default(),
        &x,
        &Target::Predicted,
        Reduce::Signed,
        0,
    )
    .unwrap();
    let with_weights = parametrized_layers(&m);
    assert_eq!(
        with_weights,
        ["stem", "block1.conv1", "block1.bn", "block1.conv2", "fc"]
    );
    let order: Vec<&str> = steps.iter().map(|s| s.layer.as_str()).collect();
    assert_eq!(
        order,
        [
            "trained",
            "fc",
            "block1.conv2",
            "block1.bn",
            "block1.conv1",
            "stem"
        ]
    );
    assert!(
        steps.last().unwrap().spearman_signed < 0.99,
        "fully randomized maps changed"
    );

    // A randomized copy really is different, and BatchNorm is reset to a fresh layer's identity.
    let mut copy = copy_as_graph(&m).unwrap();
    randomize_layer(&mut copy, "block1.bn", 1).unwrap();
    let t: HashMap<String, Tensor> = copy.named_tensors().into_iter().collect();
    assert_eq!(
        t["block1.bn.running_var"],
        Tensor::ones([6], (Kind::Float, tch::Device::Cpu))
    );
    randomize_layer(&mut copy, "fc", 1).unwrap();
    assert!(max_abs_diff(&copy.logits(&x).unwrap(), &m.logits(&x).unwrap()) > 1e-3);
    let e = format!("{:#}", randomize_layer(&mut copy, "pool", 1).unwrap_err());
    assert!(
        e.contains("'pool' has no weights") && e.contains("block1.conv2"),
        "{e}"
    );

    let after = m.parameters();
    assert_eq!(before.len(), after.len());
    for (a, b) in before.iter().zip(&after) {
        assert!(a.equal(b), "a weight changed during the analyses");
        assert!(!b.requires_grad(), "imported weights are frozen");
    }
    for (n, t) in m.named_tensors() {
        assert!(named_before[&n].equal(&t), "{n} changed");
    }
}

/// Models whose output is a probability: a final softmax (stripped) and a softmax followed
/// by another op (not separable).
const MAKE_SOFTMAX_MODELS: &str = r#"
import os, sys, numpy as np, torch
from torch import nn
d = sys.argv[1]
open(os.path.join(d, "soft_def.py"), "w").write('''
import torch
from torch import nn

class Soft(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(784, 16), nn.ReLU(), nn.Linear(16, 4))
        self.head = nn.Softmax(dim=1)

    def forward(self, x):
        return self.head(self.body(x))

class Clipped(Soft):
    def forward(self, x):
        return torch.softmax(self.body(x), dim=1) * 1.0
''')
sys.path.insert(0, d)
from soft_def import Soft, Clipped
torch.manual_seed(0)
for cls in (Soft, Clipped):
    torch.save(cls().state_dict(), os.path.join(d, f"{cls.__name__}.pth"))
m = Soft(); m.load_state_dict(torch.load(os.path.join(d, "Soft.pth"))); m.eval()
x = torch.rand(3, 1, 28, 28, generator=torch.Generator().manual_seed(2))
with torch.no_grad():
    np.save(os.path.join(d, "x.npy"), x.numpy())
    np.save(os.path.join(d, "probs.npy"), m(x).numpy())
"#;

#[test]
fn a_final_softmax_is_stripped_and_an_inseparable_one_is_warned_about() {
    let dir = tempfile::tempdir().unwrap();
    run_python(MAKE_SOFTMAX_MODELS, dir.path());
    let class = |name: &str| {
        let opts = ImportOptions {
            weights: Some(dir.path().join(format!("{name}.pth"))),
            class_names: Some(vec!["a".into(), "b".into(), "c".into(), "d".into()]),
            ..quiet()
        };
        let src = format!("{}:{name}", dir.path().join("soft_def.py").display());
        import_model(&src, &dir.path().join(format!("{name}.pt")), &opts).unwrap()
    };
    let r = class("Soft");
    assert!(
        r.notes
            .iter()
            .any(|n| n.contains("removed the final softmax of layer 'head'")),
        "{:?}",
        r.notes
    );
    assert!(r.warnings.is_empty(), "{:?}", r.warnings);
    assert!(r.model.imported().unwrap().softmax_removed);
    assert!(!r.model.layer_names().contains(&"head".to_string()));
    let x = npy(dir.path(), "x.npy");
    let logits = r.model.logits(&x).unwrap();
    let sums = logits.sum_dim_intlist(1, false, Kind::Float);
    assert!(
        (sums - 1.0).abs().max().double_value(&[]) > 1e-2,
        "outputs are logits, not probabilities"
    );
    let probs = npy(dir.path(), "probs.npy");
    assert!(max_abs_diff(&logits.softmax(-1, Kind::Float), &probs) < 1e-6);
    assert_eq!(r.model.class_names()[3], "d");

    let r = class("Clipped");
    assert!(r.model.imported().unwrap().outputs_probabilities);
    assert!(
        r.warnings
            .iter()
            .any(|w| w.contains("logit saliency") && w.contains("not available")),
        "{:?}",
        r.warnings
    );

    // The command line: one line per note, the warning on stderr, the layer listing.
    let gradviz = env!("CARGO_BIN_EXE_gradviz");
    let dst = dir.path().join("Clipped_cli.pt");
    let out = Command::new(gradviz)
        .arg("import")
        .arg(format!("{}:Soft", dir.path().join("soft_def.py").display()))
        .arg("--weights")
        .arg(dir.path().join("Soft.pth"))
        .arg("--out")
        .arg(&dst)
        .args(["--classes", "a,b,c,d", "--input-shape", "1,28,28", "--python"])
        .arg(python())
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("layer graph: verified"), "{stdout}");
    assert!(
        stdout.contains("note: removed the final softmax of layer 'head'"),
        "{stdout}"
    );
    let out = Command::new(gradviz)
        .args(["layers", "--model"])
        .arg(&dst)
        .output()
        .unwrap();
    let listing = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(
        listing.contains("body.1") && listing.contains("[16]") && listing.contains("12560"),
        "{listing}"
    );
    let out = Command::new(gradviz)
        .args(["import", "nowhere.pth", "--out"])
        .arg(dir.path().join("never.pt"))
        .arg("--python")
        .arg(python())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("source nowhere.pth does not exist"), "{stderr}");
    assert!(!dir.path().join("never.pt").exists());
}

fn assert_fails_cleanly(src: &str, opts: ImportOptions, expect: &[&str]) {
    let out = tempfile::tempdir().unwrap();
    let dst = out.path().join("out.pt");
    let e = match import_model(src, &dst, &opts) {
        Ok(_) => panic!("importing {src} should fail"),
        Err(e) => format!("{e:#}"),
    };
    for want in expect {
        assert!(e.contains(want), "error for {src} lacks '{want}': {e}");
    }
    let left: Vec<_> = std::fs::read_dir(out.path()).unwrap().collect();
    assert!(left.is_empty(), "a failed import left {left:?} behind");
}

#[test]
fn bad_sources_and_options_are_clear_errors_that_leave_no_file() {
    let d = residual();
    let class = format!("{}:Net", d.join("resnet_def.py").display());
    assert_fails_cleanly(
        &class,
        ImportOptions {
            weights: Some(d.join("bad_state.pth")),
            ..quiet()
        },
        &[
            "does not fit Net",
            "missing keys: stem.bias",
            "unexpected keys: head.weight",
            "fc.weight is [10, 99] in the file but [10, 1176] in Net",
        ],
    );
    std::fs::write(d.join("junk.pt"), b"this is no model at all").unwrap();
    assert_fails_cleanly(
        &d.join("junk.pt").display().to_string(),
        quiet(),
        &["junk.pt is not a PyTorch model"],
    );
    assert_fails_cleanly(
        &d.join("whole.pth").display().to_string(),
        ImportOptions {
            input_shape: Some([3, 32, 32]),
            module_files: vec![d.join("resnet_def.py")],
            ..quiet()
        },
        &["does not accept inputs of shape [N, 3, 32, 32]"],
    );
    assert_fails_cleanly(
        &d.join("missing.pth").display().to_string(),
        quiet(),
        &["missing.pth does not exist"],
    );
    assert_fails_cleanly(
        &d.join("state.pth").display().to_string(),
        quiet(),
        &["holds a state_dict", "FILE.py:ClassName"],
    );
    assert_fails_cleanly(
        &d.join("whole.pth").display().to_string(),
        quiet(),
        &["class cannot be found", "--module-file"],
    );
    assert_fails_cleanly(
        &class,
        ImportOptions {
            weights: Some(d.join("state.pth")),
            class_names: Some(vec!["only".into(), "three".into(), "names".into()]),
            ..quiet()
        },
        &["10 outputs but 3 class names"],
    );

    let m = imported_class();
    let x = npy(d, "x.npy");
    let e = format!("{:#}", m.forward_with(&x, &["block9"]).unwrap_err());
    assert!(
        e.contains("unknown layer 'block9'") && e.contains("\"block1.conv2\""),
        "{e}"
    );
    let e = format!(
        "{:#}",
        ascend(&m, &Objective::channel("conv9", 0), &x, &AscendConfig::default()).unwrap_err()
    );
    assert!(e.contains("conv9") && e.contains("block1.conv2"), "{e}");
}

#[test]
fn the_imported_file_runs_in_plain_pytorch_with_the_same_logits_and_layers() {
    let out = run_python(
        r#"
import hashlib, json, os, sys, numpy as np, torch
d = sys.argv[1]
m = torch.jit.load(os.path.join(d, "imported_class.pt"))
x = torch.from_numpy(np.load(os.path.join(d, "x.npy")))
want = torch.from_numpy(np.load(os.path.join(d, "logits.npy")))
hook = torch.from_numpy(np.load(os.path.join(d, "act_block1.conv2.npy")))
logits, acts = m.forward_with_layers(x, ["block1.conv2"])
meta = json.loads(m.gradviz_metadata())
sha = hashlib.sha256(open(os.path.join(d, "state.pth"), "rb").read()).hexdigest()
print((m(x) - want).abs().max().item(), (acts[0] - hook).abs().max().item(), meta["source"]["format"],
      meta["source"]["weights"]["file"], meta["source"]["weights"]["sha256"] == sha, meta["source"]["converter"]["torch"])
"#,
        residual(),
    );
    let parts: Vec<&str> = out.split_whitespace().collect();
    let logit_diff: f64 = parts[0].parse().unwrap();
    let act_diff: f64 = parts[1].parse().unwrap();
    assert!(logit_diff < 1e-5 && act_diff < 1e-5, "{out}");
    assert_eq!(&parts[2..5], ["pytorch-class", "state.pth", "True"], "{out}");
    assert!(parts[5].starts_with("2.13.0"), "{out}");
}

/// The exporter's `layers` argument, as the Keras converter uses it: a module whose top-level
/// children are the user-facing layers, some with sub-modules (`conv2d_1.conv`, `conv2d_1.act`).
#[test]
fn named_top_level_layers_group_their_sub_modules() {
    let dir = tempfile::tempdir().unwrap();
    run_python(
        r#"
import os, sys, torch
from torch import nn
from gradviz_import.export import export

class ConvAct(nn.Module):
    def __init__(self, i, o):
        super().__init__()
        self.conv = nn.Conv2d(i, o, 3)
        self.act = nn.ReLU()
    def forward(self, x):
        return self.act(self.conv(x))

torch.manual_seed(0)
m = nn.Sequential()
m.add_module("conv2d", ConvAct(1, 4))
m.add_module("max_pooling2d", nn.MaxPool2d(2))
m.add_module("conv2d_1", ConvAct(4, 8))
m.add_module("flatten", nn.Flatten())
m.add_module("dense", nn.Linear(8 * 11 * 11, 10))
names = ["conv2d", "max_pooling2d", "conv2d_1", "flatten", "dense"]
export(m, os.path.join(sys.argv[1], "k.pt"), source={"file": "stand-in", "format": "keras-stand-in"},
       input_shape=(1, 28, 28), layers=names, notes=["removed the final softmax of layer 'dense'"],
       softmax_removed=True)
"#,
        dir.path(),
    );
    let m = TorchScriptModel::load(dir.path().join("k.pt"), None, None).unwrap();
    assert_eq!(
        m.layer_names(),
        ["conv2d", "max_pooling2d", "conv2d_1", "flatten", "dense"]
    );
    assert!(
        verify(&m).unwrap().is_some(),
        "the graph agrees with the TorchScript forward"
    );
    let g = m.graph().unwrap();
    assert_eq!(
        g.layer_tensors("conv2d_1"),
        ["conv2d_1.conv.bias", "conv2d_1.conv.weight"]
    );
    let x = Tensor::rand([2, 1, 28, 28], (Kind::Float, tch::Device::Cpu));
    let (_, acts) = m.forward_with(&x, &["conv2d_1"]).unwrap();
    assert_eq!(acts[0].size(), [2, 8, 11, 11]);
    assert!(
        acts[0].min().double_value(&[]) >= 0.0,
        "a layer's output includes its activation"
    );
    let info = m.imported().unwrap();
    assert!(info.softmax_removed && info.notes[0].contains("'dense'"));
}
