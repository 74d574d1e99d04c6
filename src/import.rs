//! `gradviz import`: a user's own classifier (Keras `.keras`/`.h5`, or PyTorch as TorchScript,
//! a `torch.save`d module, or `FILE.py:ClassName` with a `state_dict`) becomes one TorchScript
//! file that works wherever gradviz takes a model, with the source's own layer names.
//!
//! The conversion runs in Python (the `gradviz_import` package in `scripts/`, embedded in
//! this binary): torch.fx traces the model, a final softmax is removed, and the layers, the
//! [`LayerGraph`](crate::graph::LayerGraph) and the provenance are stored in the file. Rust
//! then **verifies** the written file before it replaces the destination: the TorchScript
//! forward equals the layer graph's forward on random inputs, every layer's activation has
//! the shape the graph gives it, and the layer-reading forward returns the same logits.

use crate::graph::GraphModel;
use crate::model::{Classifier, TorchScriptModel};
use anyhow::{bail, ensure, Context, Result};
use rand::{rngs::StdRng, Rng, SeedableRng};
use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use tch::{Kind, Tensor};

/// The Python package, file by file (embedded by build.rs).
const PACKAGE: &[(&str, &str)] = include!(concat!(env!("OUT_DIR"), "/importer_files.rs"));

/// Options of an import beyond the source and destination.
#[derive(Debug, Clone, Default)]
pub struct ImportOptions {
    /// `[C, H, W]` of one input (default: what the source says, else probed 1×28×28, 3×32×32).
    pub input_shape: Option<[i64; 3]>,
    /// Class names (default: "0", "1", …).
    pub class_names: Option<Vec<String>>,
    /// A `state_dict` file, for a source `FILE.py:ClassName`.
    pub weights: Option<PathBuf>,
    /// `.py` files that define the classes a `torch.save`d module needs.
    pub module_files: Vec<PathBuf>,
    /// The per-channel input `(mean, std)` the model expects; folded into the model as a
    /// `normalize` layer so that it takes images in [0, 1].
    pub normalize: Option<(Vec<f64>, Vec<f64>)>,
    /// The Python interpreter (default: `GRADVIZ_PYTHON`, then the repository's `.venv`,
    /// then `python3`).
    pub python: Option<PathBuf>,
    /// Print no progress lines.
    pub quiet: bool,
}

/// What an import did.
#[derive(Debug)]
pub struct ImportReport {
    /// The imported model, loaded from the destination.
    pub model: TorchScriptModel,
    /// One line each, e.g. "removed the final softmax of layer 'dense_1' …".
    pub notes: Vec<String>,
    /// E.g. that logit saliency is not available for a model that outputs probabilities.
    pub warnings: Vec<String>,
    /// Max |logits of the TorchScript forward − logits of the layer graph's forward| on the
    /// random check inputs, when the model has a graph.
    pub graph_max_abs_diff: Option<f64>,
}

/// The interpreter that runs the exporter.
pub fn python_interpreter(given: Option<&Path>) -> PathBuf {
    if let Some(p) = given {
        return p.to_path_buf();
    }
    if let Some(p) = std::env::var_os("GRADVIZ_PYTHON") {
        return PathBuf::from(p);
    }
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python");
    if venv.is_file() {
        venv
    } else {
        PathBuf::from("python3")
    }
}

/// Imports `src` into the TorchScript file `dst`. Nothing is written to `dst` unless the
/// export and its verification succeed.
pub fn import_model(src: &str, dst: &Path, opts: &ImportOptions) -> Result<ImportReport> {
    let dir = match dst.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    ensure!(dir.is_dir(), "output directory {} does not exist", dir.display());
    check_source_exists(src, opts)?;
    let package = tempfile::tempdir().context("cannot create a temporary directory")?;
    write_package(package.path())?;
    let tmp = tempfile::Builder::new()
        .prefix(".gradviz-import-")
        .suffix(".pt")
        .tempfile_in(dir)
        .with_context(|| format!("cannot create a file in {}", dir.display()))?;
    let report_path = package.path().join("report.json");
    run_exporter(src, tmp.path(), &report_path, package.path(), opts)?;
    let model = TorchScriptModel::load(tmp.path(), None, None)
        .context("gradviz cannot load the model the exporter wrote")?;
    let graph_max_abs_diff = verify(&model).context("the imported model failed verification")?;
    let info = model
        .imported()
        .context("the exported file carries no gradviz metadata")?;
    let (notes, warnings) = (info.notes.clone(), info.warnings.clone());
    crate::io::make_readable(tmp.path())?;
    tmp.persist(dst)
        .with_context(|| format!("cannot write {}", dst.display()))?;
    // Reload from the final path, so that the model describes itself by it.
    let model = TorchScriptModel::load(dst, None, None)?;
    Ok(ImportReport {
        model,
        notes,
        warnings,
        graph_max_abs_diff,
    })
}

/// Fails early, before starting Python, when a file the import needs is missing.
fn check_source_exists(src: &str, opts: &ImportOptions) -> Result<()> {
    // `FILE.py:ClassName` names a file and a class in it.
    let file = match src.rsplit_once(':') {
        Some((f, class)) if f.ends_with(".py") && !class.is_empty() => f,
        _ => src,
    };
    ensure!(Path::new(file).exists(), "source {file} does not exist");
    let named = opts.weights.iter().chain(&opts.module_files);
    for f in named {
        ensure!(f.is_file(), "{} does not exist", f.display());
    }
    Ok(())
}

fn write_package(root: &Path) -> Result<()> {
    let pkg = root.join("gradviz_import");
    std::fs::create_dir(&pkg).with_context(|| format!("cannot create {}", pkg.display()))?;
    for (name, text) in PACKAGE {
        std::fs::write(pkg.join(name), text).with_context(|| format!("cannot write {name}"))?;
    }
    Ok(())
}

fn exporter_args(src: &str, out: &Path, report: &Path, opts: &ImportOptions) -> Result<Vec<String>> {
    let mut args: Vec<String> = vec!["-m".into(), "gradviz_import".into(), src.into()];
    let path = |p: &Path| p.to_string_lossy().into_owned();
    args.extend(["--out".into(), path(out), "--report".into(), path(report)]);
    if let Some([c, h, w]) = opts.input_shape {
        args.extend(["--input-shape".into(), format!("{c},{h},{w}")]);
    }
    if let Some(names) = &opts.class_names {
        args.extend(["--classes-json".into(), serde_json::to_string(names)?]);
    }
    if let Some(w) = &opts.weights {
        args.extend(["--weights".into(), path(w)]);
    }
    for f in &opts.module_files {
        args.extend(["--module-file".into(), path(f)]);
    }
    if let Some((mean, std)) = &opts.normalize {
        let join = |v: &[f64]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>().join(",");
        args.extend(["--mean".into(), join(mean), "--std".into(), join(std)]);
    }
    Ok(args)
}

/// Runs the Python exporter, showing its progress lines; a failure carries its message.
fn run_exporter(src: &str, out: &Path, report: &Path, package: &Path, opts: &ImportOptions) -> Result<()> {
    let python = python_interpreter(opts.python.as_deref());
    let mut pythonpath = package.as_os_str().to_owned();
    if let Some(old) = std::env::var_os("PYTHONPATH") {
        pythonpath.push(":");
        pythonpath.push(old);
    }
    let mut child = Command::new(&python)
        .args(exporter_args(src, out, report, opts)?)
        .env("PYTHONPATH", pythonpath)
        .env("KERAS_BACKEND", "torch")
        // Fixed string hashing: TorchScript lists a module's constants in `set` order, and
        // the written file must be the same on every run.
        .env("PYTHONHASHSEED", "0")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot run the Python interpreter {}", python.display()))?;
    let mut errors = Vec::new();
    let mut other = Vec::new();
    if let Some(stderr) = child.stderr.take() {
        for line in BufReader::new(stderr).lines() {
            let line = line.context("cannot read the exporter's output")?;
            if let Some(step) = line.strip_prefix("progress: ") {
                if !opts.quiet {
                    eprintln!("import: {step}");
                }
            } else if let Some(e) = line.strip_prefix("error: ") {
                errors.push(e.to_string());
            } else {
                other.push(line);
            }
        }
    }
    let status = child.wait().context("the exporter did not finish")?;
    if status.success() {
        return Ok(());
    }
    if !errors.is_empty() {
        bail!("{}", errors.join("; "));
    }
    let tail: Vec<&str> = other.iter().rev().take(12).rev().map(|s| s.as_str()).collect();
    bail!(
        "the exporter ({}) failed ({status}):\n{}",
        python.display(),
        tail.join("\n")
    )
}

/// Random check inputs in [0, 1], the same every run.
fn check_inputs(shape: [i64; 3], n: i64, seed: u64) -> Tensor {
    let mut rng = StdRng::seed_from_u64(seed);
    let len = (n * shape.iter().product::<i64>()) as usize;
    let v: Vec<f32> = (0..len).map(|_| rng.gen()).collect();
    Tensor::from_slice(&v).view([n, shape[0], shape[1], shape[2]])
}

/// Checks an imported model from Rust; returns the graph-vs-TorchScript logit difference.
pub fn verify(model: &TorchScriptModel) -> Result<Option<f64>> {
    let _guard = tch::no_grad_guard();
    let x = check_inputs(model.input_shape(), 4, 0);
    let logits = model.logits(&x)?;
    crate::model::check_finite(&logits, "the logits of random inputs")?;
    let names = model.layer_names();
    let refs: Vec<&str> = names.iter().map(|s| s.as_str()).collect();
    let (again, acts) = model.forward_with(&x, &refs)?;
    let tol = |t: &Tensor| 1e-4 * t.abs().max().double_value(&[]).max(1.0);
    let d = max_abs_diff(&again, &logits);
    ensure!(
        d <= tol(&logits),
        "the layer-reading forward gives other logits (max difference {d:.3e})"
    );
    let Some(graph) = model.graph() else {
        return Ok(None);
    };
    ensure!(
        graph.layers() == names,
        "the layer graph lists the layers {:?}, the model {names:?}",
        graph.layers()
    );
    let tensors: HashMap<String, Tensor> = model.named_tensors().into_iter().collect();
    let g = GraphModel::new(
        graph.clone(),
        tensors,
        model.input_shape(),
        model.class_names().to_vec(),
    )
    .context("the layer graph does not fit the model's tensors")?;
    let (graph_logits, graph_acts) = g.forward_with(&x, &refs)?;
    let logit_diff = max_abs_diff(&graph_logits, &logits);
    ensure!(
        logit_diff <= tol(&logits),
        "the layer graph's forward differs from the TorchScript forward (max difference {logit_diff:.3e})"
    );
    for ((name, a), b) in names.iter().zip(&acts).zip(&graph_acts) {
        ensure!(
            a.size() == b.size(),
            "layer '{name}' has shape {:?} in TorchScript but {:?} in the layer graph",
            a.size(),
            b.size()
        );
        let d = max_abs_diff(a, b);
        ensure!(
            d <= tol(b),
            "layer '{name}' differs between TorchScript and the layer graph (max difference {d:.3e})"
        );
    }
    Ok(Some(logit_diff))
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f64 {
    (a.to_kind(Kind::Double) - b.to_kind(Kind::Double))
        .abs()
        .max()
        .double_value(&[])
}
