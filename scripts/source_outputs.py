#!/usr/bin/env python3
"""A model's outputs on the bundled MNIST test split, computed by the framework it was written
in (Keras, or PyTorch): the reference that notebook 04 compares an imported model with.

    .venv/bin/python scripts/source_outputs.py models/keras_mnist_cnn.keras --out keras.npy
    .venv/bin/python scripts/source_outputs.py models/torch_skip_cnn.py:SkipCNN \\
        --weights models/torch_skip_cnn.pth --out torch.npy

Writes OUT, the [2000, 10] float32 outputs of the model as it was saved (a Keras model ending
in softmax gives probabilities; the PyTorch class gives its logits), through a temporary file,
and prints `accuracy A` (argmax of those outputs against the labels). Nothing here uses
gradviz's importer.
"""
import argparse
import gzip
import importlib.util
import os
import sys
import tempfile

os.environ["KERAS_BACKEND"] = "torch"

import numpy as np  # noqa: E402
import torch  # noqa: E402

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))


def mnist_test():
    """(images [N, 1, 28, 28] float32 in [0, 1], labels [N]) of the bundled test split."""
    d = os.path.join(REPO, "data", "mnist")
    with gzip.open(os.path.join(d, "t10k-images-idx3-ubyte.gz")) as f:
        x = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 1, 28, 28)
    with gzip.open(os.path.join(d, "t10k-labels-idx1-ubyte.gz")) as f:
        y = np.frombuffer(f.read(), np.uint8, offset=8)
    return x.astype(np.float32) / 255.0, y.astype(np.int64)


def keras_outputs(path, x):
    import keras

    model = keras.saving.load_model(path, compile=False)
    nhwc = np.ascontiguousarray(x.transpose(0, 2, 3, 1))
    return np.asarray(model.predict(nhwc, batch_size=500, verbose=0), dtype=np.float32)


def torch_outputs(source, weights, x):
    path, name = source.rsplit(":", 1)
    spec = importlib.util.spec_from_file_location(os.path.splitext(os.path.basename(path))[0], path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    model = getattr(module, name)()
    model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    with torch.no_grad():
        return model.eval()(torch.from_numpy(x)).numpy().astype(np.float32)


def save_atomic(out, array):
    fd, tmp = tempfile.mkstemp(suffix=".npy", dir=os.path.dirname(os.path.abspath(out)))
    try:
        with os.fdopen(fd, "wb") as f:
            np.save(f, array)
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("src", help="a .keras/.h5 file, or FILE.py:ClassName with --weights")
    p.add_argument("--weights", help="the state_dict of FILE.py:ClassName")
    p.add_argument("--out", required=True, help="the .npy file to write")
    a = p.parse_args()
    torch.set_num_threads(1)
    x, y = mnist_test()
    if a.src.endswith((".keras", ".h5")):
        out = keras_outputs(a.src, x)
    elif ".py:" in a.src and a.weights:
        out = torch_outputs(a.src, a.weights, x)
    else:
        sys.exit(f"{a.src}: expected a .keras/.h5 file, or FILE.py:ClassName with --weights")
    save_atomic(a.out, out)
    print(f"accuracy {float((out.argmax(1) == y).mean()):.4f}")


if __name__ == "__main__":
    main()
