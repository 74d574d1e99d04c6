#!/usr/bin/env bash
# gradviz vs Captum, side by side in one run: same TorchScript model, inputs, thread count
# and batch size. Prints images/s and the gradviz/Captum ratio for the vanilla gradient
# (captum.attr.Saliency) and Integrated Gradients, and saliency time / forward-only time.
#
#   bench/saliency.sh [MODEL.safetensors]       env: THREADS (2) BATCH (128) N (512) STEPS (16) REPS (3)
#
# Needs the project venv with captum: .venv/bin/pip install captum
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL="${1:-models/mnist_cnn.safetensors}"
THREADS="${THREADS:-2}" BATCH="${BATCH:-128}" N="${N:-512}" STEPS="${STEPS:-16}" REPS="${REPS:-3}"
PY=".venv/bin/python"
TMP="$(mktemp -d)"; trap 'rm -rf "$TMP"' EXIT
cargo build -q --release --example bench_saliency
BIN=target/release/examples/bench_saliency
"$PY" scripts/export_torchscript.py "$MODEL" "$TMP/model.pt" >/dev/null
"$BIN" --dump-inputs "$TMP/x.npy" "$N"
export OMP_NUM_THREADS="$THREADS" MKL_NUM_THREADS="$THREADS"
G="$("$BIN" "$TMP/model.pt" "$TMP/x.npy" "$THREADS" "$BATCH" "$STEPS" "$REPS")"
C="$("$PY" bench/saliency_vs_captum.py "$TMP/model.pt" "$TMP/x.npy" "$THREADS" "$BATCH" "$STEPS" "$REPS")"
"$PY" - "$G" "$C" "$THREADS" "$BATCH" "$STEPS" "$MODEL" <<'PY'
import json, sys
g, c = json.loads(sys.argv[1]), json.loads(sys.argv[2])
threads, batch, steps, model = sys.argv[3:7]
print(f"model {model} as TorchScript, {g['images']} MNIST images, {threads} threads, batch {batch}, IG {steps} steps")
print(f"{'':28}{'gradviz img/s':>15}{'Captum img/s':>15}{'gradviz/Captum':>16}")
for k, name in [("saliency_ips", "gradient (Saliency)"), ("ig_ips", "Integrated Gradients")]:
    print(f"{name:28}{g[k]:>15.1f}{c[k]:>15.1f}{g[k] / c[k]:>15.2f}x")
print(f"{'forward only (no grad)':28}{g['forward_ips']:>15.1f}{c['forward_ips']:>15.1f}{g['forward_ips'] / c['forward_ips']:>15.2f}x")
print(f"gradviz saliency time = {g['forward_ips'] / g['saliency_ips']:.2f}x a forward-only pass "
      f"(Captum: {c['forward_ips'] / c['saliency_ips']:.2f}x)")
PY
