//! The LRP rules: how one node hands the relevance of its output down to its inputs.
//!
//! Notation for a conv or linear node `z = W ∗ x + b` with output relevance `R`: `x⁺ =
//! max(x, 0)`, `x⁻ = min(x, 0)`, likewise `W⁺, W⁻, b⁺, b⁻`; `Jᵀ g` is the transposed map
//! (the gradient of `⟨W ∗ x, g⟩` with respect to `x`), so `x ⊙ Wᵀ(R ⊘ z)` reads
//! `R_i = Σ_j x_i w_ij R_j / z_j`. Every division goes through the stabilizer
//! `s_ε(z) = z + ε · sign(z)` with `sign(0) = +1` (Zennit's convention), which pushes the
//! denominator away from zero without changing its sign.

use crate::graph::{Node, Op};
use anyhow::{bail, ensure, Context, Result};
use tch::{Kind, Tensor};

/// One LRP rule. Rules marked *weights* only apply to `conv2d` and `linear` nodes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Rule {
    /// LRP-ε (Bach et al. 2015): `R_in = x ⊙ Wᵀ(R ⊘ s_ε(z))`.
    /// Conserves `Σ R_in = Σ_j R_j (z_j − b_j) / s_ε(z_j)`: the bias and ε absorb the rest.
    /// `ε = 0` is LRP-0 (input × gradient of the layer). On a node without weights (sum,
    /// pooling) it is the same formula with that node's map.
    Epsilon(f64),
    /// z⁺ = α1β0 (*weights*): only positive contributions count,
    /// `z⁺ = W⁺ ∗ x⁺ + W⁻ ∗ x⁻ + b⁺`, `R_in = x⁺ ⊙ W⁺ᵀ(R ⊘ s(z⁺)) + x⁻ ⊙ W⁻ᵀ(R ⊘ s(z⁺))`.
    /// Relevance keeps its sign; for `x ≥ 0` and zero biases it is conserved exactly.
    ZPlus,
    /// αβ (*weights*), `α − β = 1`, `α, β ≥ 0`: positive and negative contributions are
    /// normalized separately, `R_in = α (x⁺ ⊙ W⁺ᵀ + x⁻ ⊙ W⁻ᵀ)(R ⊘ s(z⁺)) − β (x⁺ ⊙ W⁻ᵀ +
    /// x⁻ ⊙ W⁺ᵀ)(R ⊘ s(z⁻))` with `z⁺` as in [`Rule::ZPlus`] and `z⁻ = W⁻ ∗ x⁺ + W⁺ ∗ x⁻ + b⁻`.
    /// Conserved where both `z⁺` and `z⁻` are nonzero (then `Σ R_in = (α − β) R = R`).
    AlphaBeta { alpha: f64, beta: f64 },
    /// Generalized γ (*weights*; Montavon et al. 2019, Andéol et al. 2021): positive
    /// contributions boosted by `γ`. Where `z > 0`: `R_in = x⁺ ⊙ (W + γW⁺)ᵀ(R ⊘ s(z₊)) + x⁻ ⊙
    /// (W + γW⁻)ᵀ(R ⊘ s(z₊))`, `z₊ = (W + γW⁺) ∗ x⁺ + (W + γW⁻) ∗ x⁻ + b + γb⁺`; where `z < 0`
    /// the same with `W⁺ ↔ W⁻` swapped (`b + γb⁻`); where `z = 0`, nothing.
    Gamma(f64),
    /// Flat (*weights*; Lapuschkin et al. 2019): every input of a unit's receptive field gets
    /// an equal share, `R_in = 1ᵀ(R ⊘ s(1 ∗ 1))` (weights and inputs set to one, no bias).
    /// Conservative; for the first layer, where pixel values say little.
    Flat,
    /// zᴮ (*weights*; Montavon et al. 2017) for inputs bounded by `low ≤ x ≤ high` (gradviz
    /// images: `[0, 1]`): `z = W ∗ x − W⁺ ∗ l − W⁻ ∗ h`,
    /// `R_in = (x ⊙ Wᵀ − l ⊙ W⁺ᵀ − h ⊙ W⁻ᵀ)(R ⊘ s(z))`. The bounds are pixel bounds of the
    /// model input; they are carried through scaling, normalization and padding nodes before
    /// the layer. Conserves `R` exactly (the biases cancel) up to the stabilizer.
    ZBox { low: f64, high: f64 },
    /// ε with the composite's stabilizer as ε: the rule of sums and average pooling,
    /// `R_in_k = x_k ⊙ Jᵀ_k(R ⊘ s(y))`, which splits a sum `y = Σ_k x_k` in proportion to
    /// its terms (Zennit's `Norm`).
    Norm,
    /// `R_in = R`: activations (the relevance of a unit is that of its input), batch norms
    /// after merging, rescaling of the input.
    Pass,
    /// The plain gradient `R_in = Jᵀ R`: max pooling (winner takes all), reshaping,
    /// padding, concatenation.
    Gradient,
}

impl Rule {
    /// `α = 2, β = 1`.
    pub const ALPHA2_BETA1: Rule = Rule::AlphaBeta {
        alpha: 2.0,
        beta: 1.0,
    };

    /// zᴮ with the bounds of gradviz inputs, `[0, 1]`.
    pub const ZBOX_UNIT: Rule = Rule::ZBox { low: 0.0, high: 1.0 };

    /// A short name for titles and errors, e.g. `ε=0.25`, `α2β1`.
    pub fn name(&self) -> String {
        match self {
            Rule::Epsilon(e) => format!("ε={e}"),
            Rule::ZPlus => "z⁺".into(),
            Rule::AlphaBeta { alpha, beta } => format!("α{alpha}β{beta}"),
            Rule::Gamma(g) => format!("γ={g}"),
            Rule::Flat => "flat".into(),
            Rule::ZBox { low, high } => format!("zᴮ[{low}, {high}]"),
            Rule::Norm => "norm".into(),
            Rule::Pass => "pass".into(),
            Rule::Gradient => "gradient".into(),
        }
    }

    /// Whether the rule changes weights, so only applies to conv and linear nodes.
    pub fn needs_weights(&self) -> bool {
        matches!(
            self,
            Rule::ZPlus | Rule::AlphaBeta { .. } | Rule::Gamma(_) | Rule::Flat | Rule::ZBox { .. }
        )
    }

    /// Checks the rule's parameters.
    pub fn check(&self) -> Result<()> {
        let finite_nonneg = |v: f64| v.is_finite() && v >= 0.0;
        match *self {
            Rule::Epsilon(e) => ensure!(finite_nonneg(e), "LRP ε must be finite and ≥ 0, got {e}"),
            Rule::Gamma(g) => ensure!(finite_nonneg(g), "LRP γ must be finite and ≥ 0, got {g}"),
            Rule::AlphaBeta { alpha, beta } => ensure!(
                finite_nonneg(alpha) && finite_nonneg(beta) && (alpha - beta - 1.0).abs() < 1e-12,
                "LRP αβ needs α, β ≥ 0 with α − β = 1 (so that relevance is conserved), got α={alpha}, β={beta}"
            ),
            Rule::ZBox { low, high } => ensure!(
                low.is_finite() && high.is_finite() && low < high,
                "LRP zᴮ needs finite bounds low < high, got [{low}, {high}]"
            ),
            _ => {}
        }
        Ok(())
    }
}

impl std::fmt::Display for Rule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name())
    }
}

/// Everything a rule needs to propagate the relevance of one node.
pub(crate) struct Step<'a> {
    pub node: &'a Node,
    /// The forward values of the node's inputs.
    pub inputs: Vec<&'a Tensor>,
    /// The node's forward output.
    pub output: &'a Tensor,
    /// The relevance of the output.
    pub relevance: &'a Tensor,
    /// The node's tensors by role (`weight`, `bias`).
    pub params: &'a dyn Fn(&str) -> Option<Tensor>,
    /// ε of [`Rule::Norm`] and the stabilizer of the weight rules.
    pub stabilizer: f64,
    /// zᴮ's bounds for this node's input, `[1, …]` broadcast over the batch.
    pub bounds: Option<&'a (Tensor, Tensor)>,
}

/// `z + ε · sign(z)` with `sign(0) = +1`.
pub(crate) fn stabilize(z: &Tensor, eps: f64) -> Tensor {
    let sign = z.eq(0.0).to_kind(z.kind()) + z.sign();
    z + sign * eps
}

/// A copy of `x` that records the operations applied to it.
fn traced(x: &Tensor) -> Tensor {
    x.detach().set_requires_grad(true)
}

/// `Jᵀ_k g` for each traced input: the gradient of `Σ_m ⟨outputs_m, grads_m⟩`.
fn vjp(outputs: &[&Tensor], grads: &[&Tensor], inputs: &[&Tensor]) -> Result<Vec<Tensor>> {
    let mut total: Option<Tensor> = None;
    for (o, g) in outputs.iter().zip(grads) {
        let t = (*o * g.detach()).sum(Kind::Float);
        total = Some(match total {
            Some(a) => a + t,
            None => t,
        });
    }
    let total = total.context("nothing to differentiate")?;
    Tensor::f_run_backward(&[total], inputs, false, false)
        .map_err(|e| anyhow::anyhow!("backward pass failed: {e}"))
}

impl Step<'_> {
    /// The input relevances of the node, one per input.
    pub fn propagate(&self, rule: Rule) -> Result<Vec<Tensor>> {
        tch::with_grad(|| match rule {
            Rule::Epsilon(e) => self.epsilon(e),
            Rule::Norm => self.epsilon(self.stabilizer),
            Rule::Pass => self.pass(),
            Rule::Gradient => self.gradient(),
            Rule::ZPlus => self.alpha_beta(1.0, 0.0),
            Rule::AlphaBeta { alpha, beta } => self.alpha_beta(alpha, beta),
            Rule::Gamma(g) => self.gamma(g),
            Rule::Flat => self.flat(),
            Rule::ZBox { .. } => self.zbox(),
        })
    }

    /// The node's map on traced copies of its inputs.
    fn traced_forward(&self) -> Result<(Vec<Tensor>, Tensor)> {
        let xs: Vec<Tensor> = self.inputs.iter().map(|x| traced(x)).collect();
        let refs: Vec<&Tensor> = xs.iter().collect();
        let y = self.node.op.apply(&refs, self.params)?;
        Ok((xs, y))
    }

    fn epsilon(&self, eps: f64) -> Result<Vec<Tensor>> {
        let (xs, y) = self.traced_forward()?;
        let g = self.relevance / stabilize(&y, eps);
        let refs: Vec<&Tensor> = xs.iter().collect();
        let grads = vjp(&[&y], &[&g], &refs)?;
        Ok(self.inputs.iter().zip(&grads).map(|(x, g)| *x * g).collect())
    }

    fn gradient(&self) -> Result<Vec<Tensor>> {
        let (xs, y) = self.traced_forward()?;
        let refs: Vec<&Tensor> = xs.iter().collect();
        vjp(&[&y], &[self.relevance], &refs)
    }

    fn pass(&self) -> Result<Vec<Tensor>> {
        ensure!(
            self.inputs.len() == 1 && self.inputs[0].size() == self.relevance.size(),
            "the pass rule needs one input of the output's shape, node has inputs {:?} and output {:?}",
            self.inputs.iter().map(|x| x.size()).collect::<Vec<_>>(),
            self.relevance.size()
        );
        Ok(vec![self.relevance.shallow_clone()])
    }

    /// The node's affine map `x ↦ w ∗ x + b` with its own stride, padding, … .
    fn affine(&self, x: &Tensor, w: &Tensor, b: Option<&Tensor>) -> Result<Tensor> {
        let lookup = |role: &str| match role {
            "weight" => Some(w.shallow_clone()),
            "bias" => b.map(|b| b.shallow_clone()),
            _ => None,
        };
        self.node.op.apply(&[x], &lookup)
    }

    /// The single input, weight and bias of a conv or linear node.
    fn weights(&self) -> Result<(&Tensor, Tensor, Option<Tensor>)> {
        ensure!(
            matches!(self.node.op, Op::Conv2d { .. } | Op::Linear) && self.inputs.len() == 1,
            "this rule changes weights, so it needs a conv2d or linear node"
        );
        let w = (self.params)("weight").context("the node has no weight tensor")?;
        Ok((self.inputs[0], w, (self.params)("bias")))
    }

    /// Relevance through the sums `Σ_k w_k ∗ x_k + b` of `terms` (input, weight) and `bias`:
    /// `R ⊙ mask ⊘ s(z)` is sent back through each term and multiplied by its input.
    fn split(
        &self,
        terms: &[(&Tensor, &Tensor)],
        bias: Option<&Tensor>,
        mask: Option<&Tensor>,
    ) -> Result<Tensor> {
        let xs: Vec<Tensor> = terms.iter().map(|(x, _)| traced(x)).collect();
        let mut zs = Vec::with_capacity(terms.len());
        for (k, ((_, w), x)) in terms.iter().zip(&xs).enumerate() {
            zs.push(self.affine(x, w, if k == 0 { bias } else { None })?);
        }
        let z = zs[1..].iter().fold(zs[0].shallow_clone(), |a, b| a + b);
        let r = match mask {
            Some(m) => m * self.relevance,
            None => self.relevance.shallow_clone(),
        };
        let g = r / stabilize(&z, self.stabilizer);
        let z_refs: Vec<&Tensor> = zs.iter().collect();
        let x_refs: Vec<&Tensor> = xs.iter().collect();
        let grads = vjp(&z_refs, &vec![&g; zs.len()], &x_refs)?;
        let mut out = terms[0].0 * &grads[0];
        for ((x, _), g) in terms.iter().zip(&grads).skip(1) {
            out += *x * g;
        }
        Ok(out)
    }

    fn alpha_beta(&self, alpha: f64, beta: f64) -> Result<Vec<Tensor>> {
        let (x, w, b) = self.weights()?;
        let (xp, xn) = (x.clamp_min(0.0), x.clamp_max(0.0));
        let (wp, wn) = (w.clamp_min(0.0), w.clamp_max(0.0));
        let bp = b.as_ref().map(|b| b.clamp_min(0.0));
        let positive = self.split(&[(&xp, &wp), (&xn, &wn)], bp.as_ref(), None)?;
        if beta == 0.0 {
            return Ok(vec![positive * alpha]);
        }
        let bn = b.as_ref().map(|b| b.clamp_max(0.0));
        let negative = self.split(&[(&xp, &wn), (&xn, &wp)], bn.as_ref(), None)?;
        Ok(vec![positive * alpha - negative * beta])
    }

    fn gamma(&self, gamma: f64) -> Result<Vec<Tensor>> {
        let (x, w, b) = self.weights()?;
        let (xp, xn) = (x.clamp_min(0.0), x.clamp_max(0.0));
        let boost_p = |t: &Tensor| t + t.clamp_min(0.0) * gamma;
        let boost_n = |t: &Tensor| t + t.clamp_max(0.0) * gamma;
        let (wp, wn) = (boost_p(&w), boost_n(&w));
        let up_mask = self.output.gt(0.0).to_kind(Kind::Float);
        let down_mask = self.output.lt(0.0).to_kind(Kind::Float);
        let bp = b.as_ref().map(&boost_p);
        let bn = b.as_ref().map(&boost_n);
        let up = self.split(&[(&xp, &wp), (&xn, &wn)], bp.as_ref(), Some(&up_mask))?;
        let down = self.split(&[(&xp, &wn), (&xn, &wp)], bn.as_ref(), Some(&down_mask))?;
        Ok(vec![up + down])
    }

    fn flat(&self) -> Result<Vec<Tensor>> {
        let (x, w, _) = self.weights()?;
        let ones = traced(&x.ones_like());
        let z = self.affine(&ones, &w.ones_like(), None)?;
        let g = self.relevance / stabilize(&z, self.stabilizer);
        vjp(&[&z], &[&g], &[&ones])
    }

    fn zbox(&self) -> Result<Vec<Tensor>> {
        let (x, w, b) = self.weights()?;
        let (low, high) = self
            .bounds
            .context("zᴮ needs the bounds of its input (internal: none were computed)")?;
        let size = x.size();
        let (l, h) = (
            traced(&low.expand(size.as_slice(), false).contiguous()),
            traced(&high.expand(size.as_slice(), false).contiguous()),
        );
        let xt = traced(x);
        let (wp, wn) = (w.clamp_min(0.0), w.clamp_max(0.0));
        let bp = b.as_ref().map(|b| b.clamp_min(0.0));
        let bn = b.as_ref().map(|b| b.clamp_max(0.0));
        let z0 = self.affine(&xt, &w, b.as_ref())?;
        let z1 = self.affine(&l, &wp, bp.as_ref())?;
        let z2 = self.affine(&h, &wn, bn.as_ref())?;
        let z = &z0 - (&z1 + &z2);
        let g = self.relevance / stabilize(&z, self.stabilizer);
        let grads = vjp(&[&z0, &z1, &z2], &[&g, &g, &g], &[&xt, &l, &h])?;
        let lowered = l.detach() * &grads[1] + h.detach() * &grads[2];
        Ok(vec![x * &grads[0] - lowered])
    }
}

/// Fails unless `rule` can be applied to `node`.
pub(crate) fn check_applicable(rule: Rule, node: &Node) -> Result<()> {
    rule.check()?;
    let weighted = matches!(node.op, Op::Conv2d { .. } | Op::Linear);
    if rule.needs_weights() && !weighted {
        bail!(
            "rule {rule} changes weights and only applies to conv2d and linear nodes, not to node '{}' ({}, layer '{}')",
            node.name,
            node.op.type_name(),
            node.layer
        );
    }
    if rule == Rule::Pass && node.inputs.len() != 1 {
        bail!(
            "rule pass needs a node with one input, node '{}' ({}, layer '{}') has {}",
            node.name,
            node.op.type_name(),
            node.layer,
            node.inputs.len()
        );
    }
    Ok(())
}
