//! A short training run really learns.

use gradviz::data::{self, DatasetName};
use gradviz::model::{Arch, BuiltinModel, Classifier};
use gradviz::train::{train, TrainConfig};
use std::sync::Mutex;

// libtorch's random generator is global: tests that seed it must not interleave.
static TORCH_RNG: Mutex<()> = Mutex::new(());

#[test]
fn short_training_run_lowers_the_loss_and_freezes_after() {
    let _rng = TORCH_RNG.lock().unwrap_or_else(|e| e.into_inner());
    let splits = data::bundled_mnist().unwrap();
    let small = splits.train.head(1024);
    let mut m = BuiltinModel::new(Arch::Lenet, DatasetName::Mnist, 0).unwrap();
    let cfg = TrainConfig {
        epochs: 3,
        batch_size: 64,
        augment: false,
        show_progress: false,
        ..Default::default()
    };
    let r = train(&mut m, &small, Some(&splits.test.head(500)), &cfg).unwrap();
    assert_eq!(r.epoch_losses.len(), 3);
    assert!(
        r.epoch_losses[2] < 0.7 * r.epoch_losses[0],
        "losses {:?}",
        r.epoch_losses
    );
    assert!(r.epoch_accuracies[2] > 0.7, "accuracies {:?}", r.epoch_accuracies);
    assert!(m.parameters().iter().all(|p| !p.requires_grad()));
}

#[test]
fn training_is_reproducible_with_a_seed() {
    let _rng = TORCH_RNG.lock().unwrap_or_else(|e| e.into_inner());
    let small = data::bundled_mnist().unwrap().train.head(256);
    let cfg = TrainConfig {
        epochs: 1,
        batch_size: 64,
        show_progress: false,
        seed: 5,
        ..Default::default()
    };
    let run = || {
        let mut m = BuiltinModel::new(Arch::Lenet, DatasetName::Mnist, 1).unwrap();
        train(&mut m, &small, None, &cfg).unwrap().epoch_losses
    };
    assert_eq!(run(), run());
}

/// Weights of `m` as raw bits, by name.
fn weight_bits(m: &BuiltinModel) -> Vec<(String, Vec<u32>)> {
    let mut v: Vec<(String, Vec<u32>)> =
        m.vs.variables()
            .into_iter()
            .map(|(k, t)| {
                let f = Vec::<f32>::try_from(&t.flatten(0, -1)).unwrap();
                (k, f.iter().map(|x| x.to_bits()).collect())
            })
            .collect();
    v.sort();
    v
}

/// gradviz trains with its own Adam (its state must go into checkpoints, and tch cannot
/// read libtorch's); it must still give libtorch's weights bit for bit, so that the
/// shipped models' training commands still reproduce them.
#[test]
fn gradviz_adam_equals_libtorch_adam_bit_for_bit() {
    use gradviz::tch::nn::{ModuleT, OptimizerConfig};
    let _rng = TORCH_RNG.lock().unwrap_or_else(|e| e.into_inner());
    let data = data::bundled_mnist().unwrap().train.head(64);
    let steps = |use_ours: bool| {
        let mut m = BuiltinModel::new(Arch::Lenet, DatasetName::Mnist, 3).unwrap();
        m.vs.unfreeze();
        let params = m.vs.variables();
        let mut ours = gradviz::train::Adam::new(1e-3);
        let mut theirs = gradviz::tch::nn::Adam::default().build(&m.vs, 1e-3).unwrap();
        gradviz::tch::manual_seed(11);
        for _ in 0..5 {
            let loss = m
                .net
                .forward_t(&data.images, true)
                .cross_entropy_for_logits(&data.labels);
            if use_ours {
                for p in params.values() {
                    let mut g = p.grad();
                    if g.defined() {
                        let _ = g.zero_();
                    }
                }
                loss.backward();
                ours.update(&params);
            } else {
                theirs.backward_step(&loss);
            }
        }
        m
    };
    let (a, b) = (steps(true), steps(false));
    let mut max_rel = 0f64;
    let mut differing = 0usize;
    for ((_, x), (_, y)) in weight_bits(&a).iter().zip(&weight_bits(&b)) {
        for (p, q) in x.iter().zip(y) {
            let (p, q) = (f32::from_bits(*p) as f64, f32::from_bits(*q) as f64);
            if p != q {
                differing += 1;
                max_rel = max_rel.max((p - q).abs() / q.abs().max(1e-6));
            }
        }
    }
    assert_eq!(
        differing, 0,
        "{differing} weights differ after 5 Adam steps, by up to {max_rel:e} (relative)"
    );
}
