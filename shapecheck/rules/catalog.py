"""The rule catalog: stable codes, names, severities and docs.

A code is ``SC`` and three digits; the first digit is the family.  Codes and
names never change meaning once released; a retired rule keeps its code.
"""

from __future__ import annotations

import importlib
import pkgutil
import textwrap
from dataclasses import dataclass
from typing import Any

FAMILIES: dict[str, str] = {
    "SC1": "graph construction",
    "SC2": "sizes, windows and reshapes",
    "SC3": "merge and broadcast",
    "SC4": "recurrent",
    "SC5": "layer configuration",
    "SC6": "data",
    "SC7": "targets and losses",
    "SC8": "run time",
    "SC9": "code around the model",
}

SEVERITIES = ("error", "warning", "info")
# What executing the model (``--run``) shows when a finding is right:
# "fails": execution raises at or below the layer; "silent": it runs and gives
# the wrong shape the finding names; "none": execution cannot tell.
OUTCOMES = ("fails", "silent", "none")


@dataclass(frozen=True)
class RuleSpec:
    """One rule: what it is called and what it says about itself."""

    code: str
    name: str
    severity: str  # the usual severity; a finding may say less (never more)
    summary: str  # one line
    doc: str  # Markdown: What it does / Why is this bad / Example / Use instead
    outcome: str = "none"  # one of OUTCOMES

    @property
    def family(self) -> str:
        return FAMILIES.get(self.code[:3], "other")

    def finding(self, message: str, **fields: Any) -> Any:
        """A :class:`~shapecheck.report.Diagnostic` of this rule."""
        from shapecheck.report import Diagnostic

        severity = fields.pop("severity", self.severity)
        return Diagnostic(code=self.code, name=self.name, severity=severity,
                          message=message, **fields)


CATALOG: dict[str, RuleSpec] = {}


def define(code: str, name: str, severity: str, summary: str, doc: str,
           outcome: str | None = None) -> RuleSpec:
    """Add a rule to the catalog (once per code).

    ``outcome`` defaults to "fails" for errors and "none" otherwise.
    """
    if code in CATALOG:
        raise ValueError(f"duplicate rule code {code}")
    if severity not in SEVERITIES:
        raise ValueError(f"unknown severity {severity!r}")
    outcome = outcome or ("fails" if severity == "error" else "none")
    if outcome not in OUTCOMES:
        raise ValueError(f"unknown outcome {outcome!r}")
    spec = RuleSpec(code, name, severity, summary, textwrap.dedent(doc).strip(), outcome)
    CATALOG[code] = spec
    return spec


def lookup(code_or_name: str) -> RuleSpec | None:
    """A rule by code (``SC303``, any case) or name (``batch-broadcast``)."""
    load()
    key = code_or_name.strip()
    spec = CATALOG.get(key.upper())
    if spec is not None:
        return spec
    for s in CATALOG.values():
        if s.name == key.lower():
            return s
    return None


_LOADED = False


def load() -> None:
    """Import every family module of ``shapecheck.rules`` (each defines its rules)."""
    global _LOADED
    if _LOADED:
        return
    _LOADED = True
    from pathlib import Path

    here = str(Path(__file__).parent)
    for info in sorted(pkgutil.iter_modules([here]), key=lambda i: i.name):
        if info.name not in ("catalog", "context", "engine") and not info.name.startswith("_"):
            importlib.import_module(f"shapecheck.rules.{info.name}")


def all_rules() -> list[RuleSpec]:
    """Every rule, by code."""
    load()
    return [CATALOG[c] for c in sorted(CATALOG)]
