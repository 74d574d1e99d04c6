//! Hidden-unit tools of the report: the pre-activation objective (against a hand-written
//! convolution), neuron panels cropped to the receptive field, and the model-free nearest-real
//! distance (against a brute-force loop).

use gradviz::ascend::{ascend, AscendConfig, Init, StepRule};
use gradviz::data::{Dataset, DatasetName};
use gradviz::exemplars::ReceptiveField;
use gradviz::figures::centre_receptive_crops;
use gradviz::model::{Arch, BuiltinModel, Classifier};
use gradviz::naturalness::nearest_real_rms;
use gradviz::objective::Objective;
use gradviz::plot::Colormap;
use gradviz::regularize::Regularization;
use std::collections::HashMap;
use tch::{Device, Kind, Tensor};

fn model() -> BuiltinModel {
    let mut m = BuiltinModel::new(Arch::MnistCnn, DatasetName::Mnist, 7).unwrap();
    m.freeze();
    m
}

fn err_of<T>(r: anyhow::Result<T>) -> String {
    match r {
        Ok(_) => panic!("expected an error"),
        Err(e) => format!("{e:#}"),
    }
}

/// `conv3`'s input (pool1's output) convolved with `conv3`'s weights by hand: `z` with
/// `conv3 = relu(z)`.
fn conv3_pre_activation(m: &BuiltinModel, x: &Tensor) -> Tensor {
    let tensors: HashMap<String, Tensor> = m.named_tensors().into_iter().collect();
    let (_, acts) = m.forward_with(x, &["pool1"]).unwrap();
    acts[0].conv2d(
        &tensors["conv3.weight"],
        Some(&tensors["conv3.bias"]),
        [1, 1],
        [1, 1],
        [1, 1],
        1,
    )
}

#[test]
fn pre_activation_is_the_conv_output_before_its_relu() {
    let m = model();
    let x = Tensor::rand([3, 1, 28, 28], (Kind::Float, Device::Cpu));
    let z = tch::no_grad(|| conv3_pre_activation(&m, &x));
    let (_, acts) = tch::no_grad(|| m.forward_with(&x, &["conv3"]).unwrap());
    // the hand-written z is the pre-activation: its ReLU is the layer's output
    assert!((z.relu() - &acts[0]).abs().max().double_value(&[]) < 1e-5);
    assert!(
        z.min().double_value(&[]) < 0.0,
        "z must have negative values, or the test says nothing"
    );
    let want = z.mean_dim([2i64, 3].as_slice(), false, Kind::Float);
    let per_row = Objective::channels_pre_activation("conv3", &[4, 9, 63])
        .evaluate(&m, &x)
        .unwrap();
    for (i, c) in [4i64, 9, 63].into_iter().enumerate() {
        let got = per_row.per_sample.double_value(&[i as i64]);
        assert!(
            (got - want.double_value(&[i as i64, c])).abs() < 1e-5,
            "row {i}: {got}"
        );
    }
    // the centre unit: z[.., 7, 7] of the 14×14 map
    let centre = Objective::neurons_pre_activation("conv3", &[4, 9, 63])
        .evaluate(&m, &x)
        .unwrap()
        .per_sample;
    for (i, c) in [4i64, 9, 63].into_iter().enumerate() {
        let want = z.double_value(&[i as i64, c, 7, 7]);
        assert!((centre.double_value(&[i as i64]) - want).abs() < 1e-5);
    }
    // the logits of the graph run are the model's
    assert!(
        (per_row.logits - m.logits(&x).unwrap())
            .abs()
            .max()
            .double_value(&[])
            < 1e-4
    );
    // it mixes with post-activation terms
    let both = Objective::channel_pre_activation("conv3", 4) - Objective::channel("conv3", 4);
    let v = both.evaluate(&m, &x).unwrap().per_sample;
    let post = acts[0].mean_dim([2i64, 3].as_slice(), false, Kind::Float);
    let expect = want.select(1, 4) - post.select(1, 4);
    assert!((v - expect).abs().max().double_value(&[]) < 1e-5);
    assert_eq!(
        Objective::channel_pre_activation("conv3", 4).to_string(),
        "pre_activation(conv3:4)"
    );
}

#[test]
fn pre_activation_moves_a_unit_that_is_off_everywhere() {
    let m = model();
    let x = Init::noise(0.1, 0.05, 0).make(1, m.input_shape()).unwrap();
    // switch channel 5 of conv3 off everywhere: a large negative bias
    let c = 5;
    let tensors: HashMap<String, Tensor> = m.named_tensors().into_iter().collect();
    tch::no_grad(|| {
        let _ = tensors["conv3.bias"].get(c).fill_(-1e3);
    });
    let (_, acts) = tch::no_grad(|| m.forward_with(&x, &["conv3"]).unwrap());
    assert_eq!(acts[0].select(1, c).max().double_value(&[]), 0.0);
    let grad = |obj: &Objective| {
        let xv = x.detach().set_requires_grad(true);
        let v = obj.evaluate(&m, &xv).unwrap().per_sample.sum(Kind::Float);
        Tensor::run_backward(&[v], &[&xv], false, false)[0]
            .abs()
            .sum(Kind::Float)
            .double_value(&[])
    };
    assert_eq!(grad(&Objective::channel("conv3", c)), 0.0);
    assert!(grad(&Objective::channel_pre_activation("conv3", c)) > 0.0);
    // and ascent on it raises the pre-activation, where the post-ReLU objective is stuck
    let cfg = AscendConfig {
        steps: 30,
        lr: 0.05,
        step_rule: StepRule::adam(),
        regularization: Regularization::parse("clip").unwrap(),
        snapshot_every: 0,
        ..Default::default()
    };
    let r = ascend(&m, &Objective::channel_pre_activation("conv3", c), &x, &cfg).unwrap();
    assert!(r.final_objective()[0] > r.history[0].objective[0] + 1.0);
    let stuck = ascend(&m, &Objective::channel("conv3", c), &x, &cfg).unwrap();
    assert_eq!(
        (&stuck.images - &x.clamp(0.0, 1.0)).abs().max().double_value(&[]),
        0.0
    );
}

#[test]
fn pre_activation_errors_name_the_problem() {
    let m = model();
    let x = Tensor::zeros([1, 1, 28, 28], (Kind::Float, Device::Cpu));
    let cfg = AscendConfig {
        steps: 1,
        ..Default::default()
    };
    let e = err_of(ascend(
        &m,
        &Objective::channel_pre_activation("pool1", 0),
        &x,
        &cfg,
    ));
    assert!(e.contains("'pool1'") && e.contains("not an activation"), "{e}");
    let e = err_of(ascend(
        &m,
        &Objective::channel_pre_activation("conv9", 0),
        &x,
        &cfg,
    ));
    assert!(e.contains("unknown layer 'conv9'"), "{e}");
    let e = err_of(ascend(
        &m,
        &Objective::channel_pre_activation("conv3", 64),
        &x,
        &cfg,
    ));
    assert!(e.contains("channel 64 does not exist in layer 'conv3'"), "{e}");
}

#[test]
fn neuron_crops_show_the_centre_receptive_field_enlarged() {
    let m = model();
    let field = ReceptiveField::of(&m, "conv1").unwrap();
    assert_eq!(field.size(), Some((3, 3)));
    let x = Tensor::arange(2 * 28 * 28, (Kind::Float, Device::Cpu)).view([2, 1, 28, 28]) / 2000.0;
    let out = centre_receptive_crops(&m, "conv1", &field, &x).unwrap();
    assert_eq!(out.size(), vec![2, 1, 28, 28]);
    // the centre unit (14, 14) of conv1 sees rows and columns 13..16; ×9 fills 27 of 28 pixels
    for (dy, dx) in [(0, 0), (1, 2), (2, 1)] {
        let want = x.double_value(&[1, 0, 13 + dy, 13 + dx]);
        for (oy, ox) in [(0, 0), (8, 8), (4, 5)] {
            let got = out.double_value(&[1, 0, dy * 9 + oy, dx * 9 + ox]);
            assert!(
                (got - want).abs() < 1e-6,
                "({dy},{dx})+({oy},{ox}): {got} vs {want}"
            );
        }
    }
    // the margin is white
    assert_eq!(out.double_value(&[0, 0, 27, 27]), 1.0);
    let conv4 = ReceptiveField::of(&m, "conv4").unwrap();
    let out4 = centre_receptive_crops(&m, "conv4", &conv4, &x).unwrap();
    assert_eq!(out4.size(), vec![2, 1, 28, 28]);
}

#[test]
fn nearest_real_distance_equals_a_brute_force_loop() {
    let pool = Dataset {
        images: Tensor::rand([12, 1, 4, 4], (Kind::Float, Device::Cpu)),
        labels: Tensor::from_slice(&[0i64, 1, 2, 0, 1, 2, 0, 1, 2, 0, 1, 2]),
        class_names: vec!["a".into(), "b".into(), "c".into()],
    };
    let q = Tensor::rand([5, 1, 4, 4], (Kind::Float, Device::Cpu)) * 1.4 - 0.2;
    let targets = [2i64, 0, 0, 1, 2];
    let got = nearest_real_rms(&q, &targets, &pool).unwrap();
    let labels = Vec::<i64>::try_from(&pool.labels).unwrap();
    for (i, &t) in targets.iter().enumerate() {
        let x = q.get(i as i64).clamp(0.0, 1.0);
        let want = (0..12)
            .filter(|&j| labels[j] == t)
            .map(|j| {
                (&x - pool.images.get(j as i64))
                    .square()
                    .mean(Kind::Double)
                    .sqrt()
                    .double_value(&[])
            })
            .fold(f64::MAX, f64::min);
        assert!((got[i] - want).abs() < 1e-6, "row {i}: {} vs {want}", got[i]);
    }
    // an image of the pool is at distance 0 from itself
    let own = nearest_real_rms(&pool.images.narrow(0, 4, 1), &[1], &pool).unwrap();
    assert!(own[0].abs() < 1e-6);
    let e = err_of(nearest_real_rms(&q, &[0, 1], &pool));
    assert!(e.contains("2 targets for 5 images"), "{e}");
    let e = err_of(nearest_real_rms(&q.narrow(0, 0, 1), &[7], &pool));
    assert!(e.contains("no image of class 7"), "{e}");
}

#[test]
fn change_rows_share_one_scale_from_the_99th_percentile() {
    use gradviz::plot::ascend::{change_rows, ChangeRow};
    let start = Tensor::zeros([3, 1, 10, 10], (Kind::Float, Device::Cpu));
    // changes 0.00, 0.01, …, 2.99 spread over two runs; one huge outlier
    let a = (Tensor::arange(300, (Kind::Float, Device::Cpu)) / 100.0).view([3, 1, 10, 10]);
    let b = a.copy();
    let _ = b.get(0).get(0).get(0).get(0).fill_(100.0);
    let rows = [
        ChangeRow {
            label: "a".into(),
            start: &start,
            end: &a,
            captions: vec!["x".into()],
        },
        ChangeRow {
            label: "b".into(),
            start: &start,
            end: &b,
            captions: vec![],
        },
    ];
    let (fig, m) = change_rows(&rows, true, 2).unwrap();
    let all = Tensor::cat(&[a.flatten(0, -1), b.flatten(0, -1)], 0);
    let want = all.kthvalue((600.0 * 0.99) as i64, 0, false).0.double_value(&[]);
    assert!((m - want).abs() < 1e-6 && m < 3.0, "{m} vs {want}");
    let (_, without_start) = change_rows(&rows, false, 2).unwrap();
    assert_eq!(without_start, m);
    // 6 rows with the starts, 4 without; a colour bar beside them
    let (short, _) = change_rows(&rows, false, 2).unwrap();
    assert!(fig.height > short.height && fig.width > 3 * 10 * 2);
    // the bar, 92 px wide at the right, runs from the top colour (+m) to the bottom one (−m)
    let pixel = |x: u32, y: u32| fig.pixel(x, y).unwrap();
    let want = |t: f64| Colormap::Diverging.rgb(t).map(|v| (v * 255.0).round() as u8);
    let (x, bar_h) = (fig.width - 92 + 8 + 7, fig.height.min(220) - 34);
    assert_eq!(pixel(x, 25), want(1.0 - 1.0 / (bar_h - 1) as f64));
    assert_eq!(pixel(x, 24 + bar_h - 2), want(1.0 / (bar_h - 1) as f64));
    assert_eq!(pixel(x - 12, 60), [255, 255, 255], "white left of the bar");
    let bad = Tensor::zeros([2, 1, 10, 10], (Kind::Float, Device::Cpu));
    let e = err_of(change_rows(
        &[ChangeRow {
            label: "c".into(),
            start: &start,
            end: &bad,
            captions: vec![],
        }],
        true,
        2,
    ));
    assert!(e.contains("run 'c'"), "{e}");
}
