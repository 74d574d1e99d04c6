//! Evidence that a saliency map means something.
//!
//! - **Faithfulness** ([`deletion_curve`], [`insertion_curve`]; Petsiuk et al. 2018, RISE):
//!   delete (or insert) pixels in the order the map ranks them and follow the model's
//!   probability for the target class. A faithful map makes the probability fall fast
//!   under deletion (small area under the curve) and rise fast under insertion (large
//!   area), compared with a random order ([`random_ranking`]).
//! - **Sanity** ([`cascading_randomization`]; Adebayo et al. 2018): on a copy, re-initialize
//!   the model's layers (of any model with a layer graph) one by one from the top and measure how similar the maps stay, by
//!   Spearman rank correlation with the trained model's maps. A method that explains the
//!   *model* must change when the model's weights are destroyed; a method whose maps stay
//!   the same is only an edge detector of the input.

use crate::device::to_model_device;
use crate::graph::{GraphModel, LayerGraph, Op as GraphOp};
use crate::model::{BuiltinModel, Classifier};
use crate::saliency::{reduce, Attribution, Reduce, Score, Target};
use anyhow::{ensure, Context, Result};
use rand::{rngs::StdRng, Rng, SeedableRng};
use std::collections::HashMap;
use tch::{Device, Kind, Tensor};

/// Settings of the deletion and insertion curves.
#[derive(Debug, Clone)]
pub struct PerturbConfig {
    /// Number of steps from 0 to all pixels (the curve has `steps + 1` points).
    pub steps: usize,
    /// The value of a deleted pixel (deletion) and of the start image (insertion).
    pub fill: f64,
    /// The score followed along the curve (the probability, as in RISE).
    pub score: Score,
    /// Images per forward pass, and per chunk: peak memory holds `batch` images and their
    /// perturbed copy, whatever the number of images and steps.
    pub batch: i64,
    /// Seed that breaks ties in the ranking at random.
    pub seed: u64,
}

impl Default for PerturbConfig {
    fn default() -> Self {
        PerturbConfig {
            steps: 28,
            fill: 0.0,
            score: Score::Softmax,
            batch: 512,
            seed: 0,
        }
    }
}

/// A deletion or insertion curve, averaged over images.
#[derive(Debug, Clone)]
pub struct Curve {
    /// Fraction of pixels deleted (or inserted), `0..=1`.
    pub fractions: Vec<f64>,
    /// Mean score over the images at each fraction.
    pub mean_score: Vec<f64>,
    /// Area under the mean curve (trapezoid rule over fractions).
    pub auc: f64,
    /// Area under each image's curve.
    pub per_image_auc: Vec<f64>,
    /// Each image's score at each fraction, `[fractions][images]` (for confidence bands).
    pub per_image_score: Vec<Vec<f64>>,
}

fn trapezoid(xs: &[f64], ys: &[f64]) -> f64 {
    xs.windows(2)
        .zip(ys.windows(2))
        .map(|(x, y)| (x[1] - x[0]) * (y[0] + y[1]) / 2.0)
        .sum()
}

/// A random ranking `[N, H, W]` (the baseline order for the curves).
pub fn random_ranking(n: i64, h: i64, w: i64, seed: u64) -> Tensor {
    let mut rng = StdRng::seed_from_u64(seed);
    let v: Vec<f32> = (0..n * h * w).map(|_| rng.gen::<f32>()).collect();
    Tensor::from_slice(&v).view([n, h, w])
}

/// For each image, each pixel's position in descending order of `ranking` (ties broken
/// at random by `rng`, image after image): `[N, H*W]` int64.
fn rank_positions(ranking: &Tensor, rng: &mut StdRng) -> Result<Tensor> {
    let n = ranking.size()[0];
    let flat = ranking
        .detach()
        .to_device(Device::Cpu)
        .to_kind(Kind::Float)
        .reshape([n, -1]);
    let m = flat.size()[1] as usize;
    let vals = Vec::<f32>::try_from(&flat.flatten(0, -1))?;
    ensure!(
        vals.iter().all(|v| v.is_finite()),
        "the ranking holds NaN or infinite values"
    );
    let mut pos = vec![0i64; vals.len()];
    for (i, img) in vals.chunks(m).enumerate() {
        let tie: Vec<f32> = (0..m).map(|_| rng.gen()).collect();
        let mut order: Vec<usize> = (0..m).collect();
        order.sort_by(|&a, &b| img[b].total_cmp(&img[a]).then(tie[a].total_cmp(&tie[b])));
        for (p, &px) in order.iter().enumerate() {
            pos[i * m + px] = p as i64;
        }
    }
    Ok(Tensor::from_slice(&pos).view([n, m as i64]))
}

/// The checked ranking `[N, H, W]` (a one-channel `[N, 1, H, W]` is accepted too).
fn check_ranking(ranking: &Tensor, n: i64, h: i64, w: i64) -> Result<Tensor> {
    let ranking = match ranking.dim() {
        3 => ranking.shallow_clone(),
        4 if ranking.size()[1] == 1 => ranking.squeeze_dim(1),
        _ => anyhow::bail!(
            "ranking must be [N, H, W] (reduce attributions over channels first), got {:?}",
            ranking.size()
        ),
    };
    ensure!(
        ranking.size() == [n, h, w],
        "ranking has shape {:?}, expected [{n}, {h}, {w}]",
        ranking.size()
    );
    Ok(ranking)
}

/// The scores `[steps+1][len]` of one chunk of images along the curve.
fn chunk_scores(
    model: &dyn Classifier,
    x: &Tensor,
    pos: &Tensor,
    targets: &Tensor,
    fractions: &[f64],
    cfg: &PerturbConfig,
    insertion: bool,
) -> Result<Vec<Vec<f64>>> {
    let size = x.size();
    let hw = size[2] * size[3];
    let fill = Tensor::full(size.as_slice(), cfg.fill, (Kind::Float, x.device()));
    let mut out = Vec::with_capacity(fractions.len());
    for f in fractions {
        let k = (f * hw as f64).round() as i64;
        let mask = pos.lt(k).expand(size.as_slice(), false); // the first k pixels
        let xk = if insertion {
            x.where_self(&mask, &fill)
        } else {
            fill.where_self(&mask, x)
        };
        let logits = model.logits(&xk)?;
        let s = cfg.score.of(&logits, &targets.to_device(logits.device()));
        out.push(Vec::<f64>::try_from(
            &s.to_device(Device::Cpu).to_kind(Kind::Double),
        )?);
    }
    Ok(out)
}

/// The curve, computed `cfg.batch` images at a time: memory holds one chunk of images
/// (and its perturbed copy) whatever `N` and `steps` are.
fn perturbation_curve(
    model: &dyn Classifier,
    images: &Tensor,
    targets: &[i64],
    ranking: &Tensor,
    cfg: &PerturbConfig,
    insertion: bool,
) -> Result<Curve> {
    model.check_input(images)?;
    let s = images.size();
    let (n, h, w) = (s[0], s[2], s[3]);
    ensure!(n > 0, "no images");
    ensure!(
        targets.len() as i64 == n,
        "{} targets for {n} images",
        targets.len()
    );
    ensure!(cfg.steps > 0, "steps must be at least 1");
    ensure!(cfg.batch > 0, "batch must be at least 1");
    let ranking = check_ranking(ranking, n, h, w)?;
    let fractions: Vec<f64> = (0..=cfg.steps).map(|k| k as f64 / cfg.steps as f64).collect();
    let _guard = tch::no_grad_guard();
    let mut rng = StdRng::seed_from_u64(cfg.seed);
    let mut per_step = vec![Vec::with_capacity(n as usize); fractions.len()]; // [steps+1] of [N]
    for start in (0..n).step_by(cfg.batch as usize) {
        let len = cfg.batch.min(n - start);
        let pos = rank_positions(&ranking.narrow(0, start, len), &mut rng)?.view([len, 1, h, w]);
        // The chunk and its perturbed copies live on the model's device.
        let pos = to_model_device(model, &pos);
        let x = to_model_device(model, &images.narrow(0, start, len).to_kind(Kind::Float));
        let t = Tensor::from_slice(&targets[start as usize..(start + len) as usize]);
        let scores = chunk_scores(model, &x, &pos, &t, &fractions, cfg, insertion)?;
        for (all, chunk) in per_step.iter_mut().zip(scores) {
            all.extend(chunk);
        }
    }
    let mean_score: Vec<f64> = per_step
        .iter()
        .map(|v| v.iter().sum::<f64>() / n as f64)
        .collect();
    let per_image_auc = (0..n as usize)
        .map(|i| {
            let ys: Vec<f64> = per_step.iter().map(|v| v[i]).collect();
            trapezoid(&fractions, &ys)
        })
        .collect();
    Ok(Curve {
        auc: trapezoid(&fractions, &mean_score),
        fractions,
        mean_score,
        per_image_auc,
        per_image_score: per_step,
    })
}

/// Deletion curve: pixels are set to `cfg.fill` in descending order of `ranking`
/// (`[N, H, W]`, e.g. `reduce(attr, Reduce::MaxAbs)` or the signed map for "evidence for
/// the class"), and the target's score is followed. Lower AUC = more faithful.
pub fn deletion_curve(
    model: &dyn Classifier,
    images: &Tensor,
    targets: &[i64],
    ranking: &Tensor,
    cfg: &PerturbConfig,
) -> Result<Curve> {
    perturbation_curve(model, images, targets, ranking, cfg, false)
}

/// Insertion curve: starting from an image of `cfg.fill`, the original pixels are put back
/// in descending order of `ranking`. Higher AUC = more faithful.
pub fn insertion_curve(
    model: &dyn Classifier,
    images: &Tensor,
    targets: &[i64],
    ranking: &Tensor,
    cfg: &PerturbConfig,
) -> Result<Curve> {
    perturbation_curve(model, images, targets, ranking, cfg, true)
}

// ---------------------------------------------------------------------------------------
// model randomization

/// Spearman rank correlation of two equally long samples (ties get their average rank).
pub fn spearman(a: &[f32], b: &[f32]) -> f64 {
    fn ranks(v: &[f32]) -> Vec<f64> {
        let mut idx: Vec<usize> = (0..v.len()).collect();
        idx.sort_by(|&i, &j| v[i].total_cmp(&v[j]));
        let mut r = vec![0.0; v.len()];
        let mut i = 0;
        while i < idx.len() {
            let mut j = i;
            while j + 1 < idx.len() && v[idx[j + 1]] == v[idx[i]] {
                j += 1;
            }
            let avg = (i + j) as f64 / 2.0;
            for &k in &idx[i..=j] {
                r[k] = avg;
            }
            i = j + 1;
        }
        r
    }
    assert_eq!(a.len(), b.len(), "spearman: samples differ in length");
    let (ra, rb) = (ranks(a), ranks(b));
    let n = ra.len() as f64;
    let (ma, mb) = (ra.iter().sum::<f64>() / n, rb.iter().sum::<f64>() / n);
    let (mut sab, mut saa, mut sbb) = (0.0, 0.0, 0.0);
    for (x, y) in ra.iter().zip(&rb) {
        sab += (x - ma) * (y - mb);
        saa += (x - ma) * (x - ma);
        sbb += (y - mb) * (y - mb);
    }
    if saa == 0.0 || sbb == 0.0 {
        0.0
    } else {
        sab / (saa * sbb).sqrt()
    }
}

/// Mean per-image Spearman correlation of two map batches `[N, ...]`.
pub fn mean_spearman(a: &Tensor, b: &Tensor) -> Result<f64> {
    ensure!(
        a.size() == b.size(),
        "maps differ in shape: {:?} vs {:?}",
        a.size(),
        b.size()
    );
    let n = a.size()[0];
    let to = |t: &Tensor| -> Result<Vec<f32>> {
        Ok(Vec::<f32>::try_from(
            &t.detach()
                .to_device(Device::Cpu)
                .to_kind(Kind::Float)
                .reshape([-1]),
        )?)
    };
    let (va, vb) = (to(a)?, to(b)?);
    let m = va.len() / n.max(1) as usize;
    let total: f64 = va.chunks(m).zip(vb.chunks(m)).map(|(x, y)| spearman(x, y)).sum();
    Ok(total / n as f64)
}

/// A copy of a built-in model (through a temporary safetensors file), so that the
/// original's weights stay untouched.
pub fn copy_model(model: &BuiltinModel) -> Result<BuiltinModel> {
    let tmp = tempfile::Builder::new()
        .suffix(".safetensors")
        .tempfile()
        .context("cannot create a temporary model file")?;
    model.save(tmp.path())?;
    BuiltinModel::load_on(tmp.path(), model.vs.device())
}

/// The layer graph of `model`, or an error that says why there is none.
fn graph_of<'a>(model: &'a dyn Classifier, what: &str) -> Result<&'a LayerGraph> {
    model.graph().with_context(|| {
        format!(
            "{what} needs the model's layer graph, and {} has none (a plain TorchScript file, or an import whose graph is absent: `gradviz layers --model FILE` says why)",
            model.describe()
        )
    })
}

/// A copy of any model with a layer graph (built-in, imported, [`GraphModel`]) that runs by
/// that graph on its own deep copy of the tensors, so that randomizing it leaves the
/// original bitwise untouched.
pub fn copy_as_graph(model: &dyn Classifier) -> Result<GraphModel> {
    let graph = graph_of(model, "copying a model")?;
    let tensors: HashMap<String, Tensor> = model
        .named_tensors()
        .into_iter()
        .map(|(n, t)| (n, t.detach().copy()))
        .collect();
    GraphModel::new(
        graph.clone(),
        tensors,
        model.input_shape(),
        model.class_names().to_vec(),
    )
}

/// Layers that hold weights (a conv, linear or BatchNorm node), input to output.
pub fn parametrized_layers(model: &dyn Classifier) -> Vec<String> {
    let Some(graph) = model.graph() else {
        return vec![];
    };
    graph
        .layers()
        .into_iter()
        .filter(|l| graph.nodes.iter().any(|n| n.layer == *l && !n.params.is_empty()))
        .collect()
}

/// Re-initializes every tensor of `layer` in place, as PyTorch initializes a new layer:
/// conv and linear weights and biases uniform in `±1/√fan_in` (fan_in = the weight's
/// input size × kernel area); BatchNorm to the identity of a fresh layer (γ = 1, β = 0,
/// running mean 0, running variance 1). Works on any model whose
/// [`Classifier::named_tensors`] are its live tensors (built-in models, [`GraphModel`];
/// randomize a [`copy_as_graph`] of an imported model).
pub fn randomize_layer(model: &mut dyn Classifier, layer: &str, seed: u64) -> Result<()> {
    let graph = graph_of(&*model, "randomizing a layer")?;
    let nodes: Vec<_> = graph
        .nodes
        .iter()
        .filter(|n| n.layer == layer && !n.params.is_empty())
        .collect();
    ensure!(
        !nodes.is_empty(),
        "layer '{layer}' has no weights; layers with weights: {:?}",
        parametrized_layers(&*model)
    );
    let tensors: HashMap<String, Tensor> = model.named_tensors().into_iter().collect();
    let mut rng = StdRng::seed_from_u64(seed);
    tch::no_grad(|| -> Result<()> {
        for node in nodes {
            let get = |role: &str| -> Result<Option<Tensor>> {
                match node.params.get(role) {
                    None => Ok(None),
                    Some(name) => tensors
                        .get(name)
                        .map(|t| Some(t.shallow_clone()))
                        .with_context(|| format!("layer '{layer}': the model has no tensor '{name}'")),
                }
            };
            if let GraphOp::BatchNorm { .. } = node.op {
                for (role, value) in [
                    ("weight", 1.0),
                    ("bias", 0.0),
                    ("running_mean", 0.0),
                    ("running_var", 1.0),
                ] {
                    if let Some(mut t) = get(role)? {
                        let _ = t.fill_(value);
                    }
                }
                continue;
            }
            let Some(w) = get("weight")? else { continue };
            let fan_in: i64 = w.size()[1..].iter().product();
            let bound = 1.0 / (fan_in.max(1) as f64).sqrt();
            for role in ["weight", "bias"] {
                if let Some(mut v) = get(role)? {
                    let vals: Vec<f32> = (0..v.numel())
                        .map(|_| ((rng.gen::<f64>() * 2.0 - 1.0) * bound) as f32)
                        .collect();
                    let fresh = Tensor::from_slice(&vals)
                        .view(v.size().as_slice())
                        .to_kind(v.kind())
                        .to_device(v.device());
                    v.copy_(&fresh);
                }
            }
        }
        Ok(())
    })
}

/// One step of the cascading randomization.
#[derive(Debug)]
pub struct RandomizationStep {
    /// `"trained"` for the original model, else the last layer randomized (all layers above
    /// it are random too).
    pub layer: String,
    /// Mean Spearman correlation with the trained model's maps, of `|map|`.
    pub spearman_abs: f64,
    /// Mean Spearman correlation of the signed maps.
    pub spearman_signed: f64,
    /// The reduced maps `[N, H, W]` of this step.
    pub maps: Tensor,
}

/// The cascading model-randomization test of Adebayo et al. (2018): starting from the
/// logits layer, re-initialize one more layer at each step (top to bottom) on a *copy* of
/// `model` ([`copy_as_graph`]; the original stays bitwise untouched), recompute the maps of
/// `method` for the same images and target classes (fixed from the trained model), and
/// compare them with the trained model's maps by Spearman rank correlation. The first step
/// is the trained model itself (correlation 1).
///
/// Works on any model with a layer graph: built-in, imported (`gradviz import`) or
/// [`GraphModel`]. The layers with weights are re-initialized as [`randomize_layer`] says:
/// conv and linear weights and biases drawn as PyTorch initializes them, BatchNorm layers
/// reset to a fresh layer's identity (γ = 1, β = 0, mean 0, variance 1).
pub fn cascading_randomization(
    model: &dyn Classifier,
    method: &dyn Attribution,
    images: &Tensor,
    target: &Target,
    reduction: Reduce,
    seed: u64,
) -> Result<Vec<RandomizationStep>> {
    let classes = target.resolve(model, images)?;
    let fixed = Target::Classes(classes);
    let maps_of =
        |m: &dyn Classifier| -> Result<Tensor> { reduce(&method.attribute(m, images, &fixed)?, reduction) };
    let reference = maps_of(model)?;
    let mut steps = vec![RandomizationStep {
        layer: "trained".into(),
        spearman_abs: 1.0,
        spearman_signed: 1.0,
        maps: reference.shallow_clone(),
    }];
    let mut copy = copy_as_graph(model)?;
    let layers = parametrized_layers(model);
    for (i, layer) in layers.iter().rev().enumerate() {
        randomize_layer(&mut copy, layer, seed.wrapping_add(i as u64 * 7919))?;
        let maps = maps_of(&copy)?;
        steps.push(RandomizationStep {
            layer: layer.clone(),
            spearman_abs: mean_spearman(&reference.abs(), &maps.abs())?,
            spearman_signed: mean_spearman(&reference, &maps)?,
            maps,
        });
    }
    Ok(steps)
}
