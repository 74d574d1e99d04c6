#!/usr/bin/env python3
"""Keras' own numbers for tests/import_keras.rs: the test imports the models written here with
the `gradviz` command line and compares what the Rust side computes with what Keras computes.

    python tests/reference/keras_reference.py DIR

Nothing here uses gradviz's converter: every reference value comes from Keras itself (on its
torch backend, so that input gradients come from torch autograd on Keras' own graph).

Writes into DIR:
  student.keras, student.h5  a course-style CNN with random weights and batch-norm statistics
                             far from the identity: conv_a (same) → bn_a → pool_a → conv_b
                             (same, stride 2: padded on one side only) → drop → flat → hidden
                             → probs (softmax)
  gap.keras                  conv → global average pool → softmax dense: accepts any image size
  unsupported.keras          a model with a Conv2DTranspose layer named 'upsample'
  x_random.npy, x_digits.npy [N, 1, 28, 28] float32 in [0, 1]: seeded noise, and the first
                             digits of the bundled MNIST test split
  targets.npy                the class whose logit each gradient is taken of, per image
  For SET in random, digits:
    logits_SET.npy           Keras' pre-softmax outputs (the final activation set to linear)
    probs_SET.npy            Keras' outputs of the unchanged model (softmax)
    grad_SET.npy             ∂ logit_target / ∂ input, as [N, 1, 28, 28]
    conv_b_SET.npy           the output of layer conv_b, as [N, C, H, W]
  shipped_logits.npy         pre-softmax outputs of models/keras_mnist_cnn.keras on all 2,000
                             bundled test digits
and prints `keras accuracy A` of the shipped model on them (argmax of Keras' probabilities).
"""
import os
import sys

os.environ["KERAS_BACKEND"] = "torch"
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(REPO, "scripts"))

import keras  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from keras import layers  # noqa: E402
from source_outputs import mnist_test  # noqa: E402

N_RANDOM, N_DIGITS = 6, 16


def student():
    keras.utils.set_random_seed(3)
    model = keras.Sequential(
        [
            keras.Input((28, 28, 1), name="digits"),
            layers.Conv2D(8, 3, padding="same", activation="relu", name="conv_a"),
            layers.BatchNormalization(name="bn_a"),
            layers.MaxPooling2D(name="pool_a"),
            layers.Conv2D(16, 3, strides=2, padding="same", activation="relu", name="conv_b"),
            layers.Dropout(0.25, name="drop"),
            layers.Flatten(name="flat"),
            layers.Dense(32, activation="relu", name="hidden"),
            layers.Dense(10, activation="softmax", name="probs"),
        ],
        name="student_cnn",
    )
    bn = model.get_layer("bn_a")
    rng = np.random.default_rng(4)
    bn.set_weights(
        [
            rng.uniform(0.5, 1.5, 8),  # gamma
            rng.uniform(-0.3, 0.3, 8),  # beta
            rng.uniform(0.0, 0.5, 8),  # moving mean (after a ReLU: positive)
            rng.uniform(0.05, 0.5, 8),  # moving variance
        ]
    )
    return model


def small_models(d):
    keras.utils.set_random_seed(5)
    gap = keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            layers.Conv2D(4, 3, activation="relu", name="conv"),
            layers.GlobalAveragePooling2D(name="gap"),
            layers.Dense(10, activation="softmax", name="probs"),
        ]
    )
    gap.save(os.path.join(d, "gap.keras"))
    bad = keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            layers.Conv2D(4, 3, activation="relu", name="conv"),
            layers.Conv2DTranspose(4, 3, name="upsample"),
            layers.Flatten(name="flat"),
            layers.Dense(10, activation="softmax", name="probs"),
        ]
    )
    bad.save(os.path.join(d, "unsupported.keras"))


def nhwc(x):
    return torch.from_numpy(np.ascontiguousarray(x.transpose(0, 2, 3, 1)))


def nchw(t):
    return np.ascontiguousarray(keras.ops.convert_to_numpy(t).transpose(0, 3, 1, 2))


def pre_softmax(path):
    """The model in `path` with its final activation set to linear."""
    model = keras.saving.load_model(path, compile=False)
    model.layers[-1].activation = keras.activations.linear
    return model


def reference(d, path, x, targets, name):
    probs = keras.saving.load_model(path, compile=False)
    model = pre_softmax(path)
    with torch.no_grad():
        np.save(os.path.join(d, f"probs_{name}.npy"), keras.ops.convert_to_numpy(probs(nhwc(x), training=False)))
        np.save(os.path.join(d, f"logits_{name}.npy"), keras.ops.convert_to_numpy(model(nhwc(x), training=False)))
        conv_b = keras.Model(model.inputs, model.get_layer("conv_b").output)
        np.save(os.path.join(d, f"conv_b_{name}.npy"), nchw(conv_b(nhwc(x), training=False)))
    xk = nhwc(x).requires_grad_(True)
    logits = model(xk, training=False)
    logits[torch.arange(len(x)), torch.from_numpy(targets)].sum().backward()
    np.save(os.path.join(d, f"grad_{name}.npy"), np.ascontiguousarray(xk.grad.numpy().transpose(0, 3, 1, 2)))


def shipped(d, images, labels):
    path = os.path.join(REPO, "models", "keras_mnist_cnn.keras")
    model = pre_softmax(path)
    probs = keras.saving.load_model(path, compile=False)
    with torch.no_grad():
        logits = np.concatenate([keras.ops.convert_to_numpy(model(nhwc(b), training=False)) for b in np.split(images, 4)])
        p = np.concatenate([keras.ops.convert_to_numpy(probs(nhwc(b), training=False)) for b in np.split(images, 4)])
    np.save(os.path.join(d, "shipped_logits.npy"), logits.astype(np.float32))
    print(f"keras accuracy {float((p.argmax(1) == labels).mean()):.4f}")


def main():
    d = sys.argv[1]
    torch.set_num_threads(1)
    model = student()
    model.save(os.path.join(d, "student.keras"))
    model.save(os.path.join(d, "student.h5"))
    small_models(d)
    images, labels = mnist_test()
    x = {
        "random": np.random.default_rng(6).random((N_RANDOM, 1, 28, 28), dtype=np.float32),
        "digits": images[:N_DIGITS],
    }
    targets = np.arange(max(N_RANDOM, N_DIGITS), dtype=np.int64) % 10
    np.save(os.path.join(d, "targets.npy"), targets)
    for name, batch in x.items():
        np.save(os.path.join(d, f"x_{name}.npy"), batch)
        reference(d, os.path.join(d, "student.keras"), batch, targets[: len(batch)], name)
    shipped(d, images, labels)


if __name__ == "__main__":
    main()
