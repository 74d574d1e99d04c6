#!/usr/bin/env python3
"""Start the evcxr Jupyter kernel in a build directory that no other kernel is using.

The `rust` kernelspec (scripts/setup.sh writes it) runs

    .venv/bin/python scripts/evcxr_kernel.py <evcxr_jupyter> --control_file {connection_file}

An evcxr kernel compiles every cell as a crate in its build directory (EVCXR_TMPDIR) and
one directory serves one kernel: a second kernel on the same directory overwrites the
first one's sources and dies. Every kernel therefore gets a *slot* of its own,
`target/evcxr/<n>/` (base directory: $GRADVIZ_EVCXR_DIR), chosen here:

* the lowest-numbered slot that no running kernel holds; a kernel holds its slot through a
  `flock` on `<slot>/.kernel-lock`, inherited by evcxr_jupyter and its children, so the
  lock goes away when the kernel does, however it ends;
* if every slot is busy, a new slot, seeded with a copy of a warm slot, so that it does
  not compile torch-sys and tch from scratch; a slot whose gradviz is older than the
  sources is replaced by a copy of one compiled from them, if there is one. The copy is
  taken while holding the source's lock, or, if a kernel is running in it, cargo's own
  build locks, so it never catches a half-finished build.

Slots persist: the next kernel reuses them warm. See environment.md ("Several notebooks
at once") for the measurements behind this design.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
KERNEL_LOCK = ".kernel-lock"
CLAIM_LOCK = ".claim-lock"
TARGET_TRIPLE_GLOB = "*-*-*"  # evcxr builds with --target <host triple>


def log(msg: str) -> None:
    # The kernel's stderr goes to the Jupyter server's log, not into the notebook.
    print(f"evcxr_kernel: {msg}", file=sys.stderr, flush=True)


def base_dir() -> Path:
    return Path(os.environ.get("GRADVIZ_EVCXR_DIR") or REPO / "target" / "evcxr")


def try_lock(path: Path) -> int | None:
    """An fd holding an exclusive flock on `path`, or None if someone else holds it."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return fd
    except BlockingIOError:
        os.close(fd)
        return None


def cargo_locks(slot: Path) -> list[Path]:
    """cargo's build-directory locks of a slot (host and target profile directories)."""
    target = slot / "target"
    return [target / "debug" / ".cargo-lock"] + sorted(target.glob(f"{TARGET_TRIPLE_GLOB}/debug/.cargo-lock"))


def is_warm(slot: Path) -> bool:
    return (slot / "target").is_dir() and (slot / "Cargo.lock").is_file()


def gradviz_sources() -> float:
    """The newest mtime among the files gradviz is compiled from."""
    files = [REPO / "Cargo.toml", REPO / "build.rs"]
    for d in ("src", "assets"):
        files += [p for p in (REPO / d).rglob("*") if p.is_file()]
    return max((p.stat().st_mtime for p in files if p.exists()), default=0.0)


def is_fresh(slot: Path, sources: float) -> bool:
    """Whether the slot holds gradviz compiled from the current sources."""
    rlibs = list(slot.glob(f"target/{TARGET_TRIPLE_GLOB}/debug/deps/libgradviz-*.rlib"))
    return bool(rlibs) and max(p.stat().st_mtime for p in rlibs) >= sources


def last_used(slot: Path) -> float:
    """When a kernel last compiled a cell there (evcxr rewrites src/lib.rs each time)."""
    return max((p.stat().st_mtime for p in [slot / "src" / "lib.rs", slot / "Cargo.lock"] if p.exists()),
               default=0.0)


def adopt_old_layout(base: Path) -> None:
    """Moves a build directory of the one-kernel layout (base/target, base/Cargo.lock, …)
    into slot 0, so that it stays warm."""
    slot = base / "0"
    if (base / "target").is_dir() and not slot.exists():
        slot.mkdir()
        for name in ("target", "Cargo.lock", "Cargo.toml", "src", ".cargo"):
            if (base / name).exists():
                os.rename(base / name, slot / name)
        log(f"moved the build directory {base} into {slot}")


def claim_slot(base: Path) -> tuple[Path, int]:
    """The first free slot, locked; creates a new one if all are busy."""
    base.mkdir(parents=True, exist_ok=True)
    claim = os.open(base / CLAIM_LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(claim, fcntl.LOCK_EX)  # launchers choose one at a time (milliseconds)
        adopt_old_layout(base)
        n = 0
        while True:
            slot = base / str(n)
            slot.mkdir(exist_ok=True)
            fd = try_lock(slot / KERNEL_LOCK)
            if fd is not None:
                return slot, fd
            n += 1
    finally:
        os.close(claim)


def copy_slot(src: Path, dst: Path) -> None:
    """Copies the build state of `src` (target/, Cargo.lock) into `dst`, atomically."""
    tmp = dst / "target.partial"
    shutil.rmtree(tmp, ignore_errors=True)
    t0 = time.monotonic()
    # cp -a keeps mtimes, which cargo's freshness checks compare; reflink where the
    # file system can (btrfs, xfs), a plain copy elsewhere.
    subprocess.run(["cp", "-a", "--reflink=auto", str(src / "target"), str(tmp)], check=True)
    shutil.copy2(src / "Cargo.lock", dst / "Cargo.lock")
    shutil.rmtree(dst / "target", ignore_errors=True)
    os.rename(tmp, dst / "target")
    log(f"seeded {dst} from {src} in {time.monotonic() - t0:.1f}s")


def seed(slot: Path, base: Path) -> None:
    """Fills `slot` from the best other slot: one with gradviz compiled from the current
    sources, else the most recently used; a slot that is warm already is only replaced by a
    fresh one (a stale copy would not save it any work)."""
    newest = gradviz_sources()
    sources = sorted((s for s in base.iterdir() if s.is_dir() and s != slot and is_warm(s)),
                     key=lambda s: (is_fresh(s, newest), last_used(s)), reverse=True)
    if is_warm(slot):
        sources = [s for s in sources if is_fresh(s, newest)]
    if not sources:
        if not is_warm(slot):
            log(f"no warm build directory to copy: {slot} starts cold")
        return
    for src in sources:  # a slot no kernel holds can be copied at once
        fd = try_lock(src / KERNEL_LOCK)
        if fd is not None:
            try:
                copy_slot(src, slot)
            finally:
                os.close(fd)
            return
    src = sources[0]  # all busy: copy between two of its kernel's builds
    log(f"waiting for the build in {src} to finish, then copying it")
    fds = []
    try:
        for lock in cargo_locks(src):
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
            fds.append(fd)
            fcntl.flock(fd, fcntl.LOCK_EX)
        copy_slot(src, slot)
    finally:
        for fd in fds:
            os.close(fd)


def tidy(slot: Path) -> None:
    """Removes the compiled cells of earlier kernels: evcxr numbers them from 1 in every
    kernel and overwrites them one by one, but leaves those of a longer earlier session."""
    for so in slot.glob(f"target/{TARGET_TRIPLE_GLOB}/debug/libcode_*.so"):
        so.unlink(missing_ok=True)


def main() -> int:
    if len(sys.argv) < 2:
        print("usage: evcxr_kernel.py EVCXR_JUPYTER [ARGS...]", file=sys.stderr)
        return 2
    evcxr, args = sys.argv[1], sys.argv[2:]
    base = base_dir()
    slot, fd = claim_slot(base)
    if not is_warm(slot) or not is_fresh(slot, gradviz_sources()):
        seed(slot, base)
    tidy(slot)
    log(f"kernel {os.getpid()} builds in {slot}")
    os.set_inheritable(fd, True)  # the lock lives as long as evcxr_jupyter and its children
    env = dict(os.environ, EVCXR_TMPDIR=str(slot))
    os.execve(evcxr, [evcxr, *args], env)
    return 1  # not reached


if __name__ == "__main__":
    sys.exit(main())
