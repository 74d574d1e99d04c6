//! Max-sensitivity and the random-logit test, checked on a linear model where the answers
//! are known analytically: its gradient map is the weight row `w_c` whatever the input.

use gradviz::graph::{ChainBuilder, GraphModel, Op};
use gradviz::metrics::spearman;
use gradviz::model::{Arch, BuiltinModel, Classifier};
use gradviz::robustness::{MaxSensitivity, RandomLogit};
use gradviz::saliency::{Attribution, Gradient, InputXGradient, Score, SmoothGrad, Target};
use std::collections::HashMap;
use tch::{Device, Kind, Tensor};

const K: i64 = 5;

fn err_of<T>(r: anyhow::Result<T>) -> String {
    match r {
        Ok(_) => panic!("expected an error"),
        Err(e) => format!("{e:#}"),
    }
}

/// `logits = W · flatten(x) + b` on 1×6×6 inputs, as a layer graph.
fn linear() -> (GraphModel, Tensor) {
    let mut g = ChainBuilder::new();
    g.push("flat", "flat", Op::Flatten { start: 1, end: -1 }, &[])
        .push("fc", "fc", Op::Linear, &gradviz::graph::weight_bias("fc"));
    tch::manual_seed(0);
    let w = Tensor::randn([K, 36], (Kind::Float, Device::Cpu));
    let t: HashMap<String, Tensor> = [
        ("fc.weight".to_string(), w.copy()),
        (
            "fc.bias".to_string(),
            Tensor::randn([K], (Kind::Float, Device::Cpu)),
        ),
    ]
    .into();
    let names = (0..K).map(|k| k.to_string()).collect();
    (
        GraphModel::new(g.build().unwrap(), t, [1, 6, 6], names).unwrap(),
        w,
    )
}

fn inputs(n: i64) -> Tensor {
    tch::manual_seed(1);
    Tensor::rand([n, 1, 6, 6], (Kind::Float, Device::Cpu)) * 0.8 + 0.1
}

fn norm(t: &Tensor) -> f64 {
    t.square().sum(Kind::Double).sqrt().double_value(&[])
}

#[test]
fn the_gradient_of_a_linear_model_has_zero_max_sensitivity() {
    let (m, _) = linear();
    let s = MaxSensitivity::new(0.1, 20)
        .evaluate(&m, &Gradient::new(Score::Logit), &inputs(6), &Target::Predicted)
        .unwrap();
    assert_eq!(s.per_image.len(), 6);
    assert!(s.per_image.iter().all(|&v| v.abs() < 1e-12), "{:?}", s.per_image);
}

#[test]
fn input_x_gradient_sensitivity_is_bounded_and_linear_in_the_radius() {
    let (m, w) = linear();
    let x = inputs(8);
    let classes: Vec<i64> = (0..8).map(|i| i % K).collect();
    let target = Target::Classes(classes.clone());
    let method = InputXGradient::default();
    let at = |r: f64, batch: i64| {
        MaxSensitivity {
            radius: r,
            samples: 16,
            seed: 4,
            batch,
        }
        .evaluate(&m, &method, &x, &target)
        .unwrap()
        .per_image
    };
    let (small, big) = (at(0.01, 256), at(0.02, 256));
    for i in 0..8 {
        // Φ(x + δ) − Φ(x) = δ ⊙ w_c and ‖δ‖∞ ≤ r, so SENS ≤ r ‖w_c‖ / ‖x ⊙ w_c‖.
        let wc = w.get(classes[i]).view([1, 6, 6]);
        let bound = 0.01 * norm(&wc) / norm(&(x.get(i as i64) * &wc));
        assert!(
            small[i] > 0.2 * bound && small[i] <= bound * (1.0 + 1e-6),
            "image {i}: {} vs bound {bound}",
            small[i]
        );
        // The same uniform draws scaled by 2: the sensitivity doubles.
        assert!(
            (big[i] / small[i] - 2.0).abs() < 1e-4,
            "image {i}: {} vs {}",
            big[i],
            small[i]
        );
    }
    // Perturbations come in the same order whatever the batch size.
    let chunked = at(0.01, 3);
    for (a, b) in small.iter().zip(&chunked) {
        assert!((a - b).abs() < 1e-6 * a.max(1e-12), "{a} vs {b}");
    }
    let s = MaxSensitivity::new(0.0, 3)
        .evaluate(&m, &method, &x, &target)
        .unwrap();
    assert!(s.per_image.iter().all(|&v| v == 0.0), "radius 0 moves nothing");
}

#[test]
fn random_logit_similarity_of_a_linear_model_is_that_of_its_weight_rows() {
    let (m, w) = linear();
    let x = inputs(12);
    let rl = RandomLogit::new(3);
    let r = rl
        .evaluate(&m, &Gradient::new(Score::Logit), &x, &Target::Predicted)
        .unwrap();
    assert_eq!(r.classes.len(), 12);
    for i in 0..12 {
        let (c, o) = (r.classes[i], r.other_classes[i]);
        assert!(o != c && (0..K).contains(&o));
        let (wc, wo) = (w.get(c), w.get(o));
        let cos = (&wc * &wo).sum(Kind::Double).double_value(&[]) / (norm(&wc) * norm(&wo));
        assert!(
            (r.cosine[i] - cos).abs() < 1e-6,
            "image {i}: {} vs {cos}",
            r.cosine[i]
        );
        let (a, b) = (
            Vec::<f32>::try_from(&wc).unwrap(),
            Vec::<f32>::try_from(&wo).unwrap(),
        );
        assert!((r.spearman[i] - spearman(&a, &b)).abs() < 1e-9);
    }
    let mean = r.cosine.iter().sum::<f64>() / 12.0;
    assert!((r.mean_cosine() - mean).abs() < 1e-12);
    // A map that does not depend on the class at all scores 1.
    let same = rl.evaluate(&m, &ClassBlind, &x, &Target::Predicted).unwrap();
    assert!(same
        .cosine
        .iter()
        .chain(&same.spearman)
        .all(|&v| (v - 1.0).abs() < 1e-9));
}

/// The image itself as the "explanation", whatever the class.
struct ClassBlind;

impl Attribution for ClassBlind {
    fn name(&self) -> String {
        "class-blind".into()
    }
    fn attribute(&self, _: &dyn Classifier, inputs: &Tensor, _: &Target) -> anyhow::Result<Tensor> {
        Ok(inputs.copy())
    }
}

#[test]
fn other_classes_are_uniform_over_the_rest_and_seeded() {
    let rl = RandomLogit::new(9);
    let classes: Vec<i64> = vec![2; 4000];
    let other = rl.other_classes(&classes, 5).unwrap();
    assert_eq!(other, rl.other_classes(&classes, 5).unwrap());
    for k in [0, 1, 3, 4] {
        let n = other.iter().filter(|&&o| o == k).count();
        assert!((850..1150).contains(&n), "class {k} drawn {n} times of 4000");
    }
    assert!(!other.contains(&2));
    assert!(err_of(rl.other_classes(&[0], 1)).contains("at least 2 classes"));
}

#[test]
fn both_checks_run_batched_on_a_cnn_and_reject_bad_input() {
    let mut m = BuiltinModel::new(Arch::Lenet, gradviz::data::DatasetName::Mnist, 2).unwrap();
    m.freeze();
    let x = gradviz::data::bundled_mnist().unwrap().test.head(5).images;
    let sg = SmoothGrad {
        samples: 4,
        ..Default::default()
    };
    let s = MaxSensitivity {
        samples: 3,
        batch: 4,
        ..Default::default()
    }
    .evaluate(&m, &sg, &x, &Target::Class(3))
    .unwrap();
    assert!(
        s.per_image.iter().all(|v| v.is_finite() && *v > 0.0),
        "{:?}",
        s.per_image
    );
    assert!(s.median() <= s.per_image.iter().cloned().fold(0.0, f64::max));
    let r = RandomLogit::default()
        .evaluate(&m, &sg, &x, &Target::Predicted)
        .unwrap();
    assert!(r.cosine.iter().all(|c| (-1.0..=1.0).contains(c)));

    let g = Gradient::default();
    let ms = MaxSensitivity::default();
    assert!(err_of(MaxSensitivity::new(-0.1, 3).evaluate(&m, &g, &x, &Target::Predicted)).contains("radius"));
    assert!(err_of(MaxSensitivity::new(0.1, 0).evaluate(&m, &g, &x, &Target::Predicted)).contains("samples"));
    let e = err_of(ms.evaluate(
        &m,
        &g,
        &Tensor::zeros([2, 1, 5, 5], (Kind::Float, Device::Cpu)),
        &Target::Predicted,
    ));
    assert!(e.contains("[2, 1, 5, 5]"), "{e}");
    assert!(err_of(ms.evaluate(&m, &g, &x, &Target::Class(10))).contains("class 10"));
    let nan = x.copy().index_fill(0, &Tensor::from_slice(&[1i64]), f64::NAN);
    assert!(err_of(ms.evaluate(&m, &g, &nan, &Target::Class(1))).contains("NaN"));
    assert!(err_of(RandomLogit::default().evaluate(&m, &g, &x, &Target::Class(12))).contains("class 12"));
}
