//! What gradient ascent maximizes: small composable objectives in the manner of Lucent.
//!
//! An [`Objective`] is a weighted sum of terms. Terms are built by the constructors below
//! and combined with `+`, `-`, unary `-` and multiplication by a scalar:
//!
//! ```no_run
//! use gradviz::objective::Objective;
//! // Every row of a batch of 10 toward its own class logit, plus a little diversity.
//! let obj = Objective::logits(&(0..10).collect::<Vec<_>>()) - 0.1 * Objective::channel("conv2", 3);
//! ```
//!
//! Every term is evaluated **per sample**: [`Objective::evaluate`] returns one value per
//! batch row, and the ascent maximizes their sum. Rows do not interact (except through
//! [`Objective::diversity`], which is defined across the batch), so optimizing ten classes
//! as one batch gives the same inputs as ten separate runs.
//!
//! Class targets are either one class for every row ([`Objective::logit`]) or one class per
//! row ([`Objective::logits`]); the same holds for channels.

use crate::model::Classifier;
use anyhow::{bail, ensure, Result};
use std::fmt;
use tch::{Kind, Tensor};

/// One class/channel for all rows, or one per row.
#[derive(Debug, Clone, PartialEq)]
pub enum Targets {
    All(i64),
    PerSample(Vec<i64>),
}

impl Targets {
    /// The target of each of `n` rows.
    pub fn expand(&self, n: i64) -> Result<Vec<i64>> {
        match self {
            Targets::All(k) => Ok(vec![*k; n as usize]),
            Targets::PerSample(v) => {
                ensure!(
                    v.len() as i64 == n,
                    "the objective names {} per-sample targets but the batch has {n} rows",
                    v.len()
                );
                Ok(v.clone())
            }
        }
    }

    fn values(&self) -> Vec<i64> {
        match self {
            Targets::All(k) => vec![*k],
            Targets::PerSample(v) => v.clone(),
        }
    }
}

impl fmt::Display for Targets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Targets::All(k) => write!(f, "{k}"),
            Targets::PerSample(v) => {
                let s: Vec<String> = v.iter().map(|k| k.to_string()).collect();
                write!(f, "per-row [{}]", s.join(","))
            }
        }
    }
}

/// One objective term.
#[derive(Debug, Clone, PartialEq)]
pub enum Term {
    /// The pre-softmax score of a class.
    Logit(Targets),
    /// The softmax probability of a class.
    Prob(Targets),
    /// The log softmax probability of a class (logit minus log-sum-exp of all logits).
    LogProb(Targets),
    /// The mean activation of a channel (conv layer) or the value of a unit (dense layer).
    Channel { layer: String, channel: Targets },
    /// One spatial position of a channel; `None` means the centre.
    Neuron {
        layer: String,
        channel: Targets,
        at: Option<(i64, i64)>,
    },
    /// Lucent's diversity: minus the cosine similarity of each row's Gram matrix of `layer`
    /// to the other rows' (needs a batch of at least 2).
    Diversity { layer: String },
}

impl Term {
    fn layer(&self) -> Option<&str> {
        match self {
            Term::Channel { layer, .. } | Term::Neuron { layer, .. } | Term::Diversity { layer } => {
                Some(layer)
            }
            _ => None,
        }
    }
}

impl fmt::Display for Term {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Term::Logit(t) => write!(f, "logit({t})"),
            Term::Prob(t) => write!(f, "softmax({t})"),
            Term::LogProb(t) => write!(f, "log_softmax({t})"),
            Term::Channel { layer, channel } => write!(f, "channel({layer}:{channel})"),
            Term::Neuron { layer, channel, at } => match at {
                Some((y, x)) => write!(f, "neuron({layer}:{channel}@{y},{x})"),
                None => write!(f, "neuron({layer}:{channel}@centre)"),
            },
            Term::Diversity { layer } => write!(f, "diversity({layer})"),
        }
    }
}

/// A weighted sum of [`Term`]s, maximized by [`crate::ascend::ascend`].
#[derive(Debug, Clone, PartialEq)]
pub struct Objective {
    pub terms: Vec<(f64, Term)>,
}

/// The value of an objective on a batch, with the forward pass it came from.
pub struct Evaluation {
    /// `[N]`: the objective of each row.
    pub per_sample: Tensor,
    /// `[N, K]`: the model's logits on the batch.
    pub logits: Tensor,
}

impl Objective {
    pub fn term(t: Term) -> Objective {
        Objective {
            terms: vec![(1.0, t)],
        }
    }

    /// The logit of `class`, for every row.
    pub fn logit(class: i64) -> Objective {
        Self::term(Term::Logit(Targets::All(class)))
    }
    /// Row `i` maximizes the logit of `classes[i]`.
    pub fn logits(classes: &[i64]) -> Objective {
        Self::term(Term::Logit(Targets::PerSample(classes.to_vec())))
    }
    /// The softmax probability of `class`, for every row.
    pub fn prob(class: i64) -> Objective {
        Self::term(Term::Prob(Targets::All(class)))
    }
    /// Row `i` maximizes the softmax probability of `classes[i]`.
    pub fn probs(classes: &[i64]) -> Objective {
        Self::term(Term::Prob(Targets::PerSample(classes.to_vec())))
    }
    /// The log-probability of `class`, for every row.
    pub fn log_prob(class: i64) -> Objective {
        Self::term(Term::LogProb(Targets::All(class)))
    }
    /// Row `i` maximizes the log-probability of `classes[i]`.
    pub fn log_probs(classes: &[i64]) -> Objective {
        Self::term(Term::LogProb(Targets::PerSample(classes.to_vec())))
    }
    /// The mean activation of channel `channel` of `layer` (a unit for dense layers).
    pub fn channel(layer: &str, channel: i64) -> Objective {
        Self::term(Term::Channel {
            layer: layer.into(),
            channel: Targets::All(channel),
        })
    }
    /// Row `i` maximizes channel `channels[i]` of `layer`.
    pub fn channels(layer: &str, channels: &[i64]) -> Objective {
        Self::term(Term::Channel {
            layer: layer.into(),
            channel: Targets::PerSample(channels.to_vec()),
        })
    }
    /// The activation of channel `channel` at the centre of `layer`'s feature map.
    pub fn neuron(layer: &str, channel: i64) -> Objective {
        Self::term(Term::Neuron {
            layer: layer.into(),
            channel: Targets::All(channel),
            at: None,
        })
    }
    /// Row `i` maximizes the centre neuron of channel `channels[i]`.
    pub fn neurons(layer: &str, channels: &[i64]) -> Objective {
        Self::term(Term::Neuron {
            layer: layer.into(),
            channel: Targets::PerSample(channels.to_vec()),
            at: None,
        })
    }
    /// The activation of channel `channel` at row `y`, column `x` of `layer`'s map.
    pub fn neuron_at(layer: &str, channel: i64, y: i64, x: i64) -> Objective {
        Self::term(Term::Neuron {
            layer: layer.into(),
            channel: Targets::All(channel),
            at: Some((y, x)),
        })
    }
    /// Rewards rows whose `layer` Gram matrices differ (Lucent's `diversity`).
    pub fn diversity(layer: &str) -> Objective {
        Self::term(Term::Diversity { layer: layer.into() })
    }

    /// The layers this objective reads, without repeats, in first-use order.
    pub fn layers(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for (_, t) in &self.terms {
            if let Some(l) = t.layer() {
                if !out.iter().any(|o| o == l) {
                    out.push(l.to_string());
                }
            }
        }
        out
    }

    /// The class each row aims for, from the first class term (`None` for hidden-only
    /// objectives).
    pub fn class_targets(&self, n: i64) -> Option<Vec<i64>> {
        self.terms.iter().find_map(|(_, t)| match t {
            Term::Logit(c) | Term::Prob(c) | Term::LogProb(c) => c.expand(n).ok(),
            _ => None,
        })
    }

    /// Checks classes, layers, channels and positions against `model` for a batch of `n`,
    /// with errors that list what is valid.
    pub fn validate(&self, model: &dyn Classifier, n: i64) -> Result<()> {
        ensure!(!self.terms.is_empty(), "the objective is empty");
        let k = model.num_classes();
        let layers = self.layers();
        let shapes: Vec<Vec<i64>> = if layers.is_empty() {
            vec![]
        } else {
            let [c, h, w] = model.input_shape();
            let probe = Tensor::zeros([1, c, h, w], (Kind::Float, model.device()));
            let names: Vec<&str> = layers.iter().map(|s| s.as_str()).collect();
            let (_, acts) = tch::no_grad(|| model.forward_with(&probe, &names))?;
            acts.iter().map(|a| a.size()).collect()
        };
        let shape_of = |l: &str| -> &Vec<i64> { &shapes[layers.iter().position(|x| x == l).unwrap()] };
        for (w, t) in &self.terms {
            ensure!(w.is_finite(), "objective term {t} has a non-finite weight {w}");
            match t {
                Term::Logit(c) | Term::Prob(c) | Term::LogProb(c) => {
                    c.expand(n)?;
                    for cls in c.values() {
                        ensure!(
                            (0..k).contains(&cls),
                            "class {cls} is out of range: {} has classes 0..={} ({})",
                            model.describe(),
                            k - 1,
                            model.class_names().join(", ")
                        );
                    }
                }
                Term::Channel { layer, channel } | Term::Neuron { layer, channel, .. } => {
                    channel.expand(n)?;
                    let s = shape_of(layer);
                    let nc = s[1];
                    for ch in channel.values() {
                        ensure!(
                            (0..nc).contains(&ch),
                            "channel {ch} does not exist in layer '{layer}': valid channels are 0..={} ({nc} channels)",
                            nc - 1
                        );
                    }
                    if let Term::Neuron { at: Some((y, x)), .. } = t {
                        ensure!(
                            s.len() == 4,
                            "layer '{layer}' is a dense layer of shape {s:?}: neurons there have no position, use channel()"
                        );
                        ensure!(
                            (0..s[2]).contains(y) && (0..s[3]).contains(x),
                            "position ({y}, {x}) is outside layer '{layer}', whose maps are {}x{}",
                            s[2],
                            s[3]
                        );
                    }
                }
                Term::Diversity { layer } => {
                    let _ = shape_of(layer);
                    ensure!(
                        n >= 2,
                        "the diversity objective needs a batch of at least 2 rows, got {n}"
                    );
                }
            }
        }
        Ok(())
    }

    /// The objective of each row of `x`, differentiable with respect to `x`.
    pub fn evaluate(&self, model: &dyn Classifier, x: &Tensor) -> Result<Evaluation> {
        let n = x.size()[0];
        let layers = self.layers();
        let names: Vec<&str> = layers.iter().map(|s| s.as_str()).collect();
        let (logits, acts) = model.forward_with(x, &names)?;
        let act = |l: &str| -> &Tensor { &acts[layers.iter().position(|x| x == l).unwrap()] };
        let dev = logits.device();
        let index = |t: &Targets| -> Result<Tensor> {
            Ok(Tensor::from_slice(&t.expand(n)?).to_device(dev).unsqueeze(1))
        };
        let mut parts: Vec<Tensor> = Vec::with_capacity(self.terms.len());
        for (w, t) in &self.terms {
            let v = match t {
                Term::Logit(c) => logits.gather(1, &index(c)?, false).squeeze_dim(1),
                Term::Prob(c) => logits
                    .softmax(1, Kind::Float)
                    .gather(1, &index(c)?, false)
                    .squeeze_dim(1),
                Term::LogProb(c) => logits
                    .log_softmax(1, Kind::Float)
                    .gather(1, &index(c)?, false)
                    .squeeze_dim(1),
                Term::Channel { layer, channel } => {
                    let a = act(layer);
                    let per_channel = if a.dim() == 4 {
                        a.mean_dim([2i64, 3].as_slice(), false, Kind::Float)
                    } else {
                        a.shallow_clone()
                    };
                    per_channel.gather(1, &index(channel)?, false).squeeze_dim(1)
                }
                Term::Neuron { layer, channel, at } => {
                    let a = act(layer);
                    let per_channel = if a.dim() == 4 {
                        let s = a.size();
                        let (y, x) = at.unwrap_or((s[2] / 2, s[3] / 2));
                        a.select(3, x).select(2, y)
                    } else {
                        a.shallow_clone()
                    };
                    per_channel.gather(1, &index(channel)?, false).squeeze_dim(1)
                }
                Term::Diversity { layer } => {
                    if n < 2 {
                        bail!("the diversity objective needs a batch of at least 2 rows, got {n}");
                    }
                    let a = act(layer);
                    let c = a.size()[1];
                    let flat = a.reshape([n, c, -1]);
                    let gram = flat.matmul(&flat.transpose(1, 2)).reshape([n, -1]);
                    let norm = gram
                        .norm_scalaropt_dim(2, [1i64].as_slice(), true)
                        .clamp_min(1e-12);
                    let g = gram / norm;
                    let sim = g.matmul(&g.transpose(0, 1));
                    let off =
                        sim.sum_dim_intlist([1i64].as_slice(), false, Kind::Float) - sim.diagonal(0, 0, 1);
                    -off / n as f64
                }
            };
            parts.push(v * *w);
        }
        let total = parts
            .into_iter()
            .reduce(|a, b| a + b)
            .unwrap_or_else(|| Tensor::zeros([n], (Kind::Float, dev)));
        Ok(Evaluation {
            per_sample: total,
            logits,
        })
    }
}

impl fmt::Display for Objective {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (w, t)) in self.terms.iter().enumerate() {
            let (sign, w) = if *w < 0.0 { ("-", -w) } else { ("+", *w) };
            match (i, sign) {
                (0, "-") => write!(f, "-")?,
                (0, _) => {}
                _ => write!(f, " {sign} ")?,
            }
            if w != 1.0 {
                write!(f, "{w}·")?;
            }
            write!(f, "{t}")?;
        }
        Ok(())
    }
}

impl std::ops::Add for Objective {
    type Output = Objective;
    fn add(mut self, rhs: Objective) -> Objective {
        self.terms.extend(rhs.terms);
        self
    }
}

impl std::ops::Neg for Objective {
    type Output = Objective;
    fn neg(self) -> Objective {
        self * -1.0
    }
}

impl std::ops::Sub for Objective {
    type Output = Objective;
    fn sub(self, rhs: Objective) -> Objective {
        self + (-rhs)
    }
}

impl std::ops::Mul<f64> for Objective {
    type Output = Objective;
    fn mul(mut self, s: f64) -> Objective {
        for (w, _) in &mut self.terms {
            *w *= s;
        }
        self
    }
}

impl std::ops::Mul<Objective> for f64 {
    type Output = Objective;
    fn mul(self, o: Objective) -> Objective {
        o * self
    }
}
