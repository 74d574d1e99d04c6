//! Classifiers: built-in CNNs (plain tch `ModuleT` structs whose layers are addressable by
//! name) and any TorchScript classifier, behind the one [`Classifier`] trait. A TorchScript
//! file written by `gradviz import` ([`crate::import`]) also carries its layers (by the
//! source's own names), its [`LayerGraph`] and where it came from ([`ImportedInfo`]).
//!
//! Inputs are always `[N, C, H, W]` f32 in `[0, 1]`; outputs are logits `[N, K]`.
//! Any normalization belongs inside the model.

use crate::data::DatasetName;
use crate::graph::{self, ChainBuilder, LayerGraph, Op as GraphOp};
use anyhow::{bail, ensure, Context, Result};
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use tch::nn::{self, ModuleT};
use tch::{CModule, Device, IValue, Kind, Tensor};

/// What every analysis in gradviz needs from a model.
pub trait Classifier {
    /// Logits `[N, K]` for `[N, C, H, W]` inputs, in eval mode.
    fn logits(&self, x: &Tensor) -> Result<Tensor>;

    /// Logits plus the activations of the named layers, from one forward pass.
    fn forward_with(&self, x: &Tensor, layers: &[&str]) -> Result<(Tensor, Vec<Tensor>)>;

    /// Names accepted by [`Classifier::forward_with`], input to output.
    fn layer_names(&self) -> Vec<String>;

    /// `[C, H, W]` of one input image.
    fn input_shape(&self) -> [i64; 3];

    fn class_names(&self) -> &[String];

    fn device(&self) -> Device;

    /// The weights, to check that an analysis left them untouched.
    fn parameters(&self) -> Vec<Tensor>;

    /// One line for humans, e.g. `mnist-cnn (mnist, 1x28x28 -> 10 classes)`.
    fn describe(&self) -> String;

    fn num_classes(&self) -> i64 {
        self.class_names().len() as i64
    }

    /// Checks that `x` is a float batch of this model's input shape.
    fn check_input(&self, x: &Tensor) -> Result<()> {
        check_batch(x, self.input_shape())
    }

    /// The model's structure, when it is known (built-in and imported models): what LRP,
    /// receptive fields and layer randomization work on.
    fn graph(&self) -> Option<&LayerGraph> {
        None
    }

    /// Every weight and buffer by the name the [`Classifier::graph`] uses for it.
    fn named_tensors(&self) -> Vec<(String, Tensor)> {
        vec![]
    }

    /// The data set the model was trained on, when it is known: it decides how new images
    /// are prepared for it ([`crate::preprocess`]).
    fn dataset(&self) -> Option<DatasetName> {
        None
    }
}

/// Seeds libtorch's process-wide generator and holds it until the guard drops. Without the
/// lock, two threads (parallel tests, a notebook's background work) that initialise or train
/// models at once interleave their draws, and the "seeded" weights differ from run to run.
/// Draw your own seeded tensors under it too; do not create a model while holding it.
pub fn seed_torch_rng(seed: i64) -> std::sync::MutexGuard<'static, ()> {
    static TORCH_RNG: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let guard = TORCH_RNG.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    tch::manual_seed(seed);
    guard
}

/// Checks shape and kind of an input batch.
pub fn check_batch(x: &Tensor, shape: [i64; 3]) -> Result<()> {
    let s = x.size();
    ensure!(
        s.len() == 4 && s[1..] == shape,
        "input has shape {s:?}, expected [N, {}, {}, {}]",
        shape[0],
        shape[1],
        shape[2]
    );
    ensure!(
        matches!(x.kind(), Kind::Float | Kind::Double | Kind::Half | Kind::BFloat16),
        "input has kind {:?}, expected a float tensor in [0, 1]",
        x.kind()
    );
    Ok(())
}

/// Fails when `x` holds NaN or infinite values.
pub fn check_finite(x: &Tensor, what: &str) -> Result<()> {
    let bad = x.isfinite().logical_not().sum(Kind::Int64).int64_value(&[]);
    ensure!(bad == 0, "{what} holds {bad} NaN or infinite values");
    Ok(())
}

/// Fails unless `v` is finite and fits float32: libtorch refuses larger scalars for
/// float32 tensors (`full`, `clamp`) with an error that the non-`f_` calls turn into a panic.
pub fn check_float32(v: f64, what: &str) -> Result<()> {
    ensure!(
        v.is_finite() && v.abs() <= f32::MAX as f64,
        "{what} {v:e} is not a finite float32 value"
    );
    Ok(())
}

/// Softmax probabilities and the arg-max class of a batch.
#[derive(Debug)]
pub struct Predictions {
    /// `[N, K]`.
    pub probs: Tensor,
    pub classes: Vec<i64>,
    pub confidences: Vec<f64>,
}

/// Runs `model` on `x` in chunks of `batch_size` without recording gradients.
pub fn predict(model: &dyn Classifier, x: &Tensor, batch_size: i64) -> Result<Predictions> {
    model.check_input(x)?;
    let _guard = tch::no_grad_guard();
    let n = x.size()[0];
    let mut probs = Vec::new();
    let mut start = 0;
    while start < n {
        let len = batch_size.min(n - start);
        let logits = model.logits(&x.narrow(0, start, len))?;
        probs.push(logits.softmax(-1, Kind::Float).to_device(Device::Cpu));
        start += len;
    }
    let probs = if probs.is_empty() {
        Tensor::zeros([0, model.num_classes()], (Kind::Float, Device::Cpu))
    } else {
        Tensor::cat(&probs, 0)
    };
    let (conf, cls) = probs.max_dim(-1, false);
    Ok(Predictions {
        classes: Vec::<i64>::try_from(&cls)?,
        confidences: Vec::<f64>::try_from(&conf.to_kind(Kind::Double))?,
        probs,
    })
}

/// Fraction of `images` classified as `labels`.
pub fn accuracy(model: &dyn Classifier, images: &Tensor, labels: &Tensor) -> Result<f64> {
    let p = predict(model, images, 500)?;
    let labels = Vec::<i64>::try_from(labels)?;
    ensure!(
        labels.len() == p.classes.len(),
        "{} labels for {} images",
        labels.len(),
        p.classes.len()
    );
    ensure!(!labels.is_empty(), "cannot compute accuracy on an empty data set");
    let right = labels.iter().zip(&p.classes).filter(|(a, b)| a == b).count();
    Ok(right as f64 / labels.len() as f64)
}

// ---------------------------------------------------------------------------------------
// Built-in CNNs

/// The built-in architectures. Their layer names are what hidden-feature objectives and
/// Grad-CAM refer to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arch {
    /// 28×28×1: conv1(32) conv2(32) pool1 conv3(64) conv4(64) pool2 fc1(128) logits.
    MnistCnn,
    /// 28×28×1, a different family for independent checks: conv1(6, 5×5) pool1 conv2(16, 5×5) pool2 fc1(120) fc2(84) logits.
    Lenet,
    /// 32×32×3: conv1(32) conv2(32) pool1 conv3(64) conv4(64) pool2 conv5(128) pool3 fc1(256) logits.
    Cifar10Cnn,
}

impl Arch {
    pub const ALL: [Arch; 3] = [Arch::MnistCnn, Arch::Lenet, Arch::Cifar10Cnn];

    pub fn as_str(self) -> &'static str {
        match self {
            Arch::MnistCnn => "mnist-cnn",
            Arch::Lenet => "lenet",
            Arch::Cifar10Cnn => "cifar10-cnn",
        }
    }

    pub fn input_shape(self) -> [i64; 3] {
        match self {
            Arch::MnistCnn | Arch::Lenet => [1, 28, 28],
            Arch::Cifar10Cnn => [3, 32, 32],
        }
    }

    /// The architecture gradviz trains by default for a data set.
    pub fn default_for(dataset: DatasetName) -> Arch {
        match dataset {
            DatasetName::Mnist | DatasetName::FashionMnist => Arch::MnistCnn,
            DatasetName::Cifar10 => Arch::Cifar10Cnn,
        }
    }

    /// The name and shape of every weight of this architecture with `num_classes` outputs,
    /// as a saved model holds them.
    pub fn tensor_shapes(self, num_classes: i64) -> BTreeMap<String, Vec<i64>> {
        let mut out = BTreeMap::new();
        let mut add = |name: &str, o: i64, rest: &[i64]| {
            out.insert(format!("{name}.weight"), [&[o], rest].concat());
            out.insert(format!("{name}.bias"), vec![o]);
        };
        for b in self.spec() {
            match b {
                BlockSpec::Conv(name, i, o, k) => add(name, o, &[i, k, k]),
                BlockSpec::Dense(name, i, o, _) => add(name, o, &[i]),
                BlockSpec::Logits(name, i) => add(name, num_classes, &[i]),
                BlockSpec::Pool(_) => {}
            }
        }
        out
    }

    /// The architecture gradviz trains by default for images of `[C, H, W]`.
    pub fn default_for_shape(shape: [i64; 3]) -> Result<Arch> {
        match shape {
            [1, 28, 28] => Ok(Arch::MnistCnn),
            [3, 32, 32] => Ok(Arch::Cifar10Cnn),
            [c, h, w] => bail!(
                "no built-in architecture takes {c}x{h}x{w} images (mnist-cnn and lenet take 1x28x28, cifar10-cnn 3x32x32)"
            ),
        }
    }

    fn spec(self) -> Vec<BlockSpec> {
        use BlockSpec::*;
        match self {
            Arch::MnistCnn => vec![
                Conv("conv1", 1, 32, 3),
                Conv("conv2", 32, 32, 3),
                Pool("pool1"),
                Conv("conv3", 32, 64, 3),
                Conv("conv4", 64, 64, 3),
                Pool("pool2"),
                Dense("fc1", 64 * 7 * 7, 128, 0.4),
                Logits("logits", 128),
            ],
            Arch::Lenet => vec![
                Conv("conv1", 1, 6, 5),
                Pool("pool1"),
                Conv("conv2", 6, 16, 5),
                Pool("pool2"),
                Dense("fc1", 16 * 7 * 7, 120, 0.2),
                Dense("fc2", 120, 84, 0.0),
                Logits("logits", 84),
            ],
            Arch::Cifar10Cnn => vec![
                Conv("conv1", 3, 32, 3),
                Conv("conv2", 32, 32, 3),
                Pool("pool1"),
                Conv("conv3", 32, 64, 3),
                Conv("conv4", 64, 64, 3),
                Pool("pool2"),
                Conv("conv5", 64, 128, 3),
                Pool("pool3"),
                Dense("fc1", 128 * 4 * 4, 256, 0.5),
                Logits("logits", 256),
            ],
        }
    }
}

impl std::str::FromStr for Arch {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self> {
        Arch::ALL.into_iter().find(|a| a.as_str() == s).with_context(|| {
            let names: Vec<_> = Arch::ALL.iter().map(|a| a.as_str()).collect();
            format!("unknown architecture '{s}': expected one of {names:?}")
        })
    }
}

impl std::fmt::Display for Arch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

enum BlockSpec {
    /// name, in, out, kernel ("same" padding), then ReLU.
    Conv(&'static str, i64, i64, i64),
    /// 2×2 max pooling.
    Pool(&'static str),
    /// name, in, out, dropout before the layer (flattens its input), then ReLU.
    Dense(&'static str, i64, i64, f64),
    /// The final linear layer, from `in` features to one logit per class.
    Logits(&'static str, i64),
}

enum Op {
    ConvRelu(nn::Conv2D),
    MaxPool,
    DenseRelu(nn::Linear, f64),
    Logits(nn::Linear),
}

/// A feed-forward CNN whose named blocks can be read out during the forward pass.
///
/// Conv and dense blocks include their ReLU, as Keras layers with `activation="relu"` do,
/// so `conv2` means "the output of the second conv layer after its ReLU".
pub struct Cnn {
    blocks: Vec<(String, Op)>,
}

impl std::fmt::Debug for Cnn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.blocks.iter().map(|(n, _)| n))
            .finish()
    }
}

impl Cnn {
    fn new(vs: &nn::Path, arch: Arch, num_classes: i64) -> Cnn {
        let blocks = arch
            .spec()
            .into_iter()
            .map(|b| match b {
                BlockSpec::Conv(name, i, o, k) => {
                    let cfg = nn::ConvConfig {
                        padding: k / 2,
                        ..Default::default()
                    };
                    (
                        name.to_string(),
                        Op::ConvRelu(nn::conv2d(vs / name, i, o, k, cfg)),
                    )
                }
                BlockSpec::Pool(name) => (name.to_string(), Op::MaxPool),
                BlockSpec::Dense(name, i, o, p) => (
                    name.to_string(),
                    Op::DenseRelu(nn::linear(vs / name, i, o, Default::default()), p),
                ),
                BlockSpec::Logits(name, i) => (
                    name.to_string(),
                    Op::Logits(nn::linear(vs / name, i, num_classes, Default::default())),
                ),
            })
            .collect();
        Cnn { blocks }
    }

    pub fn layer_names(&self) -> Vec<String> {
        self.blocks.iter().map(|(n, _)| n.clone()).collect()
    }

    /// The same network as a [`LayerGraph`]; tensor names are those of the `VarStore`.
    pub fn graph(&self) -> Result<LayerGraph> {
        let mut g = ChainBuilder::new();
        let mut flat = false;
        for (name, op) in &self.blocks {
            let n = name.as_str();
            match op {
                Op::ConvRelu(c) => {
                    // Built-in convs are stride 1 with "same" padding (see `Cnn::new`).
                    let k = c.ws.size()[2];
                    let conv = GraphOp::Conv2d {
                        stride: [1, 1],
                        padding: [k / 2, k / 2],
                        dilation: [1, 1],
                        groups: 1,
                    };
                    g.push(&format!("{n}/conv"), n, conv, &graph::weight_bias(n))
                        .push(n, n, GraphOp::Relu, &[]);
                }
                Op::MaxPool => {
                    let pool = GraphOp::MaxPool2d {
                        kernel: [2, 2],
                        stride: [2, 2],
                        padding: [0, 0],
                        dilation: [1, 1],
                        ceil_mode: false,
                    };
                    g.push(n, n, pool, &[]);
                }
                Op::DenseRelu(..) | Op::Logits(_) => {
                    if !flat {
                        g.push(
                            &format!("{n}/flatten"),
                            n,
                            GraphOp::Flatten { start: 1, end: -1 },
                            &[],
                        );
                        flat = true;
                    }
                    if matches!(op, Op::DenseRelu(..)) {
                        g.push(&format!("{n}/linear"), n, GraphOp::Linear, &graph::weight_bias(n))
                            .push(n, n, GraphOp::Relu, &[]);
                    } else {
                        g.push(n, n, GraphOp::Linear, &graph::weight_bias(n));
                    }
                }
            }
        }
        g.build()
    }

    /// Draws from libtorch's generator exactly what one training-mode forward pass of a
    /// batch of `n` draws (the dropout masks), without computing anything else: what a
    /// resumed training run replays for the batches it skips.
    pub fn draw_dropout_masks(&self, n: i64) {
        for (_, op) in &self.blocks {
            if let Op::DenseRelu(l, p) = op {
                let features = l.ws.size()[1];
                let _ = Tensor::zeros([n, features], (Kind::Float, l.ws.device())).dropout(*p, true);
            }
        }
    }

    /// The forward pass, handing each block's output to `visit`.
    pub fn forward_visit(&self, x: &Tensor, train: bool, mut visit: impl FnMut(&str, &Tensor)) -> Tensor {
        let mut h = x.shallow_clone();
        for (name, op) in &self.blocks {
            h = match op {
                Op::ConvRelu(c) => h.apply(c).relu(),
                Op::MaxPool => h.max_pool2d_default(2),
                Op::DenseRelu(l, p) => h.flatten(1, -1).dropout(*p, train).apply(l).relu(),
                Op::Logits(l) => h.flatten(1, -1).apply(l),
            };
            visit(name, &h);
        }
        h
    }
}

impl nn::ModuleT for Cnn {
    fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        self.forward_visit(x, train, |_, _| {})
    }
}

const META_FORMAT: &str = "gradviz.format";
const META_ARCH: &str = "gradviz.arch";
const META_DATASET: &str = "gradviz.dataset";
const META_CLASSES: &str = "gradviz.classes";
const META_TRAIN_SUBSET: &str = "gradviz.train_subset";

/// A built-in CNN with its weights, architecture and the data set it was made for.
pub struct BuiltinModel {
    pub vs: nn::VarStore,
    pub net: Cnn,
    pub arch: Arch,
    /// The known data set it was made for (`None` for user data such as an image folder).
    pub dataset: Option<DatasetName>,
    /// The data set's name: `mnist`, or e.g. the image folder's name.
    pub data_name: String,
    /// Which images of the train split it was trained on, e.g. `even` (indices 0, 2, 4, …);
    /// `None` when the file does not say. Saved in the metadata, so that an independent
    /// judge can be shown to have seen none of the analysed model's training images.
    pub train_subset: Option<TrainSubset>,
    class_names: Vec<String>,
    graph: LayerGraph,
}

/// The images of a train split that a model was trained on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrainSubset {
    All,
    /// Indices 0, 2, 4, …
    Even,
    /// Indices 1, 3, 5, …
    Odd,
}

impl TrainSubset {
    pub fn as_str(self) -> &'static str {
        match self {
            TrainSubset::All => "all",
            TrainSubset::Even => "even",
            TrainSubset::Odd => "odd",
        }
    }

    /// Whether two models trained on these subsets of the same split saw no common image.
    pub fn disjoint(self, other: TrainSubset) -> bool {
        matches!(
            (self, other),
            (TrainSubset::Even, TrainSubset::Odd) | (TrainSubset::Odd, TrainSubset::Even)
        )
    }

    /// The indices of this subset among `n` images.
    pub fn indices(self, n: usize) -> Vec<i64> {
        let (start, step) = match self {
            TrainSubset::All => (0, 1),
            TrainSubset::Even => (0, 2),
            TrainSubset::Odd => (1, 2),
        };
        (start..n as i64).step_by(step).collect()
    }
}

impl std::str::FromStr for TrainSubset {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "all" => Ok(TrainSubset::All),
            "even" => Ok(TrainSubset::Even),
            "odd" => Ok(TrainSubset::Odd),
            other => bail!("unknown train subset '{other}' (all, even or odd)"),
        }
    }
}

impl std::fmt::Display for TrainSubset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::fmt::Debug for BuiltinModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "BuiltinModel({})", self.describe())
    }
}

impl BuiltinModel {
    /// A freshly initialized model; `seed` makes the initialization reproducible.
    pub fn new(arch: Arch, dataset: DatasetName, seed: i64) -> Result<BuiltinModel> {
        Self::build(
            arch,
            Some(dataset),
            dataset.as_str(),
            dataset.class_names(),
            dataset.input_shape(),
            seed,
        )
    }

    /// A freshly initialized model for the classes and image shape of `data` (any data
    /// set [`crate::data::open`] reads, e.g. an image folder).
    pub fn for_data(arch: Arch, data: &crate::data::Splits, seed: i64) -> Result<BuiltinModel> {
        Self::build(
            arch,
            data.known,
            &data.name,
            data.class_names().to_vec(),
            data.input_shape(),
            seed,
        )
    }

    fn build(
        arch: Arch,
        dataset: Option<DatasetName>,
        data_name: &str,
        class_names: Vec<String>,
        shape: [i64; 3],
        seed: i64,
    ) -> Result<BuiltinModel> {
        ensure!(
            arch.input_shape() == shape,
            "architecture {arch} takes {:?} inputs but {data_name} images are {shape:?}",
            arch.input_shape()
        );
        ensure!(
            class_names.len() >= 2,
            "a classifier needs at least 2 classes, {data_name} has {}",
            class_names.len()
        );
        let _rng = seed_torch_rng(seed);
        let vs = nn::VarStore::new(Device::Cpu);
        let net = Cnn::new(&vs.root(), arch, class_names.len() as i64);
        let graph = net.graph()?;
        Ok(BuiltinModel {
            vs,
            net,
            arch,
            dataset,
            data_name: data_name.to_string(),
            train_subset: None,
            class_names,
            graph,
        })
    }

    /// Saves weights and metadata as safetensors, atomically. The same weights give the
    /// same bytes: tensors and metadata are written in sorted order.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        crate::io::write_atomic(path.as_ref(), &self.safetensors(None)?)
    }

    /// Saves like [`BuiltinModel::save`], with the record of what made the model in the
    /// metadata (`gradviz.provenance`); `gradviz info FILE` prints it.
    pub fn save_with(&self, path: impl AsRef<Path>, record: &crate::provenance::Provenance) -> Result<()> {
        crate::io::write_atomic(path.as_ref(), &self.safetensors(Some(record))?)
    }

    fn safetensors(&self, record: Option<&crate::provenance::Provenance>) -> Result<Vec<u8>> {
        let mut meta: BTreeMap<String, String> = [
            (META_FORMAT.to_string(), "1".to_string()),
            (META_ARCH.to_string(), self.arch.as_str().to_string()),
            (META_DATASET.to_string(), self.data_name.clone()),
            (
                META_CLASSES.to_string(),
                serde_json::to_string(&self.class_names)?,
            ),
        ]
        .into();
        if let Some(subset) = self.train_subset {
            meta.insert(META_TRAIN_SUBSET.to_string(), subset.to_string());
        }
        if let Some(r) = record {
            meta.insert(crate::provenance::META_KEY.to_string(), r.to_json()?);
        }
        safetensors_bytes(&self.vs.variables(), &meta)
    }

    /// Loads a model saved by [`BuiltinModel::save`]; the file says which architecture it is.
    pub fn load(path: impl AsRef<Path>) -> Result<BuiltinModel> {
        Self::load_checked(path.as_ref(), None)
    }

    /// Loads a model like [`BuiltinModel::load`], with its weights on `device`.
    pub fn load_on(path: impl AsRef<Path>, device: Device) -> Result<BuiltinModel> {
        let mut model = Self::load(path)?;
        model.to_device(device)?;
        Ok(model)
    }

    /// Moves the weights to `device`; an error if it is not on this machine. They are
    /// always made on the CPU first (seeded initialization, loading), so a model is the
    /// same on every device.
    pub fn to_device(&mut self, device: Device) -> Result<()> {
        crate::device::ensure_available(device)?;
        if self.vs.device() != device {
            self.vs.set_device(device);
        }
        Ok(())
    }

    /// Loads a model and fails unless it is of architecture `arch`.
    pub fn load_as(path: impl AsRef<Path>, arch: Arch) -> Result<BuiltinModel> {
        Self::load_checked(path.as_ref(), Some(arch))
    }

    fn load_checked(path: &Path, want: Option<Arch>) -> Result<BuiltinModel> {
        let p = path.display().to_string();
        let bytes = std::fs::read(path).with_context(|| format!("cannot read model file {p}"))?;
        Self::from_bytes(&bytes, &p, want)
    }

    /// Loads a model from the bytes of a file saved by [`BuiltinModel::save`]; `what` names
    /// the source in errors. With `want`, fails unless the model is of that architecture.
    pub fn from_bytes(bytes: &[u8], what: &str, want: Option<Arch>) -> Result<BuiltinModel> {
        let p = what;
        let header = ModelHeader::parse(bytes, p)?;
        let arch = header.arch;
        if let Some(want) = want {
            ensure!(
                want == arch,
                "{p}: holds a '{arch}' model, not the requested '{want}' architecture"
            );
        }
        let st = safetensors::SafeTensors::deserialize(bytes)
            .map_err(|e| anyhow::anyhow!("{p}: not a valid safetensors file ({e:?})"))?;
        let ModelHeader {
            data_name,
            dataset,
            class_names,
            train_subset,
            ..
        } = header;
        let mut model = BuiltinModel::build(arch, dataset, &data_name, class_names, arch.input_shape(), 0)
            .with_context(|| p.to_string())?;
        model.train_subset = train_subset;
        let mut vars = model.vs.variables();
        tch::no_grad(|| -> Result<()> {
            for (name, var) in vars.iter_mut() {
                let view = st
                    .tensor(name)
                    .map_err(|_| anyhow::anyhow!("{p}: tensor '{name}' of architecture {arch} is missing"))?;
                let floats: Vec<f32> = view
                    .data()
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect();
                let t = Tensor::from_slice(&floats).view(var.size().as_slice());
                check_finite(&t, &format!("{p}: tensor '{name}'"))?;
                var.copy_(&t);
            }
            Ok(())
        })?;
        model.vs.freeze();
        Ok(model)
    }

    /// Stops gradients from reaching the weights (done by `load`; call after training).
    pub fn freeze(&mut self) {
        self.vs.freeze();
    }
}

/// What a gradviz model file says about itself, checked against its architecture (every
/// tensor present, F32, of the right shape) before anything is allocated for the model.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelHeader {
    pub arch: Arch,
    /// The data set's name as recorded (any name: models trained on user data carry theirs).
    pub data_name: String,
    /// The known data set of that name, if it is one.
    pub dataset: Option<DatasetName>,
    pub class_names: Vec<String>,
    /// Which half of the train split the model was trained on, when recorded.
    pub train_subset: Option<TrainSubset>,
}

impl ModelHeader {
    /// Reads and checks the header of a gradviz safetensors file held in memory.
    pub fn parse(bytes: &[u8], what: &str) -> Result<ModelHeader> {
        let p = what;
        let (_, header) = safetensors::SafeTensors::read_metadata(bytes)
            .map_err(|e| anyhow::anyhow!("{p}: not a valid safetensors file ({e:?})"))?;
        let meta: BTreeMap<String, String> = header
            .metadata()
            .clone()
            .map(|m| m.into_iter().collect())
            .unwrap_or_default();
        let get = |k: &str| {
            meta.get(k)
                .with_context(|| format!("{p}: not a gradviz model (metadata '{k}' missing)"))
        };
        let arch: Arch = get(META_ARCH)?.parse().with_context(|| p.to_string())?;
        let data_name = get(META_DATASET)?.clone();
        let dataset: Option<DatasetName> = data_name.parse().ok();
        let class_names: Vec<String> =
            serde_json::from_str(get(META_CLASSES)?).with_context(|| format!("{p}: bad class list"))?;
        ensure!(!class_names.is_empty(), "{p}: the class list is empty");
        let train_subset = match meta.get(META_TRAIN_SUBSET) {
            Some(s) => Some(
                s.parse()
                    .with_context(|| format!("{p}: bad metadata '{META_TRAIN_SUBSET}'"))?,
            ),
            None => None,
        };
        let expected = arch.tensor_shapes(class_names.len() as i64);
        let infos = header.tensors();
        if let Some(extra) = infos.keys().find(|n| !expected.contains_key(*n)) {
            bail!("{p}: tensor '{extra}' does not belong to architecture {arch}");
        }
        for (name, shape) in &expected {
            let info = infos
                .get(name)
                .with_context(|| format!("{p}: tensor '{name}' of architecture {arch} is missing"))?;
            ensure!(
                info.dtype == safetensors::Dtype::F32,
                "{p}: tensor '{name}' is {:?}, expected F32",
                info.dtype
            );
            let got: Vec<i64> = info.shape.iter().map(|&d| d as i64).collect();
            ensure!(
                got == *shape,
                "{p}: tensor '{name}' has shape {got:?} but architecture {arch} needs {shape:?}"
            );
        }
        Ok(ModelHeader {
            arch,
            data_name,
            dataset,
            class_names,
            train_subset,
        })
    }
}

/// A safetensors file of `tensors` (stored as F32) and `meta`, with tensors and keys in
/// sorted order so that the same content always gives the same bytes.
pub fn safetensors_bytes(
    tensors: &HashMap<String, Tensor>,
    meta: &BTreeMap<String, String>,
) -> Result<Vec<u8>> {
    let names: std::collections::BTreeSet<&String> = tensors.keys().collect();
    let mut header = BTreeMap::new();
    header.insert("__metadata__".to_string(), serde_json::to_value(meta)?);
    let mut data = Vec::new();
    for name in names {
        let t = tensors[name]
            .detach()
            .to_device(Device::Cpu)
            .to_kind(Kind::Float)
            .contiguous();
        let v = Vec::<f32>::try_from(&t.flatten(0, -1))?;
        let start = data.len();
        data.extend(v.iter().flat_map(|f| f.to_le_bytes()));
        header.insert(
            name.clone(),
            serde_json::json!({"dtype": "F32", "shape": t.size(), "data_offsets": [start, data.len()]}),
        );
    }
    let mut json = serde_json::to_vec(&header)?;
    json.resize(json.len().div_ceil(8) * 8, b' ');
    let mut out = (json.len() as u64).to_le_bytes().to_vec();
    out.extend(json);
    out.extend(data);
    Ok(out)
}

impl Classifier for BuiltinModel {
    fn logits(&self, x: &Tensor) -> Result<Tensor> {
        self.check_input(x)?;
        Ok(self
            .net
            .forward_t(&x.to_kind(Kind::Float).to_device(self.vs.device()), false))
    }

    fn forward_with(&self, x: &Tensor, layers: &[&str]) -> Result<(Tensor, Vec<Tensor>)> {
        self.check_input(x)?;
        let known = self.layer_names();
        for l in layers {
            ensure!(
                known.iter().any(|k| k == l),
                "unknown layer '{l}' in {}: valid layers are {known:?}",
                self.arch
            );
        }
        let mut found: Vec<Option<Tensor>> = layers.iter().map(|_| None).collect();
        let x = x.to_kind(Kind::Float).to_device(self.vs.device());
        let logits = self.net.forward_visit(&x, false, |name, h| {
            for (slot, l) in found.iter_mut().zip(layers) {
                if *l == name {
                    *slot = Some(h.shallow_clone());
                }
            }
        });
        Ok((
            logits,
            found.into_iter().map(|t| t.expect("checked above")).collect(),
        ))
    }

    fn layer_names(&self) -> Vec<String> {
        self.net.layer_names()
    }

    fn input_shape(&self) -> [i64; 3] {
        self.arch.input_shape()
    }

    fn class_names(&self) -> &[String] {
        &self.class_names
    }

    fn device(&self) -> Device {
        self.vs.device()
    }

    fn parameters(&self) -> Vec<Tensor> {
        self.vs.trainable_variables()
    }

    fn describe(&self) -> String {
        let [c, h, w] = self.input_shape();
        let subset = match self.train_subset {
            Some(s @ (TrainSubset::Even | TrainSubset::Odd)) => format!(", trained on the {s} half"),
            _ => String::new(),
        };
        format!(
            "{} ({}, {c}x{h}x{w} -> {} classes{subset})",
            self.arch,
            self.data_name,
            self.class_names.len()
        )
    }

    fn graph(&self) -> Option<&LayerGraph> {
        Some(&self.graph)
    }

    fn named_tensors(&self) -> Vec<(String, Tensor)> {
        let mut v: Vec<(String, Tensor)> = self.vs.variables().into_iter().collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    fn dataset(&self) -> Option<DatasetName> {
        self.dataset
    }
}

// ---------------------------------------------------------------------------------------
// TorchScript

/// What `gradviz import` stores in the TorchScript file it writes (returned as JSON by the
/// module's `gradviz_metadata()` method).
#[derive(Debug, Clone, Deserialize)]
pub struct ImportedInfo {
    pub input_shape: [i64; 3],
    pub class_names: Vec<String>,
    /// The user-facing layers in forward order: PyTorch module paths (`block1.conv2`),
    /// functional calls by their torch.fx names (`add`), Keras layer names.
    pub layers: Vec<String>,
    /// Why the model has no layers (a TorchScript source, a model torch.fx cannot trace).
    pub layers_missing_reason: Option<String>,
    /// Why the model has no [`LayerGraph`] (an op gradviz does not know).
    pub graph_missing_reason: Option<String>,
    /// Where the model came from: file name, SHA-256, format, converter versions.
    pub source: serde_json::Value,
    pub softmax_removed: bool,
    /// The model outputs probabilities with no separable softmax: no logit saliency.
    pub outputs_probabilities: bool,
    pub notes: Vec<String>,
    pub warnings: Vec<String>,
    #[serde(default)]
    tensor_prefix: String,
    #[serde(default)]
    graph: Option<serde_json::Value>,
}

/// Any classifier exported from PyTorch with `torch.jit.script` or `torch.jit.trace`, or
/// written by `gradviz import` (then with named layers, a layer graph and provenance).
pub struct TorchScriptModel {
    module: CModule,
    input_shape: [i64; 3],
    class_names: Vec<String>,
    source: String,
    imported: Option<ImportedInfo>,
    graph: Option<LayerGraph>,
    device: Device,
}

impl std::fmt::Debug for TorchScriptModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TorchScriptModel({})", self.describe())
    }
}

/// Input shapes tried when a TorchScript file does not say what it takes.
const PROBE_SHAPES: [[i64; 3]; 2] = [[1, 28, 28], [3, 32, 32]];

impl TorchScriptModel {
    /// Loads a TorchScript classifier. A file written by `gradviz import` knows its input
    /// shape, classes and layers; for other files `input_shape = None` probes 1×28×28 and
    /// 3×32×32 and `class_names = None` names classes "0", "1", ….
    pub fn load(
        path: impl AsRef<Path>,
        input_shape: Option<[i64; 3]>,
        class_names: Option<Vec<String>>,
    ) -> Result<TorchScriptModel> {
        Self::load_on(path, input_shape, class_names, Device::Cpu)
    }

    /// Loads like [`TorchScriptModel::load`], with the module's tensors on `device`.
    pub fn load_on(
        path: impl AsRef<Path>,
        input_shape: Option<[i64; 3]>,
        class_names: Option<Vec<String>>,
        device: Device,
    ) -> Result<TorchScriptModel> {
        let path = path.as_ref();
        let p = path.display();
        ensure!(path.is_file(), "model file {p} does not exist");
        crate::device::ensure_available(device)?;
        let mut module = CModule::load_on_device(path, device)
            .map_err(|e| anyhow::anyhow!("{p}: not a loadable TorchScript module: {e}"))?;
        module.set_eval();
        for (_, t) in module
            .named_parameters()
            .map_err(|e| anyhow::anyhow!("{p}: {e}"))?
        {
            let _ = t.set_requires_grad(false);
        }
        if let Some(info) = imported_info(&module).with_context(|| format!("{p}"))? {
            let source = p.to_string();
            return Self::from_imported(module, info, source, input_shape, class_names, device);
        }
        let shapes: Vec<[i64; 3]> = match input_shape {
            Some(s) => vec![s],
            None => PROBE_SHAPES.to_vec(),
        };
        let mut errors = Vec::new();
        for shape in shapes {
            match probe_classes(&module, shape, device) {
                Ok(k) => {
                    let class_names = class_names.unwrap_or_else(|| (0..k).map(|i| i.to_string()).collect());
                    ensure!(
                        class_names.len() as i64 == k,
                        "{p}: model has {k} outputs but {} class names were given",
                        class_names.len()
                    );
                    return Ok(TorchScriptModel {
                        module,
                        input_shape: shape,
                        class_names,
                        source: p.to_string(),
                        imported: None,
                        graph: None,
                        device,
                    });
                }
                Err(e) => errors.push(e),
            }
        }
        bail!(
            "{p}: TorchScript model does not map [N, C, H, W] images to [N, K] logits ({})",
            errors.join("; ")
        )
    }

    fn from_imported(
        module: CModule,
        mut info: ImportedInfo,
        source: String,
        input_shape: Option<[i64; 3]>,
        class_names: Option<Vec<String>>,
        device: Device,
    ) -> Result<TorchScriptModel> {
        let [c, h, w] = info.input_shape;
        if let Some(s) = input_shape {
            ensure!(
                s == info.input_shape,
                "{source}: the imported model takes {c}x{h}x{w} inputs, not {}x{}x{}",
                s[0],
                s[1],
                s[2]
            );
        }
        let k =
            probe_classes(&module, info.input_shape, device).map_err(|e| anyhow::anyhow!("{source}: {e}"))?;
        let class_names = class_names.unwrap_or_else(|| info.class_names.clone());
        ensure!(
            class_names.len() as i64 == k,
            "{source}: model has {k} outputs but {} class names were given",
            class_names.len()
        );
        let graph = info.take_graph().with_context(|| source.clone())?;
        Ok(TorchScriptModel {
            module,
            input_shape: info.input_shape,
            class_names,
            source,
            imported: Some(info),
            graph,
            device,
        })
    }

    /// What `gradviz import` recorded about the model, for an imported file.
    pub fn imported(&self) -> Option<&ImportedInfo> {
        self.imported.as_ref()
    }

    /// Why [`Classifier::layer_names`] is empty, or `None` when the model has layers.
    pub fn layers_missing_reason(&self) -> Option<String> {
        match &self.imported {
            None => Some(format!(
                "TorchScript model {} exposes no named layers; import it with `gradviz import` (from the module or its class and state_dict) to get its layers",
                self.source
            )),
            Some(i) if i.layers.is_empty() => Some(format!(
                "imported model {} has no layers: {}",
                self.source,
                i.layers_missing_reason.as_deref().unwrap_or("none were recorded")
            )),
            Some(_) => None,
        }
    }

    /// Logits and the outputs of the layers at `indices` of the imported layer list.
    fn forward_with_indices(&self, x: &Tensor, indices: Vec<i64>) -> Result<(Tensor, Vec<Tensor>)> {
        let n = indices.len();
        let out = self
            .module
            .method_is(
                "forward_with_layer_indices",
                &[IValue::Tensor(x.shallow_clone()), IValue::IntList(indices)],
            )
            .map_err(|e| anyhow::anyhow!("TorchScript forward failed: {}", first_line(&e.to_string())))?;
        let bad = || {
            anyhow::anyhow!(
                "{}: forward_with_layer_indices returned an unexpected value",
                self.source
            )
        };
        let IValue::Tuple(mut parts) = out else {
            return Err(bad());
        };
        ensure!(parts.len() == 2, bad());
        let acts = match parts.pop() {
            Some(IValue::TensorList(v)) => v,
            Some(IValue::GenericList(v)) => v
                .into_iter()
                .map(|i| match i {
                    IValue::Tensor(t) => Ok(t),
                    _ => Err(bad()),
                })
                .collect::<Result<_>>()?,
            _ => return Err(bad()),
        };
        let Some(IValue::Tensor(logits)) = parts.pop() else {
            return Err(bad());
        };
        ensure!(acts.len() == n, bad());
        Ok((logits, acts))
    }
}

/// The metadata of a file written by `gradviz import`; `None` for other TorchScript files.
fn imported_info(module: &CModule) -> Result<Option<ImportedInfo>> {
    let no_args: [IValue; 0] = [];
    let Ok(IValue::String(json)) = module.method_is("gradviz_metadata", &no_args) else {
        return Ok(None);
    };
    ImportedInfo::from_json(&json).map(Some)
}

/// The largest input an imported model's metadata may claim: channels, side, values.
const MAX_IMPORTED_CHANNELS: i64 = 64;
const MAX_IMPORTED_SIDE: i64 = 16_384;
const MAX_IMPORTED_VALUES: i64 = 1 << 26;

impl ImportedInfo {
    /// Parses the metadata JSON that `gradviz import` stores, and checks the input shape it
    /// claims before anything is allocated for it (the model is probed with that shape).
    pub fn from_json(json: &str) -> Result<ImportedInfo> {
        let info: ImportedInfo =
            serde_json::from_str(json).context("the gradviz import metadata is invalid")?;
        let [c, h, w] = info.input_shape;
        ensure!(
            (1..=MAX_IMPORTED_CHANNELS).contains(&c)
                && (1..=MAX_IMPORTED_SIDE).contains(&h)
                && (1..=MAX_IMPORTED_SIDE).contains(&w)
                && c * h * w <= MAX_IMPORTED_VALUES,
            "the gradviz import metadata claims an impossible input shape {c}x{h}x{w}"
        );
        ensure!(
            !info.class_names.is_empty(),
            "the gradviz import metadata names no classes"
        );
        Ok(info)
    }

    /// The stored layer graph, parsed (taken out of the metadata).
    pub fn take_graph(&mut self) -> Result<Option<LayerGraph>> {
        match self.graph.take() {
            Some(v) => Ok(Some(
                LayerGraph::from_json(&v.to_string()).context("the stored layer graph is invalid")?,
            )),
            None => Ok(None),
        }
    }
}

/// The number of classes the module (on `device`) outputs for inputs of `shape`.
fn probe_classes(module: &CModule, shape: [i64; 3], device: Device) -> std::result::Result<i64, String> {
    let probe = Tensor::zeros([2, shape[0], shape[1], shape[2]], (Kind::Float, device));
    match tch::no_grad(|| module.forward_ts(&[probe])) {
        Ok(out) if out.dim() == 2 && out.size()[0] == 2 => Ok(out.size()[1]),
        Ok(out) => Err(format!(
            "{shape:?} gave output shape {:?}, expected [N, K]",
            out.size()
        )),
        Err(e) => Err(format!("{shape:?}: {}", first_line(&e.to_string()))),
    }
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or(s)
}

impl Classifier for TorchScriptModel {
    fn logits(&self, x: &Tensor) -> Result<Tensor> {
        self.check_input(x)?;
        self.module
            .forward_ts(&[crate::device::to_model_device(self, &x.to_kind(Kind::Float))])
            .map_err(|e| anyhow::anyhow!("TorchScript forward failed: {}", first_line(&e.to_string())))
    }

    fn forward_with(&self, x: &Tensor, layers: &[&str]) -> Result<(Tensor, Vec<Tensor>)> {
        if layers.is_empty() {
            return Ok((self.logits(x)?, vec![]));
        }
        let info = match (&self.imported, self.layers_missing_reason()) {
            (Some(info), None) => info,
            (_, why) => bail!("{} (asked for {layers:?})", why.unwrap_or_default()),
        };
        self.check_input(x)?;
        let indices = layers
            .iter()
            .map(|l| {
                info.layers
                    .iter()
                    .position(|k| k == l)
                    .map(|i| i as i64)
                    .with_context(|| {
                        format!(
                            "unknown layer '{l}' in {}: valid layers are {:?}",
                            self.source, info.layers
                        )
                    })
            })
            .collect::<Result<Vec<_>>>()?;
        self.forward_with_indices(
            &crate::device::to_model_device(self, &x.to_kind(Kind::Float)),
            indices,
        )
    }

    fn layer_names(&self) -> Vec<String> {
        self.imported
            .as_ref()
            .map(|i| i.layers.clone())
            .unwrap_or_default()
    }

    fn input_shape(&self) -> [i64; 3] {
        self.input_shape
    }

    fn class_names(&self) -> &[String] {
        &self.class_names
    }

    fn device(&self) -> Device {
        self.device
    }

    fn parameters(&self) -> Vec<Tensor> {
        self.module
            .named_parameters()
            .map(|v| v.into_iter().map(|(_, t)| t).collect())
            .unwrap_or_default()
    }

    fn describe(&self) -> String {
        let [c, h, w] = self.input_shape;
        let kind = match &self.imported {
            Some(i) => format!(
                "imported {}",
                i.source.get("format").and_then(|f| f.as_str()).unwrap_or("model")
            ),
            None => "TorchScript".to_string(),
        };
        format!(
            "{kind} {} ({c}x{h}x{w} -> {} classes)",
            self.source,
            self.class_names.len()
        )
    }

    fn graph(&self) -> Option<&LayerGraph> {
        self.graph.as_ref()
    }

    /// The parameters of the traced model (BatchNorm statistics included: the exporter
    /// registers them as parameters), by the names the graph uses.
    fn named_tensors(&self) -> Vec<(String, Tensor)> {
        let Some(info) = &self.imported else {
            return vec![];
        };
        let mut v: Vec<(String, Tensor)> = self
            .module
            .named_parameters()
            .unwrap_or_default()
            .into_iter()
            .filter_map(|(n, t)| n.strip_prefix(&info.tensor_prefix).map(|s| (s.to_string(), t)))
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v.dedup_by(|a, b| a.0 == b.0);
        v
    }
}

/// Like [`load_model`], but a TorchScript file is taken to be a classifier for `dataset`:
/// its input shape and class names come from the data set instead of probing.
pub fn load_model_for(path: impl AsRef<Path>, dataset: Option<DatasetName>) -> Result<Box<dyn Classifier>> {
    load_model_for_on(path, dataset, Device::Cpu)
}

/// [`load_model_for`] with the model on `device` (see [`crate::device::DeviceChoice`]).
pub fn load_model_for_on(
    path: impl AsRef<Path>,
    dataset: Option<DatasetName>,
    device: Device,
) -> Result<Box<dyn Classifier>> {
    let path = path.as_ref();
    match dataset {
        Some(d) if path.extension().is_none_or(|e| e != "safetensors") => Ok(Box::new(
            TorchScriptModel::load_on(path, Some(d.input_shape()), Some(d.class_names()), device)?,
        )),
        _ => load_model_on(path, device),
    }
}

/// Loads any model gradviz understands on the CPU: gradviz safetensors (`.safetensors`)
/// or TorchScript (anything else, typically `.pt`).
pub fn load_model(path: impl AsRef<Path>) -> Result<Box<dyn Classifier>> {
    load_model_on(path, Device::Cpu)
}

/// [`load_model`] with the model on `device`, e.g.
/// `load_model_on(path, DeviceChoice::Auto.resolve()?)`: every analysis of it then
/// computes there.
pub fn load_model_on(path: impl AsRef<Path>, device: Device) -> Result<Box<dyn Classifier>> {
    let path = path.as_ref();
    ensure!(path.is_file(), "model file {} does not exist", path.display());
    let is_safetensors = path.extension().is_some_and(|e| e == "safetensors");
    if is_safetensors {
        Ok(Box::new(BuiltinModel::load_on(path, device)?))
    } else {
        Ok(Box::new(TorchScriptModel::load_on(path, None, None, device)?))
    }
}

/// One row of a model's layer listing.
#[derive(Debug, Clone)]
pub struct LayerSummary {
    pub name: String,
    /// Output shape for one input image, batch dimension first (`[1, C, H, W]`, `[1, K]`).
    pub output_shape: Vec<i64>,
    /// Number of values in the layer's tensors: weights, biases and BatchNorm statistics.
    pub tensor_values: i64,
}

/// The layers of `model` in forward order, with output shapes (from one forward pass of a
/// blank image) and tensor sizes. Empty for a model without named layers.
pub fn layer_summary(model: &dyn Classifier) -> Result<Vec<LayerSummary>> {
    let names = model.layer_names();
    if names.is_empty() {
        return Ok(vec![]);
    }
    let [c, h, w] = model.input_shape();
    let x = Tensor::zeros([1, c, h, w], (Kind::Float, model.device()));
    let refs: Vec<&str> = names.iter().map(|s| s.as_str()).collect();
    let (_, acts) = tch::no_grad(|| model.forward_with(&x, &refs))?;
    let tensors = model.named_tensors();
    Ok(names
        .iter()
        .zip(acts)
        .map(|(name, a)| {
            let from_graph = model.graph().map(|g| g.layer_tensors(name)).unwrap_or_default();
            let prefix = format!("{name}.");
            let tensor_values = tensors
                .iter()
                .filter(|(t, _)| from_graph.contains(t) || t.starts_with(&prefix))
                .map(|(_, t)| t.numel() as i64)
                .sum();
            LayerSummary {
                name: name.clone(),
                output_shape: a.size(),
                tensor_values,
            }
        })
        .collect())
}
