//! `gradviz train` and `gradviz eval`.

use anyhow::{Context, Result};
use clap::Args;
use gradviz::data::{self, DatasetName};
use gradviz::model::{self, Arch, BuiltinModel, Classifier, TrainSubset};
use gradviz::provenance::Provenance;
use gradviz::train::{self as trainer, TrainConfig};
use std::path::PathBuf;

#[derive(Args)]
pub struct TrainArgs {
    /// mnist, fashion-mnist or cifar10 (optional with --data).
    #[arg(long, required_unless_present = "data")]
    dataset: Option<DatasetName>,
    /// The data in any format: a folder of IDX files, CIFAR-10 batches (pickled or binary) or
    /// class sub-folders of images, or a Keras .npz (default: the data set's own place).
    #[arg(long)]
    data: Option<PathBuf>,
    /// Architecture: mnist-cnn, lenet or cifar10-cnn (default: by image shape).
    #[arg(long)]
    arch: Option<Arch>,
    #[arg(long, default_value_t = 10)]
    epochs: usize,
    #[arg(long, default_value_t = 0)]
    seed: i64,
    #[arg(long, default_value_t = 128)]
    batch_size: i64,
    #[arg(long, default_value_t = 1e-3)]
    lr: f64,
    /// Train on every other image of the train split only: `even` or `odd` (recorded in the
    /// model's metadata, so that two models trained on different halves are provably disjoint).
    #[arg(long)]
    half: Option<TrainSubset>,
    /// Disable the random shift/rotation/scale augmentation.
    #[arg(long)]
    no_augment: bool,
    /// Output file (.safetensors).
    #[arg(long)]
    out: PathBuf,
    /// Checkpoint written after every epoch (default: OUT with `.checkpoint` before its
    /// extension); removed once the model is saved.
    #[arg(long)]
    checkpoint: Option<PathBuf>,
    /// Continue an interrupted run from its checkpoint (same data and settings): the final
    /// weights equal those of an uninterrupted run.
    #[arg(long)]
    resume: bool,
    /// Stop after this many epochs, keeping the checkpoint for a later --resume.
    #[arg(long)]
    stop_after: Option<usize>,
    #[command(flatten)]
    device: super::device::DeviceArg,
}

/// `models/x.safetensors` → `models/x.checkpoint.safetensors`.
fn default_checkpoint(out: &std::path::Path) -> PathBuf {
    let stem = out
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let ext = out
        .extension()
        .map(|e| format!(".{}", e.to_string_lossy()))
        .unwrap_or_default();
    out.with_file_name(format!("{stem}.checkpoint{ext}"))
}

/// The selected data, with what was inferred or converted printed as notes.
pub fn load_data(name: Option<DatasetName>, path: Option<&std::path::Path>) -> Result<data::Splits> {
    let splits = data::select(name, path)?;
    for n in &splits.notes {
        eprintln!("note: {n}");
    }
    Ok(splits)
}

/// `splits` made fit for `model` (see `Splits::fit`), printing what that changed.
pub fn fit_to(splits: data::Splits, model: &dyn Classifier) -> Result<data::Splits> {
    let before = splits.notes.len();
    let splits = splits.fit(model.input_shape(), model.class_names())?;
    for n in &splits.notes[before..] {
        eprintln!("note: {n}");
    }
    Ok(splits)
}

pub fn train(a: TrainArgs, record: &Provenance) -> Result<()> {
    let (device, record) = a.device.resolve_recorded(record)?;
    let record = &record;
    let splits = load_data(a.dataset, a.data.as_deref())?;
    let subset = a.half.unwrap_or(TrainSubset::All);
    anyhow::ensure!(
        subset != TrainSubset::All || a.half.is_none(),
        "--half must be even or odd, not all"
    );
    let train_set = splits.train.select(&subset.indices(splits.train.len()))?;
    let arch = match a.arch {
        Some(arch) => arch,
        None => Arch::default_for_shape(splits.input_shape())?,
    };
    let mut model = BuiltinModel::for_data(arch, &splits, a.seed)?;
    model.train_subset = Some(subset);
    model.to_device(device)?;
    eprintln!(
        "training {arch} on {} {} images ({}) for {} epochs (seed {})",
        train_set.len(),
        splits.name,
        splits.format,
        a.epochs,
        a.seed
    );
    let checkpoint = a.checkpoint.clone().unwrap_or_else(|| default_checkpoint(&a.out));
    let cfg = TrainConfig {
        epochs: a.epochs,
        batch_size: a.batch_size,
        learning_rate: a.lr,
        seed: a.seed,
        augment: !a.no_augment,
        show_progress: true,
        checkpoint: Some(checkpoint.clone()),
        stop_after: a.stop_after,
    };
    let report = if a.resume {
        anyhow::ensure!(
            checkpoint.is_file(),
            "--resume: no checkpoint at {} (give its path with --checkpoint)",
            checkpoint.display()
        );
        trainer::resume(&mut model, &train_set, Some(&splits.test), &cfg, &checkpoint)?
    } else {
        if checkpoint.exists() {
            eprintln!(
                "note: starting over; {} of an earlier run will be replaced (--resume continues it)",
                checkpoint.display()
            );
        }
        trainer::train(&mut model, &train_set, Some(&splits.test), &cfg)?
    };
    for (i, (l, acc)) in report
        .epoch_losses
        .iter()
        .zip(&report.epoch_accuracies)
        .enumerate()
    {
        eprintln!("epoch {:>2}: loss {l:.4}  test accuracy {acc:.4}", i + 1);
    }
    if report.epoch_losses.len() < a.epochs {
        println!(
            "stopped after epoch {}/{}; {} holds it: continue with the same command and --resume",
            report.epoch_losses.len(),
            a.epochs,
            checkpoint.display()
        );
        return Ok(());
    }
    model.save_with(&a.out, record)?;
    println!("saved {} to {}", model.describe(), a.out.display());
    std::fs::remove_file(&checkpoint)
        .with_context(|| format!("cannot remove the checkpoint {}", checkpoint.display()))
}

#[derive(Args)]
pub struct EvalArgs {
    /// A gradviz .safetensors model or a TorchScript .pt file.
    #[arg(long)]
    model: PathBuf,
    /// mnist, fashion-mnist or cifar10 (optional with --data).
    #[arg(long, required_unless_present = "data")]
    dataset: Option<DatasetName>,
    /// The data in any format (see `gradviz train --help`); its test split is evaluated.
    #[arg(long)]
    data: Option<PathBuf>,
    #[command(flatten)]
    device: super::device::DeviceArg,
}

pub fn eval(a: EvalArgs) -> Result<()> {
    let splits = load_data(a.dataset, a.data.as_deref())?;
    let model = model::load_model_for_on(&a.model, splits.known, a.device.resolve()?)?;
    let splits = fit_to(splits, model.as_ref())?;
    let acc = model::accuracy(model.as_ref(), &splits.test.images, &splits.test.labels)?;
    println!("model: {}", model.describe());
    println!(
        "{} images: {} ({}, {})",
        if splits.held_out {
            "test"
        } else {
            "all (no test split)"
        },
        splits.test.len(),
        splits.name,
        splits.format
    );
    println!("accuracy: {acc:.4}");
    Ok(())
}
