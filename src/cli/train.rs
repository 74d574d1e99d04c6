//! `gradviz train` and `gradviz eval`.

use anyhow::{Context, Result};
use clap::Args;
use gradviz::data::{self, Dataset, DatasetName};
use gradviz::model::{self, Arch, BuiltinModel, Classifier};
use gradviz::train::{self as trainer, TrainConfig};
use std::path::PathBuf;

#[derive(Args)]
pub struct TrainArgs {
    /// mnist, fashion-mnist or cifar10.
    #[arg(long)]
    dataset: DatasetName,
    /// Directory of the data set (default: bundled MNIST, Debian's Fashion-MNIST).
    #[arg(long)]
    data: Option<PathBuf>,
    /// Architecture: mnist-cnn, lenet or cifar10-cnn (default: by data set).
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
    /// Train on every other image of the train split only: `even` or `odd`.
    #[arg(long)]
    half: Option<String>,
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

/// The training images: the whole train split, or its even or odd half.
fn training_images(train: Dataset, half: Option<&str>) -> Result<Dataset> {
    let start = match half {
        None => return Ok(train),
        Some("even") => 0,
        Some("odd") => 1,
        Some(other) => anyhow::bail!("--half must be even or odd, not '{other}'"),
    };
    let idx: Vec<i64> = (start..train.len() as i64).step_by(2).collect();
    train.select(&idx)
}

pub fn train(a: TrainArgs) -> Result<()> {
    let splits = data::load(a.dataset, a.data.as_deref())?;
    let train_set = training_images(splits.train, a.half.as_deref())?;
    let arch = a.arch.unwrap_or(Arch::default_for(a.dataset));
    let mut model = BuiltinModel::new(arch, a.dataset, a.seed)?;
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
    eprintln!(
        "training {arch} on {} {} images for {} epochs (seed {})",
        train_set.len(),
        a.dataset,
        a.epochs,
        a.seed
    );
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
    model.save(&a.out)?;
    println!("saved {} to {}", model.describe(), a.out.display());
    std::fs::remove_file(&checkpoint)
        .with_context(|| format!("cannot remove the checkpoint {}", checkpoint.display()))
}

#[derive(Args)]
pub struct EvalArgs {
    /// A gradviz .safetensors model or a TorchScript .pt file.
    #[arg(long)]
    model: PathBuf,
    #[arg(long)]
    dataset: DatasetName,
    #[arg(long)]
    data: Option<PathBuf>,
}

pub fn eval(a: EvalArgs) -> Result<()> {
    let splits = data::load(a.dataset, a.data.as_deref())?;
    let model = model::load_model_for(&a.model, Some(a.dataset))?;
    let acc = model::accuracy(model.as_ref(), &splits.test.images, &splits.test.labels)?;
    println!("model: {}", model.describe());
    println!("test images: {}", splits.test.len());
    println!("accuracy: {acc:.4}");
    Ok(())
}
