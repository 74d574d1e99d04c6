//! One call, one figure: the figures the notebooks answer the assignment with.
//!
//! Each helper computes what it shows (attributions, ascent runs) and draws it with the
//! building blocks of [`crate::plot`], so that a notebook cell is a few lines of
//! hyperparameters and one call:
//!
//! - [`saliency_figure`]: the saliency maps of a batch under one method and score;
//! - [`judged_rows`]: class visualizations with an independent judge's verdict;
//! - [`channel_sheet`]: what the channels and single neurons of a hidden layer respond to.

use crate::ascend::{ascend, AscendConfig, AscendResult, Init, Naturalness};
use crate::data::Dataset;
use crate::exemplars::ReceptiveField;
use crate::model::{predict, Classifier};
use crate::objective::Objective;
use crate::plot::saliency::{batch_grid, ImageLabels, SaliencyStyle};
use crate::plot::{Figure, Panel, PanelGrid};
use crate::saliency::{reduce, Attribution, Reduce, Target};
use anyhow::{ensure, Result};
use tch::{Device, Kind, Tensor};

/// Images per row of the sheets below.
const COLS: usize = 8;

/// The saliency maps of `batch` under `method`, for the classes of `target`: each image
/// above its signed map laid over it (red: brightening the pixel raises the score, blue: it
/// lowers it), captioned `true→predicted p` with ✗ on a wrong prediction.
///
/// The map of image `n` is `method`'s attribution `A_n = attribute(model, x, target)_n`
/// reduced over channels keeping the sign ([`Reduce::Signed`]); the method carries the score
/// (`Gradient::new(Score::Softmax)` takes `∂p_c/∂x`). Each map has its own colour scale, to
/// its 99.5th percentile of `|A_n|`.
pub fn saliency_figure(
    model: &dyn Classifier,
    batch: &Dataset,
    method: &dyn Attribution,
    target: &Target,
) -> Result<Figure> {
    let style = SaliencyStyle {
        scale: 4,
        title: Some(format!("{}, target: {}", method.name(), target_words(target))),
        ..Default::default()
    };
    saliency_figure_with(model, batch, method, target, &style)
}

/// [`saliency_figure`] drawn in `style` (scale, shared colour scale, percentile, …).
pub fn saliency_figure_with(
    model: &dyn Classifier,
    batch: &Dataset,
    method: &dyn Attribution,
    target: &Target,
    style: &SaliencyStyle,
) -> Result<Figure> {
    let maps = reduce(&method.attribute(model, &batch.images, target)?, Reduce::Signed)?;
    let preds = predict(model, &batch.images, 256)?;
    let truth = Vec::<i64>::try_from(&batch.labels)?;
    let labels: Vec<ImageLabels> = truth
        .iter()
        .zip(preds.classes.iter().zip(&preds.confidences))
        .map(|(&t, (&p, &conf))| ImageLabels {
            true_class: Some(t),
            predicted: p,
            probability: conf,
        })
        .collect();
    batch_grid(&batch.images, &maps, &labels, model.class_names(), COLS, style)
}

fn target_words(target: &Target) -> String {
    match target {
        Target::Class(c) => format!("class {c}"),
        Target::Classes(_) => "a class per image".into(),
        Target::Labels(_) => "each image's label".into(),
        Target::Predicted => "each image's predicted class".into(),
    }
}

/// Class visualizations with the verdict of an independent judge: one labelled row per
/// `(label, images, verdict)`, each image captioned `→j p=0.93`, the class `j` the judge
/// sees and its probability for the intended class; `✗` marks an image the judge does not
/// recognize. With `class_means` (e.g. `test.class_means()?`), a first row shows the mean
/// real image of each intended class, for comparison.
///
/// The verdicts come from [`crate::ascend::naturalness`]; images are shown clipped to
/// `[0, 1]`, which is also what the judge saw.
pub fn judged_rows(class_means: Option<&Tensor>, rows: &[(&str, &Tensor, &Naturalness)]) -> Result<Figure> {
    ensure!(!rows.is_empty(), "no rows of class visualizations to show");
    let mut grid = PanelGrid::new(3);
    if let Some(means) = class_means {
        let targets: Vec<i64> = rows[0].2.images.iter().map(|j| j.target).collect();
        let panels = targets
            .iter()
            .map(|&t| Ok((Panel::Image(means.f_get(t)?.clamp(0.0, 1.0)), format!("mean {t}"))))
            .collect::<Result<Vec<_>>>()?;
        grid.push_row_labelled("class mean", panels);
    }
    for (label, images, verdict) in rows {
        let n = images.size()[0] as usize;
        ensure!(
            verdict.images.len() == n,
            "row '{label}' has {n} images but {} verdicts",
            verdict.images.len()
        );
        let panels = verdict
            .images
            .iter()
            .enumerate()
            .map(|(i, j)| {
                let mark = if j.judged == j.target { "" } else { "✗" };
                let caption = format!("{mark}→{} p={:.2}", j.judged, j.target_prob);
                (Panel::Image(images.get(i as i64).clamp(0.0, 1.0)), caption)
            })
            .collect();
        grid.push_row_labelled(*label, panels);
    }
    grid.render()
}

/// What the units of one hidden layer respond to: see [`channel_sheet`].
#[derive(Debug)]
pub struct ChannelSheet {
    pub layer: String,
    /// Row `i` maximizes the mean activation of channel `channels[i]` over the whole map.
    pub channels: AscendResult,
    /// Row `i` maximizes the centre neuron of channel `channels[i]`, if neurons were asked for.
    pub neurons: Option<AscendResult>,
    pub figure: Figure,
}

impl ChannelSheet {
    /// Shows the figure when the sheet is the last expression of a notebook cell.
    pub fn evcxr_display(&self) {
        self.figure.evcxr_display()
    }

    /// Several sheets, one below the other (a cell shows one figure).
    pub fn stack(sheets: &[ChannelSheet]) -> Result<Figure> {
        let figs: Vec<Figure> = sheets.iter().map(|s| s.figure.clone()).collect();
        Figure::vstack(&figs)
    }
}

/// Feature visualization of hidden units: for each of `channels` of `layer`, the input that
/// maximizes the channel's mean activation `mean_{y,x} A_c(x)[y, x]` (a texture: what the
/// channel detects, repeated everywhere), and, for the first `neurons` of them, the input that
/// maximizes the single centre unit `A_c(x)[H/2, W/2]` (the same detector once, inside its
/// receptive field). Each batch starts from `init` and runs [`ascend`] with `cfg`; pick a
/// preset such as `Regularization::hidden_28x28()` for `cfg.regularization`.
pub fn channel_sheet(
    model: &dyn Classifier,
    layer: &str,
    channels: &[i64],
    neurons: usize,
    init: &Init,
    cfg: &AscendConfig,
) -> Result<ChannelSheet> {
    ensure!(
        !channels.is_empty(),
        "no channels of layer '{layer}' to visualize"
    );
    let neurons = neurons.min(channels.len());
    let start = init.make(channels.len() as i64, model.input_shape())?;
    let chan_run = ascend(model, &Objective::channels(layer, channels), &start, cfg)?;
    let neuron_run = if neurons > 0 {
        let obj = Objective::neurons(layer, &channels[..neurons]);
        Some(ascend(model, &obj, &start.narrow(0, 0, neurons as i64), cfg)?)
    } else {
        None
    };
    let mut title = format!("{layer}: {} channels (mean over the map)", channels.len());
    if neurons > 0 {
        title.push_str(&format!(", then the centre neurons of the first {neurons}"));
    }
    let mut grid = PanelGrid::new(2).with_title(title);
    push_rows(&mut grid, &format!("{layer} ch"), &chan_run.images, channels);
    if let Some(run) = &neuron_run {
        // A neuron sees only its receptive field: show that window, enlarged.
        let field = ReceptiveField::of(model, layer).ok();
        let label = match field.and_then(|f| f.size()) {
            Some((h, w)) => format!("{layer} neuron {h}×{w}"),
            None => format!("{layer} neuron"),
        };
        let images = match field {
            Some(f) => centre_receptive_crops(model, layer, &f, &run.images)?,
            None => run.images.shallow_clone(),
        };
        push_rows(&mut grid, &label, &images, &channels[..neurons]);
    }
    Ok(ChannelSheet {
        layer: layer.to_string(),
        figure: grid.render()?,
        channels: chan_run,
        neurons: neuron_run,
    })
}

/// The window of `images` `[N, C, H, W]` that the centre unit of `layer` sees (the unit
/// [`Objective::neurons`] maximizes), enlarged by the largest whole factor that fits `H × W`
/// and centred on a white canvas of that size, so that every panel keeps its size.
pub fn centre_receptive_crops(
    model: &dyn Classifier,
    layer: &str,
    field: &ReceptiveField,
    images: &Tensor,
) -> Result<Tensor> {
    let s = images.size();
    ensure!(s.len() == 4, "images must be [N, C, H, W], got {s:?}");
    let [c, h, w] = [s[1], s[2], s[3]];
    let probe = Tensor::zeros([1, c, h, w], (Kind::Float, model.device()));
    let (_, acts) = tch::no_grad(|| model.forward_with(&probe, &[layer]))?;
    let a = acts[0].size();
    let at = (a.len() == 4).then(|| (a[2] / 2, a[3] / 2));
    let crop = field.crop(at, h, w);
    ensure!(
        crop.height() > 0 && crop.width() > 0,
        "the receptive field of the centre unit of '{layer}' lies outside the image"
    );
    let part = images
        .detach()
        .to_device(Device::Cpu)
        .to_kind(Kind::Float)
        .narrow(2, crop.top, crop.height())
        .narrow(3, crop.left, crop.width());
    let f = (h / crop.height()).min(w / crop.width()).max(1);
    let (bh, bw) = (crop.height() * f, crop.width() * f);
    let big = part.upsample_nearest2d([bh, bw], None, None);
    let canvas = Tensor::ones([s[0], c, h, w], (Kind::Float, Device::Cpu));
    canvas
        .narrow(2, (h - bh) / 2, bh)
        .narrow(3, (w - bw) / 2, bw)
        .copy_(&big);
    Ok(canvas)
}

/// Rows of at most [`COLS`] images, each captioned with its channel.
fn push_rows(grid: &mut PanelGrid, label: &str, images: &Tensor, channels: &[i64]) {
    for (r, chunk) in channels.chunks(COLS).enumerate() {
        let panels = chunk
            .iter()
            .enumerate()
            .map(|(k, c)| {
                let img = images.get((r * COLS + k) as i64).clamp(0.0, 1.0);
                (Panel::Image(img), c.to_string())
            })
            .collect();
        grid.push_row_labelled(label, panels);
    }
}
