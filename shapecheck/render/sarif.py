"""SARIF 2.1.0, for GitHub code scanning and other SARIF viewers.

One run; ``tool.driver.rules`` is the whole rule catalog, each rule with its
Markdown doc as help.  Each finding is a result at its file, line and columns
(SARIF columns are 1-based like ours; SARIF's end column is exclusive, ours
inclusive).  Findings with no file (``check_model``) have no location.  In a
notebook a region is the line of the ``.ipynb`` file that holds the cell's line, with
no column (the cell and its line are in ``properties``: ``cell``, ``cell_line``,
``notebook_line``).

The other statuses:

- a file that could not be checked (``failed``) is an error notification of the
  invocation, which then did not succeed, at the line that raised, with the
  exception first; a script that raised after its findings is a note there;
- a model that could not be checked, and a script that built no model, are
  note-level *results* of two rules of their own (``not-checked``, ``no-model``,
  listed after the catalog): GitHub code scanning shows results as alerts (a
  note as severity "Note") but does not show a third-party tool's
  notifications, so a notification would leave them unseen there.
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any, Sequence
from pathlib import Path, PurePath
from urllib.parse import quote

from shapecheck.render.text import ordered
from shapecheck.report import Diagnostic, FileReport, Location, Report
from shapecheck.version import __version__

SCHEMA_URI = "https://json.schemastore.org/sarif-2.1.0.json"
VERSION = "2.1.0"
INFORMATION_URI = "https://pypi.org/project/keras-shapecheck/"
SRCROOT = "%SRCROOT%"
LEVELS = {"error": "error", "warning": "warning", "info": "note"}
FINGERPRINT = "shapecheck/v1"
# What is not a finding of a rule but is told as a note-level result (see above).
STATUS_RULES = (
    {"id": "not-checked", "name": "model-not-checked",
     "shortDescription": {"text": "a model whose graph could not be read was not checked"},
     "fullDescription": {"text": "shapecheck checks functional and Sequential models, and "
                                 "subclassed ones through their traced `call`; a subclassed "
                                 "model whose `call` could not be traced or was never given "
                                 "shapes (or a Sequential model without an input shape) has "
                                 "no graph it can read, so none of the rules ran on it."},
     "defaultConfiguration": {"level": "note"}, "properties": {"tags": ["status"]}},
    {"id": "no-model", "name": "no-model",
     "shortDescription": {"text": "the script built no Keras model: nothing was checked"},
     "fullDescription": {"text": "The script ran to its end without building a Keras model, "
                                 "so there was nothing to check."},
     "defaultConfiguration": {"level": "note"}, "properties": {"tags": ["status"]}},
)


def artifact_location(path: str) -> dict:
    """A relative path stays relative to ``%SRCROOT%``; an absolute one is a file URI."""
    if os.path.isabs(path):
        return {"uri": Path(path).as_uri()}
    return {"uri": quote(PurePath(path).as_posix()), "uriBaseId": SRCROOT}


def rule_descriptor(rule: Any) -> dict:
    return {
        "id": rule.code,
        "name": rule.name,
        "shortDescription": {"text": rule.summary},
        "fullDescription": {"text": rule.doc, "markdown": rule.doc},
        "help": {"text": rule.doc, "markdown": rule.doc},
        "defaultConfiguration": {"level": LEVELS.get(rule.severity, "note")},
        "properties": {"tags": [rule.family]},
    }


def fingerprint(d: Diagnostic) -> str:
    """Stable across runs and line moves: the rule, the file, the model, the layer and
    the message."""
    key = "\0".join([d.code, d.path or "", d.model or "", d.layer or "", d.message])
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:32]


def region(d: Diagnostic | Location) -> dict | None:
    if not d.line:
        return None
    if d.cell:  # a notebook: the .ipynb file's line
        r: dict = {"startLine": d.notebook_line or 1}
        if d.source is not None:
            r["snippet"] = {"text": d.source}
        return r
    r = {"startLine": d.line}
    if d.col:
        r["startColumn"] = d.col
        if d.end_col and d.end_col >= d.col:
            r["endColumn"] = d.end_col + 1  # SARIF's end column is one past the last
    elif d.source is not None:
        r["snippet"] = {"text": d.source}  # the region is the whole line
    return r


def location(d: Diagnostic | Location) -> dict:
    physical: dict = {"artifactLocation": artifact_location(d.path or "")}
    r = region(d)
    if r is not None:
        physical["region"] = r
        if "startColumn" in r and d.source is not None:
            physical["contextRegion"] = {"startLine": d.line, "snippet": {"text": d.source}}
    return {"physicalLocation": physical}


def result(d: Diagnostic, rule_index: dict[str, int]) -> dict:
    text = d.message + (f"\nhelp: {d.hint}" if d.hint else "")
    out: dict = {"ruleId": d.code}
    if d.code in rule_index:
        out["ruleIndex"] = rule_index[d.code]
    out["level"] = LEVELS.get(d.severity, "note")
    out["message"] = {"text": text}
    if d.path:
        out["locations"] = [location(d)]
    related = [r for r in d.related if r.path]
    if related:
        out["relatedLocations"] = [dict(location(r), id=i + 1, message={"text": r.message})
                                   for i, r in enumerate(related)]
    out["partialFingerprints"] = {FINGERPRINT: fingerprint(d)}
    props: dict = {"model": d.model, "layer": d.layer, "shapes": d.shapes, "dims": d.dims,
                   "confirmed": d.confirmed}
    for name in ("follows", "data", "run", "argument"):
        value = getattr(d, name)
        if value is not None:
            props[name] = value
    if d.also_in:
        props["also_in"] = d.also_in
    if d.cell:
        props.update(cell=d.cell, cell_line=d.line, notebook_line=d.notebook_line)
    out["properties"] = props
    return out


def notification(f: FileReport) -> dict:
    """An error notification for a file that could not be checked (a note where the
    script stopped after its findings): the exception first, at the line that raised."""
    assert f.error is not None
    err = f.error
    n: dict = {"level": "error" if f.status == "failed" else "note",
               "message": {"text": err.text},
               "properties": {"kind": err.kind, "status": f.status,
                              "exception": err.exception}}
    path = err.path or f.path
    if path:
        physical: dict = {"artifactLocation": artifact_location(path)}
        if err.path and err.line:
            physical["region"] = {"startLine": err.notebook_line or 1 if err.cell
                                  else err.line}
            if err.source is not None:
                physical["region"]["snippet"] = {"text": err.source}
        n["locations"] = [{"physicalLocation": physical}]
    return n


def _status_result(rule_id: str, index: int, text: str, path: str | None,
                   line: int | None, props: dict) -> dict:
    out: dict = {"ruleId": rule_id, "ruleIndex": index, "level": "note",
                 "message": {"text": text}}
    if path:
        physical: dict = {"artifactLocation": artifact_location(path)}
        if line:
            physical["region"] = {"startLine": line}
        out["locations"] = [{"physicalLocation": physical}]
    key = "\0".join([rule_id, path or "", str(props.get("model") or "")])
    out["partialFingerprints"] = {FINGERPRINT: hashlib.sha256(key.encode()).hexdigest()[:32]}
    out["properties"] = props
    return out


def status_results(f: FileReport, first_index: int) -> list[dict]:
    """Note-level results for the models not checked and for a script with no model
    (``first_index``: where ``STATUS_RULES`` start in the driver's rules)."""
    out = [_status_result("not-checked", first_index,
                          f"model `{m.name}` ({m.kind}) was not checked: "
                          f"{m.reason or 'its graph could not be read'}",
                          m.path or f.path, None if m.cell else m.line,
                          {"model": m.name, "kind": m.kind, "reason": m.reason})
           for m in f.unchecked_models]
    if f.no_model:
        out.append(_status_result("no-model", first_index + 1,
                                  "the script built no Keras model: nothing was checked",
                                  f.path, None, {}))
    return out


def to_sarif(report: Report, rules: Sequence[Any]) -> dict:
    """The SARIF log of ``report``; ``rules``: the rule catalog, in order (each with
    ``code``, ``name``, ``severity``, ``summary``, ``doc``, ``family``)."""
    rules = list(rules)
    rule_index = {rule.code: i for i, rule in enumerate(rules)}
    results = [result(d, rule_index) for f in report.files for d in ordered(f)]
    results += [r for f in report.files for r in status_results(f, len(rules))]
    told = [f for f in report.files if f.error is not None]
    failed = [f for f in told if f.status == "failed"]
    invocation = {"executionSuccessful": not failed,
                  "toolExecutionNotifications": [notification(f) for f in told]}
    run: dict = {
        "tool": {"driver": {"name": "shapecheck", "version": __version__,
                            "semanticVersion": __version__,
                            "informationUri": INFORMATION_URI,
                            "rules": [rule_descriptor(rule) for rule in rules]
                            + [dict(r) for r in STATUS_RULES]}},
        "invocations": [invocation],
        "results": results,
        "columnKind": "unicodeCodePoints",
    }
    paths = [loc["physicalLocation"]["artifactLocation"].get("uriBaseId") for r in
             results + invocation["toolExecutionNotifications"] for loc in r.get("locations", [])]
    if SRCROOT in paths:
        run["originalUriBaseIds"] = {SRCROOT: {"uri": Path.cwd().as_uri() + "/"}}
    return {"$schema": SCHEMA_URI, "version": VERSION, "runs": [run]}


def render(report: Report, rules: Sequence[Any]) -> str:
    """The SARIF log as text; ``rules``: the rule catalog (see :func:`to_sarif`)."""
    return json.dumps(to_sarif(report, rules), indent=2)
