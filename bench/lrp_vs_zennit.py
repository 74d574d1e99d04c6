#!/usr/bin/env python3
"""The Zennit half of bench/lrp.sh: images/s of zennit 1.0's LRP (Gradient attributor with
each composite, attr_output = onehot * logits) on the same gradviz model mirrored in PyTorch
(scripts/export_torchscript.py), inputs, thread count and batch size, and of a forward pass.

    lrp_vs_zennit.py MODEL.safetensors INPUTS.npy THREADS BATCH REPS   -> one JSON line
"""
import importlib.util
import json
import os
import sys
import time

import numpy as np
import torch
from zennit.attribution import Gradient

HERE = os.path.dirname(os.path.abspath(__file__))
spec = importlib.util.spec_from_file_location("zennit_lrp", os.path.join(HERE, "../tests/reference/zennit_lrp.py"))
ref = importlib.util.module_from_spec(spec)
spec.loader.exec_module(ref)

NAMES = ["epsilon-plus-flat", "epsilon-alpha2-beta1", "epsilon-gamma-box"]


def best_of(reps, f):
    f()
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        f()
        best = min(best, time.perf_counter() - t)
    return best


def main():
    model_path, inputs, threads, batch, reps = sys.argv[1:6]
    threads, batch, reps = int(threads), int(batch), int(reps)
    torch.set_num_threads(threads)
    model = ref.load_gradviz(model_path).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    x = torch.from_numpy(np.load(inputs)).float()
    n = x.shape[0]
    chunks = list(torch.split(x, batch))

    def forward():
        with torch.no_grad():
            for c in chunks:
                model(c)

    out = {"images": n, "forward": n / best_of(reps, forward)}
    for name in NAMES:
        def lrp():
            composite = ref.composites(1e-6, False)[name]
            with Gradient(model, composite) as attributor:
                for c in chunks:
                    onehot = torch.zeros(c.shape[0], 10)
                    onehot[:, 3] = 1.0
                    attributor(c, attr_output=lambda o: onehot * o)

        out[name] = n / best_of(reps, lrp)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
