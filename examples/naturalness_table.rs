//! The table the default regularization is chosen from: for each candidate setting (none, the
//! default, the default without each component, the Fourier parameterization), the class
//! visualizations of the MNIST model from many noise starts, measured by
//!
//! - the judges' recognition and p(target) (transfer, averaged over the judges),
//! - the analysed model's own p(target),
//! - the Fréchet distance to real test digits in the judge's `fc2` features, per class, with
//!   the real-vs-real split-half floor,
//! - the radially averaged power-spectrum slope (real digits for comparison),
//! - the MIS-style fraction of hidden units (every channel of `conv2` and `conv4`) whose
//!   visualization under the setting is closer to its top dataset exemplars than to its
//!   bottom ones, in the judge's `fc2` features.
//!
//! ```text
//! cargo run --release --example naturalness_table -- [--starts 100] [--only none,default] \
//!     [--judge models/mnist_lenet_judge.safetensors ...] [--per-class none,default]
//! ```
//! `--only` takes the names printed in the first column, and `hidden` for the MIS of the
//! hidden-unit preset. The numbers quoted in the README come from `--starts 10`. The last
//! lines apply the selection criterion of the default: among the settings that clip to
//! [0, 1] and that the judges recognize at ≥ 0.9 and the analysed model gives a mean
//! p(target) ≥ 0.9, the lowest Fréchet distance.
//! Everything is seeded: the same command prints the same table.

use anyhow::Result;
use clap::Parser;
use gradviz::ascend::{ascend, AscendConfig, Init};
use gradviz::data::Dataset;
use gradviz::exemplars::{exemplars_of, mis_fraction, mis_verdicts, Unit, UnitExemplars};
use gradviz::model::{load_model, Classifier};
use gradviz::naturalness::{
    regularization_candidates, Candidate, ClassReport, ClassStudy, FeatureSpace, RealReference,
};
use gradviz::objective::Objective;
use gradviz::regularize::{PostStep, Regularization};
use std::path::PathBuf;
use std::time::Instant;

#[derive(Parser)]
struct Args {
    /// The analysed model.
    #[arg(long, default_value = "models/mnist_cnn.safetensors")]
    model: PathBuf,
    /// Independent judges (the first one's `fc2` features are the Fréchet and MIS space).
    #[arg(long, default_values_t = vec!["models/mnist_lenet_judge.safetensors".to_string()])]
    judge: Vec<String>,
    /// The judge layer whose features are compared.
    #[arg(long, default_value = "fc2")]
    features: String,
    /// Noise starts per class.
    #[arg(long, default_value_t = 100)]
    starts: i64,
    /// Only these candidates (comma-separated names as printed), e.g. `none,default`.
    #[arg(long)]
    only: Option<String>,
    /// Print per-class rows for these candidates.
    #[arg(long, default_value = "none,default")]
    per_class: String,
    /// Hidden layers whose channels enter the MIS-style measure.
    #[arg(long, default_value = "conv2,conv4")]
    mis_layers: String,
    /// Exemplars at each end for the MIS-style measure.
    #[arg(long, default_value_t = 9)]
    k: usize,
    /// libtorch threads (1 avoids OpenMP spin-waiting on a busy machine).
    #[arg(long, default_value_t = 1)]
    threads: i32,
}

/// Every channel of each layer with its exemplars, found once and shared by all settings.
struct MisUnits {
    layers: Vec<(String, Vec<UnitExemplars>)>,
}

impl MisUnits {
    fn new(model: &dyn Classifier, layers: &str, data: &Dataset, k: usize) -> Result<MisUnits> {
        let mut out = Vec::new();
        for layer in layers.split(',').map(str::trim) {
            let probe = data.head(1).images;
            let (_, acts) = model.forward_with(&probe, &[layer])?;
            let units: Vec<Unit> = (0..acts[0].size()[1]).map(Unit::channel).collect();
            out.push((layer.to_string(), exemplars_of(model, layer, &units, data, k)?));
        }
        Ok(MisUnits { layers: out })
    }

    /// The fraction of units whose visualization under `reg` is closer to the top exemplars.
    fn fraction(
        &self,
        model: &dyn Classifier,
        space: &FeatureSpace,
        reg: &Regularization,
        data: &Dataset,
    ) -> Result<f64> {
        let cfg = AscendConfig {
            regularization: reg.clone(),
            snapshot_every: 0,
            ..AscendConfig::regularized_28x28()
        };
        let mut verdicts = Vec::new();
        for (layer, ex) in &self.layers {
            let channels: Vec<i64> = ex.iter().map(|e| e.unit.channel_index()).collect();
            let x0 = Init::noise(0.1, 0.05, 7).make(channels.len() as i64, model.input_shape())?;
            let run = ascend(model, &Objective::channels(layer, &channels), &x0, &cfg)?;
            verdicts.extend(mis_verdicts(space, &run.images, ex, data)?);
        }
        Ok(mis_fraction(&verdicts))
    }

    fn count(&self) -> usize {
        self.layers.iter().map(|(_, e)| e.len()).sum()
    }
}

/// The selection criterion of the default (notebook 03, README): among the settings that keep
/// pixels in the valid range (they clip) and whose visualizations the judges recognize at
/// ≥ 0.9 and the analysed model gives a mean p(target) ≥ 0.9, the lowest mean Fréchet
/// distance to real digits.
fn print_choice(scored: &[(String, bool, f64)]) {
    let admissible: Vec<&(String, bool, f64)> = scored.iter().filter(|s| s.1).collect();
    let names: Vec<&str> = admissible.iter().map(|s| s.0.as_str()).collect();
    println!(
        "\nadmissible (recognition ≥ 0.9, model p ≥ 0.9): {}",
        names.join(", ")
    );
    match admissible.iter().min_by(|a, b| a.2.total_cmp(&b.2)) {
        Some(best) => println!(
            "chosen by the criterion (lowest Fréchet among them): {} ({:.1})",
            best.0, best.2
        ),
        None => println!("no setting is admissible"),
    }
}

fn print_per_class(r: &ClassReport) {
    println!("\nper class, {} ({}):", r.name, r.spec);
    println!(
        "{:>5} {:>7} {:>8} {:>8} {:>9} {:>7} {:>7} {:>7}",
        "class", "recog", "judge p", "model p", "Fréchet", "floor", "slope", "real"
    );
    for c in &r.classes {
        println!(
            "{:>5} {:>7.3} {:>8.3} {:>8.3} {:>9.1} {:>7.1} {:>7.2} {:>7.2}",
            c.class,
            c.recognition,
            c.judge_prob,
            c.model_prob,
            c.frechet.distance,
            c.frechet.floor,
            c.spectrum.slope,
            c.real_slope
        );
    }
}

fn main() -> Result<()> {
    let a = Args::parse();
    tch::set_num_threads(a.threads);
    let model = load_model(&a.model)?;
    let judges: Vec<Box<dyn Classifier>> = a.judge.iter().map(load_model).collect::<Result<_>>()?;
    let judge_refs: Vec<&dyn Classifier> = judges.iter().map(|j| j.as_ref()).collect();
    let test = gradviz::data::bundled_mnist()?.test;
    let space = FeatureSpace::new(judge_refs[0], &a.features)?;
    let reference = RealReference::new(&space, &test, 0)?;
    let mut study = ClassStudy::new(
        model.as_ref(),
        judge_refs.clone(),
        FeatureSpace::new(judge_refs[0], &a.features)?,
        &reference,
    );
    study.starts_per_class = a.starts;
    study.ascend.progress = true;
    let mis = MisUnits::new(model.as_ref(), &a.mis_layers, &test, a.k)?;

    println!("analysed model: {}", model.describe());
    for j in &judge_refs {
        println!("judge: {}", j.describe());
    }
    let floor = reference.floors.iter().sum::<f64>() / reference.floors.len() as f64;
    println!(
        "real test digits: {} per class half on average, split-half Fréchet distance {floor:.1} (mean over classes; the floor column is for {} digits), spectrum slope {:.2}, high-frequency fraction {:.3}",
        reference.half_sizes.iter().sum::<usize>() / reference.half_sizes.len(),
        a.starts,
        reference.spectrum.slope,
        reference.spectrum.high_frequency_fraction
    );
    println!(
        "{} noise starts per class, {} steps of {} lr {}; MIS over {} channels of {} (k = {})\n",
        a.starts,
        study.ascend.steps,
        study.ascend.step_rule,
        study.ascend.lr,
        mis.count(),
        a.mis_layers,
        a.k
    );
    let mut candidates = regularization_candidates();
    let wanted = |name: &str| {
        a.only
            .as_ref()
            .is_none_or(|o| o.split(',').any(|n| n.trim() == name))
    };
    candidates.retain(|c| wanted(&c.name));
    println!(
        "{:<28} {:>7} {:>8} {:>8} {:>9} {:>7} {:>7} {:>6} {:>5} {:>6}",
        "setting", "recog", "judge p", "model p", "Fréchet", "floor", "slope", "HF", "MIS", "time"
    );
    let per_class: Vec<&str> = a.per_class.split(',').collect();
    let mut keep = Vec::new();
    // (name, admissible, Fréchet) for the selection criterion printed at the end
    let mut scored: Vec<(String, bool, f64)> = Vec::new();
    for c in &candidates {
        let t = Instant::now();
        let r = study.evaluate(c)?;
        let m = mis.fraction(model.as_ref(), &space, &c.regularization, &test)?;
        println!(
            "{:<28} {:>7.3} {:>8.3} {:>8.3} {:>9.1} {:>7.1} {:>7.2} {:>6.3} {:>5.2} {:>5.0}s",
            c.name,
            r.transfer.recognition(),
            r.transfer.mean_target_prob(),
            r.model_prob,
            r.mean_frechet(),
            r.mean_floor(),
            r.spectrum.slope,
            r.spectrum.high_frequency_fraction,
            m,
            t.elapsed().as_secs_f64()
        );
        let clips = c
            .regularization
            .post
            .iter()
            .any(|p| matches!(p, PostStep::Clip(lo, hi) if *lo >= 0.0 && *hi <= 1.0));
        scored.push((
            c.name.clone(),
            clips && r.transfer.recognition() >= 0.9 && r.model_prob >= 0.9,
            r.mean_frechet(),
        ));
        if per_class.contains(&c.name.as_str()) {
            keep.push(r);
        }
    }
    let hidden = Candidate::new("hidden", Regularization::hidden_28x28());
    if wanted(&hidden.name) {
        let m = mis.fraction(model.as_ref(), &space, &hidden.regularization, &test)?;
        println!(
            "{:<28} MIS {m:.2} (the hidden-unit preset {})",
            hidden.name, hidden.regularization
        );
    }
    print_choice(&scored);
    for r in &keep {
        print_per_class(r);
    }
    Ok(())
}
