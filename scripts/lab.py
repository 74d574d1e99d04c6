#!/usr/bin/env python3
"""Open the gradviz notebooks in JupyterLab (`make lab`).

Starts the venv's JupyterLab on 127.0.0.1 with notebooks/ as its root and the project's
`rust` kernel ("Rust (gradviz)") as the default, waits until the server answers, and prints
the URL to open. Ctrl-C (or SIGTERM) stops the server and its kernels.

    .venv/bin/python scripts/lab.py            # port 8888, or the next free one
    GRADVIZ_LAB_PORT=9000 make lab

`make lab` runs scripts/setup.sh with GRADVIZ_LAB=1 first, which installs JupyterLab into
the venv only if it is missing. Before the server starts, gradviz is compiled for the
notebooks if it is not yet (GRADVIZ_LAB_PREWARM=0 skips that).
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
VENV = REPO / ".venv"
FIRST_NOTEBOOK = "00_data_and_models.ipynb"


def free_port(preferred: int) -> int:
    """`preferred` if nothing listens there, else a port the system picks."""
    for port in (preferred, 0):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port))
                return s.getsockname()[1]
            except OSError:
                continue
    raise SystemExit("lab: no free port on 127.0.0.1")


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return r.status == 200
    except OSError:
        return False


def prewarm() -> None:
    """Compiles gradviz for the notebooks now, if no kernel build directory holds it compiled
    from the current sources: the first notebook's `:dep` cell is then quick (a cold one
    takes minutes, at a time when the user is waiting for it)."""
    sys.path.insert(0, str(REPO / "scripts"))
    import evcxr_kernel
    import run_notebooks

    base, newest = evcxr_kernel.base_dir(), evcxr_kernel.gradviz_sources()
    slots = [s for s in base.glob("*") if evcxr_kernel.is_warm(s)] if base.is_dir() else []
    if any(evcxr_kernel.is_fresh(s, newest) for s in slots):
        return
    print("lab: compiling gradviz for the notebooks (first time: several minutes; later: only "
          "after gradviz changed)", flush=True)
    run_notebooks.check_kernel()
    run_notebooks.warm_up(REPO / "notebooks" / FIRST_NOTEBOOK, timeout=3600, startup_timeout=600)


def main() -> int:
    python = VENV / "bin" / "python"
    if subprocess.run([str(python), "-c", "import jupyterlab"], capture_output=True).returncode != 0:
        print("lab: JupyterLab is not in .venv; run `make lab` (it installs it)", file=sys.stderr)
        return 2
    if os.environ.get("GRADVIZ_LAB_PREWARM", "1") != "0":
        prewarm()
    port = free_port(int(os.environ.get("GRADVIZ_LAB_PORT", "8888")))
    token = os.environ.get("GRADVIZ_LAB_TOKEN") or secrets.token_hex(24)
    base = f"http://127.0.0.1:{port}"
    # JUPYTER_PATH puts the project's kernelspec before any user-level `rust` kernel
    # (setup keeps its version.txt current, so evcxr_jupyter leaves kernel.json alone).
    env = dict(os.environ, JUPYTER_PATH=str(VENV / "share" / "jupyter"))
    # `python -m jupyterlab`, not .venv/bin/jupyter: a copied venv keeps its old shebangs.
    cmd = [str(python), "-m", "jupyterlab", "--no-browser", "--ServerApp.ip=127.0.0.1",
           f"--ServerApp.port={port}", "--ServerApp.port_retries=0",
           f"--ServerApp.root_dir={REPO / 'notebooks'}", f"--IdentityProvider.token={token}",
           "--MappingKernelManager.default_kernel_name=rust"]
    if os.geteuid() == 0:  # containers and CI run as root; Jupyter refuses without this
        cmd.append("--ServerApp.allow_root=True")
    server = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL)

    def stop(signum, _frame):
        server.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    deadline = time.monotonic() + 120
    while not answers(f"{base}/api/status?token={token}"):
        if server.poll() is not None:
            print(f"lab: JupyterLab exited with status {server.returncode}", file=sys.stderr)
            return 1
        if time.monotonic() > deadline:
            print("lab: JupyterLab did not answer within 120 s", file=sys.stderr)
            server.terminate()
            return 1
        time.sleep(0.3)
    print(f"\ngradviz: JupyterLab is running, open\n\n    {base}/lab/tree/{FIRST_NOTEBOOK}?token={token}\n\n"
          "Kernel: \"Rust (gradviz)\". Stop with Ctrl-C.\n", flush=True)
    return server.wait()


if __name__ == "__main__":
    sys.exit(main())
