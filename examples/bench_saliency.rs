//! The Rust half of `bench/saliency.sh`: images/s of gradviz's gradient saliency and
//! Integrated Gradients on a TorchScript model, and of a forward-only pass.
//!
//! `bench_saliency MODEL.pt INPUTS.npy THREADS BATCH IG_STEPS REPS` prints one JSON line.
//! `bench_saliency --dump-inputs OUT.npy N` writes the first N bundled MNIST test images.

use anyhow::{ensure, Context, Result};
use gradviz::model::{Classifier, TorchScriptModel};
use gradviz::saliency::{Attribution, Gradient, IntegratedGradients, Rule, Score, Target};
use gradviz::tch::{self, Tensor};
use std::time::Instant;

/// Best of `reps` timings (seconds) of `f`, after one warm-up call.
fn best_of(reps: usize, mut f: impl FnMut() -> Result<()>) -> Result<f64> {
    f()?;
    let mut best = f64::MAX;
    for _ in 0..reps {
        let t = Instant::now();
        f()?;
        best = best.min(t.elapsed().as_secs_f64());
    }
    Ok(best)
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--dump-inputs") {
        let n: i64 = args.get(2).context("N")?.parse()?;
        let test = gradviz::data::bundled_mnist()?.test.head(n as usize);
        gradviz::io::save_npy(&args[1], &test.images)?;
        return Ok(());
    }
    ensure!(
        args.len() == 6,
        "usage: bench_saliency MODEL.pt INPUTS.npy THREADS BATCH IG_STEPS REPS"
    );
    let threads: i32 = args[2].parse()?;
    let batch: i64 = args[3].parse()?;
    let steps: i64 = args[4].parse()?;
    let reps: usize = args[5].parse()?;
    tch::set_num_threads(threads);
    let model = TorchScriptModel::load(&args[0], Some([1, 28, 28]), None)?;
    let x = gradviz::io::load_npy_images(&args[1], model.input_shape())?;
    let n = x.size()[0];
    let target = Target::Class(3);
    let chunks: Vec<Tensor> = (0..n)
        .step_by(batch as usize)
        .map(|s| x.narrow(0, s, batch.min(n - s)))
        .collect();
    let forward = best_of(reps, || {
        let _g = tch::no_grad_guard();
        for c in &chunks {
            let _ = model.logits(c)?;
        }
        Ok(())
    })?;
    let grad = Gradient {
        score: Score::Logit,
        batch,
    };
    let gradient = best_of(reps, || {
        let _ = grad.attribute(&model, &x, &target)?;
        Ok(())
    })?;
    let ig = IntegratedGradients {
        steps,
        rule: Rule::Midpoint,
        internal_batch: batch,
        ..Default::default()
    };
    // IG per chunk of `batch` images, as Captum is called below.
    let ig_time = best_of(reps.min(3), || {
        for c in &chunks {
            let _ = ig.attribute(&model, c, &target)?;
        }
        Ok(())
    })?;
    println!(
        "{{\"images\": {n}, \"forward_ips\": {:.1}, \"saliency_ips\": {:.1}, \"ig_ips\": {:.2}}}",
        n as f64 / forward,
        n as f64 / gradient,
        n as f64 / ig_time
    );
    Ok(())
}
