//! `gradviz layers`: a model's layers in forward order, with output shapes and sizes.

use anyhow::Result;
use clap::Args;
use gradviz::data::DatasetName;
use gradviz::model::{self, BuiltinModel, Classifier, TorchScriptModel};
use std::path::PathBuf;

#[derive(Args)]
pub struct LayersArgs {
    /// A gradviz .safetensors model, an imported model or a TorchScript .pt file.
    #[arg(long)]
    model: PathBuf,
    /// Take a plain TorchScript file to be a model for this data set (mnist, fashion-mnist, cifar10).
    #[arg(long)]
    dataset: Option<DatasetName>,
    #[command(flatten)]
    device: super::device::DeviceArg,
}

pub fn layers(a: LayersArgs) -> Result<()> {
    let device = a.device.resolve()?;
    if a.model.extension().is_some_and(|e| e == "safetensors") {
        let m = BuiltinModel::load_on(&a.model, device)?;
        return print_layers(&m, None);
    }
    let m = TorchScriptModel::load_on(
        &a.model,
        a.dataset.map(|d| d.input_shape()),
        a.dataset.map(|d| d.class_names()),
        device,
    )?;
    print_layers(&m, m.layers_missing_reason())
}

pub(crate) fn print_layers(model: &dyn Classifier, no_layers: Option<String>) -> Result<()> {
    println!("{}", model.describe());
    if let Some(why) = no_layers {
        println!("no named layers: {why}");
        return Ok(());
    }
    let rows = model::layer_summary(model)?;
    let width = rows.iter().map(|r| r.name.len()).max().unwrap_or(5).max(5);
    println!(
        "{:>3}  {:<width$}  {:<20}  {:>10}",
        "#", "layer", "output shape", "parameters"
    );
    for (i, r) in rows.iter().enumerate() {
        let shape = format!("{:?}", &r.output_shape[1..]);
        println!("{i:>3}  {:<width$}  {shape:<20}  {:>10}", r.name, r.tensor_values);
    }
    let total: i64 = model.named_tensors().iter().map(|(_, t)| t.numel() as i64).sum();
    println!("parameters (weights, biases and BatchNorm statistics): {total}");
    Ok(())
}
