//! One module per subcommand.

pub mod ascend;
pub mod import;
pub mod layers;
pub mod saliency;
pub mod train;
