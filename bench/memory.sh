#!/usr/bin/env bash
# Peak memory (max RSS) of `gradviz saliency` for Integrated Gradients and SmoothGrad on
# N MNIST images (the bundled test digits, repeated), with the work split into chunks of
# --batch path points / noisy samples. Peak memory must depend on --batch, not on
# N x steps: the table shows it for each batch size.
#
#   bash bench/memory.sh                           # N=10000, IG 256 steps, SmoothGrad 100 samples
#   N=500 IG_STEPS=32 SG_SAMPLES=16 bash bench/memory.sh     # a quick run (~1 min)
#   BATCHES="64 256 1024" bash bench/memory.sh     # batch sizes to compare (default "256")
#   PROFILE=debug bash bench/memory.sh             # use target/debug (libtorch does the work either way)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
N="${N:-10000}"; IG_STEPS="${IG_STEPS:-256}"; SG_SAMPLES="${SG_SAMPLES:-100}"
BATCHES="${BATCHES:-256}"; PROFILE="${PROFILE:-release}"; THREADS="${THREADS:-2}"
PY=.venv/bin/python
if [ "$PROFILE" = release ]; then cargo build --release >&2; else cargo build --profile "$PROFILE" >&2; fi
BIN="target/$([ "$PROFILE" = dev ] && echo debug || echo "$PROFILE")/gradviz"
WORK=$(mktemp -d); trap 'rm -rf "$WORK"' EXIT
"$PY" - "$N" "$WORK/x.npy" <<'PY'
import gzip, sys, numpy as np
n, out = int(sys.argv[1]), sys.argv[2]
raw = gzip.open("data/mnist/t10k-images-idx3-ubyte.gz").read()[16:]
imgs = np.frombuffer(raw, np.uint8).reshape(-1, 1, 28, 28).astype(np.float32) / 255
np.save(out, np.resize(imgs, (n, 1, 28, 28)))
PY
echo "gradviz saliency, models/mnist_cnn.safetensors, $N images, $THREADS threads ($BIN)"
printf '%-22s %8s %8s %12s %10s\n' method N batch peak_RSS_MiB seconds
run() { # label, batch, args...
  local label=$1 batch=$2; shift 2
  local t0=$SECONDS
  OMP_NUM_THREADS=$THREADS /usr/bin/time -f '%M' -o "$WORK/rss" "$BIN" saliency \
    --model models/mnist_cnn.safetensors --input "$WORK/x.npy" --targets predicted \
    --batch "$batch" --save-npy "$WORK/a.npy" "$@" >/dev/null 2>"$WORK/log" \
    || { cat "$WORK/log" >&2; exit 1; }
  local mib; mib=$(awk '{ printf "%.1f", $1 / 1024 }' < <(tail -1 "$WORK/rss"))
  printf '%-22s %8s %8s %12s %10s\n' "$label" "$N" "$batch" "$mib" $((SECONDS - t0))
}
for b in $BATCHES; do
  run "IG ${IG_STEPS} steps" "$b" --method integrated-gradients --steps "$IG_STEPS"
  run "SmoothGrad ${SG_SAMPLES} samples" "$b" --method smoothgrad --samples "$SG_SAMPLES"
done
