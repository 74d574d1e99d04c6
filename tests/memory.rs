//! Bounded memory: the chunked methods give the same result whatever the chunk size, so
//! `--batch` can bound memory without changing what is computed.

use gradviz::metrics::{deletion_curve, PerturbConfig};
use gradviz::model::BuiltinModel;
use gradviz::saliency::{reduce, Attribution, IntegratedGradients, Reduce, SmoothGrad, Target};
use gradviz::tch::Tensor;

fn setup() -> (BuiltinModel, Tensor, Target) {
    let m = BuiltinModel::load(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/models/mnist_cnn.safetensors"
    ))
    .unwrap();
    let test = gradviz::data::bundled_mnist().unwrap().test.head(5);
    (m, test.images, Target::labels(&test.labels))
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f64 {
    (a - b).abs().max().double_value(&[])
}

/// Chunked IG (1 or 7 path points per pass) against one pass over all `N × steps` points.
/// Not bitwise: libtorch's convolution kernels may pick another algorithm (and summation
/// order) for another batch size, so gradients can differ in the last bits of f32; the
/// accumulation over path points itself is in the same order for every chunk size.
/// Tolerance: 1e-5 of the largest attribution (f32 has 24 bits, ~6e-8 relative).
#[test]
fn chunked_integrated_gradients_equal_unchunked() {
    let (m, x, target) = setup();
    let steps = 16;
    let ig = |internal_batch| IntegratedGradients {
        steps,
        internal_batch,
        ..Default::default()
    };
    let whole = ig(5 * steps).attribute(&m, &x, &target).unwrap();
    let scale = whole.abs().max().double_value(&[]);
    for b in [1, 7, 33] {
        let chunked = ig(b).attribute(&m, &x, &target).unwrap();
        let d = max_abs_diff(&chunked, &whole);
        eprintln!("IG internal_batch {b}: max |difference| {d:e} (largest attribution {scale:e})");
        assert!(d <= 1e-5 * scale, "internal_batch {b}: max difference {d}");
    }
}

#[test]
fn chunked_smoothgrad_equals_unchunked() {
    let (m, x, target) = setup();
    let sg = |batch| SmoothGrad {
        samples: 8,
        batch,
        ..Default::default()
    };
    let whole = sg(40).attribute(&m, &x, &target).unwrap();
    let scale = whole.abs().max().double_value(&[]);
    for b in [1, 3, 16] {
        let d = max_abs_diff(&sg(b).attribute(&m, &x, &target).unwrap(), &whole);
        assert!(d <= 1e-5 * scale, "batch {b}: max difference {d}");
    }
}

#[test]
fn chunked_deletion_curves_equal_unchunked() {
    let (m, x, _) = setup();
    let targets: Vec<i64> = vec![7, 2, 1, 0, 4];
    let maps = reduce(&x, Reduce::Signed).unwrap();
    let curve = |batch| {
        let cfg = PerturbConfig {
            steps: 7,
            batch,
            ..Default::default()
        };
        deletion_curve(&m, &x, &targets, &maps, &cfg).unwrap()
    };
    let whole = curve(512);
    for b in [1, 2] {
        let c = curve(b);
        for (p, q) in c.per_image_auc.iter().zip(&whole.per_image_auc) {
            assert!((p - q).abs() <= 1e-6, "batch {b}: AUC {p} vs {q}");
        }
    }
}
