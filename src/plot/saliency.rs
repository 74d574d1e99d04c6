//! Saliency figures: original | signed saliency | overlay, method comparisons and batch
//! grids with labels and probabilities.
//!
//! Every signed map is drawn with the diverging colormap centred exactly on 0 (red =
//! raises the class score, blue = lowers it, white = no effect) and, unless turned off, a
//! colour bar. The colour limit of a map is the `clip_pct`-th percentile of its `|values|`,
//! so that a few extreme pixels do not wash the rest out; with `shared_scale` all maps of a
//! figure use one limit and can be compared by colour.
//!
//! Colour (3-channel) images are shown in colour beside their maps; overlays lay the map
//! over a gray copy so that its colours stay readable. An attribution of a colour image has
//! one value per channel: [`channel_reductions`] shows the ways of reducing it to one map
//! side by side, [`channel_maps`] shows the red, green and blue parts themselves.

use super::{Figure, Panel, PanelGrid};
use crate::plot::Colormap;
use crate::saliency::{percentile_abs, reduce, Reduce};
use anyhow::{ensure, Result};
use tch::{Device, Kind, Tensor};

/// How saliency figures are drawn.
#[derive(Debug, Clone)]
pub struct SaliencyStyle {
    /// Screen pixels per image pixel.
    pub scale: u32,
    /// One colour limit for all maps of the figure (so their magnitudes compare).
    pub shared_scale: bool,
    /// Percentile of `|map|` that sets the colour limit (100 = the maximum).
    pub clip_pct: f64,
    /// Add separate panels for the positive and the negative part.
    pub split_signs: bool,
    /// Add the map laid over the image.
    pub overlay: bool,
    pub colorbars: bool,
    pub title: Option<String>,
}

impl Default for SaliencyStyle {
    fn default() -> Self {
        SaliencyStyle {
            scale: 5,
            shared_scale: false,
            clip_pct: 99.5,
            split_signs: false,
            overlay: true,
            colorbars: true,
            title: None,
        }
    }
}

fn cpu(t: &Tensor) -> Tensor {
    t.detach().to_device(Device::Cpu).to_kind(Kind::Float)
}

/// Colour limits, one per map of `maps` `[N, H, W]`.
pub fn colour_limits(maps: &Tensor, clip_pct: f64, shared: bool) -> Result<Vec<f64>> {
    let n = maps.size()[0] as usize;
    let lim = if shared {
        vec![percentile_abs(&maps.reshape([1, -1]), clip_pct)?.double_value(&[0]); n]
    } else {
        Vec::<f64>::try_from(&percentile_abs(maps, clip_pct)?.to_kind(Kind::Double))?
    };
    Ok(lim.into_iter().map(|l| if l > 0.0 { l } else { 1e-12 }).collect())
}

fn check_pair(images: &Tensor, maps: &Tensor) -> Result<()> {
    ensure!(
        images.dim() == 4,
        "images must be [N, C, H, W], got {:?}",
        images.size()
    );
    ensure!(
        maps.dim() == 3,
        "maps must be [N, H, W] (use saliency::reduce), got {:?}",
        maps.size()
    );
    let (i, m) = (images.size(), maps.size());
    ensure!(
        i[0] == m[0] && i[2..] == m[1..],
        "images {i:?} and maps {m:?} do not match"
    );
    ensure!(i[0] > 0, "no images to show");
    Ok(())
}

fn overlay(image: &Tensor, map: &Tensor, lim: f64) -> Panel {
    Panel::Overlay {
        image: image.shallow_clone(),
        map: map.shallow_clone(),
        cmap: Colormap::Diverging,
        lo: -lim,
        hi: lim,
        alpha: 0.9,
    }
}

/// One row per image: original | signed saliency | overlay (| positive | negative).
/// `images` `[N, C, H, W]` in `[0, 1]`, `maps` `[N, H, W]`; `row_titles` caption the
/// original (e.g. "label 7, p=0.99"); `map_title` captions the map column.
pub fn saliency_rows(
    images: &Tensor,
    maps: &Tensor,
    row_titles: &[String],
    map_title: &str,
    style: &SaliencyStyle,
) -> Result<Figure> {
    check_pair(images, maps)?;
    let (images, maps) = (cpu(images), cpu(maps));
    let lims = colour_limits(&maps, style.clip_pct, style.shared_scale)?;
    let mut grid = PanelGrid::new(style.scale).with_colorbars(style.colorbars);
    if let Some(t) = &style.title {
        grid = grid.with_title(t.clone());
    }
    for (i, lim) in lims.iter().enumerate() {
        let (img, map) = (images.get(i as i64).clamp(0.0, 1.0), maps.get(i as i64));
        let mut row = vec![
            (
                Panel::Image(img.shallow_clone()),
                row_titles.get(i).cloned().unwrap_or_else(|| "input".into()),
            ),
            (Panel::signed(&map, *lim), map_title.to_string()),
        ];
        if style.overlay {
            row.push((overlay(&img, &map, *lim), "overlay".into()));
        }
        if style.split_signs {
            row.push((Panel::signed(&map.clamp_min(0.0), *lim), "positive part".into()));
            row.push((Panel::signed(&map.clamp_max(0.0), *lim), "negative part".into()));
        }
        grid.push_row(row);
    }
    grid.render()
}

/// One row per image, one column per method: original | map of method 1 | map of method 2 ….
/// Each map has its own colour limit unless `style.shared_scale` (then all maps share one,
/// which is only meaningful when the methods have the same units).
pub fn compare_methods(
    images: &Tensor,
    methods: &[(String, Tensor)],
    row_titles: &[String],
    style: &SaliencyStyle,
) -> Result<Figure> {
    ensure!(!methods.is_empty(), "no methods to compare");
    for (_, m) in methods {
        check_pair(images, m)?;
    }
    let images = cpu(images);
    let maps: Vec<Tensor> = methods.iter().map(|(_, m)| cpu(m)).collect();
    let lims: Vec<Vec<f64>> = if style.shared_scale {
        let all = Tensor::cat(&maps.iter().map(|m| m.reshape([1, -1])).collect::<Vec<_>>(), 1);
        let l = colour_limits(&all, style.clip_pct, false)?[0];
        maps.iter().map(|m| vec![l; m.size()[0] as usize]).collect()
    } else {
        maps.iter()
            .map(|m| colour_limits(m, style.clip_pct, false))
            .collect::<Result<_>>()?
    };
    let mut grid = PanelGrid::new(style.scale).with_colorbars(style.colorbars);
    if let Some(t) = &style.title {
        grid = grid.with_title(t.clone());
    }
    let n = images.size()[0];
    for i in 0..n {
        let img = images.get(i).clamp(0.0, 1.0);
        let mut row = vec![(
            Panel::Image(img.shallow_clone()),
            row_titles
                .get(i as usize)
                .cloned()
                .unwrap_or_else(|| "input".into()),
        )];
        for (k, (name, _)) in methods.iter().enumerate() {
            let map = maps[k].get(i);
            let lim = lims[k][i as usize];
            let panel = if style.overlay {
                overlay(&img, &map, lim)
            } else {
                Panel::signed(&map, lim)
            };
            row.push((panel, name.clone()));
        }
        grid.push_row(row);
    }
    grid.render()
}

/// Labels of one image in a [`batch_grid`].
#[derive(Debug, Clone)]
pub struct ImageLabels {
    pub true_class: Option<i64>,
    pub predicted: i64,
    pub probability: f64,
}

/// A grid of `cols` images per row, each image above its signed saliency overlay, with
/// captions `true → predicted (probability)`; wrong predictions are marked with `✗`.
pub fn batch_grid(
    images: &Tensor,
    maps: &Tensor,
    labels: &[ImageLabels],
    class_names: &[String],
    cols: usize,
    style: &SaliencyStyle,
) -> Result<Figure> {
    check_pair(images, maps)?;
    let (images, maps) = (cpu(images), cpu(maps));
    let n = images.size()[0] as usize;
    ensure!(labels.len() == n, "{} labels for {n} images", labels.len());
    let lims = colour_limits(&maps, style.clip_pct, style.shared_scale)?;
    let name = |c: i64| {
        class_names
            .get(c as usize)
            .cloned()
            .unwrap_or_else(|| c.to_string())
    };
    let cols = cols.max(1);
    let mut grid = PanelGrid::new(style.scale).with_colorbars(style.colorbars);
    if let Some(t) = &style.title {
        grid = grid.with_title(t.clone());
    }
    for start in (0..n).step_by(cols) {
        let idx: Vec<usize> = (start..(start + cols).min(n)).collect();
        let top = idx
            .iter()
            .map(|&i| {
                let l = &labels[i];
                let caption = match l.true_class {
                    Some(t) if t != l.predicted => {
                        format!("✗ {}→{} {:.2}", name(t), name(l.predicted), l.probability)
                    }
                    Some(t) => format!("{}→{} {:.2}", name(t), name(l.predicted), l.probability),
                    None => format!("pred {} {:.2}", name(l.predicted), l.probability),
                };
                (Panel::Image(images.get(i as i64).clamp(0.0, 1.0)), caption)
            })
            .collect();
        let bottom = idx
            .iter()
            .map(|&i| {
                let map = maps.get(i as i64);
                let panel = if style.overlay {
                    overlay(&images.get(i as i64).clamp(0.0, 1.0), &map, lims[i])
                } else {
                    Panel::signed(&map, lims[i])
                };
                (panel, String::new())
            })
            .collect();
        grid.push_row(top);
        grid.push_row(bottom);
    }
    grid.render()
}

/// Every channel reduction, in the order [`channel_reductions`] draws them by default.
pub const REDUCTIONS: [Reduce; 4] = [Reduce::Signed, Reduce::Sum, Reduce::Absolute, Reduce::MaxAbs];

fn check_attributions(images: &Tensor, attributions: &Tensor) -> Result<()> {
    ensure!(
        images.dim() == 4 && attributions.size() == images.size(),
        "attributions {:?} must have the images' shape {:?}",
        attributions.size(),
        images.size()
    );
    ensure!(images.size()[0] > 0, "no images to show");
    Ok(())
}

/// A panel for a reduced map: signed maps on the diverging scale `[-lim, lim]`, magnitudes
/// (never negative) on viridis over `[0, lim]`.
fn reduced_panel(map: &Tensor, how: Reduce, lim: f64) -> Panel {
    if how.is_signed() {
        Panel::signed(map, lim)
    } else {
        Panel::Heatmap {
            map: map.shallow_clone(),
            cmap: Colormap::Viridis,
            lo: 0.0,
            hi: lim,
        }
    }
}

/// One row per image: the image, then its attributions `[N, C, H, W]` reduced over channels
/// in each way of `reductions` (e.g. [`REDUCTIONS`]), side by side:
///
/// - `signed`: per pixel, the channel value of largest magnitude, `A[c*]` with
///   `c* = argmax_c |A_c|` (sign kept);
/// - `sum`: `Σ_c A_c` (what Integrated Gradients' completeness adds up);
/// - `absolute`: `Σ_c |A_c|`;
/// - `max-abs`: `max_c |A_c|` (Simonyan et al. 2014).
///
/// Each map has its own colour limit (the `clip_pct` percentile of its magnitudes).
pub fn channel_reductions(
    images: &Tensor,
    attributions: &Tensor,
    reductions: &[Reduce],
    row_titles: &[String],
    style: &SaliencyStyle,
) -> Result<Figure> {
    check_attributions(images, attributions)?;
    ensure!(!reductions.is_empty(), "no reductions to show");
    let (images, attr) = (cpu(images), cpu(attributions));
    let maps: Vec<Tensor> = reductions
        .iter()
        .map(|&r| reduce(&attr, r))
        .collect::<Result<_>>()?;
    let lims: Vec<Vec<f64>> = maps
        .iter()
        .map(|m| colour_limits(m, style.clip_pct, style.shared_scale))
        .collect::<Result<_>>()?;
    let mut grid = PanelGrid::new(style.scale).with_colorbars(style.colorbars);
    if let Some(t) = &style.title {
        grid = grid.with_title(t.clone());
    }
    for i in 0..images.size()[0] {
        let title = row_titles
            .get(i as usize)
            .cloned()
            .unwrap_or_else(|| "input".into());
        let mut row = vec![(Panel::Image(images.get(i).clamp(0.0, 1.0)), title)];
        for (k, &how) in reductions.iter().enumerate() {
            row.push((
                reduced_panel(&maps[k].get(i), how, lims[k][i as usize]),
                how.as_str().to_string(),
            ));
        }
        grid.push_row(row);
    }
    grid.render()
}

/// One row per image: the image, then its attribution in each input channel (`R`, `G`, `B`
/// for colour images), all on one signed scale per image, so the channels compare by colour.
pub fn channel_maps(
    images: &Tensor,
    attributions: &Tensor,
    row_titles: &[String],
    style: &SaliencyStyle,
) -> Result<Figure> {
    check_attributions(images, attributions)?;
    let (images, attr) = (cpu(images), cpu(attributions));
    let c = attr.size()[1];
    let lims = colour_limits(&attr.flatten(1, -1), style.clip_pct, style.shared_scale)?;
    let names: Vec<String> = if c == 3 {
        ["R", "G", "B"].iter().map(|s| s.to_string()).collect()
    } else {
        (0..c).map(|k| format!("channel {k}")).collect()
    };
    let mut grid = PanelGrid::new(style.scale).with_colorbars(style.colorbars);
    if let Some(t) = &style.title {
        grid = grid.with_title(t.clone());
    }
    for (i, lim) in lims.iter().enumerate() {
        let i = i as i64;
        let title = row_titles
            .get(i as usize)
            .cloned()
            .unwrap_or_else(|| "input".into());
        let mut row = vec![(Panel::Image(images.get(i).clamp(0.0, 1.0)), title)];
        for k in 0..c {
            row.push((
                Panel::signed(&attr.get(i).get(k), *lim),
                names[k as usize].clone(),
            ));
        }
        grid.push_row(row);
    }
    grid.render()
}
