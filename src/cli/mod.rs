//! One module per subcommand.

pub mod ascend;
pub mod saliency;
pub mod train;
