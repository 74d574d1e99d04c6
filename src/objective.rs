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
use anyhow::{bail, ensure, Context, Result};
use std::collections::HashMap;
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
    /// The mean over the map of a channel *before* the layer's activation function (the
    /// input of its last node, e.g. the built-in node `conv3/conv` before the ReLU). Unlike
    /// [`Term::Channel`] it has a gradient where the unit is off, so a unit that is silent
    /// at the start can still be driven on. `neuron`: the centre unit of the map instead of
    /// the mean. Needs a model with a layer graph.
    PreActivation {
        layer: String,
        channel: Targets,
        neuron: bool,
    },
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

    fn pre_activation_layer(&self) -> Option<&str> {
        match self {
            Term::PreActivation { layer, .. } => Some(layer),
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
            Term::PreActivation {
                layer,
                channel,
                neuron: false,
            } => write!(f, "pre_activation({layer}:{channel})"),
            Term::PreActivation { layer, channel, .. } => {
                write!(f, "pre_activation({layer}:{channel}@centre)")
            }
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
    /// The mean over the map of channel `channel` of `layer` before its activation function:
    /// `mean_{y,x} z_c[y, x]` where `A_c = relu(z_c)` (see [`Term::PreActivation`]).
    pub fn channel_pre_activation(layer: &str, channel: i64) -> Objective {
        Self::term(Term::PreActivation {
            layer: layer.into(),
            channel: Targets::All(channel),
            neuron: false,
        })
    }
    /// Row `i` maximizes the pre-activation of channel `channels[i]` of `layer`.
    pub fn channels_pre_activation(layer: &str, channels: &[i64]) -> Objective {
        Self::term(Term::PreActivation {
            layer: layer.into(),
            channel: Targets::PerSample(channels.to_vec()),
            neuron: false,
        })
    }
    /// Row `i` maximizes the centre unit of channel `channels[i]` of `layer` before its
    /// activation function: `z_c[H/2, W/2]` where `A_c = relu(z_c)` (the pre-activation
    /// counterpart of [`Objective::neurons`]).
    pub fn neurons_pre_activation(layer: &str, channels: &[i64]) -> Objective {
        Self::term(Term::PreActivation {
            layer: layer.into(),
            channel: Targets::PerSample(channels.to_vec()),
            neuron: true,
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

    /// The layers whose pre-activation this objective reads, without repeats.
    pub fn pre_activation_layers(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for (_, t) in &self.terms {
            if let Some(l) = t.pre_activation_layer() {
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
        let pre = self.pre_activation_layers();
        let (layers, shapes) = {
            let mut layers = self.layers();
            layers.extend(
                pre.iter()
                    .filter(|l| !layers.contains(l))
                    .cloned()
                    .collect::<Vec<_>>(),
            );
            let shapes: Vec<Vec<i64>> = if layers.is_empty() {
                vec![]
            } else {
                let [c, h, w] = model.input_shape();
                let probe = Tensor::zeros([1, c, h, w], (Kind::Float, model.device()));
                let names: Vec<&str> = layers.iter().map(|s| s.as_str()).collect();
                let (_, acts) = tch::no_grad(|| model.forward_with(&probe, &names))?;
                acts.iter().map(|a| a.size()).collect()
            };
            (layers, shapes)
        };
        for l in &pre {
            pre_activation_node(model, l)?;
        }
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
                Term::Channel { layer, channel }
                | Term::Neuron { layer, channel, .. }
                | Term::PreActivation { layer, channel, .. } => {
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
        let pre_layers = self.pre_activation_layers();
        let (logits, acts, pre_acts) = if pre_layers.is_empty() {
            let (logits, acts) = model.forward_with(x, &names)?;
            (logits, acts, vec![])
        } else {
            forward_with_pre_activations(model, x, &names, &pre_layers)?
        };
        let act = |l: &str| -> &Tensor { &acts[layers.iter().position(|x| x == l).unwrap()] };
        let pre_act = |l: &str| -> &Tensor { &pre_acts[pre_layers.iter().position(|x| x == l).unwrap()] };
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
                Term::PreActivation {
                    layer,
                    channel,
                    neuron: true,
                } => {
                    let a = pre_act(layer);
                    let s = a.size();
                    let per_channel = if a.dim() == 4 {
                        a.select(3, s[3] / 2).select(2, s[2] / 2)
                    } else {
                        a.shallow_clone()
                    };
                    per_channel.gather(1, &index(channel)?, false).squeeze_dim(1)
                }
                Term::Channel { layer, channel } | Term::PreActivation { layer, channel, .. } => {
                    let a = match t {
                        Term::PreActivation { .. } => pre_act(layer),
                        _ => act(layer),
                    };
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

/// The graph node whose output `layer`'s final activation function reads.
fn pre_activation_node(model: &dyn Classifier, layer: &str) -> Result<String> {
    let graph = model.graph().with_context(|| {
        format!(
            "{} has no layer graph, so the pre-activation of '{layer}' is unknown: use channel()",
            model.describe()
        )
    })?;
    let out = graph.layer_output(layer)?;
    ensure!(
        out.op.is_activation() && out.inputs.len() == 1,
        "layer '{layer}' ends in {} ('{}'), not an activation function, so it has no pre-activation: use channel()",
        out.op.type_name(),
        out.name
    );
    Ok(out.inputs[0].clone())
}

/// Logits, the outputs of `layers` and the pre-activations of `pre_layers`, from one run
/// of the model's layer graph (differentiable with respect to `x`).
fn forward_with_pre_activations(
    model: &dyn Classifier,
    x: &Tensor,
    layers: &[&str],
    pre_layers: &[String],
) -> Result<(Tensor, Vec<Tensor>, Vec<Tensor>)> {
    model.check_input(x)?;
    let graph = model
        .graph()
        .with_context(|| format!("{} has no layer graph", model.describe()))?;
    let post: Vec<String> = layers
        .iter()
        .map(|l| graph.layer_output(l).map(|n| n.name.clone()))
        .collect::<Result<_>>()?;
    let pre: Vec<String> = pre_layers
        .iter()
        .map(|l| pre_activation_node(model, l))
        .collect::<Result<_>>()?;
    let tensors: HashMap<String, Tensor> = model.named_tensors().into_iter().collect();
    let mut post_vals: Vec<Option<Tensor>> = post.iter().map(|_| None).collect();
    let mut pre_vals: Vec<Option<Tensor>> = pre.iter().map(|_| None).collect();
    let x = x.to_kind(Kind::Float).to_device(model.device());
    let logits = graph.forward(&x, &tensors, |node, y| {
        for (slot, want) in post_vals
            .iter_mut()
            .zip(&post)
            .chain(pre_vals.iter_mut().zip(&pre))
        {
            if *want == node.name {
                *slot = Some(y.shallow_clone());
            }
        }
    })?;
    let unwrap = |v: Vec<Option<Tensor>>, names: &[String]| -> Result<Vec<Tensor>> {
        v.into_iter()
            .zip(names)
            .map(|(t, n)| t.with_context(|| format!("layer graph: node '{n}' was not computed")))
            .collect()
    };
    Ok((logits, unwrap(post_vals, &post)?, unwrap(pre_vals, &pre)?))
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
