"""SARIF 2.1.0, for GitHub code scanning and other SARIF viewers.

One run; ``tool.driver.rules`` is the whole rule catalog, each rule with its
Markdown doc as help.  Each finding is a result at its file, line and columns
(SARIF columns are 1-based like ours; SARIF's end column is exclusive, ours
inclusive).  Files that could not be checked are error notifications of the
invocation, which then did not succeed.  Findings with no file (``check_model``)
have no location.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path, PurePath
from urllib.parse import quote

import shapecheck
from shapecheck.render.text import ordered
from shapecheck.report import Diagnostic, FileReport, Report
from shapecheck.rules.catalog import RuleSpec

SCHEMA_URI = "https://json.schemastore.org/sarif-2.1.0.json"
VERSION = "2.1.0"
INFORMATION_URI = "https://pypi.org/project/keras-shapecheck/"
SRCROOT = "%SRCROOT%"
LEVELS = {"error": "error", "warning": "warning", "info": "note"}
FINGERPRINT = "shapecheck/v1"


def artifact_location(path: str) -> dict:
    """A relative path stays relative to ``%SRCROOT%``; an absolute one is a file URI."""
    if os.path.isabs(path):
        return {"uri": Path(path).as_uri()}
    return {"uri": quote(PurePath(path).as_posix()), "uriBaseId": SRCROOT}


def rule_descriptor(rule: RuleSpec) -> dict:
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


def region(d: Diagnostic) -> dict | None:
    if not d.line:
        return None
    r: dict = {"startLine": d.line}
    if d.col:
        r["startColumn"] = d.col
        if d.end_col and d.end_col >= d.col:
            r["endColumn"] = d.end_col + 1  # SARIF's end column is one past the last
    elif d.source is not None:
        r["snippet"] = {"text": d.source}  # the region is the whole line
    return r


def location(d: Diagnostic) -> dict:
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
    out["partialFingerprints"] = {FINGERPRINT: fingerprint(d)}
    props: dict = {"model": d.model, "layer": d.layer, "shapes": d.shapes, "dims": d.dims,
                   "confirmed": d.confirmed}
    for name in ("follows", "data", "run"):
        value = getattr(d, name)
        if value is not None:
            props[name] = value
    out["properties"] = props
    return out


def notification(f: FileReport) -> dict:
    assert f.error is not None
    n: dict = {"level": "error",
               "message": {"text": f.error.message.rstrip() or f.error.kind},
               "properties": {"kind": f.error.kind}}
    if f.path:
        n["locations"] = [{"physicalLocation": {"artifactLocation": artifact_location(f.path)}}]
    return n


def to_sarif(report: Report) -> dict:
    from shapecheck.rules import all_rules

    rules = all_rules()
    rule_index = {rule.code: i for i, rule in enumerate(rules)}
    results = [result(d, rule_index) for f in report.files for d in ordered(f)]
    failed = [f for f in report.files if f.status == "failed" and f.error is not None]
    invocation = {"executionSuccessful": not failed,
                  "toolExecutionNotifications": [notification(f) for f in failed]}
    run: dict = {
        "tool": {"driver": {"name": "shapecheck", "version": shapecheck.__version__,
                            "semanticVersion": shapecheck.__version__,
                            "informationUri": INFORMATION_URI,
                            "rules": [rule_descriptor(rule) for rule in rules]}},
        "invocations": [invocation],
        "results": results,
        "columnKind": "unicodeCodePoints",
    }
    paths = [d.path for d in report.diagnostics if d.path] + [f.path for f in failed if f.path]
    if any(not os.path.isabs(p) for p in paths):
        run["originalUriBaseIds"] = {SRCROOT: {"uri": Path.cwd().as_uri() + "/"}}
    return {"$schema": SCHEMA_URI, "version": VERSION, "runs": [run]}


def render(report: Report) -> str:
    return json.dumps(to_sarif(report), indent=2)
