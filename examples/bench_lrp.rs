//! The Rust half of `bench/lrp.sh`: images/s of gradviz's LRP on a built-in model, per
//! composite, and of a forward-only pass.
//!
//! `bench_lrp MODEL.safetensors N THREADS BATCH REPS INPUTS_OUT.npy` writes the first N
//! bundled MNIST test images to INPUTS_OUT.npy (for the Zennit half) and prints one JSON line.

use anyhow::{ensure, Result};
use gradviz::lrp::{Composite, Lrp};
use gradviz::model::{BuiltinModel, Classifier};
use gradviz::saliency::{Attribution, Target};
use gradviz::tch;
use std::time::Instant;

/// The composites timed, by their CLI names.
const COMPOSITES: [&str; 3] = ["epsilon-plus-flat", "epsilon-alpha2-beta1", "epsilon-gamma-box"];

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
    ensure!(
        args.len() == 6,
        "usage: bench_lrp MODEL.safetensors N THREADS BATCH REPS INPUTS_OUT.npy"
    );
    let n: usize = args[1].parse()?;
    let threads: i32 = args[2].parse()?;
    let batch: i64 = args[3].parse()?;
    let reps: usize = args[4].parse()?;
    tch::set_num_threads(threads);
    let model = BuiltinModel::load(&args[0])?;
    let x = gradviz::data::bundled_mnist()?.test.head(n).images;
    gradviz::io::save_npy(&args[5], &x)?;
    let target = Target::Class(3);
    let forward = best_of(reps, || {
        let _g = tch::no_grad_guard();
        for s in (0..n as i64).step_by(batch as usize) {
            let _ = model.logits(&x.narrow(0, s, batch.min(n as i64 - s)))?;
        }
        Ok(())
    })?;
    let mut fields = vec![
        format!("\"images\": {n}"),
        format!("\"forward\": {:.1}", n as f64 / forward),
    ];
    for name in COMPOSITES {
        let lrp = Lrp {
            composite: Composite::named(name, 1e-6)?,
            batch,
        };
        let t = best_of(reps, || lrp.attribute(&model, &x, &target).map(|_| ()))?;
        fields.push(format!("\"{name}\": {:.1}", n as f64 / t));
    }
    println!("{{{}}}", fields.join(", "));
    Ok(())
}
