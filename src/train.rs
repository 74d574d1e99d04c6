//! Training the built-in CNNs (the only place in gradviz where weights change), with a
//! checkpoint after every epoch from which an interrupted run continues to the same
//! final weights, bit for bit.
//!
//! A checkpoint holds the weights, the [`Adam`] state and the number of finished epochs.
//! libtorch's random generator (shuffling, augmentation, dropout) cannot be read through
//! tch, so a resumed run re-seeds it and replays the random draws of the finished epochs
//! (their shapes only, no computation), which leaves it in the state an uninterrupted run
//! has at that point.

use crate::data::Dataset;
use crate::model::{accuracy, BuiltinModel};
use crate::progress::Progress;
use anyhow::{bail, ensure, Context, Result};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use tch::nn::ModuleT;
use tch::{Kind, Tensor};

/// Hyperparameters of [`train`].
#[derive(Debug, Clone)]
pub struct TrainConfig {
    pub epochs: usize,
    pub batch_size: i64,
    pub learning_rate: f64,
    /// Seeds the shuffling, dropout and augmentation.
    pub seed: i64,
    /// Random shifts of up to ±2 px, rotations of up to ±10° and scaling by ±8%.
    pub augment: bool,
    /// Show a progress bar or progress lines.
    pub show_progress: bool,
    /// Write a checkpoint here (atomically) after every epoch.
    pub checkpoint: Option<PathBuf>,
    /// Stop after this many epochs (of `epochs`), to continue later with [`resume`].
    pub stop_after: Option<usize>,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            epochs: 10,
            batch_size: 128,
            learning_rate: 1e-3,
            seed: 0,
            augment: true,
            show_progress: true,
            checkpoint: None,
            stop_after: None,
        }
    }
}

/// What happened during training.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TrainReport {
    /// Mean training loss of each epoch.
    pub epoch_losses: Vec<f64>,
    /// Accuracy on the held-out set after each epoch, when one was given.
    pub epoch_accuracies: Vec<f64>,
}

/// Adam (Kingma & Ba 2015) with its state in plain tensors, so that a checkpoint can hold
/// it. For each weight `θ` with gradient `g`, at step `t`:
///
/// `m ← β₁m + (1−β₁)g`, `v ← β₂v + (1−β₂)g²`,
/// `θ ← θ − (lr / (1−β₁ᵗ)) · m / (√v / √(1−β₂ᵗ) + ε)` (libtorch's formulation).
#[derive(Debug)]
pub struct Adam {
    pub lr: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    /// Steps taken so far.
    pub step: i64,
    /// `(m, v)` of each weight, by name.
    moments: BTreeMap<String, (Tensor, Tensor)>,
}

impl Adam {
    /// Adam with β₁ = 0.9, β₂ = 0.999, ε = 1e-8 (the usual defaults).
    pub fn new(lr: f64) -> Adam {
        Adam {
            lr,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            step: 0,
            moments: BTreeMap::new(),
        }
    }

    /// One update of every weight in `params` from its accumulated gradient.
    pub fn update(&mut self, params: &HashMap<String, Tensor>) {
        self.step += 1;
        let bc1 = 1.0 - self.beta1.powi(self.step as i32);
        let bc2 = 1.0 - self.beta2.powi(self.step as i32);
        tch::no_grad(|| {
            for (name, p) in params {
                let g = p.grad();
                if !g.defined() {
                    continue;
                }
                let (m, v) = self
                    .moments
                    .entry(name.clone())
                    .or_insert_with(|| (p.zeros_like(), p.zeros_like()));
                // libtorch's `m.mul_(β₁).add_(g, 1−β₁)` and `v.mul_(β₂).addcmul_(g, g, 1−β₂)`:
                // its CPU kernels round `g·(1−β₁) + β₁m` and `(1−β₂)g·g + β₂v` once (fused
                // multiply-add), which tch cannot call with a scale; the same roundings here
                // keep training bit-identical to libtorch's Adam.
                let _ = m.g_mul_scalar_(self.beta1);
                m.copy_(&fused_multiply_add(
                    &g,
                    &Tensor::from((1.0 - self.beta1) as f32).to_device(g.device()),
                    m,
                ));
                let _ = v.g_mul_scalar_(self.beta2);
                v.copy_(&fused_multiply_add(&(&g * (1.0 - self.beta2)), &g, v));
                let denom = (v.sqrt() / bc2.sqrt()) + self.eps;
                let mut p = p.shallow_clone();
                let _ = p.g_add_(&(&*m * (-self.lr / bc1) / denom));
            }
        });
    }

    /// The state as named tensors: `adam.m/NAME`, `adam.v/NAME`.
    fn state(&self) -> HashMap<String, Tensor> {
        let mut out = HashMap::new();
        for (name, (m, v)) in &self.moments {
            out.insert(format!("adam.m/{name}"), m.shallow_clone());
            out.insert(format!("adam.v/{name}"), v.shallow_clone());
        }
        out
    }
}

/// `x·y + z` of f32 tensors rounded once to f32, like a fused multiply-add: the product of
/// two f32 is exact in f64 (and the sum's double rounding almost never differs).
fn fused_multiply_add(x: &Tensor, y: &Tensor, z: &Tensor) -> Tensor {
    (x.to_kind(Kind::Double) * y.to_kind(Kind::Double) + z.to_kind(Kind::Double)).to_kind(Kind::Float)
}

/// The random draws of [`augment`]: angle, scale and shift of each of `n` images.
fn augment_draws(n: i64, device: tch::Device) -> (Tensor, Tensor, Tensor) {
    let opts = (Kind::Float, device);
    let angle = Tensor::rand([n], opts);
    let scale = Tensor::rand([n], opts);
    let shift = Tensor::rand([n, 2], opts);
    (angle, scale, shift)
}

/// Random small affine transforms of a batch, as one `grid_sample` call.
fn augment(x: &Tensor) -> Tensor {
    let n = x.size()[0];
    let (angle, scale, shift) = augment_draws(n, x.device());
    let angle = (angle * 2.0 - 1.0) * (10f64).to_radians();
    let scale = (scale * 2.0 - 1.0) * 0.08 + 1.0;
    let h = x.size()[2] as f64;
    // Normalized coordinates span 2, so a shift of k px is 2k/h.
    let shift = (shift * 2.0 - 1.0) * (2.0 * 2.0 / h);
    let (cos, sin) = (angle.cos() / &scale, angle.sin() / &scale);
    let theta = Tensor::stack(
        &[
            Tensor::stack(&[&cos, &(-&sin), &shift.select(1, 0)], 1),
            Tensor::stack(&[&sin, &cos, &shift.select(1, 1)], 1),
        ],
        1,
    );
    let grid = Tensor::affine_grid_generator(&theta, x.size(), false);
    x.grid_sampler(&grid, 0, 0, false)
}

/// `(start, len)` of each batch of an epoch over `n` images.
fn batches(n: i64, size: i64) -> impl Iterator<Item = (i64, i64)> {
    (0..n).step_by(size as usize).map(move |s| (s, size.min(n - s)))
}

/// Cosine decay over the epochs: large steps first, fine ones at the end.
fn learning_rate(cfg: &TrainConfig, epoch: usize) -> f64 {
    cfg.learning_rate * 0.5 * (1.0 + (std::f64::consts::PI * epoch as f64 / cfg.epochs as f64).cos())
}

/// Trains `model` on `train` with Adam and cross-entropy; evaluates on `val` after every
/// epoch if given, and writes `cfg.checkpoint` after every epoch. The model is frozen
/// again afterwards.
pub fn train(
    model: &mut BuiltinModel,
    train: &Dataset,
    val: Option<&Dataset>,
    cfg: &TrainConfig,
) -> Result<TrainReport> {
    check_config(train, cfg)?;
    let _rng = crate::model::seed_torch_rng(cfg.seed);
    run_epochs(
        model,
        train,
        val,
        cfg,
        Adam::new(cfg.learning_rate),
        TrainReport::default(),
    )
}

/// Continues the run that wrote `checkpoint` (with the same data and settings) to the end:
/// the final weights equal those of an uninterrupted run, bit for bit.
pub fn resume(
    model: &mut BuiltinModel,
    train: &Dataset,
    val: Option<&Dataset>,
    cfg: &TrainConfig,
    checkpoint: &Path,
) -> Result<TrainReport> {
    check_config(train, cfg)?;
    let (opt, report) = load_checkpoint(checkpoint, model, train.len(), cfg)?;
    let _rng = crate::model::seed_torch_rng(cfg.seed);
    for _ in 0..report.epoch_losses.len() {
        replay_epoch_draws(model, train, cfg);
    }
    run_epochs(model, train, val, cfg, opt, report)
}

fn check_config(train: &Dataset, cfg: &TrainConfig) -> Result<()> {
    ensure!(!train.is_empty(), "the training set is empty");
    ensure!(
        cfg.epochs > 0 && cfg.batch_size > 0,
        "epochs and batch size must be positive"
    );
    Ok(())
}

fn run_epochs(
    model: &mut BuiltinModel,
    train: &Dataset,
    val: Option<&Dataset>,
    cfg: &TrainConfig,
    mut opt: Adam,
    mut report: TrainReport,
) -> Result<TrainReport> {
    let n = train.len() as i64;
    let per_epoch = batches(n, cfg.batch_size).count() as u64;
    let done = report.epoch_losses.len();
    let progress = if cfg.show_progress {
        Progress::new("train", cfg.epochs as u64 * per_epoch)
    } else {
        Progress::hidden()
    };
    model.vs.unfreeze();
    let params: HashMap<String, Tensor> = model.vs.variables();
    let last = cfg.stop_after.unwrap_or(cfg.epochs).min(cfg.epochs);
    for epoch in done..last {
        opt.lr = learning_rate(cfg, epoch);
        let loss = run_epoch(model, &params, &mut opt, train, cfg, epoch, &progress)?;
        report.epoch_losses.push(loss);
        if let Some(val) = val {
            model.freeze();
            report
                .epoch_accuracies
                .push(accuracy(&*model, &val.images, &val.labels)?);
            model.vs.unfreeze();
        }
        if let Some(path) = &cfg.checkpoint {
            save_checkpoint(path, model, &opt, &report, n as usize, cfg)?;
            crate::interrupt::set_note(format!(
                "epoch {}/{} is saved in {}; run the same command with --resume to continue",
                epoch + 1,
                cfg.epochs,
                path.display()
            ));
        }
    }
    progress.finish();
    model.freeze();
    Ok(report)
}

/// One pass over the shuffled training set; returns the mean loss.
fn run_epoch(
    model: &BuiltinModel,
    params: &HashMap<String, Tensor>,
    opt: &mut Adam,
    train: &Dataset,
    cfg: &TrainConfig,
    epoch: usize,
    progress: &Progress,
) -> Result<f64> {
    let n = train.len() as i64;
    // The shuffle and the augmentation are drawn where the data lives (the CPU), so they
    // are the same on every device; each batch then moves to the model's device.
    let perm = Tensor::randperm(n, (Kind::Int64, train.images.device()));
    let device = model.vs.device();
    let mut total = 0.0;
    let mut count = 0;
    for (s, len) in batches(n, cfg.batch_size) {
        let idx = perm.narrow(0, s, len);
        let mut x = train.images.index_select(0, &idx);
        if cfg.augment {
            x = augment(&x);
        }
        let x = x.to_device(device);
        let y = train.labels.index_select(0, &idx).to_device(device);
        for p in params.values() {
            let mut g = p.grad();
            if g.defined() {
                let _ = g.zero_();
            }
        }
        let loss = model.net.forward_t(&x, true).cross_entropy_for_logits(&y);
        loss.backward();
        opt.update(params);
        let l = loss.double_value(&[]);
        ensure!(l.is_finite(), "training diverged at epoch {epoch}: loss is {l}");
        total += l;
        count += 1;
        let step = epoch as u64 * batches(n, cfg.batch_size).count() as u64 + count;
        progress.update(step, || format!("epoch {} loss {l:.4}", epoch + 1));
    }
    Ok(total / count as f64)
}

/// Draws from libtorch's generator what one epoch of [`run_epoch`] draws, in the same
/// order and shapes: the permutation, then per batch the augmentation and the dropout
/// masks.
fn replay_epoch_draws(model: &BuiltinModel, train: &Dataset, cfg: &TrainConfig) {
    let data_device = train.images.device();
    let n = train.len() as i64;
    let _ = Tensor::randperm(n, (Kind::Int64, data_device));
    for (_, len) in batches(n, cfg.batch_size) {
        if cfg.augment {
            let _ = augment_draws(len, data_device);
        }
        model.net.draw_dropout_masks(len);
    }
}

// ---------------------------------------------------------------------------------------
// checkpoints

const CKPT_FORMAT: &str = "gradviz.checkpoint";

/// The settings a checkpoint must share with the run that resumes it.
fn run_settings(model: &BuiltinModel, n: usize, cfg: &TrainConfig) -> BTreeMap<String, String> {
    [
        ("arch", model.arch.to_string()),
        ("dataset", model.data_name.clone()),
        (
            "train_subset",
            model.train_subset.map_or("-".into(), |s| s.to_string()),
        ),
        ("train_images", n.to_string()),
        ("epochs", cfg.epochs.to_string()),
        ("batch_size", cfg.batch_size.to_string()),
        ("learning_rate", cfg.learning_rate.to_string()),
        ("seed", cfg.seed.to_string()),
        ("augment", cfg.augment.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (format!("gradviz.run.{k}"), v))
    .collect()
}

fn save_checkpoint(
    path: &Path,
    model: &BuiltinModel,
    opt: &Adam,
    report: &TrainReport,
    n: usize,
    cfg: &TrainConfig,
) -> Result<()> {
    let mut tensors: HashMap<String, Tensor> = model
        .vs
        .variables()
        .into_iter()
        .map(|(k, v)| (format!("model/{k}"), v))
        .collect();
    tensors.extend(opt.state());
    let mut meta = run_settings(model, n, cfg);
    meta.insert(CKPT_FORMAT.into(), "1".into());
    meta.insert("gradviz.adam.step".into(), opt.step.to_string());
    meta.insert(
        "gradviz.losses".into(),
        serde_json::to_string(&report.epoch_losses)?,
    );
    meta.insert(
        "gradviz.accuracies".into(),
        serde_json::to_string(&report.epoch_accuracies)?,
    );
    let bytes = crate::model::safetensors_bytes(&tensors, &meta)?;
    crate::io::write_atomic(path, &bytes)
        .with_context(|| format!("cannot write checkpoint {}", path.display()))
}

/// Loads weights into `model` and returns the optimizer and the report so far.
fn load_checkpoint(
    path: &Path,
    model: &mut BuiltinModel,
    n: usize,
    cfg: &TrainConfig,
) -> Result<(Adam, TrainReport)> {
    let p = path.display();
    let bytes = std::fs::read(path).with_context(|| format!("cannot read checkpoint {p}"))?;
    let st = safetensors::SafeTensors::deserialize(&bytes)
        .map_err(|e| anyhow::anyhow!("{p}: not a gradviz checkpoint ({e:?})"))?;
    let (_, header) = safetensors::SafeTensors::read_metadata(&bytes)
        .map_err(|e| anyhow::anyhow!("{p}: not a gradviz checkpoint ({e:?})"))?;
    let meta: BTreeMap<String, String> = header
        .metadata()
        .clone()
        .unwrap_or_default()
        .into_iter()
        .collect();
    ensure!(
        meta.get(CKPT_FORMAT).is_some_and(|v| v == "1"),
        "{p}: not a gradviz checkpoint"
    );
    for (k, want) in run_settings(model, n, cfg) {
        let got = meta.get(&k).map(String::as_str).unwrap_or("nothing");
        if got != want {
            bail!(
                "{p} was written by a different run: its {} is {got}, this run's is {want}; resume with the same data and settings",
                k.trim_start_matches("gradviz.run.")
            );
        }
    }
    let get = |k: &str| meta.get(k).with_context(|| format!("{p}: '{k}' missing"));
    let report = TrainReport {
        epoch_losses: serde_json::from_str(get("gradviz.losses")?)
            .with_context(|| format!("{p}: bad losses"))?,
        epoch_accuracies: serde_json::from_str(get("gradviz.accuracies")?)
            .with_context(|| format!("{p}: bad accuracies"))?,
    };
    ensure!(
        report.epoch_losses.len() <= cfg.epochs,
        "{p}: holds {} epochs, more than the {} asked for",
        report.epoch_losses.len(),
        cfg.epochs
    );
    let mut opt = Adam::new(cfg.learning_rate);
    opt.step = get("gradviz.adam.step")?
        .parse()
        .with_context(|| format!("{p}: bad step"))?;
    let tensor = |name: &str, like: &Tensor| -> Result<Tensor> {
        let view = st
            .tensor(name)
            .map_err(|_| anyhow::anyhow!("{p}: tensor '{name}' missing"))?;
        let shape: Vec<i64> = view.shape().iter().map(|&d| d as i64).collect();
        ensure!(
            view.dtype() == safetensors::Dtype::F32 && shape == like.size(),
            "{p}: tensor '{name}' is {:?} {shape:?}, expected F32 {:?}",
            view.dtype(),
            like.size()
        );
        let t = Tensor::f_from_data_size(view.data(), &shape, Kind::Float)?;
        crate::model::check_finite(&t, &format!("{p}: tensor '{name}'"))?;
        Ok(t.to_device(like.device()))
    };
    let vars = model.vs.variables();
    tch::no_grad(|| -> Result<()> {
        for (name, var) in &vars {
            let mut var = var.shallow_clone();
            var.copy_(&tensor(&format!("model/{name}"), &var)?);
            if opt.step > 0 {
                let m = tensor(&format!("adam.m/{name}"), &var)?;
                let v = tensor(&format!("adam.v/{name}"), &var)?;
                opt.moments.insert(name.clone(), (m, v));
            }
        }
        Ok(())
    })?;
    Ok((opt, report))
}
