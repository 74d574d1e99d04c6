//! Robustness of the saliency methods on the MNIST model, side by side: max-sensitivity
//! (Yeh et al. 2019) and the random-logit test (Sixt et al. 2020) on the first test digits,
//! for their true labels.
//!
//! ```text
//! cargo run --release --example robustness_table -- [--images 32] [--radius 0.02] [--samples 5]
//! ```
//! Everything is seeded: the same command prints the same table.

use anyhow::Result;
use clap::Parser;
use gradviz::model::load_model;
use gradviz::robustness::{MaxSensitivity, RandomLogit};
use gradviz::saliency::{
    Attribution, GradCam, Gradient, InputXGradient, IntegratedGradients, Score, SmoothGrad, Target,
};
use std::path::PathBuf;
use std::time::Instant;

#[derive(Parser)]
struct Args {
    #[arg(long, default_value = "models/mnist_cnn.safetensors")]
    model: PathBuf,
    /// The first N test digits of the bundled MNIST split.
    #[arg(long, default_value_t = 32)]
    images: usize,
    /// L∞ radius of the perturbations.
    #[arg(long, default_value_t = 0.02)]
    radius: f64,
    /// Perturbations per image.
    #[arg(long, default_value_t = 5)]
    samples: i64,
    /// libtorch threads (1 avoids OpenMP spin-waiting on a busy machine).
    #[arg(long, default_value_t = 1)]
    threads: i32,
}

fn main() -> Result<()> {
    let a = Args::parse();
    tch::set_num_threads(a.threads);
    let model = load_model(&a.model)?;
    let batch = gradviz::data::bundled_mnist()?.test.head(a.images);
    let target = Target::labels(&batch.labels);
    let methods: Vec<Box<dyn Attribution>> = vec![
        Box::new(Gradient::new(Score::Logit)),
        Box::new(InputXGradient::default()),
        Box::new(SmoothGrad {
            samples: 16,
            ..Default::default()
        }),
        Box::new(IntegratedGradients::new(16)),
        Box::new(GradCam::new("conv4")),
    ];
    let sens = MaxSensitivity {
        radius: a.radius,
        samples: a.samples,
        ..Default::default()
    };
    println!(
        "{} on the first {} bundled MNIST test digits (true labels); max-sensitivity: r = {}, {} samples",
        model.describe(),
        a.images,
        a.radius,
        a.samples
    );
    println!(
        "{:<34} {:>10} {:>10} {:>12} {:>12} {:>6}",
        "method", "sens mean", "sens med", "RL cosine", "RL Spearman", "time"
    );
    for m in &methods {
        let t = Instant::now();
        let s = sens.evaluate(model.as_ref(), m.as_ref(), &batch.images, &target)?;
        let r = RandomLogit::new(0).evaluate(model.as_ref(), m.as_ref(), &batch.images, &target)?;
        println!(
            "{:<34} {:>10.3} {:>10.3} {:>12.3} {:>12.3} {:>5.0}s",
            m.name(),
            s.mean(),
            s.median(),
            r.mean_cosine(),
            r.mean_spearman(),
            t.elapsed().as_secs_f64()
        );
    }
    Ok(())
}
