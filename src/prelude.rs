//! Everything a notebook cell needs, in one line: `use gradviz::prelude::*;`.
//!
//! In an evcxr notebook the traits must be in scope, not only for calling their methods:
//! evcxr stores each variable between cells under a type name it writes into generated
//! code, so `let model = gradviz::load_model(…)?;` only compiles when `Box<dyn Classifier>`
//! can be named there. Without the trait in scope the cell fails with a misleading message
//! about the `?` operator (see environment.md, "Notebook cells").
//!
//! One `pub use` line per item, grouped by module, so that new modules add their names here.

// The traits.
pub use crate::model::Classifier;
pub use crate::saliency::Attribution;

// Models and data.
pub use crate::data::bundled_mnist;
pub use crate::data::load as load_dataset;
pub use crate::data::Dataset;
pub use crate::data::DatasetName;
pub use crate::data::Splits;
pub use crate::device::DeviceChoice;
pub use crate::model::accuracy;
pub use crate::model::load_model;
pub use crate::model::load_model_for;
pub use crate::model::load_model_for_on;
pub use crate::model::load_model_on;
pub use crate::model::predict;
pub use crate::model::Arch;
pub use crate::model::BuiltinModel;
pub use crate::model::Predictions;
pub use crate::model::TorchScriptModel;

// Local explanations: saliency maps and the checks of their faithfulness.
pub use crate::lrp::Composite;
pub use crate::lrp::Lrp;
pub use crate::metrics::cascading_randomization;
pub use crate::metrics::deletion_curve;
pub use crate::metrics::insertion_curve;
pub use crate::metrics::mean_spearman;
pub use crate::metrics::random_ranking;
pub use crate::metrics::PerturbConfig;
pub use crate::robustness::MaxSensitivity;
pub use crate::robustness::RandomLogit;
pub use crate::saliency::reduce;
pub use crate::saliency::Baseline;
pub use crate::saliency::GradCam;
pub use crate::saliency::Gradient;
pub use crate::saliency::InputXGradient;
pub use crate::saliency::IntegratedGradients;
pub use crate::saliency::Reduce;
pub use crate::saliency::Score;
pub use crate::saliency::SmoothGrad;
pub use crate::saliency::Target;

// Your own images, in the model's format.
pub use crate::io::load_images;
pub use crate::preprocess::steps_figure;
pub use crate::preprocess::Preprocess;
pub use crate::preprocess::Preprocessor;

// Your own model: imported from Keras or PyTorch, with its layers.
pub use crate::import::import_model;
pub use crate::import::ImportOptions;

// Global explanations: gradient ascent toward objectives, regularized, judged.
pub use crate::ascend::ascend;
pub use crate::ascend::naturalness;
pub use crate::ascend::AscendConfig;
pub use crate::ascend::AscendResult;
pub use crate::ascend::Init;
pub use crate::ascend::Naturalness;
pub use crate::ascend::StepRule;
pub use crate::objective::Objective;
pub use crate::regularize::Regularization;

// What hidden units respond to in real data, and how natural the visualizations are.
pub use crate::exemplars::exemplars;
pub use crate::exemplars::mis_verdicts;
pub use crate::exemplars::Pool;
pub use crate::exemplars::Unit;
pub use crate::plot::exemplars::exemplar_rows;
pub use crate::plot::exemplars::ExemplarRow;
pub use crate::plot::exemplars::ExemplarStyle;

// The report: findings that fail the notebook when the run contradicts them.
pub use crate::claim;
pub use crate::report::bootstrap_mean;
pub use crate::report::check;
pub use crate::report::Interval;

// Figures (`fig.save_with(path, &Provenance::new("step").seed(0))` records what made one).
pub use crate::figures::channel_sheet;
pub use crate::figures::judged_rows;
pub use crate::figures::saliency_figure;
pub use crate::figures::ChannelSheet;
pub use crate::plot::ascend::batch_rows;
pub use crate::plot::ascend::change_rows;
pub use crate::plot::ascend::curves;
pub use crate::plot::ascend::snapshot_strip;
pub use crate::plot::ascend::ChangeRow;
pub use crate::plot::ascend::Curve;
pub use crate::plot::image_grid;
pub use crate::plot::line_chart;
pub use crate::plot::saliency::batch_grid;
pub use crate::plot::saliency::compare_methods;
pub use crate::plot::saliency::perturbation_curves;
pub use crate::plot::saliency::saliency_rows;
pub use crate::plot::saliency::ImageLabels;
pub use crate::plot::saliency::SaliencyStyle;
pub use crate::plot::Figure;
pub use crate::plot::Panel;
pub use crate::plot::PanelGrid;
pub use crate::plot::Series;
pub use crate::provenance::Provenance;

// Long loops.
pub use crate::progress::progress;
pub use crate::progress::Progress;

// The modules, for names kept out of the glob (`metrics::Curve`, `plot::Colormap`, …).
pub use crate::data;
pub use crate::exemplars;
pub use crate::lrp;
pub use crate::metrics;
pub use crate::model;
pub use crate::naturalness;
pub use crate::objective;
pub use crate::plot;
pub use crate::regularize;
pub use crate::saliency;

// tch and anyhow, re-exported so that cells need no `:dep` of their own.
pub use crate::tch;
pub use crate::tch::Device;
pub use crate::tch::Kind;
pub use crate::tch::Tensor;
pub use anyhow::{anyhow, bail, ensure, Context, Result};
