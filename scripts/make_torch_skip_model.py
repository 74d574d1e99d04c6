#!/usr/bin/env python3
"""Train the PyTorch model with skip connections of notebook 04 (models/torch_skip_cnn.py,
class SkipCNN) on the bundled MNIST and save its state_dict, the way a PyTorch course would
(Adam on cross-entropy, mini-batches, random shifts of up to 2 pixels,
`torch.save(model.state_dict(), ...)`).

    .venv/bin/python scripts/make_torch_skip_model.py                 # → models/torch_skip_cnn.pth
    .venv/bin/python scripts/make_torch_skip_model.py --out /tmp/again.pth --check models/torch_skip_cnn.pth

Data: data/mnist (8,000 training and 2,000 test digits, IDX gz; see data/mnist/README.md) in
[0, 1]; the test split is only used for the final accuracy.

Reproducibility: one seed (torch.manual_seed) for the initial weights and the shuffling, one
torch thread, and the CPU kernels pinned to AVX2 with MKL in its reproducible mode (set before
torch loads, as scripts/train_keras_mnist.py explains), so two runs on this machine give the
same bits. `--check REF` retrains and compares with REF: every tensor within WEIGHT_TOL, the
test logits within LOGIT_TOL and the test accuracy within ACCURACY_TOL (exit status 1 otherwise).
"""

import argparse
import gzip
import io
import os
import sys
import tempfile
import time

os.environ.update(ATEN_CPU_CAPABILITY="avx2", ONEDNN_MAX_CPU_ISA="AVX2", MKL_CBWR="COMPATIBLE")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.join(REPO, "models"))
from torch_skip_cnn import SkipCNN  # noqa: E402

WEIGHT_TOL = 1e-3
LOGIT_TOL = 1e-2
ACCURACY_TOL = 0.0025  # five of the 2,000 test digits
LR = 1e-2  # the peak of the one-cycle schedule


def load_split(name):
    """(images [N, 1, 28, 28] float32 in [0, 1], labels [N] int64) of 'train' or 't10k'."""
    d = os.path.join(REPO, "data", "mnist")
    with gzip.open(os.path.join(d, f"{name}-images-idx3-ubyte.gz")) as f:
        x = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 1, 28, 28)
    with gzip.open(os.path.join(d, f"{name}-labels-idx1-ubyte.gz")) as f:
        y = np.frombuffer(f.read(), np.uint8, offset=8)
    if len(x) != len(y):
        raise SystemExit(f"data/mnist/{name}: {len(x)} images but {len(y)} labels")
    return torch.from_numpy(x.astype(np.float32) / 255.0), torch.from_numpy(y.astype(np.int64))


def shifted(x):
    """The batch moved by up to 2 pixels in each direction (one random shift per batch)."""
    dy, dx = (int(v) for v in torch.randint(0, 5, (2,)))
    return nn.functional.pad(x, (2, 2, 2, 2))[:, :, dy : dy + 28, dx : dx + 28]


def train(seed, epochs):
    """Adam with a one-cycle learning rate (peak LR), mini-batches of 64, random shifts."""
    torch.manual_seed(seed)
    torch.set_num_threads(1)
    x, y = load_split("train")
    model = SkipCNN()
    opt = torch.optim.Adam(model.parameters(), lr=LR)
    batches = (len(x) + 63) // 64
    schedule = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=LR, total_steps=epochs * batches)
    start = time.time()
    for epoch in range(epochs):
        model.train()
        order = torch.randperm(len(x))
        total = 0.0
        for i in range(0, len(x), 64):
            idx = order[i : i + 64]
            opt.zero_grad()
            loss = nn.functional.cross_entropy(model(shifted(x[idx])), y[idx])
            loss.backward()
            opt.step()
            schedule.step()
            total += float(loss.detach()) * len(idx)
        print(f"epoch {epoch + 1}/{epochs}: loss {total / len(x):.4f}", flush=True)
    print(f"trained {epochs} epochs on {len(x)} digits in {time.time() - start:.1f} s (seed {seed}, 1 thread)")
    return model.eval()


def test_logits(model):
    x, y = load_split("t10k")
    with torch.no_grad():
        return model(x).double(), y


def save_atomic(model, out):
    """Writes the state_dict through a temporary file beside `out`: nothing half-written."""
    buf = io.BytesIO()  # in memory first: the archive's inner name does not depend on a temp name
    torch.save(model.state_dict(), buf)
    fd, tmp = tempfile.mkstemp(suffix=".pth", dir=os.path.dirname(os.path.abspath(out)))
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(buf.getvalue())
        os.chmod(tmp, 0o644)
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def compare(model, logits, ref_path):
    """True when the retrained model matches the one in `ref_path` within the tolerances."""
    ref = SkipCNN()
    ref.load_state_dict(torch.load(ref_path, weights_only=True))
    ref.eval()
    mine = model.state_dict()
    dw = max(float((mine[k].double() - v.double()).abs().max()) for k, v in ref.state_dict().items())
    ref_logits, y = test_logits(ref)
    dl = float((logits - ref_logits).abs().max())
    acc = float((logits.argmax(1) == y).double().mean())
    ref_acc = float((ref_logits.argmax(1) == y).double().mean())
    ok = dw <= WEIGHT_TOL and dl <= LOGIT_TOL and abs(acc - ref_acc) <= ACCURACY_TOL
    print(
        f"vs {ref_path}: tensors max |Δ| {dw:.3g} (tolerance {WEIGHT_TOL}), test logits max |Δ| {dl:.3g} "
        f"(tolerance {LOGIT_TOL}), test accuracy {acc:.4f} vs {ref_acc:.4f} (tolerance {ACCURACY_TOL}): "
        f"{'REPRODUCED' if ok else 'NOT REPRODUCED'}"
    )
    return ok


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default=os.path.join(REPO, "models", "torch_skip_cnn.pth"))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--epochs", type=int, default=6)
    p.add_argument("--check", metavar="REF", help="compare the retrained model with REF (a .pth state_dict)")
    args = p.parse_args()
    if args.check and not os.path.exists(args.check):
        sys.exit(f"--check {args.check}: no such file")
    model = train(args.seed, args.epochs)
    logits, y = test_logits(model)
    print(f"test accuracy {float((logits.argmax(1) == y).double().mean()):.4f} on {len(y)} digits")
    save_atomic(model, args.out)
    n = sum(t.numel() for t in model.parameters())
    print(f"wrote {args.out} ({os.path.getsize(args.out)} bytes, {n} parameters)")
    if args.check and not compare(model, logits, args.check):
        sys.exit(1)


if __name__ == "__main__":
    main()
