#!/usr/bin/env python3
"""Regenerate assets/handwriting/: digits that look the way a user brings them.

Held-out digits of the bundled MNIST test split (data/mnist/t10k-*, never used for training),
made to look drawn, scanned or photographed: dark ink on light paper, large, off-centre, under
uneven lighting, some saved as JPEG. The file name says the true digit and the test-split
index, e.g. `3_idx0042_scan.png`.

How one image is made (all random choices from one seeded generator, so the output is
reproducible with the same numpy and Pillow):
  1. the 28x28 digit is upscaled with bicubic interpolation to 55-70 % of the image height
     and turned into pen strokes by a soft threshold (smooth edges, solid cores);
  2. it is rotated by up to 6 degrees and placed off-centre (up to 15 % of the image size);
  3. paper (white to cream) and ink (black, blue-black or pencil grey) are mixed by the
     strokes, then multiplied by uneven lighting: a linear fall-off plus a vignette, from
     about 60 % to 100 % brightness;
  4. mild sensor noise, then PNG (scans: 280x280 or 400x300) or JPEG quality 80 (phone
     photos: 600x800).

Usage:  .venv/bin/python scripts/make_handwriting.py [data/mnist] [assets/handwriting]
"""
import gzip
import os
import sys

import numpy as np
from PIL import Image

SEED = 12
# One held-out test digit per class: (label, index in the bundled test split, style).
STYLES = ["scan", "photo", "scan-wide", "photo", "scan", "photo", "scan", "scan-wide", "photo", "scan"]
SIZES = {"scan": (280, 280), "scan-wide": (400, 300), "photo": (600, 800)}  # (width, height)


def read_idx(path, header):
    with gzip.open(path, "rb") as f:
        return np.frombuffer(f.read(), np.uint8, offset=header)


def pick_digits(images, labels):
    """The first test digit of each class whose index is a multiple of 7 (spread over the split)."""
    out = []
    for d in range(10):
        idx = next(i for i in range(0, len(labels), 7) if labels[i] == d)
        out.append((d, idx, images[idx]))
    return out


def strokes(digit, height, rng):
    """Pen strokes [0, 1] of `height` pixels from a 28x28 uint8 digit."""
    img = Image.fromarray(digit).resize((height, height), Image.BICUBIC)
    img = img.rotate(rng.uniform(-6, 6), resample=Image.BICUBIC)
    v = np.asarray(img, np.float64) / 255.0
    return np.clip((v - 0.25) / 0.3, 0.0, 1.0)


def lighting(w, h, rng):
    """Brightness in [~0.6, 1]: a linear fall-off in a random direction plus a vignette."""
    y, x = np.mgrid[0:h, 0:w]
    u, v = (x - w / 2) / (w / 2), (y - h / 2) / (h / 2)
    a = rng.uniform(0, 2 * np.pi)
    linear = 0.12 * (np.cos(a) * u + np.sin(a) * v)
    cx, cy = rng.uniform(-0.5, 0.5, 2)
    vignette = 0.08 * ((u - cx) ** 2 + (v - cy) ** 2)
    return np.clip(0.9 + linear - vignette, 0.0, 1.0)


def render(digit, style, rng):
    w, h = SIZES[style]
    ink = strokes(digit, int(h * rng.uniform(0.55, 0.7)), rng)
    s = ink.shape[0]
    off_x = int((w - s) / 2 + rng.uniform(-0.15, 0.15) * w)
    off_y = int((h - s) / 2 + rng.uniform(-0.15, 0.15) * h)
    off_x, off_y = np.clip(off_x, 0, w - s), np.clip(off_y, 0, h - s)
    canvas = np.zeros((h, w))
    canvas[off_y:off_y + s, off_x:off_x + s] = ink
    paper = np.array([1.0, 0.98, rng.uniform(0.88, 0.97)])
    pen = [np.array([0.05, 0.05, 0.07]), np.array([0.08, 0.1, 0.3]), np.array([0.35, 0.35, 0.37])][rng.integers(3)]
    mix = canvas[..., None]
    rgb = (paper * (1 - mix) + pen * mix) * lighting(w, h, rng)[..., None]
    rgb += rng.normal(0, 0.01, rgb.shape)
    return (np.clip(rgb, 0, 1) * 255).round().astype(np.uint8)


def main():
    data = sys.argv[1] if len(sys.argv) > 1 else "data/mnist"
    out = sys.argv[2] if len(sys.argv) > 2 else "assets/handwriting"
    images = read_idx(os.path.join(data, "t10k-images-idx3-ubyte.gz"), 16).reshape(-1, 28, 28)
    labels = read_idx(os.path.join(data, "t10k-labels-idx1-ubyte.gz"), 8)
    rng = np.random.default_rng(SEED)
    os.makedirs(out, exist_ok=True)
    for (d, idx, digit), style in zip(pick_digits(images, labels), STYLES):
        rgb = render(digit, style, rng)
        base = os.path.join(out, f"{d}_idx{idx:04d}_{style}")
        if style == "photo":
            Image.fromarray(rgb).save(base + ".jpg", quality=80)
            name = base + ".jpg"
        else:
            Image.fromarray(rgb).convert("L").save(base + ".png", optimize=True)
            name = base + ".png"
        print(f"{name}  digit {d}, test index {idx}, {os.path.getsize(name)} bytes")


if __name__ == "__main__":
    main()
