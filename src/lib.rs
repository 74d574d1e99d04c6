//! gradviz: gradient-based analysis of image classifiers on tch (libtorch).
//!
//! - **Local**: saliency maps, the gradient of a class score with respect to the input
//!   ([`saliency`]), with faithfulness and sanity checks ([`metrics`]).
//! - **Global**: feature visualization by gradient ascent on the input ([`ascend`]),
//!   toward composable [`objective`]s, kept natural by [`regularize`]rs.
//! - **Evidence beyond pictures**: what hidden units respond to in real data ([`exemplars`]),
//!   how natural visualizations are to several judges ([`naturalness`]), and how robust
//!   saliency maps are ([`robustness`]).
//!
//! Models are built-in CNNs or any TorchScript classifier, behind [`model::Classifier`];
//! inputs are always `[N, C, H, W]` f32 in `[0, 1]`.

pub use tch;

pub mod args;
pub mod ascend;
pub mod data;
pub mod device;
pub mod exemplars;
pub mod figures;
pub mod graph;
pub mod import;
pub mod interrupt;
pub mod io;
pub mod lrp;
pub mod metrics;
pub mod model;
pub mod naturalness;
pub mod objective;
pub mod plot;
pub mod prelude;
pub mod preprocess;
pub mod progress;
pub mod provenance;
pub mod regularize;
pub mod report;
pub mod robustness;
pub mod saliency;
pub mod train;

pub use data::{load as load_dataset, DatasetName};
pub use model::{load_model, load_model_on, Classifier};
pub use plot::Figure;
