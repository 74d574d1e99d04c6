//! One module per subcommand.

pub mod ascend;
pub mod exemplars;
pub mod saliency;
pub mod train;
