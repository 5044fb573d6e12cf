"""The report: plain data, JSON in and out, no Keras.

Schema ``shapecheck/1`` (documented in the README)::

    {"schema": "shapecheck/1",
     "summary": {"status", "worst", "files", "models", "unchecked_models", "no_model",
                 "failed", "errors", "warnings", "infos"},
     "files": [{"path", "status", "worst", "error",
                "models": [{"name", "kind", "path", "line", "checked", "reason",
                            "layers": [...], "dims": {...}, "constraints": [...],
                            "notes": [...]}],
                "diagnostics": [...]}]}

Statuses, of a file and of the whole run (the run's is its files' worst, in this
order):

- ``failed``: the file could not be checked (missing, a syntax error, the script
  raised or exited with no error finding, a timeout, a saved model that cannot be
  loaded); ``error`` says why.  The only status that means "not checked".
- ``findings``: at least one finding, of any severity; ``worst`` is the most
  severe (``error``, ``warning`` or ``info``).  A run with only warnings or infos
  is ``findings``, never ``clean``.  A script that stopped on an exception after
  error findings is ``findings`` with its ``error`` set.
- ``unchecked``: no finding, but not everything was checked: a model whose graph
  could not be read (``checked: false`` with a ``reason``), or no model built.
- ``clean``: no finding at all, at least one model, and every model checked.

``worst`` is ``null`` when there is no finding.  Severities and statuses never mix:
``error`` is a severity of findings, ``failed`` a status of files.
"""

from __future__ import annotations

import os
import re
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

SCHEMA = "shapecheck/1"

# How a Report shows itself in IPython ("html", "text" -> the rendering), filled by
# shapecheck.magics when shapecheck is imported; empty: the summary line
SHOW: dict[str, Callable[["Report"], str]] = {}


BASE_DIR: str | None = None  # the folder paths are shown from (None: the working directory)


def display_path(path: str | None, base: str | None = None) -> str | None:
    """``path`` relative to ``base`` (:data:`BASE_DIR`, else the working directory) when
    inside it."""
    if path is None:
        return None
    base = os.path.abspath(base or BASE_DIR or os.getcwd())
    full = os.path.abspath(path)
    rel = os.path.relpath(full, base)
    return full if rel.startswith("..") else rel


def place(path: str | None, line: int | None = None, cell: int | None = None,
          col: int | None = None) -> str:
    """Where a line is, as editors open it: ``model.py:12``, ``model.py:12:5``; in a
    notebook ``nb.ipynb:cell 3:2`` (line 2 of the notebook's third cell)."""
    if not path:
        return ""
    if not line:
        return path
    at = f"{path}:cell {cell}:{line}" if cell else f"{path}:{line}"
    return f"{at}:{col}" if col else at


JsonDim = int | str | None


@dataclass
class LayerEntry:
    name: str
    cls: str
    path: str | None
    line: int | None
    inputs: list[str]
    output_shapes: list[list[JsonDim]]
    # one [layer index, output index] per input tensor, in argument order: the layer
    # (an index into the model's "layers") and which of its outputs the tensor is
    sources: list[list[int]] = field(default_factory=list)
    model: str | None = None  # a nested model called as a layer: its name
    cell: int | None = None  # in a notebook: the cell ``line`` counts in

    def to_dict(self) -> dict:
        return {"name": self.name, "class": self.cls, "line": self.line, "path": self.path,
                "inputs": self.inputs, "output_shapes": self.output_shapes,
                "sources": self.sources, "model": self.model, "cell": self.cell}

    @classmethod
    def from_dict(cls, d: dict) -> "LayerEntry":
        return cls(d["name"], d["class"], d.get("path"), d.get("line"), d.get("inputs", []),
                   d.get("output_shapes", []), [list(s) for s in d.get("sources", [])],
                   d.get("model"), d.get("cell"))

    @property
    def where(self) -> str:
        return place(self.path, self.line, self.cell)


@dataclass
class ConstraintEntry:
    lhs: JsonDim
    rhs: JsonDim
    layer: str
    reason: str
    holds: bool | None


@dataclass
class NoteEntry:
    layer: str
    kind: str
    message: str


@dataclass
class ModelEntry:
    name: str
    # "functional" | "sequential" | "subclassed" | "unbuilt"; "layer": a user's layer
    # traced inside a subclassed model (its graph, opened in place of its call)
    kind: str
    path: str | None
    line: int | None
    layers: list[LayerEntry] = field(default_factory=list)
    dims: dict[str, str] = field(default_factory=dict)  # name -> origin
    constraints: list[ConstraintEntry] = field(default_factory=list)
    notes: list[NoteEntry] = field(default_factory=list)
    # named dim -> {"size": smallest size every window fits, "layer": the one that sets it}
    minimums: dict[str, dict] = field(default_factory=dict)
    # one per sampled batch: {"data": "`fit` at m.py:9, batch 1 of 4", "dims": {..}, "from": {..}}
    data: list[dict] = field(default_factory=list)
    # --run: {"device", "skipped", "notes", "executions": [{"data", "dims", "stages",
    #         "seconds", "error": {...} | None}]}; None when not executed
    run: dict | None = None
    checked: bool = True  # False: its graph could not be read (``reason`` says why)
    reason: str | None = None
    cell: int | None = None  # in a notebook: the cell ``line`` counts in

    @property
    def where(self) -> str:
        return place(self.path, self.line, self.cell)

    def to_dict(self) -> dict:
        return {"name": self.name, "kind": self.kind, "path": self.path, "line": self.line,
                "cell": self.cell,
                "checked": self.checked, "reason": self.reason,
                "layers": [layer.to_dict() for layer in self.layers],
                "dims": dict(self.dims), "minimums": dict(self.minimums),
                "data": list(self.data), "run": self.run,
                "constraints": [asdict(c) for c in self.constraints],
                "notes": [asdict(n) for n in self.notes]}

    @classmethod
    def from_dict(cls, d: dict) -> "ModelEntry":
        return cls(d["name"], d.get("kind", "functional"), d.get("path"), d.get("line"),
                   [LayerEntry.from_dict(x) for x in d.get("layers", [])],
                   dict(d.get("dims", {})),
                   [ConstraintEntry(**c) for c in d.get("constraints", [])],
                   [NoteEntry(**n) for n in d.get("notes", [])],
                   dict(d.get("minimums", {})), list(d.get("data", [])), d.get("run"),
                   bool(d.get("checked", True)), d.get("reason"), d.get("cell"))


@dataclass
class Location:
    """A second place a finding concerns (where the shape broke, for one)."""

    path: str | None = None
    line: int | None = None
    col: int | None = None
    end_col: int | None = None
    layer: str | None = None
    source: str | None = None
    message: str = ""
    cell: int | None = None  # in a notebook: the cell ``line`` counts in
    notebook_line: int | None = None  # in a notebook: the line of the .ipynb file

    @classmethod
    def from_dict(cls, d: dict) -> "Location":
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in d.items() if k in known})

    @property
    def where(self) -> str:
        return place(self.path, self.line, self.cell)


@dataclass
class Diagnostic:
    code: str
    severity: str  # "error" | "warning" | "info"
    message: str
    model: str | None = None
    layer: str | None = None
    path: str | None = None
    line: int | None = None
    hint: str | None = None
    dims: dict[str, Any] = field(default_factory=dict)  # named dim -> origin or size
    name: str | None = None  # the rule's kebab-case name
    shapes: dict[str, Any] = field(default_factory=dict)  # label -> shape (JSON dims)
    col: int | None = None  # 1-based column of the call on ``line``
    end_col: int | None = None  # its last column, when on the same line
    source: str | None = None  # the text of ``line``
    follows: str | None = None  # "SC102 at model.py:12": the finding this one follows from
    data: str | None = None  # the data that shows it: "`fit` at model.py:62, batch 1 of 4"
    confirmed: bool | None = None  # --run: seen when executed (True), not seen (False), not run
    run: str | None = None  # --run: what execution showed, in words
    argument: str | None = None  # the layer argument at fault: "return_sequences=True"
    related: list[Location] = field(default_factory=list)  # where the shape broke, ...
    also_in: list[str] = field(default_factory=list)  # other models with the same finding
    cell: int | None = None  # in a notebook: the cell (1-based, every cell counted) of ``line``
    notebook_line: int | None = None  # in a notebook: the line of the .ipynb file

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Diagnostic":
        known = {f for f in cls.__dataclass_fields__}
        fields = {k: v for k, v in d.items() if k in known}
        fields["related"] = [Location.from_dict(r) for r in fields.get("related") or ()]
        return cls(**fields)

    @property
    def where(self) -> str:
        return place(self.path, self.line, self.cell)


@dataclass
class ScriptError:
    # "not-found" | "not-a-script" | "syntax-error" | "script-error" | "exit" | "timeout"
    # | "crash" | "device"; a saved model: "safe-mode" | "custom-object" | "bad-file"
    # | "load-error"
    kind: str
    message: str  # the whole story (a script-error: the traceback of the user's frames)
    exception: str | None = None  # "ValueError: no such column" (a script-error)
    path: str | None = None  # the user's line where it was raised
    line: int | None = None
    source: str | None = None  # the text of that line
    cell: int | None = None  # in a notebook: the cell ``line`` counts in
    notebook_line: int | None = None  # in a notebook: the line of the .ipynb file

    @property
    def headline(self) -> str:
        """One line: the exception (or the message's first line), then its place."""
        lines = [part.strip() for part in self.message.splitlines() if part.strip()]
        first = [part.strip() for part in (self.exception or "").splitlines() if part.strip()]
        text = (first or lines or [self.kind])[0]
        if self.path and self.line:
            text += f" (at {place(self.path, self.line, self.cell)}" + (
                f": `{self.source.strip()}`)" if self.source and self.source.strip() else ")")
        return text

    @property
    def text(self) -> str:
        """The headline, then the whole message when the headline is not its first line."""
        message = self.message.rstrip()
        if self.exception is None and not (self.path and self.line):
            return message or self.kind
        return f"{self.headline}\n{message}" if message else self.headline

    @classmethod
    def from_dict(cls, d: dict) -> "ScriptError":
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in d.items() if k in known})


STATUSES = ("clean", "unchecked", "findings", "failed")  # from best to worst
SEVERITIES = ("error", "warning", "info")  # from worst to mildest


def worst_severity(diagnostics: list["Diagnostic"]) -> str | None:
    """The most severe of the findings' severities, or None without findings."""
    found = {d.severity for d in diagnostics}
    return next((s for s in SEVERITIES if s in found), None)


@dataclass
class FileReport:
    path: str | None
    status: str = "clean"  # "clean" | "unchecked" | "findings" | "failed" (module doc)
    error: ScriptError | None = None
    models: list[ModelEntry] = field(default_factory=list)
    diagnostics: list[Diagnostic] = field(default_factory=list)
    output: str = ""  # what the script printed (not part of the JSON schema)
    worst: str | None = None  # the most severe finding's severity, None without findings
    # the dry run: {"made_up": "`fit` at m.py:9" | None, "writes": [{"path", "kind"}]}:
    # whose values were made up, and what the script wrote into the scratch folder
    dry_run: dict | None = None
    # a notebook: {"code_cells": N, "skipped": [{"cell", "line", "notebook_line",
    # "text", "why"}]}: the lines not run (shell commands, package installs)
    notebook: dict | None = None

    def finish(self) -> "FileReport":
        """Set ``status`` and ``worst`` from the error, the findings and the models."""
        self.worst = worst_severity(self.diagnostics)
        if self.error is not None and self.worst != "error":
            self.status = "failed"
        elif self.worst is not None:  # a script stopped after error findings: findings
            self.status = "findings"
        elif self.no_model or self.unchecked_models:
            self.status = "unchecked"
        else:
            self.status = "clean"
        return self

    @property
    def unchecked_models(self) -> list[ModelEntry]:
        """The models whose graph could not be read."""
        return [m for m in self.models if not m.checked]

    @property
    def no_model(self) -> bool:
        """The file ran (or loaded) without an error or a finding but built no model:
        nothing was checked."""
        return self.error is None and not self.models and not self.diagnostics

    def to_dict(self) -> dict:
        return {"path": self.path, "status": self.status, "worst": self.worst,
                "error": asdict(self.error) if self.error else None,
                "models": [m.to_dict() for m in self.models],
                "diagnostics": [d.to_dict() for d in self.diagnostics],
                "dry_run": self.dry_run, "notebook": self.notebook}

    @classmethod
    def from_dict(cls, d: dict) -> "FileReport":
        err = d.get("error")
        f = cls(d.get("path"), d.get("status", "clean"),
                ScriptError.from_dict(err) if err else None,
                [ModelEntry.from_dict(m) for m in d.get("models", [])],
                [Diagnostic.from_dict(x) for x in d.get("diagnostics", [])])
        f.worst = d.get("worst", worst_severity(f.diagnostics))
        f.dry_run = d.get("dry_run")
        f.notebook = d.get("notebook")
        return f


@dataclass
class Summary:
    """What a run found, counted: the ``summary`` of the JSON document and the last line
    of the console."""

    status: str  # the worst file status (``STATUSES``); "clean" for no file
    worst: str | None  # the most severe finding's severity
    files: int
    models: int
    unchecked_models: int  # models whose graph could not be read
    no_model: int  # files that built no model
    failed: int  # files that could not be checked
    errors: int
    warnings: int
    infos: int

    def to_dict(self) -> dict:
        return asdict(self)

    def line(self) -> str:
        """``findings: 2 files, 3 models; 1 error, 2 warnings, 1 model not checked``."""

        def n(count: int, word: str, plural: str | None = None) -> str:
            return f"{count} {word if count == 1 else plural or word + 's'}"

        head = f"{n(self.files, 'file')}, {n(self.models, 'model')}"
        found = [n(c, w) for c, w in ((self.errors, "error"), (self.warnings, "warning"),
                                      (self.infos, "info")) if c]
        told = found or ["no findings"]
        if self.unchecked_models:
            told.append(f"{n(self.unchecked_models, 'model')} not checked")
        if self.no_model:
            told.append(f"{n(self.no_model, 'script')} built no model")
        if self.failed:
            told.append(f"{n(self.failed, 'file')} could not be checked")
        return f"{self.status}: {head}; {', '.join(told)}"


@dataclass
class Report:
    files: list[FileReport] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"schema": SCHEMA, "summary": self.summary().to_dict(),
                "files": [f.to_dict() for f in self.files]}

    def summary(self) -> Summary:
        """The run's status and counts."""
        diags = self.diagnostics
        status = max((f.status for f in self.files), key=STATUSES.index, default="clean")
        return Summary(status=status, worst=worst_severity(diags), files=len(self.files),
                       models=sum(m.kind != "layer" for m in self.models),
                       unchecked_models=sum(len(f.unchecked_models) for f in self.files),
                       no_model=sum(f.no_model for f in self.files),
                       failed=sum(f.status == "failed" for f in self.files),
                       errors=sum(d.severity == "error" for d in diags),
                       warnings=sum(d.severity == "warning" for d in diags),
                       infos=sum(d.severity == "info" for d in diags))

    def _repr_html_(self) -> str:
        """In a notebook: the graph and the findings (``SHOW["html"]``)."""
        import html

        show = SHOW.get("html")
        return show(self) if show else f"<pre>{html.escape(self.summary().line())}</pre>"

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        """In IPython: the console rendering (``SHOW["text"]``)."""
        show = SHOW.get("text")
        p.text(show(self) if show and not cycle else self.summary().line())

    @classmethod
    def from_dict(cls, d: dict) -> "Report":
        if d.get("schema") != SCHEMA:
            raise ValueError(f"not a {SCHEMA} document")
        return cls([FileReport.from_dict(f) for f in d.get("files", [])])

    @property
    def models(self) -> list[ModelEntry]:
        return [m for f in self.files for m in f.models]

    def filter(self, select: list[str] | None = None,
               ignore: list[str] | None = None) -> "Report":
        """Keep the findings whose codes pass ``select``/``ignore`` (codes or prefixes)."""
        for f in self.files:
            f.diagnostics = [d for d in f.diagnostics if selected(d.code, select, ignore)]
            f.finish()
        return self

    def suppress(self, per_file: dict[str, list[str]] | None = None,
                 base: str | None = None) -> "Report":
        """Drop findings silenced inline (``# shapecheck: ignore[SC301]`` on their line,
        or a bare ``# shapecheck: ignore``) or for their file (glob -> codes, globs
        relative to ``base``)."""
        import fnmatch
        import os

        for f in self.files:
            ignored: list[str] = []
            if f.path and per_file:
                rel = os.path.relpath(os.path.abspath(f.path), base or os.getcwd())
                for pattern, codes in per_file.items():
                    if fnmatch.fnmatch(rel, pattern) or fnmatch.fnmatch(f.path, pattern):
                        ignored += codes
            f.diagnostics = [d for d in f.diagnostics
                             if selected(d.code, None, ignored or None)
                             and not _silenced_inline(d)]
            f.finish()
        return self

    @property
    def diagnostics(self) -> list[Diagnostic]:
        return [d for f in self.files for d in f.diagnostics]

    def model(self, name: str) -> ModelEntry:
        for m in self.models:
            if m.name == name:
                return m
        raise KeyError(name)

    @property
    def exit_code(self) -> int:
        """0: nothing at error level; 1: error findings; 2: a file could not be checked."""
        return self.exit_code_for("error")

    def exit_code_for(self, fail_on: str = "error", strict: bool = False) -> int:
        """2 if a file could not be checked (with ``strict``, also if a model could not
        be checked or a file built no model); else 1 if a finding is at ``fail_on``
        ("error" or "warning") or above; else 0 ("never": only 0 or 2)."""
        if any(f.status == "failed" for f in self.files):
            return 2
        if strict and any(f.unchecked_models or f.no_model for f in self.files):
            return 2
        levels = {"error": ("error",), "warning": ("error", "warning"), "never": ()}[fail_on]
        if any(d.severity in levels for d in self.diagnostics):
            return 1
        return 0


def selected(code: str, select: list[str] | None, ignore: list[str] | None) -> bool:
    """Whether ``code`` passes ``--select``/``--ignore`` (codes or prefixes; longest wins)."""
    def best(prefixes: list[str] | None) -> int:
        return max((len(p) for p in prefixes or () if code.startswith(p.upper())), default=-1)

    chosen = best(select) if select else 0
    if chosen < 0:
        return False
    dropped = best(ignore)
    return dropped < 0 or chosen > dropped


_INLINE = re.compile(r"#\s*shapecheck:\s*ignore(?:\[([A-Za-z0-9, ]*)\])?")


def _silenced_inline(d: Diagnostic) -> bool:
    """Whether the finding's source line carries ``# shapecheck: ignore[...]`` for it."""
    m = _INLINE.search(d.source or "")
    if m is None:
        return False
    if m.group(1) is None:
        return True
    return any(d.code.startswith(c.strip().upper()) for c in m.group(1).split(",")
               if c.strip())
