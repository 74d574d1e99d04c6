//! `gradviz import`: a Keras or PyTorch classifier -> one verified TorchScript file.

use anyhow::{ensure, Context, Result};
use clap::Args;
use gradviz::data::DatasetName;
use gradviz::import::{import_model, ImportOptions, ImportReport};
use gradviz::model::Classifier;
use std::path::PathBuf;

#[derive(Args)]
pub struct ImportArgs {
    /// The model: a Keras .keras/.h5 file, a TorchScript file, a torch.save(model) file, or
    /// FILE.py:ClassName (with --weights).
    src: String,
    /// The TorchScript file to write (replaced only when the import succeeds).
    #[arg(long)]
    out: PathBuf,
    /// C,H,W of one input image (default: the source's, else probed 1,28,28 and 3,32,32).
    #[arg(long)]
    input_shape: Option<String>,
    /// Class names, comma-separated (default: 0, 1, …).
    #[arg(long, conflicts_with = "dataset")]
    classes: Option<String>,
    /// Take class names (and, without --input-shape, the input shape) from a data set:
    /// mnist, fashion-mnist or cifar10.
    #[arg(long)]
    dataset: Option<DatasetName>,
    /// The state_dict for a source FILE.py:ClassName.
    #[arg(long)]
    weights: Option<PathBuf>,
    /// A .py file that defines the model's classes (for torch.save(model) files); repeatable.
    #[arg(long)]
    module_file: Vec<PathBuf>,
    /// Per-channel mean the model expects its input normalized with, e.g. 0.1307 or
    /// 0.4914,0.4822,0.4465; folded into the model as a `normalize` layer.
    #[arg(long, requires = "std")]
    mean: Option<String>,
    /// Per-channel standard deviation that goes with --mean.
    #[arg(long, requires = "mean")]
    std: Option<String>,
    /// The Python interpreter that runs the exporter (default: $GRADVIZ_PYTHON, the
    /// repository's .venv, python3).
    #[arg(long)]
    python: Option<PathBuf>,
}

fn parse_shape(s: &str) -> Result<[i64; 3]> {
    let dims: Vec<i64> = s
        .split(',')
        .map(|d| d.trim().parse::<i64>())
        .collect::<std::result::Result<_, _>>()
        .with_context(|| format!("--input-shape '{s}': expected C,H,W such as 1,28,28"))?;
    ensure!(
        dims.len() == 3 && dims.iter().all(|&d| d > 0),
        "--input-shape '{s}': expected three positive numbers C,H,W such as 1,28,28"
    );
    Ok([dims[0], dims[1], dims[2]])
}

fn parse_floats(s: &str, what: &str) -> Result<Vec<f64>> {
    s.split(',')
        .map(|v| v.trim().parse::<f64>())
        .collect::<std::result::Result<_, _>>()
        .with_context(|| format!("{what} '{s}': expected comma-separated numbers"))
}

fn options(a: &ImportArgs) -> Result<ImportOptions> {
    let input_shape = match (&a.input_shape, a.dataset) {
        (Some(s), _) => Some(parse_shape(s)?),
        (None, Some(d)) => Some(d.input_shape()),
        (None, None) => None,
    };
    let class_names = match (&a.classes, a.dataset) {
        (Some(c), _) => Some(c.split(',').map(|s| s.trim().to_string()).collect()),
        (None, Some(d)) => Some(d.class_names()),
        (None, None) => None,
    };
    let normalize = match (&a.mean, &a.std) {
        (Some(m), Some(s)) => Some((parse_floats(m, "--mean")?, parse_floats(s, "--std")?)),
        _ => None,
    };
    Ok(ImportOptions {
        input_shape,
        class_names,
        weights: a.weights.clone(),
        module_files: a.module_file.clone(),
        normalize,
        python: a.python.clone(),
        quiet: false,
    })
}

fn print_report(a: &ImportArgs, r: &ImportReport) {
    println!(
        "imported {} -> {}: {}",
        a.src,
        a.out.display(),
        r.model.describe()
    );
    let layers = r.model.layer_names();
    if layers.is_empty() {
        println!("layers: none");
    } else {
        println!("layers ({}): {}", layers.len(), layers.join(", "));
    }
    match (
        r.graph_max_abs_diff,
        r.model.imported().and_then(|i| i.graph_missing_reason.as_ref()),
    ) {
        (Some(d), _) => {
            println!("layer graph: verified (max |logit difference| to the TorchScript forward {d:.2e})")
        }
        (None, Some(why)) => println!("layer graph: none ({why})"),
        (None, None) => println!("layer graph: none"),
    }
    for n in &r.notes {
        println!("note: {n}");
    }
    for w in &r.warnings {
        eprintln!("warning: {w}");
    }
}

pub fn import(a: ImportArgs) -> Result<()> {
    let opts = options(&a)?;
    let report = import_model(&a.src, &a.out, &opts)?;
    print_report(&a, &report);
    Ok(())
}
