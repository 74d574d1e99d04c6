//! Saliency maps: gradient-based attribution of a class score to the input pixels.
//!
//! One uniform entry point, in the style of Captum: every method implements
//! [`Attribution::attribute`], which takes a batch `[N, C, H, W]` of images in `[0, 1]`,
//! per-sample [`Target`] classes, and returns **signed** attributions of the input's shape
//! (Grad-CAM's map, which has one channel, is repeated over the input channels).
//!
//! The class score `S_c(x)` is chosen by [`Score`]: the logit `z_c`, the softmax probability
//! `p_c = exp(z_c) / Σ_k exp(z_k)` or the log-probability `log p_c`.
//!
//! | method | attribution of pixel `i` |
//! |---|---|
//! | [`Gradient`] | `∂S_c/∂x_i` (Simonyan et al. 2014) |
//! | [`InputXGradient`] | `x_i · ∂S_c/∂x_i` |
//! | [`SmoothGrad`] | `(1/n) Σ_j ∂S_c/∂x_i (x + ε_j)`, `ε_j ~ N(0, σ²)` (Smilkov et al. 2017) |
//! | [`IntegratedGradients`] | `(x_i − x'_i) · ∫₀¹ ∂S_c/∂x_i (x' + α(x − x')) dα` (Sundararajan et al. 2017) |
//! | [`GradCam`] | `ReLU(Σ_k α_k A^k)` upsampled, `α_k = mean_ij ∂S_c/∂A^k_ij` (Selvaraju et al. 2017) |
//!
//! All methods work on any [`Classifier`] (built-in or TorchScript); Grad-CAM also needs
//! named layers (built-in models and models imported with `gradviz import`). Work is split into internal batches, so
//! memory does not grow with `N × samples` or `N × steps`. The model's weights are never
//! written to and never receive gradients (they are frozen on load; gradients are taken
//! with respect to the input only).
//!
//! For display, [`reduce`] turns `[N, C, H, W]` attributions into `[N, H, W]` maps
//! (signed, summed, absolute or max-abs over channels) and [`clip_percentile`] clips
//! outliers so that a few extreme pixels do not wash out the colour scale.

use crate::model::{check_finite, predict, Classifier};
use anyhow::{bail, ensure, Context, Result};
use rand::{rngs::StdRng, Rng, SeedableRng};
use tch::{Kind, Tensor};

/// Which class each image's score is taken for.
#[derive(Debug)]
pub enum Target {
    /// The same class for every image.
    Class(i64),
    /// One class per image.
    Classes(Vec<i64>),
    /// One class per image as an `[N]` integer tensor, typically the true labels.
    Labels(Tensor),
    /// The class the model predicts for each image.
    Predicted,
}

impl Target {
    /// The true labels of a data set, as a target.
    pub fn labels(labels: &Tensor) -> Target {
        Target::Labels(labels.shallow_clone())
    }

    /// The class index for each of the `N` images of `inputs`, checked against the model.
    pub fn resolve(&self, model: &dyn Classifier, inputs: &Tensor) -> Result<Vec<i64>> {
        let n = inputs.size().first().copied().unwrap_or(0) as usize;
        let classes = match self {
            Target::Class(c) => vec![*c; n],
            Target::Classes(v) => {
                ensure!(v.len() == n, "{} target classes given for {n} images", v.len());
                v.clone()
            }
            Target::Labels(t) => {
                ensure!(
                    t.dim() == 1 && t.size()[0] as usize == n,
                    "target labels have shape {:?}, expected [{n}]",
                    t.size()
                );
                ensure!(
                    !t.is_floating_point(),
                    "target labels must be integer class indices, got {:?}",
                    t.kind()
                );
                Vec::<i64>::try_from(&t.to_kind(Kind::Int64).to_device(tch::Device::Cpu))?
            }
            Target::Predicted => predict(model, inputs, 256)?.classes,
        };
        let k = model.num_classes();
        for (i, &c) in classes.iter().enumerate() {
            ensure!(
                (0..k).contains(&c),
                "target class {c} (image {i}) is out of range: the model has {k} classes, 0..={}",
                k - 1
            );
        }
        Ok(classes)
    }
}

/// The class score whose gradient is taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Score {
    /// The logit `z_c` (pre-softmax). Its gradient only says how class `c`'s own evidence changes.
    #[default]
    Logit,
    /// The probability `p_c`. By the chain rule
    /// `∂p_c/∂x = Σ_k p_c(δ_ck − p_k) ∂z_k/∂x`: it mixes in the other classes' gradients
    /// and vanishes when the model is confident (`p_c ≈ 1`).
    Softmax,
    /// `log p_c = z_c − logsumexp(z)`: `∂/∂x = ∂z_c/∂x − Σ_k p_k ∂z_k/∂x`, evidence for `c`
    /// *against* the other classes, without the saturation of `p_c`.
    LogSoftmax,
}

impl Score {
    pub const ALL: [Score; 3] = [Score::Logit, Score::Softmax, Score::LogSoftmax];

    pub fn as_str(self) -> &'static str {
        match self {
            Score::Logit => "logit",
            Score::Softmax => "softmax",
            Score::LogSoftmax => "log-softmax",
        }
    }

    /// `[N]` scores of `logits` `[N, K]` at the classes `targets` `[N]` (int64), as f32.
    ///
    /// The softmax and log-softmax are computed in f64: in f32, `p_c` rounds to exactly 1
    /// once the logit margin exceeds about 17, and the `+p_c(1 − p_c) ∂z_c` term of the
    /// softmax gradient then vanishes, leaving only the `−p_c p_k ∂z_k` terms of the other
    /// classes (an artefact of the rounding, not of the softmax). In f64 the term survives
    /// up to a margin of about 36; the gradient flowing back to the f32 logits is then small
    /// but representable.
    pub fn of(self, logits: &Tensor, targets: &Tensor) -> Tensor {
        let s = match self {
            Score::Logit => logits.to_kind(Kind::Float),
            Score::Softmax => logits.to_kind(Kind::Double).softmax(-1, Kind::Double),
            Score::LogSoftmax => logits.to_kind(Kind::Double).log_softmax(-1, Kind::Double),
        };
        s.gather(1, &targets.unsqueeze(1), false)
            .squeeze_dim(1)
            .to_kind(Kind::Float)
    }
}

impl std::str::FromStr for Score {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Score> {
        Score::ALL
            .into_iter()
            .find(|x| x.as_str() == s)
            .with_context(|| format!("unknown score '{s}': expected logit, softmax or log-softmax"))
    }
}

impl std::fmt::Display for Score {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An attribution method: signed attributions of the input's shape for each image.
pub trait Attribution {
    /// A short name for figure titles, e.g. `SmoothGrad (n=50, σ=0.15)`.
    fn name(&self) -> String;

    /// Attributions `[N, C, H, W]` (f32, on the input's device) of `target`'s score.
    fn attribute(&self, model: &dyn Classifier, inputs: &Tensor, target: &Target) -> Result<Tensor>;
}

// ---------------------------------------------------------------------------------------
// shared machinery

/// Checks an input batch and resolves its targets.
pub(crate) fn prepare(model: &dyn Classifier, inputs: &Tensor, target: &Target) -> Result<Vec<i64>> {
    model.check_input(inputs)?;
    ensure!(inputs.size()[0] > 0, "the input batch is empty");
    check_finite(inputs, "the input batch")?;
    target.resolve(model, inputs)
}

fn ensure_batch(batch: i64, what: &str) -> Result<()> {
    ensure!(batch > 0, "{what} must be at least 1, got {batch}");
    Ok(())
}

/// Progress over the chunks of a long attribution (a command-line run on thousands of images);
/// runs of fewer than 64 chunks, as in the notebooks, stay silent.
fn chunk_progress(label: &str, rows: i64, size: i64) -> crate::progress::Progress {
    let total = (rows + size.max(1) - 1) / size.max(1);
    if total >= 64 {
        crate::progress::Progress::new(label, total as u64)
    } else {
        crate::progress::Progress::hidden()
    }
}

/// `(start, len)` chunks covering `0..n`.
pub(crate) fn chunks(n: i64, size: i64) -> impl Iterator<Item = (i64, i64)> {
    (0..n)
        .step_by(size.max(1) as usize)
        .map(move |s| (s, size.min(n - s)))
}

/// Gradient of the summed scores w.r.t. `x` (one forward + one backward pass), and the
/// scores. Images do not interact in an eval-mode forward pass, so row `i` of the result is
/// `∂S_{c_i}(x_i)/∂x_i`.
fn score_grad(
    model: &dyn Classifier,
    x: &Tensor,
    targets: &Tensor,
    score: Score,
) -> Result<(Tensor, Tensor)> {
    tch::with_grad(|| {
        let x = x
            .detach()
            .to_kind(Kind::Float)
            .to_device(model.device())
            .set_requires_grad(true);
        let logits = model.logits(&x)?;
        ensure!(
            logits.dim() == 2 && logits.size()[0] == x.size()[0],
            "model returned logits of shape {:?} for {} images",
            logits.size(),
            x.size()[0]
        );
        let s = score.of(&logits, &targets.to_device(logits.device()));
        let g = Tensor::f_run_backward(&[s.sum(Kind::Float)], &[&x], false, false)
            .map_err(|e| anyhow::anyhow!("backward pass failed: {e}"))?;
        let g = g
            .into_iter()
            .next()
            .context("backward pass returned no gradient")?;
        Ok((g, s.detach()))
    })
}

/// Scores `[N]` without gradients, in chunks.
fn scores(model: &dyn Classifier, x: &Tensor, targets: &[i64], score: Score, batch: i64) -> Result<Tensor> {
    let _guard = tch::no_grad_guard();
    let mut out = Vec::new();
    for (s, len) in chunks(x.size()[0], batch) {
        let logits = model.logits(&x.narrow(0, s, len).to_device(model.device()))?;
        let t = Tensor::from_slice(&targets[s as usize..(s + len) as usize]).to_device(logits.device());
        out.push(score.of(&logits, &t).to_device(x.device()));
    }
    Ok(Tensor::cat(&out, 0))
}

/// Plain gradients of a batch in chunks of `batch` images.
fn batched_gradient(
    model: &dyn Classifier,
    inputs: &Tensor,
    targets: &[i64],
    score: Score,
    batch: i64,
) -> Result<Tensor> {
    let mut out = Vec::new();
    for (s, len) in chunks(inputs.size()[0], batch) {
        let t = Tensor::from_slice(&targets[s as usize..(s + len) as usize]);
        let (g, _) = score_grad(model, &inputs.narrow(0, s, len), &t, score)?;
        out.push(g.to_device(inputs.device()));
    }
    Ok(Tensor::cat(&out, 0))
}

// ---------------------------------------------------------------------------------------
// methods

/// Vanilla gradient (Simonyan et al. 2014): `A_i = ∂S_c(x)/∂x_i`.
///
/// The sign matters: `A_i > 0` means brightening pixel `i` raises the class score,
/// `A_i < 0` means darkening it does. It is a purely local, first-order statement.
#[derive(Debug, Clone)]
pub struct Gradient {
    pub score: Score,
    /// Images per forward/backward pass.
    pub batch: i64,
}

impl Default for Gradient {
    fn default() -> Self {
        Gradient {
            score: Score::Logit,
            batch: 256,
        }
    }
}

impl Gradient {
    pub fn new(score: Score) -> Gradient {
        Gradient {
            score,
            ..Default::default()
        }
    }
}

impl Attribution for Gradient {
    fn name(&self) -> String {
        format!("gradient ({})", self.score)
    }

    fn attribute(&self, model: &dyn Classifier, inputs: &Tensor, target: &Target) -> Result<Tensor> {
        ensure_batch(self.batch, "batch")?;
        let targets = prepare(model, inputs, target)?;
        batched_gradient(model, inputs, &targets, self.score, self.batch)
    }
}

/// Input × gradient (Shrikumar et al. 2016): `A_i = x_i · ∂S_c(x)/∂x_i`, the first-order
/// Taylor estimate of how much pixel `i` contributes relative to a black image. Black
/// pixels (`x_i = 0`) get exactly zero.
#[derive(Debug, Clone)]
pub struct InputXGradient {
    pub score: Score,
    pub batch: i64,
}

impl Default for InputXGradient {
    fn default() -> Self {
        InputXGradient {
            score: Score::Logit,
            batch: 256,
        }
    }
}

impl Attribution for InputXGradient {
    fn name(&self) -> String {
        format!("input × gradient ({})", self.score)
    }

    fn attribute(&self, model: &dyn Classifier, inputs: &Tensor, target: &Target) -> Result<Tensor> {
        ensure_batch(self.batch, "batch")?;
        let targets = prepare(model, inputs, target)?;
        let g = batched_gradient(model, inputs, &targets, self.score, self.batch)?;
        Ok(g * inputs.to_kind(Kind::Float))
    }
}

/// SmoothGrad (Smilkov et al. 2017): `A_i = (1/n) Σ_{j=1..n} ∂S_c(x + ε_j)/∂x_i` with
/// `ε_j ~ N(0, σ² I)` and `σ = noise · (max(x) − min(x))` per image (the paper's
/// "noise level"; 0.1–0.2 works well). Averaging removes the high-frequency fluctuation
/// of the gradient of a piecewise-linear network.
///
/// The `N × samples` noisy copies are processed `batch` at a time; the noise is drawn
/// from a generator seeded with `seed`, so results are reproducible.
#[derive(Debug, Clone)]
pub struct SmoothGrad {
    pub score: Score,
    pub samples: i64,
    /// σ as a fraction of each image's value range.
    pub noise: f64,
    pub seed: u64,
    /// Noisy images per forward/backward pass.
    pub batch: i64,
}

impl Default for SmoothGrad {
    fn default() -> Self {
        SmoothGrad {
            score: Score::Logit,
            samples: 50,
            noise: 0.15,
            seed: 0,
            batch: 256,
        }
    }
}

/// `len` samples of N(0, 1) by the Box–Muller transform.
pub(crate) fn normal_noise(rng: &mut StdRng, len: usize) -> Vec<f32> {
    let mut out = Vec::with_capacity(len + 1);
    while out.len() < len {
        let u1: f64 = 1.0 - rng.gen::<f64>(); // (0, 1]
        let u2: f64 = rng.gen::<f64>();
        let r = (-2.0 * u1.ln()).sqrt();
        let t = 2.0 * std::f64::consts::PI * u2;
        out.push((r * t.cos()) as f32);
        out.push((r * t.sin()) as f32);
    }
    out.truncate(len);
    out
}

impl Attribution for SmoothGrad {
    fn name(&self) -> String {
        format!("SmoothGrad (n={}, σ={})", self.samples, self.noise)
    }

    fn attribute(&self, model: &dyn Classifier, inputs: &Tensor, target: &Target) -> Result<Tensor> {
        ensure_batch(self.batch, "batch")?;
        ensure_batch(self.samples, "samples")?;
        // Beyond ~100× the input range the image is gone and float32 overflows follow.
        ensure!(
            self.noise.is_finite() && (0.0..=100.0).contains(&self.noise),
            "noise must be a fraction of the input range in [0, 100], got {:e}",
            self.noise
        );
        let targets = prepare(model, inputs, target)?;
        let x = inputs.to_kind(Kind::Float);
        let n = x.size()[0];
        let per_image: i64 = x.size()[1..].iter().product();
        let flat = x.view([n, per_image]);
        let sigma = (flat.amax(1, false) - flat.amin(1, false)) * self.noise; // [N]
        let mut acc = x.zeros_like();
        let mut rng = StdRng::seed_from_u64(self.seed);
        let rows = n * self.samples;
        let progress = chunk_progress("SmoothGrad", rows, self.batch);
        for (k, (s, len)) in chunks(rows, self.batch).enumerate() {
            let idx_v: Vec<i64> = (s..s + len).map(|r| r / self.samples).collect();
            let idx = Tensor::from_slice(&idx_v).to_device(x.device());
            let eps = Tensor::from_slice(&normal_noise(&mut rng, (len * per_image) as usize))
                .to_device(x.device())
                .view([len, per_image]);
            let noisy = flat.index_select(0, &idx) + eps * sigma.index_select(0, &idx).unsqueeze(1);
            let mut shape = x.size();
            shape[0] = len;
            let noisy = noisy.view(shape.as_slice());
            let t: Vec<i64> = idx_v.iter().map(|&i| targets[i as usize]).collect();
            let (g, _) = score_grad(model, &noisy, &Tensor::from_slice(&t), self.score)?;
            let _ = acc.index_add_(0, &idx, &g.to_device(x.device()));
            progress.update(k as u64 + 1, String::new);
        }
        progress.finish();
        Ok(acc / self.samples as f64)
    }
}

/// The reference input `x'` of Integrated Gradients.
#[derive(Debug)]
pub enum Baseline {
    /// A black image (the usual choice for MNIST-like data).
    Zeros,
    /// Every pixel set to one value, e.g. 0.5 for mid-gray.
    Constant(f64),
    /// One image `[C, H, W]` for all inputs, or one per input `[N, C, H, W]`.
    Image(Tensor),
}

impl Baseline {
    /// The baseline as `[N, C, H, W]` for `inputs`.
    pub fn for_inputs(&self, inputs: &Tensor) -> Result<Tensor> {
        let size = inputs.size();
        let opts = (Kind::Float, inputs.device());
        Ok(match self {
            Baseline::Zeros => Tensor::zeros(size.as_slice(), opts),
            Baseline::Constant(v) => {
                crate::model::check_float32(*v, "baseline value")?;
                Tensor::full(size.as_slice(), *v, opts)
            }
            Baseline::Image(b) => {
                let b = b.to_kind(Kind::Float).to_device(inputs.device());
                check_finite(&b, "the baseline")?;
                if b.size() == size {
                    b
                } else if b.size() == size[1..] {
                    b.unsqueeze(0).expand(size.as_slice(), false).contiguous()
                } else {
                    bail!(
                        "baseline has shape {:?}, expected {:?} or {:?}",
                        b.size(),
                        &size[1..],
                        size
                    )
                }
            }
        })
    }
}

/// How Integrated Gradients discretizes the path integral over `α ∈ [0, 1]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Rule {
    /// `α_k = (k + ½)/m`, equal weights `1/m`.
    #[default]
    Midpoint,
    /// `α_k = k/(m − 1)`, weights `1/(m − 1)`, halved at both ends.
    Trapezoid,
}

impl Rule {
    /// Points and weights of an `m`-point rule on `[0, 1]`.
    pub fn points(self, m: i64) -> (Vec<f64>, Vec<f64>) {
        let m = m.max(1);
        match self {
            Rule::Midpoint => (
                (0..m).map(|k| (k as f64 + 0.5) / m as f64).collect(),
                vec![1.0 / m as f64; m as usize],
            ),
            Rule::Trapezoid if m == 1 => (vec![0.5], vec![1.0]),
            Rule::Trapezoid => {
                let h = 1.0 / (m - 1) as f64;
                let w = (0..m)
                    .map(|k| if k == 0 || k == m - 1 { h / 2.0 } else { h })
                    .collect();
                ((0..m).map(|k| k as f64 * h).collect(), w)
            }
        }
    }
}

/// Integrated Gradients (Sundararajan et al. 2017):
///
/// `A_i = (x_i − x'_i) · ∫₀¹ ∂S_c(x' + α(x − x'))/∂x_i dα ≈ (x_i − x'_i) · Σ_k w_k ∂S_c(x' + α_k(x − x'))/∂x_i`
///
/// It satisfies *completeness*: `Σ_i A_i = S_c(x) − S_c(x')` up to the discretization
/// error, which [`IntegratedGradients::attribute_with_delta`] reports as the delta
/// `Σ_i A_i − (S_c(x) − S_c(x'))` (Captum's `return_convergence_delta`).
///
/// The `N × steps` path points are processed `internal_batch` at a time.
#[derive(Debug)]
pub struct IntegratedGradients {
    pub score: Score,
    pub steps: i64,
    pub baseline: Baseline,
    pub rule: Rule,
    /// Path points per forward/backward pass.
    pub internal_batch: i64,
}

impl Default for IntegratedGradients {
    fn default() -> Self {
        IntegratedGradients {
            score: Score::Logit,
            steps: 64,
            baseline: Baseline::Zeros,
            rule: Rule::Midpoint,
            internal_batch: 256,
        }
    }
}

/// Completeness of Integrated Gradients, per image.
#[derive(Debug, Clone)]
pub struct Completeness {
    /// `Σ_i A_i − (S(x) − S(x'))`.
    pub delta: Vec<f64>,
    /// `S(x)`.
    pub score_input: Vec<f64>,
    /// `S(x')`.
    pub score_baseline: Vec<f64>,
}

impl Completeness {
    /// `max |delta| / |S(x) − S(x')|` over the images (0 when all differences are 0).
    pub fn max_relative_error(&self) -> f64 {
        self.delta
            .iter()
            .zip(self.score_input.iter().zip(&self.score_baseline))
            .map(|(d, (a, b))| {
                let diff = (a - b).abs();
                if diff > 0.0 {
                    d.abs() / diff
                } else {
                    d.abs()
                }
            })
            .fold(0.0, f64::max)
    }
}

impl IntegratedGradients {
    pub fn new(steps: i64) -> IntegratedGradients {
        IntegratedGradients {
            steps,
            ..Default::default()
        }
    }

    /// Attributions and their completeness delta (two extra forward passes per image).
    pub fn attribute_with_delta(
        &self,
        model: &dyn Classifier,
        inputs: &Tensor,
        target: &Target,
    ) -> Result<(Tensor, Completeness)> {
        let (attr, targets, x, base) = self.integrate(model, inputs, target)?;
        let batch = self.internal_batch.max(1);
        let s_x = scores(model, &x, &targets, self.score, batch)?;
        let s_b = scores(model, &base, &targets, self.score, batch)?;
        let total = attr.flatten(1, -1).sum_dim_intlist(1, false, Kind::Double);
        let delta = total - (&s_x - &s_b).to_kind(Kind::Double);
        let to_vec = |t: &Tensor| Vec::<f64>::try_from(&t.to_kind(Kind::Double).to_device(tch::Device::Cpu));
        let c = Completeness {
            delta: to_vec(&delta)?,
            score_input: to_vec(&s_x)?,
            score_baseline: to_vec(&s_b)?,
        };
        Ok((attr, c))
    }

    /// Attributions, targets, inputs and baseline.
    fn integrate(
        &self,
        model: &dyn Classifier,
        inputs: &Tensor,
        target: &Target,
    ) -> Result<(Tensor, Vec<i64>, Tensor, Tensor)> {
        ensure_batch(self.steps, "steps")?;
        ensure_batch(self.internal_batch, "internal_batch")?;
        let targets = prepare(model, inputs, target)?;
        let x = inputs.to_kind(Kind::Float);
        let base = self.baseline.for_inputs(&x)?;
        ensure!(
            base.size() == x.size(),
            "baseline shape {:?} differs from the input's {:?}",
            base.size(),
            x.size()
        );
        let diff = &x - &base;
        let n = x.size()[0];
        let (alphas, weights) = self.rule.points(self.steps);
        let m = alphas.len() as i64;
        let mut acc = x.zeros_like();
        let progress = chunk_progress("integrated gradients", n * m, self.internal_batch);
        for (k, (s, len)) in chunks(n * m, self.internal_batch).enumerate() {
            let rows: Vec<i64> = (s..s + len).collect();
            let img: Vec<i64> = rows.iter().map(|r| r / m).collect();
            let a: Vec<f32> = rows.iter().map(|r| alphas[(r % m) as usize] as f32).collect();
            let w: Vec<f32> = rows.iter().map(|r| weights[(r % m) as usize] as f32).collect();
            let t: Vec<i64> = img.iter().map(|&i| targets[i as usize]).collect();
            let idx = Tensor::from_slice(&img).to_device(x.device());
            let shape = [len, 1, 1, 1];
            let a = Tensor::from_slice(&a).to_device(x.device()).view(shape);
            let w = Tensor::from_slice(&w).to_device(x.device()).view(shape);
            let path = base.index_select(0, &idx) + diff.index_select(0, &idx) * a;
            let (g, _) = score_grad(model, &path, &Tensor::from_slice(&t), self.score)?;
            let _ = acc.index_add_(0, &idx, &(g.to_device(x.device()) * w));
            progress.update(k as u64 + 1, String::new);
        }
        progress.finish();
        Ok((acc * &diff, targets, x, base))
    }
}

impl Attribution for IntegratedGradients {
    fn name(&self) -> String {
        format!("integrated gradients ({} steps)", self.steps)
    }

    fn attribute(&self, model: &dyn Classifier, inputs: &Tensor, target: &Target) -> Result<Tensor> {
        Ok(self.integrate(model, inputs, target)?.0)
    }
}

/// Grad-CAM (Selvaraju et al. 2017) on a named spatial layer `A` (`[K, h, w]` maps):
///
/// `α_k = (1/hw) Σ_ij ∂S_c/∂A^k_ij`,  `L = ReLU(Σ_k α_k A^k)`, bilinearly upsampled to
/// the input's `H × W` and repeated over its channels.
///
/// With `relu: false` the map stays signed (regions that speak *against* the class show
/// negative). Needs a model with named layers: built-in, or imported with `gradviz import`
/// (plain TorchScript files expose none).
#[derive(Debug, Clone)]
pub struct GradCam {
    pub layer: String,
    pub score: Score,
    pub relu: bool,
    pub batch: i64,
}

impl GradCam {
    pub fn new(layer: &str) -> GradCam {
        GradCam {
            layer: layer.to_string(),
            score: Score::Logit,
            relu: true,
            batch: 256,
        }
    }
}

/// The default Grad-CAM layer: the last layer that holds a convolution (by the layer graph),
/// else the last layer whose name starts with `conv`.
pub fn last_conv_layer(model: &dyn Classifier) -> Option<String> {
    if let Some(g) = model.graph() {
        let conv = g
            .nodes
            .iter()
            .rev()
            .find(|n| matches!(n.op, crate::graph::Op::Conv2d { .. }));
        if let Some(n) = conv {
            return Some(n.layer.clone());
        }
    }
    model.layer_names().into_iter().rfind(|l| l.starts_with("conv"))
}

impl Attribution for GradCam {
    fn name(&self) -> String {
        format!("Grad-CAM ({})", self.layer)
    }

    fn attribute(&self, model: &dyn Classifier, inputs: &Tensor, target: &Target) -> Result<Tensor> {
        ensure_batch(self.batch, "batch")?;
        let layers = model.layer_names();
        ensure!(
            !layers.is_empty(),
            "Grad-CAM needs a model with named layers; {} exposes none (use a built-in gradviz model, or import yours with `gradviz import`)",
            model.describe()
        );
        ensure!(
            layers.contains(&self.layer),
            "unknown layer '{}' for Grad-CAM: valid layers of {} are {layers:?} (use a conv or pool layer)",
            self.layer,
            model.describe()
        );
        let targets = prepare(model, inputs, target)?;
        let size = inputs.size();
        let (h, w) = (size[2], size[3]);
        let mut out = Vec::new();
        for (s, len) in chunks(size[0], self.batch) {
            let t = Tensor::from_slice(&targets[s as usize..(s + len) as usize]);
            let cam = tch::with_grad(|| -> Result<Tensor> {
                let x = inputs
                    .narrow(0, s, len)
                    .detach()
                    .to_kind(Kind::Float)
                    .to_device(model.device())
                    .set_requires_grad(true);
                let (logits, acts) = model.forward_with(&x, &[self.layer.as_str()])?;
                let a = &acts[0];
                ensure!(
                    a.dim() == 4,
                    "layer '{}' outputs shape {:?}, not spatial maps [N, K, h, w]; Grad-CAM needs a conv or pool layer of {layers:?}",
                    self.layer,
                    a.size()
                );
                let sc = self.score.of(&logits, &t.to_device(logits.device()));
                let g = Tensor::f_run_backward(&[sc.sum(Kind::Float)], &[a], false, false)
                    .map_err(|e| anyhow::anyhow!("backward pass failed: {e}"))?;
                let alpha = g[0].mean_dim([2i64, 3].as_slice(), true, Kind::Float);
                let cam = (alpha * a.detach()).sum_dim_intlist(1, true, Kind::Float);
                Ok(if self.relu { cam.relu() } else { cam })
            })?;
            let cam = cam.upsample_bilinear2d([h, w], false, None, None);
            out.push(cam.to_device(inputs.device()));
        }
        Ok(Tensor::cat(&out, 0).expand(size.as_slice(), false).contiguous())
    }
}

// ---------------------------------------------------------------------------------------
// reductions for display

/// How `[N, C, H, W]` attributions become one `[N, H, W]` map per image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Reduce {
    /// Per pixel, the channel value of largest magnitude, sign kept (for one channel: the
    /// attribution itself). The default: the sign is half of the information.
    #[default]
    Signed,
    /// Signed sum over channels (what IG's completeness adds up).
    Sum,
    /// Sum of absolute values over channels.
    Absolute,
    /// `max_c |A_c|`, as in Simonyan et al. 2014.
    MaxAbs,
}

impl Reduce {
    pub fn as_str(self) -> &'static str {
        match self {
            Reduce::Signed => "signed",
            Reduce::Sum => "sum",
            Reduce::Absolute => "absolute",
            Reduce::MaxAbs => "max-abs",
        }
    }

    /// Whether the reduced map can be negative.
    pub fn is_signed(self) -> bool {
        matches!(self, Reduce::Signed | Reduce::Sum)
    }
}

impl std::str::FromStr for Reduce {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Reduce> {
        [Reduce::Signed, Reduce::Sum, Reduce::Absolute, Reduce::MaxAbs]
            .into_iter()
            .find(|x| x.as_str() == s)
            .with_context(|| format!("unknown reduction '{s}': expected signed, sum, absolute or max-abs"))
    }
}

/// Reduces attributions `[N, C, H, W]` (or one `[C, H, W]`) over channels to `[N, H, W]`.
pub fn reduce(attr: &Tensor, how: Reduce) -> Result<Tensor> {
    let a = match attr.dim() {
        3 => attr.unsqueeze(0),
        4 => attr.shallow_clone(),
        _ => bail!("attributions must be [N, C, H, W], got {:?}", attr.size()),
    };
    let a = a.to_kind(Kind::Float);
    Ok(match how {
        Reduce::Signed => {
            let idx = a.abs().argmax(1, true);
            a.gather(1, &idx, false).squeeze_dim(1)
        }
        Reduce::Sum => a.sum_dim_intlist(1, false, Kind::Float),
        Reduce::Absolute => a.abs().sum_dim_intlist(1, false, Kind::Float),
        Reduce::MaxAbs => a.abs().amax(1, false),
    })
}

/// The `pct`-th percentile of `|map|` over each image: `[N]` for maps `[N, ...]`.
pub fn percentile_abs(maps: &Tensor, pct: f64) -> Result<Tensor> {
    ensure!(
        (0.0..=100.0).contains(&pct),
        "percentile must be in [0, 100], got {pct}"
    );
    ensure!(maps.dim() >= 2, "maps must be [N, ...], got {:?}", maps.size());
    let flat = maps.to_kind(Kind::Float).abs().flatten(1, -1);
    let m = flat.size()[1];
    ensure!(m > 0, "maps are empty");
    let (sorted, _) = flat.sort(1, false);
    let idx = ((m - 1) as f64 * pct / 100.0).round() as i64;
    Ok(sorted.select(1, idx))
}

/// Clips each map `[N, ...]` to `±` its `pct`-th percentile of `|value|` (e.g. 99.5), so that
/// a few extreme pixels do not set the colour scale. `pct = 100` leaves maps unchanged.
pub fn clip_percentile(maps: &Tensor, pct: f64) -> Result<Tensor> {
    let q = percentile_abs(maps, pct)?;
    let mut shape = vec![1i64; maps.dim()];
    shape[0] = maps.size()[0];
    let q = q.view(shape.as_slice());
    let m = maps.to_kind(Kind::Float);
    Ok(m.maximum(&(-&q)).minimum(&q))
}
