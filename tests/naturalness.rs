//! Naturalness beyond one judge: the Fréchet distance (zero for identical sets, equal to a
//! direct numpy computation, the analytic value for shifted sets), the split-half floor, the
//! power-spectrum slope on images of known spectrum, transfer over several judges, and the
//! per-setting study.

mod common;

use common::python;
use gradviz::ascend::{naturalness, AscendConfig, StepRule};
use gradviz::data::{Dataset, DatasetName};
use gradviz::model::{Arch, BuiltinModel, Classifier};
use gradviz::naturalness::{
    frechet_distance, log_log_slope, regularization_candidates, sqrtm_psd, transfer, Candidate, ClassStudy,
    FeatureSpace, Gaussian, RealReference, Spectrum,
};
use gradviz::regularize::Regularization;
use std::path::Path;
use std::process::Command;
use tch::{Device, Kind, Tensor};

fn err_of<T>(r: anyhow::Result<T>) -> String {
    match r {
        Ok(_) => panic!("expected an error"),
        Err(e) => format!("{e:#}"),
    }
}

fn lenet(seed: i64) -> BuiltinModel {
    let mut m = BuiltinModel::new(Arch::Lenet, DatasetName::Mnist, seed).unwrap();
    m.freeze();
    m
}

fn opts() -> (Kind, Device) {
    (Kind::Float, Device::Cpu)
}

/// Uniform values in `[0, 1)` from a Rust generator: libtorch's global one is shared by the
/// tests running in parallel.
fn uniform(shape: &[i64], seed: u64) -> Tensor {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let v: Vec<f32> = (0..shape.iter().product::<i64>()).map(|_| rng.gen()).collect();
    Tensor::from_slice(&v).view(shape)
}

/// `n` correlated, shifted feature vectors of dimension `d`.
fn features(n: i64, d: i64, shift: f64, seed: u64) -> Tensor {
    let mix = (uniform(&[d, d], seed + 1000) - 0.5) + Tensor::eye(d, opts());
    (uniform(&[n, d], seed) - 0.5).mm(&mix) * 3.0 + shift
}

#[test]
fn frechet_distance_is_zero_for_identical_sets_and_analytic_for_shifts() {
    let x = features(200, 10, 0.0, 1);
    let a = Gaussian::fit(&x).unwrap();
    let b = Gaussian::fit(&x.copy()).unwrap();
    let d = frechet_distance(&a, &b).unwrap();
    assert!(d.abs() < 1e-9, "identical sets: {d}");
    // Same covariance, means shifted by 0.5 in each of 10 dimensions: d² = 10 · 0.25.
    let c = Gaussian::fit(&(&x + 0.5)).unwrap();
    let d = frechet_distance(&a, &c).unwrap();
    assert!((d - 2.5).abs() < 1e-6, "shifted: {d}");
    // Symmetric, and larger for a set from another distribution.
    let e = Gaussian::fit(&features(150, 10, 0.3, 9)).unwrap();
    let (ae, ea) = (
        frechet_distance(&a, &e).unwrap(),
        frechet_distance(&e, &a).unwrap(),
    );
    assert!((ae - ea).abs() < 1e-8 * ae && ae > 0.1, "{ae} vs {ea}");
    let m = sqrtm_psd(&e.cov).unwrap();
    assert!(m.mm(&m).allclose(&e.cov, 1e-9, 1e-9, false));
    assert!(err_of(Gaussian::fit(&features(1, 4, 0.0, 1))).contains("at least 2"));
    let small = Gaussian::fit(&features(20, 3, 0.0, 1)).unwrap();
    assert!(err_of(frechet_distance(&a, &small)).contains("different spaces"));
    let nan = features(10, 3, 0.0, 1).index_fill(0, &Tensor::from_slice(&[2i64]), f64::NAN);
    assert!(err_of(Gaussian::fit(&nan)).contains("NaN"));
}

#[test]
fn frechet_distance_matches_a_direct_numpy_computation() {
    let dir = tempfile::tempdir().unwrap();
    // Full-rank covariances, and a set smaller than the dimension (singular covariance).
    for (n1, n2, d) in [(60, 45, 12), (8, 30, 12)] {
        let (a, b) = (features(n1, d, 0.0, 3), features(n2, d, 0.2, 4) * 1.3);
        let (pa, pb) = (dir.path().join("a.npy"), dir.path().join("b.npy"));
        gradviz::io::save_npy(&pa, &a).unwrap();
        gradviz::io::save_npy(&pb, &b).unwrap();
        // Another algorithm on purpose: the eigenvalues of the non-symmetric product Σ₁Σ₂.
        let script = "import sys, numpy as np\n\
a = np.load(sys.argv[1]).astype(np.float64); b = np.load(sys.argv[2]).astype(np.float64)\n\
ca, cb = np.cov(a, rowvar=False), np.cov(b, rowvar=False)\n\
ev = np.linalg.eigvals(ca @ cb)\n\
cross = np.sqrt(np.clip(ev.real, 0, None)).sum()\n\
print(repr(float(((a.mean(0) - b.mean(0)) ** 2).sum() + np.trace(ca) + np.trace(cb) - 2 * cross)))\n";
        let out = Command::new(python())
            .arg("-c")
            .arg(script)
            .arg(&pa)
            .arg(&pb)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "python: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let want: f64 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
        let got = frechet_distance(&Gaussian::fit(&a).unwrap(), &Gaussian::fit(&b).unwrap()).unwrap();
        assert!(
            (got - want).abs() <= 1e-6 * want.abs().max(1.0),
            "n = {n1}/{n2}, D = {d}: gradviz {got} vs numpy {want}"
        );
    }
}

/// Images whose power spectrum is `1/f^alpha` (random phases).
fn power_law_images(n: i64, size: i64, alpha: f64) -> Tensor {
    let o = (Kind::Double, Device::Cpu);
    let fy = (Tensor::fft_fftfreq(size, 1.0, o) * size as f64).unsqueeze(1);
    let fx = (Tensor::fft_rfftfreq(size, 1.0, o) * size as f64).unsqueeze(0);
    let f = (fy.square() + fx.square()).sqrt().clamp_min(1.0);
    let amp = f.pow_tensor_scalar(-alpha / 2.0);
    let phase = uniform(&[n, 1, size, size / 2 + 1], 5).to_kind(Kind::Double) * (2.0 * std::f64::consts::PI);
    let spec = Tensor::complex(&(&amp * phase.cos()), &(&amp * phase.sin()));
    let img = spec.fft_irfft2(Some([size, size].as_slice()), [-2i64, -1].as_slice(), "ortho");
    // Into [0, 1] without clipping (Spectrum clamps to what a viewer sees).
    let img = &img - img.amin([-2i64, -1].as_slice(), true);
    (&img / img.amax([-2i64, -1].as_slice(), true)).to_kind(Kind::Float)
}

#[test]
fn spectrum_slope_recovers_known_power_laws() {
    for alpha in [0.0, 1.0, 2.0, 3.0] {
        let s = Spectrum::of(&power_law_images(64, 28, alpha)).unwrap();
        assert!((s.slope + alpha).abs() < 0.2, "alpha {alpha}: slope {}", s.slope);
        assert_eq!(s.radii.len(), 14);
    }
    let noise = uniform(&[64, 1, 28, 28], 6);
    let white = Spectrum::of(&noise).unwrap();
    assert!(white.slope.abs() < 0.1, "white noise slope {}", white.slope);
    // Flat power over the 28×28 grid: the share beyond radius 7 is about 1 − π·7²/28².
    assert!(
        (white.high_frequency_fraction - 0.80).abs() < 0.03,
        "{}",
        white.high_frequency_fraction
    );
    let b = Spectrum::of(&gradviz::regularize::gaussian_blur(&noise, 1.0)).unwrap();
    assert!(
        b.slope < white.slope - 1.0 && b.high_frequency_fraction < 0.25 * white.high_frequency_fraction,
        "blurred: slope {}, high-frequency fraction {}",
        b.slope,
        b.high_frequency_fraction
    );
    assert!((log_log_slope(&[1.0, 2.0, 4.0], &[8.0, 2.0, 0.5]).unwrap() + 2.0).abs() < 1e-12);
    assert!(err_of(Spectrum::of(&Tensor::full([2, 1, 28, 28], 0.3, opts()))).contains("constant"));
    assert!(err_of(log_log_slope(&[1.0, 2.0], &[1.0, 0.0])).contains("positive"));
}

#[test]
fn transfer_averages_the_judges_and_agrees_with_one_judges_verdict() {
    let (j1, j2) = (lenet(1), lenet(2));
    let test = gradviz::data::bundled_mnist().unwrap().test;
    let batch = test.head(40);
    let targets = Vec::<i64>::try_from(&batch.labels).unwrap();
    let t = transfer(&[&j1, &j2], &batch.images, &targets).unwrap();
    assert_eq!(t.votes.len(), 2);
    let one = naturalness(&j1, &batch.images, &targets, &test).unwrap();
    assert_eq!(t.votes[0].recognized, one.recognized());
    assert!((t.votes[0].mean_target_prob - one.mean_target_prob()).abs() < 1e-6);
    let want = (t.votes[0].recognition() + t.votes[1].recognition()) / 2.0;
    assert!((t.recognition() - want).abs() < 1e-12);
    assert!(t.to_string().contains("mean over 2 judge(s)"));
    assert!(err_of(transfer(&[], &batch.images, &targets)).contains("at least one judge"));
    let mut bad = targets.clone();
    bad[3] = 10;
    assert!(err_of(transfer(&[&j1], &batch.images, &bad)).contains("target class 10"));
}

#[test]
fn real_digits_sit_at_the_floor_and_noise_far_above_it() {
    let judge_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/mnist_lenet_judge.safetensors");
    let judge: Box<dyn Classifier> = if judge_path.is_file() {
        gradviz::load_model(&judge_path).unwrap()
    } else {
        Box::new(lenet(3))
    };
    let test = gradviz::data::bundled_mnist().unwrap().test;
    let space = FeatureSpace::penultimate(judge.as_ref()).unwrap();
    let reference = RealReference::new(&space, &test, 0).unwrap();
    assert_eq!(reference.floors.len(), 10);
    assert!(reference.floors.iter().all(|&f| f > 0.0));
    assert!(
        reference.half_sizes.iter().all(|&h| h >= 80),
        "{:?}",
        reference.half_sizes
    );
    assert!(
        reference.spectrum.slope < -1.0,
        "real digits are smooth: {}",
        reference.spectrum.slope
    );
    // Real digits of a class (all of them, so half overlaps the reference) vs uniform noise.
    let (real, noise): (Vec<f64>, Vec<f64>) = (0..10)
        .map(|c| {
            let imgs = test.select(&test.indices_of_class(c)).unwrap().images;
            let n = imgs.size()[0];
            let t = vec![c; n as usize];
            let r = reference.frechet(&space, &imgs, &t).unwrap()[0].distance;
            let z = reference
                .frechet(&space, &uniform(&[n, 1, 28, 28], c as u64), &t)
                .unwrap()[0]
                .distance;
            (r, z)
        })
        .unzip();
    for c in 0..10 {
        assert!(
            real[c] < reference.floors[c],
            "class {c}: real {} floor {}",
            real[c],
            reference.floors[c]
        );
        assert!(
            noise[c] > 5.0 * reference.floors[c],
            "class {c}: noise {}",
            noise[c]
        );
    }
    // Small sets are biased upward: the floor of 10 digits is above that of a half, and seeded.
    let f10 = reference.floor(3, 10).unwrap();
    assert!(f10 > reference.floor(3, 40).unwrap() && reference.floor(3, 40).unwrap() > reference.floors[3]);
    assert_eq!(f10, reference.floor(3, 10).unwrap());
    assert_eq!(reference.floor(3, 10_000).unwrap(), reference.floors[3]);
    assert!(err_of(reference.floor(3, 1)).contains("at least 2"));
    let e = err_of(reference.frechet(&space, &test.images.narrow(0, 0, 3), &[0, 1, 1]));
    assert!(e.contains("class 0") && e.contains("at least 2"), "{e}");
}

#[test]
fn a_class_study_measures_every_class_and_does_not_depend_on_chunking() {
    let mut model = BuiltinModel::new(Arch::MnistCnn, DatasetName::Mnist, 4).unwrap();
    model.freeze();
    let judge = lenet(6);
    let test: Dataset = gradviz::data::bundled_mnist().unwrap().test;
    let space = || FeatureSpace::new(&judge, "fc2").unwrap();
    let reference = RealReference::new(&space(), &test, 1).unwrap();
    let mut study = ClassStudy::new(&model, vec![&judge], space(), &reference);
    study.starts_per_class = 3;
    study.ascend = AscendConfig {
        steps: 4,
        lr: 0.05,
        step_rule: StepRule::adam(),
        snapshot_every: 0,
        ..Default::default()
    };
    let cand = Candidate::new("default", Regularization::default_28x28());
    let r = study.evaluate(&cand).unwrap();
    assert_eq!(r.images.size(), vec![30, 1, 28, 28]);
    assert_eq!(&r.targets[..4], &[0, 0, 0, 1]);
    assert_eq!(r.classes.len(), 10);
    assert!(r
        .classes
        .iter()
        .all(|c| c.frechet.n_visualizations == 3 && c.frechet.distance >= 0.0));
    assert!((0.0..=1.0).contains(&r.model_prob) && r.spec == Regularization::default_28x28().to_string());
    assert_eq!(r.class_images(2).size(), vec![3, 1, 28, 28]);
    study.chunk = 7;
    let chunked = study.evaluate(&cand).unwrap();
    assert!(
        chunked.images.allclose(&r.images, 1e-5, 1e-6, false),
        "chunks change the result"
    );
    study.starts_per_class = 1;
    assert!(err_of(study.evaluate(&cand)).contains("at least 2 starts"));
}

#[test]
fn the_candidates_are_none_default_each_leave_one_out_and_fourier() {
    let c = regularization_candidates();
    let names: Vec<&str> = c.iter().map(|c| c.name.as_str()).collect();
    let parts = Regularization::default_28x28().to_string().split(',').count();
    assert_eq!(c.len(), 2 + parts + 2, "{names:?}");
    assert_eq!(&names[..2], &["none", "default"]);
    assert!(names.contains(&"default − tv=0.02") && names.contains(&"default + fourier"));
    for cand in &c {
        let back = Regularization::parse(&cand.regularization.to_string()).unwrap();
        assert_eq!(back, cand.regularization, "{}", cand.name);
    }
}
