#!/usr/bin/env python3
"""Zennit 1.0 relevance for tests/lrp.rs and bench/lrp.sh: the reference gradviz's LRP must equal.

    python tests/reference/zennit_lrp.py [--epsilon E]... DIR:MODEL [DIR:MODEL ...]

MODEL is one of
  chain   conv/BN/max-pool/conv(no bias)/BN/avg-pool/flatten/linear/BN1d/leaky ReLU/linear
  skip    a conv stem and two residual blocks (identity and 1x1-projection shortcut, each sum a
          zennit.layer.Sum as zennit's ResNetCanonizer makes it), max and global average pooling
  norm    input normalization (x - 0.1307) / 0.3081 in the model, then conv/ReLU/max-pool/linear:
          zennit passes relevance through the normalization and zB gets the normalized bounds
  PATH    a gradviz .safetensors model, mirrored layer for layer by scripts/export_torchscript.py

Each DIR holds x.npy ([N, C, H, W] float32 in [0, 1]) and targets.npy ([N] int64), written by
the caller. The script writes into DIR:
  weights/NAME.npy      the model's tensors under their PyTorch names (chain, skip, norm;
                        seeded, with non-trivial batch-norm statistics)
  logits.npy            the model's logits
  COMPOSITE.I.npy       zennit's relevance for each composite below and the I-th --epsilon
                        (default: one epsilon, 1e-6), starting from attr_output = onehot * logits

Batch norms are merged with SequentialMergeBatchNorm, zennit's stabilizer is its default (1e-6).
"""
import argparse
import importlib.util
import os
import sys

import numpy as np
import torch
from torch import nn
from zennit.attribution import Gradient
from zennit.canonizers import SequentialMergeBatchNorm
from zennit.composites import (
    EpsilonAlpha2Beta1,
    EpsilonAlpha2Beta1Flat,
    EpsilonGammaBox,
    EpsilonPlus,
    EpsilonPlusFlat,
)
from zennit.layer import Sum
from zennit.rules import Pass

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

MEAN, STD = 0.1307, 0.3081


class Normalize(nn.Module):
    def forward(self, x):
        return (x - MEAN) / STD


def composites(eps, normalized):
    """Zennit's composites; with input normalization, it passes and zB's box is normalized too."""
    kw = dict(epsilon=eps, canonizers=[SequentialMergeBatchNorm()], layer_map=[(Normalize, Pass())])
    low, high = ((0.0 - MEAN) / STD, (1.0 - MEAN) / STD) if normalized else (0.0, 1.0)
    return {
        "epsilon-plus": EpsilonPlus(**kw),
        "epsilon-plus-flat": EpsilonPlusFlat(**kw),
        "epsilon-alpha2-beta1": EpsilonAlpha2Beta1(**kw),
        "epsilon-alpha2-beta1-flat": EpsilonAlpha2Beta1Flat(**kw),
        "epsilon-gamma-box": EpsilonGammaBox(low=low, high=high, gamma=0.25, **kw),
    }


def randomize_batch_norms(model, gen):
    """Running statistics and affine parameters far from the identity, so that merging matters."""
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            n = m.num_features
            m.running_mean.copy_(torch.randn(n, generator=gen) * 0.3)
            m.running_var.copy_(torch.rand(n, generator=gen) + 0.5)
            m.weight.data.copy_(torch.rand(n, generator=gen) + 0.5)
            m.bias.data.copy_(torch.randn(n, generator=gen) * 0.2)


class Chain(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(8)
        self.relu1 = nn.ReLU()
        self.pool1 = nn.MaxPool2d(2)
        self.conv2 = nn.Conv2d(8, 16, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(16)
        self.relu2 = nn.ReLU()
        self.pool2 = nn.AvgPool2d(2)
        self.flatten = nn.Flatten()
        self.fc1 = nn.Linear(16 * 7 * 7, 32)
        self.bn3 = nn.BatchNorm1d(32)
        self.relu3 = nn.LeakyReLU(0.1)  # an activation where pass and gradient differ
        self.fc2 = nn.Linear(32, 10)

    def forward(self, x):
        x = self.pool1(self.relu1(self.bn1(self.conv1(x))))
        x = self.pool2(self.relu2(self.bn2(self.conv2(x))))
        return self.fc2(self.relu3(self.bn3(self.fc1(self.flatten(x)))))


class Block(nn.Module):
    """conv-BN-ReLU-conv-BN plus a shortcut (identity, or 1x1 conv-BN when the stride is 2), ReLU."""

    def __init__(self, channels, out, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, out, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(out, out, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(out)
        self.project = stride != 1 or channels != out
        if self.project:
            self.shortcut = nn.Conv2d(channels, out, 1, stride=stride, bias=False)
            self.shortcut_bn = nn.BatchNorm2d(out)
        self.sum = Sum()
        self.relu2 = nn.ReLU()

    def forward(self, x):
        y = self.bn2(self.conv2(self.relu1(self.bn1(self.conv1(x)))))
        s = self.shortcut_bn(self.shortcut(x)) if self.project else x
        return self.relu2(self.sum(torch.stack([s, y], dim=-1)))


class Skip(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(1, 8, 3, padding=1)
        self.stem_bn = nn.BatchNorm2d(8)
        self.stem_relu = nn.ReLU()
        self.pool = nn.MaxPool2d(2)
        self.block1 = Block(8, 8, 1)
        self.block2 = Block(8, 16, 2)
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(16, 10)

    def forward(self, x):
        x = self.pool(self.stem_relu(self.stem_bn(self.stem(x))))
        x = self.block2(self.block1(x))
        return self.fc(self.flatten(self.gap(x)))


class Norm(nn.Module):
    def __init__(self):
        super().__init__()
        self.normalize = Normalize()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.relu = nn.ReLU()
        self.pool = nn.MaxPool2d(2)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(4 * 14 * 14, 10)

    def forward(self, x):
        return self.fc(self.flatten(self.pool(self.relu(self.conv(self.normalize(x))))))


def load_gradviz(path):
    spec = importlib.util.spec_from_file_location("export_torchscript", os.path.join(REPO, "scripts/export_torchscript.py"))
    ex = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ex)
    meta, tensors = ex.read_safetensors(path)
    arch = meta["gradviz.arch"]
    import json

    net = ex.Net(ex.SPECS[arch], len(json.loads(meta["gradviz.classes"])))
    net.load_state_dict({f"net.{k}": v for k, v in tensors.items()}, strict=True)
    return net


def make_model(kind, out_dir):
    if kind in ("chain", "skip", "norm"):
        torch.manual_seed(0)
        model = {"chain": Chain, "skip": Skip, "norm": Norm}[kind]()
        gen = torch.Generator().manual_seed(1)
        with torch.no_grad():
            randomize_batch_norms(model, gen)
        os.makedirs(os.path.join(out_dir, "weights"), exist_ok=True)
        for name, t in model.state_dict().items():
            if not name.endswith("num_batches_tracked"):
                np.save(os.path.join(out_dir, "weights", name + ".npy"), t.numpy().astype(np.float32))
        return model
    return load_gradviz(kind)


def run(out_dir, kind, epsilons):
    save_relevances(make_model(kind, out_dir), out_dir, epsilons, kind == "norm")


def save_relevances(model, out_dir, epsilons, normalized):
    """Writes the model's logits and Zennit's relevance for every composite and epsilon
    (NAME.I.npy) of the inputs and targets in out_dir; the model is left unchanged."""
    model = model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    x = torch.from_numpy(np.load(os.path.join(out_dir, "x.npy"))).float()
    targets = torch.from_numpy(np.load(os.path.join(out_dir, "targets.npy"))).long()
    with torch.no_grad():
        logits = model(x)
    np.save(os.path.join(out_dir, "logits.npy"), logits.numpy())
    onehot = torch.nn.functional.one_hot(targets, logits.shape[1]).float()
    for i, eps in enumerate(epsilons):
        for name, composite in composites(eps, normalized).items():
            with Gradient(model, composite) as attributor:
                _, rel = attributor(x, attr_output=lambda out: onehot * out)
            np.save(os.path.join(out_dir, f"{name}.{i}.npy"), rel.detach().numpy())
    # the canonizers must have restored the model
    with torch.no_grad():
        assert torch.equal(model(x), logits), "zennit left the model changed"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--epsilon", type=float, action="append")
    ap.add_argument("jobs", nargs="+", metavar="DIR:MODEL")
    a = ap.parse_args()
    torch.set_num_threads(1)
    for job in a.jobs:
        out_dir, kind = job.split(":", 1)
        run(out_dir, kind, a.epsilon or [1e-6])
    print("ok")


if __name__ == "__main__":
    sys.exit(main())
