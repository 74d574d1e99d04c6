#!/usr/bin/env bash
# gradviz vs Zennit 1.0, side by side in one run: LRP with the same composites on the same
# model (gradviz safetensors, mirrored in PyTorch for Zennit), inputs, thread count and batch.
# Prints images/s and the gradviz/Zennit ratio per composite, and the forward-only pass.
#
#   bench/lrp.sh [MODEL.safetensors]       env: THREADS (2) BATCH (128) N (512) REPS (3)
#
# Needs the project venv with zennit (installed by scripts/setup.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL="${1:-models/mnist_cnn.safetensors}"
THREADS="${THREADS:-2}" BATCH="${BATCH:-128}" N="${N:-512}" REPS="${REPS:-3}"
PY=".venv/bin/python"
TMP="$(mktemp -d)"; trap 'rm -rf "$TMP"' EXIT
cargo build -q --release --example bench_lrp
export OMP_NUM_THREADS="$THREADS" MKL_NUM_THREADS="$THREADS"
G="$(target/release/examples/bench_lrp "$MODEL" "$N" "$THREADS" "$BATCH" "$REPS" "$TMP/x.npy")"
Z="$("$PY" bench/lrp_vs_zennit.py "$MODEL" "$TMP/x.npy" "$THREADS" "$BATCH" "$REPS")"
"$PY" - "$G" "$Z" "$THREADS" "$BATCH" "$MODEL" <<'PY'
import json, sys
g, z = json.loads(sys.argv[1]), json.loads(sys.argv[2])
threads, batch, model = sys.argv[3:6]
print(f"model {model}, {g['images']} MNIST images, {threads} threads, batch {batch}, target class 3")
print(f"{'':28}{'gradviz img/s':>15}{'Zennit img/s':>15}{'gradviz/Zennit':>16}")
for k in [k for k in g if k not in ("images", "forward")]:
    print(f"{'LRP ' + k:28}{g[k]:>15.1f}{z[k]:>15.1f}{g[k] / z[k]:>15.2f}x")
print(f"{'forward only (no grad)':28}{g['forward']:>15.1f}{z['forward']:>15.1f}{g['forward'] / z['forward']:>15.2f}x")
PY
