//! A generated colour data set: coloured shapes on textured backgrounds, 3×32×32, ten
//! classes, deterministic from a seed.
//!
//! No real colour data set ships with gradviz and none can be downloaded here, so this is
//! what the colour code paths (training `cifar10-cnn`, colour saliency figures, the 32×32
//! RGB regularization preset) are tested and tuned on. A class is a shape *and* a colour,
//! so a model must use both: five shapes (disc, square, triangle, ring, cross) in red or
//! in blue. Position, size, rotation, the exact hue, the background gradient and pixel
//! noise vary from image to image.

use super::{DataFormat, Dataset, Splits};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tch::{Kind, Tensor};

/// The shapes, in class order (each in red, then in blue).
pub const SHAPES: [&str; 5] = ["disc", "square", "triangle", "ring", "cross"];

/// `red disc`, `blue disc`, `red square`, …: class `k` is shape `k / 2` in red (`k` even)
/// or blue (`k` odd).
pub fn class_names() -> Vec<String> {
    SHAPES
        .iter()
        .flat_map(|s| [format!("red {s}"), format!("blue {s}")])
        .collect()
}

/// Whether the point `(u, v)` (relative to the centre, rotated into the shape's frame)
/// lies in shape `shape` of radius `r`.
fn inside(shape: usize, u: f64, v: f64, r: f64) -> bool {
    let d = (u * u + v * v).sqrt();
    match shape {
        0 => d <= r,
        1 => u.abs() <= 0.8 * r && v.abs() <= 0.8 * r,
        2 => (0..3).all(|k| {
            let a = std::f64::consts::FRAC_PI_2 + k as f64 * 2.0 * std::f64::consts::PI / 3.0;
            u * a.cos() + v * a.sin() <= 0.5 * r
        }),
        3 => (0.55 * r..=r).contains(&d),
        _ => (u.abs() <= 0.28 * r && v.abs() <= r) || (v.abs() <= 0.28 * r && u.abs() <= r),
    }
}

/// One image `[3, 32, 32]` (channel-major floats) of class `label`, and the fraction of
/// each pixel that the shape covers `[32, 32]`.
fn render(label: usize, rng: &mut StdRng) -> (Vec<f32>, Vec<f32>) {
    const S: usize = 32;
    let (shape, blue) = (label / 2, label % 2 == 1);
    // A low-saturation background: a gradient between two grayish colours.
    let base = |rng: &mut StdRng| {
        let g = rng.gen_range(0.25..0.75);
        [0, 1, 2].map(|_| g + rng.gen_range(-0.08..0.08))
    };
    let (b0, b1) = (base(rng), base(rng));
    let dir = rng.gen_range(0.0..std::f64::consts::TAU);
    let colour = if blue {
        [
            rng.gen_range(0.0..0.3),
            rng.gen_range(0.1..0.45),
            rng.gen_range(0.7..1.0),
        ]
    } else {
        [
            rng.gen_range(0.7..1.0),
            rng.gen_range(0.0..0.3),
            rng.gen_range(0.0..0.3),
        ]
    };
    let r = rng.gen_range(6.0..10.0);
    let (cx, cy) = (rng.gen_range(10.0..22.0), rng.gen_range(10.0..22.0));
    let rot = rng.gen_range(0.0..std::f64::consts::TAU);
    let (cos, sin) = (rot.cos(), rot.sin());
    let mut out = vec![0f32; 3 * S * S];
    let mut mask = vec![0f32; S * S];
    for y in 0..S {
        for x in 0..S {
            // 2×2 supersampling for smooth edges.
            let mut cover = 0.0;
            for (dy, dx) in [(0.25, 0.25), (0.25, 0.75), (0.75, 0.25), (0.75, 0.75)] {
                let (px, py) = (x as f64 + dx - cx, y as f64 + dy - cy);
                let (u, v) = (px * cos + py * sin, -px * sin + py * cos);
                if inside(shape, u, v, r) {
                    cover += 0.25;
                }
            }
            mask[y * S + x] = cover as f32;
            let t = ((x as f64 / S as f64 - 0.5) * dir.cos() + (y as f64 / S as f64 - 0.5) * dir.sin() + 0.5)
                .clamp(0.0, 1.0);
            for c in 0..3 {
                let bg = b0[c] * (1.0 - t) + b1[c] * t;
                let noise = rng.gen_range(-0.04..0.04);
                let v = bg * (1.0 - cover) + colour[c] * cover + noise;
                out[c * S * S + y * S + x] = v.clamp(0.0, 1.0) as f32;
            }
        }
    }
    (out, mask)
}

/// `n` images, classes in turn (`0, 1, …, 9, 0, …`), the same for the same `seed`.
pub fn generate(n: usize, seed: u64) -> Dataset {
    generate_with_masks(n, seed).0
}

/// [`generate`] and where each shape is: its pixel coverage `[N, 1, 32, 32]` in `[0, 1]`
/// (what a saliency map should point at).
pub fn generate_with_masks(n: usize, seed: u64) -> (Dataset, Tensor) {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut pixels = Vec::with_capacity(n * 3 * 32 * 32);
    let mut masks = Vec::with_capacity(n * 32 * 32);
    let labels: Vec<i64> = (0..n).map(|i| (i % 10) as i64).collect();
    for &l in &labels {
        let (p, m) = render(l as usize, &mut rng);
        pixels.extend(p);
        masks.extend(m);
    }
    let data = Dataset {
        images: Tensor::from_slice(&pixels).view([n as i64, 3, 32, 32]),
        labels: Tensor::from_slice(&labels).to_kind(Kind::Int64),
        class_names: class_names(),
    };
    (data, Tensor::from_slice(&masks).view([n as i64, 1, 32, 32]))
}

/// `n_train` training and `n_test` test images from independent draws of `seed`.
pub fn splits(n_train: usize, n_test: usize, seed: u64) -> Splits {
    Splits {
        known: None,
        name: "colour-shapes".into(),
        format: DataFormat::Generated,
        train: generate(n_train, seed),
        test: generate(n_test, seed.wrapping_add(1_000_003)),
        held_out: true,
        notes: vec![],
    }
}
