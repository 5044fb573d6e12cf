"""Plain text: one line per finding, as flake8 and ruff print them.

    path:line:col: CODE [severity] message

The column is left out when unknown (``path:line: CODE ...``), and a finding
with no file (``check_model``) reads ``<model>: CODE ...``.  A file that could
not be checked gets one line, ``path: [failed:<kind>] first line of the error``.
Files come in the order they were checked; within a file, by line then column.
No colour, no summary: a clean run prints nothing.
"""

from __future__ import annotations

from shapecheck.report import Diagnostic, FileReport, Report


def ordered(f: FileReport) -> list[Diagnostic]:
    """The file's findings by place: its own path first, then line, then column
    (unknown places last); ties keep the report's order."""

    def key(d: Diagnostic) -> tuple:
        return (d.path != f.path, d.path or "",
                d.line is None, d.line or 0, d.col is None, d.col or 0)

    return sorted(f.diagnostics, key=key)


def one_line(text: str | None) -> str:
    """``text`` on one line: its lines joined by spaces."""
    return " ".join(part.strip() for part in (text or "").splitlines() if part.strip())


def place(d: Diagnostic) -> str:
    """``path:line:col``, ``path:line``, ``path`` or ``<model>``."""
    if not d.path:
        return "<model>"
    if d.line is None:
        return d.path
    if d.col is None:
        return f"{d.path}:{d.line}"
    return f"{d.path}:{d.line}:{d.col}"


def finding_line(d: Diagnostic) -> str:
    text = f"{place(d)}: {d.code} [{d.severity}] {one_line(d.message)}"
    if d.follows:
        text += f" (follows from {d.follows})"
    return text


def failed_line(f: FileReport) -> str:
    assert f.error is not None
    lines = [part.strip() for part in f.error.message.splitlines() if part.strip()]
    return f"{f.path or '<model>'}: [failed:{f.error.kind}] {lines[0] if lines else ''}".rstrip()


def render(report: Report) -> str:
    out: list[str] = []
    for f in report.files:
        if f.status == "failed" and f.error is not None:
            out.append(failed_line(f))
        out.extend(finding_line(d) for d in ordered(f))
    return "\n".join(out)
