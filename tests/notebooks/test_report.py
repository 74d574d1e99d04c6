"""The report's rules, checked on the notebooks (`make test` runs these with the notebook tests):

    .venv/bin/python -m unittest tests/notebooks/test_report.py -v

* a false `claim!` fails the notebook run, and the failure names the claim (through the real
  kernel and run_notebooks.execute, as `make test` and `make report` run the notebooks);
* no notebook uses words of the project's process ("the issue", "the lead", "engineer", ...):
  the report is read by someone who never saw the project's tracker;
* the report's one-page summary lists every answer cell (`**Answer (ID):**`, see the docstring
  of scripts/run_notebooks.py), under its question, in the assignment's order, with a working
  link to the answer;
* print layout: the cell tags `report:fold-code` and `report:html-only` do what they say in a PDF
  that Chromium prints (skipped without Chromium); no cell with a `claim!` and no answer cell
  carries them; progress lines stay out of the report; and report/gradviz-report.pdf, when
  `make report` has written one, has at most run_notebooks.PDF_MAX_PAGES pages.
"""

from __future__ import annotations

import html
import os
import re
import sys
import tempfile
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

    def test_every_question_of_the_assignment_is_answered(self):
        executed = all_notebooks()
        answered = {a[0] for a in run_notebooks.answers(executed)}
        missing = [q for q, _ in run_notebooks.QUESTIONS if q not in answered]
        self.assertEqual(missing, [], "questions without an `**Answer (ID):**` cell")
        # an answer written another way ("**Answer:** …", "**Answer (x).**") would be left out
        # of the summary without a word
        stray = [f"{name} cell {i}" for name, nb in executed for i, c in enumerate(nb.cells)
                 if c.cell_type == "markdown" and c.source.lstrip().startswith("**Answer")
                 and not run_notebooks.ANSWER_RE.match(c.source)]
        self.assertEqual(stray, [], "answer cells the summary does not recognise")

    def test_an_answer_is_recognised_only_at_the_start_of_a_markdown_cell(self):
        nb = nbformat.v4.new_notebook()
        nb.cells = [nbformat.v4.new_markdown_cell("**Answer (Q9):** Yes.\n\nDetails."),
                    nbformat.v4.new_markdown_cell("See **Answer (Q1):** above."),
                    nbformat.v4.new_code_cell('// **Answer (Q1):** in code')]
        self.assertEqual(run_notebooks.answers([("x", nb)]), [("Q9", "x", 0, "Yes.")])
        self.assertIn("**Q9 · further question**", run_notebooks.summary_markdown([("x", nb)]))


class PrintLayout(unittest.TestCase):
    def test_cells_that_state_a_finding_or_an_answer_stay_in_print(self):
        known = {run_notebooks.FOLD_CODE, run_notebooks.HTML_ONLY}
        wrong = []
        for name, nb in all_notebooks():
            for i, c in enumerate(nb.cells):
                tags = set(c.get("metadata", {}).get("tags", []))
                wrong += [f"{name} cell {i}: unknown print tag {t!r}"
                          for t in tags if t.startswith("report:") and t not in known]
                if run_notebooks.HTML_ONLY in tags and (
                        "claim!" in c.source or is_answer(c.source)):
                    wrong.append(f"{name} cell {i}: a claim or an answer is left out of print")
                if run_notebooks.FOLD_CODE in tags and c.cell_type == "code":
                    # the printed note must list every claim's condition
                    note = run_notebooks.folded_note(name, nb, i).source
                    conditions = run_notebooks.claim_conditions(c.source)
                    if len(conditions) != c.source.count("claim!("):
                        wrong.append(f"{name} cell {i}: {c.source.count('claim!(')} claims, "
                                     f"{len(conditions)} conditions found")
                    wrong += [f"{name} cell {i}: condition {k!r} not in the printed note"
                              for k in conditions if html.escape(k) not in note]
        self.assertEqual(wrong, [], "\n".join(wrong))

    def test_the_conditions_of_claims_are_found(self):
        src = ('claim!(a.iter().all(|(x, y)| x < y), "pairs {:?}, (", v)?;\n'
               'claim!(f(1, g("),"), [2, 3]) > 0.5,\n       "a \\"quoted\\" {x}")?;\n'
               '{ claim!(n % 2 == 0, "{n} is even")?; }')
        self.assertEqual(run_notebooks.claim_conditions(src),
                         ["a.iter().all(|(x, y)| x < y)", 'f(1, g("),"), [2, 3]) > 0.5',
                          "n % 2 == 0"])

    def test_progress_lines_stay_out_of_the_report(self):
        nb = nbformat.v4.new_notebook()
        cell = nbformat.v4.new_code_cell("x")
        cell.outputs = [nbformat.v4.new_output(
            "stream", name="stdout",
            text="settings: 1/10 (10%) after 8.8 s, about 1:19 min left\n"
                 "ascend: 154/600 (26%) after 2.0 s, about 5.8 s left · objective 136.3\n"
                 "setting   recog 0.45 (10%)\nsettings: 10/10 in 1:34 min\n"),
            nbformat.v4.new_output("stream", name="stderr", text="ascend: 1/9 (11%) after 1.0 s\n")]
        nb.cells = [nbformat.v4.new_markdown_cell("# t"), cell]
        out = run_notebooks.combined_notebook([("t", nb)]).cells[-1].outputs
        self.assertEqual([o["text"] for o in out], ["setting   recog 0.45 (10%)\nsettings: 10/10 in 1:34 min\n"])

    @unittest.skipUnless(run_notebooks.find_chromium(), "chromium is not installed")
    def test_print_leaves_out_what_the_tags_say(self):
        # 300 lines of folded code and 300 lines of an HTML-only output: printed with the tags
        # the notebook fits one page, without them it takes several.
        def notebook(tagged: bool):
            nb = nbformat.v4.new_notebook()
            folded = nbformat.v4.new_code_cell("\n".join(f"let line_{k} = {k};" for k in range(300)))
            folded.outputs = [nbformat.v4.new_output("stream", name="stdout", text="the output stays\n")]
            only = nbformat.v4.new_code_cell("long_table()")
            only.outputs = [nbformat.v4.new_output("stream", name="stdout",
                                                   text="".join(f"row {k}\n" for k in range(300)))]
            if tagged:
                folded.metadata["tags"] = [run_notebooks.FOLD_CODE]
                only.metadata["tags"] = [run_notebooks.HTML_ONLY]
            nb.cells = [nbformat.v4.new_markdown_cell("# Print tags"), folded, only]
            return nb

        with tempfile.TemporaryDirectory() as d:
            pages = {}
            for tagged in (True, False):
                combined = run_notebooks.combined_notebook([("t", notebook(tagged))])
                page = Path(d) / f"t{tagged}.html"
                page.write_text(run_notebooks.export_html(combined, Path(d), "t"))
                if tagged:
                    text = page.read_text()
                    self.assertIn('<div class="gv-folded">code cell 1 of <code>t.ipynb</code> (300 lines', text)
                    self.assertIn("the output stays", text)
                self.assertTrue(run_notebooks.print_pdf(page, Path(d) / f"t{tagged}.pdf"))
                pages[tagged] = run_notebooks.pdf_pages(Path(d) / f"t{tagged}.pdf")
        self.assertLessEqual(pages[True], 2, pages)  # the summary page and the notebook
        self.assertGreater(pages[False], pages[True] + 4, pages)

    def test_the_report_pdf_keeps_to_the_page_limit(self):
        pdf = REPO / "report" / "gradviz-report.pdf"
        if not pdf.exists():
            self.skipTest("no report/gradviz-report.pdf (`make report` writes it)")
        pages = run_notebooks.pdf_pages(pdf)
        self.assertGreater(pages, 0, "no pages found: not a PDF printed by Chromium?")
        self.assertLessEqual(pages, run_notebooks.PDF_MAX_PAGES,
                             f"{pdf} has {pages} pages (see 'Print layout' in scripts/run_notebooks.py)")


def is_answer(source: str) -> bool:
    return bool(run_notebooks.ANSWER_RE.match(source))


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
