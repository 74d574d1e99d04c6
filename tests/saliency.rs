//! Correctness of the attribution methods in `gradviz::saliency`.

use anyhow::Result;
use gradviz::data;
use gradviz::model::{Arch, BuiltinModel, Classifier};
use gradviz::saliency::*;
use gradviz::tch::nn::ModuleT;
use gradviz::tch::{self as tch, Device, Kind, Tensor};
use gradviz::DatasetName;
use std::path::Path;

/// `z = W flatten(x) + b`: its gradients are known in closed form.
struct Linear {
    w: Tensor,
    b: Tensor,
    names: Vec<String>,
}

impl Linear {
    fn new(k: i64, seed: i64) -> Linear {
        let _rng = gradviz::model::seed_torch_rng(seed);
        Linear {
            w: Tensor::randn([k, 784], (Kind::Float, Device::Cpu)),
            b: Tensor::randn([k], (Kind::Float, Device::Cpu)),
            names: (0..k).map(|i| i.to_string()).collect(),
        }
    }
}

impl Classifier for Linear {
    fn logits(&self, x: &Tensor) -> Result<Tensor> {
        self.check_input(x)?;
        Ok(x.flatten(1, -1).matmul(&self.w.tr()) + &self.b)
    }
    fn forward_with(&self, x: &Tensor, layers: &[&str]) -> Result<(Tensor, Vec<Tensor>)> {
        anyhow::ensure!(layers.is_empty(), "no layers");
        Ok((self.logits(x)?, vec![]))
    }
    fn layer_names(&self) -> Vec<String> {
        vec![]
    }
    fn input_shape(&self) -> [i64; 3] {
        [1, 28, 28]
    }
    fn class_names(&self) -> &[String] {
        &self.names
    }
    fn device(&self) -> Device {
        Device::Cpu
    }
    fn parameters(&self) -> Vec<Tensor> {
        vec![self.w.shallow_clone(), self.b.shallow_clone()]
    }
    fn describe(&self) -> String {
        "linear test model".into()
    }
}

/// The trained MNIST model if the repository has one, else a seeded random one.
fn cnn() -> BuiltinModel {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    if let Ok(m) = BuiltinModel::load(root.join("models/mnist_cnn.safetensors")) {
        return m;
    }
    let mut m = BuiltinModel::new(Arch::MnistCnn, DatasetName::Mnist, 7).unwrap();
    m.freeze();
    m
}

fn mnist(n: usize) -> (Tensor, Tensor) {
    let test = data::bundled_mnist().unwrap().test.head(n);
    (test.images, test.labels)
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f64 {
    (a - b).abs().max().double_value(&[])
}

fn max_abs(a: &Tensor) -> f64 {
    a.abs().max().double_value(&[])
}

#[test]
fn gradient_matches_analytic_gradient_of_linear_model() {
    let m = Linear::new(10, 1);
    let (x, _) = mnist(4);
    let targets = vec![3, 0, 9, 3];
    let g = Gradient::default()
        .attribute(&m, &x, &Target::Classes(targets.clone()))
        .unwrap();
    assert_eq!(g.size(), x.size());
    for (i, &c) in targets.iter().enumerate() {
        let want = m.w.get(c).view([1, 28, 28]);
        assert!(max_abs_diff(&g.get(i as i64), &want) < 1e-6, "image {i}");
    }
    // input × gradient is x ⊙ w_c
    let ixg = InputXGradient::default()
        .attribute(&m, &x, &Target::Class(5))
        .unwrap();
    let want = &x * m.w.get(5).view([1, 1, 28, 28]);
    assert!(max_abs_diff(&ixg, &want) < 1e-6);
}

#[test]
fn gradient_matches_finite_differences_on_cnn() {
    let m = cnn();
    let (x, y) = mnist(3);
    // Max pooling is not differentiable where a window has tied maxima, which flat black
    // backgrounds produce everywhere; a little noise moves the images off those kinks.
    let noise = {
        let _rng = gradviz::model::seed_torch_rng(3);
        Tensor::randn(x.size(), (Kind::Float, Device::Cpu)) * 0.02
    };
    let x = x * 0.9 + 0.05 + noise;
    let g = Gradient::default()
        .attribute(&m, &x, &Target::labels(&y))
        .unwrap();
    let labels = Vec::<i64>::try_from(&y).unwrap();
    // Finite differences in float32 drown in rounding noise; take them on a float64 copy.
    let mut m64 = gradviz::metrics::copy_model(&m).unwrap();
    m64.vs.double();
    let eps = 1e-6;
    for i in 0..3i64 {
        let xi = x.get(i).unsqueeze(0).to_kind(Kind::Double);
        for _ in 0..4 {
            // directional derivative along a random unit direction
            let v = Tensor::randn([1, 1, 28, 28], (Kind::Double, Device::Cpu));
            let v = &v / v.norm().double_value(&[]);
            let s = |x: &Tensor| {
                let l = tch::no_grad(|| m64.net.forward_t(x, false));
                l.double_value(&[0, labels[i as usize]])
            };
            let fd = (s(&(&xi + &v * eps)) - s(&(&xi - &v * eps))) / (2.0 * eps);
            let an = (g.get(i).to_kind(Kind::Double) * v.get(0))
                .sum(Kind::Double)
                .double_value(&[]);
            let tol = 1e-3 * an.abs().max(fd.abs()) + 1e-5;
            assert!(
                (fd - an).abs() < tol,
                "image {i}: finite difference {fd} vs gradient {an}"
            );
        }
    }
}

#[test]
fn softmax_gradient_is_the_chain_rule_mix_of_logit_gradients() {
    let m = cnn();
    let (x, y) = mnist(3);
    let c = 4i64;
    let gs = Gradient::new(Score::Softmax)
        .attribute(&m, &x, &Target::Class(c))
        .unwrap();
    let p = m.logits(&x).unwrap().softmax(-1, Kind::Float).detach();
    // ∂p_c/∂x = Σ_k p_c(δ_ck − p_k) ∂z_k/∂x
    let mut want = x.zeros_like();
    for k in 0..10 {
        let gk = Gradient::default().attribute(&m, &x, &Target::Class(k)).unwrap();
        let delta = if k == c { 1.0 } else { 0.0 };
        let coef: Tensor = p.select(1, c) * (-p.select(1, k) + delta);
        want += gk * coef.view([-1, 1, 1, 1]);
    }
    let scale = max_abs(&want).max(1e-12);
    assert!(max_abs_diff(&gs, &want) / scale < 1e-4);
    // and log-softmax is ∂z_c − Σ_k p_k ∂z_k
    let gl = Gradient::new(Score::LogSoftmax)
        .attribute(&m, &x, &Target::Class(c))
        .unwrap();
    let want_log = &want / p.select(1, c).view([-1, 1, 1, 1]);
    assert!(max_abs_diff(&gl, &want_log) / max_abs(&want_log) < 1e-3);
    let _ = y;
}

/// At a logit margin of ~24, `p_c` rounds to exactly 1 in f32 and an f32 softmax loses
/// the `+p_c(1 − p_c) ∂z_c` term; the f64 score keeps it: the gradient equals the chain rule
/// `p_c Σ_k (δ_ck − p_k) ∂z_k/∂x` evaluated in f64, including its `∂z_c` part.
#[test]
fn saturated_softmax_gradient_keeps_the_own_class_term() {
    let mut m = Linear::new(3, 5);
    let _ = tch::no_grad(|| m.w.get(0).fill_(0.0));
    let _ = tch::no_grad(|| m.w.get(0).narrow(0, 0, 392).fill_(0.05)); // class 0: left half
    let _ = tch::no_grad(|| m.w.get(1).fill_(0.0));
    let _ = tch::no_grad(|| m.w.get(2).fill_(0.0));
    let _ = tch::no_grad(|| m.w.get(2).narrow(0, 392, 392).fill_(0.001));
    m.b = Tensor::from_slice(&[0.0f32, -5.0, -5.0]); // margin ≈ 24
    let x = Tensor::ones([1, 1, 28, 28], (Kind::Float, Device::Cpu));
    let z = m.logits(&x).unwrap().to_kind(Kind::Double);
    assert_eq!(
        z.softmax(-1, Kind::Float).double_value(&[0, 0]),
        1.0,
        "p_c must round to 1 in f32"
    );
    let p = z.softmax(-1, Kind::Double);
    let g = Gradient::new(Score::Softmax)
        .attribute(&m, &x, &Target::Class(0))
        .unwrap()
        .to_kind(Kind::Double)
        .view([784]);
    let (p0, p1, p2) = (
        p.double_value(&[0, 0]),
        p.double_value(&[0, 1]),
        p.double_value(&[0, 2]),
    );
    // pixel 0: only class 0 has weight; pixel 783: only class 2.
    let own = p0 * (1.0 - p0) * 0.05;
    let other = -p0 * p2 * 0.001;
    let _ = p1;
    let (g0, g783) = (g.double_value(&[0]), g.double_value(&[783]));
    assert!(own > 1e-12, "the own-class term is {own}");
    assert!(
        (g0 - own).abs() < 1e-3 * own,
        "pixel 0: gradient {g0} vs p_c(1 − p_c) w = {own}"
    );
    assert!(
        (g783 - other).abs() < 1e-3 * other.abs(),
        "pixel 783: {g783} vs {other}"
    );
}

#[test]
fn integrated_gradients_is_complete_within_one_percent_at_128_steps() {
    let m = cnn();
    let (x, y) = mnist(8);
    let ig = IntegratedGradients {
        steps: 128,
        internal_batch: 200,
        ..Default::default()
    };
    let (attr, c) = ig.attribute_with_delta(&m, &x, &Target::labels(&y)).unwrap();
    assert_eq!(attr.size(), x.size());
    let err = c.max_relative_error();
    assert!(
        err < 0.01,
        "relative completeness error {err}, deltas {:?}",
        c.delta
    );
    // on a linear model IG is exact: (x − x') ⊙ w_c
    let lin = Linear::new(10, 2);
    let (a, c) = IntegratedGradients::new(4)
        .attribute_with_delta(&lin, &x, &Target::Class(1))
        .unwrap();
    assert!(max_abs_diff(&a, &(&x * lin.w.get(1).view([1, 1, 28, 28]))) < 1e-5);
    assert!(c.delta.iter().all(|d| d.abs() < 1e-3), "{:?}", c.delta);
}

#[test]
fn batched_results_equal_per_image_results() {
    let m = cnn();
    let (x, y) = mnist(5);
    let target = Target::labels(&y);
    let labels = Vec::<i64>::try_from(&y).unwrap();
    let methods: Vec<Box<dyn Attribution>> = vec![
        Box::new(Gradient {
            score: Score::Softmax,
            batch: 2,
        }),
        Box::new(InputXGradient::default()),
        Box::new(IntegratedGradients {
            steps: 16,
            internal_batch: 7,
            ..Default::default()
        }),
        Box::new(GradCam::new("conv4")),
    ];
    for method in &methods {
        let all = method.attribute(&m, &x, &target).unwrap();
        for i in 0..5 {
            let one = method
                .attribute(&m, &x.narrow(0, i, 1), &Target::Class(labels[i as usize]))
                .unwrap();
            let d = max_abs_diff(&all.narrow(0, i, 1), &one);
            assert!(
                d <= 1e-5 * max_abs(&one).max(1e-6),
                "{}: image {i} differs by {d}",
                method.name()
            );
        }
    }
}

#[test]
fn internal_batch_size_does_not_change_ig_or_smoothgrad() {
    let m = cnn();
    let (x, y) = mnist(3);
    let t = Target::labels(&y);
    let a = IntegratedGradients {
        steps: 10,
        internal_batch: 1,
        ..Default::default()
    }
    .attribute(&m, &x, &t)
    .unwrap();
    let b = IntegratedGradients {
        steps: 10,
        internal_batch: 1000,
        ..Default::default()
    }
    .attribute(&m, &x, &t)
    .unwrap();
    assert!(max_abs_diff(&a, &b) <= 1e-5 * max_abs(&a));
    let sg = |batch| {
        SmoothGrad {
            samples: 6,
            batch,
            seed: 5,
            ..Default::default()
        }
        .attribute(&m, &x, &t)
        .unwrap()
    };
    let (s1, s2) = (sg(4), sg(64));
    assert!(max_abs_diff(&s1, &s2) <= 1e-5 * max_abs(&s1));
    // noise really is added, and reproducibly
    let g = Gradient::default().attribute(&m, &x, &t).unwrap();
    assert!(max_abs_diff(&s1, &g) > 1e-3 * max_abs(&g));
    let zero_noise = SmoothGrad {
        samples: 3,
        noise: 0.0,
        ..Default::default()
    }
    .attribute(&m, &x, &t)
    .unwrap();
    assert!(max_abs_diff(&zero_noise, &g) <= 1e-5 * max_abs(&g));
}

#[test]
fn grad_cam_is_nonnegative_and_input_sized() {
    let m = cnn();
    let (x, y) = mnist(4);
    let cam = GradCam::new("conv4")
        .attribute(&m, &x, &Target::labels(&y))
        .unwrap();
    assert_eq!(cam.size(), x.size());
    assert!(cam.min().double_value(&[]) >= 0.0);
    let signed = GradCam {
        relu: false,
        ..GradCam::new("pool2")
    }
    .attribute(&m, &x, &Target::labels(&y))
    .unwrap();
    assert_eq!(signed.size(), x.size());
}

#[test]
fn weights_are_untouched_and_get_no_gradient() {
    let m = cnn();
    let before: Vec<Tensor> = m.parameters().iter().map(|p| p.copy()).collect();
    let (x, y) = mnist(2);
    let t = Target::labels(&y);
    let _ = Gradient::default().attribute(&m, &x, &t).unwrap();
    let _ = SmoothGrad {
        samples: 2,
        ..Default::default()
    }
    .attribute(&m, &x, &t)
    .unwrap();
    let _ = IntegratedGradients::new(4).attribute(&m, &x, &t).unwrap();
    let _ = GradCam::new("conv2").attribute(&m, &x, &t).unwrap();
    for (p, b) in m.parameters().iter().zip(&before) {
        assert!(p.equal(b));
        assert!(!p.grad().defined(), "a weight received a gradient");
    }
}

#[test]
fn bad_inputs_are_errors_that_name_the_problem() {
    let m = cnn();
    let (x, y) = mnist(2);
    let g = Gradient::default();
    let err = |r: Result<Tensor>| format!("{:#}", r.unwrap_err());
    let e = err(g.attribute(&m, &x, &Target::Class(10)));
    assert!(e.contains("target class 10") && e.contains("10 classes"), "{e}");
    let e = err(g.attribute(&m, &x, &Target::Class(-1)));
    assert!(e.contains("out of range"), "{e}");
    let e = err(g.attribute(&m, &x, &Target::Classes(vec![1, 2, 3])));
    assert!(e.contains("3 target classes given for 2 images"), "{e}");
    let e = err(g.attribute(
        &m,
        &Tensor::zeros([2, 3, 28, 28], (Kind::Float, Device::Cpu)),
        &Target::Class(0),
    ));
    assert!(e.contains("[2, 3, 28, 28]"), "{e}");
    let e = err(g.attribute(&m, &x.get(0), &Target::Class(0)));
    assert!(e.contains("expected [N, 1, 28, 28]"), "{e}");
    let nan = x.copy();
    let _ = nan.get(1).get(0).get(3).fill_(f64::NAN);
    let e = err(g.attribute(&m, &nan, &Target::labels(&y)));
    assert!(e.contains("NaN"), "{e}");
    let e = err(g.attribute(&m, &x, &Target::labels(&y.to_kind(Kind::Float))));
    assert!(e.contains("integer"), "{e}");
    let e = err(GradCam::new("conv9").attribute(&m, &x, &Target::Class(0)));
    assert!(
        e.contains("conv9") && e.contains("conv4") && e.contains("fc1"),
        "{e}"
    );
    let e = err(GradCam::new("fc1").attribute(&m, &x, &Target::Class(0)));
    assert!(e.contains("not spatial"), "{e}");
    let e = err(GradCam::new("conv1").attribute(&Linear::new(10, 0), &x, &Target::Class(0)));
    assert!(e.contains("named layers"), "{e}");
    let e = err(IntegratedGradients::new(0).attribute(&m, &x, &Target::Class(0)));
    assert!(e.contains("steps"), "{e}");
    let e = err(IntegratedGradients {
        baseline: Baseline::Image(Tensor::zeros([2, 28, 28], (Kind::Float, Device::Cpu))),
        ..Default::default()
    }
    .attribute(&m, &x, &Target::Class(0)));
    assert!(e.contains("baseline has shape"), "{e}");
    let e = err(IntegratedGradients {
        baseline: Baseline::Constant(-1e39),
        ..Default::default()
    }
    .attribute(&m, &x, &Target::Class(0)));
    assert!(e.contains("baseline value -1e39 is not a finite float32"), "{e}");
    let e = err(SmoothGrad {
        noise: -1.0,
        ..Default::default()
    }
    .attribute(&m, &x, &Target::Class(0)));
    assert!(e.contains("noise"), "{e}");
    assert!("softmaxx".parse::<Score>().is_err());
}

#[test]
fn predicted_target_is_the_argmax() {
    let m = cnn();
    let (x, _) = mnist(6);
    let pred = Target::Predicted.resolve(&m, &x).unwrap();
    let want = Vec::<i64>::try_from(&m.logits(&x).unwrap().argmax(-1, false)).unwrap();
    assert_eq!(pred, want);
}

#[test]
fn reductions_and_percentile_clipping() {
    let a = Tensor::from_slice(&[1.0f32, -3.0, 2.0, 0.5, -2.0, 1.0, -1.0, 4.0]).view([1, 2, 2, 2]);
    let v = |t: Tensor| Vec::<f32>::try_from(&t.flatten(0, -1)).unwrap();
    assert_eq!(v(reduce(&a, Reduce::Signed).unwrap()), vec![-2.0, -3.0, 2.0, 4.0]);
    assert_eq!(v(reduce(&a, Reduce::Sum).unwrap()), vec![-1.0, -2.0, 1.0, 4.5]);
    assert_eq!(v(reduce(&a, Reduce::Absolute).unwrap()), vec![3.0, 4.0, 3.0, 4.5]);
    assert_eq!(v(reduce(&a, Reduce::MaxAbs).unwrap()), vec![2.0, 3.0, 2.0, 4.0]);
    let maps = Tensor::arange(101, (Kind::Float, Device::Cpu)).view([1, 101]) - 50.0;
    let c = clip_percentile(&maps, 80.0).unwrap();
    assert_eq!(c.max().double_value(&[]), 40.0);
    assert_eq!(c.min().double_value(&[]), -40.0);
    assert!(clip_percentile(&maps, 101.0).is_err());
    assert!(reduce(&Tensor::zeros([4], (Kind::Float, Device::Cpu)), Reduce::Sum).is_err());
}

/// A TorchScript linear model made with the project's Python, if available.
#[test]
fn works_on_torchscript_models() {
    let Ok(python) = std::env::var("GRADVIZ_PYTHON") else {
        eprintln!("GRADVIZ_PYTHON not set; skipping");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let pt = dir.path().join("lin.pt");
    let w = dir.path().join("w.npy");
    let script = format!(
        "import torch, numpy as np\n\
         torch.manual_seed(0)\n\
         m = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 10))\n\
         np.save(r'{}', m[1].weight.detach().numpy())\n\
         torch.jit.script(m).save(r'{}')\n",
        w.display(),
        pt.display()
    );
    let out = std::process::Command::new(python)
        .args(["-c", &script])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let m = gradviz::load_model(&pt).unwrap();
    let w = Tensor::read_npy(&w).unwrap();
    let (x, y) = mnist(3);
    let labels = Vec::<i64>::try_from(&y).unwrap();
    let g = Gradient::default()
        .attribute(m.as_ref(), &x, &Target::labels(&y))
        .unwrap();
    for (i, &c) in labels.iter().enumerate() {
        assert!(max_abs_diff(&g.get(i as i64), &w.get(c).view([1, 28, 28])) < 1e-6);
    }
    let (_, c) = IntegratedGradients::new(8)
        .attribute_with_delta(m.as_ref(), &x, &Target::Predicted)
        .unwrap();
    assert!(c.max_relative_error() < 1e-4);
    let e = GradCam::new("conv4")
        .attribute(m.as_ref(), &x, &Target::Class(0))
        .unwrap_err();
    assert!(format!("{e:#}").contains("named layers"));
}

#[test]
fn cli_round_trip_writes_npy_and_png() {
    let dir = tempfile::tempdir().unwrap();
    let m = cnn();
    let model = dir.path().join("m.safetensors");
    m.save(&model).unwrap();
    let (x, y) = mnist(3);
    let input = dir.path().join("x.npy");
    gradviz::io::save_npy(&input, &x).unwrap();
    let labels = Vec::<i64>::try_from(&y).unwrap();
    let targets = dir.path().join("t.npy");
    y.write_npy(&targets).unwrap();
    let (npy, png) = (dir.path().join("a.npy"), dir.path().join("a.png"));
    let run = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_gradviz"))
            .arg("saliency")
            .args(["--model", model.to_str().unwrap()])
            .args(args)
            .output()
            .unwrap()
    };
    let out = run(&[
        "--input",
        input.to_str().unwrap(),
        "--targets",
        targets.to_str().unwrap(),
        "--score",
        "softmax",
        "--save-npy",
        npy.to_str().unwrap(),
        "--plot",
        png.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let saved = Tensor::read_npy(&npy).unwrap();
    let want = Gradient::new(Score::Softmax)
        .attribute(&m, &x, &Target::Classes(labels))
        .unwrap();
    assert_eq!(saved.size(), x.size());
    assert!(max_abs_diff(&saved, &want) <= 1e-6 * max_abs(&want).max(1e-9));
    let img = image::open(&png).unwrap();
    assert!(img.width() > 200 && img.height() > 100);
    // dataset input, IG with its completeness report
    let out = run(&[
        "--dataset",
        "mnist",
        "--indices",
        "0..2",
        "--targets",
        "label",
        "--method",
        "integrated-gradients",
        "--steps",
        "8",
        "--save-npy",
        npy.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("completeness"));
    // a long run (80 chunks) reports progress; the short one above did not
    assert!(!String::from_utf8_lossy(&out.stderr).contains("integrated gradients 1/"));
    let out = run(&[
        "--dataset",
        "mnist",
        "--indices",
        "0..20",
        "--method",
        "integrated-gradients",
        "--steps",
        "64",
        "--batch",
        "16",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && err.contains("integrated gradients 80/80\n"),
        "{err}"
    );
    assert_eq!(Tensor::read_npy(&npy).unwrap().size(), [2, 1, 28, 28]);
    // errors are messages, not panics
    let out = run(&["--input", input.to_str().unwrap(), "--targets", "label"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--targets label needs --dataset") && !err.contains("panicked"),
        "{err}"
    );
    let out = run(&[
        "--dataset",
        "mnist",
        "--indices",
        "0..2",
        "--method",
        "grad-cam",
        "--layer",
        "fc9",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("valid layers"), "{err}");
    // an absurd σ is an error, and nothing is saved
    std::fs::remove_file(&npy).unwrap();
    let out = run(&[
        "--dataset",
        "mnist",
        "--indices",
        "0",
        "--method",
        "smoothgrad",
        "--noise",
        "1e300",
        "--save-npy",
        npy.to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("[0, 100], got 1e300"),
        "{err}"
    );
    assert!(!err.contains("panicked") && !npy.exists(), "{err}");
}
