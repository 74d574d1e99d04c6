#!/usr/bin/env python3
"""Execute the gradviz notebooks headless with the project's `rust` (evcxr) kernel.

Run with the venv interpreter (scripts/setup.sh creates it):

    .venv/bin/python scripts/run_notebooks.py            # -> report/
    .venv/bin/python scripts/run_notebooks.py --check    # -> target/notebook-check/
    .venv/bin/python scripts/run_notebooks.py --only 01_saliency
    .venv/bin/python scripts/run_notebooks.py --check --jobs 2   # two kernels at a time

Outputs (under report/ or target/notebook-check/):
    executed/NAME.ipynb     executed notebook
    html/NAME.html          one HTML page per notebook
    gradviz-report.html     all notebooks in order, with a table of contents
    gradviz-report.pdf      (report mode only, needs `chromium`; GRADVIZ_PDF=1 make setup)

Exit status: 0 all notebooks ran without an error output; 1 a cell failed
(notebook and cell are named); 2 set-up problem (no notebooks, no kernel).

Answers (the convention every notebook follows)
-----------------------------------------------
A markdown cell whose text starts with

    **Answer (Q1):** <the bottom line, one short paragraph>

    <evidence and details: further paragraphs, lists, ...>

answers question Q1 of the assignment. The IDs and questions are listed in QUESTIONS below, in
the assignment's order (Q1 saliency maps ... Q7 hidden features; Q1b and the like are
sub-questions). The report (gradviz-report.html/.pdf) opens with a one-page summary: under
each question, the *first paragraph* of every answer cell (in notebook order), with a link to
the answer in the body. So put the bottom line into the first paragraph and keep it to a few
sentences; cite the run's printed checks (the lines starting with ✔, written by
`gradviz::claim!`), never numbers the run does not print. An answer with an ID missing from
QUESTIONS is listed after the known ones under its ID. tests/notebooks/test_report.py checks
that the summary lists every answer cell.

    .venv/bin/python scripts/run_notebooks.py --from-executed target/notebook-check/executed

re-exports the HTML/PDF from already executed notebooks (no kernel), e.g. to check the layout.

Print layout (cell tags)
------------------------
The PDF keeps to PDF_MAX_PAGES pages with two cell tags (Jupyter's cell tags, metadata "tags");
the HTML report shows everything:

    report:fold-code   the PDF shows the cell's output but not its code, in its place one line
                       naming the notebook and cell where the code is
    report:html-only   the PDF leaves the cell out (code and output); e.g. a full table or a
                       figure of every unit beside a printed selection

The note of a folded cell lists the conditions of the cell's `claim!` statements, so that what
each printed check (✔ and its message) tested stays in print. A cell with a `claim!` and an answer cell
are never `report:html-only` (tests/notebooks/test_report.py checks this).
"""

from __future__ import annotations

import argparse
import copy
import html
import multiprocessing
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
KERNEL = "rust"
DEFAULT_TIMEOUT = int(os.environ.get("GRADVIZ_CELL_TIMEOUT", "3600"))
DEFAULT_JOBS = int(os.environ.get("GRADVIZ_NOTEBOOK_JOBS", "1"))

os.environ.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")

try:
    import nbformat
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel
    from jupyter_client.manager import KernelManager
    from jupyter_core.paths import jupyter_path
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError
    from nbconvert import HTMLExporter
except ImportError as e:  # pragma: no cover
    sys.exit(
        f"run_notebooks: missing Python package ({e}).\n"
        "Run `make setup` and use .venv/bin/python to run this script."
    )


# The assignment's questions, in its order (see "Answers" above).
QUESTIONS: list[tuple[str, str]] = [
    ("Q1", "Saliency maps: do they make sense, and how would you interpret them "
           "(taking the sign of the gradient into account)?"),
    ("Q1b", "Saliency of a logit or of its softmax probability: what is the difference?"),
    ("Q2", "The optimal input for a class: does it look natural?"),
    ("Q3", "How does the input change when applying many steps of optimization?"),
    ("Q4", "How do the optimal inputs differ when initializing with random noise instead of "
           "real examples?"),
    ("Q5", "Can you see differences between optimizing a logit or a softmax probability?"),
    ("Q6", "Bonus: which regularization makes the optimal input more natural-looking?"),
    ("Q7", "Bonus: what do hidden features of the network respond to?"),
]

ANSWER_RE = re.compile(r"^\s*\*\*Answer \(([A-Za-z0-9]+)\):\*\*")

# See "Print layout" above.
FOLD_CODE = "report:fold-code"
HTML_ONLY = "report:html-only"
PDF_MAX_PAGES = 30


def say(msg: str) -> None:
    print(msg, flush=True)


class CellPanicked(Exception):
    """evcxr reports a Rust panic as a successful execution (status "ok"),
    with the panic message on stderr only; we treat it as a failure."""


PANIC_RE = re.compile(r"^thread '[^']*'(?: \(\d+\))? panicked at (.*)$", re.M)

# evcxr 0.22 handles an error returned by `?` in a cell by printing it to stderr and replying
# "ok" (the cell stops, the kernel goes on); that stderr may even arrive after the reply, i.e.
# be lost. A false `gradviz::claim!` therefore also prints this line on stdout (src/report.rs),
# which evcxr forwards before it replies, so the run can fail on it.
CLAIM_RE = re.compile(r"^(?:✘ )?claim does not hold in this run: .*$", re.M)


def panic_message(cell) -> str | None:
    """The panic text if the cell's stderr shows a Rust panic, or the claim if it shows a
    false `claim!` (see CLAIM_RE)."""
    if "raises-exception" in cell.get("metadata", {}).get("tags", []):
        return None
    streams = "".join(o.get("text", "") for o in cell.get("outputs", [])
                      if o.get("output_type") == "stream")
    claim = CLAIM_RE.search(streams)
    if claim:
        return claim.group(0)
    err = "".join(o.get("text", "") for o in cell.get("outputs", [])
                  if o.get("output_type") == "stream" and o.get("name") == "stderr")
    m = PANIC_RE.search(err)
    if not m:
        return None
    tail = err[m.start():].split("stack backtrace:")[0].strip()
    return tail[:2000]


# --------------------------------------------------------------------------
# execution
# --------------------------------------------------------------------------
def first_line(src: str, n: int = 70) -> str:
    for line in src.splitlines():
        line = line.strip()
        if line:
            return line if len(line) <= n else line[: n - 3] + "..."
    return "<empty>"


def error_text(output) -> str:
    tb = output.get("traceback") or []
    text = "\n".join(tb) if tb else f"{output.get('ename', '')}: {output.get('evalue', '')}"
    return re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", text)  # strip ANSI colours


VENV_KERNELS = REPO / ".venv" / "share" / "jupyter" / "kernels"


def kernel_spec_manager() -> KernelSpecManager:
    """Kernelspecs from .venv/share/jupyter/kernels first (so that a user-level
    `rust` kernel from `evcxr_jupyter --install` cannot shadow ours); an
    exported JUPYTER_PATH still comes before it.

    We deliberately do not export JUPYTER_PATH to the kernel: evcxr_jupyter
    treats $JUPYTER_PATH/kernels/rust as "its" install and rewrites the
    kernel.json there (dropping our env) when its version.txt differs."""
    dirs = [d for d in jupyter_path("kernels") if os.environ.get("JUPYTER_PATH")
            and any(d.startswith(p) for p in os.environ["JUPYTER_PATH"].split(os.pathsep) if p)]
    dirs.append(str(VENV_KERNELS))
    dirs += [d for d in jupyter_path("kernels") if d not in dirs]
    return KernelSpecManager(kernel_dirs=dirs)


def check_kernel() -> None:
    try:
        spec = kernel_spec_manager().get_kernel_spec(KERNEL)
    except NoSuchKernel:
        sys.exit(
            f"run_notebooks: Jupyter kernel '{KERNEL}' not found (No such kernel).\n"
            "Run `make setup` (writes .venv/share/jupyter/kernels/rust/kernel.json)."
        )
    # argv: python, scripts/evcxr_kernel.py, evcxr_jupyter, --control_file, {connection_file}
    for exe in (a for a in spec.argv if not a.startswith("-") and "{" not in a):
        if not (os.path.isabs(exe) and os.path.exists(exe)) and not shutil.which(exe):
            sys.exit(
                f"run_notebooks: kernel '{KERNEL}' runs {exe}, which does not exist.\n"
                "Run `make setup` (installs evcxr_jupyter with cargo install, writes kernel.json)."
            )
    env = spec.env or {}
    if "GRADVIZ_EVCXR_DIR" not in env or "LD_LIBRARY_PATH" not in env:
        sys.exit(
            f"run_notebooks: {spec.resource_dir}/kernel.json has no gradviz env "
            "(GRADVIZ_EVCXR_DIR, LD_LIBRARY_PATH, ...): it was probably rewritten by "
            "`evcxr_jupyter --install`.\nRun `make setup` to regenerate it."
        )
    say(f"run_notebooks: kernel '{KERNEL}' -> {' '.join(spec.argv[:3])} ({spec.resource_dir})")


def execute(nb_path: Path, timeout: int, startup_timeout: int, nb=None, cwd: Path | None = None):
    """Execute one notebook (read from `nb_path` unless given as `nb`) with the kernel's
    working directory `cwd` (default: the notebook's directory); returns (notebook,
    failure message or None)."""
    if nb is None:
        nb = nbformat.read(nb_path, as_version=4)
    name = nb_path.stem
    code_idx = [i for i, c in enumerate(nb.cells) if c.cell_type == "code"]
    total = len(code_idx)
    ordinal = {cell_i: k + 1 for k, cell_i in enumerate(code_idx)}
    t_nb = time.monotonic()
    t_cell = [t_nb]

    def on_cell_start(cell, cell_index):
        if cell.cell_type != "code":
            return
        t_cell[0] = time.monotonic()
        say(f"  [{name}] cell {ordinal.get(cell_index, '?')}/{total} running: "
            f"{first_line(cell.source)}")

    def on_cell_executed(cell, cell_index, execute_reply):
        status = execute_reply.get("content", {}).get("status", "?")
        problem = panic_message(cell)
        if status == "ok" and problem:
            status = "CLAIM FAILED" if CLAIM_RE.match(problem) else "PANICKED"
        say(f"  [{name}] cell {ordinal.get(cell_index, '?')}/{total} {status} "
            f"in {time.monotonic() - t_cell[0]:.1f}s (total {time.monotonic() - t_nb:.0f}s)")
        if status in ("PANICKED", "CLAIM FAILED"):
            raise CellPanicked(problem)

    km = KernelManager(kernel_name=KERNEL, kernel_spec_manager=kernel_spec_manager())
    client = NotebookClient(
        nb,
        km=km,
        kernel_name=KERNEL,
        timeout=timeout,
        startup_timeout=startup_timeout,
        allow_errors=False,
        record_timing=True,
        resources={"metadata": {"path": str(cwd or nb_path.parent)}},
        on_cell_start=on_cell_start,
        on_cell_executed=on_cell_executed,
    )
    say(f"[{name}] executing {nb_path.name}: {total} code cells (cell timeout {timeout}s)")
    failure = None
    try:
        # We pass our own KernelManager, so nbclient would not shut the kernel
        # down by itself: cleanup_kc=True makes it do so.
        client.execute(cleanup_kc=True)
    except CellTimeoutError as e:
        failure = f"cell timed out after {timeout}s: {e}"
    except DeadKernelError as e:
        failure = f"kernel died: {e}"
    except CellExecutionError as e:
        failure = str(e)
    except CellPanicked as e:
        failure = str(e) if CLAIM_RE.match(str(e)) else f"Rust panic: {e}"
    except Exception as e:  # kernel start-up problems etc.
        failure = f"{type(e).__name__}: {e}"
    finally:
        try:  # never leave a kernel (and its compiler children) behind
            if km.has_kernel and km.is_alive():
                km.shutdown_kernel(now=True)
        except Exception:
            pass

    # Error outputs not turned into exceptions (e.g. cells tagged
    # raises-exception are allowed to error; anything else is a failure).
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        tags = cell.get("metadata", {}).get("tags", [])
        where = (f"notebook {nb_path.name}, code cell {ordinal[i]}/{total} "
                 f"(cell index {i}, `{first_line(cell.source)}`)")
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error" and "raises-exception" not in tags:
                return nb, f"{where} failed:\n{error_text(out)}"
        panic = panic_message(cell)
        if panic:
            what = "failed" if CLAIM_RE.match(panic) else "panicked"
            return nb, f"{where} {what}:\n{panic}"
    if failure is not None:
        # Exception without an error output (timeout, dead kernel, start-up):
        # name the cell that was running, i.e. the first code cell without
        # an execution_count.
        where = "before the first cell (kernel start-up)"
        for i in code_idx:
            if nb.cells[i].get("execution_count") is None:
                where = f"code cell {ordinal[i]}/{total} (cell index {i}, " \
                        f"`{first_line(nb.cells[i].source)}`)"
                break
        return nb, f"notebook {nb_path.name}, {where} failed:\n{failure}"
    say(f"[{name}] ok in {time.monotonic() - t_nb:.1f}s")
    return nb, None


# --------------------------------------------------------------------------
# output
# --------------------------------------------------------------------------
_UMASK = os.umask(0o022)
os.umask(_UMASK)


def atomic_write(path: Path, data: str | bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix="." + path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp creates 0600
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


LOCAL_MATHJAX = Path("/usr/share/javascript/mathjax/MathJax.js")


def make_exporter(mathjax_url: str | None = None) -> HTMLExporter:
    exp = HTMLExporter(template_name="lab")
    exp.embed_images = True  # markdown images referenced by path -> data URIs
    if mathjax_url:
        exp.mathjax_url = mathjax_url
    return exp


def export_html(nb, src_dir: Path, title: str, mathjax_url: str | None = None) -> str:
    exp = make_exporter(mathjax_url)
    body, _ = exp.from_notebook_node(
        nb, resources={"metadata": {"path": str(src_dir), "name": title}}
    )
    return with_report_css(body)


def nb_title(nb, fallback: str) -> str:
    for c in nb.cells:
        if c.cell_type == "markdown":
            m = re.search(r"^#\s+(.+)$", c.source, re.M)
            if m:
                return m.group(1).strip()
    return fallback


def answers(executed: list[tuple[str, object]]) -> list[tuple[str, str, int, str]]:
    """Every answer cell as (question ID, notebook name, cell index, first paragraph without
    the `**Answer (ID):**` label), in notebook order."""
    found = []
    for name, nb in executed:
        for i, c in enumerate(nb.cells):
            m = ANSWER_RE.match(c.source) if c.cell_type == "markdown" else None
            if m:
                first = re.split(r"\n\s*\n", c.source.strip(), maxsplit=1)[0]
                first = first[m.end():].strip()
                # A restated question in italics opens many answers: the summary has it already.
                first = re.sub(r"^\*[^*]+\?\*\s*", "", first)
                found.append((m.group(1), name, i, first))
    return found


def answer_anchor(name: str, index: int) -> str:
    return f"answer-{name}-{index}"


def summary_markdown(executed: list[tuple[str, object]]) -> str:
    """The report's first page: each question with the first paragraph of its answers, in the
    order of QUESTIONS (unknown IDs last), each linking to the answer in the body."""
    found = answers(executed)
    known = [q for q, _ in QUESTIONS]
    order = known + sorted({a[0] for a in found} - set(known))
    text = dict(QUESTIONS)
    lines = ["## Answers at a glance", ""]
    for q in order:
        mine = [a for a in found if a[0] == q]
        if not mine:
            continue
        lines += [f"**{q} · {text.get(q, 'further question')}**", ""]
        for _, name, i, first in mine:
            lines += [f"{first} [→ `{name}`](#{answer_anchor(name, i)})", ""]
    if not found:
        lines += ["*(no answer cells found)*", ""]
    return "\n".join(lines)


def combined_notebook(executed: list[tuple[str, object]]):
    """One notebook: the summary of the answers and the contents on the first page, then
    every notebook behind an anchored header, each answer cell behind its anchor."""
    first = executed[0][1]
    out = nbformat.v4.new_notebook(metadata=copy.deepcopy(first.metadata))
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    head = ["# gradviz report", "",
            f"Generated {stamp} by `scripts/run_notebooks.py`: every number is printed by the "
            "notebook cells below, and every finding is a check (✔) that this run verified.", ""]
    # one line, so that the summary and the contents fit on the first page
    toc = ["**Contents:** " + " · ".join(
        f"[{html.escape(nb_title(nb, name))}](#nb-{name})" for name, nb in executed)]
    out.cells.append(nbformat.v4.new_markdown_cell(
        "\n".join(head) + '\n<div class="gv-summary">\n\n' + summary_markdown(executed)
        + "\n\n</div>\n\n" + "\n".join(toc)))
    for k, (name, nb) in enumerate(executed):
        # the summary has a page of its own; the notebooks follow on without blank page ends
        brk = '<div style="page-break-before: always"></div>\n' if k == 0 else ""
        header = f'{brk}<a id="nb-{name}"></a>\n\n*Notebook `{name}.ipynb`*'
        out.cells.append(nbformat.v4.new_markdown_cell(header))
        for i, c in enumerate(nb.cells):
            c = copy.deepcopy(c)
            if "id" in c:  # cell ids are unique per notebook only
                c["id"] = f"{name}-{c['id']}"[:64]
            if c.cell_type == "markdown" and ANSWER_RE.match(c.source):
                c.source = f'<a id="{answer_anchor(name, i)}"></a>\n\n' + c.source
            note = folded_note(name, nb, i)
            if note:
                out.cells.append(note)
            out.cells.append(without_progress(c))
    return out


# An intermediate progress report of gradviz::progress (`label: 3/10 (30%) after 4.0 s, about
# 9.3 s left`); the closing line (`label: 10/10 in 13.1 s`) stays in the report.
PROGRESS_RE = re.compile(r"^[^\n]*: \d+/\d+ \(\d+%\) after [^\n]*$\n?", re.M)


def without_progress(cell):
    """`cell` (a copy) without the intermediate progress lines in its text outputs."""
    if cell.cell_type != "code":
        return cell
    for out in cell.outputs:
        if out.get("output_type") == "stream":
            out["text"] = PROGRESS_RE.sub("", out.get("text", ""))
    cell.outputs = [o for o in cell.outputs if o.get("output_type") != "stream" or o.get("text")]
    return cell


def print_tags(cell) -> set[str]:
    return set(cell.get("metadata", {}).get("tags", [])) & {FOLD_CODE, HTML_ONLY}


def folded_note(name: str, nb, index: int):
    """The print-only text that stands in for the code of a `report:fold-code` cell (where the
    code is, and the `claim!` statements it checks), or None."""
    c = nb.cells[index]
    if c.cell_type != "code" or FOLD_CODE not in print_tags(c) or HTML_ONLY in print_tags(c):
        return None
    number = sum(1 for x in nb.cells[: index + 1] if x.cell_type == "code")
    lines = len(c.source.strip().splitlines())
    text = (f'<div class="gv-folded">code cell {number} of <code>{name}.ipynb</code> '
            f"({lines} lines: <code>{html.escape(first_line(c.source, 60))}</code>) "
            "is in the HTML report and the notebook")
    checks = claim_conditions(c.source)
    if checks:
        text += "; the conditions of its checks, in order:</div>\n" + '<pre class="gv-folded gv-claims">' \
            + html.escape("\n".join(f"claim!({k}, …)" for k in checks)) + "</pre>"
    else:
        text += "</div>"
    note = nbformat.v4.new_markdown_cell(text)
    note.metadata["tags"] = ["report:note"]
    return note


def claim_conditions(source: str) -> list[str]:
    """The condition (first argument) of every `claim!(…)` in Rust `source`, in order, on one
    line each (string literals are skipped when matching brackets and commas)."""
    found = []
    for m in re.finditer(r"\bclaim!\(", source):
        depth, i, end = 1, m.end(), None
        while i < len(source) and end is None:
            ch = source[i]
            if ch == '"':
                i += 1
                while i < len(source) and source[i] != '"':
                    i += 2 if source[i] == "\\" else 1
            elif ch in "([{":
                depth += 1
            elif ch in ")]}" or (ch == "," and depth == 1):
                depth -= ch != ","
                if depth == 0 or ch == ",":
                    end = i
            i += 1
        if end is not None:
            found.append(" ".join(source[m.end():end].split()))
    return found


# Print layout: A4, text 9 pt, code and printed output 7 pt; code wraps at spaces (long tokens
# anywhere) instead of being cut at the margin; printed tables (cell output) and markdown tables
# wrap only between words, never inside a number; prompts are dropped in print to give the
# page's width to the content; figures shrink to the width (and to one page's height: a taller
# one would be sliced); the cell tags of "Print layout" (docstring) fold code and leave cells out.
REPORT_CSS = """
<style>
@page { size: A4; margin: 9mm 10mm; }
.jp-InputArea-editor pre, .highlight pre, .jp-CodeMirrorEditor pre {
  white-space: pre-wrap !important; overflow-wrap: anywhere; word-break: normal; }
.jp-OutputArea-output pre { white-space: pre-wrap; overflow-wrap: normal; word-break: keep-all;
  font-size: 7pt; line-height: 1.2; }
.jp-RenderedHTMLCommon td, .jp-RenderedHTMLCommon th { overflow-wrap: normal; word-break: normal;
  hyphens: none; }
.jp-RenderedImage img, .jp-RenderedHTMLCommon img { max-width: 100%; height: auto; }
.gv-summary { font-size: 0.95em; line-height: 1.3; }
.gv-summary p { margin: 0.2em 0 0.4em 0; }
@media print {
  .jp-InputPrompt, .jp-OutputPrompt { display: none !important; }
  .jp-Cell { padding: 2px 0 !important; }
  :root { --jp-content-font-size1: 9pt !important; --jp-code-font-size: 7pt !important;
    --jp-content-line-height: 1.4 !important; }
  .jp-InputArea-editor pre, .highlight pre { font-size: 7pt; line-height: 1.18; }
  .jp-InputArea-editor, .jp-OutputArea-output pre { padding: 1px 4px !important; }
  .jp-RenderedHTMLCommon p, .jp-RenderedHTMLCommon li { margin-top: 0.2em; margin-bottom: 0.35em; }
  .jp-RenderedImage { break-inside: avoid; }
  /* a figure taller than a page would be sliced across two: shrink it to one */
  .jp-RenderedImage img { max-height: 255mm; width: auto; object-fit: contain; }
  h1, h2, h3 { break-after: avoid; }
  .jp-RenderedHTMLCommon h1 { font-size: 1.55em; margin: 0.3em 0 0.3em 0; }
  .jp-RenderedHTMLCommon h2 { font-size: 1.3em; margin: 0.7em 0 0.25em 0; }
  .jp-RenderedHTMLCommon h3 { font-size: 1.1em; margin: 0.5em 0 0.2em 0; }
  .jp-OutputArea-child, .jp-OutputArea-output { margin: 0 !important; }
  .celltag_report\:html-only { display: none !important; }
  .celltag_report\:fold-code .jp-Cell-inputWrapper, .celltag_report\:fold-code .jp-InputArea {
    display: none !important; }
  .gv-folded { display: block !important; font-size: 7pt; color: #666; font-style: italic;
    margin: 0 !important; }
  .celltag_report\:note { padding: 0 !important; }
  pre.gv-claims { font-size: 7pt !important; font-style: normal; line-height: 1.2;
    margin: 0 0 2px 10px !important; padding: 0 !important; background: none !important; }
}
.gv-folded { display: none; }
</style>
"""


def with_report_css(page: str) -> str:
    return page.replace("</head>", REPORT_CSS + "</head>", 1) if "</head>" in page else REPORT_CSS + page


def find_chromium() -> str | None:
    for exe in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        p = shutil.which(exe)
        if p:
            return p
    return None


def print_pdf(html_path: Path, pdf_path: Path) -> bool:
    exe = find_chromium()
    if exe is None:
        say("run_notebooks: note: chromium not installed, skipping the PDF "
            "(GRADVIZ_PDF=1 make setup installs it)")
        return False
    with tempfile.TemporaryDirectory(prefix="gradviz-chromium-") as prof:
        tmp_pdf = pdf_path.with_name("." + pdf_path.name + ".tmp")
        cmd = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
               "--no-first-run", "--disable-background-networking",
               "--disable-component-update", "--disable-sync", "--disable-extensions",
               "--disable-dev-shm-usage", f"--user-data-dir={prof}",
               "--no-pdf-header-footer", "--virtual-time-budget=20000",
               f"--print-to-pdf={tmp_pdf}", html_path.resolve().as_uri()]
        say(f"run_notebooks: printing PDF with {exe}")
        try:
            r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               stdin=subprocess.DEVNULL, timeout=300, text=True)
        except subprocess.TimeoutExpired:
            say("run_notebooks: WARNING: chromium timed out, no PDF")
            return False
        if r.returncode != 0 or not tmp_pdf.exists() or tmp_pdf.stat().st_size == 0:
            say(f"run_notebooks: WARNING: chromium failed (rc={r.returncode}), no PDF:\n"
                + r.stdout[-2000:])
            return False
        os.replace(tmp_pdf, pdf_path)
    pages = pdf_pages(pdf_path)
    say(f"run_notebooks: wrote {rel(pdf_path)} ({pages} pages)")
    if pages > PDF_MAX_PAGES:
        say(f"run_notebooks: WARNING: the PDF has {pages} pages, more than {PDF_MAX_PAGES}: fold or "
            "leave out more in print (see 'Print layout' in this script's docstring)")
    return True


def pdf_pages(path: Path) -> int:
    """The number of pages of a PDF as Chromium writes it (one uncompressed `/Type /Page`
    dictionary per page)."""
    return len(re.findall(rb"/Type\s*/Page(?![A-Za-z])", path.read_bytes()))


def rel(p: Path) -> str:
    try:
        return str(p.relative_to(REPO))
    except ValueError:
        return str(p)


# --------------------------------------------------------------------------
# several notebooks at once
# --------------------------------------------------------------------------
def warm_up(notebook: Path, timeout: int, startup_timeout: int) -> None:
    """Runs the first code cell of `notebook` (the `:dep` cell) in a kernel of its own, so
    that the build directory the parallel kernels copy is up to date: they then recompile
    nothing (a cold or stale one would be compiled by each of them)."""
    nb = nbformat.read(notebook, as_version=4)
    first = next((c for c in nb.cells if c.cell_type == "code"), None)
    if first is None or not first.source.lstrip().startswith(":dep"):
        return
    warm = nbformat.v4.new_notebook(metadata=nb.metadata, cells=[copy.deepcopy(first)])
    say(f"run_notebooks: warming the build directory with `{first_line(first.source)}`")
    _, failure = execute(notebook.with_name("warm-up.ipynb"), timeout, startup_timeout,
                         nb=warm, cwd=notebook.parent)
    if failure:
        say(f"run_notebooks: WARNING: warm-up failed, the notebooks will each build: {failure}")


def execute_all(notebooks: list[Path], args):
    """Yields (path, executed notebook, failure) in the order of `notebooks`, running up to
    `args.jobs` of them at the same time (each kernel builds in a slot of its own, see
    scripts/evcxr_kernel.py)."""
    jobs = max(1, min(args.jobs, len(notebooks)))
    if jobs == 1:
        for p in notebooks:
            yield (p, *execute(p, args.timeout, args.startup_timeout))
        return
    warm_up(notebooks[0], args.timeout, args.startup_timeout)
    say(f"run_notebooks: {len(notebooks)} notebooks, {jobs} at a time")
    # Processes, not threads: each kernel client gets its own event loop and ZMQ context.
    with ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = [pool.submit(execute, p, args.timeout, args.startup_timeout) for p in notebooks]
        try:
            for p, f in zip(notebooks, futures):
                yield (p, *f.result())
        finally:
            for f in futures:
                f.cancel()


def from_executed(notebooks: list[Path], directory: Path):
    """Yields (path, executed notebook read from `directory`, failure) without a kernel."""
    for p in notebooks:
        src = directory / p.name
        if not src.exists():
            yield p, nbformat.v4.new_notebook(), f"notebook {p.name}: no executed copy in {directory}"
        else:
            yield p, nbformat.read(src, as_version=4), None


# --------------------------------------------------------------------------
def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--check", action="store_true",
                    help="test mode: write to target/notebook-check/, no PDF")
    ap.add_argument("--only", metavar="NAME", action="append",
                    help="run only this notebook (stem or file name); repeatable")
    ap.add_argument("--timeout", type=int, default=DEFAULT_TIMEOUT,
                    help=f"per-cell timeout in seconds (default {DEFAULT_TIMEOUT}, "
                         "env GRADVIZ_CELL_TIMEOUT)")
    ap.add_argument("--startup-timeout", type=int, default=180,
                    help="kernel start-up timeout in seconds")
    ap.add_argument("--fail-fast", action="store_true",
                    help="stop at the first failing notebook")
    ap.add_argument("--jobs", "-j", type=int, default=DEFAULT_JOBS,
                    help=f"notebooks executed at the same time, each by its own kernel "
                         f"(default {DEFAULT_JOBS}, env GRADVIZ_NOTEBOOK_JOBS)")
    ap.add_argument("--no-pdf", action="store_true", help="do not print the PDF")
    ap.add_argument("--notebooks-dir", type=Path, default=REPO / "notebooks",
                    help=argparse.SUPPRESS)
    ap.add_argument("--out-dir", type=Path, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--from-executed", type=Path, metavar="DIR", default=None,
                    help="do not execute: export the report from the executed notebooks in DIR")
    args = ap.parse_args()

    nb_dir = args.notebooks_dir.resolve()
    out_dir = (args.out_dir or (REPO / ("target/notebook-check" if args.check else "report"))).resolve()

    notebooks = sorted(p for p in nb_dir.glob("*.ipynb") if not p.name.startswith("."))
    if not notebooks:
        say(f"run_notebooks: ERROR: no notebooks (*.ipynb) found in {nb_dir}")
        return 2
    if args.only:
        wanted = {o[:-6] if o.endswith(".ipynb") else o for o in args.only}
        wanted = {Path(w).name for w in wanted}
        notebooks = [p for p in notebooks if p.stem in wanted]
        missing = wanted - {p.stem for p in notebooks}
        if missing:
            say(f"run_notebooks: ERROR: no such notebook(s) in {nb_dir}: {', '.join(sorted(missing))}")
            return 2

    if args.from_executed is None:
        check_kernel()
    say(f"run_notebooks: {len(notebooks)} notebook(s) from {rel(nb_dir)} -> {rel(out_dir)}")

    t0 = time.monotonic()
    executed: list[tuple[str, object]] = []
    failures: list[str] = []
    runs = execute_all(notebooks, args) if args.from_executed is None else from_executed(notebooks, args.from_executed)
    for nb_path, nb, failure in runs:
        name = nb_path.stem
        # Always keep the executed notebook (also a failed one: it shows the error).
        atomic_write(out_dir / "executed" / f"{name}.ipynb", nbformat.writes(nb))
        try:
            atomic_write(out_dir / "html" / f"{name}.html", export_html(nb, nb_path.parent, name))
        except Exception as e:
            failure = failure or f"notebook {nb_path.name}: HTML export failed: {e}"
        if failure:
            say(f"[{name}] FAILED\n{failure}")
            failures.append(failure)
            if args.fail_fast:
                break
        else:
            executed.append((name, nb))

    if not failures and not args.only:
        report_html = out_dir / "gradviz-report.html"
        atomic_write(report_html, export_html(combined_notebook(executed), nb_dir, "gradviz report"))
        say(f"run_notebooks: wrote {rel(report_html)}")
        if not args.check and not args.no_pdf:
            # The HTML loads MathJax from a CDN (fine in a browser); for the PDF
            # use Debian's libjs-mathjax when present, as there is no network.
            src = report_html
            if LOCAL_MATHJAX.exists():
                src = out_dir / ".gradviz-report-print.html"
                atomic_write(src, export_html(combined_notebook(executed), nb_dir, "gradviz report",
                                              LOCAL_MATHJAX.as_uri() + "?config=TeX-AMS_CHTML-full,Safe"))
            try:
                print_pdf(src, out_dir / "gradviz-report.pdf")
            finally:
                if src != report_html:
                    src.unlink(missing_ok=True)

    elapsed = time.monotonic() - t0
    ok = len(executed)
    say(f"run_notebooks: all done in {elapsed:.0f}s")
    say(f"notebooks: {ok} passed, {len(failures)} failed")
    if failures:
        say("run_notebooks: FAILED notebooks:")
        for f in failures:
            say("  - " + f.splitlines()[0])
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
