//! How natural are feature visualizations? Measured, not eyeballed, in four ways:
//!
//! - **One judge's verdict** ([`naturalness`]): an independent classifier (another
//!   architecture, seed and half of the training data) names each class visualization.
//! - **Transfer** ([`transfer`]): the same vote from several judges, averaged: a
//!   visualization that only fools the analysed model's own features does not transfer.
//! - **Fréchet distance** ([`RealReference::frechet`]): FID-style, between the judge's
//!   penultimate-layer features of many visualizations of a class and of real test images of
//!   that class, with the real-vs-real split-half distance as the floor.
//! - **Spectrum** ([`Spectrum::of`]): the radially averaged power spectrum and its log-log
//!   slope; unregularized ascent puts excess power into high frequencies.
//!
//! [`ClassStudy`] runs all of them for one regularization setting, and
//! [`regularization_candidates`] lists the settings the default was chosen from
//! (`cargo run --release --example naturalness_table` prints the table).

use crate::ascend::{ascend, AscendConfig, Init};
use crate::data::Dataset;
use crate::model::{check_finite, predict, Classifier};
use crate::objective::Objective;
use crate::regularize::{Parameterization, Regularization};
use anyhow::{ensure, Context, Result};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use std::fmt;
use tch::{Device, Kind, Tensor};

// ---------------------------------------------------------------------------------------
// One judge's verdict

/// How an independent judge model sees one visualization.
#[derive(Debug, Clone)]
pub struct JudgedImage {
    pub target: i64,
    /// The judge's arg-max class.
    pub judged: i64,
    /// The judge's probability of the target class.
    pub target_prob: f64,
    /// RMS pixel distance to the mean image of the target class.
    pub dist_to_mean: f64,
    /// The average RMS distance of real images of the class to their mean, for scale.
    pub real_dist_to_mean: f64,
}

/// Naturalness of a batch of visualizations, measured rather than eyeballed.
#[derive(Debug, Clone)]
pub struct Naturalness {
    pub images: Vec<JudgedImage>,
}

impl Naturalness {
    /// How many rows the judge assigns to their target class.
    pub fn recognized(&self) -> usize {
        self.images.iter().filter(|j| j.judged == j.target).count()
    }
    pub fn mean_target_prob(&self) -> f64 {
        self.images.iter().map(|j| j.target_prob).sum::<f64>() / self.images.len().max(1) as f64
    }
    pub fn mean_dist_to_mean(&self) -> f64 {
        self.images.iter().map(|j| j.dist_to_mean).sum::<f64>() / self.images.len().max(1) as f64
    }
    /// The mean distance of visualizations to their class mean divided by that of real
    /// images (1 ≈ as far from the class mean as a typical real digit).
    pub fn dist_ratio(&self) -> f64 {
        let real =
            self.images.iter().map(|j| j.real_dist_to_mean).sum::<f64>() / self.images.len().max(1) as f64;
        self.mean_dist_to_mean() / real.max(1e-12)
    }
    /// One sentence: `recognized 9/10, mean target p 0.87, distance to class mean 1.3× real`.
    pub fn summary(&self) -> String {
        format!(
            "recognized {}/{}, mean target probability {:.3}, distance to class mean {:.3} ({:.2}× that of real images)",
            self.recognized(),
            self.images.len(),
            self.mean_target_prob(),
            self.mean_dist_to_mean(),
            self.dist_ratio()
        )
    }
}

impl fmt::Display for Naturalness {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "target  judged  p(target)  dist-to-mean  (real)")?;
        for j in &self.images {
            writeln!(
                f,
                "{:>6}  {:>6}  {:>9.3}  {:>12.3}  ({:.3})",
                j.target, j.judged, j.target_prob, j.dist_to_mean, j.real_dist_to_mean
            )?;
        }
        write!(f, "{}", self.summary())
    }
}

/// Scores `images` `[N, C, H, W]` aimed at `targets` with an independent `judge` model.
/// `images` are clamped to `[0, 1]` first (that is all a viewer sees). `reference` is a
/// labelled data set (e.g. the test split) for the class means.
pub fn naturalness(
    judge: &dyn Classifier,
    images: &Tensor,
    targets: &[i64],
    reference: &crate::data::Dataset,
) -> Result<Naturalness> {
    let n = images.size()[0];
    ensure!(
        targets.len() as i64 == n,
        "{} targets for {n} images",
        targets.len()
    );
    let x = images
        .detach()
        .to_device(Device::Cpu)
        .to_kind(Kind::Float)
        .clamp(0.0, 1.0);
    let p = predict(judge, &x, 256)?;
    let means = reference.class_means()?;
    let k = means.size()[0];
    let labels = Vec::<i64>::try_from(&reference.labels)?;
    let mut out = Vec::new();
    for (i, &t) in targets.iter().enumerate() {
        ensure!((0..k).contains(&t), "target class {t} is out of range 0..{k}");
        let mean = means.get(t);
        let rms = |img: &Tensor| (img - &mean).square().mean(Kind::Float).sqrt();
        let idx: Vec<i64> = labels
            .iter()
            .enumerate()
            .filter(|(_, &l)| l == t)
            .map(|(j, _)| j as i64)
            .take(500)
            .collect();
        let real = if idx.is_empty() {
            f64::NAN
        } else {
            let imgs = reference.images.index_select(0, &Tensor::from_slice(&idx));
            (imgs - &mean)
                .square()
                .flatten(1, -1)
                .mean_dim([1i64].as_slice(), false, Kind::Float)
                .sqrt()
                .mean(Kind::Float)
                .double_value(&[])
        };
        out.push(JudgedImage {
            target: t,
            judged: p.classes[i],
            target_prob: p.probs.double_value(&[i as i64, t]),
            dist_to_mean: rms(&x.get(i as i64)).double_value(&[]),
            real_dist_to_mean: real,
        });
    }
    Ok(Naturalness { images: out })
}

// ---------------------------------------------------------------------------------------
// Transfer to several judges

/// How one judge sees a batch of visualizations.
#[derive(Debug, Clone)]
pub struct JudgeVote {
    /// The judge's [`Classifier::describe`].
    pub judge: String,
    /// How many rows the judge assigns to their target class.
    pub recognized: usize,
    pub total: usize,
    /// The judge's mean probability of the target class.
    pub mean_target_prob: f64,
}

impl JudgeVote {
    pub fn recognition(&self) -> f64 {
        self.recognized as f64 / self.total.max(1) as f64
    }
}

/// The votes of several judges on one batch.
#[derive(Debug, Clone)]
pub struct Transfer {
    pub votes: Vec<JudgeVote>,
}

impl Transfer {
    /// The fraction of visualizations recognized, averaged over the judges.
    pub fn recognition(&self) -> f64 {
        self.votes.iter().map(JudgeVote::recognition).sum::<f64>() / self.votes.len().max(1) as f64
    }
    /// The mean target probability, averaged over the judges.
    pub fn mean_target_prob(&self) -> f64 {
        self.votes.iter().map(|v| v.mean_target_prob).sum::<f64>() / self.votes.len().max(1) as f64
    }
}

impl fmt::Display for Transfer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for v in &self.votes {
            writeln!(
                f,
                "{}: recognized {}/{}, mean p(target) {:.3}",
                v.judge, v.recognized, v.total, v.mean_target_prob
            )?;
        }
        write!(
            f,
            "mean over {} judge(s): recognition {:.3}, p(target) {:.3}",
            self.votes.len(),
            self.recognition(),
            self.mean_target_prob()
        )
    }
}

/// Each judge's vote on `images` `[N, C, H, W]` (clamped to `[0, 1]`) aimed at `targets`.
/// The judges should be models other than the analysed one (shipped or imported).
pub fn transfer(judges: &[&dyn Classifier], images: &Tensor, targets: &[i64]) -> Result<Transfer> {
    ensure!(!judges.is_empty(), "transfer needs at least one judge");
    let n = images.size().first().copied().unwrap_or(0);
    ensure!(
        targets.len() as i64 == n,
        "{} targets for {n} images",
        targets.len()
    );
    ensure!(n > 0, "no images to judge");
    let x = images
        .detach()
        .to_device(Device::Cpu)
        .to_kind(Kind::Float)
        .clamp(0.0, 1.0);
    let t = Tensor::from_slice(targets);
    let mut votes = Vec::new();
    for judge in judges {
        let k = judge.num_classes();
        if let Some(bad) = targets.iter().find(|&&c| !(0..k).contains(&c)) {
            anyhow::bail!(
                "target class {bad} is out of range for judge {} (0..{k})",
                judge.describe()
            );
        }
        let p = predict(*judge, &x, 256)?;
        let recognized = p.classes.iter().zip(targets).filter(|(a, b)| a == b).count();
        let probs = p.probs.gather(1, &t.unsqueeze(1), false);
        votes.push(JudgeVote {
            judge: judge.describe(),
            recognized,
            total: n as usize,
            mean_target_prob: probs.mean(Kind::Double).double_value(&[]),
        });
    }
    Ok(Transfer { votes })
}

// ---------------------------------------------------------------------------------------
// A model-free check: the nearest real image

/// Model-free naturalness: for each of `images` `[N, C, H, W]` (clamped to `[0, 1]`, as a
/// viewer sees them), the RMS pixel distance to the nearest image of its target class in
/// `pool`: `min_j sqrt(mean_p (x_p − r_{j,p})²)` over the pool images `r_j` labelled
/// `targets[i]`. No network is involved. Real held-out images of the class measured against
/// the same pool give the reference: how close a real image comes to its nearest neighbour.
pub fn nearest_real_rms(images: &Tensor, targets: &[i64], pool: &Dataset) -> Result<Vec<f64>> {
    let n = images.size()[0];
    ensure!(
        targets.len() as i64 == n,
        "{} targets for {n} images",
        targets.len()
    );
    check_finite(images, "the images to compare with real ones")?;
    ensure!(
        images.size()[1..] == pool.images.size()[1..],
        "images of shape {:?} cannot be compared with pool images of shape {:?}",
        &images.size()[1..],
        &pool.images.size()[1..]
    );
    let flat = |t: &Tensor| {
        t.detach()
            .to_device(Device::Cpu)
            .to_kind(Kind::Double)
            .flatten(1, -1)
    };
    let x = flat(&images.clamp(0.0, 1.0));
    let d = x.size()[1] as f64;
    let mut out = vec![f64::NAN; n as usize];
    let mut classes: Vec<i64> = targets.to_vec();
    classes.sort_unstable();
    classes.dedup();
    for c in classes {
        let idx = pool.indices_of_class(c);
        ensure!(!idx.is_empty(), "the pool has no image of class {c}");
        let r = flat(&pool.images.index_select(0, &Tensor::from_slice(&idx)));
        let rows: Vec<i64> = (0..n).filter(|&i| targets[i as usize] == c).collect();
        let q = x.index_select(0, &Tensor::from_slice(&rows));
        // |q − r|² = |q|² + |r|² − 2 q·r, for all pairs at once
        let sq = |t: &Tensor| t.square().sum_dim_intlist([1i64].as_slice(), false, Kind::Double);
        let d2 = sq(&q).unsqueeze(1) + sq(&r).unsqueeze(0) - q.mm(&r.transpose(0, 1)) * 2.0;
        let nearest = Vec::<f64>::try_from(&(d2.min_dim(1, false).0.clamp_min(0.0) / d).sqrt())?;
        for (i, v) in rows.into_iter().zip(nearest) {
            out[i as usize] = v;
        }
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------
// Fréchet distance in a judge's feature space

/// Where images are compared: the activations of one layer of a judge model, flattened
/// (FID uses Inception's penultimate layer; for MNIST the LeNet judge's `fc2`).
pub struct FeatureSpace<'a> {
    pub model: &'a dyn Classifier,
    pub layer: String,
    /// Images per forward pass.
    pub batch: i64,
}

impl<'a> FeatureSpace<'a> {
    /// The features of `layer` of `model`.
    pub fn new(model: &'a dyn Classifier, layer: &str) -> Result<FeatureSpace<'a>> {
        let names = model.layer_names();
        ensure!(
            names.iter().any(|l| l == layer),
            "unknown layer '{layer}' for features of {}: valid layers are {names:?}",
            model.describe()
        );
        Ok(FeatureSpace {
            model,
            layer: layer.to_string(),
            batch: 500,
        })
    }

    /// The layer just before the model's output layer (`fc2` of the LeNet judge).
    pub fn penultimate(model: &'a dyn Classifier) -> Result<FeatureSpace<'a>> {
        let names = model.layer_names();
        ensure!(
            names.len() >= 2,
            "{} has no named penultimate layer (layers: {names:?})",
            model.describe()
        );
        Self::new(model, &names[names.len() - 2])
    }

    /// `[N, D]` f64 features of `images` `[N, C, H, W]`, on the CPU.
    pub fn features(&self, images: &Tensor) -> Result<Tensor> {
        self.model.check_input(images)?;
        check_finite(images, "the images to embed")?;
        ensure!(self.batch > 0, "batch must be at least 1");
        let _guard = tch::no_grad_guard();
        let n = images.size()[0];
        let mut out = Vec::new();
        for start in (0..n).step_by(self.batch as usize) {
            let len = self.batch.min(n - start);
            let x = images
                .narrow(0, start, len)
                .to_kind(Kind::Float)
                .to_device(self.model.device());
            let (_, acts) = self.model.forward_with(&x, &[self.layer.as_str()])?;
            out.push(
                acts[0]
                    .flatten(1, -1)
                    .to_device(Device::Cpu)
                    .to_kind(Kind::Double),
            );
        }
        ensure!(!out.is_empty(), "no images to embed");
        Ok(Tensor::cat(&out, 0))
    }
}

/// A Gaussian fitted to feature vectors: mean `μ` `[D]` and covariance `Σ` `[D, D]` (f64).
#[derive(Debug)]
pub struct Gaussian {
    pub mean: Tensor,
    pub cov: Tensor,
    /// How many vectors it was fitted to.
    pub n: i64,
}

impl Gaussian {
    /// The sample mean and the unbiased sample covariance `(X − μ)ᵀ(X − μ) / (n − 1)` of
    /// `features` `[n, D]`, `n ≥ 2`. With `n ≤ D` the covariance is singular but the
    /// Fréchet distance stays defined; its estimate is then noisier.
    pub fn fit(features: &Tensor) -> Result<Gaussian> {
        ensure!(
            features.dim() == 2,
            "features must be [n, D], got {:?}",
            features.size()
        );
        let n = features.size()[0];
        ensure!(n >= 2, "a covariance needs at least 2 feature vectors, got {n}");
        let x = features.to_kind(Kind::Double).to_device(Device::Cpu);
        check_finite(&x, "the features")?;
        let mean = x.mean_dim(0, false, Kind::Double);
        let c = &x - &mean;
        let cov = c.transpose(0, 1).mm(&c) / (n - 1) as f64;
        Ok(Gaussian { mean, cov, n })
    }
}

/// The square root of a symmetric positive semi-definite matrix, by the symmetric
/// eigendecomposition `M = V diag(λ) Vᵀ` in f64: `√M = V diag(√max(λ, 0)) Vᵀ`. Eigenvalues
/// that rounding made slightly negative are treated as 0.
pub fn sqrtm_psd(m: &Tensor) -> Result<Tensor> {
    let s = m.size();
    ensure!(
        s.len() == 2 && s[0] == s[1],
        "expected a square matrix, got {s:?}"
    );
    let m = m.to_kind(Kind::Double);
    let sym = (&m + m.transpose(0, 1)) * 0.5;
    let (vals, vecs) = sym
        .f_linalg_eigh("L")
        .map_err(|e| anyhow::anyhow!("eigendecomposition failed: {e}"))?;
    let root = vals.clamp_min(0.0).sqrt();
    Ok((&vecs * root.unsqueeze(0)).mm(&vecs.transpose(0, 1)))
}

/// The squared Fréchet distance between two Gaussians, as FID reports it:
///
/// `d² = ‖μ₁ − μ₂‖² + tr Σ₁ + tr Σ₂ − 2 tr (Σ₁ Σ₂)^{1/2}`
///
/// with `tr (Σ₁Σ₂)^{1/2} = Σᵢ √λᵢ`, `λᵢ` the eigenvalues of the symmetric PSD matrix
/// `Σ₁^{1/2} Σ₂ Σ₁^{1/2}` (same eigenvalues as `Σ₁Σ₂`, but no non-symmetric square root
/// whose rounding can turn complex). 0 for identical Gaussians.
pub fn frechet_distance(a: &Gaussian, b: &Gaussian) -> Result<f64> {
    ensure!(
        a.mean.size() == b.mean.size(),
        "the Gaussians live in different spaces: {:?} vs {:?} features",
        a.mean.size(),
        b.mean.size()
    );
    let ra = sqrtm_psd(&a.cov)?;
    let m = ra.mm(&b.cov).mm(&ra);
    let m = (&m + m.transpose(0, 1)) * 0.5;
    let vals = m
        .f_linalg_eigvalsh("L")
        .map_err(|e| anyhow::anyhow!("eigendecomposition failed: {e}"))?;
    let cross = vals.clamp_min(0.0).sqrt().sum(Kind::Double).double_value(&[]);
    let dmu = (&a.mean - &b.mean).square().sum(Kind::Double).double_value(&[]);
    let tr = |c: &Tensor| c.trace().double_value(&[]);
    let d2 = dmu + tr(&a.cov) + tr(&b.cov) - 2.0 * cross;
    ensure!(d2.is_finite(), "the Fréchet distance is not finite ({d2})");
    // Rounding can leave a tiny negative value for (nearly) identical Gaussians.
    Ok(d2.max(0.0))
}

/// The Fréchet distance of one class's visualizations to real images of the class.
#[derive(Debug, Clone)]
pub struct ClassFrechet {
    pub class: i64,
    /// Visualizations vs the reference half of the real images.
    pub distance: f64,
    /// As many real images of the class (from the other half) vs the same reference half:
    /// what real digits score with this sample size. The estimator is biased upward for
    /// small sets, so only a floor of the same size makes the distance comparable.
    pub floor: f64,
    pub n_visualizations: usize,
    pub n_reference: usize,
}

/// Real test images of every class as a judge sees them, split in two halves (seeded): the
/// reference half that visualizations are compared with, and the other half for the floor.
pub struct RealReference {
    pub classes: Vec<i64>,
    /// Features of the other half of each class, where floors draw their samples.
    others: Vec<Tensor>,
    reference: Vec<Gaussian>,
    /// `FD(half A, half B)` per class: the floor of a set as large as a half.
    pub floors: Vec<f64>,
    /// How many real images each half holds, per class.
    pub half_sizes: Vec<usize>,
    /// The spectrum of all real images of each class.
    pub spectra: Vec<Spectrum>,
    /// The spectrum of all real images.
    pub spectrum: Spectrum,
    /// Random subsets averaged for the floor of a set smaller than a half.
    pub floor_draws: usize,
    seed: u64,
}

impl RealReference {
    /// Embeds `data` with `space` and splits each class in halves, shuffled by `seed`.
    pub fn new(space: &FeatureSpace, data: &Dataset, seed: u64) -> Result<RealReference> {
        let feats = space.features(&data.images)?;
        let k = data.class_names.len() as i64;
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let (mut others, mut reference, mut floors) = (vec![], vec![], vec![]);
        let (mut half_sizes, mut spectra) = (vec![], vec![]);
        for c in 0..k {
            let mut idx = data.indices_of_class(c);
            ensure!(
                idx.len() >= 4,
                "class {c} has {} real images: the split-half floor needs at least 4",
                idx.len()
            );
            idx.shuffle(&mut rng);
            let half = idx.len() / 2;
            let take = |ix: &[i64]| feats.index_select(0, &Tensor::from_slice(ix));
            let (a, b) = (take(&idx[..half]), Gaussian::fit(&take(&idx[half..2 * half]))?);
            floors.push(frechet_distance(&Gaussian::fit(&a)?, &b)?);
            others.push(a);
            reference.push(b);
            half_sizes.push(half);
            spectra.push(Spectrum::of(&data.select(&idx)?.images)?);
        }
        Ok(RealReference {
            classes: (0..k).collect(),
            others,
            reference,
            floors,
            half_sizes,
            spectra,
            spectrum: Spectrum::of(&data.images)?,
            floor_draws: 10,
            seed,
        })
    }

    /// The floor for `n` images of `class`: the mean Fréchet distance of `n` real images
    /// (random subsets of the other half, seeded) to the reference half; for `n` at least a
    /// half, the whole other half.
    pub fn floor(&self, class: i64, n: usize) -> Result<f64> {
        let c = class as usize;
        ensure!(c < self.classes.len(), "class {class} has no real reference");
        ensure!(n >= 2, "a floor needs at least 2 images, got {n}");
        if n >= self.half_sizes[c] {
            return Ok(self.floors[c]);
        }
        let mut rng = rand::rngs::StdRng::seed_from_u64(self.seed ^ ((c as u64) << 32) ^ (n as u64));
        let mut idx: Vec<i64> = (0..self.half_sizes[c] as i64).collect();
        let mut total = 0.0;
        for _ in 0..self.floor_draws.max(1) {
            idx.shuffle(&mut rng);
            let sub = self.others[c].index_select(0, &Tensor::from_slice(&idx[..n]));
            total += frechet_distance(&Gaussian::fit(&sub)?, &self.reference[c])?;
        }
        Ok(total / self.floor_draws.max(1) as f64)
    }

    /// Per class present in `targets`: the Fréchet distance between the features of that
    /// class's rows of `images` (clamped to `[0, 1]`) and the reference half, with the floor
    /// of the same sample size.
    pub fn frechet(
        &self,
        space: &FeatureSpace,
        images: &Tensor,
        targets: &[i64],
    ) -> Result<Vec<ClassFrechet>> {
        let n = images.size().first().copied().unwrap_or(0);
        ensure!(
            targets.len() as i64 == n,
            "{} targets for {n} images",
            targets.len()
        );
        let feats = space.features(&images.clamp(0.0, 1.0))?;
        let mut classes: Vec<i64> = targets.to_vec();
        classes.sort_unstable();
        classes.dedup();
        classes
            .into_iter()
            .map(|c| {
                ensure!(
                    (0..self.classes.len() as i64).contains(&c),
                    "target class {c} has no real reference (classes 0..{})",
                    self.classes.len()
                );
                let rows: Vec<i64> = (0..n).filter(|&i| targets[i as usize] == c).collect();
                let g = Gaussian::fit(&feats.index_select(0, &Tensor::from_slice(&rows)))
                    .with_context(|| format!("class {c}: give at least 2 visualizations per class"))?;
                let ci = c as usize;
                Ok(ClassFrechet {
                    class: c,
                    distance: frechet_distance(&g, &self.reference[ci])?,
                    floor: self.floor(c, rows.len())?,
                    n_visualizations: rows.len(),
                    n_reference: self.half_sizes[ci],
                })
            })
            .collect()
    }
}

// ---------------------------------------------------------------------------------------
// Spectrum

/// The radially averaged power spectrum of a batch of images.
#[derive(Debug, Clone)]
pub struct Spectrum {
    /// Spatial frequency in cycles per image, `1..=min(H, W)/2`.
    pub radii: Vec<f64>,
    /// The mean power `|F(u, v)|²` (orthonormal 2-D DFT of each mean-subtracted image and
    /// channel) over all frequencies whose radius rounds to each entry of `radii`, averaged
    /// over the images.
    pub power: Vec<f64>,
    /// The least-squares slope of `log power` against `log radius`: natural images fall
    /// off roughly as `1/f²` (slope ≈ −2); white noise is flat (slope 0).
    pub slope: f64,
    /// The share of the power (DC excluded) at radii above half the Nyquist radius.
    pub high_frequency_fraction: f64,
}

impl Spectrum {
    /// The spectrum of `images` `[N, C, H, W]`, clamped to `[0, 1]` (what a viewer sees).
    pub fn of(images: &Tensor) -> Result<Spectrum> {
        let s = images.size();
        ensure!(
            s.len() == 4 && s[0] > 0,
            "images must be a non-empty [N, C, H, W], got {s:?}"
        );
        check_finite(images, "the images")?;
        let (h, w) = (s[2], s[3]);
        let nyquist = h.min(w) / 2;
        ensure!(nyquist >= 2, "images of {h}x{w} are too small for a spectrum");
        let x = images
            .to_device(Device::Cpu)
            .to_kind(Kind::Double)
            .clamp(0.0, 1.0);
        let x = &x - x.mean_dim([-2i64, -1].as_slice(), true, Kind::Double);
        let f = x.fft_fft2(None::<&[i64]>, [-2i64, -1].as_slice(), "ortho");
        let power = f
            .abs()
            .square()
            .mean_dim([0i64, 1].as_slice(), false, Kind::Double);
        let opts = (Kind::Double, Device::Cpu);
        let fy = (Tensor::fft_fftfreq(h, 1.0, opts) * h as f64).unsqueeze(1);
        let fx = (Tensor::fft_fftfreq(w, 1.0, opts) * w as f64).unsqueeze(0);
        let radius = (fy.square() + fx.square()).sqrt();
        let p = Vec::<f64>::try_from(&power.flatten(0, -1))?;
        let r = Vec::<f64>::try_from(&radius.flatten(0, -1))?;
        let total: f64 = p.iter().zip(&r).filter(|(_, r)| **r > 0.0).map(|(p, _)| p).sum();
        ensure!(
            total > 0.0,
            "the images are constant: they have no spectrum to measure"
        );
        let high: f64 = p
            .iter()
            .zip(&r)
            .filter(|(_, r)| **r > nyquist as f64 / 2.0)
            .map(|(p, _)| p)
            .sum();
        let (mut sum, mut count) = (
            vec![0.0; nyquist as usize + 1],
            vec![0usize; nyquist as usize + 1],
        );
        for (pv, rv) in p.iter().zip(&r) {
            let bin = rv.round() as usize;
            if (1..=nyquist as usize).contains(&bin) {
                sum[bin] += pv;
                count[bin] += 1;
            }
        }
        let radii: Vec<f64> = (1..=nyquist).map(|b| b as f64).collect();
        let power: Vec<f64> = (1..=nyquist as usize)
            .map(|b| sum[b] / count[b].max(1) as f64)
            .collect();
        Ok(Spectrum {
            slope: log_log_slope(&radii, &power)?,
            radii,
            power,
            high_frequency_fraction: high / total,
        })
    }
}

/// The least-squares slope of `log y` against `log x`.
pub fn log_log_slope(x: &[f64], y: &[f64]) -> Result<f64> {
    ensure!(
        x.len() == y.len() && x.len() >= 2,
        "need at least two points of equal count"
    );
    if let Some(i) = (0..x.len()).find(|&i| !(x[i] > 0.0 && y[i] > 0.0)) {
        anyhow::bail!(
            "log-log fit needs positive values; point {i} is ({}, {})",
            x[i],
            y[i]
        );
    }
    let lx: Vec<f64> = x.iter().map(|v| v.ln()).collect();
    let ly: Vec<f64> = y.iter().map(|v| v.ln()).collect();
    let n = lx.len() as f64;
    let (mx, my) = (lx.iter().sum::<f64>() / n, ly.iter().sum::<f64>() / n);
    let sxy: f64 = lx.iter().zip(&ly).map(|(a, b)| (a - mx) * (b - my)).sum();
    let sxx: f64 = lx.iter().map(|a| (a - mx) * (a - mx)).sum();
    Ok(sxy / sxx)
}

// ---------------------------------------------------------------------------------------
// All of it for one regularization setting

/// A named regularization setting to compare.
#[derive(Debug, Clone)]
pub struct Candidate {
    pub name: String,
    pub regularization: Regularization,
}

impl Candidate {
    pub fn new(name: &str, regularization: Regularization) -> Candidate {
        Candidate {
            name: name.to_string(),
            regularization,
        }
    }
}

/// The settings the 28×28 default is chosen from: none, the default, the default without
/// each of its components in turn, and the Fourier parameterization (alone with clipping,
/// and added to the default).
pub fn regularization_candidates() -> Vec<Candidate> {
    let default = Regularization::default_28x28();
    let spec = default.to_string();
    let mut out = vec![
        Candidate::new("none", Regularization::none()),
        Candidate::new("default", default.clone()),
    ];
    for item in spec.split(',') {
        let rest: Vec<&str> = spec.split(',').filter(|s| *s != item).collect();
        if let Ok(r) = Regularization::parse(&rest.join(",")) {
            out.push(Candidate::new(&format!("default − {item}"), r));
        }
    }
    out.push(Candidate::new(
        "fourier + clip",
        Regularization {
            param: Parameterization::Fourier { decay_power: 1.0 },
            ..Regularization::clip_only()
        },
    ));
    out.push(Candidate::new(
        "default + fourier",
        Regularization {
            param: Parameterization::Fourier { decay_power: 1.0 },
            ..default
        },
    ));
    out
}

/// One class's row of a [`ClassReport`].
#[derive(Debug, Clone)]
pub struct ClassRow {
    pub class: i64,
    /// Recognition by the judges, averaged.
    pub recognition: f64,
    /// The judges' mean p(target), averaged.
    pub judge_prob: f64,
    /// The analysed model's mean p(target).
    pub model_prob: f64,
    pub frechet: ClassFrechet,
    pub spectrum: Spectrum,
    /// The spectrum slope of the real images of the class.
    pub real_slope: f64,
}

/// Every naturalness measure of one setting's class visualizations.
#[derive(Debug)]
pub struct ClassReport {
    pub name: String,
    pub spec: String,
    /// `[K · starts, C, H, W]`: `starts` rows for class 0, then class 1, ….
    pub images: Tensor,
    pub targets: Vec<i64>,
    pub model_prob: f64,
    pub transfer: Transfer,
    pub classes: Vec<ClassRow>,
    pub spectrum: Spectrum,
}

impl ClassReport {
    /// The Fréchet distance averaged over the classes.
    pub fn mean_frechet(&self) -> f64 {
        self.classes.iter().map(|c| c.frechet.distance).sum::<f64>() / self.classes.len().max(1) as f64
    }
    /// The split-half floor averaged over the classes.
    pub fn mean_floor(&self) -> f64 {
        self.classes.iter().map(|c| c.frechet.floor).sum::<f64>() / self.classes.len().max(1) as f64
    }
    /// `[starts, C, H, W]`: the visualizations of `class`.
    pub fn class_images(&self, class: i64) -> Tensor {
        let rows: Vec<i64> = (0..self.targets.len() as i64)
            .filter(|&i| self.targets[i as usize] == class)
            .collect();
        self.images.index_select(0, &Tensor::from_slice(&rows))
    }
}

/// Class visualizations of `model` from many noise starts, judged in every way above.
pub struct ClassStudy<'a> {
    pub model: &'a dyn Classifier,
    /// Independent models that vote (never the analysed model itself).
    pub judges: Vec<&'a dyn Classifier>,
    /// The feature space of the Fréchet distance (a judge's penultimate layer).
    pub space: FeatureSpace<'a>,
    pub reference: &'a RealReference,
    /// Noise starts per class. 100 by default: more than the 84 features of the LeNet
    /// judge's `fc2`, so the covariance has full rank, and about a split half of a class of
    /// the bundled test split (~200 digits). Fewer work too (the floor is always computed
    /// for the same number of real digits), at the price of noisier estimates.
    pub starts_per_class: i64,
    /// The optimizer; its regularization is replaced by each candidate's.
    pub ascend: AscendConfig,
    /// Seeds the noise starts (row `i` from `seed + i`).
    pub seed: u64,
    /// Rows optimized at once (rows do not interact, so this only bounds memory).
    pub chunk: i64,
}

impl<'a> ClassStudy<'a> {
    /// A study with the documented optimizer ([`AscendConfig::regularized_28x28`]).
    pub fn new(
        model: &'a dyn Classifier,
        judges: Vec<&'a dyn Classifier>,
        space: FeatureSpace<'a>,
        reference: &'a RealReference,
    ) -> ClassStudy<'a> {
        ClassStudy {
            model,
            judges,
            space,
            reference,
            starts_per_class: 100,
            ascend: AscendConfig {
                snapshot_every: 0,
                ..AscendConfig::regularized_28x28()
            },
            seed: 0,
            chunk: 250,
        }
    }

    /// The visualizations of every class under `candidate`, and all measures.
    pub fn evaluate(&self, candidate: &Candidate) -> Result<ClassReport> {
        ensure!(
            self.starts_per_class >= 2,
            "at least 2 starts per class are needed for a covariance"
        );
        ensure!(self.chunk > 0, "chunk must be at least 1");
        let k = self.model.num_classes();
        let targets: Vec<i64> = (0..k)
            .flat_map(|c| std::iter::repeat_n(c, self.starts_per_class as usize))
            .collect();
        let (images, model_probs) = self.visualize(&targets, &candidate.regularization)?;
        let transfer = transfer(&self.judges, &images, &targets)?;
        let frechet = self.reference.frechet(&self.space, &images, &targets)?;
        let mut classes = Vec::new();
        for (c, fr) in (0..k).zip(frechet) {
            let rows: Vec<i64> = (0..targets.len() as i64)
                .filter(|&i| targets[i as usize] == c)
                .collect();
            let imgs = images.index_select(0, &Tensor::from_slice(&rows));
            let votes = transfer_of(&self.judges, &imgs, c)?;
            let mp = rows.iter().map(|&i| model_probs[i as usize]).sum::<f64>() / rows.len() as f64;
            classes.push(ClassRow {
                class: c,
                recognition: votes.recognition(),
                judge_prob: votes.mean_target_prob(),
                model_prob: mp,
                frechet: fr,
                spectrum: Spectrum::of(&imgs)?,
                real_slope: self.reference.spectra[c as usize].slope,
            });
        }
        Ok(ClassReport {
            name: candidate.name.clone(),
            spec: candidate.regularization.to_string(),
            model_prob: model_probs.iter().sum::<f64>() / model_probs.len() as f64,
            spectrum: Spectrum::of(&images)?,
            images,
            targets,
            transfer,
            classes,
        })
    }

    /// Runs the ascent in chunks; returns the images and the model's final p(target).
    fn visualize(&self, targets: &[i64], reg: &Regularization) -> Result<(Tensor, Vec<f64>)> {
        let n = targets.len() as i64;
        let x0 = Init::noise(0.1, 0.05, self.seed).make(n, self.model.input_shape())?;
        let cfg = AscendConfig {
            regularization: reg.clone(),
            ..self.ascend.clone()
        };
        let (mut images, mut probs) = (Vec::new(), Vec::new());
        for start in (0..n).step_by(self.chunk as usize) {
            let len = self.chunk.min(n - start);
            let t = &targets[start as usize..(start + len) as usize];
            let run = ascend(self.model, &Objective::logits(t), &x0.narrow(0, start, len), &cfg)?;
            probs.extend(run.final_target_probs());
            images.push(run.images);
        }
        Ok((Tensor::cat(&images, 0), probs))
    }
}

fn transfer_of(judges: &[&dyn Classifier], images: &Tensor, class: i64) -> Result<Transfer> {
    let t = vec![class; images.size()[0] as usize];
    transfer(judges, images, &t)
}
