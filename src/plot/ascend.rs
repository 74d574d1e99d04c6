//! Figures of gradient ascent: snapshot strips (rows = batch rows, columns = steps),
//! objective/probability curves, and labelled rows of image batches for comparisons.

use super::{draw_colorbar, draw_err, line_chart, Colormap, Figure, Panel, PanelGrid, Series};
use crate::ascend::AscendResult;
use anyhow::{ensure, Result};
use plotters::prelude::*;
use tch::{Device, Kind, Tensor};

/// Each row of the batch across the snapshots: row `i` is labelled `labels[i]`, each panel
/// is titled with its step and the model's target probability there.
pub fn snapshot_strip(run: &AscendResult, labels: &[String], scale: u32) -> Result<Figure> {
    ensure!(!run.snapshots.is_empty(), "the run has no snapshots");
    let n = run.images.size()[0];
    let mut grid = PanelGrid::new(scale);
    for i in 0..n {
        let row = run
            .snapshots
            .iter()
            .map(|s| {
                let p = run.history.get(s.step).map(|h| h.target_prob[i as usize]);
                let title = match p {
                    Some(p) => format!("{} p={p:.2}", s.step),
                    None => format!("{}", s.step),
                };
                (Panel::Image(s.images.get(i).clamp(0.0, 1.0)), title)
            })
            .collect();
        let label = labels
            .get(i as usize)
            .cloned()
            .unwrap_or_else(|| format!("row {i}"));
        grid.push_row_labelled(label, row);
    }
    grid.title = Some("columns: step and target probability".into());
    grid.render()
}

/// Which history value to plot against step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Curve {
    Objective,
    TargetProb,
}

/// One line per batch row of the objective or target probability against step.
pub fn curves(run: &AscendResult, labels: &[String], what: Curve, title: &str) -> Result<Figure> {
    let n = run.images.size()[0] as usize;
    let series: Vec<Series> = (0..n)
        .map(|i| {
            let pts = match what {
                Curve::Objective => run.objective_curve(i),
                Curve::TargetProb => run.prob_curve(i),
            };
            Series::new(labels.get(i).cloned().unwrap_or_else(|| format!("row {i}")), pts)
        })
        .collect();
    let y = match what {
        Curve::Objective => "objective",
        Curve::TargetProb => "target probability",
    };
    line_chart(title, "step", y, &series)
}

/// Several image batches `[N, C, H, W]` of the same N, one labelled row each; `captions`
/// (one per row of each batch, optional) go above the panels.
pub fn batch_rows(rows: &[(String, &Tensor)], captions: &[Vec<String>], scale: u32) -> Result<Figure> {
    ensure!(!rows.is_empty(), "no rows to show");
    let mut grid = PanelGrid::new(scale);
    for (r, (label, imgs)) in rows.iter().enumerate() {
        ensure!(
            imgs.dim() == 4,
            "row '{label}' must be [N, C, H, W], got {:?}",
            imgs.size()
        );
        let panels = (0..imgs.size()[0])
            .map(|i| {
                let cap = captions
                    .get(r)
                    .and_then(|c| c.get(i as usize))
                    .cloned()
                    .unwrap_or_default();
                (Panel::Image(imgs.get(i).clamp(0.0, 1.0)), cap)
            })
            .collect();
        grid.push_row_labelled(label.clone(), panels);
    }
    grid.render()
}

/// One optimization shown by [`change_rows`]: where it started and where it ended, `[N, C, H, W]`.
pub struct ChangeRow<'a> {
    pub label: String,
    pub start: &'a Tensor,
    pub end: &'a Tensor,
    /// Captions above the end images (optional, one per image).
    pub captions: Vec<String>,
}

/// For each run: (if `show_start`) its start images, its end images, and the change
/// `x_T − x_0` (summed over channels) on one diverging scale `[−m, m]` shared by every run,
/// where `m` is the 99th percentile of all `|x_T − x_0|` (a few extreme pixels do not wash
/// out the rest). Red: the pixel got brighter; blue: darker. One colour bar on the right
/// gives the scale. Returns the figure and `m`.
pub fn change_rows(rows: &[ChangeRow], show_start: bool, scale: u32) -> Result<(Figure, f64)> {
    ensure!(!rows.is_empty(), "no runs to show");
    let mut changes = Vec::new();
    for r in rows {
        ensure!(
            r.start.size() == r.end.size() && r.start.dim() == 4,
            "run '{}': start {:?} and end {:?} must be the same [N, C, H, W]",
            r.label,
            r.start.size(),
            r.end.size()
        );
        let d = (r.end - r.start)
            .detach()
            .to_device(Device::Cpu)
            .to_kind(Kind::Float)
            .sum_dim_intlist([1i64].as_slice(), false, Kind::Float);
        changes.push(d);
    }
    let all = Tensor::cat(
        &changes.iter().map(|c| c.abs().flatten(0, -1)).collect::<Vec<_>>(),
        0,
    );
    let k = ((all.numel() as f64 * 0.99) as i64).clamp(1, all.numel() as i64);
    let m = all.kthvalue(k, 0, false).0.double_value(&[]).max(1e-6);
    let mut grid = PanelGrid::new(scale);
    let images = |t: &Tensor, caps: &[String]| -> Vec<(Panel, String)> {
        (0..t.size()[0])
            .map(|i| {
                let cap = caps.get(i as usize).cloned().unwrap_or_default();
                (
                    Panel::Image(t.get(i).detach().to_device(Device::Cpu).clamp(0.0, 1.0)),
                    cap,
                )
            })
            .collect()
    };
    for (r, d) in rows.iter().zip(&changes) {
        // Row labels stay short: the run's name on its first row only.
        let (first, second) = if show_start {
            (format!("{}: x_0", r.label), "x_T".to_string())
        } else {
            (String::new(), format!("{}: x_T", r.label))
        };
        if show_start {
            grid.push_row_labelled(first, images(r.start, &[]));
        }
        grid.push_row_labelled(second, images(r.end, &r.captions));
        let maps = (0..d.size()[0])
            .map(|i| (Panel::signed(&d.get(i), m), String::new()))
            .collect();
        grid.push_row_labelled("x_T − x_0", maps);
    }
    let fig = grid.render()?;
    let bar = colour_bar(Colormap::Diverging, -m, m, fig.height.min(220), "x_T − x_0")?;
    Ok((hstack(&fig, &bar), m))
}

/// A titled vertical colour bar over `[lo, hi]`, as a figure to set beside another.
fn colour_bar(cmap: Colormap, lo: f64, hi: f64, height: u32, title: &str) -> Result<Figure> {
    Figure::draw(92, height, |root| {
        let font = ("sans-serif", 12).into_font();
        root.draw(&Text::new(title.to_string(), (2, 4), font))
            .map_err(draw_err)?;
        draw_colorbar(root, (8, 24), (14, height as i32 - 34), (cmap, lo, hi), 12)
    })
}

/// `a` and `b` side by side, top-aligned, on white.
fn hstack(a: &Figure, b: &Figure) -> Figure {
    let (width, height) = (a.width + b.width, a.height.max(b.height));
    let mut rgb = vec![255u8; (width * height * 3) as usize];
    for (f, x0) in [(a, 0), (b, a.width)] {
        for y in 0..f.height {
            let src = &f.rgb[(y * f.width * 3) as usize..((y + 1) * f.width * 3) as usize];
            let dst = ((y * width + x0) * 3) as usize;
            rgb[dst..dst + src.len()].copy_from_slice(src);
        }
    }
    Figure { width, height, rgb }
}
