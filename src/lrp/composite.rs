//! Composites: which [`Rule`] each node of a model gets, by layer name, by "first layer"
//! and by layer type, as Zennit's `NameMapComposite`, `SpecialFirstLayerMapComposite` and
//! `LayerMapComposite` do.

use super::rules::{check_applicable, Rule};
use crate::graph::{LayerGraph, Node, Op};
use anyhow::{bail, Context, Result};
use std::collections::HashSet;

/// The kinds of node a composite assigns rules to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LayerType {
    /// `conv2d`.
    Conv,
    /// `linear` (a fully connected layer).
    Dense,
    /// Either of them (Zennit's `Linear` type).
    ConvOrDense,
    /// Element-wise activations: ReLU, leaky ReLU, ELU, SELU, GELU, SiLU, sigmoid, tanh,
    /// softplus, softsign, ReLU6, hard sigmoid (Zennit's `Activation` type).
    Activation,
    /// `add`: the sum of a skip connection (Zennit's `Sum` layer).
    Sum,
    /// Average pooling, adaptive and global included.
    AvgPool,
    /// Max pooling, adaptive and global included.
    MaxPool,
    /// A batch norm that could not be merged into a preceding conv or linear node.
    BatchNorm,
    /// Flatten, reshape, permute, zero padding, concatenation, identity (dropout).
    Reshape,
    /// `scale` and `normalize`: rescaling of the input (Keras `Rescaling`, a `Normalize`).
    Rescale,
}

impl LayerType {
    /// The type of an op; `None` for ops LRP does not handle (`exp`, `mish`, `softmax`,
    /// `log_softmax`). Never [`LayerType::ConvOrDense`].
    pub fn of(op: &Op) -> Option<LayerType> {
        use Op::*;
        Some(match op {
            Conv2d { .. } => LayerType::Conv,
            Linear => LayerType::Dense,
            BatchNorm { .. } => LayerType::BatchNorm,
            AvgPool2d { .. } | AdaptiveAvgPool2d { .. } | GlobalAvgPool => LayerType::AvgPool,
            MaxPool2d { .. } | AdaptiveMaxPool2d { .. } | GlobalMaxPool => LayerType::MaxPool,
            Add => LayerType::Sum,
            Flatten { .. } | Reshape { .. } | Permute { .. } | Pad { .. } | Concat { .. } | Identity => {
                LayerType::Reshape
            }
            Scale { .. } | Normalize { .. } => LayerType::Rescale,
            Exp | Mish | Softmax { .. } | LogSoftmax { .. } => return None,
            op if op.is_activation() => LayerType::Activation,
            _ => return None,
        })
    }

    /// Whether a node with `op` is of this type.
    pub fn matches(self, op: &Op) -> bool {
        match (self, LayerType::of(op)) {
            (LayerType::ConvOrDense, Some(t)) => matches!(t, LayerType::Conv | LayerType::Dense),
            (want, Some(t)) => want == t,
            (_, None) => false,
        }
    }
}

/// A rule for every node: by name first, then the special first layer, then by type (the
/// rule given last for a type wins). LRP applies it to the model's graph after merging batch
/// norms into the layers before them.
///
/// ```
/// use gradviz::lrp::{Composite, LayerType, Rule};
/// // Zennit's EpsilonGammaBox, written out; then γ = 0.5 for one layer.
/// let c = Composite::new("my composite")
///     .for_type(LayerType::Dense, Rule::Epsilon(0.25))
///     .for_type(LayerType::Conv, Rule::Gamma(0.25))
///     .for_first(LayerType::Conv, Rule::ZBOX_UNIT)
///     .for_layer("conv3", Rule::Gamma(0.5));
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Composite {
    /// For titles, e.g. `epsilon-plus (ε=1e-6)`.
    pub name: String,
    /// ε of [`Rule::Norm`] and the stabilizer of all weight rules (Zennit's `stabilizer`).
    pub stabilizer: f64,
    /// Rules for layer names (a layer's conv or linear node, if it has one, else all its
    /// nodes) or, for names that are not a layer, node names.
    pub layer_rules: Vec<(String, Rule)>,
    /// The rule for the first node, in forward order, of one of these types.
    pub first_rules: Vec<(LayerType, Rule)>,
    /// Rules by type; later entries win.
    pub type_rules: Vec<(LayerType, Rule)>,
}

/// The names [`Composite::named`] accepts.
pub const COMPOSITE_NAMES: [&str; 5] = [
    "epsilon-plus",
    "epsilon-plus-flat",
    "epsilon-alpha2-beta1",
    "epsilon-alpha2-beta1-flat",
    "epsilon-gamma-box",
];

/// Zennit's default stabilizer.
pub const DEFAULT_STABILIZER: f64 = 1e-6;

impl Composite {
    /// A composite with only the base rules every Zennit composite shares: activations pass,
    /// sums and average pooling [`Rule::Norm`], unmerged batch norms pass; and, as Zennit
    /// leaves them to the gradient, max pooling and reshaping take the gradient. Input
    /// rescaling passes (so relevance is that of the raw pixels). Conv and linear nodes need
    /// a rule from [`Composite::for_type`], [`Composite::for_first`] or [`Composite::for_layer`].
    pub fn new(name: &str) -> Composite {
        Composite {
            name: name.to_string(),
            stabilizer: DEFAULT_STABILIZER,
            layer_rules: vec![],
            first_rules: vec![],
            type_rules: vec![
                (LayerType::Activation, Rule::Pass),
                (LayerType::Sum, Rule::Norm),
                (LayerType::AvgPool, Rule::Norm),
                (LayerType::BatchNorm, Rule::Pass),
                (LayerType::MaxPool, Rule::Gradient),
                (LayerType::Reshape, Rule::Gradient),
                (LayerType::Rescale, Rule::Pass),
            ],
        }
    }

    /// Zennit's `EpsilonPlus`: z⁺ for conv layers, ε for dense layers.
    pub fn epsilon_plus(epsilon: f64) -> Composite {
        Composite::new(&format!("epsilon-plus, ε={epsilon}"))
            .for_type(LayerType::Conv, Rule::ZPlus)
            .for_type(LayerType::Dense, Rule::Epsilon(epsilon))
    }

    /// Zennit's `EpsilonPlusFlat`: [`Composite::epsilon_plus`] with flat for the first conv
    /// or dense layer.
    pub fn epsilon_plus_flat(epsilon: f64) -> Composite {
        let mut c = Composite::epsilon_plus(epsilon).for_first(LayerType::ConvOrDense, Rule::Flat);
        c.name = format!("epsilon-plus-flat, ε={epsilon}");
        c
    }

    /// Zennit's `EpsilonAlpha2Beta1`: α2β1 for conv layers, ε for dense layers.
    pub fn epsilon_alpha2_beta1(epsilon: f64) -> Composite {
        Composite::new(&format!("epsilon-alpha2-beta1, ε={epsilon}"))
            .for_type(LayerType::Conv, Rule::ALPHA2_BETA1)
            .for_type(LayerType::Dense, Rule::Epsilon(epsilon))
    }

    /// Zennit's `EpsilonAlpha2Beta1Flat`: [`Composite::epsilon_alpha2_beta1`] with flat for
    /// the first conv or dense layer.
    pub fn epsilon_alpha2_beta1_flat(epsilon: f64) -> Composite {
        let mut c = Composite::epsilon_alpha2_beta1(epsilon).for_first(LayerType::ConvOrDense, Rule::Flat);
        c.name = format!("epsilon-alpha2-beta1-flat, ε={epsilon}");
        c
    }

    /// Zennit's `EpsilonGammaBox` with the bounds of gradviz inputs: zᴮ on `[0, 1]` for the
    /// first conv layer, γ = 0.25 for the other conv layers, ε for dense layers.
    pub fn epsilon_gamma_box(epsilon: f64) -> Composite {
        Composite::new(&format!("epsilon-gamma-box, ε={epsilon}"))
            .for_type(LayerType::Conv, Rule::Gamma(0.25))
            .for_type(LayerType::Dense, Rule::Epsilon(epsilon))
            .for_first(LayerType::Conv, Rule::ZBOX_UNIT)
    }

    /// A preset by name (one of [`COMPOSITE_NAMES`]) with ε for its dense layers.
    pub fn named(name: &str, epsilon: f64) -> Result<Composite> {
        Ok(match name {
            "epsilon-plus" => Composite::epsilon_plus(epsilon),
            "epsilon-plus-flat" => Composite::epsilon_plus_flat(epsilon),
            "epsilon-alpha2-beta1" => Composite::epsilon_alpha2_beta1(epsilon),
            "epsilon-alpha2-beta1-flat" => Composite::epsilon_alpha2_beta1_flat(epsilon),
            "epsilon-gamma-box" => Composite::epsilon_gamma_box(epsilon),
            _ => bail!("unknown LRP composite '{name}': expected one of {COMPOSITE_NAMES:?}"),
        })
    }

    /// `rule` for every node of type `t` (overrides earlier rules for that type).
    pub fn for_type(mut self, t: LayerType, rule: Rule) -> Composite {
        self.type_rules.push((t, rule));
        self
    }

    /// `rule` for the first node of type `t` in forward order.
    pub fn for_first(mut self, t: LayerType, rule: Rule) -> Composite {
        self.first_rules.push((t, rule));
        self
    }

    /// `rule` for a layer (its conv or linear node, if it has one, else all its nodes) or,
    /// if no layer has that name, a node; names win over types.
    pub fn for_layer(mut self, name: &str, rule: Rule) -> Composite {
        self.layer_rules.push((name.to_string(), rule));
        self
    }

    /// The stabilizer of [`Rule::Norm`] and the weight rules.
    pub fn with_stabilizer(mut self, stabilizer: f64) -> Composite {
        self.stabilizer = stabilizer;
        self
    }

    /// The rule of each node of `graph`, in node order. Fails on an op LRP does not handle,
    /// on a node without a rule, on a rule that does not fit its node, and on names that
    /// are neither a node nor a layer.
    pub fn assign(&self, graph: &LayerGraph) -> Result<Vec<Rule>> {
        anyhow::ensure!(
            self.stabilizer.is_finite() && self.stabilizer > 0.0,
            "the LRP stabilizer must be finite and > 0, got {}",
            self.stabilizer
        );
        let layers = graph.layers();
        for (name, _) in &self.layer_rules {
            anyhow::ensure!(
                layers.contains(name) || graph.node(name).is_some(),
                "LRP composite '{}' names '{name}', which is neither a layer nor a node: valid layers are {layers:?}",
                self.name
            );
        }
        let weighted: HashSet<&str> = graph
            .nodes
            .iter()
            .filter(|n| LayerType::ConvOrDense.matches(&n.op))
            .map(|n| n.layer.as_str())
            .collect();
        let mut first_seen = false;
        let mut rules = Vec::with_capacity(graph.nodes.len());
        for node in &graph.nodes {
            if LayerType::of(&node.op).is_none() {
                bail!(
                    "LRP does not handle node '{}' ({}, layer '{}'): it has no relevance rule (LRP explains logits, so the graph must end before any softmax)",
                    node.name,
                    node.op.type_name(),
                    node.layer
                );
            }
            let first = if first_seen {
                None
            } else {
                let r = self
                    .first_rules
                    .iter()
                    .find(|(t, _)| t.matches(&node.op))
                    .map(|(_, r)| *r);
                first_seen = r.is_some();
                r
            };
            // A layer name wins over a node of the same name (built-in layers end in a node
            // named like the layer: `conv1` is the ReLU of layer `conv1`).
            let by_name = self.layer_rules.iter().rev().find(|(name, _)| {
                if layers.contains(name) {
                    *name == node.layer
                        && (LayerType::ConvOrDense.matches(&node.op)
                            || !weighted.contains(node.layer.as_str()))
                } else {
                    *name == node.name
                }
            });
            let by_type = self.type_rules.iter().rev().find(|(t, _)| t.matches(&node.op));
            let rule = by_name
                .map(|(_, r)| *r)
                .or(first)
                .or(by_type.map(|(_, r)| *r))
                .with_context(|| {
                    format!(
                        "LRP composite '{}' gives no rule for node '{}' ({}, layer '{}'): add one for its type or layer",
                        self.name,
                        node.name,
                        node.op.type_name(),
                        node.layer
                    )
                })?;
            check_applicable(rule, node).with_context(|| format!("LRP composite '{}'", self.name))?;
            rules.push(rule);
        }
        Ok(rules)
    }
}

/// One line per node: `name (op, layer) → rule`, for printing which rule goes where.
pub fn describe_rules(graph: &LayerGraph, rules: &[Rule]) -> String {
    graph
        .nodes
        .iter()
        .zip(rules)
        .map(|(n, r): (&Node, &Rule)| format!("{} ({}, layer {}) → {r}", n.name, n.op.type_name(), n.layer))
        .collect::<Vec<_>>()
        .join("\n")
}
