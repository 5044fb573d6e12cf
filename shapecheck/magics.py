"""The IPython extension: ``%load_ext shapecheck``, then ``%shapecheck`` and ``%%shapecheck``.

``%shapecheck MODEL [--data X] [--targets Y] [--dims T=20,...] [--run]`` checks a
model that lives in the kernel: each option's value is a Python expression evaluated
in the kernel's namespace (it may hold spaces: ``--data [x1, x2]``).

``%%shapecheck [--timeout SECONDS] [--steps N]`` checks the cell it heads as a dry
run, as ``shapecheck nb.ipynb`` checks a notebook: the session's earlier inputs and
the cell are written as a notebook into a temporary folder and run in a child
process.  The cell does *not* run in the kernel: the kernel's names are untouched.
Places in the report read ``In [7]:3`` (line 3 of input 7, its ``%%shapecheck``
line counted).  The earlier inputs replayed are the session's history (``In``), less
other ``%%shapecheck`` cells, ``%shapecheck``/``%load_ext`` lines and the inputs that
raised in the kernel; they run from the kernel's working directory, which is first
on ``sys.path``, so relative paths and local modules resolve as in the kernel.

The report shows inline: the rich console rendering in a terminal IPython; in a
notebook the HTML page of the graph (self-contained: in an ``<iframe srcdoc>``,
no network) and the findings.  Importing this module imports neither IPython nor
the renderers: it fills :data:`shapecheck.report.SHOW`, so that a
:class:`~shapecheck.report.Report` shows itself the same way as a cell's last line.
"""

from __future__ import annotations

import html
import io
import os
import re
import sys
from typing import Any, Callable

from shapecheck import report as reports
from shapecheck.report import FileReport, Report

EXTRA = "pip install 'keras-shapecheck[notebook]'"
LINE_USAGE = "%shapecheck MODEL [--data X] [--targets Y] [--dims T=20,...] [--run]"
CELL_USAGE = "%%shapecheck [--timeout SECONDS] [--steps N]"
CELL_NAME = "shapecheck_cell.ipynb"  # the temporary notebook %%shapecheck checks
FRAME_HEIGHT = 480  # px: the graph's iframe in a notebook


# -- IPython, when installed ---------------------------------------------------------

def require_ipython() -> Any:
    """The ``IPython`` module; ImportError naming the extra to install when missing."""
    try:
        import IPython
    except ImportError:
        raise ImportError(f"shapecheck's IPython extension needs IPython: {EXTRA}") from None
    return IPython


def usage_error(message: str) -> Exception:
    """IPython's UsageError: shown as one line, with no traceback."""
    from IPython.core.error import UsageError

    return UsageError(message)


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext shapecheck``: register the line and cell magic ``shapecheck``."""
    require_ipython()

    def shapecheck(line: str, cell: str | None = None) -> None:
        """Check a model of the kernel, or this cell as a dry run (it does not run here).

        %shapecheck MODEL [--data X] [--targets Y] [--dims T=20,...] [--run]
        %%shapecheck [--timeout SECONDS] [--steps N]
        """
        if cell is None:
            line_magic(ipython, line)
        else:
            cell_magic(ipython, line, cell)

    ipython.register_magic_function(shapecheck, "line_cell", "shapecheck")


# -- options ---------------------------------------------------------------------------

_OPTION = re.compile(r"(?:^|(?<=\s))--([A-Za-z][\w-]*)(=|(?=\s)|$)")


def split_options(line: str, magic: str, values: frozenset[str],
                  flags: frozenset[str] = frozenset()) -> tuple[str, dict[str, Any]]:
    """``line`` cut at each `` --name``: the text before the first option, and each
    option's text (True for a flag).  UsageError for an unknown, repeated or empty one."""
    found = list(_OPTION.finditer(line))
    head = (line[:found[0].start()] if found else line).strip()
    known = ", ".join(f"--{n}" for n in sorted(values | flags))
    options: dict[str, Any] = {}
    for m, after in zip(found, [*found[1:], None]):
        name = m.group(1)
        text = line[m.end():after.start() if after else len(line)].strip()
        if name not in values and name not in flags:
            raise usage_error(f"{magic}: unknown option --{name} (options: {known})")
        if name in options:
            raise usage_error(f"{magic}: --{name} is given twice")
        if name in flags and text:
            raise usage_error(f"{magic}: --{name} takes no value (given: {text})")
        if name in values and not text:
            raise usage_error(f"{magic}: --{name} needs a value")
        options[name] = True if name in flags else text
    return head, options


def parse_dims(text: str) -> dict[str, int]:
    """``T=20,B=4`` as ``{"T": 20, "B": 4}``; UsageError when it is not that."""
    dims: dict[str, int] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, sep, size = part.partition("=")
        if not sep or not name.strip().isidentifier() or not size.strip().isdigit():
            raise usage_error(f"%shapecheck: --dims takes NAME=SIZE,... (T=20,B=4), "
                              f"not {text}")
        dims[name.strip()] = int(size)
    return dims


def evaluate(expression: str, namespace: dict, what: str) -> Any:
    """``expression`` evaluated in the kernel's namespace; UsageError when it fails."""
    try:
        return eval(expression, namespace)  # noqa: S307 (the user's own expression)
    except NameError as err:
        raise usage_error(f"%shapecheck: {what} {expression}: {err} in the kernel") from None
    except SyntaxError:
        raise usage_error(f"%shapecheck: {what} {expression} is not a Python "
                          "expression") from None
    except Exception as err:
        raise usage_error(f"%shapecheck: {what} {expression} raised "
                          f"{type(err).__name__}: {err}") from None


# -- %shapecheck MODEL ---------------------------------------------------------------

def line_magic(ipython: Any, line: str) -> None:
    """``%shapecheck MODEL [--data X] [--targets Y] [--dims ...] [--run]``: check a
    model of the kernel and show the report."""
    from shapecheck.api import check_model

    head, options = split_options(line, "%shapecheck", frozenset({"data", "targets", "dims"}),
                                  frozenset({"run"}))
    if not head:
        raise usage_error(f"usage: {LINE_USAGE}")
    namespace = ipython.user_ns
    model = evaluate(head, namespace, "the model")
    import keras

    if not isinstance(model, keras.Model):
        raise usage_error(f"%shapecheck: {head} is not a Keras model (its type is "
                          f"{type(model).__name__})")
    kwargs: dict[str, Any] = {"run": bool(options.get("run"))}
    if "data" in options:
        kwargs["data"] = evaluate(options["data"], namespace, "--data")
    elif "targets" in options:
        raise usage_error("%shapecheck: --targets needs --data")
    if "targets" in options:
        kwargs["targets"] = evaluate(options["targets"], namespace, "--targets")
    if "dims" in options:
        kwargs["dims"] = parse_dims(options["dims"])
    show(check_model(model, **kwargs), ipython)


# -- %%shapecheck ----------------------------------------------------------------------

_OURS = re.compile(r"^\s*(%shapecheck\b|%load_ext\b|%reload_ext\b|%unload_ext\b"
                   r"|.*run_(line|cell)_magic\(\s*['\"]shapecheck['\"])")


def earlier_inputs(ipython: Any) -> tuple[list[str], int]:
    """The session's inputs before this cell (``In[1]`` on), as they are to be replayed,
    and this cell's number.  Left blank, so that numbers stay: other ``%%shapecheck``
    cells, inputs that raised in the kernel (IPython 9 records them); lines of
    ``%shapecheck`` and ``%load_ext``."""
    history = getattr(ipython, "history_manager", None)
    inputs = list(getattr(history, "input_hist_raw", None) or ipython.user_ns.get("In", [""]))
    raised = set(getattr(history, "exceptions", None) or {})
    if len(inputs) > 1 and inputs[-1].lstrip().startswith("%%shapecheck"):
        inputs.pop()  # this cell, stored before it runs
    out = []
    for number, text in enumerate(inputs[1:], 1):
        if number in raised or text.lstrip().startswith("%%shapecheck"):
            out.append("")
        else:
            out.append("\n".join("" if _OURS.match(t) else t for t in text.split("\n")))
    return out, len(inputs)


def prelude(folder: str) -> str:
    """The first cell: the kernel's folder as the working directory and first on
    ``sys.path`` (the child starts in the notebook's own, temporary, folder)."""
    return (f"__import__('sys').path.insert(0, {folder!r}); "
            f"__import__('os').chdir({folder!r})")


def write_notebook(path: str, cells: list[str]) -> None:
    """``cells`` as the code cells of a Python notebook at ``path``."""
    try:
        import nbformat
        from nbformat.v4 import new_code_cell, new_notebook
    except ImportError:
        raise usage_error(f"%%shapecheck needs nbformat: {EXTRA}") from None
    nb = new_notebook(cells=[new_code_cell(c) for c in cells], metadata={
        "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}})
    nbformat.write(nb, path)


def cell_magic(ipython: Any, line: str, cell: str) -> None:
    """``%%shapecheck``: check the session's earlier inputs and this cell as a dry run in
    a child process (the cell does not run in the kernel) and show the report."""
    import shutil
    import tempfile

    from shapecheck.api import check_script

    head, options = split_options(line, "%%shapecheck", frozenset({"timeout", "steps"}))
    if head:
        raise usage_error(f"%%shapecheck: unexpected {head} (usage: {CELL_USAGE})")
    numbers = {k: _positive(k, v) for k, v in options.items()}
    if not cell.strip():
        raise usage_error("%%shapecheck checks the code below it: the cell has none")
    earlier, number = earlier_inputs(ipython)
    folder = tempfile.mkdtemp(prefix="shapecheck-cell-")
    try:
        path = os.path.join(folder, CELL_NAME)
        # the magic's line as a comment: the cell's lines keep their numbers
        write_notebook(path, [prelude(os.getcwd()), *earlier,
                              f"# %%shapecheck {line}".rstrip() + "\n" + cell])
        report = check_script(path, timeout=numbers.get("timeout"),
                              steps=int(numbers["steps"]) if "steps" in numbers else None)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    show(Report([in_inputs(f, path, number) for f in report.files]), ipython)


def _positive(name: str, text: str) -> float:
    """Option ``--name``'s ``text`` as a positive number; UsageError when it is not."""
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if value <= 0:
        raise usage_error(f"%%shapecheck: --{name} takes a positive number, not {text}")
    return value


# -- places: In [N] ------------------------------------------------------------------

def input_label(cell: int | None, number: int) -> str:
    """The temporary notebook's cell ``cell`` as the input it replays: ``In [7]``
    (cell 1 is the prelude; None: the checked cell, input ``number``)."""
    if cell is None:
        return f"In [{number}]"
    return "shapecheck's set-up" if cell == 1 else f"In [{cell - 1}]"


def in_inputs(f: FileReport, path: str, number: int) -> FileReport:
    """``f`` (the report of the temporary notebook at ``path``) with its places named by
    input: ``path`` ``In [7]``, no ``cell``, text ``In [7]:3``; the lines it skipped
    (shell commands) of the checked cell only."""
    output = f.output
    doc = _relabelled(f.to_dict(), os.path.abspath(path), number)
    if doc.get("notebook"):
        doc["notebook"]["skipped"] = [
            {**s, "cell": None} for s in doc["notebook"].get("skipped") or []
            if s.get("cell") == number + 1]
    out = FileReport.from_dict(doc)
    out.output = _text(output, number)
    return out


def _relabelled(value: Any, path: str, number: int) -> Any:
    """``value`` (the report as JSON data) with the temporary notebook's places and
    text named by input."""
    if isinstance(value, dict):
        out = {k: _relabelled(v, path, number) for k, v in value.items()}
        where = value.get("path")
        if isinstance(where, str) and (os.path.abspath(where) == path
                                       or os.path.basename(where) == CELL_NAME):
            out["path"] = input_label(value.get("cell"), number)
            if "cell" in value:
                out["cell"] = None
            if "notebook_line" in value:
                out["notebook_line"] = None
        return out
    if isinstance(value, list):
        return [_relabelled(v, path, number) for v in value]
    if isinstance(value, str):
        return _text(value, number)
    return value


_NAME = re.escape(CELL_NAME)
_AT_CELL = re.compile(rf"[^\s`'\"(]*{_NAME}:cell (\d+):(\d+)")
_FRAME = re.compile(rf"File \"[^\"]*{_NAME}\", cell (\d+), line (\d+)")
_BARE = re.compile(rf"[^\s`'\"(]*{_NAME}")


def _text(text: str, number: int) -> str:
    """``.../shapecheck_cell.ipynb:cell 8:3`` as ``In [7]:3``, a traceback's frame as
    ``File "In [7]", line 3``; the file named alone, as the checked input."""
    if CELL_NAME not in text:
        return text
    text = _AT_CELL.sub(lambda m: f"{input_label(int(m.group(1)), number)}:{m.group(2)}",
                        text)
    text = _FRAME.sub(lambda m: f'File "{input_label(int(m.group(1)), number)}", '
                                f"line {m.group(2)}", text)
    return _BARE.sub(input_label(None, number), text)


# -- showing a report ------------------------------------------------------------------

def in_terminal() -> bool:
    """Whether the running IPython is a terminal one (colours), not a kernel."""
    ipython_module = sys.modules.get("IPython")
    ipython = ipython_module.get_ipython() if ipython_module else None
    return ipython is not None and type(ipython).__module__.startswith("IPython.terminal")


def text_of(report: Report, colour: bool | None = None) -> str:
    """The console rendering of ``report``: with ANSI colours in a terminal IPython
    (``colour`` None: as :func:`in_terminal` says), plain text elsewhere."""
    import shutil

    from rich.console import Console

    from shapecheck.render.console import render

    colour = in_terminal() if colour is None else colour
    width = shutil.get_terminal_size((100, 24)).columns if colour else 100
    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=colour, force_jupyter=False,
                      color_system="standard" if colour else None, highlight=False,
                      width=width)
    render(report, console)
    return buffer.getvalue().strip("\n")


_TICKS = re.compile(r"`([^`]+)`")


def prose(text: str) -> str:
    """``text`` as HTML, its `backticked` names as code."""
    return _TICKS.sub(lambda m: f"<code>{m.group(1)}</code>", html.escape(text))


def findings_html(report: Report) -> str:
    """The findings as HTML text (code, place, message, help), then the summary."""
    items = []
    for f in report.files:
        if f.error is not None:
            items.append(f"<li><b>{html.escape(f.error.kind)}</b>: "
                         f"{html.escape(f.error.headline)}</li>")
        for d in f.diagnostics:
            where = f" <code>{html.escape(d.where)}</code>" if d.where else ""
            layer = f" at layer <code>{html.escape(d.layer)}</code>" if d.layer else ""
            hint = f"<br><i>help: {prose(d.hint)}</i>" if d.hint else ""
            items.append(f'<li class="{html.escape(d.severity)}"><b>{html.escape(d.severity)}'
                         f"[{html.escape(d.code)}{' ' + html.escape(d.name) if d.name else ''}]"
                         f"</b>{where}{layer}: {prose(d.message)}{hint}</li>")
    listed = f"<ul>{''.join(items)}</ul>" if items else ""
    return f"{listed}<p><b>{html.escape(report.summary().line())}</b></p>"


def html_of(report: Report) -> str:
    """``report`` in a notebook: the self-contained HTML page of its graphs in an
    ``<iframe srcdoc>`` (scripts allowed, nothing else), then :func:`findings_html`."""
    from shapecheck.render.html import render

    page = html.escape(render(report), quote=True)
    frame = (f'<iframe srcdoc="{page}" sandbox="allow-scripts" title="shapecheck report" '
             f'style="width:100%;height:{FRAME_HEIGHT}px;border:1px solid #ccc"></iframe>')
    return f'<div class="shapecheck-report">{frame}{findings_html(report)}</div>'


def show(report: Report, ipython: Any = None) -> None:
    """Display ``report``: each frontend picks its own of text (and HTML, when the
    frontend shows HTML: a notebook, not a terminal)."""
    require_ipython()
    from IPython.display import display

    formatter = getattr(ipython, "display_formatter", None)
    active = getattr(formatter, "active_types", None) or ["text/html"]
    bundle = {"text/plain": text_of(report)}
    if "text/html" in active:
        bundle["text/html"] = html_of(report)
    display(bundle, raw=True)


RENDERERS: dict[str, Callable[[Report], str]] = {"html": html_of, "text": text_of}
reports.SHOW.update(RENDERERS)  # Report._repr_html_ and _repr_pretty_
