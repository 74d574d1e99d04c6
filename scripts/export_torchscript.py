#!/usr/bin/env python3
"""Export a gradviz built-in model (.safetensors) as an equivalent TorchScript module (.pt).

    .venv/bin/python scripts/export_torchscript.py models/mnist_cnn.safetensors out.pt

The PyTorch module mirrors src/model.rs (Arch::spec) layer for layer and takes the very same
weights, so gradviz and PyTorch/Captum can be compared on one model. Inputs are [N, C, H, W]
in [0, 1]; outputs are logits.
"""
import json
from collections import OrderedDict
import os
import struct
import sys

import torch
from torch import nn

# name -> list of (kind, name, args); must match Arch::spec in src/model.rs.
SPECS = {
    "mnist-cnn": [
        ("conv", "conv1", (1, 32, 3)), ("conv", "conv2", (32, 32, 3)), ("pool", "pool1", ()),
        ("conv", "conv3", (32, 64, 3)), ("conv", "conv4", (64, 64, 3)), ("pool", "pool2", ()),
        ("dense", "fc1", (64 * 7 * 7, 128)), ("logits", "logits", (128,)),
    ],
    "lenet": [
        ("conv", "conv1", (1, 6, 5)), ("pool", "pool1", ()), ("conv", "conv2", (6, 16, 5)),
        ("pool", "pool2", ()), ("dense", "fc1", (16 * 7 * 7, 120)), ("dense", "fc2", (120, 84)),
        ("logits", "logits", (84,)),
    ],
    "cifar10-cnn": [
        ("conv", "conv1", (3, 32, 3)), ("conv", "conv2", (32, 32, 3)), ("pool", "pool1", ()),
        ("conv", "conv3", (32, 64, 3)), ("conv", "conv4", (64, 64, 3)), ("pool", "pool2", ()),
        ("conv", "conv5", (64, 128, 3)), ("pool", "pool3", ()),
        ("dense", "fc1", (128 * 4 * 4, 256)), ("logits", "logits", (256,)),
    ],
}


def read_safetensors(path):
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    meta = header.pop("__metadata__", {})
    body = raw[8 + n :]
    tensors = {}
    for name, info in header.items():
        if info["dtype"] != "F32":
            raise ValueError(f"{path}: tensor {name} is {info['dtype']}, expected F32")
        start, end = info["data_offsets"]
        t = torch.frombuffer(bytearray(body[start:end]), dtype=torch.float32)
        tensors[name] = t.reshape(info["shape"])
    return meta, tensors


class Net(nn.Module):
    def __init__(self, spec, num_classes):
        super().__init__()
        layers = []
        for kind, name, args in spec:
            if kind == "conv":
                i, o, k = args
                layers += [(name, nn.Conv2d(i, o, k, padding=k // 2)), (name + "_relu", nn.ReLU())]
            elif kind == "pool":
                layers.append((name, nn.MaxPool2d(2)))
            elif kind == "dense":
                layers += [(name + "_flatten", nn.Flatten()), (name, nn.Linear(*args)), (name + "_relu", nn.ReLU())]
            else:
                layers += [(name + "_flatten", nn.Flatten()), (name, nn.Linear(args[0], num_classes))]
        self.net = nn.Sequential(OrderedDict(layers))

    def forward(self, x):
        return self.net(x)


def main(src, dst):
    meta, tensors = read_safetensors(src)
    arch = meta.get("gradviz.arch")
    if arch not in SPECS:
        sys.exit(f"{src}: unknown or missing gradviz.arch {arch!r}")
    classes = json.loads(meta["gradviz.classes"])
    net = Net(SPECS[arch], len(classes))
    state = {}
    for name, t in tensors.items():
        layer, param = name.rsplit(".", 1)
        state[f"net.{layer}.{param}"] = t
    net.load_state_dict(state, strict=True)
    net.eval()
    scripted = torch.jit.script(net)
    tmp = dst + ".tmp"
    scripted.save(tmp)
    os.replace(tmp, dst)
    print(f"exported {arch} ({len(classes)} classes) from {src} to {dst}")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
