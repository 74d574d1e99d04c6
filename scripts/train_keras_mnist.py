#!/usr/bin/env python3
"""Train "the model from the tasks before": a small Keras CNN on the bundled MNIST, the way a
course does it (Conv2D / MaxPooling2D / BatchNormalization / Dropout / Flatten / Dense, a
softmax head, Adam on cross-entropy), with keras on the torch backend.

    .venv/bin/python scripts/train_keras_mnist.py                      # → models/keras_mnist_cnn.keras
    .venv/bin/python scripts/train_keras_mnist.py --out /tmp/again.keras --check models/keras_mnist_cnn.keras

Data: data/mnist (8,000 training and 2,000 test digits, IDX gz; see data/mnist/README.md),
scaled to [0, 1]. The test split is only used for the final accuracy.

Reproducibility. Training amplifies rounding: moving every initial weight by one float32 ulp
changes the trained weights by up to 0.17, the test logits by up to 5.3 and the test accuracy
from 0.9795 to 0.9810; training with AVX2 instead of AVX-512 kernels on the same machine
changes them by 0.17, 3.9 and 0.9795 → 0.9790 (both measured). So everything that decides the
order of float operations is fixed: one seed (`keras.utils.set_random_seed`) for the initial
weights, the shuffling and the dropout masks; one torch thread; and the instruction set of the
CPU kernels, set before torch loads: torch's own kernels at AVX2 (ATEN_CPU_CAPABILITY),
oneDNN's convolutions at AVX2 (ONEDNN_MAX_CPU_ISA) and MKL's matrix products in its
conditional-numerical-reproducibility mode (MKL_CBWR=COMPATIBLE), instead of the widest the
machine offers. Two runs agree bitwise on this machine (measured); another x86-64 CPU with AVX2
runs the same kernels, so the same bits are expected there (not measured: no other CPU here).
`--check REF` retrains and compares with REF: every weight within WEIGHT_TOL, the test logits
within LOGIT_TOL and the test accuracy within ACCURACY_TOL (exit status 1 otherwise).
"""

import argparse
import gzip
import os
import sys
import tempfile
import time

os.environ["KERAS_BACKEND"] = "torch"
# The same kernels, hence the same rounding, on every x86-64 CPU with AVX2 (see above).
os.environ.update(ATEN_CPU_CAPABILITY="avx2", ONEDNN_MAX_CPU_ISA="AVX2", MKL_CBWR="COMPATIBLE")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from keras import layers  # noqa: E402

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
WEIGHT_TOL = 1e-3
LOGIT_TOL = 1e-2
ACCURACY_TOL = 0.0025  # five of the 2,000 test digits


def read_idx(path):
    """An IDX file (gzip) as a uint8 array."""
    with gzip.open(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[:2] != b"\0\0" or data[2] != 0x08:
        raise SystemExit(f"{path}: not an unsigned-byte IDX file")
    dims = data[3]
    shape = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(dims)]
    body = np.frombuffer(data, np.uint8, offset=4 + 4 * dims)
    if body.size != int(np.prod(shape)):
        raise SystemExit(f"{path}: {body.size} values for shape {shape}")
    return body.reshape(shape)


def load_split(name):
    """(images [N, 28, 28, 1] float32 in [0, 1], labels [N] int64) of 'train' or 't10k'."""
    d = os.path.join(REPO, "data", "mnist")
    x = read_idx(os.path.join(d, f"{name}-images-idx3-ubyte.gz")).astype("float32") / 255.0
    y = read_idx(os.path.join(d, f"{name}-labels-idx1-ubyte.gz")).astype("int64")
    return x[..., None], y


def build_model():
    return keras.Sequential(
        [
            keras.Input((28, 28, 1), name="image"),
            layers.Conv2D(16, 3, activation="relu", name="conv1"),
            layers.MaxPooling2D(name="pool1"),
            layers.Conv2D(32, 3, activation="relu", name="conv2"),
            layers.BatchNormalization(name="bn2"),
            layers.MaxPooling2D(name="pool2"),
            layers.Dropout(0.25, name="dropout1"),
            layers.Flatten(name="flatten"),
            layers.Dense(64, activation="relu", name="dense1"),
            layers.Dropout(0.3, name="dropout2"),
            layers.Dense(10, activation="softmax", name="predictions"),
        ],
        name="keras_mnist_cnn",
    )


def train(seed, epochs):
    keras.utils.set_random_seed(seed)
    torch.set_num_threads(1)
    x, y = load_split("train")
    model = build_model()
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    start = time.time()
    model.fit(x, y, batch_size=64, epochs=epochs, shuffle=True, verbose=2)
    print(
        f"trained {epochs} epochs on {len(x)} digits in {time.time() - start:.1f} s (seed {seed}, 1 thread, "
        f"torch kernels {torch.backends.cpu.get_cpu_capability()})"
    )
    return model


def test_logits(model):
    """Pre-softmax outputs on the test split, and the labels."""
    x, y = load_split("t10k")
    head = model.get_layer("predictions")
    act, head.activation = head.activation, keras.activations.linear
    try:
        logits = np.asarray(model.predict(x, batch_size=500, verbose=0), dtype=np.float64)
    finally:
        head.activation = act
    return logits, y


def save_atomic(model, out):
    """Writes `out` through a temporary file beside it: no half-written model on failure. The
    saved copy has no optimizer state (smaller; gradviz only reads the weights)."""
    clean = build_model()  # not compiled: no optimizer state in the file
    clean.set_weights(model.get_weights())
    fd, tmp = tempfile.mkstemp(suffix=".keras", dir=os.path.dirname(os.path.abspath(out)))
    os.close(fd)
    try:
        clean.save(tmp)
        os.chmod(tmp, 0o644)
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def compare(model, logits, ref_path):
    """Max |Δ| of weights and test logits against the model in `ref_path`; True when within
    the stated tolerances."""
    ref = keras.saving.load_model(ref_path, compile=False)
    dw = max(float(np.abs(a - b).max()) for a, b in zip(model.get_weights(), ref.get_weights()))
    ref_logits, y = test_logits(ref)
    dl = float(np.abs(logits - ref_logits).max())
    acc, ref_acc = float((logits.argmax(1) == y).mean()), float((ref_logits.argmax(1) == y).mean())
    ok = dw <= WEIGHT_TOL and dl <= LOGIT_TOL and abs(acc - ref_acc) <= ACCURACY_TOL
    print(
        f"vs {ref_path}: weights max |Δ| {dw:.3g} (tolerance {WEIGHT_TOL}), test logits max |Δ| "
        f"{dl:.3g} (tolerance {LOGIT_TOL}), test accuracy {acc:.4f} vs {ref_acc:.4f} "
        f"(tolerance {ACCURACY_TOL}): {'REPRODUCED' if ok else 'NOT REPRODUCED'}"
    )
    return ok


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default=os.path.join(REPO, "models", "keras_mnist_cnn.keras"))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument(
        "--check", metavar="REF", help="compare the retrained model with REF (a .keras file)"
    )
    args = p.parse_args()
    if not args.out.endswith(".keras"):
        sys.exit(f"--out {args.out}: the file name must end in .keras")
    if args.check and not os.path.exists(args.check):
        sys.exit(f"--check {args.check}: no such file")
    model = train(args.seed, args.epochs)
    logits, y = test_logits(model)
    print(f"test accuracy {float((logits.argmax(1) == y).mean()):.4f} on {len(y)} digits")
    save_atomic(model, args.out)
    print(
        f"wrote {args.out} ({os.path.getsize(args.out)} bytes, {model.count_params()} parameters)"
    )
    if args.check and not compare(model, logits, args.check):
        sys.exit(1)


if __name__ == "__main__":
    main()
