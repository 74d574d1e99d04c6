//! Feature visualization by gradient ascent on the input: the assignment's "training loop"
//! in which the input, not the model, is trained.
//!
//! Each step evaluates an [`Objective`] on the (randomly transformed) input, subtracts the
//! [`Regularization`] penalties, takes the gradient with respect to the input's
//! parameterization only (`torch.autograd.grad`, so nothing is ever accumulated into the
//! weights), moves the input by a [`StepRule`], and applies the post-step operations.
//!
//! ```no_run
//! # fn main() -> anyhow::Result<()> {
//! use gradviz::ascend::{ascend, AscendConfig, Init};
//! use gradviz::objective::Objective;
//! let model = gradviz::load_model("models/mnist_cnn.safetensors")?;
//! let classes: Vec<i64> = (0..10).collect();
//! let x0 = Init::noise(0.1, 0.05, 0).make(10, model.input_shape())?;
//! let run = ascend(model.as_ref(), &Objective::logits(&classes), &x0, &AscendConfig::default())?;
//! println!("final target probabilities {:?}", run.final_target_probs());
//! # Ok(()) }
//! ```
//!
//! [`crate::naturalness`] scores the results with independent judge models.

use crate::model::{check_finite, Classifier};
use crate::objective::Objective;
use crate::progress::Progress;
use crate::regularize::{ParamState, Regularization};
use anyhow::{bail, ensure, Context, Result};
use rand::SeedableRng;
use std::fmt;
use tch::{Device, Kind, Tensor};

/// How the input moves along the gradient `g` of the objective.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum StepRule {
    /// `x += lr·g`, as in the assignment.
    Plain,
    /// `x += lr·g / mean|g|` per row, as in DeepDream: every step has the same size.
    Normalized,
    /// Adam (Kingma & Ba) on the input, ascending.
    Adam { beta1: f64, beta2: f64, eps: f64 },
}

impl StepRule {
    pub fn adam() -> StepRule {
        StepRule::Adam {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
        }
    }
}

impl std::str::FromStr for StepRule {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "plain" => Ok(StepRule::Plain),
            "normalized" => Ok(StepRule::Normalized),
            "adam" => Ok(StepRule::adam()),
            _ => bail!("unknown step rule '{s}': expected plain, normalized or adam"),
        }
    }
}

impl fmt::Display for StepRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            StepRule::Plain => "plain",
            StepRule::Normalized => "normalized",
            StepRule::Adam { .. } => "adam",
        })
    }
}

/// Where the optimization starts.
#[derive(Debug)]
pub enum Init {
    /// Gaussian noise of the given mean and standard deviation, clamped to `[0, 1]`,
    /// reproducible by `seed` (the same seed gives the same rows whatever the batch size:
    /// row `i` is drawn from `seed + i`).
    Noise { mean: f64, std: f64, seed: u64 },
    /// Every pixel equal to this value.
    Constant(f64),
    /// Given images `[N, C, H, W]`, e.g. `dataset.select(&idx)?.images`.
    Examples(Tensor),
}

impl Init {
    pub fn noise(mean: f64, std: f64, seed: u64) -> Init {
        Init::Noise { mean, std, seed }
    }

    /// `n` starting images of shape `shape`.
    pub fn make(&self, n: i64, shape: [i64; 3]) -> Result<Tensor> {
        let [c, h, w] = shape;
        ensure!(n > 0, "the batch must hold at least one image");
        let x = match self {
            Init::Noise { mean, std, seed } => {
                ensure!(
                    mean.is_finite() && std.is_finite() && *std >= 0.0,
                    "noise needs a finite mean and σ ≥ 0, got mean {mean}, σ {std}"
                );
                // A Rust generator per row, not libtorch's global one: reproducible even
                // while other threads draw random numbers.
                let rows: Vec<Tensor> = (0..n)
                    .map(|i| {
                        let mut rng = rand::rngs::StdRng::seed_from_u64(seed.wrapping_add(i as u64));
                        let z = crate::saliency::normal_noise(&mut rng, (c * h * w) as usize);
                        Tensor::from_slice(&z).view([1, c, h, w]) * *std + *mean
                    })
                    .collect();
                Tensor::cat(&rows, 0).clamp(0.0, 1.0)
            }
            Init::Constant(v) => {
                crate::model::check_float32(*v, "constant init")?;
                Tensor::full([n, c, h, w], *v, (Kind::Float, Device::Cpu))
            }
            Init::Examples(t) => {
                crate::model::check_batch(t, shape)?;
                ensure!(
                    t.size()[0] == n,
                    "{} example images given for a batch of {n}",
                    t.size()[0]
                );
                t.to_kind(Kind::Float).copy()
            }
        };
        Ok(x)
    }
}

/// Settings of one ascent run.
#[derive(Debug, Clone)]
pub struct AscendConfig {
    pub steps: usize,
    pub lr: f64,
    pub step_rule: StepRule,
    pub regularization: Regularization,
    /// Keep a copy of the images every this many steps (0: only start and end).
    pub snapshot_every: usize,
    /// Seeds the random transforms.
    pub seed: u64,
    /// Show a progress bar (or ~10 lines without a terminal).
    pub progress: bool,
}

impl Default for AscendConfig {
    /// 200 plain steps of size 0.01, no regularization, a snapshot every 50 steps.
    fn default() -> Self {
        AscendConfig {
            steps: 200,
            lr: 0.01,
            step_rule: StepRule::Plain,
            regularization: Regularization::none(),
            snapshot_every: 50,
            seed: 0,
            progress: false,
        }
    }
}

impl AscendConfig {
    /// The documented regularized setting for 28×28 models: Adam, lr 0.02, 200 steps,
    /// [`Regularization::default_28x28`].
    pub fn regularized_28x28() -> AscendConfig {
        AscendConfig {
            steps: 200,
            lr: 0.02,
            step_rule: StepRule::adam(),
            regularization: Regularization::default_28x28(),
            snapshot_every: 50,
            ..Default::default()
        }
    }
}

impl AscendConfig {
    /// The documented regularized setting for 32×32 RGB models: Adam, lr 0.05, 200 steps,
    /// [`Regularization::colour_32x32`].
    pub fn regularized_32x32() -> AscendConfig {
        AscendConfig {
            lr: 0.05,
            regularization: Regularization::colour_32x32(),
            ..AscendConfig::regularized_28x28()
        }
    }
}

/// What the model says about the batch at one step.
#[derive(Debug, Clone)]
pub struct StepRecord {
    /// Number of updates done before this measurement (0 = the start).
    pub step: usize,
    /// The objective of each row (without penalties).
    pub objective: Vec<f64>,
    /// The softmax probability of each row's target class (the objective's class targets,
    /// or the top class for hidden-unit objectives).
    pub target_prob: Vec<f64>,
    /// The arg-max class of each row.
    pub top_class: Vec<i64>,
}

/// The images at one step.
#[derive(Debug)]
pub struct Snapshot {
    pub step: usize,
    /// `[N, C, H, W]`.
    pub images: Tensor,
}

/// The result of [`ascend`].
#[derive(Debug)]
pub struct AscendResult {
    /// The final inputs `[N, C, H, W]` (not clamped unless the regularization clips).
    pub images: Tensor,
    /// One record per step, `steps + 1` in all; the last is measured on the final images
    /// without random transforms.
    pub history: Vec<StepRecord>,
    /// Start, every `snapshot_every` steps, and end.
    pub snapshots: Vec<Snapshot>,
    /// The class each row aimed for, if the objective names classes.
    pub targets: Option<Vec<i64>>,
}

impl AscendResult {
    pub fn final_record(&self) -> &StepRecord {
        self.history.last().expect("history is never empty")
    }
    pub fn final_target_probs(&self) -> Vec<f64> {
        self.final_record().target_prob.clone()
    }
    pub fn final_objective(&self) -> Vec<f64> {
        self.final_record().objective.clone()
    }
    /// The objective of row `i` against step, for a line chart.
    pub fn objective_curve(&self, i: usize) -> Vec<(f64, f64)> {
        self.history
            .iter()
            .map(|r| (r.step as f64, r.objective[i]))
            .collect()
    }
    /// The target probability of row `i` against step.
    pub fn prob_curve(&self, i: usize) -> Vec<(f64, f64)> {
        self.history
            .iter()
            .map(|r| (r.step as f64, r.target_prob[i]))
            .collect()
    }
}

fn to_f64s(t: &Tensor) -> Result<Vec<f64>> {
    Ok(Vec::<f64>::try_from(
        &t.detach().to_device(Device::Cpu).to_kind(Kind::Double),
    )?)
}

fn record(step: usize, objective: &Tensor, logits: &Tensor, targets: Option<&Tensor>) -> Result<StepRecord> {
    let probs = logits.detach().softmax(1, Kind::Float);
    let (top_p, top) = probs.max_dim(1, false);
    let target_prob = match targets {
        Some(t) => probs.gather(1, t, false).squeeze_dim(1),
        None => top_p,
    };
    let objective = to_f64s(objective)?;
    if let Some(i) = objective.iter().position(|v| !v.is_finite()) {
        bail!(
            "the objective of row {i} became {} at step {step}: lower the learning rate or add clipping",
            objective[i]
        );
    }
    Ok(StepRecord {
        step,
        objective,
        target_prob: to_f64s(&target_prob)?,
        top_class: Vec::<i64>::try_from(&top.to_device(Device::Cpu))?,
    })
}

/// Maximizes `objective` over the inputs, starting from `init` `[N, C, H, W]`.
///
/// The model's weights are never changed and receive no gradient. Errors on a bad
/// objective (class, layer or channel out of range, listing the valid ones), on NaN or
/// infinite inputs, and when the objective becomes non-finite.
pub fn ascend(
    model: &dyn Classifier,
    objective: &Objective,
    init: &Tensor,
    cfg: &AscendConfig,
) -> Result<AscendResult> {
    model.check_input(init)?;
    check_finite(init, "the initial input")?;
    ensure!(
        cfg.lr.is_finite() && cfg.lr > 0.0,
        "the learning rate must be > 0, got {}",
        cfg.lr
    );
    let n = init.size()[0];
    objective.validate(model, n)?;
    let dev = model.device();
    let targets_vec = objective.class_targets(n);
    let targets = targets_vec
        .as_ref()
        .map(|t| Tensor::from_slice(t).to_device(dev).unsqueeze(1));
    let reg = &cfg.regularization;
    let mut state = ParamState::new(reg.param, &init.to_device(dev))?;
    let mut rng = rand::rngs::StdRng::seed_from_u64(cfg.seed);
    let mut history = Vec::with_capacity(cfg.steps + 1);
    let mut snapshots = vec![Snapshot {
        step: 0,
        images: state.image().detach().to_device(Device::Cpu).copy(),
    }];
    let (mut m, mut v) = (state.param().zeros_like(), state.param().zeros_like());
    let progress = if cfg.progress {
        Progress::new("ascend", cfg.steps as u64)
    } else {
        Progress::hidden()
    };
    let want_img_grad = reg.needs_image_grad() && state.kind() != crate::regularize::Parameterization::Pixel;
    for step in 1..=cfg.steps {
        let img = state.image();
        let seen = reg.transform(&img, &mut rng);
        let eval = objective.evaluate(model, &seen)?;
        let total = match reg.penalty(&img) {
            Some(p) => &eval.per_sample - p,
            None => eval.per_sample.shallow_clone(),
        };
        let inputs: Vec<&Tensor> = if want_img_grad {
            vec![state.param(), &img]
        } else {
            vec![state.param()]
        };
        let grads = Tensor::run_backward(&[total.sum(Kind::Float)], &inputs, false, false);
        let g = &grads[0];
        let rec = record(step - 1, &eval.per_sample, &eval.logits, targets.as_ref())?;
        progress.update(step as u64, || {
            let mean = rec.objective.iter().sum::<f64>() / rec.objective.len() as f64;
            let p = rec.target_prob.iter().sum::<f64>() / rec.target_prob.len() as f64;
            format!("objective {mean:.3}  target p {p:.3}")
        });
        history.push(rec);
        tch::no_grad(|| {
            let delta = match cfg.step_rule {
                StepRule::Plain => g * cfg.lr,
                StepRule::Normalized => {
                    let dims: Vec<i64> = (1..g.dim() as i64).collect();
                    let scale = g
                        .abs()
                        .mean_dim(dims.as_slice(), true, Kind::Float)
                        .clamp_min(1e-12);
                    g / scale * cfg.lr
                }
                StepRule::Adam { beta1, beta2, eps } => {
                    m = &m * beta1 + g * (1.0 - beta1);
                    v = &v * beta2 + g.square() * (1.0 - beta2);
                    let mh = &m / (1.0 - beta1.powi(step as i32));
                    let vh = &v / (1.0 - beta2.powi(step as i32));
                    mh / (vh.sqrt() + eps) * cfg.lr
                }
            };
            let mut p = state.param().shallow_clone();
            let _ = p.g_add_(&delta);
        });
        if !reg.post.is_empty() {
            let img_grad = if want_img_grad { Some(&grads[1]) } else { Some(g) };
            let new = tch::no_grad(|| reg.post_step(&state.image().detach(), img_grad, step));
            state.set_image(&new);
        }
        if cfg.snapshot_every > 0 && step % cfg.snapshot_every == 0 && step != cfg.steps {
            snapshots.push(Snapshot {
                step,
                images: state.image().detach().to_device(Device::Cpu).copy(),
            });
        }
    }
    progress.finish();
    let images = state.image().detach().to_device(Device::Cpu).copy();
    check_finite(&images, "the optimized input").context("lower the learning rate or add clipping")?;
    let fin = tch::no_grad(|| objective.evaluate(model, &images.to_device(dev)))?;
    history.push(record(cfg.steps, &fin.per_sample, &fin.logits, targets.as_ref())?);
    snapshots.push(Snapshot {
        step: cfg.steps,
        images: images.copy(),
    });
    Ok(AscendResult {
        images,
        history,
        snapshots,
        targets: targets_vec,
    })
}

// ---------------------------------------------------------------------------------------
// Naturalness: the judge's verdict lives in [`crate::naturalness`]; the old paths keep working.

pub use crate::naturalness::{naturalness, JudgedImage, Naturalness};
