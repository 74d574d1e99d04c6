#!/usr/bin/env python3
"""The PyTorch half of bench/ascend.sh: a plain PyTorch loop doing the same steps as
gradviz::ascend (same TorchScript model, 10-class batch, noise start, thread count): the
forward pass, the per-row logit objective, the gradient with respect to the input only, the
per-step record (objective, target probability, top class), the update and, for the
regularized case, gradviz's default 28x28 set (jitter=1, tv=0.02, l1=0.005, blur=0.5@4,
norm-clip=40, clip=0-1).

    ascend_vs_torch.py MODEL.pt THREADS STEPS REPS   -> one JSON line of steps/s
"""
import json
import math
import random
import sys
import time

import torch
import torch.nn.functional as F


def gaussian_blur(x, sigma):
    r = max(1, math.ceil(3 * sigma))
    k = torch.tensor([math.exp(-(i * i) / (2 * sigma * sigma)) for i in range(-r, r + 1)])
    k = (k / k.sum()).to(x.dtype)
    c = x.shape[1]
    x = F.conv2d(x, k.view(1, 1, 1, -1).repeat(c, 1, 1, 1), padding=(0, r), groups=c)
    return F.conv2d(x, k.view(1, 1, -1, 1).repeat(c, 1, 1, 1), padding=(r, 0), groups=c)


def total_variation(x):
    dy = (x[:, :, 1:] - x[:, :, :-1]).abs().flatten(1).sum(1)
    dx = (x[:, :, :, 1:] - x[:, :, :, :-1]).abs().flatten(1).sum(1)
    return dy + dx


def run(model, x0, targets, steps, rule, lr, regularized, seed=0):
    rng = random.Random(seed)
    x = x0.clone().requires_grad_(True)
    m = torch.zeros_like(x)
    v = torch.zeros_like(x)
    tgt = targets.unsqueeze(1)
    history = []
    for step in range(1, steps + 1):
        seen = x
        if regularized:  # jitter=1: pad with 0 and crop at a random offset
            dy, dx = rng.randint(0, 2), rng.randint(0, 2)
            seen = F.pad(x, (1, 1, 1, 1))[:, :, dy:dy + 28, dx:dx + 28]
        logits = model(seen)
        obj = logits.gather(1, tgt).squeeze(1)
        total = obj
        if regularized:
            total = obj - (0.02 * total_variation(x) + 0.005 * x.abs().flatten(1).sum(1))
        (g,) = torch.autograd.grad(total.sum(), [x])
        with torch.no_grad():
            probs = logits.softmax(1)
            top_p, top = probs.max(1)
            rec = (obj.tolist(), probs.gather(1, tgt).squeeze(1).tolist(), top.tolist())
            if not all(math.isfinite(o) for o in rec[0]):
                raise RuntimeError("objective not finite")
            history.append(rec)
            if rule == "plain":
                x += lr * g
            else:
                m.mul_(0.9).add_(g, alpha=0.1)
                v.mul_(0.999).addcmul_(g, g, value=0.001)
                mh = m / (1 - 0.9 ** step)
                vh = v / (1 - 0.999 ** step)
                x += lr * mh / (vh.sqrt() + 1e-8)
            if regularized:
                img = x
                if step % 4 == 0:
                    img = gaussian_blur(img, 0.5)
                norm = img.square().sum(1, keepdim=True).sqrt()
                thr = torch.quantile(norm.reshape(norm.shape[0], -1), 0.4, dim=1).view(-1, 1, 1, 1)
                img = (img * (norm >= thr)).clamp(0.0, 1.0)
                x.copy_(img)
    with torch.no_grad():
        logits = model(x)
        history.append(logits.gather(1, tgt).squeeze(1).tolist())
    return x.detach(), history


def main():
    model_path, threads, steps, reps = sys.argv[1:5]
    threads, steps, reps = int(threads), int(steps), int(reps)
    torch.set_num_threads(threads)
    model = torch.jit.load(model_path).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    torch.manual_seed(0)
    x0 = (torch.randn(10, 1, 28, 28) * 0.05 + 0.1).clamp(0, 1)
    targets = torch.arange(10)
    out = {}
    for name, rule, lr, reg in [("plain", "plain", 0.05, False), ("adam", "adam", 0.02, False),
                                ("adam_default_reg", "adam", 0.02, True)]:
        run(model, x0, targets, 5, rule, lr, reg)  # warm-up
        best = float("inf")
        for _ in range(reps):
            t = time.perf_counter()
            run(model, x0, targets, steps, rule, lr, reg)
            best = min(best, time.perf_counter() - t)
        out[name] = steps / best
    print(json.dumps(out))


if __name__ == "__main__":
    main()
