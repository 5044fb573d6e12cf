"""Run the rules over what a script built: refused calls, models, the script's end."""

from __future__ import annotations

from typing import Any, Iterable

from shapecheck.report import Diagnostic
from shapecheck.rules import (FAILURE_CHECKS, MODEL_CHECKS, SCRIPT_ERROR_CHECKS, load)
from shapecheck.rules.context import ModelContext, PathFn


def explain_failure(failure: Any, ctx: ModelContext | None, call: Any,
                    show: PathFn) -> Diagnostic:
    """The finding for one call Keras refused (the generic one if no rule is sharper)."""
    load()
    for _, fn in FAILURE_CHECKS:
        try:
            d = fn(failure, ctx, call)
        except Exception:  # a rule's own bug: the next, more general rule answers
            d = None
        if d is not None:
            if ctx is None:
                d.path = show(failure.path)
            return d
    raise RuntimeError("no failure rule answered")  # pragma: no cover - SC101 always does


def model_findings(ctx: ModelContext) -> list[Diagnostic]:
    """Every model check over one model; findings at refused calls are left out."""
    load()
    failed = {c.name for c in ctx.calls if c.failure is not None}
    out: list[Diagnostic] = []
    for fn in MODEL_CHECKS:
        try:
            found = list(fn(ctx) or ())
        except Exception as err:  # a rule's own bug must not hide the other findings
            ctx.scope.note(ctx.name, "rule-error",
                           f"rule {fn.__module__}.{fn.__name__} failed: "
                           f"{type(err).__name__}: {err}")
            continue
        out += [d for d in found if d.layer not in failed]
    return out


def mark_follows(ctx: ModelContext, findings: Iterable[Diagnostic],
                 roots: dict[int, Diagnostic]) -> None:
    """Say which findings only follow from a refused call upstream of them."""
    for d in findings:
        call = ctx.by_name.get(d.layer or "")
        if call is None:
            continue
        for anc in sorted(ctx.ancestors(call)):
            c = ctx.by_id[anc]
            if c.failure is not None and id(c.failure) in roots:
                root = roots[id(c.failure)]
                if root is not d:
                    d.follows = f"{root.code} at {root.where} (`{root.layer}`)"
                break


def script_error_findings(info: Any) -> list[Diagnostic]:
    load()
    out = []
    for fn in SCRIPT_ERROR_CHECKS:
        d = fn(info)
        if d is not None:
            out.append(d)
    return out


def dedupe(findings: Iterable[Diagnostic]) -> list[Diagnostic]:
    """One finding per rule, place and message (models share layers), in line order."""
    seen: set[tuple] = set()
    out = []
    for d in findings:
        k = (d.code, d.path, d.line, d.col, d.layer, d.message)
        if k not in seen:
            seen.add(k)
            out.append(d)
    return out
