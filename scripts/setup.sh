#!/usr/bin/env bash
# gradviz development / CI environment set-up.
#
# Idempotent: every step checks first and only does work when something is
# missing, so a second run takes a few seconds.  See environment.md.
#
#   scripts/setup.sh            # venv + torch, evcxr_jupyter, apt data, kernel, cargo config
#   GRADVIZ_PDF=1 scripts/setup.sh   # additionally apt-install chromium (PDF report)
#   GRADVIZ_LAB=1 scripts/setup.sh   # additionally pip-install JupyterLab (make lab)
#
# Other knobs:
#   GRADVIZ_SKIP_EVCXR=1   do not `cargo install evcxr_jupyter` even if it is missing
#   GRADVIZ_SKIP_APT=1     never call apt-get
#   PYTHON=python3.11      interpreter used to create .venv (default: python3)
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"

CARGO_BIN="${CARGO_HOME:-$HOME/.cargo}/bin"
case ":$PATH:" in *":$CARGO_BIN:"*) ;; *) export PATH="$CARGO_BIN:$PATH" ;; esac

TORCH_VERSION="2.13.0"
# Every spec is checked by venv_ok; "name==version" pins are checked exactly.
#  - keras + h5py read users' .keras/.h5 models (`gradviz import`, keras on the torch backend).
#    keras is pinned: scripts/train_keras_mnist.py reproduces models/keras_mnist_cnn.keras with it.
#  - zennit (LRP) and captum are references in tests and benchmarks. zennit 1.0.0 declares
#    Requires-Python >=3.11.11 although it runs on the machine's 3.11.7, so it alone is
#    installed with --ignore-requires-python --no-deps (applied to everything, that flag lets
#    pip pick a numpy source release that needs Python 3.12); its dependencies are listed
#    here. torchvision is pinned to the release built for torch 2.13, or pip upgrades torch.
PY_DEPS=(numpy nbconvert nbclient jupyter_client ipykernel "keras==3.15.1" h5py captum
         "torchvision==0.28.0" click pillow)
PY_NODEPS=("zennit==1.0.0")
PY_PKGS=("${PY_DEPS[@]}" "${PY_NODEPS[@]}")
VENV="$REPO/.venv"
VPY="$VENV/bin/python"

log() { echo "setup: $*"; }
warn() { echo "setup: WARNING: $*" >&2; }

START=$SECONDS

# ---------------------------------------------------------------------------
# 1. Python venv with torch (provides libtorch for tch) + Jupyter tooling
# ---------------------------------------------------------------------------
venv_ok() {
    [ -x "$VPY" ] || return 1
    # importlib.metadata is fast (does not import torch itself).
    "$VPY" - "$TORCH_VERSION" "${PY_PKGS[@]}" <<'EOF' 2>/dev/null
import sys, importlib.metadata as md
want, pkgs = sys.argv[1], sys.argv[2:]
if md.version("torch").split("+")[0] != want:
    sys.exit(1)
for p in pkgs:
    name, _, pin = p.partition("==")
    v = md.version(name)
    if pin and v.split("+")[0] != pin:
        sys.exit(1)
import importlib.util
spec = importlib.util.find_spec("torch")
import os
lib = os.path.join(spec.submodule_search_locations[0], "lib")
if not os.path.exists(os.path.join(lib, "libtorch_cpu.so")):
    sys.exit(1)
EOF
}

apt_updated=0
apt_install() {
    # apt_install PKG... ; returns non-zero on failure, never exits the script.
    if [ "${GRADVIZ_SKIP_APT:-0}" = 1 ]; then
        warn "GRADVIZ_SKIP_APT=1, not installing: $*"
        return 1
    fi
    if ! command -v apt-get >/dev/null 2>&1 || [ "$(id -u)" != 0 ]; then
        warn "apt-get unavailable or not root, cannot install: $*"
        return 1
    fi
    if [ "$apt_updated" = 0 ]; then
        log "apt-get update"
        DEBIAN_FRONTEND=noninteractive apt-get update -qq || { warn "apt-get update failed"; return 1; }
        apt_updated=1
    fi
    log "apt-get install -y $*"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" </dev/null
}

if venv_ok; then
    log "python venv ok (.venv, torch==$TORCH_VERSION)"
else
    if [ ! -x "$VPY" ]; then
        BASEPY="${PYTHON:-python3}"
        log "creating .venv with $BASEPY"
        if ! "$BASEPY" -m venv "$VENV"; then
            rm -rf "$VENV"
            apt_install python3-venv || true
            "$BASEPY" -m venv "$VENV"
        fi
    fi
    log "pip install torch==$TORCH_VERSION ${PY_PKGS[*]} (first time: ~2-3 min, ~5 GB)"
    t0=$SECONDS
    "$VPY" -m pip install --quiet --disable-pip-version-check \
        "torch==$TORCH_VERSION" "${PY_DEPS[@]}"
    "$VPY" -m pip install --quiet --disable-pip-version-check --ignore-requires-python --no-deps \
        "${PY_NODEPS[@]}"
    venv_ok || { echo "setup: ERROR: .venv still not usable after pip install" >&2; exit 1; }
    log "pip install done in $((SECONDS - t0))s"
fi

# Paths derived from the venv (find_spec does not import torch: fast).
TORCH_DIR="$("$VPY" -c 'import importlib.util as u; print(u.find_spec("torch").submodule_search_locations[0])')"
TORCH_LIB="$TORCH_DIR/lib"

# ---------------------------------------------------------------------------
# 2. evcxr_jupyter (Rust Jupyter kernel)
# ---------------------------------------------------------------------------
EVCXR="$(command -v evcxr_jupyter || true)"
if [ -z "$EVCXR" ] && [ -x "$CARGO_BIN/evcxr_jupyter" ]; then
    EVCXR="$CARGO_BIN/evcxr_jupyter"
fi
if [ -n "$EVCXR" ]; then
    log "evcxr_jupyter ok ($EVCXR)"
elif [ "${GRADVIZ_SKIP_EVCXR:-0}" = 1 ]; then
    warn "evcxr_jupyter missing and GRADVIZ_SKIP_EVCXR=1: notebooks will not run"
    EVCXR="$CARGO_BIN/evcxr_jupyter"
else
    log "cargo install --locked evcxr_jupyter (first time: ~15-20 min on 2 cores)"
    t0=$SECONDS
    cargo install --locked evcxr_jupyter
    EVCXR="$CARGO_BIN/evcxr_jupyter"
    [ -x "$EVCXR" ] || { echo "setup: ERROR: evcxr_jupyter not found after install" >&2; exit 1; }
    log "evcxr_jupyter installed in $((SECONDS - t0))s"
fi
EVCXR="$(readlink -f "$EVCXR" 2>/dev/null || echo "$EVCXR")"

# ---------------------------------------------------------------------------
# 3. Debian packages: Fashion-MNIST data set + fonts (+ chromium for PDF)
# ---------------------------------------------------------------------------
want_apt=()
[ -d /usr/share/datasets/fashion-mnist ] || want_apt+=(dataset-fashion-mnist)
[ -e /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] || want_apt+=(fonts-dejavu-core)
if [ "${#want_apt[@]}" -gt 0 ]; then
    apt_install "${want_apt[@]}" || warn "could not install ${want_apt[*]} (tests needing them may skip/fail)"
else
    log "apt data ok (fashion-mnist, dejavu fonts)"
fi
if [ "${GRADVIZ_PDF:-0}" = 1 ]; then
    if command -v chromium >/dev/null 2>&1 && [ -e /usr/share/javascript/mathjax/MathJax.js ]; then
        log "chromium ok (PDF export)"
    else
        apt_install chromium libjs-mathjax || warn "could not install chromium: no PDF report"
    fi
fi

# ---------------------------------------------------------------------------
# 4. Project-local Jupyter kernel "rust" in .venv/share/jupyter/kernels/rust
# ---------------------------------------------------------------------------
KDIR="$VENV/share/jupyter/kernels/rust"
# evcxr_jupyter, at every start, compares <kernel dir>/version.txt with its
# built-in one and re-runs `--install` (overwriting kernel.json without our
# env) when they differ; its <kernel dir> is $JUPYTER_PATH/kernels/rust when
# JUPYTER_PATH is set.  So take version.txt, logos and kernel.js from a real
# `evcxr_jupyter --install` into a scratch dir, then write our own kernel.json.
if [ -x "$EVCXR" ] && { [ ! -f "$KDIR/version.txt" ] || [ "$EVCXR" -nt "$KDIR/version.txt" ]; }; then
    scratch="$(mktemp -d)"
    if JUPYTER_PATH="$scratch" "$EVCXR" --install >/dev/null 2>&1 && [ -f "$scratch/kernels/rust/version.txt" ]; then
        mkdir -p "$KDIR"
        find "$scratch/kernels/rust" -maxdepth 1 -type f ! -name kernel.json -exec cp {} "$KDIR/" \;
        log "copied evcxr kernel resources (version.txt, logos) into ${KDIR#"$REPO"/}"
    else
        warn "evcxr_jupyter --install into a scratch dir failed; kernel.json may get overwritten by evcxr"
    fi
    rm -rf "$scratch"
fi
"$VPY" - "$REPO" "$EVCXR" "$TORCH_LIB" "$CARGO_BIN" <<'EOF'
import json, os, sys
repo, evcxr, torch_lib, cargo_bin = sys.argv[1:]
venv = os.path.join(repo, ".venv")
kdir = os.path.join(venv, "share", "jupyter", "kernels", "rust")
spec = {
    # The launcher gives every kernel a build directory of its own (a second kernel on the
    # same directory dies), then becomes evcxr_jupyter.
    "argv": [os.path.join(venv, "bin", "python"), os.path.join(repo, "scripts", "evcxr_kernel.py"),
             evcxr, "--control_file", "{connection_file}"],
    "display_name": "Rust (gradviz)",
    "language": "rust",
    "interrupt_mode": "message",
    "env": {
        "LIBTORCH_USE_PYTORCH": "1",
        "VIRTUAL_ENV": venv,
        # torch-sys' build script runs `python` (VIRTUAL_ENV set) from PATH.
        # ${PATH} is expanded by jupyter_client from the launching env.
        "PATH": os.path.join(venv, "bin") + ":" + cargo_bin + ":${PATH}",
        "LD_LIBRARY_PATH": torch_lib,
        # evcxr build directories, one per running kernel (target/evcxr/0, 1, ...), kept
        # warm across runs: torch-sys/tch/gradviz compile once.
        "GRADVIZ_EVCXR_DIR": os.path.join(repo, "target", "evcxr"),
        # evcxr runs prelude.rs there at start-up: a cell's last value shows in one
        # compilation instead of two (environment.md, "Notebook cells").
        "EVCXR_CONFIG_DIR": os.path.join(repo, "scripts", "evcxr-config"),
        "GRADVIZ_PYTHON": os.path.join(venv, "bin", "python"),
    },
}
text = json.dumps(spec, indent=1) + "\n"
path = os.path.join(kdir, "kernel.json")
old = open(path).read() if os.path.exists(path) else None
if old != text:
    os.makedirs(kdir, exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)
    print("setup: wrote " + os.path.relpath(path, repo))
else:
    print("setup: jupyter kernel 'rust' ok")
EOF

# JupyterLab, for `make lab` only (GRADVIZ_LAB=1): installed into the venv if missing.
if [ "${GRADVIZ_LAB:-0}" = 1 ]; then
    if "$VPY" -c 'import importlib.metadata as m; m.version("jupyterlab")' 2>/dev/null; then
        log "jupyterlab ok"
    else
        log "pip install jupyterlab (torch stays at $TORCH_VERSION)"
        "$VPY" -m pip install --quiet --disable-pip-version-check "torch==$TORCH_VERSION" jupyterlab
    fi
fi

# ---------------------------------------------------------------------------
# 5. .cargo/config.toml so plain cargo build/test/run find libtorch
# ---------------------------------------------------------------------------
# torch-sys is pointed at the venv's torch with LIBTORCH.  (cargo's [env] can
# override PATH for build scripts only with force=true, which would clobber
# the user's PATH for everything cargo runs, so LIBTORCH_USE_PYTORCH is not
# used here.)  LIBTORCH is not forced: an exported LIBTORCH wins.
# cargo ignores an [env] LD_LIBRARY_PATH for `cargo run`/`cargo test` (it
# computes that variable itself), so instead every binary, test and doctest
# gets an rpath to torch/lib via rustflags/rustdocflags.  (An exported
# RUSTFLAGS replaces these; evcxr sets its own RUSTFLAGS and gets
# LD_LIBRARY_PATH from kernel.json.)
CFG="$REPO/.cargo/config.toml"
CFG_VERSION=2
if [ -f "$CFG" ] && grep -qF "LIBTORCH = \"$TORCH_DIR\"" "$CFG" \
        && grep -qF "GRADVIZ_PYTHON = \"$VPY\"" "$CFG" \
        && grep -qF "# gradviz-config-version: $CFG_VERSION" "$CFG"; then
    log ".cargo/config.toml ok"
else
    ABI="$("$VPY" -c 'import torch; print(int(torch._C._GLIBCXX_USE_CXX11_ABI))')"
    mkdir -p "$REPO/.cargo"
    cat >"$CFG.tmp" <<EOF
# Generated by scripts/setup.sh -- do not edit, do not commit (gitignored).
# Lets plain \`cargo build|test|run\` use libtorch from .venv (torch==$TORCH_VERSION).
# gradviz-config-version: $CFG_VERSION
[env]
LIBTORCH = "$TORCH_DIR"
LIBTORCH_CXX11_ABI = "$ABI"
GRADVIZ_PYTHON = "$VPY"

[build]
rustflags = ["-C", "link-arg=-Wl,-rpath,$TORCH_LIB"]
rustdocflags = ["-C", "link-arg=-Wl,-rpath,$TORCH_LIB"]
EOF
    mv "$CFG.tmp" "$CFG"
    log "wrote .cargo/config.toml (LIBTORCH=$TORCH_DIR, CXX11_ABI=$ABI)"
fi

log "done in $((SECONDS - START))s"
