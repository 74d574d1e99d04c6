//! The saliency figures as printed in the report: colour scales by the sign of the map, the
//! stroke outline, text sized for print, and the deletion/insertion curves with their bands.

use gradviz::metrics::{deletion_curve, insertion_curve, random_ranking, PerturbConfig};
use gradviz::plot::print_font_px;
use gradviz::prelude::*;

fn opts() -> (Kind, Device) {
    (Kind::Float, Device::Cpu)
}

/// Pixels of `fig` within 2 of `rgb` in every channel.
fn count(fig: &Figure, rgb: [u8; 3]) -> usize {
    fig.rgb
        .chunks(3)
        .filter(|p| (0..3).all(|k| p[k].abs_diff(rgb[k]) <= 2))
        .count()
}

fn blueish(fig: &Figure) -> usize {
    fig.rgb
        .chunks(3)
        .filter(|p| p[2] as i32 > p[0] as i32 + 60)
        .count()
}

fn heatmaps() -> SaliencyStyle {
    SaliencyStyle {
        scale: 2,
        overlay: false,
        colorbars: false,
        ..Default::default()
    }
}

#[test]
fn a_map_that_is_never_negative_is_drawn_on_the_sequential_scale() {
    let image = Tensor::zeros([1, 1, 28, 28], opts());
    let ramp = Tensor::arange(784, opts()).view([1, 28, 28]) / 783.0;
    let signed = &ramp - 0.5;
    let style = SaliencyStyle {
        clip_pct: 100.0,
        ..heatmaps()
    };
    let seq = compare_methods(&image, &[("cam".into(), ramp)], &["x".into()], &style).unwrap();
    let div = compare_methods(&image, &[("grad".into(), signed)], &["x".into()], &style).unwrap();
    // YlOrRd ends in dark red (128, 0, 38); RdBu's negative end is blue.
    assert!(count(&seq, [128, 0, 38]) >= 4, "the largest value is dark red");
    assert_eq!(blueish(&seq), 0, "no blue on the sequential scale");
    assert!(
        blueish(&div) > 100,
        "negative values are blue on the diverging scale"
    );
}

#[test]
fn the_contour_style_outlines_the_stroke_over_the_map() {
    let image = Tensor::zeros([1, 1, 28, 28], opts());
    let _ = image.narrow(2, 10, 8).narrow(3, 10, 8).fill_(1.0); // an 8×8 square "stroke"
    let map = Tensor::zeros([1, 28, 28], opts());
    let with = |contour: bool| {
        let style = SaliencyStyle {
            contour,
            overlay: true,
            ..heatmaps()
        };
        compare_methods(
            &image,
            &[("m".into(), map.shallow_clone())],
            &["x".into()],
            &style,
        )
        .unwrap()
    };
    let (outlined, blended) = (with(true), with(false));
    let dark = count(&outlined, [20, 20, 20]);
    // 4 sides of 8 pixels, each edge scale (2) long and 2 screen pixels wide.
    assert!(
        (4 * 8 * 2 * 2 - 8..=4 * 8 * 2 * 2).contains(&dark),
        "{dark} outline pixels"
    );
    assert_eq!(count(&blended, [20, 20, 20]), 0);
}

#[test]
fn text_grows_with_the_figure_so_that_it_prints_at_8_pt() {
    assert_eq!(print_font_px(300), 11, "8 pt at 0.75 pt per pixel");
    assert_eq!(
        print_font_px(1436),
        22,
        "a figure twice the page width is printed at half size"
    );
    let image = Tensor::zeros([1, 1, 28, 28], opts());
    let map = Tensor::zeros([1, 28, 28], opts());
    let short = compare_methods(
        &image,
        &[("m".into(), map.shallow_clone())],
        &["x".into()],
        &heatmaps(),
    )
    .unwrap();
    let long = compare_methods(
        &image,
        &[("a method name far too long for one line".into(), map)],
        &["x".into()],
        &heatmaps(),
    )
    .unwrap();
    assert!(
        long.height > short.height,
        "a long title wraps onto a second line"
    );
    assert_eq!(long.width, short.width, "wrapping does not widen the figure");
}

#[test]
fn perturbation_curves_draw_both_tests_and_reject_a_bad_zoom() -> Result<()> {
    let mut m = BuiltinModel::new(Arch::MnistCnn, DatasetName::Mnist, 3)?;
    m.freeze();
    let x = Tensor::rand([6, 1, 28, 28], opts());
    let y = vec![0i64, 1, 2, 3, 4, 5];
    let cfg = PerturbConfig {
        steps: 4,
        ..Default::default()
    };
    let r = random_ranking(6, 28, 28, 1);
    let (d, i) = (
        deletion_curve(&m, &x, &y, &r, &cfg)?,
        insertion_curve(&m, &x, &y, &r, &cfg)?,
    );
    assert_eq!(d.per_image_score.len(), 5);
    assert!(d.per_image_score.iter().all(|v| v.len() == 6));
    let mean0 = d.per_image_score[2].iter().sum::<f64>() / 6.0;
    assert!(
        (mean0 - d.mean_score[2]).abs() < 1e-9,
        "the per-image scores average to the curve"
    );
    let fig = perturbation_curves(&[("random".into(), &d)], &[("random".into(), &i)], 0.5, Some(0.1))?;
    assert_eq!((fig.width, fig.height), (900, 400));
    assert!(perturbation_curves(&[("r".into(), &d)], &[("r".into(), &i)], 0.0, None).is_err());
    assert!(perturbation_curves(&[], &[("r".into(), &i)], 0.5, None).is_err());
    Ok(())
}

#[test]
fn a_row_label_never_reaches_into_the_panels_of_a_wide_figure() {
    // Wider than the page, so the text grows after the first layout pass: the label column
    // must be measured at the size the label is drawn at.
    let mut grid = PanelGrid::new(2);
    let black = || Panel::Image(Tensor::zeros([1, 28, 28], opts()));
    grid.push_row_labelled(
        "default − norm-clip=40",
        (0..12).map(|_| (black(), String::new())).collect(),
    );
    let fig = grid.render().unwrap();
    let (w, h) = (fig.width as usize, fig.height as usize);
    let dark = |x: usize, y: usize| fig.pixel(x as u32, y as u32).unwrap()[0] < 128;
    // the rows that cross the panels, and in them the first column that is black throughout
    let band: Vec<usize> = (0..h)
        .filter(|&y| (0..w).filter(|&x| dark(x, y)).count() > w / 2)
        .collect();
    assert!(!band.is_empty(), "the panels are drawn");
    let first_panel = (0..w).find(|&x| band.iter().all(|&y| dark(x, y))).unwrap();
    let last_ink = (0..first_panel)
        .filter(|&x| (0..h).any(|y| dark(x, y)))
        .max()
        .expect("the label is drawn");
    let gap = (last_ink + 1..first_panel)
        .filter(|&x| band.iter().all(|&y| !dark(x, y)))
        .count();
    assert!(
        gap >= 2,
        "the label ends at x = {last_ink}, the first panel starts at x = {first_panel}"
    );
}
