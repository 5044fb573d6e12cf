"""GitHub Actions workflow commands: one annotation per finding.

    ::error file=PATH,line=L,col=C,endColumn=E,title=CODE name::message

``::warning`` for warnings and ``::notice`` for infos.  Values are escaped as
the Actions toolkit (``@actions/core``) escapes them, so a message may span
lines.  A file that could not be checked is an ``::error`` on the file.
"""

from __future__ import annotations

from shapecheck.render.text import ordered
from shapecheck.report import Diagnostic, FileReport, Report

COMMANDS = {"error": "error", "warning": "warning", "info": "notice"}


def escape_data(s: str) -> str:
    """A command's message, as ``escapeData`` in ``@actions/core``."""
    return s.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(s: str) -> str:
    """A property value, as ``escapeProperty`` in ``@actions/core``."""
    return escape_data(s).replace(":", "%3A").replace(",", "%2C")


def command(name: str, properties: dict[str, object], message: str) -> str:
    """``::name key=value,...::message``; properties that are None or empty are left out."""
    props = ",".join(f"{k}={escape_property(str(v))}" for k, v in properties.items()
                     if v is not None and v != "")
    return f"::{name}{' ' + props if props else ''}::{escape_data(message)}"


def annotation(d: Diagnostic) -> str:
    props: dict[str, object] = {"file": d.path}
    if d.path and d.line:
        props["line"] = d.line
        if d.col:
            props["col"] = d.col
            if d.end_col:  # GitHub's end column is inclusive, as ours
                props["endColumn"] = d.end_col
    props["title"] = f"{d.code} {d.name}" if d.name else d.code
    message = d.message
    if d.hint:
        message += f"\nhelp: {d.hint}"
    if d.follows:
        message += f"\n(follows from {d.follows})"
    return command(COMMANDS.get(d.severity, "notice"), props, message)


def failure(f: FileReport) -> str:
    assert f.error is not None
    return command("error", {"file": f.path,
                             "title": f"shapecheck could not check this script "
                                      f"({f.error.kind})"},
                   f.error.message.rstrip())


def render(report: Report) -> str:
    out: list[str] = []
    for f in report.files:
        if f.status == "failed" and f.error is not None:
            out.append(failure(f))
        out.extend(annotation(d) for d in ordered(f))
    return "\n".join(out)
