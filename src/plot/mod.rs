//! Figures drawn with plotters into an in-memory bitmap: shown inline in evcxr notebooks
//! (`image/png` through `evcxr_display`) and saved as PNG files by the command line.
//!
//! The building block is a [`PanelGrid`]: rows of titled panels, each an image, a heatmap
//! on an explicit colour scale, or a heatmap laid over an image.

pub mod ascend;
pub mod colormap;
pub mod exemplars;
pub mod saliency;

pub use colormap::Colormap;

use anyhow::{anyhow, ensure, Result};
use base64::Engine;
use plotters::prelude::*;
use plotters::style::FontStyle;
use std::path::Path;
use std::sync::Once;
use tch::{Device, Kind, Tensor};

/// The font every figure uses; shipped with the crate so figures render headless.
static FONT: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");
static FONT_ONCE: Once = Once::new();

/// Makes "sans-serif" resolve to the bundled DejaVu Sans.
pub fn register_fonts() {
    FONT_ONCE.call_once(|| {
        let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, FONT);
        let _ = plotters::style::register_font("sans-serif", FontStyle::Bold, FONT);
    });
}

pub(crate) fn draw_err<E: std::fmt::Debug>(e: E) -> anyhow::Error {
    anyhow!("drawing failed: {e:?}")
}

/// A rendered RGB figure. In a notebook, a `Figure` as the last expression of a cell shows
/// as an image.
#[derive(Clone)]
pub struct Figure {
    pub width: u32,
    pub height: u32,
    /// Row-major RGB bytes.
    pub rgb: Vec<u8>,
}

impl std::fmt::Debug for Figure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Figure({}x{})", self.width, self.height)
    }
}

impl Figure {
    /// Draws on a blank white canvas of `width × height`.
    pub fn draw(
        width: u32,
        height: u32,
        paint: impl FnOnce(&DrawingArea<BitMapBackend<'_>, plotters::coord::Shift>) -> Result<()>,
    ) -> Result<Figure> {
        register_fonts();
        let mut rgb = vec![255u8; (width * height * 3) as usize];
        {
            let root = BitMapBackend::with_buffer(&mut rgb, (width, height)).into_drawing_area();
            paint(&root)?;
            root.present().map_err(draw_err)?;
        }
        Ok(Figure { width, height, rgb })
    }

    /// The RGB colour at column `x`, row `y` (an error outside the figure).
    pub fn pixel(&self, x: u32, y: u32) -> Result<[u8; 3]> {
        ensure!(
            x < self.width && y < self.height,
            "pixel ({x}, {y}) is outside the {}x{} figure",
            self.width,
            self.height
        );
        let i = ((y * self.width + x) * 3) as usize;
        Ok([self.rgb[i], self.rgb[i + 1], self.rgb[i + 2]])
    }

    /// The figure encoded as PNG.
    pub fn png_bytes(&self) -> Result<Vec<u8>> {
        crate::provenance::png_with_record(self.width, self.height, &self.rgb, None)
    }

    /// Saves the figure as a PNG file (atomically).
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        crate::io::write_atomic(path, &self.png_bytes()?)
    }

    /// Saves the figure as a PNG file (atomically) with the record of what made it in a
    /// `tEXt` chunk; `gradviz info FILE` prints it.
    pub fn save_with(&self, path: impl AsRef<Path>, record: &crate::provenance::Provenance) -> Result<()> {
        let png = crate::provenance::png_with_record(self.width, self.height, &self.rgb, Some(record))?;
        crate::io::write_atomic(path, &png)
    }

    /// Stacks figures top to bottom.
    pub fn vstack(figs: &[Figure]) -> Result<Figure> {
        ensure!(!figs.is_empty(), "nothing to stack");
        let width = figs.iter().map(|f| f.width).max().unwrap_or(0);
        let height = figs.iter().map(|f| f.height).sum();
        let mut rgb = vec![255u8; (width * height * 3) as usize];
        let mut y0 = 0;
        for f in figs {
            for y in 0..f.height {
                let src = &f.rgb[(y * f.width * 3) as usize..((y + 1) * f.width * 3) as usize];
                let dst = ((y0 + y) * width * 3) as usize;
                rgb[dst..dst + src.len()].copy_from_slice(src);
            }
            y0 += f.height;
        }
        Ok(Figure { width, height, rgb })
    }

    /// The evcxr display protocol: shows the figure inline as `image/png`.
    pub fn evcxr_display(&self) {
        match self.png_bytes() {
            Ok(png) => println!(
                "EVCXR_BEGIN_CONTENT image/png\n{}\nEVCXR_END_CONTENT",
                base64::engine::general_purpose::STANDARD.encode(png)
            ),
            Err(e) => eprintln!("cannot display figure: {e}"),
        }
    }
}

/// What one panel of a [`PanelGrid`] shows.
pub enum Panel {
    /// An image `[C, H, W]` (C = 1 or 3) with values in `[0, 1]`.
    Image(Tensor),
    /// A map `[H, W]` coloured by `cmap` over `[lo, hi]` (values outside are clamped).
    Heatmap {
        map: Tensor,
        cmap: Colormap,
        lo: f64,
        hi: f64,
    },
    /// A heatmap laid over a grayscale copy of an image; `alpha` is the map's opacity at
    /// full magnitude (small values stay transparent, so the image shows through).
    Overlay {
        image: Tensor,
        map: Tensor,
        cmap: Colormap,
        lo: f64,
        hi: f64,
        alpha: f64,
    },
    /// A heatmap with the outline of `image`'s bright part (the stroke, `image > 0.3`) drawn
    /// over it as a thin dark contour: the map's weak values stay visible where an overlay
    /// would hide them under the white ink.
    Contoured {
        image: Tensor,
        map: Tensor,
        cmap: Colormap,
        lo: f64,
        hi: f64,
    },
    /// An empty cell.
    Blank,
}

impl Panel {
    /// A heatmap of signed values on a diverging scale centred exactly on 0: `[-m, m]`.
    pub fn signed(map: &Tensor, max_abs: f64) -> Panel {
        let m = max_abs.max(1e-12);
        Panel::Heatmap {
            map: map.shallow_clone(),
            cmap: Colormap::Diverging,
            lo: -m,
            hi: m,
        }
    }

    fn size(&self) -> Option<(i64, i64)> {
        let t = match self {
            Panel::Image(t) => t,
            Panel::Heatmap { map, .. } | Panel::Overlay { map, .. } | Panel::Contoured { map, .. } => map,
            Panel::Blank => return None,
        };
        let s = t.size();
        Some((s[s.len() - 2], s[s.len() - 1]))
    }

    fn colour_scale(&self) -> Option<(Colormap, f64, f64)> {
        match self {
            Panel::Heatmap { cmap, lo, hi, .. }
            | Panel::Overlay { cmap, lo, hi, .. }
            | Panel::Contoured { cmap, lo, hi, .. } => Some((*cmap, *lo, *hi)),
            _ => None,
        }
    }

    /// RGB bytes of the panel at native resolution, `[H * W * 3]`.
    fn pixels(&self) -> Result<Vec<u8>> {
        let to_vec = |t: &Tensor| -> Result<Vec<f32>> {
            Ok(Vec::<f32>::try_from(
                &t.detach()
                    .to_device(Device::Cpu)
                    .to_kind(Kind::Float)
                    .contiguous()
                    .flatten(0, -1),
            )?)
        };
        let rgb_of_image = |img: &Tensor| -> Result<Vec<[f32; 3]>> {
            let s = img.size();
            ensure!(
                s.len() == 3 && (s[0] == 1 || s[0] == 3),
                "image panel must be [1|3, H, W], got {s:?}"
            );
            let (c, hw) = (s[0] as usize, (s[1] * s[2]) as usize);
            let v = to_vec(img)?;
            Ok((0..hw)
                .map(|i| {
                    if c == 1 {
                        [v[i]; 3]
                    } else {
                        [v[i], v[hw + i], v[2 * hw + i]]
                    }
                })
                .collect())
        };
        let map_vals = |map: &Tensor| -> Result<Vec<f32>> {
            ensure!(
                map.dim() == 2,
                "heatmap panel must be [H, W], got {:?}",
                map.size()
            );
            to_vec(map)
        };
        let px: Vec<[f32; 3]> = match self {
            Panel::Blank => vec![],
            Panel::Image(img) => rgb_of_image(img)?,
            Panel::Heatmap { map, cmap, lo, hi }
            | Panel::Contoured {
                map, cmap, lo, hi, ..
            } => map_vals(map)?
                .into_iter()
                .map(|v| cmap.rgb(normalize(v as f64, *lo, *hi)))
                .collect(),
            Panel::Overlay {
                image,
                map,
                cmap,
                lo,
                hi,
                alpha,
            } => {
                let base = rgb_of_image(image)?;
                let vals = map_vals(map)?;
                ensure!(base.len() == vals.len(), "overlay image and map differ in size");
                base.iter()
                    .zip(vals)
                    .map(|(b, v)| {
                        let t = normalize(v as f64, *lo, *hi);
                        let c = cmap.rgb(t);
                        let gray = 0.299 * b[0] + 0.587 * b[1] + 0.114 * b[2];
                        // Opacity grows with distance from the map's neutral point.
                        let a = (*alpha * cmap.strength(t)) as f32;
                        [0, 1, 2].map(|k| (1.0 - a) * gray * 0.85 + a * c[k])
                    })
                    .collect()
            }
        };
        Ok(px
            .into_iter()
            .flat_map(|p| p.map(|v| (v.clamp(0.0, 1.0) * 255.0).round() as u8))
            .collect())
    }
}

fn normalize(v: f64, lo: f64, hi: f64) -> f64 {
    if hi > lo {
        ((v - lo) / (hi - lo)).clamp(0.0, 1.0)
    } else {
        0.5
    }
}

/// Rows of titled panels, optionally with a colour bar beside each heatmap.
pub struct PanelGrid {
    rows: Vec<Vec<(Panel, String)>>,
    /// Screen pixels per image pixel.
    pub scale: u32,
    pub colorbars: bool,
    pub title: Option<String>,
    /// Labels drawn left of each row.
    pub row_labels: Vec<String>,
}

const PAD: u32 = 8;
const TITLE_H: u32 = 18;
const BAR_W: u32 = 58;

impl PanelGrid {
    pub fn new(scale: u32) -> PanelGrid {
        PanelGrid {
            rows: vec![],
            scale,
            colorbars: false,
            title: None,
            row_labels: vec![],
        }
    }

    pub fn with_colorbars(mut self, on: bool) -> Self {
        self.colorbars = on;
        self
    }

    pub fn with_title(mut self, title: impl Into<String>) -> Self {
        self.title = Some(title.into());
        self
    }

    pub fn push_row(&mut self, row: Vec<(Panel, String)>) {
        self.rows.push(row);
    }

    pub fn push_row_labelled(&mut self, label: impl Into<String>, row: Vec<(Panel, String)>) {
        while self.row_labels.len() < self.rows.len() {
            self.row_labels.push(String::new());
        }
        self.row_labels.push(label.into());
        self.rows.push(row);
    }

    pub fn render(&self) -> Result<Figure> {
        ensure!(!self.rows.is_empty(), "the figure has no panels");
        let (ph, pw) = self
            .rows
            .iter()
            .flatten()
            .find_map(|(p, _)| p.size())
            .ok_or_else(|| anyhow!("the figure has only blank panels"))?;
        let (cw, ch) = (pw as u32 * self.scale, ph as u32 * self.scale);
        register_fonts();
        // Text grows with the figure so that it prints at ≥ 8 pt when the figure is shrunk to
        // the width of an A4 page (see `print_font_px`); the label column and the colour bars
        // widen with the text, so the layout is redone until the text size settles, and the
        // labels are always measured at the size they are drawn at.
        let ncols = self.rows.iter().map(|r| r.len()).max().unwrap_or(1) as u32;
        let layout_at = |font_px: u32| {
            let label_w = self
                .row_labels
                .iter()
                .map(|l| text_width(l, font_px) + 10)
                .max()
                .filter(|&w| w > 10)
                .map_or(0, |w| w.max(90));
            let bar = if self.colorbars {
                BAR_W.max(18 + 4 * font_px)
            } else {
                0
            };
            (label_w, bar, (PAD + label_w + ncols * (cw + PAD + bar)).max(220))
        };
        let mut font_px = print_font_px(0);
        let mut layout = layout_at(font_px);
        for _ in 0..20 {
            let grown = print_font_px(layout.2);
            if grown <= font_px {
                break;
            }
            font_px = grown;
            layout = layout_at(font_px);
        }
        let (label_w, bar, width) = layout;
        let cell_w = cw + PAD + bar;
        // Each title on one line, or on two when it does not fit its cell at `font_px`.
        let titles: Vec<Vec<Vec<String>>> = self
            .rows
            .iter()
            .map(|row| {
                row.iter()
                    .map(|(_, t)| wrap_title(t, font_px, cell_w - 2))
                    .collect()
            })
            .collect();
        let lines = titles.iter().flatten().map(|t| t.len() as u32).max().unwrap_or(1);
        let title_h = TITLE_H.max(lines * (font_px + 3) + 3);
        // The figure's title wraps onto a second line rather than run past the right edge.
        let head_px = font_px + 3;
        let head_lines = match &self.title {
            Some(t) => wrap_words(t, head_px, width - 2 * PAD),
            None => Vec::new(),
        };
        let head = match head_lines.len() as u32 {
            0 => 0,
            n => n * (head_px + 3) + 8,
        };
        let row_h = title_h + ch + PAD;
        let height = head + PAD + self.rows.len() as u32 * row_h;
        let mut fig = Figure {
            width,
            height,
            rgb: vec![255u8; (width * height * 3) as usize],
        };
        let mut scales = Vec::new();
        for (r, row) in self.rows.iter().enumerate() {
            for (c, (panel, _)) in row.iter().enumerate() {
                let x0 = PAD + label_w + c as u32 * cell_w;
                let y0 = head + PAD + r as u32 * row_h + title_h;
                if let Some((h, w)) = panel.size() {
                    ensure!((h, w) == (ph, pw), "panels differ in size: {h}x{w} vs {ph}x{pw}");
                    blit(&mut fig, &panel.pixels()?, w as u32, h as u32, x0, y0, self.scale);
                    if let Panel::Contoured { image, .. } = panel {
                        draw_outline(
                            &mut fig,
                            &stroke_mask(image)?,
                            (w as u32, h as u32),
                            (x0, y0),
                            self.scale,
                        );
                    }
                }
                if let (true, Some(s)) = (self.colorbars, panel.colour_scale()) {
                    scales.push((x0 + cw + 4, y0, s));
                }
            }
        }
        {
            let root = BitMapBackend::with_buffer(&mut fig.rgb, (width, height)).into_drawing_area();
            let font = ("sans-serif", font_px as f64).into_font();
            for (k, line) in head_lines.iter().enumerate() {
                root.draw(&Text::new(
                    line.clone(),
                    (PAD as i32, 6 + (k as u32 * (head_px + 3)) as i32),
                    ("sans-serif", head_px as f64).into_font(),
                ))
                .map_err(draw_err)?;
            }
            for (r, row) in titles.iter().enumerate() {
                let y_title = (head + PAD + r as u32 * row_h) as i32;
                if let Some(l) = self.row_labels.get(r) {
                    root.draw(&Text::new(
                        l.clone(),
                        (
                            PAD as i32,
                            y_title + (title_h + ch / 2) as i32 - font_px as i32 / 2,
                        ),
                        font.clone(),
                    ))
                    .map_err(draw_err)?;
                }
                for (c, title_lines) in row.iter().enumerate() {
                    let x0 = (PAD + label_w + c as u32 * cell_w) as i32;
                    for (k, line) in title_lines.iter().enumerate() {
                        let y = y_title + 2 + (k as u32 * (font_px + 3)) as i32;
                        root.draw(&Text::new(line.clone(), (x0, y), font.clone()))
                            .map_err(draw_err)?;
                    }
                }
            }
            for (x, y, (cmap, lo, hi)) in scales {
                draw_colorbar(
                    &root,
                    (x as i32, y as i32),
                    (10, ch as i32),
                    (cmap, lo, hi),
                    font_px,
                )?;
            }
            root.present().map_err(draw_err)?;
        }
        Ok(fig)
    }
}

/// Usable width of an A4 page in CSS pixels (190 mm at 96 dpi): the report shrinks wider
/// figures to it.
const A4_WIDTH_PX: f64 = 718.0;

/// The smallest font, in figure pixels, that prints at 8 pt in the report: a figure `width`
/// pixels wide is shrunk to the page, where one CSS pixel is 0.75 pt.
pub fn print_font_px(width: u32) -> u32 {
    (8.0 / 0.75 * (width as f64 / A4_WIDTH_PX).max(1.0)).ceil() as u32
}

/// The width of `text` in pixels at `px` (an estimate when the font cannot measure it).
fn text_width(text: &str, px: u32) -> u32 {
    if text.is_empty() {
        return 0;
    }
    ("sans-serif", px as f64)
        .into_font()
        .box_size(text)
        .map(|(w, _)| w)
        .unwrap_or_else(|_| (text.chars().count() as u32 * px * 6) / 10)
}

/// `text` broken at spaces into as few lines as fit `width` at `px` (a word wider than
/// `width` keeps a line of its own).
fn wrap_words(text: &str, px: u32, width: u32) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    for word in text.split(' ') {
        match lines.last_mut() {
            Some(line) if text_width(&format!("{line} {word}"), px) <= width => {
                line.push(' ');
                line.push_str(word);
            }
            _ => lines.push(word.to_string()),
        }
    }
    lines
}

/// `text` on one line if it fits `width` at `px`, else split at the space nearest its middle
/// onto two lines (a text without spaces stays on one line).
fn wrap_title(text: &str, px: u32, width: u32) -> Vec<String> {
    if text_width(text, px) <= width {
        return vec![text.to_string()];
    }
    let mid = text.chars().count() / 2;
    let split = text
        .char_indices()
        .filter(|(_, c)| *c == ' ')
        .min_by_key(|(i, _)| text[..*i].chars().count().abs_diff(mid));
    match split {
        Some((i, _)) => vec![text[..i].to_string(), text[i + 1..].to_string()],
        None => vec![text.to_string()],
    }
}

/// `image > 0.3` (mean over channels) as rows of booleans.
fn stroke_mask(image: &Tensor) -> Result<Vec<bool>> {
    let gray = image
        .detach()
        .to_device(Device::Cpu)
        .to_kind(Kind::Float)
        .mean_dim(0, false, Kind::Float);
    Ok(Vec::<f32>::try_from(&gray.flatten(0, -1))?
        .into_iter()
        .map(|v| v > 0.3)
        .collect())
}

/// A dark line, two screen pixels wide, along every edge between a masked and an unmasked
/// image pixel of a panel drawn at `origin` with `scale`.
fn draw_outline(fig: &mut Figure, mask: &[bool], (w, h): (u32, u32), origin: (u32, u32), scale: u32) {
    let at = |x: u32, y: u32| mask[(y * w + x) as usize];
    let mut put = |sx: u32, sy: u32| {
        let (fx, fy) = (origin.0 + sx, origin.1 + sy);
        if fx < fig.width && fy < fig.height {
            let i = ((fy * fig.width + fx) * 3) as usize;
            fig.rgb[i..i + 3].copy_from_slice(&[20, 20, 20]);
        }
    };
    for y in 0..h {
        for x in 0..w {
            if x + 1 < w && at(x, y) != at(x + 1, y) {
                let sx = (x + 1) * scale;
                for sy in y * scale..(y + 1) * scale {
                    put(sx - 1, sy);
                    put(sx, sy);
                }
            }
            if y + 1 < h && at(x, y) != at(x, y + 1) {
                let sy = (y + 1) * scale;
                for sx in x * scale..(x + 1) * scale {
                    put(sx, sy - 1);
                    put(sx, sy);
                }
            }
        }
    }
}

fn blit(fig: &mut Figure, px: &[u8], w: u32, h: u32, x0: u32, y0: u32, scale: u32) {
    for y in 0..h * scale {
        for x in 0..w * scale {
            let (fx, fy) = (x0 + x, y0 + y);
            if fx >= fig.width || fy >= fig.height {
                continue;
            }
            let src = (((y / scale) * w + x / scale) * 3) as usize;
            let dst = ((fy * fig.width + fx) * 3) as usize;
            fig.rgb[dst..dst + 3].copy_from_slice(&px[src..src + 3]);
        }
    }
}

/// A vertical colour bar `w` × `h` px at `(x, y)` over `[lo, hi]`, its ends and 0 labelled.
pub(crate) fn draw_colorbar(
    root: &DrawingArea<BitMapBackend<'_>, plotters::coord::Shift>,
    (x, y): (i32, i32),
    (w, h): (i32, i32),
    (cmap, lo, hi): (Colormap, f64, f64),
    font_px: u32,
) -> Result<()> {
    for i in 0..h {
        let t = 1.0 - i as f64 / (h - 1).max(1) as f64;
        let [r, g, b] = cmap.rgb(t).map(|v| (v * 255.0).round() as u8);
        root.draw(&Rectangle::new(
            [(x, y + i), (x + w, y + i + 1)],
            RGBColor(r, g, b).filled(),
        ))
        .map_err(draw_err)?;
    }
    root.draw(&Rectangle::new([(x, y), (x + w, y + h)], BLACK.stroke_width(1)))
        .map_err(draw_err)?;
    let font = ("sans-serif", font_px as f64).into_font();
    let f = font_px as i32;
    let mut ticks = vec![(hi, y), (lo, y + h - f)];
    if lo < 0.0 && hi > 0.0 {
        ticks.push((0.0, y + (h as f64 * hi / (hi - lo)) as i32 - f / 2));
    }
    for (v, ty) in ticks {
        root.draw(&Text::new(format_tick(v), (x + w + 3, ty), font.clone()))
            .map_err(draw_err)?;
    }
    Ok(())
}

/// Short labels for colour bars and axes: 0, 0.25, 3.1e-3.
pub fn format_tick(v: f64) -> String {
    if v == 0.0 {
        "0".into()
    } else if v.abs() >= 0.01 && v.abs() < 1000.0 {
        format!("{v:.2}")
            .trim_end_matches('0')
            .trim_end_matches('.')
            .to_string()
    } else {
        format!("{v:.1e}")
    }
}

/// A grid of images with one caption each, `cols` per row. `images` is `[N, C, H, W]`.
pub fn image_grid(images: &Tensor, captions: &[String], cols: usize, scale: u32) -> Result<Figure> {
    let n = images.size()[0] as usize;
    ensure!(
        images.dim() == 4,
        "images must be [N, C, H, W], got {:?}",
        images.size()
    );
    ensure!(n > 0, "no images to show");
    let cols = cols.max(1);
    let mut grid = PanelGrid::new(scale);
    for start in (0..n).step_by(cols) {
        let row = (start..(start + cols).min(n))
            .map(|i| {
                (
                    Panel::Image(images.get(i as i64).clamp(0.0, 1.0)),
                    captions.get(i).cloned().unwrap_or_default(),
                )
            })
            .collect();
        grid.push_row(row);
    }
    grid.render()
}

/// One named line of a [`line_chart`].
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
}

impl Series {
    pub fn new(name: impl Into<String>, points: Vec<(f64, f64)>) -> Series {
        Series {
            name: name.into(),
            points,
        }
    }
}

/// A line chart with a legend, e.g. objective against step.
pub fn line_chart(title: &str, x_label: &str, y_label: &str, series: &[Series]) -> Result<Figure> {
    let pts = series.iter().flat_map(|s| s.points.iter());
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for &(x, y) in pts.filter(|(x, y)| x.is_finite() && y.is_finite()) {
        (x0, x1, y0, y1) = (x0.min(x), x1.max(x), y0.min(y), y1.max(y));
    }
    ensure!(x0 <= x1, "line chart has no finite points");
    if x1 == x0 {
        x1 = x0 + 1.0;
    }
    let pad = ((y1 - y0) * 0.05).max(1e-9);
    let (y0, y1) = (y0 - pad, y1 + pad);
    Figure::draw(640, 380, |root| {
        root.fill(&WHITE).map_err(draw_err)?;
        let mut chart = ChartBuilder::on(root)
            .caption(title, ("sans-serif", 16))
            .margin(10)
            .x_label_area_size(36)
            .y_label_area_size(60)
            .build_cartesian_2d(x0..x1, y0..y1)
            .map_err(draw_err)?;
        chart
            .configure_mesh()
            .x_desc(x_label)
            .y_desc(y_label)
            .y_label_formatter(&|v| format_tick(*v))
            .draw()
            .map_err(draw_err)?;
        for (i, s) in series.iter().enumerate() {
            let colour = Palette99::pick(i).to_rgba();
            chart
                .draw_series(LineSeries::new(s.points.iter().copied(), colour.stroke_width(2)))
                .map_err(draw_err)?
                .label(s.name.clone())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], colour.stroke_width(2)));
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(draw_err)?;
        Ok(())
    })
}
