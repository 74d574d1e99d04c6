//! Figures of gradient ascent: snapshot strips (rows = batch rows, columns = steps),
//! objective/probability curves, and labelled rows of image batches for comparisons.

use super::{line_chart, Figure, Panel, PanelGrid, Series};
use crate::ascend::AscendResult;
use anyhow::{ensure, Result};
use tch::Tensor;

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
