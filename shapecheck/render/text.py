"""Plain text: one line per finding, as flake8 and ruff print them.

    path:line:col: CODE [severity] message

The column is left out when unknown (``path:line: CODE ...``), a finding
with no file (``check_model``) reads ``<model>: CODE ...``, and one in a notebook
``nb.ipynb:cell 3:2:col: CODE ...`` (line 2 of the third cell, as ruff and nbQA say).  Every status but
``clean`` is told by a line in brackets too:

    path: [failed:<kind>] ValueError: ... (at path:41: `source`)   could not be checked
    path: [stopped:<kind>] ValueError: ... (at path:41: `source`)  raised after findings
    path:line: [not-checked] model `name` (subclassed): why        a model not checked
    path: [no-model] the script built no Keras model: nothing was checked

Files come in the order they were checked; within a file, its status lines
first, then the findings by line and column.  No colour, no summary: a clean run
prints nothing.
"""

from __future__ import annotations

from shapecheck.report import Diagnostic, FileReport, ModelEntry, Report
from shapecheck.report import place as line_place


def ordered(f: FileReport) -> list[Diagnostic]:
    """The file's findings by place: its own path first, then line, then column
    (unknown places last); ties keep the report's order."""

    def key(d: Diagnostic) -> tuple:
        return (d.path != f.path, d.path or "", d.cell or 0,
                d.line is None, d.line or 0, d.col is None, d.col or 0)

    return sorted(f.diagnostics, key=key)


def one_line(text: str | None) -> str:
    """``text`` on one line: its lines joined by spaces."""
    return " ".join(part.strip() for part in (text or "").splitlines() if part.strip())


def place(d: Diagnostic) -> str:
    """``path:line:col``, ``path:line``, ``path`` or ``<model>``; in a notebook
    ``path:cell 3:2:col`` (the convention of ruff and nbQA)."""
    if not d.path:
        return "<model>"
    return line_place(d.path, d.line, d.cell, d.col)


def finding_line(d: Diagnostic) -> str:
    text = f"{place(d)}: {d.code} [{d.severity}] {one_line(d.message)}"
    for r in d.related:
        text += f" ({r.message}: {r.where})"
    if d.follows:
        text += f" (follows from {d.follows})"
    return text


def failed_line(f: FileReport) -> str:
    """``path: [failed:<kind>] the exception (at its line)``; ``stopped`` when the
    script raised after error findings."""
    assert f.error is not None
    tag = "failed" if f.status == "failed" else "stopped"
    return f"{f.path or '<model>'}: [{tag}:{f.error.kind}] {f.error.headline}".rstrip()


def model_place(m: ModelEntry) -> str:
    return m.where or "<model>"


def status_lines(f: FileReport) -> list[str]:
    """The lines that tell a file's status when it is not clean (findings aside)."""
    out = [failed_line(f)] if f.error is not None else []
    out += [f"{model_place(m)}: [not-checked] model `{m.name}` ({m.kind}): "
            f"{one_line(m.reason) or 'its graph could not be read'}"
            for m in f.unchecked_models]
    if f.no_model:
        out.append(f"{f.path or '<model>'}: [no-model] the script built no Keras model: "
                   "nothing was checked")
    return out


def render(report: Report) -> str:
    out: list[str] = []
    for f in report.files:
        out.extend(status_lines(f))
        out.extend(finding_line(d) for d in ordered(f))
    return "\n".join(out)
