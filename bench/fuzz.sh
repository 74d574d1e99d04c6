#!/usr/bin/env bash
# Runs every fuzz target of fuzz/targets.rs for INPUTS inputs (default 1,000,000) each,
# in its own process, and prints one row per target: inputs tried, accepted, rejected,
# panics, aborts (the process died: segfault, out of memory, libtorch abort) and peak RSS.
# Required: 0 panics, 0 aborts. Panicking inputs are written to target/fuzz-crashes/.
#
#   bash bench/fuzz.sh                 # all targets, 1,000,000 inputs each
#   bash bench/fuzz.sh 20000 npy png   # fewer inputs, some targets
#   SEED=7 bash bench/fuzz.sh          # another deterministic run
#   PROFILE=dev bash bench/fuzz.sh     # the debug build instead (slower, no extra build)
#   KERAS_INPUTS=0 bash bench/fuzz.sh  # skip the Keras config run (default 200 inputs)
#
# Then the Keras config reader on the Python side: scripts/fuzz_keras_config.py mutates the
# config.json of models/keras_mnist_cnn.keras KERAS_INPUTS times through keras_to_torch;
# every failure must be a KerasImportError (no other exception, no hang).
#
# Built with the `fuzz` profile (release optimizations with overflow checks and debug
# assertions on, so integer overflows are found as panics) unless PROFILE says otherwise.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
INPUTS="${1:-1000000}"
shift || true
SEED="${SEED:-0}"
PROFILE="${PROFILE:-fuzz}"
cargo build --profile "$PROFILE" --example fuzz >&2
BIN="target/$([ "$PROFILE" = dev ] && echo debug || echo "$PROFILE")/examples/fuzz"
TARGETS=("$@")
[ ${#TARGETS[@]} -gt 0 ] || mapfile -t TARGETS < <("$BIN" --list)
printf '%-12s %10s %10s %10s %7s %7s %9s %8s\n' target tried accepted rejected panics aborts peak_MiB secs
fail=0
for t in "${TARGETS[@]}"; do
  set +e
  line=$("$BIN" "$t" "$INPUTS" "$SEED" 2>"target/fuzz-$t.log" | tail -1)
  rc=$?
  set -e
  get() { sed -n "s/.*$1=\([^ ]*\).*/\1/p" <<<"$line"; }
  if [ $rc -gt 1 ] || [ -z "$line" ]; then
    aborts=1; fail=1
    printf '%-12s %10s %10s %10s %7s %7s %9s %8s   (exit %d, see target/fuzz-%s.log)\n' "$t" ? ? ? ? 1 ? ? "$rc" "$t"
    continue
  fi
  [ "$(get panics)" = 0 ] || fail=1
  printf '%-12s %10s %10s %10s %7s %7s %9s %8s\n' "$t" "$(get tried)" "$(get accepted)" "$(get rejected)" "$(get panics)" 0 "$(get peak_rss_mib)" "$(get secs)"
done
KERAS_INPUTS="${KERAS_INPUTS:-200}"
if [ "$KERAS_INPUTS" -gt 0 ]; then
  PY="${GRADVIZ_PYTHON:-.venv/bin/python}"
  set +e
  line=$(KERAS_BACKEND=torch "$PY" scripts/fuzz_keras_config.py "$KERAS_INPUTS" "$SEED" 2>target/fuzz-keras-config.log | tail -1)
  rc=$?
  set -e
  echo "keras-config (Python): $line"
  [ $rc -eq 0 ] || fail=1
fi
exit $fail
