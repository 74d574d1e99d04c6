//! Renders the saliency figures for a few MNIST test images into target/saliency-figures/.
//!
//! `cargo run --example saliency_figures [MODEL.safetensors]`

use anyhow::Result;
use gradviz::model::{predict, BuiltinModel, Classifier};
use gradviz::plot::saliency::{batch_grid, compare_methods, saliency_rows, ImageLabels, SaliencyStyle};
use gradviz::saliency::*;

fn main() -> Result<()> {
    let path = std::env::args()
        .nth(1)
        .unwrap_or("models/mnist_cnn.safetensors".into());
    let model = BuiltinModel::load(&path)?;
    let test = gradviz::data::bundled_mnist()?.test.head(8);
    let out = std::path::Path::new("target/saliency-figures");
    std::fs::create_dir_all(out)?;
    let t = Target::labels(&test.labels);
    let g = Gradient::default().attribute(&model, &test.images, &t)?;
    let maps = reduce(&g, Reduce::Signed)?;
    let p = predict(&model, &test.images, 256)?;
    let labels: Vec<i64> = Vec::try_from(&test.labels)?;
    let titles: Vec<String> = labels.iter().map(|l| format!("label {l}")).collect();
    let style = SaliencyStyle {
        split_signs: true,
        ..Default::default()
    };
    saliency_rows(
        &test.images.narrow(0, 0, 3),
        &maps.narrow(0, 0, 3),
        &titles,
        "∂logit/∂x",
        &style,
    )?
    .save(out.join("rows.png"))?;
    let il: Vec<ImageLabels> = (0..8)
        .map(|i| ImageLabels {
            true_class: Some(labels[i]),
            predicted: p.classes[i],
            probability: p.confidences[i],
        })
        .collect();
    batch_grid(
        &test.images,
        &maps,
        &il,
        model.class_names(),
        4,
        &SaliencyStyle::default(),
    )?
    .save(out.join("grid.png"))?;
    let ig = IntegratedGradients::default().attribute(&model, &test.images, &t)?;
    let sg = SmoothGrad::default().attribute(&model, &test.images, &t)?;
    let cam = GradCam::new("conv4").attribute(&model, &test.images, &t)?;
    let methods = [
        ("gradient".to_string(), maps.shallow_clone()),
        ("SmoothGrad".to_string(), reduce(&sg, Reduce::Signed)?),
        ("IG".to_string(), reduce(&ig, Reduce::Signed)?),
        ("Grad-CAM".to_string(), reduce(&cam, Reduce::Signed)?),
    ];
    compare_methods(
        &test.images.narrow(0, 0, 3),
        &methods
            .iter()
            .map(|(n, m)| (n.clone(), m.narrow(0, 0, 3)))
            .collect::<Vec<_>>(),
        &titles,
        &SaliencyStyle {
            overlay: false,
            ..Default::default()
        },
    )?
    .save(out.join("compare.png"))?;
    println!("wrote {}", out.display());
    Ok(())
}
