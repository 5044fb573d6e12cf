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
    from shapecheck.rules.construction import unexplained_shape_errors

    return out + unexplained_shape_errors(ctx, out)


def mark_follows(ctx: ModelContext, findings: Iterable[Diagnostic],
                 roots: dict[int, Diagnostic]) -> list[tuple[Diagnostic, Diagnostic]]:
    """Say which findings only follow from a refused call upstream of them; the
    ``(follower, root)`` pairs."""
    pairs = []
    for d in findings:
        call = ctx.by_name.get(d.layer or "")
        if call is None:
            continue
        for anc in [call.id] + sorted(ctx.ancestors(call)):  # the refused call itself first
            c = ctx.by_id[anc]
            f = c.failure if c.failure is not None else c.inner_failure
            if f is not None and id(f) in roots:
                root = roots[id(f)]
                if root is not d:
                    d.follows = follows_text(root)
                    pairs.append((d, root))
                break
    return pairs


def mark_consequences(ctx: ModelContext, findings: list[Diagnostic]
                      ) -> list[tuple[Diagnostic, Diagnostic]]:
    """Mark each error downstream of another error of this model's layers as following
    from the most upstream one; the ``(follower, root)`` pairs."""
    order = {c.name: i for i, c in enumerate(ctx.calls)}
    # A data finding is a root only for targets downstream of it: the data broke a
    # constraint there (SC604), so the shapes after it hold for other sizes than fed.
    roots = sorted((d for d in findings if d.severity == "error" and d.follows is None
                    and (not d.code.startswith("SC6") or d.code == "SC604")
                    and d.layer in order),
                   key=lambda d: order[d.layer or ""])
    pairs = []
    for d in findings:
        call = ctx.by_name.get(d.layer or "")
        if d.follows is not None or d.severity != "error" or call is None:
            continue
        above = ctx.ancestors(call)

        def upstream(r: Diagnostic) -> bool:
            if r.code == "SC604" and not d.code.startswith("SC7"):
                return False
            at = ctx.by_name[r.layer or ""].id
            # a data or target finding at the layer a model finding sits on follows from it
            return at in above or at == call.id and d.code[:3] in ("SC6", "SC7") \
                and r.code[:3] not in ("SC6", "SC7")

        root = next((r for r in roots if r is not d and upstream(r)), None)
        if root is not None:
            pairs.append((d, root))
    for d, root in pairs:
        d.follows = follows_text(root)
    return pairs


def mark_traced_upstream(ctx: ModelContext, findings: list[Diagnostic],
                         roots: dict[int, Diagnostic]) -> list[tuple[Diagnostic, Diagnostic]]:
    """A user's layer traced in place on what a refused call upstream of it made (the
    traced graph's ``_shapecheck_after``): each finding not yet following another
    follows from that call's; the ``(follower, root)`` pairs."""
    after = getattr(ctx.model, "_shapecheck_after", None)
    root = roots.get(id(after)) if after is not None else None
    pairs = []
    for d in findings if root is not None else ():
        if d.follows is None and d is not root:
            d.follows = follows_text(root)
            pairs.append((d, root))
    return pairs


def follows_text(root: Diagnostic) -> str:
    return f"{root.code} at {root.where} (`{root.layer}`)"


def script_error_findings(info: Any) -> list[Diagnostic]:
    load()
    out = []
    for fn in SCRIPT_ERROR_CHECKS:
        d = fn(info)
        if d is not None:
            out.append(d)
    return out


def dedupe(findings: Iterable[Diagnostic]) -> list[Diagnostic]:
    """One finding per rule, place and message; across models that share a layer (a
    trained model, its inference model) one per rule, layer and message: the first,
    naming the others."""
    seen: set[tuple] = set()
    first: dict[tuple, Diagnostic] = {}
    out = []
    for d in findings:
        k = (d.code, d.path, d.line, d.col, d.layer, d.message)
        shared = (d.code, d.path, d.layer, d.message)
        kept = first.get(shared) if d.layer is not None else None
        if kept is not None and d.model is not None and kept.model != d.model:
            if d.model not in kept.also_in:
                kept.also_in.append(d.model)
            continue
        if k in seen:
            continue
        seen.add(k)
        if d.layer is not None:
            first.setdefault(shared, d)
        out.append(d)
    return out


def data_findings(ctx: ModelContext, feeds: list[Any]) -> tuple[list[Diagnostic], list[Any]]:
    """Findings from the data fed to one model, and the binding of every sampled batch."""
    from shapecheck.data.bind import bind
    from shapecheck.rules import BATCH_CHECKS, FEED_CHECKS

    load()
    out: list[Diagnostic] = []
    bindings = []
    seen: set[tuple] = set()

    def add(found: Iterable[Diagnostic]) -> None:
        for d in found:
            key = (d.code, d.layer, d.path, d.line)  # once per place, not per batch
            if key not in seen:
                seen.add(key)
                out.append(d)

    for feed in feeds:
        for fn in FEED_CHECKS:
            add(_safe(fn, ctx, feed))
        for batch in feed.batches:
            try:
                b = bind(ctx, feed, batch)
            except Exception as err:  # our own bug: say so, keep going
                ctx.scope.note(ctx.name, "rule-error",
                               f"binding {feed.method} data failed: {type(err).__name__}: {err}")
                continue
            bindings.append(b)
            for fn in BATCH_CHECKS:
                add(_safe(fn, ctx, b))
    return out, bindings


def _safe(fn: Any, ctx: ModelContext, arg: Any) -> list[Diagnostic]:
    try:
        return list(fn(ctx, arg) or ())
    except Exception as err:  # a rule's own bug must not hide the others
        ctx.scope.note(ctx.name, "rule-error",
                       f"rule {fn.__module__}.{fn.__name__} failed: {type(err).__name__}: {err}")
        return []
