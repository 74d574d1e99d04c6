//! `gradviz info FILE`: what made a gradviz output (its provenance record), and what a
//! model file holds (architecture, data, classes, layers).

use anyhow::{ensure, Result};
use clap::Args;
use gradviz::model::{BuiltinModel, ModelHeader, TorchScriptModel};
use gradviz::provenance::{self, Provenance};
use std::path::{Path, PathBuf};

#[derive(Args)]
pub struct InfoArgs {
    /// A gradviz output (PNG, .npy with its .npy.json sidecar, safetensors, JSON) or any
    /// model file (gradviz .safetensors, imported or plain TorchScript).
    file: PathBuf,
}

pub fn info(a: InfoArgs) -> Result<()> {
    let p = &a.file;
    ensure!(p.is_file(), "{} does not exist", p.display());
    let bytes = std::fs::read(p)?;
    if bytes.starts_with(b"PK\x03\x04") {
        return torchscript_info(p);
    }
    let what = p.display().to_string();
    if let Ok(header) = ModelHeader::parse(&bytes, &what) {
        return builtin_info(p, &header, &bytes);
    }
    println!("file: {what}");
    print_record(&provenance::read_record(p)?);
    Ok(())
}

fn print_record(r: &Provenance) {
    for line in r.lines() {
        println!("{line}");
    }
}

fn builtin_info(path: &Path, h: &ModelHeader, bytes: &[u8]) -> Result<()> {
    println!("file: {} (gradviz model)", path.display());
    println!("architecture: {}", h.arch);
    println!("data: {}", h.data_name);
    println!(
        "trained on: {}",
        match h.train_subset {
            Some(s) => format!("{s} of the train split (gradviz.train_subset)"),
            None => "not recorded".into(),
        }
    );
    println!("classes ({}): {}", h.class_names.len(), h.class_names.join(", "));
    match provenance::record_from_safetensors(bytes)? {
        Some(r) => print_record(&r),
        None => println!("provenance: none recorded (saved without a record, or by an older gradviz)"),
    }
    let m = BuiltinModel::load(path)?;
    super::layers::print_layers(&m, None)
}

fn torchscript_info(path: &Path) -> Result<()> {
    let m = TorchScriptModel::load(path, None, None)?;
    println!("file: {} (TorchScript model)", path.display());
    use gradviz::model::Classifier;
    println!(
        "classes ({}): {}",
        m.class_names().len(),
        m.class_names().join(", ")
    );
    match m.imported() {
        Some(i) => println!(
            "imported by gradviz import; source: {}",
            serde_json::to_string_pretty(&i.source)?
        ),
        None => println!("provenance: none (a plain TorchScript file, not written by gradviz import)"),
    }
    super::layers::print_layers(&m, m.layers_missing_reason())
}
