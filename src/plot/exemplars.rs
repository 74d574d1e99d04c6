//! Figures of dataset exemplars: one row per hidden unit with its synthetic visualization,
//! its top-k and its bottom-k exemplars (receptive-field crops or whole images), so that the
//! synthetic and the real evidence can be read side by side.

use super::{Figure, Panel, PanelGrid};
use crate::data::Dataset;
use crate::exemplars::{End, ReceptiveField, UnitExemplars};
use anyhow::{ensure, Result};
use tch::{Device, Kind, Tensor};

/// Where a receptive field reaches beyond the image (zero padding the unit sees).
const OUTSIDE: [f64; 3] = [0.45, 0.55, 0.85];

/// How the exemplar rows are drawn.
#[derive(Debug, Clone)]
pub struct ExemplarStyle {
    /// Receptive-field crops (`true`) or whole images with the field outlined.
    pub crops: bool,
    /// Screen pixels per image pixel.
    pub scale: u32,
    pub title: Option<String>,
}

impl Default for ExemplarStyle {
    fn default() -> Self {
        ExemplarStyle {
            crops: true,
            scale: 2,
            title: None,
        }
    }
}

/// One row of an exemplar figure: a unit's exemplars and, optionally, its visualization
/// `[C, H, W]`.
pub struct ExemplarRow<'a> {
    pub label: String,
    pub visualization: Option<&'a Tensor>,
    pub exemplars: &'a UnitExemplars,
}

/// For each unit: the visualization, the top-k exemplars (captioned `label: activation`), a
/// gap, then the bottom-k. Crops are enlarged by the largest whole factor that fits the
/// image size and centred; blue marks the part of a field beyond the image border.
pub fn exemplar_rows(rows: &[ExemplarRow], data: &Dataset, style: &ExemplarStyle) -> Result<Figure> {
    ensure!(!rows.is_empty(), "no units to show");
    let mut grid = PanelGrid::new(style.scale.max(1));
    grid.title = Some(style.title.clone().unwrap_or_else(|| {
        "each row: visualization | top exemplars (label: activation) | bottom exemplars".into()
    }));
    for row in rows {
        let mut panels = vec![match row.visualization {
            Some(v) => (
                Panel::Image(v.detach().to_device(Device::Cpu).clamp(0.0, 1.0)),
                "synthetic".into(),
            ),
            None => (Panel::Blank, String::new()),
        }];
        for end in [End::Top, End::Bottom] {
            if end == End::Bottom {
                panels.push((Panel::Blank, String::new()));
            }
            let images = unit_panels(row.exemplars, data, end, style.crops)?;
            for (img, e) in images.into_iter().zip(row.exemplars.list(end)) {
                panels.push((Panel::Image(img), format!("{}: {:.2}", e.label, e.activation)));
            }
        }
        grid.push_row_labelled(row.label.clone(), panels);
    }
    grid.render()
}

/// The exemplars of one end as `[3, H, W]` RGB panels of the image size.
fn unit_panels(ex: &UnitExemplars, data: &Dataset, end: End, crops: bool) -> Result<Vec<Tensor>> {
    let images = ex.images(data, end)?.to_kind(Kind::Float).clamp(0.0, 1.0);
    let s = images.size();
    let (h, w) = (s[2], s[3]);
    let rgb = |t: &Tensor| {
        if t.size()[0] == 1 {
            t.repeat([3, 1, 1])
        } else {
            t.shallow_clone()
        }
    };
    let ReceptiveField::Local { rows, cols } = ex.field else {
        return Ok((0..s[0]).map(|i| rgb(&images.get(i))).collect());
    };
    let mut out = Vec::new();
    for (i, e) in ex.list(end).iter().enumerate() {
        let img = rgb(&images.get(i as i64));
        let c = e.crop;
        if !crops {
            out.push(outline(&img, c.top, c.left, c.bottom, c.right));
            continue;
        }
        let (y, x) = e.location.unwrap_or((0, 0));
        let (top, left) = (rows.offset + y * rows.stride, cols.offset + x * cols.stride);
        let field = Tensor::from_slice(&OUTSIDE.map(|v| v as f32))
            .view([3, 1, 1])
            .repeat([1, rows.size, cols.size]);
        if c.height() > 0 && c.width() > 0 {
            let part = img.narrow(1, c.top, c.height()).narrow(2, c.left, c.width());
            let mut window = field
                .narrow(1, c.top - top, c.height())
                .narrow(2, c.left - left, c.width());
            window.copy_(&part);
        }
        let f = (h / rows.size).min(w / cols.size).max(1);
        let big = field
            .unsqueeze(0)
            .upsample_nearest2d([rows.size * f, cols.size * f], None, None)
            .squeeze_dim(0);
        out.push(centre_on_white(&big, h, w));
    }
    Ok(out)
}

/// `img` `[3, h, w]` centred on a white `[3, H, W]` canvas (cut if larger).
fn centre_on_white(img: &Tensor, h: i64, w: i64) -> Tensor {
    let s = img.size();
    let (ih, iw) = (s[1].min(h), s[2].min(w));
    let canvas = Tensor::ones([3, h, w], (Kind::Float, Device::Cpu));
    let mut window = canvas.narrow(1, (h - ih) / 2, ih).narrow(2, (w - iw) / 2, iw);
    window.copy_(&img.narrow(1, 0, ih).narrow(2, 0, iw));
    canvas
}

/// `img` `[3, H, W]` with the rectangle's border drawn in the field colour.
fn outline(img: &Tensor, top: i64, left: i64, bottom: i64, right: i64) -> Tensor {
    let out = img.copy();
    let colour = Tensor::from_slice(&OUTSIDE.map(|v| v as f32)).view([3, 1]);
    let (h, w) = (img.size()[1], img.size()[2]);
    if bottom <= top || right <= left {
        return out;
    }
    for y in [top, bottom - 1] {
        if (0..h).contains(&y) {
            let mut line = out.select(1, y).narrow(1, left, right - left);
            line.copy_(&colour.expand([3, right - left], false));
        }
    }
    for x in [left, right - 1] {
        if (0..w).contains(&x) {
            let mut line = out.select(2, x).narrow(1, top, bottom - top);
            line.copy_(&colour.expand([3, bottom - top], false));
        }
    }
    out
}
