//! Helpers shared by the command-line tests and the colour-model tests.
#![allow(dead_code)] // each test crate uses its own subset

use gradviz::saliency::{Attribution, GradCam, Gradient, InputXGradient, IntegratedGradients, SmoothGrad};
use gradviz::tch::{Kind, Tensor};
use std::path::{Path, PathBuf};
use std::process::Command;

pub fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The venv's python (setup.sh's `GRADVIZ_PYTHON`), for the reference scripts.
pub fn python() -> PathBuf {
    std::env::var_os("GRADVIZ_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join(".venv/bin/python"))
}

/// Runs `gradviz ARGS` with libtorch limited to `threads` threads; panics on failure.
pub fn gradviz(args: &[&str], threads: u32) -> std::process::Output {
    let out = Command::new(env!("CARGO_BIN_EXE_gradviz"))
        .args(args)
        .env("OMP_NUM_THREADS", threads.to_string())
        .env("MKL_NUM_THREADS", threads.to_string())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "gradviz {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A small MNIST directory (the first `train` and `test` bundled digits, raw IDX).
pub fn small_mnist(dir: &Path, train: usize, test: usize) {
    use std::io::Read;
    for (split, n) in [("train", train), ("t10k", test)] {
        for (kind, header, per) in [("images-idx3", 16, 784), ("labels-idx1", 8, 1)] {
            let name = format!("{split}-{}-ubyte", kind);
            let gz = std::fs::File::open(repo().join("data/mnist").join(format!("{name}.gz"))).unwrap();
            let mut all = Vec::new();
            flate2::read::GzDecoder::new(gz).read_to_end(&mut all).unwrap();
            let mut out = all[..header].to_vec();
            out[4..8].copy_from_slice(&(n as u32).to_be_bytes());
            out.extend_from_slice(&all[header..header + n * per]);
            std::fs::write(dir.join(name), out).unwrap();
        }
    }
}

/// The gradient methods with the small sample and step counts the tests use; Grad-CAM on
/// `gradcam_layer`.
pub fn gradient_methods(gradcam_layer: &str) -> Vec<Box<dyn Attribution>> {
    vec![
        Box::new(Gradient::default()),
        Box::new(InputXGradient::default()),
        Box::new(SmoothGrad {
            samples: 8,
            ..Default::default()
        }),
        Box::new(IntegratedGradients {
            steps: 16,
            ..Default::default()
        }),
        Box::new(GradCam::new(gradcam_layer)),
    ]
}

/// How much more of a map's magnitude (`[N, H, W]`) lies on the shape (`masks` `[N, 1, H, W]`,
/// 1 on the shape) than the shape's share of the pixels: 1 is chance.
pub fn enrichment(maps: &Tensor, masks: &Tensor) -> f64 {
    let m = masks.squeeze_dim(1);
    let mag = maps.abs();
    let on = (&mag * &m).sum(Kind::Double).double_value(&[]) / mag.sum(Kind::Double).double_value(&[]);
    on / m.mean(Kind::Double).double_value(&[])
}
