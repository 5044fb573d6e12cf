"""Jupyter notebooks run as scripts: their cells, IPython syntax, and where a line is.

A notebook runs as one script whose lines are its code cells' lines, cell after cell
(the *script lines*).  IPython syntax becomes Python line for line, so a script line
is always one line of one cell: ``%time f()`` runs ``f()``, ``%matplotlib inline``
does nothing, ``!pip install x`` and a ``%%bash`` cell are skipped (never run),
``%%time``/``%%capture`` run their body, ``%%writefile`` writes its file.  The
report's places are moved from script lines to cells by :func:`locate`.
"""

from __future__ import annotations

import io
import json
import linecache
import os
import re
import shlex
import sys
import tokenize
import types
from dataclasses import dataclass, field
from typing import Any

EXTRA = "pip install 'keras-shapecheck[notebook]'"
STAND_IN = "__shapecheck_ipython__"

# line magics that only set up the session or display: nothing to run
QUIET = {"matplotlib", "load_ext", "reload_ext", "unload_ext", "config", "autoreload",
         "aimport", "precision", "pylab", "xmode", "pdb", "who", "whos", "who_ls",
         "history", "lsmagic", "magic", "tensorflow_version", "tensorboard", "colors",
         "pprint", "automagic", "autocall", "doctest_mode", "notebook", "reset",
         "reset_selective", "store", "page", "pinfo", "pinfo2", "psearch", "quickref",
         "recall", "rerun", "save", "logstart", "logstop", "logon", "logoff", "alias",
         "unalias", "rehashx", "dhist", "dirs", "bookmark", "pwd", "ls", "shapecheck",
         "load", "edit", "macro", "code_wrap", "killbgscripts", "gui", "qtconsole",
         "connect_info", "clear", "less", "more", "cat", "mkdir", "rmdir", "rm", "cp",
         "mv", "ldir", "lf", "ll", "lk", "lx", "man"}
# line magics whose argument is a statement that runs
RUN_STATEMENT = {"time", "timeit", "prun", "debug", "capture", "memit", "mprun"}
# line magics that run a shell command or install packages: skipped
SHELL = {"pip", "conda", "mamba", "micromamba", "system", "sx", "sc", "uv"}
# cell magics whose body is Python and runs
CELL_RUN = {"time", "timeit", "capture", "prun", "debug", "memit", "shapecheck"}
# cell magics that only display their body
CELL_DISPLAY = {"html", "HTML", "javascript", "js", "markdown", "latex", "svg", "md"}
_TIMEIT_VALUE = {"-n", "-r", "-p"}


class NotebookError(Exception):
    """The notebook cannot be read (message: one line for the user)."""


@dataclass
class Skipped:
    """A line that was not run: a shell command, a package install, an unknown magic."""

    line: int  # script line
    text: str
    why: str  # "shell command" | "package install" | "cell magic %%bash" | ...


@dataclass
class Cell:
    index: int  # 1-based, counting every cell of the notebook (markdown too)
    start: int  # its first script line
    source: str  # as written
    code: str  # the Python that runs: as many lines as ``source``
    rows: list[int] = field(default_factory=list)  # the .ipynb file's line of each line

    @property
    def lines(self) -> int:
        return len(self.source.split("\n")) if self.source else 0


@dataclass
class Notebook:
    path: str  # absolute
    cells: list[Cell]  # the code cells
    skipped: list[Skipped] = field(default_factory=list)

    @property
    def folder(self) -> str:
        return os.path.dirname(self.path)

    @property
    def text(self) -> str:
        """The script: the code of every cell, one after another."""
        return "".join(c.code + "\n" for c in self.cells if c.lines)

    def cell_at(self, line: int) -> tuple[Cell, int] | None:
        """The cell holding script line ``line``, and the line's number in it."""
        for c in self.cells:
            if c.lines and c.start <= line < c.start + c.lines:
                return c, line - c.start + 1
        return None

    def row(self, line: int) -> int | None:
        """The .ipynb file's line of script line ``line``."""
        found = self.cell_at(line)
        if found is None or not found[0].rows:
            return None
        cell, n = found
        return cell.rows[min(n, len(cell.rows)) - 1]


def read(path: str) -> Notebook:
    """Read a notebook; :class:`NotebookError` when it cannot be read or is not Python."""
    try:
        import nbformat
    except ImportError:
        raise NotebookError(f"{path}: reading notebooks needs nbformat: {EXTRA}") from None
    try:
        with open(path, encoding="utf-8") as fh:
            raw = fh.read()
        nb = nbformat.reads(raw, as_version=4)
    except (OSError, UnicodeDecodeError) as err:
        raise NotebookError(f"{path}: cannot be read: {err}") from None
    except Exception as err:  # nbformat's own errors: not JSON, not a notebook
        text = str(err).strip().splitlines()
        raise NotebookError(f"{path}: not a Jupyter notebook ({text[0] if text else err})"
                            ) from None
    meta = nb.get("metadata", {})
    language = (meta.get("kernelspec", {}).get("language")
                or meta.get("language_info", {}).get("name") or "python")
    if str(language).lower() != "python":
        raise NotebookError(f"{path}: its kernel runs {language}, not Python: only "
                            "Python notebooks can be checked")
    rows = source_rows(raw, [str(c.get("source", "")) for c in nb.cells])
    out = Notebook(os.path.abspath(path), [])
    start = 1
    for index, cell in enumerate(nb.cells, 1):
        source = cell.get("source", "")
        cell_rows = rows[index - 1] if index - 1 < len(rows) else []
        if cell.get("cell_type") != "code":
            continue
        code, skipped = transform_cell(source, len(out.cells))
        c = Cell(index, start, source, code, cell_rows)
        out.skipped += [Skipped(start + s.line - 1, s.text, s.why) for s in skipped]
        out.cells.append(c)
        start += c.lines
    return out


def source_rows(raw: str, sources: list[str]) -> list[list[int]]:
    """Per cell (``sources``: every cell's source, in order), the .ipynb file's line
    (1-based) of each line of its source: what GitHub and a text editor open.  Read
    from the file's text; a source written as one JSON string has every line at its
    ``"source"`` key; a cell not found (a file on one line) has none."""
    lines = raw.split("\n")
    keys = [i for i, t in enumerate(lines) if t.lstrip().startswith('"source":')]
    out: list[list[int]] = []
    k = 0
    for source in sources:
        found: list[int] = []
        while k < len(keys) and not found:
            found = _rows_at(lines, keys[k], source)
            k += 1
        out.append(found)
    return out


def _rows_at(lines: list[str], i: int, source: str) -> list[int]:
    """The rows of ``source`` when the ``"source"`` key at line ``i`` holds it."""
    count = len(source.split("\n"))
    rest = lines[i].split(":", 1)[1].strip()
    if rest.startswith("[") and not rest.rstrip(",").endswith("]"):
        rows: list[int] = []
        parts: list[str] = []
        j = i + 1
        while j < len(lines) and not lines[j].strip().startswith("]"):
            try:
                parts.append(json.loads(lines[j].strip().rstrip(",")))
            except ValueError:
                return []
            rows.append(j + 1)
            j += 1
        if "".join(str(p) for p in parts) != source or not rows:
            return []
        return (rows + [rows[-1]] * count)[:count]
    try:
        value = json.loads(rest.rstrip(","))
    except ValueError:
        return []
    text = "".join(value) if isinstance(value, list) else value
    return [i + 1] * count if text == source else []


# -- IPython syntax, line for line --------------------------------------------------

_HELP = re.compile(r"^\s*(\?{1,2}[\w.]+|[\w.]+\?{1,2})\s*$")
_ASSIGNED = re.compile(r"^(\s*)([\w.\[\], ]+?)\s*=\s*([%!].*)$")


def transform_cell(source: str, number: int = 0) -> tuple[str, list[Skipped]]:
    """The Python that runs for a cell (``number``: its index among code cells): as many
    lines as ``source``; and the lines skipped (``Skipped.line`` counts in the cell)."""
    lines = source.split("\n")
    skipped: list[Skipped] = []
    first = lines[0].strip() if lines else ""
    if first.startswith("%%"):
        name, _, args = first[2:].partition(" ")
        if name in CELL_RUN:
            head = "pass"
            if name == "capture" and args.split() and not args.split()[-1].startswith("-"):
                head = f"{args.split()[-1]} = {STAND_IN}.captured()"
            lines[0] = head
            body, inner = transform_cell("\n".join(lines[1:]), number)
            skipped += [Skipped(s.line + 1, s.text, s.why) for s in inner]
            return "\n".join([lines[0], *body.split("\n")]) if len(lines) > 1 else lines[0], \
                skipped
        if name not in ("writefile", "file") and name not in CELL_DISPLAY:
            skipped.append(Skipped(1, first, f"cell magic %%{name}: the whole cell"))
        call = f"{STAND_IN}.run_cell_magic({name!r}, {args!r}, {number})"
        return "\n".join([call] + ["pass"] * (len(lines) - 1)), skipped
    out: list[str] = []
    for n, text in enumerate(lines, 1):
        stripped = text.lstrip()
        candidate = stripped[:1] in ("%", "!", "?") or stripped.rstrip().endswith("?") \
            or _ASSIGNED.match(text) is not None
        if candidate and _at_statement_start(out):
            new, why = transform_line(text)
            if why:
                skipped.append(Skipped(n, text.strip(), why))
            out.append(new)
        else:
            out.append(text)
    return "\n".join(out), skipped


def _at_statement_start(before: list[str]) -> bool:
    """Whether a line after ``before`` starts a statement (no open bracket, string or
    backslash continuation)."""
    if not before:
        return True
    if before[-1].rstrip().endswith("\\"):
        return False
    try:
        for _ in tokenize.generate_tokens(io.StringIO("\n".join(before) + "\n").readline):
            pass
    except tokenize.TokenError:
        return False
    except (SyntaxError, ValueError):  # a bad dedent: the user's error, not ours
        return True
    return True


def transform_line(text: str) -> tuple[str, str | None]:
    """One line of IPython syntax as Python of the same indentation, and why it is
    skipped (None: it runs, or there is nothing to run)."""
    indent = text[:len(text) - len(text.lstrip())]
    stripped = text.strip()
    if _HELP.match(stripped):
        return indent + "pass", None
    target = ""
    m = _ASSIGNED.match(text)
    if m and not stripped.startswith(("%", "!")):
        target, stripped = m.group(2) + " = ", m.group(3).strip()
    if stripped.startswith("!"):
        command = stripped.lstrip("!").strip()
        why = "package install" if re.match(r"(pip|conda|uv|python -m pip)\b", command) \
            else "shell command"
        return f"{indent}{target}{STAND_IN}.system({command!r})", why
    if not stripped.startswith("%"):
        return text, None
    name, _, rest = stripped.lstrip("%").partition(" ")
    rest = rest.strip()
    if name in RUN_STATEMENT and not target:
        statement = _statement(name, rest)
        return (indent + statement if statement else indent + "pass"), None
    if name in SHELL:
        why = "package install" if name in ("pip", "conda", "mamba", "micromamba", "uv") \
            else "shell command"
        return f"{indent}{target}{STAND_IN}.system({stripped!r})", why
    why = None if name in QUIET or name in ("cd", "env", "run", "set_env") \
        else f"line magic %{name}"
    return f"{indent}{target}{STAND_IN}.run_line_magic({name!r}, {rest!r})", why


def _statement(name: str, rest: str) -> str:
    """The statement a ``%time``-like magic runs: its argument less its options."""
    if name != "timeit":
        return rest
    words = rest.split(" ")
    while words and words[0].startswith("-"):
        option = words.pop(0)
        if option in _TIMEIT_VALUE and words:
            words.pop(0)
    return " ".join(words).strip()


# -- running -------------------------------------------------------------------------

class CapturedStandIn:
    """What ``%%capture var`` leaves in ``var``: nothing was captured."""

    stdout = ""
    stderr = ""
    outputs: list = []

    def show(self) -> None:
        return None

    def __call__(self) -> None:
        return None


class IPythonStandIn:
    """``get_ipython()`` in a notebook run as a script, and the target of its magics."""

    def __init__(self, nb: Notebook, namespace: dict) -> None:
        self.nb = nb
        self.user_ns = namespace
        self.config: dict = {}

    def system(self, command: str) -> list:
        return []  # never run: noted when the notebook was read

    getoutput = system

    def run_line_magic(self, name: str, line: str, _stack_depth: int = 1) -> Any:
        if name == "cd":
            target = os.path.expanduser(line.strip().strip("'\"")) if line.strip() else "~"
            os.chdir(os.path.expanduser(target))
        elif name in ("env", "set_env"):
            key, sep, value = line.replace("=", " ", 1).partition(" ")
            if sep and key:
                os.environ[key.strip()] = value.strip()
            elif key:
                return os.environ.get(key.strip())
        elif name == "run":
            self._run(line)
        elif name in RUN_STATEMENT:
            statement = _statement(name, line)
            if statement:
                exec(compile(statement, "<magic>", "single"), self.user_ns)
        return None

    def magic(self, line: str) -> Any:
        name, _, rest = line.lstrip("%").partition(" ")
        return self.run_line_magic(name, rest)

    def _run(self, line: str) -> None:
        import runpy

        words = shlex.split(line)
        while words and words[0].startswith("-"):
            words.pop(0)
        if not words:
            return
        saved = sys.argv
        sys.argv = words
        try:
            if words[0] == "-m" and len(words) > 1:
                result = runpy.run_module(words[1], run_name="__main__")
            else:
                result = runpy.run_path(os.path.expanduser(words[0]), run_name="__main__")
        finally:
            sys.argv = saved
        self.user_ns.update({k: v for k, v in result.items() if not k.startswith("__")})

    def run_cell_magic(self, name: str, line: str, cell: Any) -> Any:
        body = cell if isinstance(cell, str) else _body(self.nb, cell)
        if name in ("writefile", "file"):
            words = shlex.split(line)
            append = "-a" in words or "--append" in words
            target = [w for w in words if not w.startswith("-")]
            if target:
                with open(os.path.expanduser(target[0]), "a" if append else "w",
                          encoding="utf-8") as fh:
                    fh.write(body)
        elif name in CELL_RUN and isinstance(cell, str):
            exec(compile(cell, "<magic>", "exec"), self.user_ns)
        return None

    def run_cell(self, raw_cell: str, *args: Any, **kwargs: Any) -> None:
        exec(compile(raw_cell, "<cell>", "exec"), self.user_ns)

    def captured(self) -> CapturedStandIn:
        return CapturedStandIn()

    def __getattr__(self, name: str) -> Any:  # anything else IPython has: a no-op
        if name.startswith("__"):
            raise AttributeError(name)
        return lambda *args, **kwargs: None


def _body(nb: Notebook, number: int) -> str:
    """The body of code cell ``number`` (its first line, the magic, left out)."""
    source = nb.cells[number].source
    return source.split("\n", 1)[1] + ("\n" if not source.endswith("\n") else "") \
        if "\n" in source else ""


def _display(*objects: Any, **kwargs: Any) -> None:
    return None


def register_source(nb: Notebook) -> None:
    """Make the script's lines what :mod:`linecache` (tracebacks, ``inspect``,
    AutoGraph, our own source lines) reads for the notebook's path."""
    text = nb.text
    linecache.cache[nb.path] = (len(text), None, text.splitlines(keepends=True), nb.path)


def run_notebook(nb: Notebook) -> None:
    """Run the notebook's code cells in order as ``__main__``, as a kernel would."""
    import ast
    import asyncio
    import inspect

    register_source(nb)
    module = types.ModuleType("__main__")
    namespace = module.__dict__
    stand_in = IPythonStandIn(nb, namespace)
    namespace.update({"__builtins__": __builtins__, STAND_IN: stand_in,
                      "get_ipython": lambda: stand_in, "display": _display,
                      "In": [""], "Out": {}})
    saved = sys.modules.get("__main__")
    sys.modules["__main__"] = module
    try:
        for cell in nb.cells:
            if not cell.code.strip():
                continue
            code = compile("\n" * (cell.start - 1) + cell.code + "\n", nb.path, "exec",
                           flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT, dont_inherit=True)
            namespace["In"].append(cell.source)
            if code.co_flags & inspect.CO_COROUTINE:
                asyncio.run(eval(code, namespace))
            else:
                exec(code, namespace)
    finally:
        if saved is not None:
            sys.modules["__main__"] = saved


def run_path(script: str) -> None:
    """Run ``script`` as ``__main__``: a notebook's cells (from its own folder, as a
    kernel starts there), or a Python file as ``python SCRIPT`` does."""
    if not script.endswith(".ipynb"):
        import runpy

        runpy.run_path(script, run_name="__main__")
        return
    nb = read(script)
    os.chdir(nb.folder)
    run_notebook(nb)


# -- the report's places, in cells ---------------------------------------------------

def is_notebook(path: str | None) -> bool:
    return bool(path) and str(path).endswith(".ipynb")


def locate(report: Any, path: str) -> Any:
    """``report`` (a FileReport of notebook ``path``) with its places in cells: each
    ``path``/``line`` of the notebook gets its ``cell``, ``line`` in the cell and
    ``notebook_line`` (the .ipynb file's line), and ``nb.ipynb:57`` in any text
    becomes ``nb.ipynb:cell 7:3``.  The report is returned unchanged when the notebook
    cannot be read again."""
    if not is_notebook(path):
        return report
    try:
        nb = read(path)
    except NotebookError:
        return report
    from shapecheck.report import FileReport

    output = report.output
    doc = _moved(report.to_dict(), nb)
    doc["notebook"] = {
        "code_cells": len(nb.cells),
        "skipped": [_place(nb, {"line": s.line, "text": s.text, "why": s.why})
                    for s in nb.skipped]}
    located = FileReport.from_dict(doc)
    located.output = output
    return located


def _place(nb: Notebook, item: dict) -> dict:
    found = nb.cell_at(item["line"]) if isinstance(item.get("line"), int) else None
    if found is not None:
        cell, n = found
        item.update(cell=cell.index, line=n, notebook_line=nb.row(item["line"]))
    return item


def _moved(value: Any, nb: Notebook) -> Any:
    """``value`` (the report as JSON data) with the notebook's places moved into cells."""
    if isinstance(value, dict):
        out = {k: _moved(v, nb) for k, v in value.items()}
        path, line = value.get("path"), value.get("line")
        if (isinstance(path, str) and isinstance(line, int) and value.get("cell") is None
                and os.path.abspath(path) == nb.path):
            found = nb.cell_at(line)
            if found is not None:
                cell, n = found
                out.update(cell=cell.index, line=n)
                if "source" in value and value.get("source") is not None:
                    out["source"] = cell.source.split("\n")[n - 1]
                if "col" in value or "exception" in value:  # findings, places, errors
                    out["notebook_line"] = nb.row(line)
        return out
    if isinstance(value, list):
        return [_moved(v, nb) for v in value]
    if isinstance(value, str):
        return text_in_cells(value, nb)
    return value


def text_in_cells(text: str, nb: Notebook) -> str:
    """``nb.ipynb:57`` (a script line, after any folder) as ``nb.ipynb:cell 7:3``; a
    traceback's ``File ".../nb.ipynb", line 57`` as ``..., cell 7, line 3``."""
    base = os.path.basename(nb.path)
    if base not in text:
        return text
    name = re.escape(base)

    def colon(m: re.Match) -> str:
        found = nb.cell_at(int(m.group(2)))
        return m.group(0) if found is None else f"{m.group(1)}cell {found[0].index}:{found[1]}"

    def frame(m: re.Match) -> str:
        found = nb.cell_at(int(m.group(2)))
        return m.group(0) if found is None else \
            f"{m.group(1)}cell {found[0].index}, line {found[1]}"

    text = re.sub(rf"([^\s`'\"(]*{name}:)(\d+)(?!\d)", colon, text)
    return re.sub(rf"(File \"[^\"]*{name}\", )line (\d+)", frame, text)
