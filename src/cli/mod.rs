//! One module per subcommand.

pub mod ascend;
pub mod train;
