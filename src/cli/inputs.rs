//! Image inputs shared by `predict`, `saliency` and `ascend --init image:`: files,
//! directories and globs, prepared for the model with `--preprocess`.

use anyhow::Result;
use gradviz::io::{load_images, ImageBatch};
use gradviz::model::Classifier;
use gradviz::preprocess::{Preprocess, Preprocessor};
use std::path::PathBuf;

/// Loads `inputs` as one batch for `model`, printing one line per image that preprocessing
/// changed and every warning.
pub fn load(model: &dyn Classifier, inputs: &[PathBuf], mode: Preprocess) -> Result<ImageBatch> {
    let pre = Preprocessor::for_model(model, mode)?;
    let batch = load_images(inputs, &pre)?;
    for (name, note) in batch.names.iter().zip(&batch.notes) {
        if !note.is_empty() {
            eprintln!("note: {name}: {note}");
        }
    }
    for w in &batch.warnings {
        eprintln!("warning: {w}");
    }
    Ok(batch)
}
