//! The `gradviz` command line.

mod cli;

use clap::{Parser, Subcommand};

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
}

fn main() {
    let cli = Cli::parse();
    if let Err(e) = gradviz::interrupt::exit_cleanly() {
        eprintln!("warning: {e:#}");
    }
    let result = match cli.command {
        Command::Train(a) => cli::train::train(a),
        Command::Eval(a) => cli::train::eval(a),
        Command::Ascend(a) => cli::ascend::ascend(a),
        Command::Saliency(a) => cli::saliency::saliency(a),
        Command::Predict(a) => cli::predict::predict(a),
        Command::Import(a) => cli::import::import(a),
        Command::Layers(a) => cli::layers::layers(a),
        Command::Exemplars(a) => cli::exemplars::exemplars(a),
    };
    if let Err(e) = result {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
