#!/usr/bin/env bash
# gradviz::ascend vs a plain PyTorch loop, side by side in one run: same TorchScript model,
# the 10-class batch (row k -> logit of class k), same start, step rule, thread count and
# per-step work (see bench/ascend_vs_torch.py). Prints steps/s and the gradviz/PyTorch ratio.
#
#   bench/ascend.sh [MODEL.safetensors]       env: THREADS (1) STEPS (300) REPS (3)
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL="${1:-models/mnist_cnn.safetensors}"
THREADS="${THREADS:-1}" STEPS="${STEPS:-300}" REPS="${REPS:-3}"
PY=".venv/bin/python"
TMP="$(mktemp -d)"; trap 'rm -rf "$TMP"' EXIT
cargo build -q --release --example bench_ascend
BIN=target/release/examples/bench_ascend
"$PY" scripts/export_torchscript.py "$MODEL" "$TMP/model.pt" >/dev/null
export OMP_NUM_THREADS="$THREADS" MKL_NUM_THREADS="$THREADS"
G="$("$BIN" "$TMP/model.pt" "$THREADS" "$STEPS" "$REPS")"
T="$("$PY" bench/ascend_vs_torch.py "$TMP/model.pt" "$THREADS" "$STEPS" "$REPS")"
"$PY" - "$G" "$T" "$THREADS" "$STEPS" "$MODEL" <<'PY'
import json, sys
g, t = json.loads(sys.argv[1]), json.loads(sys.argv[2])
threads, steps, model = sys.argv[3:6]
print(f"model {model} as TorchScript, batch of 10 classes, {steps} steps, {threads} thread(s), best of 3")
print(f"{'':34}{'gradviz steps/s':>16}{'PyTorch steps/s':>16}{'ratio':>8}")
for k, name in [("plain", "plain logit ascent"), ("adam", "Adam logit ascent"),
                ("adam_default_reg", "Adam + default regularization")]:
    print(f"{name:34}{g[k]:>16.1f}{t[k]:>16.1f}{g[k] / t[k]:>7.2f}x")
PY
