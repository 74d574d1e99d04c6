//! Canonization: batch norms merged into the conv or linear node before them, as Zennit's
//! `SequentialMergeBatchNorm`, on copies of the tensors.

use crate::graph::{LayerGraph, Op};
use anyhow::{Context, Result};
use std::collections::HashMap;
use tch::{Kind, Tensor};

/// The graph and tensors with each batch norm that directly follows a conv or linear node
/// (whose output nothing else reads) folded into it:
///
/// `W' = W · γ/√(σ² + ε)` (per output channel), `b' = (b − μ) · γ/√(σ² + ε) + β`,
///
/// and the batch norm replaced by an identity. The model's own tensors are never written:
/// merged ones are new tensors under new names. Batch norms elsewhere stay (and pass).
pub(crate) fn merge_batch_norms(
    graph: &LayerGraph,
    tensors: &HashMap<String, Tensor>,
) -> Result<(LayerGraph, HashMap<String, Tensor>)> {
    let mut g = graph.clone();
    let mut t: HashMap<String, Tensor> = tensors
        .iter()
        .map(|(k, v)| (k.clone(), v.shallow_clone()))
        .collect();
    let readers = |name: &str| {
        graph
            .nodes
            .iter()
            .filter(|n| n.inputs.iter().any(|i| i == name))
            .count()
    };
    for bn_idx in 0..g.nodes.len() {
        let Op::BatchNorm { eps } = g.nodes[bn_idx].op else {
            continue;
        };
        let Some(prev_idx) = g.nodes.iter().position(|n| n.name == g.nodes[bn_idx].inputs[0]) else {
            continue; // reads the model input
        };
        let prev = &g.nodes[prev_idx];
        let is_affine = matches!(prev.op, Op::Conv2d { .. } | Op::Linear);
        if !is_affine || readers(&prev.name) != 1 || prev.name == g.output {
            continue;
        }
        let bn = &g.nodes[bn_idx];
        let get = |node: &crate::graph::Node, role: &str| node.params.get(role).and_then(|n| t.get(n));
        let w = get(prev, "weight").with_context(|| format!("node '{}' has no weight tensor", prev.name))?;
        let (mean, var) = (
            get(bn, "running_mean")
                .with_context(|| format!("batch norm '{}' has no running_mean", bn.name))?,
            get(bn, "running_var").with_context(|| format!("batch norm '{}' has no running_var", bn.name))?,
        );
        let channels = w.size()[0];
        if mean.size() != [channels] || var.size() != [channels] {
            continue; // normalizes another dimension than the layer's outputs
        }
        let (w2, b2) = tch::no_grad(|| {
            let scale = get(bn, "weight").map_or_else(|| mean.ones_like(), |g| g.shallow_clone())
                / (var + eps).pow_tensor_scalar(0.5);
            let b = get(prev, "bias").map_or_else(|| mean.zeros_like(), |b| b.shallow_clone());
            let beta = get(bn, "bias").map_or_else(|| mean.zeros_like(), |b| b.shallow_clone());
            let mut shape = vec![1i64; w.dim()];
            shape[0] = channels;
            let w2 = (w * scale.view(shape.as_slice())).to_kind(Kind::Float);
            let b2 = ((b - mean) * &scale + beta).to_kind(Kind::Float);
            (w2, b2)
        });
        let (wn, bnm) = (
            format!("lrp/merged/{}.weight", prev.name),
            format!("lrp/merged/{}.bias", prev.name),
        );
        t.insert(wn.clone(), w2);
        t.insert(bnm.clone(), b2);
        let prev = &mut g.nodes[prev_idx];
        prev.params.insert("weight".into(), wn);
        prev.params.insert("bias".into(), bnm);
        let bn = &mut g.nodes[bn_idx];
        bn.op = Op::Identity;
        bn.params.clear();
    }
    Ok((g, t))
}
