//! How robust is an explanation? Two checks in the manner of Quantus, for any
//! [`Attribution`], batched like the methods themselves.
//!
//! - [`MaxSensitivity`] (Yeh et al. 2019): the largest change of the map under small input
//!   perturbations, relative to the map's norm. A map that changes a lot when the input
//!   hardly changes explains noise, not the model's decision.
//! - [`RandomLogit`] (Sixt et al. 2020): how similar the map for a random other class is to
//!   the map for the target class. A method whose maps hardly depend on the class explains
//!   the image, not the decision.
//!
//! ```no_run
//! # fn main() -> anyhow::Result<()> {
//! use gradviz::robustness::{MaxSensitivity, RandomLogit};
//! use gradviz::saliency::{Gradient, Score, Target};
//! let model = gradviz::load_model("models/mnist_cnn.safetensors")?;
//! let batch = gradviz::data::bundled_mnist()?.test.head(32);
//! let method = Gradient::new(Score::Logit);
//! let sens = MaxSensitivity::default().evaluate(model.as_ref(), &method, &batch.images, &Target::Predicted)?;
//! let rl = RandomLogit::default().evaluate(model.as_ref(), &method, &batch.images, &Target::Predicted)?;
//! println!("max-sensitivity {:.3}, random-logit cosine {:.3}", sens.mean(), rl.mean_cosine());
//! # Ok(()) }
//! ```

use crate::device::to_model_device;
use crate::metrics::spearman;
use crate::model::check_finite;
use crate::model::Classifier;
use crate::saliency::{Attribution, Target};
use anyhow::{ensure, Result};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tch::{Device, Kind, Tensor};

/// The mean of a list, NaN for an empty one.
fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len() as f64
}

/// Maps `[N, ...]` as rows of f64 on the CPU.
fn rows(maps: &Tensor) -> Result<Vec<Vec<f64>>> {
    let n = maps.size()[0];
    let flat = maps
        .detach()
        .to_device(Device::Cpu)
        .to_kind(Kind::Double)
        .reshape([n, -1]);
    let m = flat.size()[1] as usize;
    let v = Vec::<f64>::try_from(&flat.flatten(0, -1))?;
    Ok(v.chunks(m.max(1)).map(|c| c.to_vec()).collect())
}

fn norm(v: &[f64]) -> f64 {
    v.iter().map(|x| x * x).sum::<f64>().sqrt()
}

// ---------------------------------------------------------------------------------------
// Max-sensitivity

/// Max-sensitivity (Yeh et al. 2019, "On the (in)fidelity and sensitivity of explanations"):
///
/// `SENS(x) = max_{‖δ‖∞ ≤ r} ‖Φ(x + δ) − Φ(x)‖₂ / ‖Φ(x)‖₂`
///
/// with `Φ` the attribution map for the fixed target class. The maximum is estimated from
/// `samples` perturbations drawn uniformly from the L∞ ball of radius `r` (seeded), as in
/// Captum's `sensitivity_max` and Quantus' `MaxSensitivity`. Perturbed inputs are not
/// clamped to `[0, 1]` (clamping would shrink the ball at black pixels). 0 = the map does not
/// move at all; 1 = it moves by as much as its own size.
#[derive(Debug, Clone)]
pub struct MaxSensitivity {
    /// The radius `r` of the L∞ ball, in pixel units (images are in `[0, 1]`).
    pub radius: f64,
    /// Perturbations per image.
    pub samples: i64,
    pub seed: u64,
    /// Perturbed images per call of the attribution method.
    pub batch: i64,
}

impl Default for MaxSensitivity {
    /// `r = 0.02` (Captum's default), 10 samples.
    fn default() -> Self {
        MaxSensitivity {
            radius: 0.02,
            samples: 10,
            seed: 0,
            batch: 256,
        }
    }
}

/// Max-sensitivity per image.
#[derive(Debug, Clone)]
pub struct Sensitivity {
    /// `SENS(x)` of each image; `+∞` when `Φ(x) = 0` but a perturbed map is not.
    pub per_image: Vec<f64>,
}

impl Sensitivity {
    pub fn mean(&self) -> f64 {
        mean(&self.per_image)
    }
    /// The median over images (robust to a few near-zero maps).
    pub fn median(&self) -> f64 {
        let mut v = self.per_image.clone();
        v.sort_by(f64::total_cmp);
        match v.len() {
            0 => f64::NAN,
            n if n % 2 == 1 => v[n / 2],
            n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
        }
    }
}

impl MaxSensitivity {
    pub fn new(radius: f64, samples: i64) -> MaxSensitivity {
        MaxSensitivity {
            radius,
            samples,
            ..Default::default()
        }
    }

    /// Max-sensitivity of `method`'s maps of `inputs` `[N, C, H, W]` for `target`.
    pub fn evaluate(
        &self,
        model: &dyn Classifier,
        method: &dyn Attribution,
        inputs: &Tensor,
        target: &Target,
    ) -> Result<Sensitivity> {
        ensure!(
            self.radius.is_finite() && self.radius >= 0.0,
            "the radius must be a finite number ≥ 0, got {}",
            self.radius
        );
        ensure!(
            self.samples > 0,
            "samples must be at least 1, got {}",
            self.samples
        );
        ensure!(self.batch > 0, "batch must be at least 1, got {}", self.batch);
        model.check_input(inputs)?;
        check_finite(inputs, "the input batch")?;
        let classes = target.resolve(model, inputs)?;
        let x = to_model_device(model, &inputs.to_kind(Kind::Float));
        let base = rows(&method.attribute(model, &x, &Target::Classes(classes.clone()))?)?;
        let n = x.size()[0];
        let per_image: i64 = x.size()[1..].iter().product();
        let mut worst = vec![0.0f64; n as usize];
        let mut rng = StdRng::seed_from_u64(self.seed);
        let total = n * self.samples;
        for start in (0..total).step_by(self.batch as usize) {
            let len = self.batch.min(total - start);
            // Row r of the chunk is sample (start + r) % samples of image (start + r) / samples.
            let img: Vec<i64> = (start..start + len).map(|r| r / self.samples).collect();
            let noise: Vec<f32> = (0..len * per_image)
                .map(|_| rng.gen_range(-self.radius..=self.radius) as f32)
                .collect();
            let mut shape = x.size();
            shape[0] = len;
            // Drawn on the CPU (the same numbers on every device), added on the model's.
            let img_t = Tensor::from_slice(&img).to_device(x.device());
            let noise_t = Tensor::from_slice(&noise).to_device(x.device());
            let perturbed = x.index_select(0, &img_t) + noise_t.view(shape.as_slice());
            let t: Vec<i64> = img.iter().map(|&i| classes[i as usize]).collect();
            let maps = rows(&method.attribute(model, &perturbed, &Target::Classes(t))?)?;
            for (&i, m) in img.iter().zip(&maps) {
                let b = &base[i as usize];
                let diff = norm(&m.iter().zip(b).map(|(p, q)| p - q).collect::<Vec<_>>());
                let s = relative(diff, norm(b));
                let w = &mut worst[i as usize];
                *w = w.max(s);
            }
        }
        Ok(Sensitivity { per_image: worst })
    }
}

/// `diff / size`, with `0/0 = 0` and `d/0 = ∞`.
fn relative(diff: f64, size: f64) -> f64 {
    if size > 0.0 {
        diff / size
    } else if diff == 0.0 {
        0.0
    } else {
        f64::INFINITY
    }
}

// ---------------------------------------------------------------------------------------
// Random-logit

/// The random-logit test (Sixt et al. 2020, "When explanations lie"): for each image, the map
/// for a class drawn uniformly from the other classes (seeded) is compared with the map for
/// the target class, by the cosine similarity `⟨Φ_c, Φ_c'⟩ / (‖Φ_c‖ ‖Φ_c'‖)` and the Spearman
/// rank correlation of the signed maps. Near 1 = the map hardly depends on the class.
#[derive(Debug, Clone, Default)]
pub struct RandomLogit {
    pub seed: u64,
}

/// The random-logit similarities per image.
#[derive(Debug, Clone)]
pub struct RandomLogitResult {
    pub classes: Vec<i64>,
    /// The random other class of each image.
    pub other_classes: Vec<i64>,
    pub cosine: Vec<f64>,
    pub spearman: Vec<f64>,
}

impl RandomLogitResult {
    pub fn mean_cosine(&self) -> f64 {
        mean(&self.cosine)
    }
    pub fn mean_spearman(&self) -> f64 {
        mean(&self.spearman)
    }
}

impl RandomLogit {
    pub fn new(seed: u64) -> RandomLogit {
        RandomLogit { seed }
    }

    /// The other class drawn for each of `classes`, uniformly from the `k − 1` others.
    pub fn other_classes(&self, classes: &[i64], k: i64) -> Result<Vec<i64>> {
        ensure!(
            k >= 2,
            "the random-logit test needs at least 2 classes, the model has {k}"
        );
        let mut rng = StdRng::seed_from_u64(self.seed);
        Ok(classes
            .iter()
            .map(|&c| {
                let o = rng.gen_range(0..k - 1);
                if o >= c {
                    o + 1
                } else {
                    o
                }
            })
            .collect())
    }

    /// The random-logit similarities of `method`'s maps of `inputs` `[N, C, H, W]`.
    pub fn evaluate(
        &self,
        model: &dyn Classifier,
        method: &dyn Attribution,
        inputs: &Tensor,
        target: &Target,
    ) -> Result<RandomLogitResult> {
        model.check_input(inputs)?;
        let classes = target.resolve(model, inputs)?;
        let other = self.other_classes(&classes, model.num_classes())?;
        let own = rows(&method.attribute(model, inputs, &Target::Classes(classes.clone()))?)?;
        let rand = rows(&method.attribute(model, inputs, &Target::Classes(other.clone()))?)?;
        let (mut cosine, mut rank) = (Vec::new(), Vec::new());
        for (a, b) in own.iter().zip(&rand) {
            let dot: f64 = a.iter().zip(b).map(|(p, q)| p * q).sum();
            let d = norm(a) * norm(b);
            cosine.push(if d > 0.0 { dot / d } else { 0.0 });
            let (fa, fb): (Vec<f32>, Vec<f32>) = a.iter().zip(b).map(|(p, q)| (*p as f32, *q as f32)).unzip();
            rank.push(spearman(&fa, &fb));
        }
        Ok(RandomLogitResult {
            classes,
            other_classes: other,
            cosine,
            spearman: rank,
        })
    }
}
