//! The notebook figure helpers, the prelude and `progress`: what they compute, that a changed
//! hyperparameter changes the result, and that bad input is an error that names the problem.
//! Models are freshly initialized (seeded), so the tests need no trained weights.

use gradviz::prelude::*;

fn model() -> BuiltinModel {
    let mut m = BuiltinModel::new(Arch::MnistCnn, DatasetName::Mnist, 7).unwrap();
    m.freeze();
    m
}

fn batch(n: i64) -> Dataset {
    let opts = (Kind::Float, Device::Cpu);
    let _rng = gradviz::model::seed_torch_rng(3);
    Dataset {
        images: Tensor::rand([n, 1, 28, 28], opts),
        labels: Tensor::arange(n, (Kind::Int64, Device::Cpu)).remainder(10),
        class_names: DatasetName::Mnist.class_names(),
    }
}

fn steps(n: usize) -> AscendConfig {
    AscendConfig {
        steps: n,
        lr: 0.05,
        snapshot_every: 0,
        ..Default::default()
    }
}

#[test]
fn saliency_figure_shows_the_method_and_follows_the_score() {
    let (m, b) = (model(), batch(10));
    let target = Target::labels(&b.labels);
    let logit = saliency_figure(&m, &b, &Gradient::new(Score::Logit), &target).unwrap();
    let again = saliency_figure(&m, &b, &Gradient::new(Score::Logit), &target).unwrap();
    let softmax = saliency_figure(&m, &b, &Gradient::new(Score::Softmax), &target).unwrap();
    assert_eq!(logit.rgb, again.rgb, "the same inputs draw the same figure");
    assert_ne!(logit.rgb, softmax.rgb, "another score draws another figure");
    // 10 images at 8 per row: two rows of images, each above a row of maps.
    let four = saliency_figure(&m, &batch(4), &Gradient::default(), &Target::Predicted).unwrap();
    assert!(
        logit.height > four.height + 100,
        "{} vs {}",
        logit.height,
        four.height
    );

    let e = format!(
        "{:#}",
        saliency_figure(&m, &b, &Gradient::default(), &Target::Class(12)).unwrap_err()
    );
    assert!(e.contains("target class 12") && e.contains("out of range"), "{e}");
}

#[test]
fn judged_rows_caption_each_row_and_check_the_verdicts() {
    let m = model();
    let judge = BuiltinModel::new(Arch::Lenet, DatasetName::Mnist, 1).unwrap();
    let reference = batch(40);
    let classes: Vec<i64> = (0..10).collect();
    let x0 = Init::noise(0.1, 0.05, 0).make(10, m.input_shape()).unwrap();
    let run = ascend(&m, &Objective::logits(&classes), &x0, &steps(3)).unwrap();
    let verdict = naturalness(&judge, &run.images, &classes, &reference).unwrap();
    assert_eq!(verdict.images.len(), 10);

    let one = judged_rows(None, &[("run", &run.images, &verdict)]).unwrap();
    let means = reference.class_means().unwrap();
    let with_means = judged_rows(Some(&means), &[("run", &run.images, &verdict)]).unwrap();
    assert!(with_means.height > one.height, "the class means add a row");

    let e = format!(
        "{:#}",
        judged_rows(None, &[("half", &run.images.narrow(0, 0, 5), &verdict)]).unwrap_err()
    );
    assert!(e.contains("row 'half' has 5 images but 10 verdicts"), "{e}");
    assert!(judged_rows(None, &[]).is_err());
}

#[test]
fn channel_sheet_runs_channels_and_neurons_and_names_bad_layers() {
    let m = model();
    let start = Init::noise(0.1, 0.05, 7);
    let sheet = channel_sheet(&m, "conv2", &[0, 3, 5], 2, &start, &steps(3)).unwrap();
    assert_eq!(sheet.layer, "conv2");
    assert_eq!(sheet.channels.images.size(), vec![3, 1, 28, 28]);
    let neurons = sheet.neurons.as_ref().expect("neurons were asked for");
    assert_eq!(neurons.images.size(), vec![2, 1, 28, 28]);
    // The channel run starts from the same noise rows as `start.make`.
    let x0 = start.make(3, m.input_shape()).unwrap();
    assert!(sheet.channels.snapshots[0].images.equal(&x0));

    let no_neurons = channel_sheet(&m, "conv2", &[0, 3, 5], 0, &start, &steps(3)).unwrap();
    assert!(no_neurons.neurons.is_none());
    assert!(no_neurons.figure.height < sheet.figure.height);
    let stacked = ChannelSheet::stack(&[sheet, no_neurons]).unwrap();
    assert!(stacked.height > 0);

    let e = format!(
        "{:#}",
        channel_sheet(&m, "conv9", &[0], 0, &start, &steps(3)).unwrap_err()
    );
    assert!(e.contains("conv9"), "{e}");
    let e = format!(
        "{:#}",
        channel_sheet(&m, "conv1", &[], 0, &start, &steps(3)).unwrap_err()
    );
    assert!(e.contains("no channels"), "{e}");
    let e = format!(
        "{:#}",
        channel_sheet(&m, "conv1", &[40], 0, &start, &steps(3)).unwrap_err()
    );
    assert!(e.contains("40"), "{e}");
}

#[test]
fn progress_yields_every_item_in_order() {
    let items: Vec<i32> = progress("items", vec![3, 1, 2]).collect();
    assert_eq!(items, vec![3, 1, 2]);
    let mut it = progress("empty", Vec::<u8>::new());
    assert_eq!(it.size_hint(), (0, Some(0)));
    assert_eq!(it.next(), None);
    assert_eq!(it.next(), None, "the iterator is fused");
    let p = Progress::hidden();
    p.update(1, || unreachable!("a hidden progress builds no message"));
    p.finish();
}

#[test]
fn the_prelude_brings_anyhows_macros_and_context_to_cells() {
    fn position(names: &[&str], want: &str) -> Result<usize> {
        ensure!(!names.is_empty(), "no class names");
        if want.is_empty() {
            bail!("an empty class name");
        }
        names
            .iter()
            .position(|n| *n == want)
            .context(format!("no class {want}"))
    }
    assert_eq!(position(&["T-shirt", "Sandal"], "Sandal").unwrap(), 1);
    assert_eq!(
        position(&["T-shirt"], "Sandal").unwrap_err().to_string(),
        "no class Sandal"
    );
    assert_eq!(position(&[], "Sandal").unwrap_err().to_string(), "no class names");
    assert_eq!(
        position(&["T-shirt"], "").unwrap_err().to_string(),
        "an empty class name"
    );
    assert_eq!(
        anyhow!("class {} out of range", 12).to_string(),
        "class 12 out of range"
    );
}

#[test]
fn a_long_figure_title_wraps_instead_of_running_past_the_edge() {
    let digit = Tensor::rand([1, 28, 28], (Kind::Float, Device::Cpu));
    let render = |title: &str| {
        let mut grid = plot::PanelGrid::new(2);
        grid.push_row(vec![(plot::Panel::Image(digit.shallow_clone()), "x".to_string())]);
        grid.title = Some(title.to_string());
        grid.render().unwrap()
    };
    let short = render("short");
    assert!(short
        .pixel(short.width, 0)
        .unwrap_err()
        .to_string()
        .contains("outside"));
    let long = render("a title far longer than the one panel of this figure is wide, on two lines");
    assert_eq!(long.width, short.width);
    assert!(long.height > short.height, "{} vs {}", long.height, short.height);
    // nothing drawn in the right margin of the title lines
    let header = long.height - short.height + 20;
    for y in 0..header {
        for x in long.width - 4..long.width {
            assert_eq!(long.pixel(x, y).unwrap(), [255, 255, 255], "ink at ({x}, {y})");
        }
    }
}
