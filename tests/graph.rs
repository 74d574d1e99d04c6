//! The layer graph of a model runs to the same logits and layer outputs as the model.

use gradviz::data::DatasetName;
use gradviz::graph::{LayerGraph, Op};
use gradviz::model::{Arch, BuiltinModel, Classifier};
use std::collections::HashMap;
use tch::{Kind, Tensor};

fn tensors(m: &dyn Classifier) -> HashMap<String, Tensor> {
    m.named_tensors().into_iter().collect()
}

#[test]
fn builtin_graphs_match_the_forward_pass_layer_by_layer() {
    for (arch, data) in [
        (Arch::MnistCnn, DatasetName::Mnist),
        (Arch::Lenet, DatasetName::Mnist),
        (Arch::Cifar10Cnn, DatasetName::Cifar10),
    ] {
        let m = BuiltinModel::new(arch, data, 5).unwrap();
        let g = m.graph().expect("built-in models have a graph");
        assert_eq!(g.layers(), m.layer_names(), "{arch}");
        let [c, h, w] = m.input_shape();
        let x = Tensor::rand([3, c, h, w], (Kind::Float, tch::Device::Cpu));
        let names = m.layer_names();
        let refs: Vec<&str> = names.iter().map(|s| s.as_str()).collect();
        let (logits, acts) = m.forward_with(&x, &refs).unwrap();
        let mut seen = HashMap::new();
        let out = g
            .forward(&x, &tensors(&m), |n, y| {
                seen.insert(n.name.clone(), y.shallow_clone());
            })
            .unwrap();
        assert!(out.allclose(&logits, 1e-5, 1e-6, false), "{arch}: logits differ");
        for (l, a) in names.iter().zip(&acts) {
            let node = g.layer_output(l).unwrap();
            assert!(
                seen[&node.name].allclose(a, 1e-5, 1e-6, false),
                "{arch}: layer {l} differs"
            );
        }
    }
}

#[test]
fn graph_json_round_trips_and_bad_graphs_name_the_problem() {
    let m = BuiltinModel::new(Arch::MnistCnn, DatasetName::Mnist, 0).unwrap();
    let g = m.graph().unwrap();
    let back = LayerGraph::from_json(&g.to_json()).unwrap();
    assert_eq!(&back, g);
    assert!(g.to_json().contains("\"type\": \"conv2d\""));

    let mut bad = g.clone();
    bad.nodes[1].inputs = vec!["nowhere".into()];
    let e = format!("{:#}", bad.validate().unwrap_err());
    assert!(e.contains("reads 'nowhere'"), "{e}");

    let mut bad = g.clone();
    bad.nodes[0].params.clear();
    let e = format!("{:#}", bad.validate().unwrap_err());
    assert!(e.contains("names no 'weight' tensor"), "{e}");

    let e = format!("{:#}", LayerGraph::from_json("{\"format\": 1}").unwrap_err());
    assert!(e.contains("not a valid gradviz layer graph"), "{e}");

    let e = format!("{:#}", g.layer_output("conv9").unwrap_err());
    assert!(e.contains("unknown layer 'conv9'") && e.contains("conv4"), "{e}");
    assert_eq!(g.layer_tensors("conv2"), vec!["conv2.bias", "conv2.weight"]);
    assert_eq!(
        Op::MaxPool2d {
            kernel: [2, 2],
            stride: [2, 2],
            padding: [0, 0],
            dilation: [1, 1],
            ceil_mode: false
        }
        .type_name(),
        "max_pool2d"
    );
}

#[test]
fn a_missing_tensor_is_an_error_not_a_panic() {
    let m = BuiltinModel::new(Arch::Lenet, DatasetName::Mnist, 0).unwrap();
    let mut t = tensors(&m);
    t.remove("conv2.weight");
    let x = Tensor::rand([1, 1, 28, 28], (Kind::Float, tch::Device::Cpu));
    let e = format!("{:#}", m.graph().unwrap().forward(&x, &t, |_, _| {}).unwrap_err());
    assert!(e.contains("conv2.weight"), "{e}");
}

#[test]
fn a_graph_model_with_a_skip_connection_and_batch_norm_runs() {
    use gradviz::graph::{GraphModel, Node, GRAPH_FORMAT, INPUT};
    use std::collections::BTreeMap;
    let node = |name: &str, op: Op, inputs: &[&str], params: &[(&str, &str)]| Node {
        name: name.into(),
        layer: name.split('/').next().unwrap().into(),
        op,
        inputs: inputs.iter().map(|s| s.to_string()).collect(),
        params: params
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect::<BTreeMap<_, _>>(),
    };
    let conv = || Op::Conv2d {
        stride: [1, 1],
        padding: [1, 1],
        dilation: [1, 1],
        groups: 1,
    };
    let g = LayerGraph {
        format: GRAPH_FORMAT,
        nodes: vec![
            node("c1", conv(), &[INPUT], &[("weight", "c1.w")]),
            node(
                "bn/bn",
                Op::BatchNorm { eps: 1e-5 },
                &["c1"],
                &[("running_mean", "bn.m"), ("running_var", "bn.v")],
            ),
            node("bn", Op::Relu, &["bn/bn"], &[]),
            node("c2", conv(), &["bn"], &[("weight", "c2.w"), ("bias", "c2.b")]),
            node("add", Op::Add, &["c2", "bn"], &[]),
            node("gap", Op::GlobalAvgPool, &["add"], &[]),
            node("fc", Op::Linear, &["gap"], &[("weight", "fc.w")]),
        ],
        output: "fc".into(),
    };
    let opts = (Kind::Float, tch::Device::Cpu);
    tch::manual_seed(0);
    let t: HashMap<String, Tensor> = [
        ("c1.w", Tensor::randn([4, 1, 3, 3], opts)),
        ("bn.m", Tensor::randn([4], opts)),
        ("bn.v", Tensor::rand([4], opts) + 0.5),
        ("c2.w", Tensor::randn([4, 4, 3, 3], opts)),
        ("c2.b", Tensor::randn([4], opts)),
        ("fc.w", Tensor::randn([3, 4], opts)),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let x = Tensor::rand([2, 1, 8, 8], opts);
    // The same computation written out by hand.
    let h = x.conv2d(&t["c1.w"], None::<Tensor>, [1, 1], [1, 1], [1, 1], 1);
    let h = ((h - t["bn.m"].view([1, 4, 1, 1])) / (t["bn.v"].view([1, 4, 1, 1]) + 1e-5).sqrt()).relu();
    let y = h.conv2d(&t["c2.w"], Some(&t["c2.b"]), [1, 1], [1, 1], [1, 1], 1) + &h;
    let want = y
        .mean_dim([2i64, 3].as_slice(), false, Kind::Float)
        .linear(&t["fc.w"], None::<Tensor>);

    let m = GraphModel::new(g, t, [1, 8, 8], vec!["a".into(), "b".into(), "c".into()]).unwrap();
    assert_eq!(m.layer_names(), vec!["c1", "bn", "c2", "add", "gap", "fc"]);
    let (logits, acts) = m.forward_with(&x, &["bn", "add"]).unwrap();
    assert!(logits.allclose(&want, 1e-4, 1e-5, false));
    assert_eq!(acts[0].size(), vec![2, 4, 8, 8]);
    assert!(
        acts[0].min().double_value(&[]) >= 0.0,
        "the layer 'bn' ends in its ReLU"
    );
    let e = format!("{:#}", m.forward_with(&x, &["nope"]).unwrap_err());
    assert!(e.contains("unknown layer 'nope'"), "{e}");
}
