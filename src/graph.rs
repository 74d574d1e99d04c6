//! The structure of a classifier as a graph of standard layers.
//!
//! A forward pass is all that saliency and ascent need. A few methods need the structure as
//! well: LRP walks the layers backwards with one rule per layer type, a unit's receptive
//! field follows kernels and strides, and the randomization check re-initializes layers by
//! name. A [`LayerGraph`] describes that structure in the same way for built-in and
//! imported models; its JSON form is what `gradviz import` stores inside an imported model.
//!
//! - Nodes are listed in forward (topological) order. Each reads the outputs of earlier
//!   nodes (or the graph's input) by name and applies one [`Op`].
//! - Each node belongs to a user-facing **layer** (`Node::layer`): a Keras layer name, a
//!   PyTorch module path such as `block1.conv2`, or a built-in name such as `conv2`. A
//!   layer may span several nodes (a Keras `Conv2D` with `activation="relu"` is a conv
//!   node and a ReLU node); its output is the output of its last node.
//! - Weights are not stored in the graph. A node names its tensors by role (`weight`,
//!   `bias`, `running_mean`, …) and the model supplies them by name
//!   ([`crate::model::Classifier::named_tensors`]).
//!
//! [`LayerGraph::forward`] runs the graph natively with tch; for every model it must agree
//! with the model's own forward pass, which the tests check.

use anyhow::{bail, ensure, Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use tch::{Kind, Tensor};

/// The version of the JSON format written by [`LayerGraph::to_json`].
pub const GRAPH_FORMAT: u32 = 1;

/// The name by which nodes refer to the model's input `[N, C, H, W]` in `[0, 1]`.
pub const INPUT: &str = "input";

/// A classifier as a directed acyclic graph of [`Node`]s, from [`INPUT`] to `output` (the
/// logits).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LayerGraph {
    pub format: u32,
    pub nodes: Vec<Node>,
    /// The node whose output is the logits `[N, K]`.
    pub output: String,
}

/// One operation of a [`LayerGraph`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Node {
    /// Unique among the nodes, never [`INPUT`].
    pub name: String,
    /// The user-facing layer this node is part of.
    pub layer: String,
    pub op: Op,
    /// Names of the nodes (or [`INPUT`]) whose outputs this node reads, in order.
    pub inputs: Vec<String>,
    /// The tensors of this node by role (`weight`, `bias`, `running_mean`, `running_var`)
    /// → their names in the model's [`crate::model::Classifier::named_tensors`].
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub params: BTreeMap<String, String>,
}

/// The operations a [`LayerGraph`] can hold: what a course CNN in Keras or PyTorch uses.
/// Shapes follow PyTorch: `[N, C, H, W]`, pairs are `[height, width]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Op {
    /// `weight` `[O, I/groups, kh, kw]`, optional `bias` `[O]`.
    Conv2d {
        stride: [i64; 2],
        padding: [i64; 2],
        dilation: [i64; 2],
        groups: i64,
    },
    /// `weight` `[O, I]`, optional `bias` `[O]`, on the last dimension.
    Linear,
    /// Inference-mode batch normalization over dimension 1 (any rank), with
    /// `running_mean`, `running_var` and optional `weight` (γ) and `bias` (β).
    BatchNorm {
        eps: f64,
    },
    /// Zero padding of the last two dimensions: `[left, right, top, bottom]`.
    Pad {
        pad: [i64; 4],
    },
    MaxPool2d {
        kernel: [i64; 2],
        stride: [i64; 2],
        padding: [i64; 2],
        dilation: [i64; 2],
        ceil_mode: bool,
    },
    AvgPool2d {
        kernel: [i64; 2],
        stride: [i64; 2],
        padding: [i64; 2],
        ceil_mode: bool,
        count_include_pad: bool,
    },
    /// `[N, C, H, W]` → `[N, C, oh, ow]`.
    AdaptiveAvgPool2d {
        output: [i64; 2],
    },
    AdaptiveMaxPool2d {
        output: [i64; 2],
    },
    /// `[N, C, H, W]` → `[N, C]`: the mean over the spatial dimensions.
    GlobalAvgPool,
    /// `[N, C, H, W]` → `[N, C]`: the maximum over the spatial dimensions.
    GlobalMaxPool,
    /// Flattens dimensions `start..=end` (negative counts from the end).
    Flatten {
        start: i64,
        end: i64,
    },
    /// Reshapes every sample to `shape` (the batch dimension is kept; one entry may be −1).
    Reshape {
        shape: Vec<i64>,
    },
    /// Permutes all dimensions, batch included.
    Permute {
        dims: Vec<i64>,
    },
    /// `x · scale + offset` (Keras `Rescaling`).
    Scale {
        scale: f64,
        offset: f64,
    },
    /// `(x − mean_c) / std_c` per channel (dimension 1).
    Normalize {
        mean: Vec<f64>,
        std: Vec<f64>,
    },
    /// The element-wise sum of all inputs (a skip connection).
    Add,
    /// Concatenation of all inputs along `dim`.
    Concat {
        dim: i64,
    },
    /// Dropout at inference, an input layer, a no-op.
    Identity,
    Relu,
    Relu6,
    LeakyRelu {
        slope: f64,
    },
    Elu {
        alpha: f64,
    },
    Selu,
    Gelu {
        tanh: bool,
    },
    Silu,
    Sigmoid,
    HardSigmoid,
    Tanh,
    Softplus,
    Softsign,
    Exp,
    Mish,
    Softmax {
        dim: i64,
    },
    LogSoftmax {
        dim: i64,
    },
}

impl Op {
    /// The type name used in JSON and error messages, e.g. `max_pool2d`.
    pub fn type_name(&self) -> String {
        serde_json::to_value(self)
            .ok()
            .and_then(|v| v.get("type").and_then(|t| t.as_str()).map(str::to_string))
            .unwrap_or_else(|| "?".into())
    }

    /// Whether the op is an element-wise activation function.
    pub fn is_activation(&self) -> bool {
        use Op::*;
        matches!(
            self,
            Relu | Relu6
                | LeakyRelu { .. }
                | Elu { .. }
                | Selu
                | Gelu { .. }
                | Silu
                | Sigmoid
                | HardSigmoid
                | Tanh
                | Softplus
                | Softsign
                | Exp
                | Mish
        )
    }

    /// The tensor roles this op requires; other roles it accepts are optional.
    fn required_params(&self) -> &'static [&'static str] {
        match self {
            Op::Conv2d { .. } | Op::Linear => &["weight"],
            Op::BatchNorm { .. } => &["running_mean", "running_var"],
            _ => &[],
        }
    }

    /// How many inputs the op reads: `(min, max)`.
    fn arity(&self) -> (usize, usize) {
        match self {
            Op::Add | Op::Concat { .. } => (2, usize::MAX),
            _ => (1, 1),
        }
    }

    /// Applies the op to its inputs, with its tensors looked up by role in `p`.
    pub fn apply(&self, xs: &[&Tensor], p: &dyn Fn(&str) -> Option<Tensor>) -> Result<Tensor> {
        let x = xs[0];
        let need =
            |role: &str| p(role).with_context(|| format!("{} needs its '{role}' tensor", self.type_name()));
        Ok(match self {
            Op::Conv2d {
                stride,
                padding,
                dilation,
                groups,
            } => x.f_conv2d(
                &need("weight")?,
                p("bias").as_ref(),
                stride,
                padding,
                dilation,
                *groups,
            )?,
            Op::Linear => x.f_linear(&need("weight")?, p("bias").as_ref())?,
            Op::BatchNorm { eps } => x.f_batch_norm(
                p("weight").as_ref(),
                p("bias").as_ref(),
                Some(&need("running_mean")?),
                Some(&need("running_var")?),
                false,
                0.0,
                *eps,
                false,
            )?,
            Op::Pad { pad } => x.f_constant_pad_nd(pad.as_slice())?,
            Op::MaxPool2d {
                kernel,
                stride,
                padding,
                dilation,
                ceil_mode,
            } => x.f_max_pool2d(kernel, stride, padding, dilation, *ceil_mode)?,
            Op::AvgPool2d {
                kernel,
                stride,
                padding,
                ceil_mode,
                count_include_pad,
            } => x.f_avg_pool2d(kernel, stride, padding, *ceil_mode, *count_include_pad, None)?,
            Op::AdaptiveAvgPool2d { output } => x.f_adaptive_avg_pool2d(output)?,
            Op::AdaptiveMaxPool2d { output } => x.f_adaptive_max_pool2d(output)?.0,
            Op::GlobalAvgPool => x.f_mean_dim([-2i64, -1].as_slice(), false, Kind::Float)?,
            Op::GlobalMaxPool => x.f_amax([-2i64, -1].as_slice(), false)?,
            Op::Flatten { start, end } => x.f_flatten(*start, *end)?,
            Op::Reshape { shape } => {
                let mut s = vec![x.size()[0]];
                s.extend_from_slice(shape);
                x.f_reshape(s.as_slice())?
            }
            Op::Permute { dims } => x.f_permute(dims.as_slice())?,
            Op::Scale { scale, offset } => x * *scale + *offset,
            Op::Normalize { mean, std } => {
                ensure!(
                    mean.len() == std.len() && x.dim() >= 2 && x.size()[1] == mean.len() as i64,
                    "normalize has {} means and {} stds for {} channels",
                    mean.len(),
                    std.len(),
                    x.size().get(1).copied().unwrap_or(0)
                );
                let mut shape = vec![1i64; x.dim()];
                shape[1] = mean.len() as i64;
                let m = Tensor::from_slice(mean)
                    .to_kind(x.kind())
                    .to_device(x.device())
                    .view(shape.as_slice());
                let s = Tensor::from_slice(std)
                    .to_kind(x.kind())
                    .to_device(x.device())
                    .view(shape.as_slice());
                (x - m) / s
            }
            Op::Add => {
                let mut acc = x.shallow_clone();
                for y in &xs[1..] {
                    acc = acc.f_add(y)?;
                }
                acc
            }
            Op::Concat { dim } => Tensor::f_cat(xs, *dim)?,
            Op::Identity => x.shallow_clone(),
            Op::Relu => x.relu(),
            Op::Relu6 => x.clamp(0.0, 6.0),
            Op::LeakyRelu { slope } => x.f_where_self(&x.ge(0.0), &(x * *slope))?,
            // exp of the clamped input, so that the unused branch never overflows into NaN gradients.
            Op::Elu { alpha } => x.f_where_self(&x.gt(0.0), &((x.clamp_max(0.0).exp() - 1.0) * *alpha))?,
            Op::Selu => x.selu(),
            Op::Gelu { tanh } => x.f_gelu(if *tanh { "tanh" } else { "none" })?,
            Op::Silu => x.silu(),
            Op::Sigmoid => x.sigmoid(),
            Op::HardSigmoid => x.hardsigmoid(),
            Op::Tanh => x.tanh(),
            Op::Softplus => x.softplus(),
            Op::Softsign => x / (x.abs() + 1.0),
            Op::Exp => x.exp(),
            Op::Mish => x.mish(),
            Op::Softmax { dim } => x.softmax(*dim, x.kind()),
            Op::LogSoftmax { dim } => x.log_softmax(*dim, x.kind()),
        })
    }
}

impl LayerGraph {
    /// Parses and checks the JSON form.
    pub fn from_json(text: &str) -> Result<LayerGraph> {
        let g: LayerGraph = serde_json::from_str(text).context("not a valid gradviz layer graph")?;
        g.validate()?;
        Ok(g)
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a layer graph always serializes")
    }

    /// Checks names, inputs, arities and required tensors.
    pub fn validate(&self) -> Result<()> {
        ensure!(
            self.format == GRAPH_FORMAT,
            "layer graph format {} is not supported (expected {GRAPH_FORMAT})",
            self.format
        );
        ensure!(!self.nodes.is_empty(), "the layer graph has no nodes");
        let mut seen: Vec<&str> = vec![INPUT];
        for n in &self.nodes {
            ensure!(
                !seen.contains(&n.name.as_str()),
                "layer graph: node name '{}' is used twice (or is the reserved name '{INPUT}')",
                n.name
            );
            let (lo, hi) = n.op.arity();
            ensure!(
                (lo..=hi).contains(&n.inputs.len()),
                "layer graph: node '{}' ({}) has {} inputs",
                n.name,
                n.op.type_name(),
                n.inputs.len()
            );
            for i in &n.inputs {
                ensure!(
                    seen.contains(&i.as_str()),
                    "layer graph: node '{}' reads '{i}', which is not an earlier node",
                    n.name
                );
            }
            for role in n.op.required_params() {
                ensure!(
                    n.params.contains_key(*role),
                    "layer graph: node '{}' ({}) names no '{role}' tensor",
                    n.name,
                    n.op.type_name()
                );
            }
            seen.push(&n.name);
        }
        ensure!(
            self.nodes.iter().any(|n| n.name == self.output),
            "layer graph: the output '{}' is not a node",
            self.output
        );
        Ok(())
    }

    /// The user-facing layers, in forward order of their first node.
    pub fn layers(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for n in &self.nodes {
            if !out.contains(&n.layer) {
                out.push(n.layer.clone());
            }
        }
        out
    }

    /// The node whose output is the output of `layer` (its last node).
    pub fn layer_output(&self, layer: &str) -> Result<&Node> {
        self.nodes
            .iter()
            .rev()
            .find(|n| n.layer == layer)
            .with_context(|| format!("unknown layer '{layer}': valid layers are {:?}", self.layers()))
    }

    /// The names of the tensors that belong to `layer`, by node and role, e.g. `["conv2.bias", "conv2.weight"]`.
    pub fn layer_tensors(&self, layer: &str) -> Vec<String> {
        self.nodes
            .iter()
            .filter(|n| n.layer == layer)
            .flat_map(|n| n.params.values().cloned())
            .collect()
    }

    /// The node named `name`.
    pub fn node(&self, name: &str) -> Option<&Node> {
        self.nodes.iter().find(|n| n.name == name)
    }

    /// Runs the graph on `x`, handing every node and its output to `visit`, and returns the
    /// output node's value. `tensors` holds the model's weights by name.
    pub fn forward(
        &self,
        x: &Tensor,
        tensors: &HashMap<String, Tensor>,
        mut visit: impl FnMut(&Node, &Tensor),
    ) -> Result<Tensor> {
        let mut values: HashMap<&str, Tensor> = HashMap::new();
        values.insert(INPUT, x.shallow_clone());
        for n in &self.nodes {
            let ins: Vec<&Tensor> = n
                .inputs
                .iter()
                .map(|i| values.get(i.as_str()).expect("validated: inputs come first"))
                .collect();
            let lookup = |role: &str| -> Option<Tensor> {
                n.params
                    .get(role)
                    .and_then(|name| tensors.get(name))
                    .map(|t| t.shallow_clone())
            };
            for (role, name) in &n.params {
                if !tensors.contains_key(name) {
                    bail!(
                        "layer graph: node '{}' needs tensor '{name}' ({role}), which the model does not have",
                        n.name
                    );
                }
            }
            let y = n
                .op
                .apply(&ins, &lookup)
                .with_context(|| format!("layer graph: node '{}' ({}) failed", n.name, n.op.type_name()))?;
            visit(n, &y);
            values.insert(&n.name, y);
        }
        Ok(values
            .remove(self.output.as_str())
            .expect("validated: the output is a node"))
    }
}

/// Builds nodes for a chain of layers with less typing (built-in models, tests).
#[derive(Debug, Default)]
pub struct ChainBuilder {
    nodes: Vec<Node>,
}

impl ChainBuilder {
    pub fn new() -> ChainBuilder {
        ChainBuilder::default()
    }

    /// Appends `op` as a node of `layer`, reading the previous node (or the input).
    /// `params` are `(role, tensor name)` pairs.
    pub fn push(&mut self, name: &str, layer: &str, op: Op, params: &[(&str, String)]) -> &mut Self {
        let input = self.nodes.last().map_or(INPUT.to_string(), |n| n.name.clone());
        self.nodes.push(Node {
            name: name.to_string(),
            layer: layer.to_string(),
            op,
            inputs: vec![input],
            params: params.iter().map(|(r, n)| (r.to_string(), n.clone())).collect(),
        });
        self
    }

    /// The finished graph; its output is the last node.
    pub fn build(self) -> Result<LayerGraph> {
        let output = self.nodes.last().context("empty chain")?.name.clone();
        let g = LayerGraph {
            format: GRAPH_FORMAT,
            nodes: self.nodes,
            output,
        };
        g.validate()?;
        Ok(g)
    }
}

/// `(weight, bias)` tensor names of a layer whose tensors are named `LAYER.weight` and
/// `LAYER.bias`.
pub fn weight_bias(layer: &str) -> [(&'static str, String); 2] {
    [
        ("weight", format!("{layer}.weight")),
        ("bias", format!("{layer}.bias")),
    ]
}

/// A classifier that runs a [`LayerGraph`] natively on named tensors: for tests, and for
/// checking that a model's graph describes the model.
pub struct GraphModel {
    pub graph: LayerGraph,
    tensors: HashMap<String, Tensor>,
    input_shape: [i64; 3],
    class_names: Vec<String>,
}

impl std::fmt::Debug for GraphModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "GraphModel({})", crate::model::Classifier::describe(self))
    }
}

impl GraphModel {
    /// Checks that every tensor the graph names is given; the tensors are frozen.
    pub fn new(
        graph: LayerGraph,
        tensors: HashMap<String, Tensor>,
        input_shape: [i64; 3],
        class_names: Vec<String>,
    ) -> Result<GraphModel> {
        graph.validate()?;
        for n in &graph.nodes {
            for (role, name) in &n.params {
                ensure!(
                    tensors.contains_key(name),
                    "node '{}' needs tensor '{name}' ({role}), which is not given",
                    n.name
                );
            }
        }
        let tensors = tensors
            .into_iter()
            .map(|(k, v)| (k, v.detach().set_requires_grad(false)))
            .collect();
        Ok(GraphModel {
            graph,
            tensors,
            input_shape,
            class_names,
        })
    }

    /// The same model with its tensors on `device`; an error if it is not on this machine.
    pub fn to_device(self, device: tch::Device) -> Result<GraphModel> {
        crate::device::ensure_available(device)?;
        let tensors = self
            .tensors
            .into_iter()
            .map(|(k, t)| (k, t.to_device(device)))
            .collect();
        Ok(GraphModel { tensors, ..self })
    }
}

impl crate::model::Classifier for GraphModel {
    fn logits(&self, x: &Tensor) -> Result<Tensor> {
        self.check_input(x)?;
        let x = crate::device::to_model_device(self, &x.to_kind(Kind::Float));
        self.graph.forward(&x, &self.tensors, |_, _| {})
    }

    fn forward_with(&self, x: &Tensor, layers: &[&str]) -> Result<(Tensor, Vec<Tensor>)> {
        self.check_input(x)?;
        let nodes: Vec<String> = layers
            .iter()
            .map(|l| self.graph.layer_output(l).map(|n| n.name.clone()))
            .collect::<Result<_>>()?;
        let mut found: Vec<Option<Tensor>> = layers.iter().map(|_| None).collect();
        let x = crate::device::to_model_device(self, &x.to_kind(Kind::Float));
        let logits = self.graph.forward(&x, &self.tensors, |n, y| {
            for (slot, want) in found.iter_mut().zip(&nodes) {
                if *want == n.name {
                    *slot = Some(y.shallow_clone());
                }
            }
        })?;
        Ok((
            logits,
            found
                .into_iter()
                .map(|t| t.expect("every layer has a node"))
                .collect(),
        ))
    }

    fn layer_names(&self) -> Vec<String> {
        self.graph.layers()
    }

    fn input_shape(&self) -> [i64; 3] {
        self.input_shape
    }

    fn class_names(&self) -> &[String] {
        &self.class_names
    }

    fn device(&self) -> tch::Device {
        self.tensors
            .values()
            .next()
            .map_or(tch::Device::Cpu, |t| t.device())
    }

    fn parameters(&self) -> Vec<Tensor> {
        self.tensors.values().map(|t| t.shallow_clone()).collect()
    }

    fn describe(&self) -> String {
        let [c, h, w] = self.input_shape;
        format!(
            "layer graph of {} nodes ({c}x{h}x{w} -> {} classes)",
            self.graph.nodes.len(),
            self.class_names.len()
        )
    }

    fn graph(&self) -> Option<&LayerGraph> {
        Some(&self.graph)
    }

    fn named_tensors(&self) -> Vec<(String, Tensor)> {
        let mut v: Vec<(String, Tensor)> = self
            .tensors
            .iter()
            .map(|(k, t)| (k.clone(), t.shallow_clone()))
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }
}
