//! The Rust half of `bench/ascend.sh`: gradient-ascent steps/s of `gradviz::ascend` for the
//! 10-class batch on a TorchScript model, per step rule, plus the default regularization.
//!
//! `bench_ascend MODEL.pt THREADS STEPS REPS` prints one JSON line.

use anyhow::{ensure, Result};
use gradviz::ascend::{ascend, AscendConfig, Init, StepRule};
use gradviz::model::{Classifier, TorchScriptModel};
use gradviz::objective::Objective;
use gradviz::regularize::Regularization;
use gradviz::tch;
use std::time::Instant;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    ensure!(args.len() == 4, "usage: bench_ascend MODEL.pt THREADS STEPS REPS");
    let threads: i32 = args[1].parse()?;
    let steps: usize = args[2].parse()?;
    let reps: usize = args[3].parse()?;
    tch::set_num_threads(threads);
    let model = TorchScriptModel::load(&args[0], Some([1, 28, 28]), None)?;
    let classes: Vec<i64> = (0..10).collect();
    let obj = Objective::logits(&classes);
    let x0 = Init::noise(0.1, 0.05, 0).make(10, model.input_shape())?;
    let mut out = Vec::new();
    for (name, rule, lr, reg) in [
        ("plain", StepRule::Plain, 0.05, Regularization::none()),
        ("adam", StepRule::adam(), 0.02, Regularization::none()),
        (
            "adam_default_reg",
            StepRule::adam(),
            0.02,
            Regularization::default_28x28(),
        ),
    ] {
        let cfg = AscendConfig {
            steps,
            lr,
            step_rule: rule,
            regularization: reg,
            snapshot_every: 0,
            ..Default::default()
        };
        ascend(
            &model,
            &obj,
            &x0,
            &AscendConfig {
                steps: 5,
                ..cfg.clone()
            },
        )?; // warm-up
        let mut best = f64::MAX;
        for _ in 0..reps {
            let t = Instant::now();
            ascend(&model, &obj, &x0, &cfg)?;
            best = best.min(t.elapsed().as_secs_f64());
        }
        out.push(format!("\"{name}\": {:.2}", steps as f64 / best));
    }
    println!("{{{}}}", out.join(", "));
    Ok(())
}
