//! Naturalness of class visualizations under several settings, judged by an independent
//! model. Used to tune `Regularization::default_28x28`.
//!
//! ```text
//! cargo run --release --example naturalness -- MODEL JUDGE [SCORE:RULE:LR:STEPS:REGULARIZE ...]
//! ```
//! e.g. `logit:plain:0.05:200:none` or `logit:adam:0.02:300:default`.

use anyhow::{Context, Result};
use gradviz::ascend::{ascend, naturalness, AscendConfig, Init, StepRule};
use gradviz::model::load_model;
use gradviz::objective::Objective;
use gradviz::regularize::Regularization;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    anyhow::ensure!(
        args.len() >= 2,
        "usage: naturalness MODEL JUDGE [SCORE:RULE:LR:STEPS:REG ...]"
    );
    let model = load_model(&args[0])?;
    let judge = load_model(&args[1])?;
    let test = gradviz::data::bundled_mnist()?.test;
    let settings: Vec<String> = if args.len() > 2 {
        args[2..].to_vec()
    } else {
        vec![
            "logit:plain:0.05:200:none".into(),
            "softmax:plain:0.05:200:none".into(),
            "logit:adam:0.02:300:default".into(),
        ]
    };
    let classes: Vec<i64> = (0..10).collect();
    let save_dir = std::env::var("NATURALNESS_SAVE").ok();
    for (si, s) in settings.iter().enumerate() {
        let parts: Vec<&str> = s.splitn(5, ':').collect();
        anyhow::ensure!(parts.len() == 5, "setting '{s}' is not SCORE:RULE:LR:STEPS:REG");
        let obj = match parts[0] {
            "logit" => Objective::logits(&classes),
            "softmax" => Objective::probs(&classes),
            "log-softmax" => Objective::log_probs(&classes),
            o => anyhow::bail!("bad score {o}"),
        };
        let cfg = AscendConfig {
            step_rule: parts[1].parse::<StepRule>()?,
            lr: parts[2].parse().context("lr")?,
            steps: parts[3].parse().context("steps")?,
            regularization: Regularization::parse(parts[4])?,
            snapshot_every: 0,
            ..Default::default()
        };
        let mut recog = Vec::new();
        let mut probs = Vec::new();
        let mut own = Vec::new();
        let mut ratio = Vec::new();
        for seed in [0u64, 100, 200] {
            let x0 = Init::noise(0.1, 0.05, seed).make(10, model.input_shape())?;
            let t = std::time::Instant::now();
            let run = ascend(model.as_ref(), &obj, &x0, &AscendConfig { seed, ..cfg.clone() })?;
            let nat = naturalness(judge.as_ref(), &run.images, &classes, &test)?;
            if seed == 0 {
                eprintln!("  {s}: {:.1}s\n{nat}", t.elapsed().as_secs_f64());
                if let Some(d) = &save_dir {
                    let caps: Vec<String> = nat
                        .images
                        .iter()
                        .map(|j| format!("{}:{:.2}", j.judged, j.target_prob))
                        .collect();
                    gradviz::plot::image_grid(&run.images, &caps, 10, 3)?
                        .save(format!("{d}/setting{si}.png"))?;
                }
            }
            recog.push(nat.recognized());
            probs.push(nat.mean_target_prob());
            own.push(run.final_target_probs().iter().sum::<f64>() / 10.0);
            ratio.push(nat.dist_ratio());
        }
        println!(
            "{s:<60} judge recognized {recog:?}/10  judge p {:.3}  model p {:.3}  dist ratio {:.2}",
            probs.iter().sum::<f64>() / 3.0,
            own.iter().sum::<f64>() / 3.0,
            ratio.iter().sum::<f64>() / 3.0
        );
    }
    Ok(())
}
