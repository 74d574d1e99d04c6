//! The `gradviz` command line.

mod cli;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "gradviz",
    version,
    about = "Saliency maps and feature visualization for image classifiers"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Train a built-in CNN and save it as safetensors.
    Train(cli::train::TrainArgs),
    /// Print a model's accuracy on a data set's test split.
    Eval(cli::train::EvalArgs),
    /// Optimize inputs for classes or hidden units by gradient ascent (weights frozen).
    Ascend(cli::ascend::AscendArgs),
    /// Saliency maps of a batch of images: gradient, input × gradient, SmoothGrad, IG, Grad-CAM, LRP.
    Saliency(cli::saliency::SaliencyArgs),
    /// The class of each image (files, directories, globs), prepared like the training data.
    Predict(cli::predict::PredictArgs),
    /// Import a Keras or PyTorch classifier as a TorchScript file with its layers.
    Import(cli::import::ImportArgs),
    /// List a model's layers in forward order, with output shapes and parameter counts.
    Layers(cli::layers::LayersArgs),
    /// The dataset images that activate hidden units most and least, with receptive-field crops.
    Exemplars(cli::exemplars::ExemplarsArgs),
    /// What made a gradviz output (its provenance record), or what a model file holds.
    Info(cli::info::InfoArgs),
}

fn main() {
    let command = Cli::command();
    let matches = command.clone().get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    // What made each output file, recorded in it (gradviz::provenance).
    let record = || cli::provenance_of(&command, &matches);
    if let Err(e) = gradviz::interrupt::exit_cleanly() {
        eprintln!("warning: {e:#}");
    }
    let result = match cli.command {
        Command::Train(a) => record().and_then(|r| cli::train::train(a, &r)),
        Command::Eval(a) => cli::train::eval(a),
        Command::Ascend(a) => record().and_then(|r| cli::ascend::ascend(a, &r)),
        Command::Saliency(a) => record().and_then(|r| cli::saliency::saliency(a, &r)),
        Command::Predict(a) => cli::predict::predict(a),
        Command::Import(a) => cli::import::import(a),
        Command::Layers(a) => cli::layers::layers(a),
        Command::Info(a) => cli::info::info(a),
        Command::Exemplars(a) => record().and_then(|r| cli::exemplars::exemplars(a, &r)),
    };
    if let Err(e) = result {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
