"""Diagnostic rules: from symbolic shapes to findings a user can act on.

Each family module defines its rules with :func:`~shapecheck.rules.catalog.define`
and registers checks:

- ``@model_check``: ``fn(ctx: ModelContext) -> Iterable[Diagnostic]`` over one
  analysed model;
- ``@failure_check``: ``fn(failure, ctx, call) -> Diagnostic | None`` turns a
  call Keras refused into a finding (the first that answers wins);
- ``@script_error_check``: ``fn(err_info) -> Diagnostic | None`` explains an
  exception that stopped the script;
- ``@batch_check``: ``fn(ctx, binding) -> Iterable[Diagnostic]`` over one
  sampled batch bound to a model (:mod:`shapecheck.data.bind`);
- ``@feed_check``: ``fn(ctx, feed) -> Iterable[Diagnostic]`` over one data feed
  as a whole (structure problems, sampling).

Rules never print; renderers do.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable

from shapecheck.rules.catalog import (CATALOG, FAMILIES, RuleSpec, all_rules, define, load,
                                      lookup)

__all__ = ["CATALOG", "FAMILIES", "RuleSpec", "define", "lookup", "load",
           "model_check", "failure_check", "script_error_check", "batch_check",
           "feed_check", "all_rules"]

ModelCheck = Callable[[Any], Iterable[Any]]
FailureCheck = Callable[[Any, Any, Any], Any]
ScriptErrorCheck = Callable[[Any], Any]

MODEL_CHECKS: list[ModelCheck] = []
FAILURE_CHECKS: list[tuple[int, FailureCheck]] = []
SCRIPT_ERROR_CHECKS: list[ScriptErrorCheck] = []
BATCH_CHECKS: list[Callable[[Any, Any], Iterable[Any]]] = []
FEED_CHECKS: list[Callable[[Any, Any], Iterable[Any]]] = []


def batch_check(fn: Callable[[Any, Any], Iterable[Any]]) -> Callable[[Any, Any], Iterable[Any]]:
    BATCH_CHECKS.append(fn)
    return fn


def feed_check(fn: Callable[[Any, Any], Iterable[Any]]) -> Callable[[Any, Any], Iterable[Any]]:
    FEED_CHECKS.append(fn)
    return fn


def model_check(fn: ModelCheck) -> ModelCheck:
    MODEL_CHECKS.append(fn)
    return fn


def failure_check(priority: int = 50) -> Callable[[FailureCheck], FailureCheck]:
    """Register a failure explainer; lower ``priority`` runs first."""

    def deco(fn: FailureCheck) -> FailureCheck:
        FAILURE_CHECKS.append((priority, fn))
        FAILURE_CHECKS.sort(key=lambda p: p[0])
        return fn

    return deco


def script_error_check(fn: ScriptErrorCheck) -> ScriptErrorCheck:
    SCRIPT_ERROR_CHECKS.append(fn)
    return fn
