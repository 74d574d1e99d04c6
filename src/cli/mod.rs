//! One module per subcommand.

pub mod ascend;
pub mod inputs;
pub mod predict;
pub mod saliency;
pub mod train;
