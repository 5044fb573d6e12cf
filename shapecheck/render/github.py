"""GitHub Actions workflow commands: one annotation per finding.

    ::error file=PATH,line=L,col=C,endColumn=E,title=CODE name::message

``::warning`` for warnings and ``::notice`` for infos.  Values are escaped as
the Actions toolkit (``@actions/core``) escapes them, so a message may span
lines.  Every status but ``clean`` is told as well:

- a file that could not be checked (``failed``): an ``::error`` at the line that
  raised (else on the file), the exception first, then the traceback;
- a script that raised after its error findings: a ``::notice`` at that line;
- a model that could not be checked, a script that built no model: a ``::notice``.

In a notebook an annotation is on the line of the ``.ipynb`` file that holds the
cell's line (what GitHub shows of the file), with no column, and its title says the
cell: ``SC601 batch-mismatch (cell 5, line 19)``.

The summary line ends the output (a plain log line, not a command).
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
    if d.path and d.line and d.cell:
        props["line"] = d.notebook_line
    elif d.path and d.line:
        props["line"] = d.line
        if d.col:
            props["col"] = d.col
            if d.end_col:  # GitHub's end column is inclusive, as ours
                props["endColumn"] = d.end_col
    props["title"] = (f"{d.code} {d.name}" if d.name else d.code) + (
        f" (cell {d.cell}, line {d.line})" if d.cell else "")
    message = d.message
    for r in d.related:
        message += f"\nnote: {r.message}: " + (f"`{r.layer}` at " if r.layer else "") + r.where
    if d.also_in:
        message += f"\nalso in model(s): {', '.join(d.also_in)}"
    if d.hint:
        message += f"\nhelp: {d.hint}"
    if d.follows:
        message += f"\n(follows from {d.follows})"
    return command(COMMANDS.get(d.severity, "notice"), props, message)


def failure(f: FileReport) -> str:
    """``::error`` for a file that could not be checked, ``::notice`` where a script
    stopped after its findings: at the line that raised when known."""
    assert f.error is not None
    err = f.error
    props: dict[str, object] = {"file": err.path or f.path}
    if err.path and err.line:
        props["line"] = err.notebook_line if err.cell else err.line
    if f.status == "failed":
        name, title = "error", f"shapecheck could not check this script ({err.kind})"
    else:
        name, title = "notice", f"the script stopped here after its findings ({err.kind})"
    props["title"] = title
    return command(name, props, err.text)


def unchecked(f: FileReport) -> list[str]:
    """A ``::notice`` per model not checked, and for a script that built no model."""
    out = [command("notice", {"file": m.path, "line": None if m.cell else m.line,
                              "title": f"model `{m.name}` not checked"},
                   f"model `{m.name}` ({m.kind}) was not checked: "
                   f"{m.reason or 'its graph could not be read'}")
           for m in f.unchecked_models]
    if f.no_model:
        out.append(command("notice", {"file": f.path, "title": "no model"},
                           "the script built no Keras model: nothing was checked"))
    return out


def render(report: Report) -> str:
    out: list[str] = []
    for f in report.files:
        if f.error is not None:
            out.append(failure(f))
        out.extend(unchecked(f))
        out.extend(annotation(d) for d in ordered(f))
    out.append(f"shapecheck: {report.summary().line()}")
    return "\n".join(out)
