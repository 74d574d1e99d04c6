//! Gradient ascent on the input: frozen weights, step rules, batching, objectives,
//! regularizers, errors and the command line. Models are freshly initialized (seeded), so
//! the tests need no trained weights.

use gradviz::ascend::{ascend, naturalness, AscendConfig, Init, StepRule};
use gradviz::data::DatasetName;
use gradviz::model::{Arch, BuiltinModel, Classifier};
use gradviz::objective::Objective;
use gradviz::regularize::{
    gaussian_blur, total_variation, ParamState, Parameterization, PostStep, Regularization, Transform,
};
use rand::SeedableRng;
use tch::{Device, Kind, Tensor};

fn model() -> BuiltinModel {
    let mut m = BuiltinModel::new(Arch::MnistCnn, DatasetName::Mnist, 7).unwrap();
    m.freeze();
    m
}

fn lenet() -> BuiltinModel {
    let mut m = BuiltinModel::new(Arch::Lenet, DatasetName::Mnist, 3).unwrap();
    m.freeze();
    m
}

fn classes() -> Vec<i64> {
    (0..10).collect()
}

fn cfg(steps: usize, lr: f64, rule: StepRule) -> AscendConfig {
    AscendConfig {
        steps,
        lr,
        step_rule: rule,
        snapshot_every: 0,
        ..Default::default()
    }
}

fn err_of<T>(r: anyhow::Result<T>) -> String {
    match r {
        Ok(_) => panic!("expected an error"),
        Err(e) => format!("{e:#}"),
    }
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f64 {
    (a - b).abs().max().double_value(&[])
}

#[test]
fn weights_are_bitwise_frozen() {
    let m = model();
    let before: Vec<Tensor> = m.parameters().iter().map(|p| p.detach().copy()).collect();
    assert!(!before.is_empty());
    let x0 = Init::noise(0.2, 0.1, 1).make(4, m.input_shape()).unwrap();
    let c = AscendConfig {
        steps: 5,
        lr: 0.05,
        step_rule: StepRule::adam(),
        regularization: Regularization::parse("default,contrib-clip=10,fourier").unwrap(),
        ..Default::default()
    };
    let obj = Objective::logits(&[0, 1, 2, 3])
        + Objective::channel("conv3", 5)
        + 0.1 * Objective::diversity("conv2");
    ascend(&m, &obj, &x0, &c).unwrap();
    let after = m.parameters();
    assert_eq!(before.len(), after.len());
    for (b, a) in before.iter().zip(&after) {
        assert!(b.equal(a), "a weight changed during ascent");
        assert!(
            !a.requires_grad() || !a.grad().defined(),
            "a weight received a gradient"
        );
    }
}

#[test]
fn every_step_rule_increases_the_objective() {
    let m = model();
    let x0 = Init::noise(0.1, 0.05, 2).make(10, m.input_shape()).unwrap();
    for (rule, lr) in [
        (StepRule::Plain, 0.05),
        (StepRule::Normalized, 0.01),
        (StepRule::adam(), 0.01),
    ] {
        let r = ascend(&m, &Objective::logits(&classes()), &x0, &cfg(15, lr, rule)).unwrap();
        let first = &r.history[0].objective;
        let last = r.final_objective();
        for (i, (a, b)) in first.iter().zip(&last).enumerate() {
            assert!(b > a, "{rule}: row {i} objective went from {a} to {b}");
        }
        assert_eq!(r.history.len(), 16);
        assert_eq!(r.images.size(), vec![10, 1, 28, 28]);
    }
}

/// The gradient of the summed objective with respect to the input, for checking the rules.
fn input_grad(m: &dyn Classifier, obj: &Objective, x: &Tensor) -> Tensor {
    let x = x.detach().copy().set_requires_grad(true);
    let v = obj.evaluate(m, &x).unwrap().per_sample.sum(Kind::Float);
    Tensor::run_backward(&[v], &[&x], false, false).pop().unwrap()
}

#[test]
fn step_rules_take_the_documented_steps() {
    let m = lenet();
    let obj = Objective::logits(&[1, 7, 3]);
    let x0 = Init::noise(0.3, 0.1, 5).make(3, m.input_shape()).unwrap();
    let g = input_grad(&m, &obj, &x0);
    let lr = 0.01;
    // plain: x + lr·g
    let r = ascend(&m, &obj, &x0, &cfg(1, lr, StepRule::Plain)).unwrap();
    assert!(max_abs_diff(&r.images, &(&x0 + &g * lr)) < 1e-6);
    // normalized: the mean |step| of every row is lr
    let r = ascend(&m, &obj, &x0, &cfg(1, lr, StepRule::Normalized)).unwrap();
    let step = (&r.images - &x0)
        .abs()
        .flatten(1, -1)
        .mean_dim([1i64].as_slice(), false, Kind::Float);
    for i in 0..3 {
        assert!(
            (step.double_value(&[i]) - lr).abs() < 1e-6,
            "row {i}: {}",
            step.double_value(&[i])
        );
    }
    // Adam's first step is lr·sign(g) wherever g ≠ 0
    let r = ascend(&m, &obj, &x0, &cfg(1, lr, StepRule::adam())).unwrap();
    let want = &x0 + g.sign() * lr;
    let mask = g.abs().gt(1e-6);
    let diff = (&r.images - want).abs().masked_select(&mask);
    assert!(diff.numel() > 100);
    assert!(diff.max().double_value(&[]) < 1e-5);
}

// Rows of a batch are independent runs. Over many steps, batch and single runs drift apart by
// rounding: the batched kernels sum in another order, and a ReLU or max-pool tie that the
// rounding decides changes the path (seen on CI: 0.03 after 8 normalized steps). So: one step
// against single runs, and many steps against the same batch with the other rows replaced.
#[test]
fn a_batch_of_classes_equals_one_run_per_class() {
    let m = lenet();
    let shape = m.input_shape();
    for rule in [StepRule::Plain, StepRule::Normalized, StepRule::adam()] {
        let x0 = Init::noise(0.1, 0.05, 11).make(10, shape).unwrap();
        let one = cfg(1, 0.02, rule);
        let batch = ascend(&m, &Objective::logits(&classes()), &x0, &one).unwrap();
        for k in 0..10 {
            let single = ascend(&m, &Objective::logit(k), &x0.narrow(0, k, 1), &one).unwrap();
            let d = max_abs_diff(&single.images, &batch.images.narrow(0, k, 1));
            assert!(
                d < 1e-3,
                "{rule}: class {k} differs by {d} after one step of 0.02"
            );
        }
        let many = cfg(8, 0.02, rule);
        let batch = ascend(&m, &Objective::logits(&classes()), &x0, &many).unwrap();
        let others = Init::noise(0.6, 0.2, 12).make(10, shape).unwrap();
        for k in [0, 4, 9] {
            let mixed = others.copy();
            mixed.narrow(0, k, 1).copy_(&x0.narrow(0, k, 1));
            let rerun = ascend(&m, &Objective::logits(&classes()), &mixed, &many).unwrap();
            let d = max_abs_diff(&rerun.images.narrow(0, k, 1), &batch.images.narrow(0, k, 1));
            assert!(d < 1e-6, "{rule}: row {k} depends on the other rows ({d})");
        }
    }
}

#[test]
fn noise_init_rows_do_not_depend_on_batch_size() {
    let a = Init::noise(0.5, 0.2, 9).make(4, [1, 28, 28]).unwrap();
    let b = Init::noise(0.5, 0.2, 9).make(2, [1, 28, 28]).unwrap();
    assert!(a.narrow(0, 0, 2).equal(&b));
    assert!(a.min().double_value(&[]) >= 0.0 && a.max().double_value(&[]) <= 1.0);
    let c = Init::Constant(0.25).make(3, [1, 28, 28]).unwrap();
    assert_eq!(c.mean(Kind::Float).double_value(&[]), 0.25);
    let ex = Tensor::rand([2, 1, 28, 28], (Kind::Float, Device::Cpu));
    assert!(Init::Examples(ex.copy()).make(2, [1, 28, 28]).unwrap().equal(&ex));
    assert!(err_of(Init::Examples(ex).make(3, [1, 28, 28])).contains("2 example images"));
}

#[test]
fn objectives_compose_and_take_per_sample_targets() {
    let m = model();
    let x = Tensor::rand([3, 1, 28, 28], (Kind::Float, Device::Cpu));
    let logits = tch::no_grad(|| m.logits(&x).unwrap());
    let ev = |o: &Objective| tch::no_grad(|| o.evaluate(&m, &x).unwrap().per_sample);
    // per-row targets
    let v = ev(&Objective::logits(&[2, 0, 9]));
    for (i, k) in [2i64, 0, 9].iter().enumerate() {
        assert!((v.double_value(&[i as i64]) - logits.double_value(&[i as i64, *k])).abs() < 1e-5);
    }
    // composition is linear
    let lp = logits.log_softmax(1, Kind::Float);
    let p = logits.softmax(1, Kind::Float);
    let combo = 2.0 * Objective::logit(4) - Objective::prob(1) + Objective::log_prob(3) * 0.5;
    let want = logits.select(1, 4) * 2.0 - p.select(1, 1) + lp.select(1, 3) * 0.5;
    assert!(max_abs_diff(&ev(&combo), &want) < 1e-5);
    assert!(max_abs_diff(&ev(&-Objective::logit(4)), &(-logits.select(1, 4))) < 1e-6);
    assert_eq!(combo.to_string(), "2·logit(4) - softmax(1) + 0.5·log_softmax(3)");
    assert_eq!(Objective::logits(&[1, 2]).class_targets(2), Some(vec![1, 2]));
    // hidden units
    let (_, acts) = tch::no_grad(|| m.forward_with(&x, &["conv2", "fc1"]).unwrap());
    let ch = acts[0]
        .select(1, 5)
        .mean_dim([1i64, 2].as_slice(), false, Kind::Float);
    assert!(max_abs_diff(&ev(&Objective::channel("conv2", 5)), &ch) < 1e-5);
    let nr = acts[0].select(1, 5).select(2, 3).select(1, 7);
    assert!(max_abs_diff(&ev(&Objective::neuron_at("conv2", 5, 7, 3)), &nr) < 1e-5);
    let centre = acts[0].select(1, 5).select(2, 14).select(1, 14);
    assert!(max_abs_diff(&ev(&Objective::neuron("conv2", 5)), &centre) < 1e-5);
    assert!(max_abs_diff(&ev(&Objective::channel("fc1", 3)), &acts[1].select(1, 3)) < 1e-5);
    let per_row = ev(&Objective::channels("conv2", &[0, 1, 2]));
    for i in 0..3 {
        let want = acts[0].get(i).get(i).mean(Kind::Float).double_value(&[]);
        assert!((per_row.double_value(&[i]) - want).abs() < 1e-5);
    }
    // diversity: identical rows are maximally similar (each row: -(n-1)/n)
    let same = x.narrow(0, 0, 1).repeat([3, 1, 1, 1]);
    let d = tch::no_grad(|| {
        Objective::diversity("conv1")
            .evaluate(&m, &same)
            .unwrap()
            .per_sample
    });
    assert!(
        (d.double_value(&[0]) + 2.0 / 3.0).abs() < 1e-4,
        "{}",
        d.double_value(&[0])
    );
    let d2 = ev(&Objective::diversity("conv1"));
    assert!(d2.double_value(&[0]) > d.double_value(&[0]));
}

#[test]
fn hidden_objectives_increase_their_unit() {
    let m = model();
    let x0 = Init::noise(0.2, 0.05, 3).make(4, m.input_shape()).unwrap();
    let obj = Objective::channels("conv3", &[0, 1, 2, 3]);
    let r = ascend(&m, &obj, &x0, &cfg(10, 0.02, StepRule::adam())).unwrap();
    for i in 0..4 {
        assert!(r.final_objective()[i] > r.history[0].objective[i]);
    }
    assert!(r.targets.is_none());
}

#[test]
fn history_and_snapshots_follow_the_schedule() {
    let m = lenet();
    let x0 = Init::Constant(0.1).make(2, m.input_shape()).unwrap();
    let c = AscendConfig {
        steps: 10,
        lr: 0.01,
        snapshot_every: 4,
        ..Default::default()
    };
    let r = ascend(&m, &Objective::probs(&[3, 5]), &x0, &c).unwrap();
    let steps: Vec<usize> = r.snapshots.iter().map(|s| s.step).collect();
    assert_eq!(steps, vec![0, 4, 8, 10]);
    assert!(r.snapshots[0].images.equal(&x0));
    assert!(r.snapshots[3].images.equal(&r.images));
    assert_eq!(r.history.len(), 11);
    for (i, h) in r.history.iter().enumerate() {
        assert_eq!(h.step, i);
        assert_eq!(h.objective.len(), 2);
        // softmax objective: the recorded target probability is the objective itself
        assert!((h.objective[0] - h.target_prob[0]).abs() < 1e-5);
        assert!(h.top_class.iter().all(|k| (0..10).contains(k)));
    }
}

#[test]
fn bad_requests_are_clear_errors() {
    let m = model();
    let x0 = Init::Constant(0.1).make(2, m.input_shape()).unwrap();
    let c = cfg(2, 0.01, StepRule::Plain);
    let e = err_of(ascend(&m, &Objective::logit(10), &x0, &c));
    assert!(
        e.contains("class 10 is out of range") && e.contains("0..=9"),
        "{e}"
    );
    let e = err_of(Init::Constant(1e300).make(1, m.input_shape()));
    assert!(
        e.contains("constant init 1e300 is not a finite float32 value"),
        "{e}"
    );
    let e = err_of(ascend(&m, &Objective::logit(-1), &x0, &c));
    assert!(e.contains("class -1"), "{e}");
    let e = err_of(ascend(&m, &Objective::channel("conv9", 0), &x0, &c));
    assert!(
        e.contains("unknown layer 'conv9'") && e.contains("conv4") && e.contains("fc1"),
        "{e}"
    );
    let e = err_of(ascend(&m, &Objective::channel("conv1", 32), &x0, &c));
    assert!(e.contains("channel 32") && e.contains("0..=31"), "{e}");
    let e = err_of(ascend(&m, &Objective::neuron_at("pool2", 0, 7, 0), &x0, &c));
    assert!(e.contains("position (7, 0)") && e.contains("7x7"), "{e}");
    let e = err_of(ascend(&m, &Objective::logits(&[1, 2, 3]), &x0, &c));
    assert!(e.contains("3 per-sample targets") && e.contains("2 rows"), "{e}");
    let e = err_of(ascend(
        &m,
        &Objective::diversity("conv1"),
        &x0.narrow(0, 0, 1),
        &c,
    ));
    assert!(e.contains("at least 2"), "{e}");
    let nan = x0.copy();
    let _ = nan.get(0).get(0).get(3).get(3).fill_(f64::NAN);
    let e = err_of(ascend(&m, &Objective::logit(1), &nan, &c));
    assert!(e.contains("NaN"), "{e}");
    let e = err_of(ascend(
        &m,
        &Objective::logit(1),
        &Tensor::zeros([2, 3, 32, 32], (Kind::Float, Device::Cpu)),
        &c,
    ));
    assert!(e.contains("[N, 1, 28, 28]"), "{e}");
    let e = err_of(ascend(
        &m,
        &Objective::logit(1),
        &x0,
        &cfg(2, 0.0, StepRule::Plain),
    ));
    assert!(e.contains("learning rate"), "{e}");
    // a step that blows up is reported, not returned as NaN images
    let e = err_of(ascend(
        &m,
        &Objective::logit(1),
        &x0,
        &cfg(3, f64::MAX, StepRule::Plain),
    ));
    assert!(e.contains("NaN") || e.contains("became"), "{e}");
}

#[test]
fn blur_lowers_total_variation_and_keeps_mass() {
    let x = Tensor::rand([2, 1, 28, 28], (Kind::Float, Device::Cpu)) * 0.5 + 0.25;
    let b = gaussian_blur(&x, 1.0);
    assert_eq!(b.size(), x.size());
    for i in 0..2 {
        assert!(total_variation(&b).double_value(&[i]) < 0.5 * total_variation(&x).double_value(&[i]));
    }
    // interior mass is preserved (zero padding only loses some at the border)
    let inner = |t: &Tensor| {
        t.narrow(2, 6, 16)
            .narrow(3, 6, 16)
            .mean(Kind::Float)
            .double_value(&[])
    };
    assert!((inner(&b) - inner(&x)).abs() < 0.02);
    // a constant image has no variation
    let c = Tensor::full([1, 1, 5, 5], 0.3, (Kind::Float, Device::Cpu));
    assert!(total_variation(&c).double_value(&[0]).abs() < 1e-6);
}

#[test]
fn post_steps_clip_decay_and_zero_small_pixels() {
    let x = Tensor::randn([1, 1, 28, 28], (Kind::Float, Device::Cpu));
    let c = PostStep::Clip(0.0, 1.0).apply(&x, None, 1);
    assert!(c.min().double_value(&[]) >= 0.0 && c.max().double_value(&[]) <= 1.0);
    let d = PostStep::Decay(0.1).apply(&x, None, 1);
    assert!(max_abs_diff(&d, &(&x * 0.9)) < 1e-6);
    // blur only on its schedule
    let blur = PostStep::Blur { sigma: 1.0, every: 4 };
    assert!(blur.apply(&x, None, 3).equal(&x));
    assert!(!blur.apply(&x, None, 4).equal(&x));
    // small-norm clipping zeroes the weakest 30 %
    let z = PostStep::ClipSmallNorm(30.0).apply(&x, None, 1);
    let zero_frac = z.eq(0.0).to_kind(Kind::Float).mean(Kind::Float).double_value(&[]);
    assert!((zero_frac - 0.3).abs() < 0.01, "{zero_frac}");
    let kept = z.abs().masked_select(&z.ne(0.0)).min().double_value(&[]);
    let dropped = x.abs().masked_select(&z.eq(0.0)).max().double_value(&[]);
    assert!(kept >= dropped);
    // small-contribution clipping uses |x·g|: a zero gradient region is dropped
    let g = Tensor::ones_like(&x);
    let _ = g.narrow(2, 0, 14).fill_(0.0);
    let z = PostStep::ClipSmallContribution(50.0).apply(&x, Some(&g), 1);
    assert_eq!(z.narrow(2, 0, 14).abs().max().double_value(&[]), 0.0);
    assert!(PostStep::ClipSmallContribution(50.0).apply(&x, None, 1).equal(&x));
}

#[test]
fn transforms_keep_shape_and_move_content() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(0);
    let x = Tensor::zeros([3, 1, 28, 28], (Kind::Float, Device::Cpu));
    let _ = x.narrow(2, 12, 4).narrow(3, 12, 4).fill_(1.0);
    let mut moved = false;
    for _ in 0..10 {
        let j = Transform::Jitter(2).apply(&x, &mut rng);
        assert_eq!(j.size(), x.size());
        // a pure shift keeps the mass (the square is far from the border)
        assert!((j.sum(Kind::Float).double_value(&[]) - 48.0).abs() < 1e-4);
        moved |= !j.equal(&x);
    }
    assert!(moved, "jitter never moved the image");
    for t in [Transform::Scale(0.8, 1.2), Transform::Rotate(15.0)] {
        let y = t.apply(&x, &mut rng);
        assert_eq!(y.size(), x.size());
        assert!(max_abs_diff(&y, &x) > 0.0);
        // mass stays roughly the same under small scale/rotation
        let ratio = y.sum(Kind::Float).double_value(&[]) / 48.0;
        assert!(ratio > 0.6 && ratio < 1.6, "{t:?}: {ratio}");
    }
    assert!(Transform::Jitter(0).apply(&x, &mut rng).equal(&x));
}

#[test]
fn fourier_parameterization_is_exact_and_smooths_steps() {
    let x = Tensor::rand([2, 1, 28, 28], (Kind::Float, Device::Cpu));
    let mut st = ParamState::new(Parameterization::Fourier { decay_power: 1.0 }, &x).unwrap();
    assert!(max_abs_diff(&st.image(), &x) < 1e-5);
    let y = Tensor::rand([2, 1, 28, 28], (Kind::Float, Device::Cpu));
    st.set_image(&y);
    assert!(max_abs_diff(&st.image(), &y) < 1e-5);
    // the same ascent in Fourier space gives a smoother image than in pixel space
    let m = lenet();
    let x0 = Init::noise(0.2, 0.05, 8).make(1, m.input_shape()).unwrap();
    let run = |spec: &str| {
        let c = AscendConfig {
            regularization: Regularization::parse(spec).unwrap(),
            ..cfg(10, 0.05, StepRule::Normalized)
        };
        ascend(&m, &Objective::logit(3), &x0, &c).unwrap()
    };
    let (pix, fou) = (run("none"), run("fourier"));
    // compare the change each made, relative to its size
    let tv_rel = |r: &gradviz::ascend::AscendResult| {
        let d = &r.images - &x0;
        total_variation(&d).double_value(&[0]) / d.abs().sum(Kind::Float).double_value(&[])
    };
    assert!(
        tv_rel(&fou) < tv_rel(&pix),
        "{} vs {}",
        tv_rel(&fou),
        tv_rel(&pix)
    );
    assert!(fou.final_objective()[0] > fou.history[0].objective[0]);
}

#[test]
fn regularization_specs_round_trip() {
    let r = Regularization::default_28x28();
    assert_eq!(Regularization::parse(&r.to_string()).unwrap(), r);
    let spec = "fourier=0.5,jitter=2,scale=0.9-1.1,rotate=5,l1=0.01,l2=0.1,tv=0.2,decay=0.01,blur=0.5@4,clip=0-1,norm-clip=20,contrib-clip=30";
    let r = Regularization::parse(spec).unwrap();
    assert_eq!(r.to_string(), spec);
    assert_eq!(r.transforms.len(), 3);
    assert!(r.needs_image_grad());
    assert!(Regularization::parse("none").unwrap().is_none());
    assert_eq!(
        Regularization::parse("hidden").unwrap(),
        Regularization::hidden_28x28()
    );
    assert_eq!(
        Regularization::parse("clip").unwrap(),
        Regularization::clip_only()
    );
    let d = Regularization::parse("default,rotate=5").unwrap();
    assert_eq!(
        d.transforms.len(),
        Regularization::default_28x28().transforms.len() + 1
    );
    for (bad, want) in [
        ("sharpen=1", "unknown regularizer 'sharpen'"),
        ("tv", "needs a value"),
        ("tv=abc", "not a number"),
        ("tv=-1", "≥ 0"),
        ("scale=1.2-0.8", "1.2 > 0.8"),
        ("decay=1", "< 1"),
        ("blur=0.5@x", "not a step count"),
    ] {
        let e = err_of(Regularization::parse(bad));
        assert!(e.contains(want), "{bad}: {e}");
    }
}

#[test]
fn default_regularization_keeps_images_valid_and_penalizes() {
    let m = model();
    let x0 = Init::noise(0.1, 0.1, 4).make(3, m.input_shape()).unwrap();
    let c = AscendConfig {
        regularization: Regularization::default_28x28(),
        ..cfg(12, 0.05, StepRule::adam())
    };
    let r = ascend(&m, &Objective::logits(&[0, 1, 2]), &x0, &c).unwrap();
    assert!(r.images.min().double_value(&[]) >= 0.0 && r.images.max().double_value(&[]) <= 1.0);
    let p = Regularization::parse("l1=0.5,l2=2,tv=0.1").unwrap();
    let v = p.penalty(&x0).unwrap();
    let want = x0.abs().sum(Kind::Float).double_value(&[]) * 0.5
        + x0.square().sum(Kind::Float).double_value(&[]) * 2.0
        + total_variation(&x0).sum(Kind::Float).double_value(&[]) * 0.1;
    assert!((v.sum(Kind::Float).double_value(&[]) - want).abs() / want < 1e-4);
    assert!(Regularization::none().penalty(&x0).is_none());
}

#[test]
fn naturalness_scores_class_means_as_natural() {
    let judge = lenet();
    let data = gradviz::data::bundled_mnist().unwrap().test;
    let means = data.class_means().unwrap();
    let n = naturalness(&judge, &means, &classes(), &data).unwrap();
    assert_eq!(n.images.len(), 10);
    for j in &n.images {
        assert!(
            j.dist_to_mean < 1e-5,
            "the class mean is at distance 0 from itself"
        );
        assert!(j.real_dist_to_mean > 0.1 && j.real_dist_to_mean < 0.5);
        assert!((0.0..=1.0).contains(&j.target_prob));
    }
    assert_eq!(
        n.recognized(),
        n.images.iter().filter(|j| j.judged == j.target).count()
    );
    assert!(n.dist_ratio() < 1e-4);
    assert!(n.summary().contains("/10"));
    assert!(err_of(naturalness(&judge, &means, &[1, 2], &data)).contains("2 targets for 10 images"));
}

#[test]
fn cli_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let model_path = dir.path().join("m.safetensors");
    lenet().save(&model_path).unwrap();
    let npy = dir.path().join("x.npy");
    let png = dir.path().join("x.png");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_gradviz"))
        .args(["ascend", "--model"])
        .arg(&model_path)
        .args([
            "--classes",
            "0-9",
            "--score",
            "logit",
            "--steps",
            "6",
            "--lr",
            "0.05",
        ])
        .args([
            "--step-rule",
            "adam",
            "--regularize",
            "default",
            "--snapshot-every",
            "3",
        ])
        .arg("--save-npy")
        .arg(&npy)
        .arg("--plot")
        .arg(&png)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let x = gradviz::io::load_npy_images(&npy, [1, 28, 28]).unwrap();
    assert_eq!(x.size(), vec![10, 1, 28, 28]);
    assert_eq!(x.kind(), Kind::Float);
    let img = image::open(&png).unwrap();
    assert!(img.width() > 200 && img.height() > 200);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("class") && stdout.contains("p("), "{stdout}");

    // hidden channels, dataset init, and a bad channel
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_gradviz"))
        .args(["ascend", "--model"])
        .arg(&model_path)
        .args([
            "--layer",
            "conv2",
            "--channel",
            "0-3",
            "--init",
            "dataset:0,1,2,3",
            "--steps",
            "3",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_gradviz"))
        .args(["ascend", "--model"])
        .arg(&model_path)
        .args(["--layer", "conv2", "--channel", "16", "--steps", "3"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("channel 16") && err.contains("0..=15"), "{err}");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_gradviz"))
        .args(["ascend", "--model"])
        .arg(&model_path)
        .args(["--classes", "3,12", "--steps", "3"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("class 12"));
}

/// The target, on the shipped models: the default regularization's noise-started
/// class visualizations are recognized by the independent judge for ≥ 9/10 classes with
/// mean target probability ≥ 0.8, and unregularized ascent does worse.
#[test]
fn shipped_model_meets_the_naturalness_target() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("models");
    let (m, j) = (
        root.join("mnist_cnn.safetensors"),
        root.join("mnist_lenet_judge.safetensors"),
    );
    if !m.is_file() || !j.is_file() {
        eprintln!("skipped: shipped models not present");
        return;
    }
    tch::set_num_threads(1); // small batches; avoids OpenMP spin-waiting on busy machines
    let model = gradviz::load_model(&m).unwrap();
    let judge = gradviz::load_model(&j).unwrap();
    let test = gradviz::data::bundled_mnist().unwrap().test;
    let x0 = Init::noise(0.1, 0.05, 0).make(10, model.input_shape()).unwrap();
    let obj = Objective::logits(&classes());
    let reg = ascend(model.as_ref(), &obj, &x0, &AscendConfig::regularized_28x28()).unwrap();
    let n = naturalness(judge.as_ref(), &reg.images, &classes(), &test).unwrap();
    assert!(n.recognized() >= 9 && n.mean_target_prob() >= 0.8, "{n}");
    let unreg_cfg = AscendConfig {
        regularization: Regularization::none(),
        ..AscendConfig::regularized_28x28()
    };
    let unreg = ascend(model.as_ref(), &obj, &x0, &unreg_cfg).unwrap();
    let u = naturalness(judge.as_ref(), &unreg.images, &classes(), &test).unwrap();
    assert!(u.mean_target_prob() < n.mean_target_prob(), "{u}\n{n}");
}
