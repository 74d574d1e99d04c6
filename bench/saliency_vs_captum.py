#!/usr/bin/env python3
"""The Captum half of bench/saliency.sh: images/s of captum.attr.Saliency and
IntegratedGradients on the same TorchScript model, inputs, thread count and batch size.

    saliency_vs_captum.py MODEL.pt INPUTS.npy THREADS BATCH IG_STEPS REPS   -> one JSON line
"""
import json
import sys
import time

import numpy as np
import torch
from captum.attr import IntegratedGradients, Saliency


def best_of(reps, f):
    f()
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        f()
        best = min(best, time.perf_counter() - t)
    return best


def main():
    model_path, inputs, threads, batch, steps, reps = sys.argv[1:7]
    threads, batch, steps, reps = int(threads), int(batch), int(steps), int(reps)
    torch.set_num_threads(threads)
    model = torch.jit.load(model_path).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    x = torch.from_numpy(np.load(inputs)).float()
    n = x.shape[0]
    chunks = list(torch.split(x, batch))

    def forward():
        with torch.no_grad():
            for c in chunks:
                model(c)

    sal = Saliency(model)

    def saliency():
        for c in chunks:
            sal.attribute(c.clone().requires_grad_(), target=3, abs=False)

    ig = IntegratedGradients(model)

    def integrated():
        for c in chunks:
            ig.attribute(c, baselines=torch.zeros_like(c), target=3, n_steps=steps,
                         method="riemann_middle", internal_batch_size=batch)

    f = best_of(reps, forward)
    s = best_of(reps, saliency)
    i = best_of(min(reps, 3), integrated)
    print(json.dumps({"images": n, "forward_ips": n / f, "saliency_ips": n / s, "ig_ips": n / i}))


if __name__ == "__main__":
    main()
