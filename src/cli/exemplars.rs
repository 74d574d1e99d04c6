//! `gradviz exemplars`: the dataset images that activate hidden units most and least, with
//! their receptive-field crops, printed, drawn beside the units' visualizations, and saved
//! as JSON.

use super::ascend::dataset_of;
use anyhow::{Context, Result};
use clap::Args;
use gradviz::args::parse_list;
use gradviz::ascend::{ascend, AscendConfig, Init};
use gradviz::data::{self, DatasetName};
use gradviz::exemplars::{ExemplarSearch, Pool, Unit, UnitExemplars};
use gradviz::model::{self, Classifier};
use gradviz::objective::{Objective, Targets, Term};
use gradviz::plot::exemplars::{exemplar_rows, ExemplarRow, ExemplarStyle};
use gradviz::provenance::Provenance;
use gradviz::regularize::Regularization;
use gradviz::tch::Tensor;
use std::path::PathBuf;

#[derive(Args)]
pub struct ExemplarsArgs {
    /// A gradviz .safetensors model (or an imported one with a layer graph).
    #[arg(long)]
    model: PathBuf,
    /// The hidden layer, e.g. conv2.
    #[arg(long)]
    layer: String,
    /// Channels of --layer, one figure row each: `5`, `0-7`, `1,3`.
    #[arg(long)]
    channel: String,
    /// Rank by one neuron of each channel instead of the whole channel: `centre` or `Y,X`.
    #[arg(long)]
    neuron: Option<String>,
    /// How a channel's map becomes one number per image: mean or max.
    #[arg(long, default_value = "mean")]
    pool: Pool,
    /// Exemplars at each end (top and bottom).
    #[arg(long, default_value_t = 9)]
    k: usize,
    /// The data set searched: mnist, fashion-mnist or cifar10 (default: the model's own).
    #[arg(long)]
    dataset: Option<DatasetName>,
    /// Directory of the data set (default: bundled MNIST, Debian's Fashion-MNIST).
    #[arg(long)]
    data: Option<PathBuf>,
    /// Search the train split instead of the test split.
    #[arg(long)]
    train: bool,
    /// Steps of gradient ascent for each unit's visualization in the plot (0: none).
    #[arg(long, default_value_t = 200)]
    steps: usize,
    /// Regularization of the visualization (see `gradviz ascend --regularize`).
    #[arg(long, default_value = "hidden")]
    regularize: String,
    /// Seeds the visualization's noise start and transforms.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Show whole images with the receptive field outlined instead of crops.
    #[arg(long)]
    whole: bool,
    /// Draw one row per unit (visualization, top-k, bottom-k) to a PNG file.
    #[arg(long)]
    plot: Option<PathBuf>,
    /// Save the exemplars' indices, labels, activations and crops as JSON.
    #[arg(long)]
    save_json: Option<PathBuf>,
    #[command(flatten)]
    device: super::device::DeviceArg,
}

/// `centre` or `Y,X`.
fn parse_position(s: &str) -> Result<Option<(i64, i64)>> {
    if s == "centre" || s == "center" {
        return Ok(None);
    }
    let bad = || format!("--neuron '{s}': expected centre or Y,X");
    let (y, x) = s.split_once(',').with_context(bad)?;
    Ok(Some((
        y.trim().parse().with_context(bad)?,
        x.trim().parse().with_context(bad)?,
    )))
}

fn units(a: &ExemplarsArgs) -> Result<Vec<Unit>> {
    let channels = parse_list(&a.channel, "--channel")?;
    let at = a.neuron.as_deref().map(parse_position).transpose()?;
    Ok(channels
        .into_iter()
        .map(|channel| match at {
            Some(at) => Unit::Neuron { channel, at },
            None => Unit::Channel {
                channel,
                pool: a.pool,
            },
        })
        .collect())
}

/// One visualization per unit, from gradient ascent on the unit's objective (a channel's
/// mean, also for `--pool max`, or the neuron).
fn visualize(model: &dyn Classifier, a: &ExemplarsArgs, units: &[Unit]) -> Result<Tensor> {
    let channels: Vec<i64> = units.iter().map(Unit::channel_index).collect();
    let objective = match units[0] {
        Unit::Neuron { at, .. } => Objective::term(Term::Neuron {
            layer: a.layer.clone(),
            channel: Targets::PerSample(channels),
            at,
        }),
        Unit::Channel { .. } => Objective::channels(&a.layer, &channels),
    };
    let cfg = AscendConfig {
        steps: a.steps,
        regularization: Regularization::parse(&a.regularize)?,
        seed: a.seed,
        snapshot_every: 0,
        progress: true,
        ..AscendConfig::regularized_28x28()
    };
    let x0 = Init::noise(0.1, 0.05, a.seed).make(units.len() as i64, model.input_shape())?;
    Ok(ascend(model, &objective, &x0, &cfg)?.images)
}

pub fn exemplars(a: ExemplarsArgs, record: &Provenance) -> Result<()> {
    let name = match a.dataset.or_else(|| dataset_of(&a.model)) {
        Some(d) => d,
        None => anyhow::bail!(
            "{} is not a built-in model: say which data set to search with --dataset",
            a.model.display()
        ),
    };
    let (device, record) = a.device.resolve_recorded(record)?;
    let record = &record;
    let model = model::load_model_for_on(&a.model, Some(name), device)?;
    let splits = data::load(name, a.data.as_deref())?;
    let (split, data) = if a.train {
        ("train", splits.train)
    } else {
        ("test", splits.test)
    };
    let units = units(&a)?;
    let search = ExemplarSearch {
        k: a.k,
        progress: true,
        ..Default::default()
    };
    let found = search.run(model.as_ref(), &a.layer, &units, &data)?;
    eprintln!(
        "searched the {} images of the {name} {split} split with {}",
        data.len(),
        model.describe()
    );
    for ex in &found {
        print!("{ex}");
    }
    if let Some(p) = &a.save_json {
        save_json(p, &a, name, split, &found, record)?;
        println!("saved exemplars to {}", p.display());
    }
    if let Some(p) = &a.plot {
        let vis = if a.steps > 0 {
            Some(visualize(model.as_ref(), &a, &units)?)
        } else {
            None
        };
        let vis_rows: Vec<Option<Tensor>> = (0..units.len() as i64)
            .map(|i| vis.as_ref().map(|v| v.get(i)))
            .collect();
        let rows: Vec<ExemplarRow> = found
            .iter()
            .zip(&vis_rows)
            .map(|(ex, v)| ExemplarRow {
                label: format!("{}:{}", a.layer, ex.unit.channel_index()),
                visualization: v.as_ref(),
                exemplars: ex,
            })
            .collect();
        let style = ExemplarStyle {
            crops: !a.whole,
            ..Default::default()
        };
        exemplar_rows(&rows, &data, &style)?.save_with(p, record)?;
        println!("saved exemplar rows to {}", p.display());
    }
    if a.plot.is_none() && a.save_json.is_none() {
        eprintln!("note: nothing saved; add --plot OUT.png and/or --save-json OUT.json");
    }
    Ok(())
}

fn save_json(
    path: &std::path::Path,
    a: &ExemplarsArgs,
    name: DatasetName,
    split: &str,
    found: &[UnitExemplars],
    record: &Provenance,
) -> Result<()> {
    let doc = serde_json::json!({
        "model": a.model.display().to_string(),
        "dataset": name.as_str(),
        "split": split,
        "k": a.k,
        "units": found.iter().map(UnitExemplars::to_json).collect::<Vec<_>>(),
        "provenance": serde_json::from_str::<serde_json::Value>(&record.to_json()?)?,
    });
    gradviz::io::write_atomic(path, serde_json::to_string_pretty(&doc)?.as_bytes())
}
