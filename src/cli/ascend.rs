//! `gradviz ascend`: inputs optimized for classes or hidden units.

use anyhow::{bail, ensure, Context, Result};
use clap::Args;
use gradviz::args::parse_list;
use gradviz::ascend::{ascend as run_ascend, AscendConfig, Init, StepRule};
use gradviz::data::DatasetName;
use gradviz::model::load_model_on;
use gradviz::objective::Objective;
use gradviz::plot::ascend::snapshot_strip;
use gradviz::preprocess::Preprocess;
use gradviz::provenance::Provenance;
use gradviz::regularize::Regularization;
use std::path::PathBuf;

#[derive(Args)]
pub struct AscendArgs {
    /// A gradviz .safetensors model or a TorchScript .pt file.
    #[arg(long)]
    model: PathBuf,
    /// Target classes, one batch row each: `0-9`, `3`, `1,4,7`.
    #[arg(long)]
    classes: Option<String>,
    /// What to maximize for a class: logit, softmax or log-softmax.
    #[arg(long, default_value = "logit")]
    score: String,
    /// Maximize a hidden layer's channel instead of a class (built-in or imported models;
    /// `gradviz layers --model FILE` lists the names).
    #[arg(long)]
    layer: Option<String>,
    /// Channels of --layer, one batch row each: `0-7`, `5`, `1,3`.
    #[arg(long, requires = "layer")]
    channel: Option<String>,
    /// With --layer: maximize the centre neuron of the channel instead of its mean.
    #[arg(long, requires = "layer")]
    neuron: bool,
    /// Starting point: noise, zeros, const:V, dataset:INDEX[,..] (test split) or
    /// image:PATH (PNG/JPEG files, a directory or a glob; one image, or one per target).
    #[arg(long, default_value = "noise")]
    init: String,
    /// How --init image: files are prepared: auto, mnist, fashion-mnist or none.
    #[arg(long, default_value = "auto")]
    preprocess: Preprocess,
    /// Data set for --init dataset:… (default: the model's own for built-in models, else mnist).
    #[arg(long)]
    dataset: Option<DatasetName>,
    /// Data for --init dataset:… in any format (see `gradviz train --help`).
    #[arg(long)]
    data: Option<PathBuf>,
    /// Mean and σ of the noise init.
    #[arg(long, default_value_t = 0.1)]
    noise_mean: f64,
    #[arg(long, default_value_t = 0.05)]
    noise_std: f64,
    /// Seeds the noise init and the random transforms.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    #[arg(long, default_value_t = 200)]
    steps: usize,
    #[arg(long, default_value_t = 0.05)]
    lr: f64,
    /// plain, normalized or adam.
    #[arg(long, default_value = "plain")]
    step_rule: StepRule,
    /// none, default (the 28×28 class set), hidden (the 28×28 set for --layer), colour (the
    /// 32×32 RGB set; use with --step-rule adam --lr 0.05) or a spec like
    /// `jitter=1,tv=0.02,blur=0.5@4,clip`.
    #[arg(long, default_value = "none")]
    regularize: String,
    /// Keep a snapshot every K steps for --plot (0: start and end only).
    #[arg(long, default_value_t = 50)]
    snapshot_every: usize,
    /// Save the final inputs as float32 [N, C, H, W].
    #[arg(long)]
    save_npy: Option<PathBuf>,
    /// Save a snapshot strip (rows = targets, columns = steps) as PNG.
    #[arg(long)]
    plot: Option<PathBuf>,
    #[command(flatten)]
    device: super::device::DeviceArg,
}

pub(crate) fn dataset_of(model_path: &std::path::Path) -> Option<DatasetName> {
    gradviz::model::BuiltinModel::load(model_path)
        .ok()
        .and_then(|m| m.dataset)
}

pub fn ascend(a: AscendArgs, record: &Provenance) -> Result<()> {
    let (device, record) = a.device.resolve_recorded(record)?;
    let record = &record;
    let model = load_model_on(&a.model, device)?;
    let (objective, targets, labels): (Objective, Vec<i64>, Vec<String>) = match &a.layer {
        Some(layer) => {
            ensure!(a.classes.is_none(), "give either --classes or --layer, not both");
            let ch = parse_list(a.channel.as_deref().unwrap_or("0"), "--channel")?;
            let obj = if a.neuron {
                Objective::neurons(layer, &ch)
            } else {
                Objective::channels(layer, &ch)
            };
            let labels = ch.iter().map(|c| format!("{layer}:{c}")).collect();
            (obj, ch, labels)
        }
        None => {
            let default = format!("0-{}", model.num_classes() - 1);
            let cls = parse_list(a.classes.as_deref().unwrap_or(&default), "--classes")?;
            let obj = match a.score.as_str() {
                "logit" => Objective::logits(&cls),
                "softmax" => Objective::probs(&cls),
                "log-softmax" => Objective::log_probs(&cls),
                s => bail!("unknown --score '{s}': expected logit, softmax or log-softmax"),
            };
            let names = model.class_names();
            let labels = cls
                .iter()
                .map(|&c| {
                    names
                        .get(c as usize)
                        .filter(|n| **n != c.to_string())
                        .map(|n| format!("{c} {n}"))
                        .unwrap_or_else(|| format!("class {c}"))
                })
                .collect();
            (obj, cls, labels)
        }
    };
    let n = targets.len() as i64;
    let shape = model.input_shape();
    let init = match a.init.as_str() {
        "noise" => Init::noise(a.noise_mean, a.noise_std, a.seed),
        "zeros" => Init::Constant(0.0),
        s if s.starts_with("const:") => Init::Constant(
            s[6..]
                .parse()
                .with_context(|| format!("--init {s}: not a number"))?,
        ),
        s if s.starts_with("dataset:") => {
            let idx = parse_list(&s[8..], "--init dataset:")?;
            ensure!(
                idx.len() == 1 || idx.len() as i64 == n,
                "--init {s} names {} images for {n} targets (give 1 or {n})",
                idx.len()
            );
            let name = match (&a.data, a.dataset) {
                (Some(_), d) => d,
                (None, d) => d.or_else(|| dataset_of(&a.model)).or(Some(DatasetName::Mnist)),
            };
            let splits =
                super::train::fit_to(super::train::load_data(name, a.data.as_deref())?, model.as_ref())?;
            let test = splits.test;
            for &i in &idx {
                ensure!(
                    (0..test.len() as i64).contains(&i),
                    "--init {s}: index {i} is outside the {} test split (0..{})",
                    splits.name,
                    test.len()
                );
            }
            let idx: Vec<i64> = if idx.len() == 1 {
                vec![idx[0]; n as usize]
            } else {
                idx
            };
            Init::Examples(test.select(&idx)?.images)
        }
        s if s.starts_with("image:") => {
            let batch = super::inputs::load(model.as_ref(), &[PathBuf::from(&s[6..])], a.preprocess)?;
            let k = batch.images.size()[0];
            ensure!(
                k == 1 || k == n,
                "--init {s} names {k} images for {n} targets (give 1 or {n})"
            );
            Init::Examples(batch.images.expand([n, -1, -1, -1], false).contiguous())
        }
        s => bail!("unknown --init '{s}': expected noise, zeros, const:V, dataset:INDEX[,..] or image:PATH"),
    };
    let x0 = init.make(n, shape)?;
    let cfg = AscendConfig {
        steps: a.steps,
        lr: a.lr,
        step_rule: a.step_rule,
        regularization: Regularization::parse(&a.regularize)?,
        snapshot_every: a.snapshot_every,
        seed: a.seed,
        progress: true,
    };
    eprintln!(
        "maximizing {objective} on {} ({} steps, {} lr {}, regularization {})",
        model.describe(),
        cfg.steps,
        cfg.step_rule,
        cfg.lr,
        cfg.regularization
    );
    let run = run_ascend(model.as_ref(), &objective, &x0, &cfg)?;
    let last = run.final_record();
    let hidden = a.layer.is_some();
    println!(
        "{:<14} {:>12} {:>10} {:>9}",
        if hidden { "unit" } else { "class" },
        "objective",
        if hidden { "p(top)" } else { "p(target)" },
        "top class"
    );
    for (i, l) in labels.iter().enumerate() {
        println!(
            "{:<14} {:>12.4} {:>10.4} {:>9}",
            l, last.objective[i], last.target_prob[i], last.top_class[i]
        );
    }
    if let Some(p) = &a.save_npy {
        gradviz::io::save_npy_with(p, &run.images, record)?;
        println!("saved {n} inputs [N, C, H, W] to {}", p.display());
    }
    if let Some(p) = &a.plot {
        snapshot_strip(&run, &labels, 3)?.save_with(p, record)?;
        println!("saved snapshot strip to {}", p.display());
    }
    Ok(())
}
