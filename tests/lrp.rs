//! LRP (`gradviz::lrp`): equal to Zennit 1.0 on the same PyTorch-defined models and weights,
//! conservative where the rules say so, closed forms on linear models, errors that name the
//! problem, and the CLI.

mod common;

use anyhow::Result;
use common::{python, repo};
use gradviz::graph::{ChainBuilder, GraphModel, LayerGraph, Node, Op, GRAPH_FORMAT, INPUT};
use gradviz::lrp::{Composite, LayerType, Lrp, Rule, COMPOSITE_NAMES};
use gradviz::model::{BuiltinModel, Classifier};
use gradviz::saliency::{Attribution, Target};
use gradviz::tch::{Device, Kind, Tensor};
use rand::{rngs::StdRng, Rng, SeedableRng};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The ε values the Zennit reference is computed for.
const EPSILONS: [f64; 2] = [1e-6, 0.25];
const N: i64 = 8;

fn err_of<T>(r: Result<T>) -> String {
    match r {
        Ok(_) => panic!("expected an error"),
        Err(e) => format!("{e:#}"),
    }
}

/// `max |a − b| / max |b|`.
fn rel_err(a: &Tensor, b: &Tensor) -> f64 {
    let d = (a - b).abs().max().double_value(&[]);
    d / b.abs().max().double_value(&[]).max(1e-30)
}

/// Uniform `[0, 1)` images from a seeded generator (not libtorch's global one, which other
/// tests share).
fn uniform(shape: &[i64], seed: u64) -> Tensor {
    let mut rng = StdRng::seed_from_u64(seed);
    let v: Vec<f32> = (0..shape.iter().product::<i64>())
        .map(|_| rng.gen::<f32>())
        .collect();
    Tensor::from_slice(&v).view(shape)
}

fn mnist_digits(n: usize) -> Tensor {
    gradviz::data::bundled_mnist().unwrap().test.head(n).images
}

/// Targets that are not only the predicted class, so negative logits are explained too.
fn targets() -> Vec<i64> {
    (0..N).map(|i| (3 * i) % 10).collect()
}

// ---------------------------------------------------------------------------------------
// models defined in PyTorch by tests/reference/zennit_lrp.py, rebuilt here as layer graphs

fn node(name: &str, op: Op, inputs: &[&str], params: &[&str]) -> Node {
    Node {
        name: name.into(),
        layer: name.into(),
        op,
        inputs: inputs.iter().map(|s| s.to_string()).collect(),
        params: params
            .iter()
            .map(|r| (r.to_string(), format!("{name}.{r}")))
            .collect::<BTreeMap<_, _>>(),
    }
}

fn conv(stride: i64, padding: i64) -> Op {
    Op::Conv2d {
        stride: [stride, stride],
        padding: [padding, padding],
        dilation: [1, 1],
        groups: 1,
    }
}

const BN: [&str; 4] = ["weight", "bias", "running_mean", "running_var"];
const WB: [&str; 2] = ["weight", "bias"];
const W: [&str; 1] = ["weight"];

fn bn() -> Op {
    Op::BatchNorm { eps: 1e-5 }
}

fn pool(avg: bool) -> Op {
    if avg {
        Op::AvgPool2d {
            kernel: [2, 2],
            stride: [2, 2],
            padding: [0, 0],
            ceil_mode: false,
            count_include_pad: true,
        }
    } else {
        Op::MaxPool2d {
            kernel: [2, 2],
            stride: [2, 2],
            padding: [0, 0],
            dilation: [1, 1],
            ceil_mode: false,
        }
    }
}

fn graph(nodes: Vec<Node>) -> LayerGraph {
    let output = nodes.last().unwrap().name.clone();
    let g = LayerGraph {
        format: GRAPH_FORMAT,
        nodes,
        output,
    };
    g.validate().unwrap();
    g
}

/// `Chain` of zennit_lrp.py.
fn chain_graph() -> LayerGraph {
    graph(vec![
        node("conv1", conv(1, 1), &[INPUT], &WB),
        node("bn1", bn(), &["conv1"], &BN),
        node("relu1", Op::Relu, &["bn1"], &[]),
        node("pool1", pool(false), &["relu1"], &[]),
        node("conv2", conv(1, 1), &["pool1"], &W),
        node("bn2", bn(), &["conv2"], &BN),
        node("relu2", Op::Relu, &["bn2"], &[]),
        node("pool2", pool(true), &["relu2"], &[]),
        node("flatten", Op::Flatten { start: 1, end: -1 }, &["pool2"], &[]),
        node("fc1", Op::Linear, &["flatten"], &WB),
        node("bn3", bn(), &["fc1"], &BN),
        node("relu3", Op::LeakyRelu { slope: 0.1 }, &["bn3"], &[]),
        node("fc2", Op::Linear, &["relu3"], &WB),
    ])
}

/// One `Block` of zennit_lrp.py reading `x`; `project` adds the 1×1 conv-BN shortcut.
fn block(b: &str, x: &str, stride: i64, project: bool) -> Vec<Node> {
    let n = |s: &str| format!("{b}.{s}");
    let mut v = vec![
        node(&n("conv1"), conv(stride, 1), &[x], &W),
        node(&n("bn1"), bn(), &[&n("conv1")], &BN),
        node(&n("relu1"), Op::Relu, &[&n("bn1")], &[]),
        node(&n("conv2"), conv(1, 1), &[&n("relu1")], &WB),
        node(&n("bn2"), bn(), &[&n("conv2")], &BN),
    ];
    let short = if project {
        v.push(node(&n("shortcut"), conv(stride, 0), &[x], &W));
        v.push(node(&n("shortcut_bn"), bn(), &[&n("shortcut")], &BN));
        n("shortcut_bn")
    } else {
        x.to_string()
    };
    v.push(node(&n("sum"), Op::Add, &[&short, &n("bn2")], &[]));
    v.push(node(&n("relu2"), Op::Relu, &[&n("sum")], &[]));
    v
}

/// `Skip` of zennit_lrp.py.
fn skip_graph() -> LayerGraph {
    let mut nodes = vec![
        node("stem", conv(1, 1), &[INPUT], &WB),
        node("stem_bn", bn(), &["stem"], &BN),
        node("stem_relu", Op::Relu, &["stem_bn"], &[]),
        node("pool", pool(false), &["stem_relu"], &[]),
    ];
    nodes.extend(block("block1", "pool", 1, false));
    nodes.extend(block("block2", "block1.relu2", 2, true));
    nodes.push(node("gap", Op::GlobalAvgPool, &["block2.relu2"], &[]));
    nodes.push(node("fc", Op::Linear, &["gap"], &WB));
    graph(nodes)
}

/// `Norm` of zennit_lrp.py: the input normalization is part of the model.
fn norm_graph() -> LayerGraph {
    let normalize = Op::Normalize {
        mean: vec![0.1307],
        std: vec![0.3081],
    };
    graph(vec![
        node("normalize", normalize, &[INPUT], &[]),
        node("conv", conv(1, 1), &["normalize"], &WB),
        node("relu", Op::Relu, &["conv"], &[]),
        node("pool", pool(false), &["relu"], &[]),
        node("flatten", Op::Flatten { start: 1, end: -1 }, &["pool"], &[]),
        node("fc", Op::Linear, &["flatten"], &WB),
    ])
}

fn digits_names() -> Vec<String> {
    (0..10).map(|i| i.to_string()).collect()
}

/// A graph model on the `.npy` tensors in `dir`.
fn npy_model(g: LayerGraph, dir: &Path) -> GraphModel {
    let mut t = HashMap::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        let name = p
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .trim_end_matches(".npy")
            .to_string();
        t.insert(name, Tensor::read_npy(&p).unwrap());
    }
    GraphModel::new(g, t, [1, 28, 28], digits_names()).unwrap()
}

const SHIPPED: [&str; 3] = [
    "models/mnist_cnn.safetensors",
    "models/fashion_mnist_cnn.safetensors",
    "models/mnist_lenet_judge.safetensors",
];

/// Runs the Zennit reference once for all models (inputs and targets written here) and
/// returns the directory of each job: `chain`, `skip` and the shipped models.
fn reference() -> &'static HashMap<String, PathBuf> {
    static REF: OnceLock<HashMap<String, PathBuf>> = OnceLock::new();
    REF.get_or_init(|| {
        let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join("lrp-zennit");
        let _ = std::fs::remove_dir_all(&root);
        let mut jobs = HashMap::new();
        let mut args: Vec<String> = EPSILONS
            .iter()
            .flat_map(|e| ["--epsilon".into(), e.to_string()])
            .collect();
        let kinds: Vec<(String, String, Tensor)> = [("chain", 1u64), ("skip", 2), ("norm", 3)]
            .iter()
            .map(|(k, seed)| (k.to_string(), k.to_string(), uniform(&[N, 1, 28, 28], *seed)))
            .chain(SHIPPED.iter().map(|p| {
                let name = Path::new(p).file_stem().unwrap().to_str().unwrap().to_string();
                (
                    name,
                    repo().join(p).display().to_string(),
                    mnist_digits(N as usize),
                )
            }))
            .collect();
        for (name, kind, x) in kinds {
            let dir = root.join(&name);
            std::fs::create_dir_all(&dir).unwrap();
            x.write_npy(dir.join("x.npy")).unwrap();
            Tensor::from_slice(&targets())
                .write_npy(dir.join("targets.npy"))
                .unwrap();
            args.push(format!("{}:{kind}", dir.display()));
            jobs.insert(name, dir);
        }
        let out = std::process::Command::new(python())
            .arg(repo().join("tests/reference/zennit_lrp.py"))
            .args(&args)
            .output()
            .expect("run the project's python");
        assert!(
            out.status.success(),
            "zennit reference failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        jobs
    })
}

/// gradviz's relevance equals Zennit's for every composite and ε, to 1e-5 relative.
fn assert_matches_zennit(model: &dyn Classifier, dir: &Path) {
    let x = Tensor::read_npy(dir.join("x.npy")).unwrap();
    let logits = Tensor::read_npy(dir.join("logits.npy")).unwrap();
    let ours = model.logits(&x).unwrap();
    assert!(
        rel_err(&ours, &logits) < 1e-5,
        "the graph's logits differ from PyTorch's"
    );
    for name in COMPOSITE_NAMES {
        for (i, eps) in EPSILONS.iter().enumerate() {
            let want = Tensor::read_npy(dir.join(format!("{name}.{i}.npy"))).unwrap();
            assert!(want.abs().max().double_value(&[]) > 1e-6, "zennit's map is empty");
            let lrp = Lrp::new(Composite::named(name, *eps).unwrap());
            let got = lrp.attribute(model, &x, &Target::Classes(targets())).unwrap();
            let e = rel_err(&got, &want);
            eprintln!(
                "{}: {name} ε={eps}: max |gradviz − zennit| / max |zennit| = {e:.2e}",
                dir.display()
            );
            assert_eq!(got.size(), x.size());
            assert!(
                e < 1e-5,
                "{}: {name} ε={eps} differs from zennit by {e:.2e}",
                dir.display()
            );
        }
    }
}

#[test]
fn equals_zennit_on_a_conv_pool_batchnorm_linear_chain() {
    let dir = &reference()["chain"];
    assert_matches_zennit(&npy_model(chain_graph(), &dir.join("weights")), dir);
}

#[test]
fn equals_zennit_on_a_model_with_skip_connections() {
    let dir = &reference()["skip"];
    assert_matches_zennit(&npy_model(skip_graph(), &dir.join("weights")), dir);
}

/// Relevance passes through input normalization; zᴮ's box `[0, 1]` is normalized with it.
#[test]
fn equals_zennit_with_input_normalization_in_the_model() {
    let dir = &reference()["norm"];
    assert_matches_zennit(&npy_model(norm_graph(), &dir.join("weights")), dir);
}

#[test]
fn equals_zennit_on_the_shipped_models() {
    for p in SHIPPED {
        let name = Path::new(p).file_stem().unwrap().to_str().unwrap();
        let m = BuiltinModel::load(repo().join(p)).unwrap();
        assert_matches_zennit(&m, &reference()[name]);
    }
}

// ---------------------------------------------------------------------------------------
// conservation and closed forms

fn shipped_mnist() -> BuiltinModel {
    BuiltinModel::load(repo().join(SHIPPED[0])).unwrap()
}

/// The shipped MNIST CNN with all biases set to zero.
fn mnist_without_biases() -> GraphModel {
    let m = shipped_mnist();
    let t = m
        .named_tensors()
        .into_iter()
        .map(|(k, v)| {
            let v = if k.ends_with(".bias") {
                v.zeros_like()
            } else {
                v.copy()
            };
            (k, v)
        })
        .collect();
    GraphModel::new(m.graph().unwrap().clone(), t, [1, 28, 28], digits_names()).unwrap()
}

/// `(Σ_i R_i, z_c)` per image.
fn sums_and_logits(model: &dyn Classifier, lrp: &Lrp, x: &Tensor, t: &[i64]) -> (Vec<f64>, Vec<f64>) {
    let r = lrp.attribute(model, x, &Target::Classes(t.to_vec())).unwrap();
    let sums = Vec::<f64>::try_from(r.flatten(1, -1).sum_dim_intlist(1, false, Kind::Double)).unwrap();
    let idx = Tensor::from_slice(t).unsqueeze(1);
    let z = model.logits(x).unwrap().gather(1, &idx, false).squeeze_dim(1);
    (sums, Vec::<f64>::try_from(z.to_kind(Kind::Double)).unwrap())
}

#[test]
fn relevance_is_conserved_where_the_rules_guarantee_it() {
    let m = mnist_without_biases();
    let x = mnist_digits(N as usize);
    let t = targets();
    // With zero biases, ε ≈ 0, z⁺ on inputs ≥ 0 (pixels, ReLU outputs), flat and zᴮ:
    // Σ_i R_i = z_c up to the stabilizer.
    let lrp0 = Composite::new("LRP-ε").for_type(LayerType::ConvOrDense, Rule::Epsilon(1e-6));
    for c in [
        lrp0,
        Composite::epsilon_plus(1e-6),
        Composite::epsilon_plus_flat(1e-6),
        Composite::epsilon_gamma_box(1e-6),
    ] {
        let (sums, z) = sums_and_logits(&m, &Lrp::new(c.clone()), &x, &t);
        for (s, z) in sums.iter().zip(&z) {
            assert!(
                (s - z).abs() <= 1e-4 * z.abs().max(1.0),
                "{}: Σ R = {s}, z_c = {z}",
                c.name
            );
        }
    }
    // z⁺ everywhere with the real biases: relevance of a positive logit stays ≥ 0 and the
    // positive biases only absorb, 0 ≤ Σ R ≤ z_c.
    let plus = Lrp::new(Composite::new("z⁺").for_type(LayerType::ConvOrDense, Rule::ZPlus));
    let real = shipped_mnist();
    let predicted = Target::Predicted.resolve(&real, &x).unwrap();
    let r = plus
        .attribute(&real, &x, &Target::Classes(predicted.clone()))
        .unwrap();
    assert!(
        r.min().double_value(&[]) >= 0.0,
        "z⁺ relevance of a positive logit is ≥ 0"
    );
    let (sums, z) = sums_and_logits(&real, &plus, &x, &predicted);
    for (s, z) in sums.iter().zip(&z) {
        assert!(
            *z > 0.0 && *s >= 0.0 && *s <= z * (1.0 + 1e-5),
            "Σ R = {s}, z_c = {z}"
        );
    }
}

/// `z = W flatten(x) + b` as a graph model.
fn linear_model(w: &Tensor, b: &Tensor) -> GraphModel {
    let mut c = ChainBuilder::new();
    c.push("flatten", "flatten", Op::Flatten { start: 1, end: -1 }, &[])
        .push("fc", "fc", Op::Linear, &gradviz::graph::weight_bias("fc"));
    let t = [("fc.weight", w), ("fc.bias", b)]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.shallow_clone()))
        .collect();
    GraphModel::new(c.build().unwrap(), t, [1, 28, 28], digits_names()).unwrap()
}

fn stab(z: &Tensor, eps: f64) -> Tensor {
    z + (z.ge(0.0).to_kind(Kind::Float) * 2.0 - 1.0) * eps
}

#[test]
fn rules_on_a_linear_model_match_their_closed_forms() {
    let (k, d) = (10, 784);
    let w = (uniform(&[k, d], 3) - 0.5) * 0.2;
    let b = (uniform(&[k], 4) - 0.5) * 2.0;
    let m = linear_model(&w, &b);
    let x = uniform(&[4, 1, 28, 28], 5);
    let xf = x.view([4, d]);
    let t: Vec<i64> = vec![0, 3, 7, 9];
    let wc = w.index_select(0, &Tensor::from_slice(&t)); // [4, d]: each image's class row
    let bc = b.index_select(0, &Tensor::from_slice(&t)).unsqueeze(1);
    let zc = (&xf * &wc).sum_dim_intlist(1, true, Kind::Float) + &bc; // [4, 1]
    let (wp, wn) = (wc.clamp_min(0.0), wc.clamp_max(0.0));
    let rowsum = |a: &Tensor| a.sum_dim_intlist(1, true, Kind::Float);
    let s = 1e-6; // the stabilizer
    let run = |rule: Rule| {
        let c = Composite::new(&rule.name()).for_type(LayerType::Dense, rule);
        Lrp::new(c)
            .attribute(&m, &x, &Target::Classes(t.clone()))
            .unwrap()
            .view([4, d])
    };
    let check = |rule: Rule, want: Tensor| {
        let e = rel_err(&run(rule), &want);
        assert!(e < 1e-5, "{rule}: off its closed form by {e:.2e}");
    };
    // ε: R_i = x_i w_ci z_c / s_ε(z_c), so Σ R = (z_c − b_c) z_c / s_ε(z_c): not z_c.
    let eps = 0.5;
    let want = &xf * &wc * (&zc / stab(&zc, eps));
    let sums = rowsum(&want);
    assert!(rel_err(&sums, &((&zc - &bc) * &zc / stab(&zc, eps))) < 1e-5);
    check(Rule::Epsilon(eps), want);
    // z⁺ (x ≥ 0): R_i = x_i w⁺_ci z_c / (Σ x w⁺ + b⁺ + s).
    let zp = rowsum(&(&xf * &wp)) + bc.clamp_min(0.0);
    check(Rule::ZPlus, &xf * &wp * (&zc / (&zp + s)));
    // α2β1 (x ≥ 0): 2 x w⁺ z_c / s(z⁺) − x w⁻ z_c / s(z⁻), z⁻ = Σ x w⁻ + b⁻.
    let zn = rowsum(&(&xf * &wn)) + bc.clamp_max(0.0);
    let want = (&xf * &wp * 2.0 / (&zp + s) - &xf * &wn / (&zn - s)) * &zc;
    check(Rule::ALPHA2_BETA1, want);
    // γ (x ≥ 0): where z_c > 0, x (w + γw⁺) z_c / s(Σ x (w + γw⁺) + b + γb⁺); where z_c < 0, w⁻.
    let g = 0.25;
    let up = &wc + &wp * g;
    let down = &wc + &wn * g;
    let z_up = rowsum(&(&xf * &up)) + &bc + bc.clamp_min(0.0) * g;
    let z_down = rowsum(&(&xf * &down)) + &bc + bc.clamp_max(0.0) * g;
    let pos = zc.gt(0.0).to_kind(Kind::Float);
    let want = (&xf * &up / stab(&z_up, s) * &pos + &xf * &down / stab(&z_down, s) * (1.0 - &pos)) * &zc;
    check(Rule::Gamma(g), want);
    // flat: every pixel gets z_c / (d + s).
    check(Rule::Flat, zc.expand([4, d], false) / (d as f64 + s));
    // zᴮ on [0, 1]: (x w − 0 · w⁺ − 1 · w⁻) z_c / s(Σ x w − Σ w⁻): the biases cancel, and
    // Σ R = z_c up to the stabilizer.
    let zb = rowsum(&(&xf * &wc)) - rowsum(&wn);
    let want = (&xf * &wc - &wn) * (&zc / stab(&zb, s));
    assert!(rel_err(&rowsum(&want), &zc) < 1e-4);
    check(Rule::ZBOX_UNIT, want);
    // α2β1 is conserved only where both z⁺ and z⁻ are nonzero: with all weights ≥ 0 and no
    // bias, z⁻ = 0 and Σ R = α z_c = 2 z_c.
    let m2 = linear_model(&w.abs(), &b.zeros_like());
    let (sums, z) = sums_and_logits(
        &m2,
        &Lrp::new(Composite::new("α2β1").for_type(LayerType::Dense, Rule::ALPHA2_BETA1)),
        &x,
        &t,
    );
    for (s, z) in sums.iter().zip(&z) {
        assert!(
            (s - 2.0 * z).abs() < 1e-4 * z.abs(),
            "Σ R = {s}, 2 z_c = {}",
            2.0 * z
        );
    }
}

// ---------------------------------------------------------------------------------------
// the Attribution contract

#[test]
fn batched_signed_input_shaped_and_weights_untouched() {
    let dir = &reference()["chain"];
    let chain = npy_model(chain_graph(), &dir.join("weights"));
    let mnist = shipped_mnist();
    for m in [&chain as &dyn Classifier, &mnist] {
        let before: Vec<(String, Tensor)> = m
            .named_tensors()
            .into_iter()
            .map(|(k, v)| (k, v.copy()))
            .collect();
        let x = mnist_digits(5);
        let lrp = Lrp::new(Composite::epsilon_alpha2_beta1(1e-6));
        let all = lrp.attribute(m, &x, &Target::Predicted).unwrap();
        assert_eq!(all.size(), x.size());
        assert_eq!(all.kind(), Kind::Float);
        assert!(
            all.min().double_value(&[]) < 0.0 && all.max().double_value(&[]) > 0.0,
            "signed"
        );
        let chunked = Lrp {
            batch: 2,
            ..lrp.clone()
        }
        .attribute(m, &x, &Target::Predicted)
        .unwrap();
        assert!(rel_err(&chunked, &all) < 1e-6);
        for i in 0..5 {
            let one = lrp.attribute(m, &x.narrow(0, i, 1), &Target::Predicted).unwrap();
            assert!(rel_err(&one, &all.narrow(0, i, 1)) < 1e-6);
        }
        let after = m.named_tensors();
        assert_eq!(after.len(), before.len());
        for ((k, a), (_, b)) in after.iter().zip(&before) {
            assert!(a.equal(b), "tensor {k} changed");
            assert!(!a.grad().defined(), "tensor {k} received a gradient");
        }
    }
}

/// LRP plugs into the evidence every other method gets: deletion curves and the cascading
/// randomization check (which re-initializes layers of a copy, so LRP must read the copy's
/// weights).
#[test]
fn fits_the_deletion_curve_and_the_randomization_check() {
    use gradviz::metrics::{cascading_randomization, deletion_curve, random_ranking, PerturbConfig};
    use gradviz::saliency::{reduce, Reduce};
    let m = shipped_mnist();
    let x = mnist_digits(16);
    let t = Target::Predicted.resolve(&m, &x).unwrap();
    let lrp = Lrp::default();
    let maps = reduce(
        &lrp.attribute(&m, &x, &Target::Classes(t.clone())).unwrap(),
        Reduce::Sum,
    )
    .unwrap();
    let cfg = PerturbConfig::default();
    let by_lrp = deletion_curve(&m, &x, &t, &maps, &cfg).unwrap();
    let by_chance = deletion_curve(&m, &x, &t, &random_ranking(16, 28, 28, 0), &cfg).unwrap();
    eprintln!("deletion AUC: LRP {:.3}, random {:.3}", by_lrp.auc, by_chance.auc);
    assert!(
        by_lrp.auc < by_chance.auc,
        "deleting LRP's most relevant pixels first must hurt more"
    );
    let steps = cascading_randomization(
        &m,
        &lrp,
        &x.narrow(0, 0, 4),
        &Target::Classes(t[..4].to_vec()),
        Reduce::Sum,
        0,
    )
    .unwrap();
    assert_eq!(steps.len(), 1 + 6, "trained + one step per layer with weights");
    let last = steps.last().unwrap();
    assert!(!last.maps.equal(&steps[0].maps) && last.spearman_signed < 0.99);
}

#[test]
fn composites_by_layer_name_and_rule_table() {
    let m = shipped_mnist();
    let x = mnist_digits(3);
    let run = |c: Composite| Lrp::new(c).attribute(&m, &x, &Target::Predicted).unwrap();
    // "conv1" is a layer (conv node `conv1/conv`, ReLU node `conv1`): the rule goes to its conv.
    let by_name = run(Composite::epsilon_plus(1e-6).for_layer("conv1", Rule::Flat));
    assert!(by_name.equal(&run(Composite::epsilon_plus_flat(1e-6))));
    let other = run(Composite::epsilon_plus(1e-6).for_layer("fc1", Rule::ZPlus));
    assert!(rel_err(&other, &run(Composite::epsilon_plus(1e-6))) > 1e-3);
    let table = Lrp::default().describe(&m).unwrap();
    for line in [
        "conv1/conv (conv2d, layer conv1) → flat",
        "conv2/conv (conv2d, layer conv2) → z⁺",
        "conv1 (relu, layer conv1) → pass",
        "pool1 (max_pool2d, layer pool1) → gradient",
        "fc1/linear (linear, layer fc1) → ε=0.000001",
    ] {
        assert!(table.contains(line), "{line} not in\n{table}");
    }
    assert!(Lrp::default().name().contains("epsilon-plus-flat"));
    // BatchNorms are merged into the layer before them; the merged model computes the same.
    let chain = npy_model(chain_graph(), &reference()["chain"].join("weights"));
    let table = Lrp::default().describe(&chain).unwrap();
    assert!(table.contains("bn1 (identity, layer bn1) → gradient"), "{table}");
    // A sum splits relevance in proportion (norm); a projection shortcut gets the conv rule.
    let skip = npy_model(skip_graph(), &reference()["skip"].join("weights"));
    let table = Lrp::default().describe(&skip).unwrap();
    assert!(
        table.contains("block1.sum (add, layer block1.sum) → norm"),
        "{table}"
    );
    assert!(
        table.contains("block2.shortcut (conv2d, layer block2.shortcut) → z⁺"),
        "{table}"
    );
    assert!(table.contains("stem (conv2d, layer stem) → flat"), "{table}");
}

// ---------------------------------------------------------------------------------------
// errors

/// The shipped model without its graph, as a TorchScript file would be.
struct NoGraph(BuiltinModel);

impl Classifier for NoGraph {
    fn logits(&self, x: &Tensor) -> Result<Tensor> {
        self.0.logits(x)
    }
    fn forward_with(&self, x: &Tensor, layers: &[&str]) -> Result<(Tensor, Vec<Tensor>)> {
        self.0.forward_with(x, layers)
    }
    fn layer_names(&self) -> Vec<String> {
        self.0.layer_names()
    }
    fn input_shape(&self) -> [i64; 3] {
        self.0.input_shape()
    }
    fn class_names(&self) -> &[String] {
        self.0.class_names()
    }
    fn device(&self) -> Device {
        Device::Cpu
    }
    fn parameters(&self) -> Vec<Tensor> {
        self.0.parameters()
    }
    fn describe(&self) -> String {
        "a model without a graph".into()
    }
}

/// flatten → fc1 → `act` → fc2.
fn model_with_activation(act: Op) -> GraphModel {
    let mut c = ChainBuilder::new();
    c.push("flatten", "flatten", Op::Flatten { start: 1, end: -1 }, &[])
        .push("fc1", "fc1", Op::Linear, &gradviz::graph::weight_bias("fc1"))
        .push("act", "fc1", act, &[])
        .push("fc2", "fc2", Op::Linear, &gradviz::graph::weight_bias("fc2"));
    let t = [
        ("fc1.weight", uniform(&[16, 784], 1) - 0.5),
        ("fc1.bias", uniform(&[16], 2)),
        ("fc2.weight", uniform(&[10, 16], 3) - 0.5),
        ("fc2.bias", uniform(&[10], 4)),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    GraphModel::new(c.build().unwrap(), t, [1, 28, 28], digits_names()).unwrap()
}

#[test]
fn bad_input_is_an_error_that_names_the_problem() {
    let m = shipped_mnist();
    let x = mnist_digits(2);
    let lrp = Lrp::default();
    let e = err_of(lrp.attribute(&NoGraph(shipped_mnist()), &x, &Target::Predicted));
    assert!(
        e.contains("layer graph") && e.contains("a model without a graph"),
        "{e}"
    );
    let e = err_of(lrp.attribute(&model_with_activation(Op::Exp), &x, &Target::Predicted));
    assert!(e.contains("node 'act' (exp, layer 'fc1')"), "{e}");
    let e = err_of(lrp.attribute(
        &model_with_activation(Op::Softmax { dim: -1 }),
        &x,
        &Target::Predicted,
    ));
    assert!(e.contains("node 'act' (softmax") && e.contains("logits"), "{e}");
    // other activations pass, as in Zennit
    assert!(lrp
        .attribute(&model_with_activation(Op::Tanh), &x, &Target::Class(1))
        .is_ok());
    let e = err_of(lrp.attribute(&m, &x, &Target::Class(10)));
    assert!(e.contains("target class 10") && e.contains("10 classes"), "{e}");
    let nan = x.copy();
    let _ = nan.get(1).get(0).get(5).fill_(f64::NAN);
    let e = err_of(lrp.attribute(&m, &nan, &Target::Predicted));
    assert!(e.contains("NaN"), "{e}");
    let e = err_of(lrp.attribute(
        &m,
        &Tensor::zeros([2, 3, 28, 28], (Kind::Float, Device::Cpu)),
        &Target::Class(0),
    ));
    assert!(e.contains("[2, 3, 28, 28]"), "{e}");
    let e = err_of(
        Lrp {
            batch: 0,
            ..Lrp::default()
        }
        .attribute(&m, &x, &Target::Class(0)),
    );
    assert!(e.contains("batch"), "{e}");

    let with = |c: Composite| err_of(Lrp::new(c).attribute(&m, &x, &Target::Class(0)));
    let e = with(Composite::epsilon_plus(1e-6).for_type(
        LayerType::Conv,
        Rule::AlphaBeta {
            alpha: 1.0,
            beta: 1.0,
        },
    ));
    assert!(e.contains("α − β = 1"), "{e}");
    let e = with(Composite::epsilon_plus(-1.0));
    assert!(e.contains("ε must be finite and ≥ 0"), "{e}");
    let e = with(Composite::epsilon_plus(1e-6).for_layer("conv9", Rule::ZPlus));
    assert!(e.contains("'conv9'") && e.contains("conv4"), "{e}");
    let e = with(Composite::epsilon_plus(1e-6).for_layer("pool1", Rule::ZPlus));
    assert!(
        e.contains("only applies to conv2d and linear") && e.contains("node 'pool1' (max_pool2d"),
        "{e}"
    );
    let e = with(Composite::epsilon_plus(1e-6).for_layer("conv2", Rule::ZBOX_UNIT));
    assert!(
        e.contains("node 'conv2/conv'") && e.contains("first layer"),
        "{e}"
    );
    let e = with(Composite::new("bare").for_type(LayerType::Dense, Rule::Epsilon(0.0)));
    assert!(
        e.contains("no rule for node 'conv1/conv' (conv2d, layer 'conv1')"),
        "{e}"
    );
    let e = with(Composite::epsilon_plus(1e-6).with_stabilizer(0.0));
    assert!(e.contains("stabilizer"), "{e}");
    let skip = npy_model(skip_graph(), &reference()["skip"].join("weights"));
    let e = err_of(
        Lrp::new(Composite::epsilon_plus(1e-6).for_type(LayerType::Sum, Rule::Pass)).attribute(
            &skip,
            &x,
            &Target::Class(0),
        ),
    );
    assert!(e.contains("one input") && e.contains("block1.sum"), "{e}");
    let e = err_of(Composite::named("epsilon", 1e-6));
    assert!(
        e.contains("unknown LRP composite 'epsilon'") && e.contains("epsilon-plus-flat"),
        "{e}"
    );
}

// ---------------------------------------------------------------------------------------
// CLI

#[test]
fn cli_saves_the_relevance_like_every_other_method() {
    let dir = tempfile::tempdir().unwrap();
    let (npy, png) = (dir.path().join("r.npy"), dir.path().join("r.png"));
    let run = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_gradviz"))
            .args(["saliency", "--model", repo().join(SHIPPED[0]).to_str().unwrap()])
            .args([
                "--dataset",
                "mnist",
                "--indices",
                "0..4",
                "--targets",
                "label",
                "--method",
                "lrp",
            ])
            .args(args)
            .output()
            .unwrap()
    };
    let out = run(&[
        "--composite",
        "epsilon-alpha2-beta1",
        "--epsilon",
        "0.25",
        "--save-npy",
        npy.to_str().unwrap(),
        "--plot",
        png.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let test = gradviz::data::bundled_mnist().unwrap().test.head(4);
    let want = Lrp::new(Composite::epsilon_alpha2_beta1(0.25))
        .attribute(&shipped_mnist(), &test.images, &Target::labels(&test.labels))
        .unwrap();
    let saved = Tensor::read_npy(&npy).unwrap();
    assert_eq!(saved.size(), [4, 1, 28, 28]);
    assert!(rel_err(&saved, &want) < 1e-6);
    assert!(image::open(&png).is_ok());
    assert!(String::from_utf8_lossy(&out.stderr).contains("LRP (epsilon-alpha2-beta1, ε=0.25)"));
    // errors are messages, not panics
    let out = run(&["--score", "softmax"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("logit") && !err.contains("panicked"),
        "{err}"
    );
    let out = run(&["--composite", "zplus"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("unknown LRP composite 'zplus'"),
        "{err}"
    );
}
