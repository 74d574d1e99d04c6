//! `gradviz predict`: the class of each image, one tab-separated line per image.

use anyhow::{ensure, Result};
use clap::Args;
use gradviz::model::{self, load_model_on};
use gradviz::preprocess::Preprocess;
use std::path::PathBuf;

#[derive(Args)]
pub struct PredictArgs {
    /// A gradviz .safetensors model or a TorchScript .pt file.
    #[arg(long)]
    model: PathBuf,
    /// Images: PNG/JPEG files, directories (every PNG/JPEG inside, sorted), globs, or .npy
    /// batches [N, C, H, W].
    #[arg(long, num_args = 1.., required = true)]
    input: Vec<PathBuf>,
    /// auto (the model's data set convention, unless an image is already in its format),
    /// mnist, fashion-mnist or none (a plain resize).
    #[arg(long, default_value = "auto")]
    preprocess: Preprocess,
    /// Also print the K most probable classes, each as `CLASS (P)`.
    #[arg(long)]
    top: Option<i64>,
    /// Images per forward pass.
    #[arg(long, default_value_t = 256)]
    batch: i64,
    #[command(flatten)]
    device: super::device::DeviceArg,
}

/// Prints `PATH<TAB>CLASS<TAB>PROBABILITY[<TAB>CLASS (P)…]` per image, after every image
/// has been loaded and classified.
pub fn predict(a: PredictArgs) -> Result<()> {
    let model = load_model_on(&a.model, a.device.resolve()?)?;
    let k = a.top.unwrap_or(0);
    ensure!(
        (0..=model.num_classes()).contains(&k) && a.top != Some(0),
        "--top {k}: expected 1 to {} (the model's number of classes)",
        model.num_classes()
    );
    ensure!(a.batch > 0, "--batch must be at least 1");
    let batch = super::inputs::load(model.as_ref(), &a.input, a.preprocess)?;
    let preds = model::predict(model.as_ref(), &batch.images, a.batch)?;
    let names = model.class_names();
    let (top_p, top_c) = preds.probs.topk(k.max(1), -1, true, true);
    let mut out = String::new();
    for (i, name) in batch.names.iter().enumerate() {
        let c = preds.classes[i] as usize;
        out.push_str(&format!("{name}\t{}\t{:.4}", names[c], preds.confidences[i]));
        for j in 0..k {
            let cls = top_c.int64_value(&[i as i64, j]) as usize;
            let p = top_p.double_value(&[i as i64, j]);
            out.push_str(&format!("\t{} ({p:.4})", names[cls]));
        }
        out.push('\n');
    }
    print!("{out}");
    Ok(())
}
