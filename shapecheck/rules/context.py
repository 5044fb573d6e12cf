"""What a rule sees of one model: calls, symbolic shapes, wiring, call sites."""

from __future__ import annotations

import linecache
from typing import Any, Callable, Iterable

import networkx as nx

from shapecheck.shapes import dims
from shapecheck.shapes.graph import LayerCall
from shapecheck.shapes.infer import ModelShapes
from shapecheck.rules.catalog import RuleSpec

PathFn = Callable[[str | None], str | None]

# Layers that pass their input's shape through unchanged (for walking past them).
SHAPE_PRESERVING = frozenset({
    "Dropout", "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D",
    "GaussianNoise", "GaussianDropout", "AlphaDropout", "ActivityRegularization",
    "BatchNormalization", "LayerNormalization", "GroupNormalization",
    "UnitNormalization", "Activation", "ReLU", "LeakyReLU", "PReLU", "ELU",
    "Softmax", "Masking", "Identity",
})


def dot_axes(op: Any, shapes: list[tuple]) -> tuple[int, int] | None:
    """The axis of each of a Dot's two inputs that it contracts (non-negative)."""
    axes = getattr(op, "axes", None)
    if axes is None or len(shapes) != 2:
        return None
    pair = (axes, axes) if isinstance(axes, int) else tuple(axes)
    a, b = (p % len(s) for p, s in zip(pair, shapes))
    return a, b


def jshape(shape: tuple | None) -> list | None:
    """A symbolic shape as JSON (ints, dim expressions as text)."""
    return None if shape is None else [dims.to_json(d) for d in shape]


def numbered(shapes: list[tuple | None]) -> dict[str, tuple | None]:
    """Shapes labelled for a finding: ``input``, or ``input 0``, ``input 1``, ..."""
    if len(shapes) == 1:
        return {"input": shapes[0]}
    return {f"input {i}": s for i, s in enumerate(shapes)}


def source_line(path: str | None, line: int | None) -> str | None:
    if not path or not line:
        return None
    text = linecache.getline(path, line)
    return text.rstrip("\n") or None


class ModelContext:
    """One analysed model, as the rules read it."""

    def __init__(self, model: Any, shapes: ModelShapes, show: PathFn,
                 compiled: dict | None = None) -> None:
        self.model = model
        self.name: str = getattr(model, "name", "model")
        self.graph = shapes.graph
        self.scope = shapes.scope
        self.show = show
        self.compiled = compiled
        self.calls: list[LayerCall] = list(shapes.graph.calls)
        self.by_id = {c.id: c for c in self.calls}
        self.by_name: dict[str, LayerCall] = {}
        for c in self.calls:
            self.by_name.setdefault(c.name, c)
        self._out = {r.call.id: r.shapes for r in shapes.results}
        self._ancestors: dict[int, set[int]] = {}
        # output tensor key -> the shapes of the targets the script feeds it (sampled)
        self.fed_targets: dict[int, list[tuple]] = {}

    # -- shapes ---------------------------------------------------------------
    def out_shapes(self, call: LayerCall) -> list[tuple]:
        return self._out.get(call.id, [])

    def tensor_shape(self, key: int) -> tuple | None:
        src = self.graph.producer.get(key)
        if src is None:
            return None
        outs = self._out.get(src[0], [])
        return outs[src[1]] if src[1] < len(outs) else None

    def in_shapes(self, call: LayerCall) -> list[tuple | None]:
        return [self.tensor_shape(k) for k in call.inputs]

    # -- wiring -----------------------------------------------------------------
    def producer(self, key: int) -> LayerCall | None:
        src = self.graph.producer.get(key)
        return self.by_id[src[0]] if src is not None else None

    def producers(self, call: LayerCall) -> list[LayerCall | None]:
        return [self.producer(k) for k in call.inputs]

    def consumers(self, call: LayerCall) -> list[LayerCall]:
        return [self.by_id[n] for n in self.graph.graph.successors(call.id)]

    def through(self, call: LayerCall | None) -> LayerCall | None:
        """``call``, or the first call upstream of it that is not shape-preserving."""
        while call is not None and call.cls in SHAPE_PRESERVING and call.inputs:
            call = self.producer(call.inputs[0])
        return call

    def ancestors(self, call: LayerCall) -> set[int]:
        got = self._ancestors.get(call.id)
        if got is None:
            got = self._ancestors[call.id] = nx.ancestors(self.graph.graph, call.id)
        return got

    def is_output(self, call: LayerCall) -> bool:
        return any(k in self.graph.outputs for k in call.outputs)

    def model_inputs(self) -> list[LayerCall]:
        return [c for c in self.calls if c.is_input]

    @property
    def traced(self) -> bool:
        """A graph traced from a subclassed model's (or a user's layer's) `call`: its
        unknown sizes are shapecheck's trial, not sizes the user declared variable."""
        return getattr(self.model, "_shapecheck_trace", None) is not None

    def dim_origins(self, shapes: Iterable[tuple | None]) -> dict[str, str]:
        """``name -> origin`` for the named dims that appear in ``shapes``."""
        out: dict[str, str] = {}
        for s in shapes:
            for d in s or ():
                for n in sorted(dims.free_names(d)):
                    info = self.scope.dims.get(n)
                    if info is not None:
                        out[n] = info.origin
        return out

    # -- findings -------------------------------------------------------------
    def finding(self, spec: RuleSpec, call: LayerCall, message: str, *,
                shapes: dict[str, tuple | None] | None = None, hint: str | None = None,
                severity: str | None = None, dims_: dict[str, str] | None = None) -> Any:
        shapes = shapes or {}
        fields: dict[str, Any] = dict(
            model=self.name, layer=call.name, path=self.show(call.path), line=call.line,
            col=call.col, end_col=call.end_col, source=source_line(call.path, call.line), hint=hint,
            shapes={k: jshape(v) for k, v in shapes.items()},
            dims=dims_ if dims_ is not None else self.dim_origins(shapes.values()))
        if severity:
            fields["severity"] = severity
        return spec.finding(message, **fields)


def data_finding(spec: RuleSpec, ctx: ModelContext, binding: Any, message: str, *,
                 call: LayerCall | None = None, layer: str | None = None,
                 shapes: dict[str, tuple | None] | None = None, hint: str | None = None,
                 severity: str | None = None) -> Any:
    """A finding that data shows: at ``call``'s line, else at the data call's line."""
    if call is not None:
        d = ctx.finding(spec, call, message, shapes=shapes, hint=hint, severity=severity)
    else:
        feed = binding.feed
        fields: dict[str, Any] = dict(
            model=ctx.name, layer=layer, path=ctx.show(feed.path), line=feed.line,
            source=source_line(feed.path, feed.line), hint=hint,
            shapes={k: jshape(v) for k, v in (shapes or {}).items()},
            dims=ctx.dim_origins((shapes or {}).values()))
        if severity:
            fields["severity"] = severity
        d = spec.finding(message, **fields)
    d.data = binding.describe(ctx.show)
    return d


def failure_shapes(failure: Any, ctx: ModelContext | None,
                   call: LayerCall | None) -> list[tuple | None]:
    """The refused call's input shapes: symbolic inside a model, else Keras's."""
    if ctx is not None and call is not None:
        shapes = ctx.in_shapes(call)
        if all(s is not None for s in shapes) and shapes:
            return shapes
    batch = dims.named("batch")
    return [tuple(batch if (i == 0 and d is None) else d for i, d in enumerate(s))
            for s in failure.input_shapes]


def failure_finding(spec: RuleSpec, failure: Any, ctx: ModelContext | None,
                    call: LayerCall | None, message: str, *,
                    shapes: dict[str, tuple | None] | None = None,
                    hint: str | None = None, show: PathFn | None = None) -> Any:
    """A finding at the line where Keras refused a call."""
    if ctx is not None and call is not None:
        d = ctx.finding(spec, call, message, shapes=shapes, hint=hint)
    else:
        shapes = shapes or {}
        d = spec.finding(message, layer=getattr(failure.op, "name", None),
                         path=(show or (lambda p: p))(failure.path), line=failure.line,
                         col=failure.col, end_col=failure.end_col,
                         source=source_line(failure.path, failure.line),
                         hint=hint, shapes={k: jshape(v) for k, v in shapes.items()})
    d.path = d.path if d.path else failure.path
    return d


# Keras's merge layers, by class name
MERGES = {"Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum", "Concatenate",
           "Dot"}
