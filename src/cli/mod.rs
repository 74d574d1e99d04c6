//! One module per subcommand.

pub mod ascend;
pub mod exemplars;
pub mod import;
pub mod inputs;
pub mod layers;
pub mod predict;
pub mod saliency;
pub mod train;
