//! Layer-wise relevance propagation (LRP, Bach et al. 2015; Montavon et al. 2019), the
//! way Zennit computes it, on a model's [`LayerGraph`].
//!
//! LRP explains the logit `z_c` of the target class: it starts from the output relevance
//! `R = onehot(c) · z` (Zennit's `attr_output = one_hot * output`) and walks the graph
//! backwards, each node handing the relevance of its output to its inputs by a [`Rule`]:
//!
//! | rule | `R_in` of a conv/linear node `z = W ∗ x + b` |
//! |---|---|
//! | [`Rule::Epsilon`] ε | `x ⊙ Wᵀ(R ⊘ s_ε(z))` |
//! | [`Rule::ZPlus`] z⁺ = α1β0 | `(x⁺ ⊙ W⁺ᵀ + x⁻ ⊙ W⁻ᵀ)(R ⊘ s(z⁺))` |
//! | [`Rule::AlphaBeta`] αβ | `α (x⁺ ⊙ W⁺ᵀ + x⁻ ⊙ W⁻ᵀ)(R ⊘ s(z⁺)) − β (x⁺ ⊙ W⁻ᵀ + x⁻ ⊙ W⁺ᵀ)(R ⊘ s(z⁻))` |
//! | [`Rule::Gamma`] γ | ε-like with `W + γW⁺` (where `z > 0`) or `W + γW⁻` (where `z < 0`) |
//! | [`Rule::Flat`] | `1ᵀ(R ⊘ s(1 ∗ 1))`: equal shares over the receptive field |
//! | [`Rule::ZBox`] zᴮ | `(x ⊙ Wᵀ − l ⊙ W⁺ᵀ − h ⊙ W⁻ᵀ)(R ⊘ s(z − W⁺ ∗ l − W⁻ ∗ h))` |
//!
//! with `s_ε(z) = z + ε · sign(z)` (`sign(0) = +1`). Activations pass relevance unchanged,
//! sums (skip connections) and average pooling split it in proportion to their inputs
//! ([`Rule::Norm`]), max pooling gives it to the winner (the gradient), and batch norms are
//! first merged into the conv or linear node before them (canonization, on a copy of the
//! tensors). A [`Composite`] says which rule each node gets; the presets are Zennit's.
//!
//! The map has the input's shape and is signed. With zero biases and ε → 0, LRP-ε, z⁺ (on
//! inputs ≥ 0), flat and zᴮ conserve relevance: `Σ_i R_i = z_c`. Biases, ε and the
//! stabilizer absorb some (see each rule).
//!
//! LRP explains a logit, not a probability: `p_c` and `log p_c` are not sums of per-input
//! contributions, so there is no [`crate::saliency::Score`] to choose (the CLI rejects
//! `--score softmax` with `--method lrp`).

mod canonize;
mod composite;
mod rules;

pub use composite::{describe_rules, Composite, LayerType, COMPOSITE_NAMES, DEFAULT_STABILIZER};
pub use rules::Rule;

use crate::graph::{LayerGraph, Node, Op, INPUT};
use crate::model::Classifier;
use crate::saliency::{chunks, prepare, Attribution, Target};
use anyhow::{bail, ensure, Context, Result};
use rules::Step;
use std::collections::HashMap;
use tch::{Kind, Tensor};

/// LRP with a [`Composite`], as an [`Attribution`] method.
///
/// ```no_run
/// use gradviz::lrp::{Composite, Lrp};
/// use gradviz::saliency::{Attribution, Target};
/// # fn main() -> anyhow::Result<()> {
/// let model = gradviz::load_model("models/mnist_cnn.safetensors")?;
/// let digits = gradviz::data::bundled_mnist()?.test.head(8);
/// let lrp = Lrp::new(Composite::epsilon_plus_flat(1e-6));
/// let relevance = lrp.attribute(model.as_ref(), &digits.images, &Target::Predicted)?; // [8, 1, 28, 28]
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Lrp {
    pub composite: Composite,
    /// Images per forward/relevance pass.
    pub batch: i64,
}

impl Default for Lrp {
    /// Zennit's `EpsilonPlusFlat` with its default ε.
    fn default() -> Lrp {
        Lrp::new(Composite::epsilon_plus_flat(1e-6))
    }
}

impl Lrp {
    pub fn new(composite: Composite) -> Lrp {
        Lrp {
            composite,
            batch: 256,
        }
    }

    /// The rule of every node of `model` (after batch norms are merged), one line each.
    pub fn describe(&self, model: &dyn Classifier) -> Result<String> {
        let plan = Plan::new(model, &self.composite)?;
        Ok(describe_rules(&plan.graph, &plan.rules))
    }
}

impl Attribution for Lrp {
    fn name(&self) -> String {
        format!("LRP ({})", self.composite.name)
    }

    fn attribute(&self, model: &dyn Classifier, inputs: &Tensor, target: &Target) -> Result<Tensor> {
        ensure!(self.batch > 0, "batch must be at least 1, got {}", self.batch);
        let plan = Plan::new(model, &self.composite)?;
        let targets = prepare(model, inputs, target)?;
        let mut out = Vec::new();
        for (s, len) in chunks(inputs.size()[0], self.batch) {
            let x = inputs
                .narrow(0, s, len)
                .to_kind(Kind::Float)
                .to_device(model.device());
            let r = plan.relevance(&x, &targets[s as usize..(s + len) as usize], model.num_classes())?;
            out.push(r.to_device(inputs.device()));
        }
        Ok(Tensor::cat(&out, 0))
    }
}

/// A model's graph prepared for LRP: batch norms merged, a rule and (for zᴮ) bounds per node.
struct Plan {
    graph: LayerGraph,
    tensors: HashMap<String, Tensor>,
    rules: Vec<Rule>,
    /// `(low, high)` of the input of each zᴮ node, by node name.
    bounds: HashMap<String, (Tensor, Tensor)>,
    stabilizer: f64,
}

impl Plan {
    fn new(model: &dyn Classifier, composite: &Composite) -> Result<Plan> {
        let graph = model.graph().with_context(|| {
            format!(
                "LRP needs the model's layer graph, and {} has none (a TorchScript file does not describe its layers; use a built-in gradviz model or one made by `gradviz import`)",
                model.describe()
            )
        })?;
        let tensors: HashMap<String, Tensor> = model.named_tensors().into_iter().collect();
        let (graph, tensors) = canonize::merge_batch_norms(graph, &tensors)?;
        let rules = composite.assign(&graph)?;
        let mut bounds = HashMap::new();
        for (node, rule) in graph.nodes.iter().zip(&rules) {
            if let Rule::ZBox { low, high } = *rule {
                let b = input_bounds(&graph, &tensors, node, low, high, model)?;
                bounds.insert(node.name.clone(), b);
            }
        }
        Ok(Plan {
            graph,
            tensors,
            rules,
            bounds,
            stabilizer: composite.stabilizer,
        })
    }

    /// The relevance `[N, C, H, W]` of the logits `targets` of `x`.
    fn relevance(&self, x: &Tensor, targets: &[i64], classes: i64) -> Result<Tensor> {
        let mut values: HashMap<String, Tensor> = HashMap::new();
        values.insert(INPUT.to_string(), x.shallow_clone());
        let logits = tch::no_grad(|| {
            self.graph.forward(x, &self.tensors, |n, y| {
                values.insert(n.name.clone(), y.shallow_clone());
            })
        })?;
        ensure!(
            logits.size() == [x.size()[0], classes],
            "the layer graph returned logits of shape {:?} for {} images and {classes} classes",
            logits.size(),
            x.size()[0]
        );
        let t = Tensor::from_slice(targets)
            .to_device(logits.device())
            .unsqueeze(1);
        let start = logits.zeros_like().scatter(1, &t, &logits.gather(1, &t, false));
        let mut relevance: HashMap<&str, Tensor> = HashMap::new();
        relevance.insert(self.graph.output.as_str(), start);
        for (node, rule) in self.graph.nodes.iter().zip(&self.rules).rev() {
            let Some(r) = relevance.remove(node.name.as_str()) else {
                continue; // nothing downstream reads this node
            };
            let inputs: Vec<&Tensor> = node.inputs.iter().map(|i| &values[i.as_str()]).collect();
            let lookup = |role: &str| {
                node.params
                    .get(role)
                    .and_then(|n| self.tensors.get(n))
                    .map(|t| t.shallow_clone())
            };
            let step = Step {
                node,
                inputs,
                output: &values[node.name.as_str()],
                relevance: &r,
                params: &lookup,
                stabilizer: self.stabilizer,
                bounds: self.bounds.get(&node.name),
            };
            let down = step.propagate(*rule).with_context(|| {
                format!(
                    "LRP rule {rule} at node '{}' ({}, layer '{}')",
                    node.name,
                    node.op.type_name(),
                    node.layer
                )
            })?;
            for (name, r_in) in node.inputs.iter().zip(down) {
                let acc = match relevance.remove(name.as_str()) {
                    Some(a) => a + r_in,
                    None => r_in,
                };
                relevance.insert(name.as_str(), acc);
            }
        }
        relevance
            .remove(INPUT)
            .context("no relevance reached the input: the graph's output does not depend on it")
    }
}

/// The box `[l, h]` of the values `node` reads when the pixels of the model input lie in
/// `[low, high]`: the constant images `low` and `high` sent through the rescaling and
/// reshaping nodes between the input and `node` (element-wise min and max of the two).
fn input_bounds(
    graph: &LayerGraph,
    tensors: &HashMap<String, Tensor>,
    node: &Node,
    low: f64,
    high: f64,
    model: &dyn Classifier,
) -> Result<(Tensor, Tensor)> {
    let mut chain: Vec<&Node> = Vec::new();
    let mut at = node.inputs[0].as_str();
    while at != INPUT {
        let n = graph.node(at).context("validated graph")?;
        let affine = matches!(
            n.op,
            Op::Identity
                | Op::Scale { .. }
                | Op::Normalize { .. }
                | Op::Pad { .. }
                | Op::Flatten { .. }
                | Op::Reshape { .. }
                | Op::Permute { .. }
        );
        if !affine {
            bail!(
                "rule zᴮ at node '{}' (layer '{}') needs the bounds of its input, but it reads node '{}' ({}), not the model input: zᴮ is for the first layer",
                node.name,
                node.layer,
                n.name,
                n.op.type_name()
            );
        }
        chain.push(n);
        at = n.inputs[0].as_str();
    }
    let [c, h, w] = model.input_shape();
    let opts = (Kind::Float, model.device());
    let run = |v: f64| -> Result<Tensor> {
        let mut x = Tensor::full([1, c, h, w], v, opts);
        for n in chain.iter().rev() {
            let lookup = |role: &str| {
                n.params
                    .get(role)
                    .and_then(|t| tensors.get(t))
                    .map(|t| t.shallow_clone())
            };
            x = tch::no_grad(|| n.op.apply(&[&x], &lookup))?;
        }
        Ok(x)
    };
    let (a, b) = (run(low)?, run(high)?);
    Ok((a.minimum(&b), a.maximum(&b)))
}
