//! Keras' `.npz` data sets (`keras.datasets.mnist` caches `mnist.npz`): arrays `x_train`,
//! `y_train`, `x_test`, `y_test`, images `[N, H, W]` or channels-last `[N, H, W, C]`.

use super::npy::{parse_npz, NdArray};
use super::{check_labels, Dataset};
use anyhow::{bail, ensure, Context, Result};
use std::path::Path;
use tch::{Kind, Tensor};

/// The train and test images and labels of a Keras-style `.npz`.
#[derive(Debug)]
pub struct KerasArrays {
    pub x_train: NdArray,
    pub y_train: NdArray,
    pub x_test: NdArray,
    pub y_test: NdArray,
}

/// Parses a `.npz` holding `x_train`, `y_train`, `x_test` and `y_test`.
pub fn parse_keras_npz(bytes: &[u8]) -> Result<KerasArrays> {
    let mut arrays = parse_npz(bytes)?;
    let names: Vec<String> = arrays.iter().map(|(n, _)| n.clone()).collect();
    let mut take = |key: &str| -> Result<NdArray> {
        let i = arrays
            .iter()
            .position(|(n, _)| n == key)
            .with_context(|| format!("no array '{key}' (it holds {names:?}; expected x_train, y_train, x_test, y_test as keras.datasets writes them)"))?;
        Ok(arrays.swap_remove(i).1)
    };
    Ok(KerasArrays {
        x_train: take("x_train")?,
        y_train: take("y_train")?,
        x_test: take("x_test")?,
        y_test: take("y_test")?,
    })
}

/// `[C, H, W]` of the images in `x`: `[N, H, W]` is grayscale, `[N, H, W, C]` channels-last.
pub fn image_shape(x: &NdArray) -> Result<[i64; 3]> {
    Ok(match x.shape.as_slice() {
        [_, h, w] => [1, *h as i64, *w as i64],
        [_, h, w, c @ (1 | 3)] => [*c as i64, *h as i64, *w as i64],
        s => bail!("images have shape {s:?}: expected [N, H, W] or channels-last [N, H, W, 1|3]"),
    })
}

/// Images `[N, C, H, W]` f32 in `[0, 1]` and labels `[N]` from a pair of arrays.
fn to_tensors(x: &NdArray, y: &NdArray, what: &str) -> Result<(Tensor, Vec<i64>)> {
    let [c, h, w] = image_shape(x).with_context(|| format!("x_{what}"))?;
    let pixels = x.to_u8().with_context(|| format!("x_{what}"))?;
    let n = x.shape[0] as i64;
    let images = Tensor::from_slice(&pixels)
        .view([n, h, w, c])
        .permute([0, 3, 1, 2])
        .contiguous()
        .to_kind(Kind::Float)
        / 255.0;
    ensure!(
        y.shape.len() == 1 || (y.shape.len() == 2 && y.shape[1] == 1),
        "y_{what} has shape {:?}, expected [N] or [N, 1]",
        y.shape
    );
    let labels = y.to_i64().with_context(|| format!("y_{what}"))?;
    ensure!(
        labels.len() as i64 == n,
        "x_{what} has {n} images but y_{what} has {} labels",
        labels.len()
    );
    Ok((images, labels))
}

/// Reads a Keras `.npz`. `class_names = None` numbers the classes `0..K` (K = largest label + 1).
pub(crate) fn load_keras_npz(path: &Path, class_names: Option<Vec<String>>) -> Result<(Dataset, Dataset)> {
    let p = path.display();
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {p}"))?;
    let a = parse_keras_npz(&bytes).with_context(|| format!("{p}"))?;
    let shape = image_shape(&a.x_train).with_context(|| format!("{p}: x_train"))?;
    ensure!(
        image_shape(&a.x_test).with_context(|| format!("{p}: x_test"))? == shape,
        "{p}: x_train and x_test images differ in shape"
    );
    let (train_x, train_y) = to_tensors(&a.x_train, &a.y_train, "train").with_context(|| format!("{p}"))?;
    let (test_x, test_y) = to_tensors(&a.x_test, &a.y_test, "test").with_context(|| format!("{p}"))?;
    let class_names = class_names.unwrap_or_else(|| {
        let k = train_y.iter().chain(&test_y).copied().max().unwrap_or(0).max(0) + 1;
        (0..k).map(|i| i.to_string()).collect()
    });
    let make = |images: Tensor, labels: Vec<i64>| -> Result<Dataset> {
        let labels = Tensor::from_slice(&labels);
        check_labels(&labels, class_names.len(), path)?;
        Ok(Dataset {
            images,
            labels,
            class_names: class_names.clone(),
        })
    };
    Ok((make(train_x, train_y)?, make(test_x, test_y)?))
}
