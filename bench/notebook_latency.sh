#!/usr/bin/env bash
# Notebook cell latency in the gradviz kernel: a fresh kernel on a warm build directory runs
# `:dep`, the first cell using gradviz, a trivial cell and a 20-step ascent cell (twice, the
# second time with another lr); prints wall time and evcxr's own `:timing` per cell, for each
# configuration side by side (bench/notebook_latency.py lists them).
#
#   bench/notebook_latency.sh [--configs baseline,prelude,...] [--repeat N]
#
# Needs `make setup` (venv, evcxr_jupyter, the `rust` kernel). Not a test: it prints times.
set -euo pipefail
cd "$(dirname "$0")/.."
exec .venv/bin/python bench/notebook_latency.py "$@"
