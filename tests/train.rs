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
