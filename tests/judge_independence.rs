//! The report's judge is independent of the analysed model: the two MNIST models record in
//! their metadata which half of the bundled train split they were trained on, and the halves
//! share no image.

use gradviz::model::{BuiltinModel, TrainSubset};
use std::collections::HashSet;
use std::path::Path;

fn load(name: &str) -> BuiltinModel {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("models").join(name);
    BuiltinModel::load(&path).unwrap_or_else(|e| panic!("{}: {e:#}", path.display()))
}

#[test]
fn the_analysed_model_and_the_judge_were_trained_on_disjoint_images() {
    let model = load("mnist_cnn.safetensors");
    let judge = load("mnist_lenet_judge.safetensors");
    let a: TrainSubset = model
        .train_subset
        .expect("models/mnist_cnn.safetensors records no train subset (gradviz.train_subset)");
    let b: TrainSubset = judge
        .train_subset
        .expect("models/mnist_lenet_judge.safetensors records no train subset (gradviz.train_subset)");
    assert!(
        a.disjoint(b),
        "the analysed model ({a}) and the judge ({b}) share training images"
    );
    assert_eq!(model.data_name, judge.data_name);
    let n = gradviz::data::bundled_mnist().unwrap().train.len();
    let seen: HashSet<i64> = a.indices(n).into_iter().collect();
    assert!(b.indices(n).iter().all(|i| !seen.contains(i)));
    assert_eq!(seen.len() + b.indices(n).len(), n);
}
