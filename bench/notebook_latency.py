#!/usr/bin/env python3
"""How long notebook cells take in the gradviz kernel (run by bench/notebook_latency.sh).

For each configuration, a fresh kernel is started on a warm build directory and runs, in
order: the `:dep` cell, the first cell that uses gradviz, a trivial cell, and a 20-step
ascent cell twice (the second time with another `lr`). Printed per cell: the wall time from
sending the cell to the kernel going idle, and evcxr's own measurement (`:timing`,
"Took N ms"). Configurations run side by side in one invocation, so that they share the
machine's load; repeat with `--repeat`.

A configuration is a set of evcxr commands run at the start of the kernel (in a cell that is
not timed): `baseline` is evcxr's defaults with the notebooks' old imports; the others are
what was tried to cut the latency (see environment.md, "Cell latency").
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "scripts"))

from jupyter_client.kernelspec import KernelSpecManager  # noqa: E402
from jupyter_client.manager import KernelManager  # noqa: E402

import evcxr_kernel  # noqa: E402  (build directory slots)
import run_notebooks  # noqa: E402  (kernelspec lookup: the project's `rust` kernel first)

DEP = ':dep gradviz = { path = ".." }'

# The first cell that uses gradviz, in the notebooks' old style (named imports; evcxr must
# learn every imported name's type) and with the prelude.
FIRST_USE_OLD = """use gradviz::model::Classifier;
use gradviz::ascend::{ascend, AscendConfig, Init};
use gradviz::objective::Objective;
let model = gradviz::load_model("../models/mnist_cnn.safetensors")?;
let x0 = Init::noise(0.1, 0.05, 0).make(1, model.input_shape())?;
model.describe()"""
FIRST_USE_PRELUDE = """use gradviz::prelude::*;
let model = load_model("../models/mnist_cnn.safetensors")?;
let x0 = Init::noise(0.1, 0.05, 0).make(1, model.input_shape())?;
model.describe()"""
TRIVIAL = "let b = 2 + 2;\nb"
ASCENT = """let lr = {lr};
let run = ascend(model.as_ref(), &Objective::logit(3), &x0,
                 &AscendConfig {{ steps: 20, lr, ..Default::default() }})?;
run.final_target_probs()[0]"""

# The project's evcxr configuration (kernel.json's EVCXR_CONFIG_DIR): prelude.rs.
PROJECT_CONFIG = REPO / "scripts" / "evcxr-config"


def project_config(**extra: str) -> dict[str, str]:
    files = {p.name: p.read_text() for p in PROJECT_CONFIG.iterdir() if p.is_file()}
    for name, text in extra.items():
        files[name] = files.get(name, "") + text
    return files


CONFIGS = {
    # evcxr's defaults (an empty EVCXR_CONFIG_DIR), the cells as the notebooks had them.
    "baseline": {"setup": [], "first_use": FIRST_USE_OLD, "evcxr_config": {}},
    # The project's kernel: gradviz::prelude in the cells, scripts/evcxr-config/prelude.rs
    # (a cell's last value shows in one compilation).
    "kernel": {"setup": [], "first_use": FIRST_USE_PRELUDE,
               "evcxr_config": project_config()},
    # + cargo never asks the network (`:offline 1`).
    "kernel+offline": {"setup": [":offline 1"], "first_use": FIRST_USE_PRELUDE,
                       "evcxr_config": project_config()},
    # + init.evcxr adds gradviz (exactly as the notebooks' `:dep` line ends up, so that the
    # `:dep` cell changes nothing) and prelude.rs imports the prelude: the kernel does both
    # while it starts.
    "kernel+preload": {"setup": [], "first_use": FIRST_USE_PRELUDE,
                       "evcxr_config": project_config(**{
                           "init.evcxr": f':dep gradviz = {{ path = "{REPO}" }}\n',
                           "prelude.rs": "use gradviz::prelude::*;\n"})},
}

TOOK_RE = re.compile(r"Took (\d+)ms")


def warm_slot() -> Path:
    """The most recently used warm build directory of the project's kernels."""
    slots = [p for p in (REPO / "target" / "evcxr").glob("*") if evcxr_kernel.is_warm(p)]
    if not slots:
        raise SystemExit("notebook_latency: no warm build directory in target/evcxr (run without --no-warm-up)")
    return max(slots, key=evcxr_kernel.last_used)


def prepare(name: str, cfg: dict, work: Path, trace: Path | None) -> KernelSpecManager:
    """A kernelspec for one timed kernel of configuration `cfg`: its own copy of the warm build
    directory (so that configurations cannot disturb each other), the configuration's evcxr
    config directory, and, with `trace`, the kernel run under `strace -f`, which logs every
    program it starts (cargo, rustc, the linker) with start and exit times."""
    base = work / name
    shutil.rmtree(base, ignore_errors=True)
    base.mkdir(parents=True)
    src = warm_slot()
    fd = evcxr_kernel.try_lock(src / evcxr_kernel.KERNEL_LOCK)
    if fd is None:
        raise SystemExit(f"notebook_latency: a kernel is running in {src}; stop it first")
    try:
        subprocess.run(["cp", "-a", "--reflink=auto", str(src), str(base / "0")], check=True)
    finally:
        os.close(fd)
    spec = run_notebooks.kernel_spec_manager().get_kernel_spec(run_notebooks.KERNEL).to_dict()
    spec["env"]["GRADVIZ_EVCXR_DIR"] = str(base)
    conf = base / "evcxr-config"
    conf.mkdir()
    for fname, text in cfg["evcxr_config"].items():
        (conf / fname).write_text(text)
    spec["env"]["EVCXR_CONFIG_DIR"] = str(conf)
    if trace:
        spec["argv"] = ["strace", "-f", "--seccomp-bpf", "-ttt", "-q", "-s", "200", "-e", "trace=execve",
                        "-o", str(trace)] + spec["argv"]
    kdir = base / "kernels" / run_notebooks.KERNEL
    kdir.mkdir(parents=True)
    (kdir / "kernel.json").write_text(json.dumps(spec))
    return KernelSpecManager(kernel_dirs=[str(base / "kernels")])


def tree_cpu(root: int) -> float:
    """CPU seconds used so far by process `root` and all its descendants: the live ones'
    user + system time, including that of the children they have reaped (cargo, rustc and
    the linker end before a cell does). Unlike wall time, this barely depends on how busy
    the machine is."""
    procs: dict[int, tuple[int, int]] = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            stat = Path(f"/proc/{d}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        procs[int(d)] = (int(fields[1]), sum(int(x) for x in fields[11:15]))
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in procs.items():
        children.setdefault(ppid, []).append(pid)
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        if pid in procs:
            total += procs[pid][1]
            todo.extend(children.get(pid, []))
    return total / os.sysconf("SC_CLK_TCK")


class Kernel:
    """One kernel of the project's `rust` kernelspec, with timed cell execution."""

    def __init__(self, cwd: Path, startup_timeout: float, specs: KernelSpecManager | None = None):
        # `specs`: a kernelspec prepared by `prepare`, else the project's `rust` kernel.
        t0 = time.monotonic()
        self.km = KernelManager(kernel_name=run_notebooks.KERNEL,
                                kernel_spec_manager=specs or run_notebooks.kernel_spec_manager())
        self.km.start_kernel(cwd=str(cwd))
        self.kc = self.km.client()
        self.kc.start_channels()
        self.kc.wait_for_ready(timeout=startup_timeout)
        self.startup = time.monotonic() - t0
        self.startup_cpu = tree_cpu(self.km.provisioner.pid)

    def run(self, code: str, timeout: float = 3600) -> tuple[float, float | None, str]:
        """(wall seconds, evcxr's own seconds or None, text output) of one cell; raises on error.
        The CPU seconds the kernel used for it are left in `self.last_cpu`."""
        cpu0 = tree_cpu(self.km.provisioner.pid)
        self.last_start = time.time()
        t0 = time.monotonic()
        msg_id = self.kc.execute(code)
        out, took, error = [], None, None
        while True:
            msg = self.kc.get_iopub_msg(timeout=timeout)
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            kind, content = msg["msg_type"], msg["content"]
            if kind == "status" and content["execution_state"] == "idle":
                break
            if kind == "stream":
                out.append(content["text"])
            elif kind in ("execute_result", "display_data"):
                data = content["data"]
                m = TOOK_RE.search(data.get("text/html", ""))
                if m:
                    took = int(m.group(1)) / 1000
                elif "text/plain" in data:
                    out.append(data["text/plain"])
            elif kind == "error":
                error = "\n".join(content.get("traceback") or [content.get("evalue", "")])
        wall = time.monotonic() - t0
        self.last_end = time.time()
        self.last_cpu = tree_cpu(self.km.provisioner.pid) - cpu0
        if error is not None:
            raise RuntimeError(f"cell failed:\n{code}\n---\n{run_notebooks.error_text({'traceback': [error]})}")
        return wall, took, "".join(out)

    def close(self) -> None:
        pid = self.km.provisioner.pid
        self.kc.stop_channels()
        self.km.shutdown_kernel(now=False)
        deadline = time.monotonic() + 30  # until strace, if any, has written its last lines
        while os.path.exists(f"/proc/{pid}") and time.monotonic() < deadline:
            time.sleep(0.2)


EXECVE_RE = re.compile(r'^(\d+) (\d+\.\d+) execve\("([^"]+)", \[(.*?)\]')
EXIT_RE = re.compile(r"^(\d+) (\d+\.\d+) \+\+\+ (?:exited|killed)")


def processes(log: Path) -> list[tuple[str, float, float]]:
    """(what, start, end) of every program the kernel ran, from the strace log."""
    started: dict[str, tuple[str, float]] = {}
    spans = []
    for line in log.read_text(errors="replace").splitlines():
        if m := EXECVE_RE.match(line):
            pid, t, exe, args = m.group(1), float(m.group(2)), m.group(3), m.group(4)
            name = Path(exe).name
            if name == "cargo":
                sub = re.search(r'cargo", "(?:--offline", )?"?([\w-]+)"', args)
                name = f"cargo {sub.group(1) if sub else '?'}"
            elif name == "rustc":
                crate = re.search(r'"--crate-name", "(\w+)"', args)
                name = f"rustc {crate.group(1) if crate else '(query)'}"
            elif name in ("cc", "gcc", "ld", "collect2", "ld.bfd", "ld.lld", "mold", "lld"):
                name = "link"
            started[pid] = (name, t)  # a later execve in the same process replaces the program
        elif (m := EXIT_RE.match(line)) and m.group(1) in started:
            name, t0 = started.pop(m.group(1))
            spans.append((name, t0, float(m.group(2))))
    return spans


def union(spans: list[tuple[float, float]]) -> float:
    total, end = 0.0, float("-inf")
    for a, b in sorted(spans):
        if b > end:
            total += b - max(a, end)
            end = b
    return total


def breakdown(spans, start: float, end: float) -> str:
    """Where one cell's time went: cargo processes (of which rustc of the cell crate and
    linking), and what is left to evcxr itself (rust-analyzer, bookkeeping, running)."""
    inside = [(n, a, b) for n, a, b in spans if a >= start and b <= end + 0.5]
    cargo = union([(a, b) for n, a, b in inside if n.startswith("cargo")])
    rustc = union([(a, b) for n, a, b in inside if n == "rustc ctx"])
    link = union([(a, b) for n, a, b in inside if n == "link"])
    counts: dict[str, int] = {}
    for n, _, _ in inside:
        if n.startswith("cargo"):
            counts[n] = counts.get(n, 0) + 1
    runs = ", ".join(f"{k}×{v}" for k, v in sorted(counts.items()))
    return (f"cargo {cargo:.2f} s ({runs}; rustc of the cell {rustc:.2f} s, linking {link:.2f} s), "
            f"evcxr itself {end - start - cargo:.2f} s")


def measure(name: str, cfg: dict, cwd: Path, startup_timeout: float, work: Path,
            traces: Path | None) -> list[tuple[str, float, float | None, float]]:
    trace = traces / f"{name}-{time.strftime('%H%M%S')}.strace" if traces else None
    k = Kernel(cwd, startup_timeout, prepare(name, cfg, work, trace))
    rows = [("kernel start", k.startup, None, k.startup_cpu)]
    windows = []
    try:
        for cmd in cfg["setup"]:
            k.run(cmd)
        k.run(":timing")
        for label, code in [(":dep", DEP), ("first use of gradviz", cfg["first_use"]),
                            ("trivial cell", TRIVIAL),
                            ("20-step ascent, lr 0.05", ASCENT.format(lr=0.05)),
                            ("same, re-run with lr 0.1", ASCENT.format(lr=0.1))]:
            wall, took, out = k.run(code)
            rows.append((label, wall, took, k.last_cpu))
            windows.append((label, k.last_start, k.last_end))
            print(f"  [{name}] {label}: {wall:.2f} s (evcxr {took if took is None else f'{took:.2f} s'}, "
                  f"CPU {k.last_cpu:.2f} s)"
                  f"{'  → ' + out.strip().splitlines()[-1][:60] if out.strip() else ''}", flush=True)
    finally:
        k.close()
    if trace:
        spans = processes(trace)
        for label, a, b in windows:
            print(f"  [{name}] {label}: {breakdown(spans, a, b)}", flush=True)
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--configs", default=",".join(CONFIGS),
                    help=f"comma-separated, from {', '.join(CONFIGS)} (default: all)")
    ap.add_argument("--repeat", type=int, default=1, help="kernels per configuration")
    ap.add_argument("--startup-timeout", type=float, default=600)
    ap.add_argument("--breakdown", action="store_true",
                    help="also trace the kernel with strace and split each cell's time into cargo, "
                         "rustc, linking and evcxr itself")
    ap.add_argument("--no-warm-up", action="store_true",
                    help="skip the warm-up kernel (the build directory is known to be warm)")
    args = ap.parse_args()
    # A terminated benchmark still shuts its kernels down (the `finally` blocks).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    names = [c for c in args.configs.split(",") if c]
    unknown = [c for c in names if c not in CONFIGS]
    if unknown:
        print(f"notebook_latency: unknown configuration(s) {unknown}; known: {list(CONFIGS)}")
        return 2
    cwd = REPO / "notebooks"
    run_notebooks.check_kernel()
    if not args.no_warm_up:
        print("warm-up kernel (brings the build directory up to date; not timed)", flush=True)
        k = Kernel(cwd, args.startup_timeout)
        try:
            k.run(DEP)
            k.run(FIRST_USE_PRELUDE)
        finally:
            k.close()

    # Copies of the build directory, one per configuration; removed at the end (0.5 GB each).
    work = REPO / "target" / "evcxr-bench"
    results: dict[str, list[list[tuple[str, float, float | None, float]]]] = {n: [] for n in names}
    traces = Path(tempfile.mkdtemp(prefix="gradviz-latency-")) if args.breakdown else None
    try:
        run_all(names, args, cwd, work, results, traces)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print_table(names, args, results)
    if traces:
        print(f"\nstrace logs: {traces}")
    return 0


def run_all(names, args, cwd, work, results, traces: Path | None) -> None:
    for rep in range(args.repeat):
        for name in names:  # interleaved, so that load changes hit every configuration
            print(f"[{name}] run {rep + 1}/{args.repeat}", flush=True)
            results[name].append(measure(name, CONFIGS[name], cwd, args.startup_timeout, work, traces))


def print_table(names, args, results) -> None:
    print(f"load average at the end: {os.getloadavg()[0]:.1f} (1 min), {os.cpu_count()} CPUs")
    labels = [row[0] for row in results[names[0]][0]]
    for title, col in [("wall seconds per cell (evcxr's own `:timing` in parentheses)", 1),
                       ("CPU seconds per cell (the kernel and everything it ran)", 3)]:
        print(f"\n{title}, median of {args.repeat}")
        print(f"{'cell':<28}" + "".join(f"{n:>22}" for n in names))
        for i, label in enumerate(labels):
            cells = []
            for n in names:
                s = f"{statistics.median(r[i][col] for r in results[n]):.2f}"
                tooks = [r[i][2] for r in results[n] if r[i][2] is not None]
                if col == 1 and tooks:
                    s += f" ({statistics.median(tooks):.2f})"
                cells.append(f"{s:>22}")
            print(f"{label:<28}" + "".join(cells))


if __name__ == "__main__":
    sys.exit(main())
