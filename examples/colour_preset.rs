//! How the 32×32 RGB regularization preset was chosen: trains `cifar10-cnn` and an
//! independent judge on the generated colour shapes, then scores class visualizations made
//! with candidate regularizations by the judge (numbers quoted in
//! `Regularization::colour_32x32`'s docs).
//!
//! `cargo run --release --example colour_preset [SPEC ...]` (a few minutes on 2 idle cores).

use gradviz::ascend::{ascend, naturalness, AscendConfig, Init};
use gradviz::data::shapes;
use gradviz::model::{accuracy, Arch, BuiltinModel};
use gradviz::objective::Objective;
use gradviz::regularize::Regularization;
use gradviz::train::{train, TrainConfig};
use std::time::Instant;

fn trained(
    seed: i64,
    data: &gradviz::data::Splits,
    train_set: &gradviz::data::Dataset,
) -> anyhow::Result<BuiltinModel> {
    let mut m = BuiltinModel::for_data(Arch::Cifar10Cnn, data, seed)?;
    let cfg = TrainConfig {
        epochs: 3,
        batch_size: 32,
        learning_rate: 2e-3,
        seed,
        augment: false,
        show_progress: false,
        ..Default::default()
    };
    let t = Instant::now();
    train(&mut m, train_set, None, &cfg)?;
    println!(
        "seed {seed}: trained on {} images in {:.0} s, test accuracy {:.4}",
        train_set.len(),
        t.elapsed().as_secs_f64(),
        accuracy(&m, &data.test.images, &data.test.labels)?
    );
    Ok(m)
}

fn main() -> anyhow::Result<()> {
    tch::set_num_threads(2);
    let data = shapes::splits(6000, 1000, 0);
    let even: Vec<i64> = (0..data.train.len() as i64).step_by(2).collect();
    let odd: Vec<i64> = (1..data.train.len() as i64).step_by(2).collect();
    let model = trained(0, &data, &data.train.select(&even)?)?;
    let judge = trained(7, &data, &data.train.select(&odd)?)?;
    let classes: Vec<i64> = (0..10).collect();
    let candidates = std::env::args().skip(1).collect::<Vec<_>>();
    let specs: Vec<String> = if candidates.is_empty() {
        [
            "clip",
            "jitter=1,tv=0.02,blur=0.5@4,clip",
            "fourier,clip",
            "fourier,jitter=2,scale=0.95-1.05,rotate=5,clip",
            "fourier,jitter=3,scale=0.9-1.1,rotate=10,clip",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    } else {
        candidates
    };
    println!("spec | seed | model p(target) | judge recognizes | judge p(target) | dist ratio");
    for spec in &specs {
        for seed in 0..2u64 {
            let cfg = AscendConfig {
                regularization: Regularization::parse(spec)?,
                snapshot_every: 0,
                seed,
                ..AscendConfig::regularized_32x32()
            };
            let x0 = Init::noise(0.5, 0.1, seed).make(10, [3, 32, 32])?;
            let run = ascend(&model, &Objective::logits(&classes), &x0, &cfg)?;
            let nat = naturalness(&judge, &run.images, &classes, &data.test)?;
            let p = run.final_target_probs().iter().sum::<f64>() / 10.0;
            println!(
                "{spec} | {seed} | {p:.3} | {}/10 | {:.3} | {:.2}",
                nat.recognized(),
                nat.mean_target_prob(),
                nat.dist_ratio()
            );
        }
    }
    Ok(())
}
