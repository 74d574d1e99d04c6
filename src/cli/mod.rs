//! One module per subcommand.

pub mod ascend;
pub mod device;
pub mod exemplars;
pub mod import;
pub mod info;
pub mod inputs;
pub mod layers;
pub mod predict;
pub mod saliency;
pub mod train;

/// The provenance record of a subcommand run: its name and every option's effective value
/// (defaults included), as clap parsed them.
pub fn provenance_of(
    command: &clap::Command,
    matches: &clap::ArgMatches,
) -> anyhow::Result<gradviz::provenance::Provenance> {
    let Some((name, sub)) = matches.subcommand() else {
        anyhow::bail!("no subcommand");
    };
    let Some(sub_command) = command.find_subcommand(name) else {
        anyhow::bail!("unknown subcommand {name}");
    };
    let mut params = std::collections::BTreeMap::new();
    // The options only: clap also lists the argument group named after the Args struct.
    for arg in sub_command.get_arguments() {
        let id = arg.get_id().as_str();
        if let Ok(Some(raw)) = sub.try_get_raw(id) {
            let values: Vec<String> = raw.map(|v| v.to_string_lossy().into_owned()).collect();
            params.insert(id.replace('_', "-"), values);
        }
    }
    gradviz::provenance::Provenance::from_params(name, params)
}
