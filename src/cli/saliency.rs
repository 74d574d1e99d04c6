//! `gradviz saliency`: attributions of a batch of images, saved as `.npy` and/or drawn as PNG.

use anyhow::{bail, ensure, Context, Result};
use clap::{Args, ValueEnum};
use gradviz::args::{parse_indices, targets_from_npy, TargetSpec};
use gradviz::data::DatasetName;
use gradviz::lrp::{Composite, Lrp};
use gradviz::model;
use gradviz::plot::saliency::{
    batch_grid, channel_reductions, saliency_rows, ImageLabels, SaliencyStyle, REDUCTIONS,
};
use gradviz::preprocess::Preprocess;
use gradviz::provenance::Provenance;
use gradviz::saliency::{
    reduce, Attribution, Baseline, GradCam, Gradient, InputXGradient, IntegratedGradients, Reduce, Score,
    SmoothGrad, Target,
};
use gradviz::tch::Tensor;
use std::path::PathBuf;

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Method {
    Gradient,
    InputXGradient,
    Smoothgrad,
    IntegratedGradients,
    GradCam,
    /// Layer-wise relevance propagation with --composite and --epsilon.
    Lrp,
}

#[derive(Args)]
pub struct SaliencyArgs {
    /// A gradviz .safetensors model or a TorchScript .pt file.
    #[arg(long)]
    model: PathBuf,
    /// Images: PNG/JPEG files, directories (every PNG/JPEG inside), globs, or float32 .npy
    /// batches [N, C, H, W] in [0, 1]; all of them make one batch.
    #[arg(long, num_args = 1.., conflicts_with = "dataset")]
    input: Vec<PathBuf>,
    /// How PNG/JPEG inputs are prepared: auto, mnist, fashion-mnist or none.
    #[arg(long, default_value = "auto")]
    preprocess: Preprocess,
    /// Take the images from a data set's test split: mnist, fashion-mnist or cifar10.
    #[arg(long, requires = "indices")]
    dataset: Option<DatasetName>,
    /// Take the images from this data's test split, in any format (see `gradviz train --help`).
    #[arg(long, conflicts_with = "input", requires = "indices")]
    data: Option<PathBuf>,
    /// Test-split indices: a range `0..16` or a list `3,7,42`.
    #[arg(long)]
    indices: Option<String>,
    /// Target class per image: a class index, `label` (true labels, with --dataset),
    /// `predicted`, or an int .npy file with one class per image.
    #[arg(long, default_value = "predicted")]
    targets: String,
    /// logit, softmax or log-softmax.
    #[arg(long, default_value = "logit")]
    score: Score,
    #[arg(long, value_enum, default_value = "gradient")]
    method: Method,
    /// Integrated Gradients: number of steps.
    #[arg(long, default_value_t = 64)]
    steps: i64,
    /// Integrated Gradients: constant baseline value (0 = black).
    #[arg(long, default_value_t = 0.0)]
    baseline: f64,
    /// SmoothGrad: number of noisy samples.
    #[arg(long, default_value_t = 50)]
    samples: i64,
    /// SmoothGrad: noise σ as a fraction of each image's value range.
    #[arg(long, default_value_t = 0.15)]
    noise: f64,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Grad-CAM: the layer (default: the last conv layer).
    #[arg(long)]
    layer: Option<String>,
    /// LRP: epsilon-plus, epsilon-plus-flat, epsilon-alpha2-beta1, epsilon-alpha2-beta1-flat
    /// or epsilon-gamma-box (Zennit's composites).
    #[arg(long, default_value = "epsilon-plus-flat")]
    composite: String,
    /// LRP: ε of the dense layers' ε rule.
    #[arg(long, default_value_t = 1e-6)]
    epsilon: f64,
    /// Images (or path points / noisy samples) per forward-backward pass.
    #[arg(long, default_value_t = 256)]
    batch: i64,
    /// Save the raw signed attributions [N, C, H, W] as float32 .npy.
    #[arg(long)]
    save_npy: Option<PathBuf>,
    /// Draw the maps to a PNG file.
    #[arg(long)]
    plot: Option<PathBuf>,
    /// How the plot reduces channels: signed, sum, absolute or max-abs.
    #[arg(long, default_value = "signed")]
    reduce: Reduce,
    /// Plot every channel reduction side by side (signed, sum, absolute, max-abs) instead.
    #[arg(long)]
    all_reductions: bool,
    /// One colour scale for all maps of the plot.
    #[arg(long)]
    shared_scale: bool,
    /// Plot the positive and negative parts separately too.
    #[arg(long)]
    split_signs: bool,
    #[command(flatten)]
    device: super::device::DeviceArg,
}

pub fn saliency(a: SaliencyArgs, record: &Provenance) -> Result<()> {
    let (device, record) = a.device.resolve_recorded(record)?;
    let record = &record;
    let model = model::load_model_for_on(&a.model, a.dataset, device)?;
    let (images, labels): (Tensor, Option<Tensor>) = match (&a.input, a.dataset) {
        (inputs, _) if !inputs.is_empty() => (
            super::inputs::load(model.as_ref(), inputs, a.preprocess)?.images,
            None,
        ),
        _ if a.dataset.is_some() || a.data.is_some() => {
            let idx = parse_indices(a.indices.as_deref().unwrap_or_default())?;
            let splits = super::train::load_data(a.dataset, a.data.as_deref())?;
            let test = super::train::fit_to(splits, model.as_ref())?.test.select(&idx)?;
            (test.images, Some(test.labels))
        }
        _ => bail!("give the images with --input FILE, --dataset NAME --indices RANGE or --data PATH --indices RANGE"),
    };
    let n = images.size()[0];
    let target = match a.targets.parse::<TargetSpec>()? {
        TargetSpec::Predicted => Target::Predicted,
        TargetSpec::Labels => Target::Labels(
            labels
                .as_ref()
                .context("--targets label needs --dataset (an .npy or image input has no labels)")?
                .shallow_clone(),
        ),
        TargetSpec::File(t) => {
            let bytes = std::fs::read(&t).with_context(|| format!("cannot read {}", t.display()))?;
            Target::Labels(targets_from_npy(&bytes, &t.display().to_string())?)
        }
        TargetSpec::Class(c) => Target::Class(c),
    };
    let classes = target.resolve(model.as_ref(), &images)?;
    let method: Box<dyn Attribution> = match a.method {
        Method::Gradient => Box::new(Gradient {
            score: a.score,
            batch: a.batch,
        }),
        Method::InputXGradient => Box::new(InputXGradient {
            score: a.score,
            batch: a.batch,
        }),
        Method::Smoothgrad => Box::new(SmoothGrad {
            score: a.score,
            samples: a.samples,
            noise: a.noise,
            seed: a.seed,
            batch: a.batch,
        }),
        Method::IntegratedGradients => Box::new(IntegratedGradients {
            score: a.score,
            steps: a.steps,
            baseline: Baseline::Constant(a.baseline),
            internal_batch: a.batch,
            ..Default::default()
        }),
        Method::GradCam => {
            let layer = match &a.layer {
                Some(l) => l.clone(),
                None => gradviz::saliency::last_conv_layer(model.as_ref()).with_context(|| {
                    format!(
                        "Grad-CAM needs a model with conv layers (built-in or imported); {} has none: give --layer NAME (`gradviz layers --model FILE` lists them)",
                        model.describe()
                    )
                })?,
            };
            Box::new(GradCam {
                layer,
                score: a.score,
                relu: true,
                batch: a.batch,
            })
        }
        Method::Lrp => {
            ensure!(
                a.score == Score::Logit,
                "LRP explains the logit (--score logit): a {} is not a sum of per-pixel contributions",
                a.score
            );
            Box::new(Lrp {
                composite: Composite::named(&a.composite, a.epsilon)?,
                batch: a.batch,
            })
        }
    };
    let fixed = Target::Classes(classes.clone());
    let attr = if let Method::IntegratedGradients = a.method {
        let ig = IntegratedGradients {
            score: a.score,
            steps: a.steps,
            baseline: Baseline::Constant(a.baseline),
            internal_batch: a.batch,
            ..Default::default()
        };
        let (attr, c) = ig.attribute_with_delta(model.as_ref(), &images, &fixed)?;
        eprintln!(
            "completeness: max |Σ attributions − (F(x) − F(baseline))| / |F(x) − F(baseline)| = {:.3e}",
            c.max_relative_error()
        );
        attr
    } else {
        method.attribute(model.as_ref(), &images, &fixed)?
    };
    // Overflowing settings (a huge SmoothGrad σ, say) give NaN maps: refuse to save them.
    model::check_finite(&attr, "the attribution map")
        .with_context(|| format!("{} gave non-finite values: check its settings", method.name()))?;
    eprintln!(
        "{} of {} for {n} image(s) with {}",
        method.name(),
        a.score,
        model.describe()
    );
    if let Some(p) = &a.save_npy {
        gradviz::io::save_npy_with(p, &attr, record)?;
        println!("saved attributions {:?} to {}", attr.size(), p.display());
    }
    if let Some(p) = &a.plot {
        let maps = reduce(&attr, a.reduce)?;
        let preds = model::predict(model.as_ref(), &images, a.batch.max(1))?;
        let names = model.class_names();
        let truth: Option<Vec<i64>> = labels.as_ref().map(Vec::<i64>::try_from).transpose()?;
        let style = SaliencyStyle {
            shared_scale: a.shared_scale,
            split_signs: a.split_signs,
            title: Some(if a.all_reductions {
                format!("{} · channel reductions", method.name())
            } else {
                format!("{} · {}", method.name(), a.reduce.as_str())
            }),
            ..Default::default()
        };
        let fig = if a.all_reductions {
            let titles: Vec<String> = (0..n as usize)
                .map(|i| names.get(classes[i] as usize).cloned().unwrap_or_default())
                .collect();
            channel_reductions(&images, &attr, &REDUCTIONS, &titles, &style)?
        } else if n <= 6 || a.split_signs {
            let titles: Vec<String> = (0..n as usize)
                .map(|i| {
                    let t = names.get(classes[i] as usize).cloned().unwrap_or_default();
                    format!(
                        "target {t} (p={:.2})",
                        preds.probs.double_value(&[i as i64, classes[i]])
                    )
                })
                .collect();
            saliency_rows(
                &images,
                &maps,
                &titles,
                &format!("{} map", a.reduce.as_str()),
                &style,
            )?
        } else {
            let info: Vec<ImageLabels> = (0..n as usize)
                .map(|i| ImageLabels {
                    true_class: truth.as_ref().map(|t| t[i]),
                    predicted: preds.classes[i],
                    probability: preds.confidences[i],
                })
                .collect();
            batch_grid(
                &images,
                &maps,
                &info,
                names,
                8,
                &SaliencyStyle { scale: 4, ..style },
            )?
        };
        fig.save_with(p, record)?;
        println!("saved plot to {}", p.display());
    }
    if a.save_npy.is_none() && a.plot.is_none() {
        eprintln!("note: nothing saved; add --save-npy OUT.npy and/or --plot OUT.png");
    }
    Ok(())
}
