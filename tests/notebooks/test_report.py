"""The report's rules, checked on the notebooks (`make test` runs these with the notebook tests):

    .venv/bin/python -m unittest tests/notebooks/test_report.py -v

* a false `claim!` fails the notebook run, and the failure names the claim (through the real
  kernel and run_notebooks.execute, as `make test` and `make report` run the notebooks);
* no notebook uses words of the project's process ("the issue", "the lead", "engineer", ...):
  the report is read by someone who never saw the project's tracker;
* the report's one-page summary lists every answer cell (`**Answer (ID):**`, see the docstring
  of scripts/run_notebooks.py), under its question, in the assignment's order, with a working
  link to the answer.
"""

from __future__ import annotations

import os
import re
import sys
import unittest
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "scripts"))

import nbformat  # noqa: E402

import run_notebooks  # noqa: E402

NOTEBOOKS = REPO / "notebooks"
DEP = ':dep gradviz = { path = ".." }'  # exactly as in the notebooks: same build, no rebuild
TIMEOUT = int(os.environ.get("GRADVIZ_CELL_TIMEOUT", "3600"))

# Words that belong to the project's process, not to the report. "CI" is matched in capitals
# only and not after "%" (a "95% CI" is a confidence interval).
PROCESS_WORDS = [
    re.compile(r"\b(the|this|that|an?) issues?\b", re.I),
    re.compile(r"\bissue\s*#?\d+", re.I),
    re.compile(r"\bthe lead\b", re.I),
    re.compile(r"\bengineers?\b", re.I),
    re.compile(r"\b(ticket|backlog|sprint|TODO|FIXME)\b", re.I),
    re.compile(r"(?<!% )\bCI\b"),
]


def all_notebooks() -> list[tuple[str, object]]:
    return [(p.stem, nbformat.read(p, as_version=4))
            for p in sorted(NOTEBOOKS.glob("*.ipynb")) if not p.name.startswith(".")]


def process_words(text: str) -> list[str]:
    return [m.group(0) for pat in PROCESS_WORDS for m in pat.finditer(text)]


class ProcessWords(unittest.TestCase):
    def test_the_scan_finds_process_words(self):
        self.assertEqual(process_words("the target of the issue is met; CI runs it"),
                         ["the issue", "CI"])
        self.assertEqual(process_words("as engineer report01 and the lead agreed"),
                         ["the lead", "engineer"])
        self.assertEqual(process_words("AUC 0.91 [95% CI], ci(x), circle, leading"), [])

    def test_no_notebook_uses_process_words(self):
        found = [f"{name}.ipynb cell {i}: {w!r}"
                 for name, nb in all_notebooks()
                 for i, c in enumerate(nb.cells)
                 for w in process_words(c.source)]
        self.assertEqual(found, [], "words of the project's process in the report:\n" + "\n".join(found))


class Summary(unittest.TestCase):
    def test_the_summary_lists_every_answer_under_its_question(self):
        executed = all_notebooks()
        found = run_notebooks.answers(executed)
        self.assertTrue(any(a[0] == "Q1" for a in found), "notebook 01 answers Q1")
        summary = run_notebooks.summary_markdown(executed)
        combined = run_notebooks.combined_notebook(executed)
        body = "\n".join(c.source for c in combined.cells[1:])
        order = [q for q, _ in run_notebooks.QUESTIONS]
        last = -1
        for q, name, i, first in found:
            anchor = run_notebooks.answer_anchor(name, i)
            self.assertIn(f"{first} [→ `{name}`](#{anchor})", summary, f"{name} cell {i} ({q})")
            self.assertIn(f'<a id="{anchor}"></a>', body, f"the link target of {name} cell {i}")
            self.assertTrue(first, f"{name} cell {i}: the answer's first paragraph is empty")
            if q in order:
                pos = summary.index(f"**{q} · ")
                self.assertLess(pos, summary.index(f"(#{anchor})"))
        for q in order:
            if f"**{q} · " in summary:
                self.assertGreater(summary.index(f"**{q} · "), last, f"{q} out of order")
                last = summary.index(f"**{q} · ")
        self.assertIs(combined.cells[0].source.count("Answers at a glance"), 1)

    def test_an_answer_is_recognised_only_at_the_start_of_a_markdown_cell(self):
        nb = nbformat.v4.new_notebook()
        nb.cells = [nbformat.v4.new_markdown_cell("**Answer (Q9):** Yes.\n\nDetails."),
                    nbformat.v4.new_markdown_cell("See **Answer (Q1):** above."),
                    nbformat.v4.new_code_cell('// **Answer (Q1):** in code')]
        self.assertEqual(run_notebooks.answers([("x", nb)]), [("Q9", "x", 0, "Yes.")])
        self.assertIn("**Q9 · further question**", run_notebooks.summary_markdown([("x", nb)]))


class Claims(unittest.TestCase):
    def test_a_false_claim_fails_the_notebook_and_names_the_claim(self):
        # evcxr replies "ok" to a cell whose `?` returned an error (at top level or, as here,
        # inside a block): the runner must still fail on it.
        nb = nbformat.v4.new_notebook()
        nb.metadata["kernelspec"] = {"name": "rust", "display_name": "Rust (gradviz)", "language": "rust"}
        nb.cells = [nbformat.v4.new_code_cell(DEP),
                    nbformat.v4.new_code_cell("use gradviz::prelude::*;\n"
                                              "claim!(2 > 1, \"two exceeds one\")?;"),
                    nbformat.v4.new_code_cell("let n = 7;\n"
                                              "{ claim!(n % 2 == 0, \"{n} is even\")?; }"),
                    nbformat.v4.new_code_cell('println!("never reached");')]
        out, failure = run_notebooks.execute(Path("false-claim.ipynb"), TIMEOUT, 600, nb=nb, cwd=NOTEBOOKS)
        self.assertIsNotNone(failure, "a false claim must fail the run")
        self.assertIn("claim does not hold in this run: 7 is even", failure)
        self.assertIn("code cell 3/4", failure)
        true_out = "".join(o.get("text", "") for o in out.cells[1].outputs)
        self.assertIn("✔ two exceeds one", true_out)
        self.assertEqual(out.cells[3].get("outputs", []), [], "the run stops at the false claim")


if __name__ == "__main__":
    unittest.main()
