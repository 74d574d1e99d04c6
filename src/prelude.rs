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
pub use crate::model::accuracy;
pub use crate::model::load_model;
pub use crate::model::load_model_for;
pub use crate::model::predict;
pub use crate::model::Arch;
pub use crate::model::BuiltinModel;
pub use crate::model::Predictions;
pub use crate::model::TorchScriptModel;

// Local explanations: saliency maps and the checks of their faithfulness.
pub use crate::metrics::cascading_randomization;
pub use crate::metrics::deletion_curve;
pub use crate::metrics::insertion_curve;
pub use crate::metrics::mean_spearman;
pub use crate::metrics::random_ranking;
pub use crate::metrics::PerturbConfig;
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

// Figures.
pub use crate::figures::channel_sheet;
pub use crate::figures::judged_rows;
pub use crate::figures::saliency_figure;
pub use crate::figures::ChannelSheet;
pub use crate::plot::ascend::batch_rows;
pub use crate::plot::ascend::curves;
pub use crate::plot::ascend::snapshot_strip;
pub use crate::plot::ascend::Curve;
pub use crate::plot::image_grid;
pub use crate::plot::line_chart;
pub use crate::plot::saliency::batch_grid;
pub use crate::plot::saliency::compare_methods;
pub use crate::plot::saliency::saliency_rows;
pub use crate::plot::saliency::ImageLabels;
pub use crate::plot::saliency::SaliencyStyle;
pub use crate::plot::Figure;
pub use crate::plot::Panel;
pub use crate::plot::PanelGrid;
pub use crate::plot::Series;

// Long loops.
pub use crate::progress::progress;
pub use crate::progress::Progress;

// The modules, for names kept out of the glob (`metrics::Curve`, `plot::Colormap`, …).
pub use crate::data;
pub use crate::metrics;
pub use crate::model;
pub use crate::objective;
pub use crate::plot;
pub use crate::regularize;
pub use crate::saliency;

// tch and anyhow, re-exported so that cells need no `:dep` of their own.
pub use crate::tch;
pub use crate::tch::Device;
pub use crate::tch::Kind;
pub use crate::tch::Tensor;
pub use anyhow::Result;

// Shows a cell's last expression in one compilation.
pub use self::notebook_display::ShowInNotebook;

mod notebook_display {
    use std::io::Write;

    /// Shows any `Debug` value as a cell's result: evcxr calls `(last expression).evcxr_display()`.
    ///
    /// Without this trait evcxr compiles a cell twice when its last expression is a plain
    /// value (`b`, `acc`, a `Vec`): the first attempt fails because the type has no
    /// `evcxr_display` method, the second prints it with `{:?}`. With the trait in scope the
    /// first attempt succeeds, printing exactly what the second would have. Types with their
    /// own `evcxr_display` (a [`crate::plot::Figure`] shows as an image) keep it: inherent
    /// methods come first. A `()` (a cell ending in a `for` loop) shows nothing.
    pub trait ShowInNotebook {
        fn evcxr_display(&self);
    }

    impl<T: std::fmt::Debug + ?Sized> ShowInNotebook for T {
        fn evcxr_display(&self) {
            // A cell ending in a loop or a call that returns nothing shows nothing, not `()`.
            if std::any::type_name::<T>() == "()" {
                return;
            }
            let text = format!("{self:?}");
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "EVCXR_BEGIN_CONTENT text/plain\n{text}\nEVCXR_END_CONTENT");
        }
    }
}
