"""Turn a Keras model into a report entry: graph, symbolic shapes, constraints."""

from __future__ import annotations

from typing import Any, Callable

from shapecheck.shapes import dims
from shapecheck.shapes.infer import ModelShapes, is_model, infer_model
from shapecheck.report import (ConstraintEntry, Diagnostic, LayerEntry, ModelEntry,
                               NoteEntry, display_path)

PathFn = Callable[[str | None], str | None]


class Unreadable:
    """A model shapecheck cannot read as a Keras 3 graph (a tf_keras model with no
    Keras 3 twin): reported ``checked: false`` with ``reason``."""

    _shapecheck_unreadable = True

    def __init__(self, name: str, kind: str, reason: str) -> None:
        self.name, self.kind, self.reason = name, kind, reason


def model_kind(model: Any) -> str:
    from keras import Sequential

    if isinstance(model, Unreadable):
        return model.kind
    if isinstance(model, Sequential):
        return "sequential" if getattr(model, "_functional", None) is not None else "unbuilt"
    if hasattr(model, "_inputs_struct") and hasattr(model, "_operations"):
        return "functional"
    return "subclassed"


def model_entry(model: Any, path: str | None = None, line: int | None = None,
                show: PathFn = display_path,
                bindings: dict[str, int] | None = None,
                shapes: ModelShapes | None = None) -> ModelEntry:
    """Infer every call's symbolic shape in ``model`` and describe it as data."""
    kind = model_kind(model)
    entry = ModelEntry(name=model.name, kind=kind, path=show(path), line=line)
    if kind == "unbuilt":
        entry.checked = False
        entry.reason = ("Sequential model without an input shape: add "
                        "`keras.Input(shape=...)` as its first layer to check it")
        entry.notes.append(NoteEntry(model.name, "unbuilt", entry.reason))
        return entry
    if kind == "subclassed":  # its graph is its traced `call`: see `analyze`
        return untraced_entry(model, path, line, show, None)
    shapes = shapes or infer_model(model)
    by_id = {c.id: c for c in shapes.graph.calls}
    index: dict[int, int] = {}  # call id -> its position in entry.layers
    for r in shapes.results:
        call = r.call
        if call.internal:
            continue
        inputs, sources = [], []
        for k in call.inputs:
            src = shapes.graph.producer.get(k)
            if src is None or by_id[src[0]].internal:
                continue
            if by_id[src[0]].name not in inputs:
                inputs.append(by_id[src[0]].name)
            if src[0] in index:
                sources.append([index[src[0]], src[1]])
        index[call.id] = len(entry.layers)
        entry.layers.append(LayerEntry(
            name=call.name, cls=call.cls, path=show(call.path), line=call.line,
            inputs=inputs,
            output_shapes=[[dims.to_json(dims.bind(d, bindings)) for d in s]
                           for s in r.shapes],
            sources=sources, model=call.op.name if is_model(call.op) else None))
    used = {n for r in shapes.results for s in r.shapes for d in s
            for n in dims.free_names(d)}
    entry.dims = {n: info.origin for n, info in shapes.scope.dims.items() if n in used}
    entry.constraints = [ConstraintEntry(dims.to_json(c.lhs), dims.to_json(c.rhs), c.layer,
                                         c.reason, c.holds)
                         for c in shapes.scope.constraints]
    entry.notes = [NoteEntry(n.layer, n.kind, n.message) for n in shapes.scope.notes]
    return entry


def with_traced_layers(models: list[tuple[Any, str | None, int | None]],
                       traces: dict[int, Any]) -> list[tuple[Any, str | None, int | None]]:
    """The models, each subclassed one followed by the graphs of the user's layers
    traced inside it (each checked as a model of its own, and opened in place)."""
    out = []
    seen: set[int] = set()
    for model, path, line in models:
        traced = traces.get(id(model))
        for layer, functional in (traced.nested if traced is not None else ()):
            if id(functional) in seen:
                continue
            seen.add(id(functional))
            created = getattr(layer, "_shapecheck_created", None) or (None, None)
            out.append((functional, created[0], created[1]))
        out.append((model, path, line))  # after its layers: their refused calls come first
    return out


def untraced_entry(model: Any, path: str | None, line: int | None, show: PathFn,
                   traced: Any, steps: list[Any] = ()) -> ModelEntry:
    """A subclassed model whose ``call`` was not traced, and why; one without a
    ``call`` of its own is checked through the step ``fit`` runs, when it was traced."""
    entry = ModelEntry(name=model.name, kind="subclassed", path=show(path), line=line,
                       checked=False)
    if traced is not None and not traced.has_call:
        ran = [s for s in steps if s.reason is None]
        if ran:
            entry.checked = True
            names = ", ".join(sorted({f"`{s.step}`" for s in ran}))
            entry.notes.append(NoteEntry(model.name, "subclassed",
                                         f"no `call` of its own: {names} traced instead"))
            return entry
        entry.reason = "it has no `call` of its own, and no custom step was traced"
    elif traced is None:
        entry.reason = ("subclassed model never built, called or given data: its `call` "
                        "has no input shapes to be traced with (call `model.build(shape)` "
                        "or give it data)")
    else:
        where = ""
        if traced.where and traced.where[0]:
            where = f" at {show(traced.where[0])}:{traced.where[1]}"
        entry.reason = f"its `call` could not be traced{where}: {traced.reason}"
    entry.notes.append(NoteEntry(model.name, "subclassed", entry.reason))
    return entry


def analyze(models: list[tuple[Any, str | None, int | None]], *, failures: list[Any] = (),
            compiled: dict[int, dict] | None = None, show: PathFn = display_path,
            bindings: dict[str, int] | None = None, data_calls: list[Any] = (),
            run: Any = None, traces: dict[int, Any] | None = None,
            steps: list[Any] = (), declared: list[Any] = (),
            ) -> tuple[list[ModelEntry], list[Diagnostic]]:
    """Entries and findings for the models a script built and the calls Keras refused.

    ``models`` holds ``(model, path, line)``; ``failures`` the refused calls
    (:class:`shapecheck.script.standin.Failure`); ``compiled`` maps ``id(model)`` to
    its ``compile`` arguments; ``traces`` maps ``id(model)`` of a subclassed model to
    its traced ``call`` (:class:`shapecheck.script.trace.Trace`); ``steps`` holds
    the custom steps traced (:class:`shapecheck.script.steps.StepTrace`); ``declared``
    the user's layers whose ``compute_output_shape`` disagrees with their traced
    ``call`` (:class:`shapecheck.script.trace.Declared`); ``run``
    (:class:`shapecheck.verify.execute.RunOptions`) executes each model after the
    static pass and marks what it confirms.
    """
    from shapecheck.rules.context import ModelContext
    from shapecheck.rules.causes import blame_causes
    from shapecheck.rules.engine import (data_findings, dedupe, explain_failure,
                                         follows_text, mark_consequences, mark_follows,
                                         mark_traced_upstream, model_findings)
    from shapecheck.rules.minimum import minimum_sizes
    from shapecheck.rules.steps import step_findings
    from shapecheck.rules.declared import declared_findings

    entries: list[ModelEntry] = []
    roots: dict[int, Diagnostic] = {}  # id(failure) -> its finding
    found: list[Diagnostic] = []
    said: set[int] = set()  # the declared-shape records reported
    for model, path, line in with_traced_layers(models, traces or {}):
        kind = model_kind(model)
        if isinstance(model, Unreadable):
            entry = ModelEntry(model.name, kind, show(path), line, checked=False,
                               reason=model.reason)
            entry.notes.append(NoteEntry(model.name, kind, model.reason))
            entries.append(entry)
            continue
        try:
            graph = model
            own_steps = [s for s in steps if s.model is model]
            layer = getattr(model, "_shapecheck_trace", None)  # a user's layer, traced
            if layer is not None:
                kind = "layer" if not is_model(layer) else "subclassed"
            elif kind == "subclassed":
                traced = (traces or {}).get(id(model))
                if traced is None or traced.functional is None:
                    entries.append(untraced_entry(model, path, line, show, traced, own_steps))
                    found += step_findings(None, own_steps, model.name, show)
                    continue
                graph = traced.functional
            shapes = infer_model(graph) if kind != "unbuilt" else None
            if shapes is None:
                entries.append(model_entry(model, path, line, show, bindings, shapes))
                continue
            loss = (compiled or {}).get(id(model))
            if any(not s.uses_compiled_loss for s in own_steps):
                loss = None  # the step computes its own loss: no target rule applies
            ctx = ModelContext(graph, shapes, show, loss)
            mine: list[Diagnostic] = []
            for call in ctx.calls:
                f = call.failure
                if f is not None and id(f) not in roots:
                    roots[id(f)] = explain_failure(f, ctx, call, show)
                    mine.append(roots[id(f)])
            feeds = [f for c in data_calls if c.model is model for f in c.feeds]
            from_data, bound = data_findings(ctx, feeds)
            for b in bound:
                for m in b.targets:
                    ctx.fed_targets.setdefault(m.key, []).append(tuple(m.info.shape))
            mine += model_findings(ctx)
            mine += from_data
            mine += step_findings(ctx, own_steps, model.name, show)
            mine += declared_findings(ctx, declared, said)
            after = mark_follows(ctx, mine, roots)
            after += mark_consequences(ctx, mine)
            after += mark_traced_upstream(ctx, mine, roots)
            minimums = minimum_sizes(ctx)
            executed = execute_model(ctx, mine, bound, minimums, run) if run else None
            blame_causes(ctx, mine, bound)
            for d, root in after:  # name the root where it now sits
                d.follows = follows_text(root)
            found += mine
            entry = model_entry(graph, path, line, show, bindings, shapes)
            entry.name, entry.kind = model.name, kind
            entry.data = [{"data": b.describe(show), "dims": dict(b.values),
                           "from": dict(b.sources)} for b in bound]
            entry.minimums = {n: {"size": size, "layer": layer}
                              for n, (size, layer) in minimums.items()}
            entry.run = executed
            for text in getattr(model, "_shapecheck_origin", ()):  # a tf_keras model's twin
                entry.notes.append(NoteEntry(model.name, "tf_keras", text))
            entries.append(entry)
        except Exception as err:  # our own bug: say so, never crash
            entry = ModelEntry(getattr(model, "name", "?"), kind, show(path), line,
                               checked=False, reason=f"shapecheck could not analyse this "
                               f"model: {type(err).__name__}: {err}")
            entry.notes.append(NoteEntry(entry.name, "internal-error", entry.reason))
            entries.append(entry)
    for f in failures:  # refused calls outside every model
        if id(f) not in roots:
            roots[id(f)] = explain_failure(f, None, None, show)
            found.append(roots[id(f)])
    found = dedupe(found)
    found.sort(key=lambda d: (d.path or "", d.line or 0, d.col or 0))
    return entries, found


def execute_model(ctx: Any, found: list[Diagnostic], bound: list[Any],
                  minimums: dict[str, tuple[int, str]], options: Any) -> dict:
    """Run one model (``--run``); add the run's findings to ``found``; its record."""
    from shapecheck.verify.backends import DeviceError
    from shapecheck.verify.execute import ModelRun, run_model
    from shapecheck.verify.plans import PlanError, data_plans, synthetic_plans
    from shapecheck.rules.runtime import confirm

    refused = [c for c in ctx.calls if c.failure is not None or c.inner_failure is not None]
    if refused:
        for d in found:
            if d.follows is None and d.layer in {c.name for c in refused}:
                d.confirmed, d.run = True, "seen: Keras raised it when the script built the model"
        return ModelRun("", skipped=f"not executed: Keras refused {len(refused)} call(s) "
                        "when the script built it").to_dict(ctx.show)
    try:
        notes: list[str] = []
        plans = data_plans(ctx, bound) or synthetic_plans(
            ctx, options, {n: size for n, (size, _) in minimums.items()}, notes)
        mrun = run_model(ctx, plans, options, notes)
    except (PlanError, DeviceError) as err:
        return ModelRun("", skipped=f"not executed: {err}").to_dict(ctx.show)
    except Exception as err:  # our own bug: the static findings still stand
        return ModelRun("", skipped=f"not executed: shapecheck failed to run it "
                        f"({type(err).__name__}: {err})").to_dict(ctx.show)
    found += confirm(ctx, mrun, found, mrun.device)
    return mrun.to_dict(ctx.show)
