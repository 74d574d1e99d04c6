//! Saliency figures: original | signed saliency | overlay, method comparisons and batch
//! grids with labels and probabilities.
//!
//! Every signed map is drawn with the diverging colormap centred exactly on 0 (red =
//! raises the class score, blue = lowers it, white = no effect), every map that is never
//! negative (Grad-CAM, magnitudes) with a sequential one (white = 0 to dark red) and, unless
//! turned off, a colour bar. `contour` draws the stroke's outline over the map instead of
//! blending the map over the image. The colour limit of a map is the `clip_pct`-th percentile of its `|values|`,
//! so that a few extreme pixels do not wash the rest out; with `shared_scale` all maps of a
//! figure use one limit and can be compared by colour.
//!
//! Colour (3-channel) images are shown in colour beside their maps; overlays lay the map
//! over a gray copy so that its colours stay readable. An attribution of a colour image has
//! one value per channel: [`channel_reductions`] shows the ways of reducing it to one map
//! side by side, [`channel_maps`] shows the red, green and blue parts themselves.

use super::{Figure, Panel, PanelGrid};
use crate::metrics::Curve;
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
    /// Draw the overlay as the map with the stroke's outline on top (instead of the map
    /// blended over the image), so that weak values on the stroke stay visible.
    pub contour: bool,
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
            contour: false,
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

/// The colour scale of a map: diverging on `[-lim, lim]` for signed maps, sequential on
/// `[0, lim]` for maps that are never negative (Grad-CAM, magnitudes).
fn scale_of(non_negative: bool, lim: f64) -> (Colormap, f64, f64) {
    if non_negative {
        (Colormap::Sequential, 0.0, lim)
    } else {
        (Colormap::Diverging, -lim, lim)
    }
}

/// True when no value of `maps` is negative.
fn never_negative(maps: &Tensor) -> bool {
    maps.numel() > 0 && maps.min().double_value(&[]) >= 0.0
}

/// A map's panel as `style` asks: alone, blended over the image, or with the stroke's outline.
fn map_panel(
    image: &Tensor,
    map: &Tensor,
    (cmap, lo, hi): (Colormap, f64, f64),
    style: &SaliencyStyle,
) -> Panel {
    let (image, map) = (image.shallow_clone(), map.shallow_clone());
    match (style.overlay, style.contour) {
        (true, true) => Panel::Contoured {
            image,
            map,
            cmap,
            lo,
            hi,
        },
        (true, false) => Panel::Overlay {
            image,
            map,
            cmap,
            lo,
            hi,
            alpha: 0.9,
        },
        (false, _) => Panel::Heatmap { map, cmap, lo, hi },
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
    let non_negative = never_negative(&maps);
    for (i, lim) in lims.iter().enumerate() {
        let (img, map) = (images.get(i as i64).clamp(0.0, 1.0), maps.get(i as i64));
        let cs = scale_of(non_negative, *lim);
        let alone = SaliencyStyle {
            overlay: false,
            ..style.clone()
        };
        let mut row = vec![
            (
                Panel::Image(img.shallow_clone()),
                row_titles.get(i).cloned().unwrap_or_else(|| "input".into()),
            ),
            (map_panel(&img, &map, cs, &alone), map_title.to_string()),
        ];
        if style.overlay {
            let name = if style.contour {
                "stroke outline"
            } else {
                "overlay"
            };
            row.push((map_panel(&img, &map, cs, style), name.into()));
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
    let non_negative: Vec<bool> = maps.iter().map(never_negative).collect();
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
            let cs = scale_of(non_negative[k], lims[k][i as usize]);
            row.push((map_panel(&img, &map, cs, style), name.clone()));
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
/// (never negative) on the sequential scale over `[0, lim]`.
fn reduced_panel(map: &Tensor, how: Reduce, lim: f64) -> Panel {
    if how.is_signed() {
        Panel::signed(map, lim)
    } else {
        Panel::Heatmap {
            map: map.shallow_clone(),
            cmap: Colormap::Sequential,
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

/// Pointwise 95% band of a curve's mean: `mean ± 1.96 · sd / √n` over the images.
fn band(curve: &Curve) -> Vec<(f64, f64, f64)> {
    curve
        .fractions
        .iter()
        .zip(&curve.per_image_score)
        .map(|(&f, v)| {
            let n = v.len().max(1) as f64;
            let m = v.iter().sum::<f64>() / n;
            let var = v.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / (n - 1.0).max(1.0);
            let h = 1.96 * (var / n).sqrt();
            (f, m - h, m + h)
        })
        .collect()
}

/// The deletion (left) and insertion (right) curves of several rankings side by side, each
/// mean curve with its pointwise 95% confidence band over the images, the x axis cut at
/// `x_max` (the fraction of pixels after which the curves hardly change) and a dashed line
/// at `reference` (e.g. the score of the all-black image), when given.
pub fn perturbation_curves(
    deletion: &[(String, &Curve)],
    insertion: &[(String, &Curve)],
    x_max: f64,
    reference: Option<f64>,
) -> Result<Figure> {
    use plotters::prelude::*;
    ensure!(!deletion.is_empty() && !insertion.is_empty(), "no curves to plot");
    ensure!(
        x_max > 0.0 && x_max <= 1.0,
        "x_max must be in (0, 1], got {x_max}"
    );
    super::register_fonts();
    let colour = |i: usize| Palette99::pick(i).to_rgba();
    let panel = |area: &DrawingArea<BitMapBackend, plotters::coord::Shift>,
                 title: &str,
                 curves: &[(String, &Curve)]|
     -> Result<()> {
        let bands: Vec<Vec<(f64, f64, f64)>> = curves
            .iter()
            .map(|(_, c)| band(c).into_iter().filter(|p| p.0 <= x_max + 1e-9).collect())
            .collect();
        let lo = bands.iter().flatten().map(|p| p.1).fold(f64::MAX, f64::min);
        let hi = bands.iter().flatten().map(|p| p.2).fold(f64::MIN, f64::max);
        let (lo, hi) = (lo.min(reference.unwrap_or(lo)), hi.max(reference.unwrap_or(hi)));
        let pad = ((hi - lo) * 0.04).max(1e-6);
        let mut chart = ChartBuilder::on(area)
            .caption(title, ("sans-serif", 16))
            .margin(8)
            .x_label_area_size(40)
            .y_label_area_size(50)
            .build_cartesian_2d(0.0..x_max, (lo - pad)..(hi + pad))
            .map_err(super::draw_err)?;
        chart
            .configure_mesh()
            .x_desc("fraction of pixels")
            .y_desc("mean p(true class)")
            .x_labels(6)
            .label_style(("sans-serif", 14))
            .axis_desc_style(("sans-serif", 14))
            .x_label_formatter(&|v| super::format_tick(*v))
            .y_label_formatter(&|v| super::format_tick(*v))
            .draw()
            .map_err(super::draw_err)?;
        if let Some(r) = reference {
            chart
                .draw_series(DashedLineSeries::new(
                    vec![(0.0, r), (x_max, r)],
                    6,
                    4,
                    BLACK.stroke_width(1),
                ))
                .map_err(super::draw_err)?;
        }
        for (i, b) in bands.iter().enumerate() {
            let mut poly: Vec<(f64, f64)> = b.iter().map(|p| (p.0, p.2)).collect();
            poly.extend(b.iter().rev().map(|p| (p.0, p.1)));
            chart
                .draw_series(std::iter::once(Polygon::new(poly, colour(i).mix(0.18).filled())))
                .map_err(super::draw_err)?;
            let mean: Vec<(f64, f64)> = b.iter().map(|p| (p.0, (p.1 + p.2) / 2.0)).collect();
            chart
                .draw_series(LineSeries::new(mean, colour(i).stroke_width(2)))
                .map_err(super::draw_err)?;
        }
        Ok(())
    };
    let names: Vec<&String> = deletion.iter().map(|(n, _)| n).collect();
    Figure::draw(900, 400, |root| {
        root.fill(&WHITE).map_err(super::draw_err)?;
        let (charts, legend) = root.split_horizontally(690);
        let (left, right) = charts.split_horizontally(345);
        panel(&left, "Deletion (lower is better)", deletion)?;
        panel(&right, "Insertion (higher is better)", insertion)?;
        let font = ("sans-serif", 14).into_font();
        let mut entries: Vec<(String, ShapeStyle, bool)> = names
            .iter()
            .enumerate()
            .map(|(i, n)| (n.to_string(), colour(i).stroke_width(2), false))
            .collect();
        if reference.is_some() {
            entries.push(("all-black image".into(), BLACK.stroke_width(1), true));
        }
        for (k, (name, style, dashed)) in entries.into_iter().enumerate() {
            let y = 40 + 22 * k as i32;
            let line: Vec<(i32, i32)> = if dashed {
                vec![(6, y), (12, y)]
            } else {
                vec![(6, y), (28, y)]
            };
            legend
                .draw(&PathElement::new(line, style))
                .map_err(super::draw_err)?;
            if dashed {
                legend
                    .draw(&PathElement::new(vec![(18, y), (28, y)], style))
                    .map_err(super::draw_err)?;
            }
            legend
                .draw(&Text::new(name, (34, y - 8), font.clone()))
                .map_err(super::draw_err)?;
        }
        Ok(())
    })
}
