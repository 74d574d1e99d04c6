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
    /// Saliency maps of a batch of images: gradient, input × gradient, SmoothGrad, IG, Grad-CAM.
    Saliency(cli::saliency::SaliencyArgs),
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
    };
    if let Err(e) = result {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
