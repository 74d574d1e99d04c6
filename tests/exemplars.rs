//! Dataset exemplars: receptive fields on models of known geometry (checked against the
//! support of the gradient), the batched search against a brute-force loop, crops at the
//! border, the MIS-style verdict, errors and the command line.

use gradviz::data::{Dataset, DatasetName};
use gradviz::exemplars::{
    exemplars, exemplars_of, mis_fraction, mis_verdict, mis_verdicts, Crop, End, Exemplar, ExemplarSearch,
    Pool, ReceptiveField, Span, Unit, UnitExemplars,
};
use gradviz::graph::{GraphModel, LayerGraph, Node, Op, GRAPH_FORMAT, INPUT};
use gradviz::model::{Arch, BuiltinModel, Classifier};
use gradviz::naturalness::FeatureSpace;
use std::collections::{BTreeMap, HashMap};
use tch::{Device, Kind, Tensor};

fn err_of<T>(r: anyhow::Result<T>) -> String {
    match r {
        Ok(_) => panic!("expected an error"),
        Err(e) => format!("{e:#}"),
    }
}

fn span(size: i64, stride: i64, offset: i64) -> Span {
    Span { size, stride, offset }
}

fn local(size: i64, stride: i64, offset: i64) -> ReceptiveField {
    ReceptiveField::Local {
        rows: span(size, stride, offset),
        cols: span(size, stride, offset),
    }
}

fn mnist_head(n: usize) -> Dataset {
    gradviz::data::bundled_mnist().unwrap().test.head(n)
}

#[test]
fn builtin_receptive_fields_follow_kernels_pools_and_padding() {
    let m = BuiltinModel::new(Arch::MnistCnn, DatasetName::Mnist, 0).unwrap();
    let rf = |l: &str| ReceptiveField::of(&m, l).unwrap();
    // 3×3 "same" convs and 2×2 pools: 3, 5, 6 (stride 2), 10, 14, 16 (stride 4).
    assert_eq!(rf("conv1"), local(3, 1, -1));
    assert_eq!(rf("conv2"), local(5, 1, -2));
    assert_eq!(rf("pool1"), local(6, 2, -2));
    assert_eq!(rf("conv3"), local(10, 2, -4));
    assert_eq!(rf("conv4"), local(14, 2, -6));
    assert_eq!(rf("pool2"), local(16, 4, -6));
    assert_eq!(rf("fc1"), ReceptiveField::Global);
    let lenet = BuiltinModel::new(Arch::Lenet, DatasetName::Mnist, 0).unwrap();
    assert_eq!(ReceptiveField::of(&lenet, "conv2").unwrap(), local(14, 2, -6));
    assert_eq!(rf("conv4").to_string(), "14×14 pixels, stride 2×2");
    // Border units see zero padding: the crop is clipped to the image.
    let c = rf("conv4").crop(Some((0, 13)), 28, 28);
    assert_eq!(
        c,
        Crop {
            top: 0,
            left: 20,
            bottom: 8,
            right: 28
        }
    );
    assert_eq!(rf("fc1").crop(None, 28, 28).height(), 28);
    assert!(err_of(ReceptiveField::of(&m, "conv9")).contains("unknown layer 'conv9'"));
}

fn node(name: &str, op: Op, inputs: &[&str], params: &[(&str, &str)]) -> Node {
    Node {
        name: name.into(),
        layer: name.into(),
        op,
        inputs: inputs.iter().map(|s| s.to_string()).collect(),
        params: params
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect::<BTreeMap<_, _>>(),
    }
}

fn conv(stride: i64, padding: i64, dilation: i64) -> Op {
    Op::Conv2d {
        stride: [stride, stride],
        padding: [padding, padding],
        dilation: [dilation, dilation],
        groups: 1,
    }
}

/// 20×20 input; every weight positive, so every unit is active and the gradient of a unit
/// is non-zero exactly on the pixels it depends on.
///
/// - c1: 3×3, pad 1 → field 3, stride 1, offset −1
/// - p1: 2×2 average pool, stride 2 → 4, 2, −1
/// - c2: 3×3, dilation 2, pad 2 → 4 + 4·2 = 12, 2, −1 − 2·2 = −5
/// - pad: one zero column/row on the right and bottom → unchanged (11×11 maps)
/// - c3: 1×1, stride 2 → 12, 4, −5 (6×6 maps)
/// - skip: 5×5 on p1, stride 2, pad 3 → 4 + 4·2 = 12, 4, −1 − 3·2 = −7 (6×6 maps)
/// - add = c3 + skip → union [−7, 7): 14, 4, −7
/// - cat(add, c3) on channels → 14, 4, −7; then a global average pool and a linear layer.
fn known_geometry() -> GraphModel {
    let g = LayerGraph {
        format: GRAPH_FORMAT,
        nodes: vec![
            node(
                "c1",
                conv(1, 1, 1),
                &[INPUT],
                &[("weight", "c1.w"), ("bias", "c1.b")],
            ),
            node("r1", Op::Relu, &["c1"], &[]),
            node(
                "p1",
                Op::AvgPool2d {
                    kernel: [2, 2],
                    stride: [2, 2],
                    padding: [0, 0],
                    ceil_mode: false,
                    count_include_pad: true,
                },
                &["r1"],
                &[],
            ),
            node("c2", conv(1, 2, 2), &["p1"], &[("weight", "c2.w")]),
            node("pad", Op::Pad { pad: [0, 1, 0, 1] }, &["c2"], &[]),
            node("c3", conv(2, 0, 1), &["pad"], &[("weight", "c3.w")]),
            node("skip", conv(2, 3, 1), &["p1"], &[("weight", "skip.w")]),
            node("add", Op::Add, &["c3", "skip"], &[]),
            node("cat", Op::Concat { dim: 1 }, &["add", "c3"], &[]),
            node("gap", Op::GlobalAvgPool, &["cat"], &[]),
            node("fc", Op::Linear, &["gap"], &[("weight", "fc.w")]),
        ],
        output: "fc".into(),
    };
    let opts = (Kind::Float, Device::Cpu);
    let _rng = gradviz::model::seed_torch_rng(3);
    let pos = |s: &[i64]| Tensor::rand(s, opts) + 0.1;
    let t: HashMap<String, Tensor> = [
        ("c1.w", pos(&[2, 1, 3, 3])),
        ("c1.b", pos(&[2])),
        ("c2.w", pos(&[2, 2, 3, 3])),
        ("c3.w", pos(&[2, 2, 1, 1])),
        ("skip.w", pos(&[2, 2, 5, 5])),
        ("fc.w", pos(&[3, 4])),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    GraphModel::new(g, t, [1, 20, 20], vec!["a".into(), "b".into(), "c".into()]).unwrap()
}

#[test]
fn receptive_fields_of_a_graph_with_dilation_padding_and_skips() {
    let m = known_geometry();
    let rf = |l: &str| ReceptiveField::of(&m, l).unwrap();
    assert_eq!(rf("c1"), local(3, 1, -1));
    assert_eq!(rf("p1"), local(4, 2, -1));
    assert_eq!(rf("c2"), local(12, 2, -5));
    assert_eq!(rf("pad"), local(12, 2, -5));
    assert_eq!(rf("c3"), local(12, 4, -5));
    assert_eq!(rf("skip"), local(12, 4, -7));
    assert_eq!(rf("add"), local(14, 4, -7));
    assert_eq!(rf("cat"), local(14, 4, -7));
    assert_eq!(rf("gap"), ReceptiveField::Global);
    // Clipping at all four borders, and an interior unit.
    let f = rf("add");
    let at = |y, x| f.crop(Some((y, x)), 20, 20);
    assert_eq!(
        (at(0, 0).top, at(0, 0).bottom, at(0, 0).left, at(0, 0).right),
        (0, 7, 0, 7)
    );
    assert_eq!((at(5, 5).top, at(5, 5).bottom), (13, 20));
    assert_eq!(
        (at(2, 3).top, at(2, 3).bottom, at(2, 3).left, at(2, 3).right),
        (1, 15, 5, 19)
    );
}

/// The crop is the window the unit's inputs come from: the gradient is zero outside it,
/// and for every unit of the plain (undilated, unbranched) layers, border units included,
/// non-zero exactly on it. A dilated conv at the border can leave a gap, because its outer
/// taps read padded positions of the layer below whose windows would overlap the image; and
/// the field of an `add` is the bounding box of its branches' fields, which need not be
/// filled. There the crop is checked exactly (dilated) or as the bounding box of the
/// gradient (add) for the units whose window lies inside the image.
#[test]
fn receptive_field_crops_are_where_the_gradient_is() {
    let m = known_geometry();
    let x = (Tensor::rand([1, 1, 20, 20], (Kind::Float, Device::Cpu)) + 0.1).set_requires_grad(true);
    let layers = [
        ("c1", "plain"),
        ("p1", "plain"),
        ("skip", "plain"),
        ("c2", "dilated"),
        ("c3", "dilated"),
        ("add", "union"),
    ];
    for (layer, kind) in layers {
        let f = ReceptiveField::of(&m, layer).unwrap();
        let ReceptiveField::Local { rows, .. } = f else {
            panic!("{layer} is local")
        };
        let (_, acts) = m.forward_with(&x, &[layer]).unwrap();
        let s = acts[0].size();
        let mut exact = 0;
        for y in 0..s[2] {
            for xx in 0..s[3] {
                let unit = acts[0].get(0).get(1).get(y).get(xx);
                let g = Tensor::run_backward(&[unit], &[&x], true, false);
                let support = g[0].abs().gt(0.0).squeeze();
                let c = f.crop(Some((y, xx)), 20, 20);
                let want = Tensor::zeros([20, 20], (Kind::Bool, Device::Cpu));
                let _ = want
                    .narrow(0, c.top, c.height())
                    .narrow(1, c.left, c.width())
                    .fill_(1);
                let outside = support.logical_and(&want.logical_not()).any().int64_value(&[]);
                assert_eq!(outside, 0, "{layer} ({y}, {xx}): gradient outside the crop {c:?}");
                let inside = |i: i64| {
                    rows.offset + i * rows.stride >= 0 && rows.offset + i * rows.stride + rows.size <= 20
                };
                let checked = match kind {
                    "plain" => support.equal(&want),
                    _ if !(inside(y) && inside(xx)) => continue,
                    "dilated" => support.equal(&want),
                    _ => bounding_box(&support) == c,
                };
                assert!(
                    checked,
                    "{layer} ({y}, {xx}): gradient support differs from the crop {c:?}"
                );
                exact += 1;
            }
        }
        assert!(exact >= 4, "{layer}: only {exact} units checked exactly");
    }
}

/// The smallest rectangle holding every `true` of a `[H, W]` mask.
fn bounding_box(mask: &Tensor) -> Crop {
    let span = |dim: i64| {
        let any = Vec::<bool>::try_from(&mask.any_dim(dim, false)).unwrap();
        let first = any.iter().position(|&a| a).unwrap() as i64;
        let last = any.iter().rposition(|&a| a).unwrap() as i64;
        (first, last + 1)
    };
    let ((top, bottom), (left, right)) = (span(1), span(0));
    Crop {
        top,
        left,
        bottom,
        right,
    }
}

#[test]
fn strided_branches_that_disagree_and_spatial_concat_are_errors() {
    let opts = (Kind::Float, Device::Cpu);
    let g = LayerGraph {
        format: GRAPH_FORMAT,
        nodes: vec![
            node("a", conv(1, 1, 1), &[INPUT], &[("weight", "a.w")]),
            node("b", conv(2, 1, 1), &[INPUT], &[("weight", "b.w")]),
            node("both", Op::Concat { dim: 1 }, &["a", "b"], &[]),
            node("side", Op::Concat { dim: 3 }, &["a", "a"], &[]),
        ],
        output: "side".into(),
    };
    let t: HashMap<String, Tensor> = [
        ("a.w", Tensor::ones([1, 1, 3, 3], opts)),
        ("b.w", Tensor::ones([1, 1, 3, 3], opts)),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let shapes = t.iter().map(|(k, v)| (k.clone(), v.size())).collect();
    let e = err_of(ReceptiveField::of_graph(&g, &shapes, "both"));
    assert!(e.contains("'both'") && e.contains("different strides"), "{e}");
    let e = err_of(ReceptiveField::of_graph(&g, &shapes, "side"));
    assert!(e.contains("'side'") && e.contains("dimension 3"), "{e}");
}

/// Per image, one forward pass and the unit read off by hand.
fn brute_force(
    m: &dyn Classifier,
    layer: &str,
    unit: Unit,
    data: &Dataset,
) -> (Vec<f32>, Vec<Option<(i64, i64)>>) {
    let (mut vals, mut locs) = (vec![], vec![]);
    for i in 0..data.len() as i64 {
        let (_, acts) = tch::no_grad(|| m.forward_with(&data.images.narrow(0, i, 1), &[layer])).unwrap();
        let a = acts[0].get(0);
        if a.dim() == 1 {
            vals.push(a.double_value(&[unit.channel_index()]) as f32);
            locs.push(None);
            continue;
        }
        let map = a.get(unit.channel_index());
        let (h, w) = (map.size()[0], map.size()[1]);
        let mut best = (f32::MIN, (0, 0));
        let mut sum = 0.0f64;
        for y in 0..h {
            for x in 0..w {
                let v = map.double_value(&[y, x]) as f32;
                sum += v as f64;
                if v > best.0 {
                    best = (v, (y, x));
                }
            }
        }
        match unit {
            Unit::Channel { pool: Pool::Mean, .. } => vals.push((sum / (h * w) as f64) as f32),
            Unit::Channel { pool: Pool::Max, .. } => vals.push(best.0),
            Unit::Neuron { at, .. } => {
                let (y, x) = at.unwrap_or((h / 2, w / 2));
                vals.push(map.double_value(&[y, x]) as f32);
                locs.push(Some((y, x)));
                continue;
            }
        }
        locs.push(Some(best.1));
    }
    (vals, locs)
}

#[test]
fn batched_search_equals_a_brute_force_loop() {
    let mut m = BuiltinModel::new(Arch::MnistCnn, DatasetName::Mnist, 11).unwrap();
    m.freeze();
    let data = mnist_head(150);
    let k = 7;
    let cases: Vec<(&str, Vec<Unit>)> = vec![
        (
            "conv2",
            vec![
                Unit::channel(3),
                Unit::channel_max(3),
                Unit::neuron(5),
                Unit::neuron_at(1, 0, 27),
            ],
        ),
        ("pool2", vec![Unit::channel(10), Unit::channel_max(60)]),
        ("fc1", vec![Unit::channel(4), Unit::channel(100)]),
    ];
    for (layer, units) in cases {
        // Batches of 64: two full batches and a partial one.
        let search = ExemplarSearch {
            k,
            batch: 64,
            progress: false,
        };
        let found = search.run(&m, layer, &units, &data).unwrap();
        let field = ReceptiveField::of(&m, layer).unwrap();
        for (unit, ex) in units.iter().zip(&found) {
            let (vals, locs) = brute_force(&m, layer, *unit, &data);
            let mut order: Vec<usize> = (0..vals.len()).collect();
            order.sort_by(|&a, &b| vals[b].total_cmp(&vals[a]).then(a.cmp(&b)));
            let top: Vec<i64> = order[..k].iter().map(|&i| i as i64).collect();
            order.sort_by(|&a, &b| vals[a].total_cmp(&vals[b]).then(a.cmp(&b)));
            let bottom: Vec<i64> = order[..k].iter().map(|&i| i as i64).collect();
            // Values equal to the last bits can swap places between batched and single passes.
            let close = |got: &[Exemplar], want: &[i64]| {
                got.iter()
                    .zip(want)
                    .all(|(g, &w)| g.index == w || (g.activation - vals[w as usize] as f64).abs() < 1e-5)
            };
            assert!(
                close(&ex.top, &top),
                "{layer} {unit}: top {:?} vs {top:?}",
                ex.indices(End::Top)
            );
            assert!(
                close(&ex.bottom, &bottom),
                "{layer} {unit}: bottom {:?} vs {bottom:?}",
                ex.indices(End::Bottom)
            );
            for e in ex.top.iter().chain(&ex.bottom) {
                let i = e.index as usize;
                assert!(
                    (e.activation - vals[i] as f64).abs() < 1e-4,
                    "{layer} {unit}: activation of {i}"
                );
                assert_eq!(e.location, locs[i], "{layer} {unit}: location of {i}");
                assert_eq!(e.crop, field.crop(locs[i], 28, 28));
                assert_eq!(e.label, data.labels.int64_value(&[e.index]));
            }
            assert!(ex.top[0].activation >= ex.top[k - 1].activation);
            assert!(ex.bottom[0].activation <= ex.bottom[k - 1].activation);
        }
    }
    // The single-unit entry point gives the same as the many-unit one.
    let one = exemplars(&m, "conv2", Unit::channel(3), &data, k).unwrap();
    let many = exemplars_of(&m, "conv2", &[Unit::channel(0), Unit::channel(3)], &data, k).unwrap();
    assert_eq!(one.indices(End::Top), many[1].indices(End::Top));
    assert!(one.to_string().contains("conv2 channel 3"));
    let json = one.to_json();
    assert_eq!(json["top"].as_array().unwrap().len(), k);
    assert_eq!(json["channel"], 3);
}

#[test]
fn crops_are_padded_to_the_field_and_clipped_at_the_border() {
    let m = known_geometry();
    let data = Dataset {
        images: Tensor::rand([3, 1, 20, 20], (Kind::Float, Device::Cpu)),
        labels: Tensor::from_slice(&[0i64, 1, 2]),
        class_names: vec!["a".into(), "b".into(), "c".into()],
    };
    let field = ReceptiveField::of(&m, "add").unwrap();
    let item = |index: i64, at: (i64, i64)| Exemplar {
        index,
        label: index,
        activation: 0.0,
        location: Some(at),
        crop: field.crop(Some(at), 20, 20),
    };
    let ex = UnitExemplars {
        layer: "add".into(),
        unit: Unit::channel(0),
        field,
        top: vec![item(0, (0, 0)), item(1, (2, 3))],
        bottom: vec![item(2, (5, 5))],
    };
    let crops = ex.crops(&data, End::Top, -1.0).unwrap();
    assert_eq!(crops.size(), vec![2, 1, 14, 14]);
    // (0, 0) sees [−7, 7): seven padding rows/columns, then the image's top-left 7×7.
    let c0 = crops.get(0).get(0);
    assert!(c0.narrow(0, 0, 7).eq(-1.0).all().int64_value(&[]) == 1);
    assert!(c0.narrow(1, 0, 7).eq(-1.0).all().int64_value(&[]) == 1);
    let img0 = data.images.get(0).get(0);
    assert!(c0
        .narrow(0, 7, 7)
        .narrow(1, 7, 7)
        .equal(&img0.narrow(0, 0, 7).narrow(1, 0, 7)));
    // (2, 3) is inside: rows 1..15, columns 5..19 of the image, no padding.
    let img1 = data.images.get(1).get(0);
    assert!(crops.get(1).get(0).equal(&img1.narrow(0, 1, 14).narrow(1, 5, 14)));
    // (5, 5) sees [13, 27): the image's last 7 rows/columns, then padding.
    let c2 = ex.crops(&data, End::Bottom, -1.0).unwrap().get(0).get(0);
    assert!(c2.narrow(0, 7, 7).eq(-1.0).all().int64_value(&[]) == 1);
    let img2 = data.images.get(2).get(0);
    assert!(c2
        .narrow(0, 0, 7)
        .narrow(1, 0, 7)
        .equal(&img2.narrow(0, 13, 7).narrow(1, 13, 7)));
    // The exemplar figure draws it (crops and whole images).
    use gradviz::plot::exemplars::{exemplar_rows, ExemplarRow, ExemplarStyle};
    let vis = Tensor::rand([1, 20, 20], (Kind::Float, Device::Cpu));
    for crops in [true, false] {
        let fig = exemplar_rows(
            &[ExemplarRow {
                label: "add:0".into(),
                visualization: Some(&vis),
                exemplars: &ex,
            }],
            &data,
            &ExemplarStyle {
                crops,
                ..Default::default()
            },
        )
        .unwrap();
        assert!(fig.width > 4 * 40 && fig.height > 40);
    }
}

#[test]
fn bad_requests_name_the_problem() {
    let m = BuiltinModel::new(Arch::Lenet, DatasetName::Mnist, 0).unwrap();
    let data = mnist_head(20);
    let e = err_of(exemplars(&m, "conv7", Unit::channel(0), &data, 3));
    assert!(e.contains("unknown layer 'conv7'") && e.contains("conv2"), "{e}");
    let e = err_of(exemplars(&m, "conv2", Unit::channel(16), &data, 3));
    assert!(e.contains("channel 16") && e.contains("0..=15"), "{e}");
    let e = err_of(exemplars(&m, "conv2", Unit::neuron_at(0, 3, 40), &data, 3));
    assert!(e.contains("(3, 40)") && e.contains("14x14"), "{e}");
    let e = err_of(exemplars(&m, "fc1", Unit::neuron_at(0, 1, 1), &data, 3));
    assert!(e.contains("dense layer"), "{e}");
    assert!(err_of(exemplars(&m, "conv2", Unit::channel(0), &data, 0)).contains("k must be at least 1"));
    let e = err_of(exemplars(&m, "conv2", Unit::channel(0), &data, 21));
    assert!(e.contains("k = 21") && e.contains("20 images"), "{e}");
    let bad = Dataset {
        images: data.images.copy(),
        labels: data.labels.copy(),
        class_names: data.class_names.clone(),
    };
    let _ = bad.images.get(4).get(0).get(3).fill_(f64::NAN);
    let e = err_of(exemplars(&m, "conv2", Unit::channel(0), &bad, 3));
    assert!(e.contains("NaN"), "{e}");
    let wrong = Dataset {
        images: Tensor::zeros([4, 3, 32, 32], (Kind::Float, Device::Cpu)),
        labels: Tensor::zeros([4], (Kind::Int64, Device::Cpu)),
        class_names: data.class_names.clone(),
    };
    assert!(err_of(exemplars(&m, "conv2", Unit::channel(0), &wrong, 3)).contains("[4, 3, 32, 32]"));
    assert!("median".parse::<Pool>().is_err());
}

#[test]
fn the_mis_verdict_prefers_the_end_the_visualization_resembles() {
    let mut judge = BuiltinModel::new(Arch::Lenet, DatasetName::Mnist, 5).unwrap();
    judge.freeze();
    let mut m = BuiltinModel::new(Arch::MnistCnn, DatasetName::Mnist, 2).unwrap();
    m.freeze();
    let data = mnist_head(60);
    let space = FeatureSpace::penultimate(&judge).unwrap();
    assert_eq!(space.layer, "fc2");
    // Two channels whose top and bottom exemplars differ (a random channel can be dead).
    let all: Vec<Unit> = (0..64).map(Unit::channel).collect();
    let live: Vec<Unit> = exemplars_of(&m, "conv3", &all, &data, 1)
        .unwrap()
        .into_iter()
        .filter(|e| e.top[0].activation > e.bottom[0].activation + 1e-3)
        .map(|e| e.unit)
        .take(2)
        .collect();
    assert_eq!(live.len(), 2, "the model has live conv3 channels");
    let ex = exemplars_of(&m, "conv3", &live, &data, 1).unwrap();
    // A visualization identical to the top exemplar is at distance 0 from it.
    let top = ex[0].images(&data, End::Top).unwrap().get(0);
    let v = mis_verdict(&space, &top, &ex[0], &data).unwrap();
    assert!(
        v.dist_top < 1e-9 && v.dist_bottom > 0.0 && v.closer_to_top(),
        "{v:?}"
    );
    assert_eq!(v.pair_accuracy, 1.0);
    let bottom = ex[1].images(&data, End::Bottom).unwrap().get(0);
    let w = mis_verdict(&space, &bottom, &ex[1], &data).unwrap();
    assert!(!w.closer_to_top() && w.pair_accuracy == 0.0, "{w:?}");
    let both = mis_verdicts(&space, &Tensor::stack(&[top, bottom], 0), &ex, &data).unwrap();
    assert_eq!(mis_fraction(&both), 0.5);
    let e = err_of(mis_verdicts(
        &space,
        &Tensor::zeros([3, 1, 28, 28], (Kind::Float, Device::Cpu)),
        &ex,
        &data,
    ));
    assert!(e.contains("3 visualizations for 2 units"), "{e}");
    assert!(err_of(FeatureSpace::new(&judge, "fc9")).contains("unknown layer 'fc9'"));
}

#[test]
fn cli_writes_rows_and_json_and_rejects_bad_channels() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("m.safetensors");
    BuiltinModel::new(Arch::Lenet, DatasetName::Mnist, 1)
        .unwrap()
        .save(&model)
        .unwrap();
    let (png, json) = (dir.path().join("rows.png"), dir.path().join("ex.json"));
    let run = |extra: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_gradviz"))
            .args(["exemplars", "--model"])
            .arg(&model)
            .args(extra)
            .output()
            .unwrap()
    };
    let out = run(&[
        "--layer",
        "conv2",
        "--channel",
        "0-2",
        "--k",
        "4",
        "--steps",
        "3",
        "--plot",
        png.to_str().unwrap(),
        "--save-json",
        json.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let img = image::open(&png).unwrap();
    assert!(img.width() > 400 && img.height() > 150);
    let doc: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let units = doc["units"].as_array().unwrap();
    assert_eq!(units.len(), 3);
    assert_eq!(doc["split"], "test");
    for u in units {
        let top = u["top"].as_array().unwrap();
        assert_eq!(top.len(), 4);
        assert!((0..2000).contains(&top[0]["index"].as_i64().unwrap()));
        assert!(top[0]["activation"].as_f64().unwrap() >= top[3]["activation"].as_f64().unwrap());
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("conv2 channel 2") && stdout.contains("top"),
        "{stdout}"
    );

    let out = run(&["--layer", "conv2", "--channel", "16", "--neuron", "centre"]);
    assert!(!out.status.success());
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(e.contains("channel 16") && e.contains("0..=15"), "{e}");
    let out = run(&["--layer", "conv2", "--channel", "1", "--neuron", "3;4"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("expected centre or Y,X"));
}
