//! Training the built-in CNNs (the only place in gradviz where weights change).

use crate::data::Dataset;
use crate::model::{accuracy, BuiltinModel};
use crate::progress::Progress;
use anyhow::{ensure, Result};
use tch::nn::{ModuleT, OptimizerConfig};
use tch::{nn, Kind, Tensor};

/// Hyperparameters of [`train`].
#[derive(Debug, Clone)]
pub struct TrainConfig {
    pub epochs: usize,
    pub batch_size: i64,
    pub learning_rate: f64,
    /// Seeds the shuffling, dropout and augmentation.
    pub seed: i64,
    /// Random shifts of up to ±2 px, rotations of up to ±10° and scaling by ±8%.
    pub augment: bool,
    /// Show a progress bar or progress lines.
    pub show_progress: bool,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            epochs: 10,
            batch_size: 128,
            learning_rate: 1e-3,
            seed: 0,
            augment: true,
            show_progress: true,
        }
    }
}

/// What happened during training.
#[derive(Debug, Clone)]
pub struct TrainReport {
    /// Mean training loss of each epoch.
    pub epoch_losses: Vec<f64>,
    /// Accuracy on the held-out set after each epoch, when one was given.
    pub epoch_accuracies: Vec<f64>,
}

/// Random small affine transforms of a batch, as one `grid_sample` call.
fn augment(x: &Tensor) -> Tensor {
    let n = x.size()[0];
    let opts = (Kind::Float, x.device());
    let angle = (Tensor::rand([n], opts) * 2.0 - 1.0) * (10f64).to_radians();
    let scale = (Tensor::rand([n], opts) * 2.0 - 1.0) * 0.08 + 1.0;
    let h = x.size()[2] as f64;
    // Normalized coordinates span 2, so a shift of k px is 2k/h.
    let shift = (Tensor::rand([n, 2], opts) * 2.0 - 1.0) * (2.0 * 2.0 / h);
    let (cos, sin) = (angle.cos() / &scale, angle.sin() / &scale);
    let theta = Tensor::stack(
        &[
            Tensor::stack(&[&cos, &(-&sin), &shift.select(1, 0)], 1),
            Tensor::stack(&[&sin, &cos, &shift.select(1, 1)], 1),
        ],
        1,
    );
    let grid = Tensor::affine_grid_generator(&theta, x.size(), false);
    x.grid_sampler(&grid, 0, 0, false)
}

/// Trains `model` on `train` with Adam and cross-entropy; evaluates on `val` after every
/// epoch if given. The model is frozen again afterwards.
pub fn train(
    model: &mut BuiltinModel,
    train: &Dataset,
    val: Option<&Dataset>,
    cfg: &TrainConfig,
) -> Result<TrainReport> {
    ensure!(!train.is_empty(), "the training set is empty");
    ensure!(
        cfg.epochs > 0 && cfg.batch_size > 0,
        "epochs and batch size must be positive"
    );
    tch::manual_seed(cfg.seed);
    model.vs.unfreeze();
    let mut opt = nn::Adam::default().build(&model.vs, cfg.learning_rate)?;
    let n = train.len() as i64;
    let batches = (n + cfg.batch_size - 1) / cfg.batch_size;
    let progress = if cfg.show_progress {
        Progress::new("train", cfg.epochs as u64 * batches as u64)
    } else {
        Progress::hidden()
    };
    let mut report = TrainReport {
        epoch_losses: vec![],
        epoch_accuracies: vec![],
    };
    let mut step = 0u64;
    for epoch in 0..cfg.epochs {
        // Cosine decay: large steps first, fine ones at the end.
        let lr =
            cfg.learning_rate * 0.5 * (1.0 + (std::f64::consts::PI * epoch as f64 / cfg.epochs as f64).cos());
        opt.set_lr(lr);
        let perm = Tensor::randperm(n, (Kind::Int64, train.images.device()));
        let mut total = 0.0;
        for b in 0..batches {
            let idx = perm.narrow(0, b * cfg.batch_size, cfg.batch_size.min(n - b * cfg.batch_size));
            let mut x = train.images.index_select(0, &idx);
            if cfg.augment {
                x = augment(&x);
            }
            let y = train.labels.index_select(0, &idx);
            let loss = model.net.forward_t(&x, true).cross_entropy_for_logits(&y);
            opt.backward_step(&loss);
            let l = loss.double_value(&[]);
            ensure!(l.is_finite(), "training diverged at epoch {epoch}: loss is {l}");
            total += l;
            step += 1;
            progress.update(step, || format!("epoch {} loss {l:.4}", epoch + 1));
        }
        report.epoch_losses.push(total / batches as f64);
        if let Some(val) = val {
            model.freeze();
            report
                .epoch_accuracies
                .push(accuracy(&*model, &val.images, &val.labels)?);
            model.vs.unfreeze();
        }
    }
    progress.finish();
    model.freeze();
    Ok(report)
}
