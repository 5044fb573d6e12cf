"""Propagate symbolic shapes through a model graph.

Every dim Keras leaves as ``None`` gets a name: one ``batch`` shared by all
inputs, readable names for the other unknown axes.  Each call's output shape
comes from its rule (``shapecheck.shapes.layers``) or, for layers without one, from
Keras's ``compute_output_spec`` on probe sizes.  Equalities that layers demand
between unknown dims are recorded as constraints for later stages.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from shapecheck.shapes import dims
from shapecheck.shapes.dims import Dim
from shapecheck.shapes.graph import LayerCall, ModelGraph, build_graph
from shapecheck.shapes.layers.registry import (Call, ShapeError, Sym, find_rule,
                                               first_parameter, flatten_shapes)


@dataclass
class Constraint:
    """``lhs == rhs`` is needed by ``layer``; ``holds`` is False when it never does."""

    lhs: Dim
    rhs: Dim
    layer: str
    reason: str
    holds: bool | None = None


@dataclass
class Requirement:
    """``dim >= 1`` is needed by ``layer`` (a window must fit its axis)."""

    dim: Dim
    layer: str
    reason: str
    holds: bool | None = None


@dataclass
class Note:
    """Something the report should say about inference itself."""

    layer: str
    # "approximate" | "inference-defect" | "shape-error" | "rule-error" | "keras-declaration"
    kind: str
    message: str


@dataclass
class Refusal:
    """What the shape rule says of a call Keras refused."""

    never: list[Constraint]  # equalities the call needs that never hold
    error: str | None  # the rule's own ShapeError message


@dataclass
class DimInfo:
    name: str
    origin: str  # where the dim comes from, in words


@dataclass
class Scope:
    """What inference learns about the dims of one model."""

    constraints: list[Constraint] = field(default_factory=list)
    requirements: list[Requirement] = field(default_factory=list)
    notes: list[Note] = field(default_factory=list)
    dims: dict[str, DimInfo] = field(default_factory=dict)
    refusals: dict[str, Refusal] = field(default_factory=dict)  # layer -> rule's verdict
    # layer -> {output index: why}: outputs whose run-time shape the rule returns where
    # Keras's build-time declaration differs (a Keras inconsistency, not a defect)
    runtime_outputs: dict[str, dict[int, str]] = field(default_factory=dict)
    # tensors whose run-time shape differs from Keras's declaration (downstream of one of
    # those outputs): Keras's shapes of the calls on them rest on the declaration
    undeclared: set[int] = field(default_factory=set)
    _graphs: dict[int, ModelGraph] = field(default_factory=dict)

    # -- dims ---------------------------------------------------------------
    def new_dim(self, hint: str, origin: str) -> Dim:
        base = dims.identifier(hint)
        name, n = base, 1
        while name in self.dims:
            n += 1
            name = dims.identifier(f"{base}_{n}")
        self.dims[name] = DimInfo(name, origin)
        return dims.named(name)

    def shared_dim(self, name: str, origin: str) -> Dim:
        """The dim called ``name``, created on first use (``batch``)."""
        if name not in self.dims:
            self.dims[name] = DimInfo(name, origin)
        return dims.named(name)

    def require_equal(self, a: Dim, b: Dim, layer: str, reason: str) -> Dim:
        if a is None or b is None:  # nothing to compare with an unknown size
            return b if a is None else a
        holds = dims.equal(a, b)
        if holds is True:
            return a
        self.constraints.append(Constraint(a, b, layer, reason, holds))
        if holds is None and b is not None and (a is None or dims.is_int(b)):
            return b
        return a

    def require_positive(self, d: Dim, layer: str, reason: str) -> Dim:
        if d is None:
            return d
        holds = d >= 1 if isinstance(d, int) else _positive(d)
        if holds is not True:
            self.requirements.append(Requirement(d, layer, reason, holds))
        return d

    def note(self, layer: str, kind: str, message: str) -> None:
        self.notes.append(Note(layer, kind, message))

    # -- calls --------------------------------------------------------------
    def apply(self, op: Any, args: tuple, kwargs: dict, *, layer: str) -> Any:
        """Output shapes of calling ``op`` on symbolic arguments."""
        if is_model(op):
            return self.apply_model(op, args, kwargs, layer=layer)
        fn = find_rule(op)
        if fn is not None:
            return fn(Call(op=op, args=args, kwargs=kwargs, scope=self, layer=layer))
        from shapecheck.shapes.probe import probe_output

        return probe_output(self, op, args, kwargs, layer=layer)

    def apply_model(self, model: Any, args: tuple, kwargs: dict, *, layer: str) -> Any:
        """A nested model called on symbolic inputs: its outputs, in our dims."""
        graph = self.graph_of(model)
        given = [s for s in _flat(args) if isinstance(s, Sym)]
        if len(given) != len(graph.inputs):
            raise ShapeError(
                f"model `{getattr(model, 'name', '?')}` takes {len(graph.inputs)} "
                f"input(s); got {len(given)}")
        shapes = propagate(self, graph, given, prefix=f"{layer}/")
        return [shapes[k].shape for k in graph.outputs]

    def graph_of(self, model: Any) -> ModelGraph:
        g = self._graphs.get(id(model))
        if g is None:
            g = self._graphs[id(model)] = build_graph(model)
        return g


def _positive(d: Any) -> bool | None:
    if d.is_number:
        return bool(d >= 1)
    if d.is_positive:
        return True
    return None


def is_model(op: Any) -> bool:
    """Whether ``op`` is a functional or Sequential model (a graph to walk)."""
    from keras import Model

    return isinstance(op, Model) and (
        getattr(op, "_functional", None) is not None or hasattr(op, "_inputs_struct"))


def _flat(obj: Any) -> list[Any]:
    from shapecheck.shapes.layers.registry import flatten

    return flatten(obj)


# --- model propagation ---------------------------------------------------------


@dataclass
class CallResult:
    """What inference found for one call."""

    call: LayerCall
    shapes: list[tuple]  # output shapes, symbolic


@dataclass
class ModelShapes:
    graph: ModelGraph
    scope: Scope
    results: list[CallResult]


def infer_model(model: Any, scope: Scope | None = None) -> ModelShapes:
    """Symbolic shapes of every call in a functional (or built Sequential) model."""
    scope = scope or Scope()
    graph = scope.graph_of(model)
    results: list[CallResult] = []
    propagate(scope, graph, None, results=results)
    return ModelShapes(graph=graph, scope=scope, results=results)


def propagate(scope: Scope, graph: ModelGraph, given: list[Sym] | None, *,
              prefix: str = "", results: list[CallResult] | None = None) -> dict[int, Sym]:
    """Shapes of every tensor in ``graph``; ``given`` seeds the inputs (nested use)."""
    syms: dict[int, Sym] = {}
    seeded = dict(zip(graph.inputs, given)) if given is not None else {}
    unknown_inputs = sum(
        1 for k in graph.inputs
        if any(d is None for d in tuple(_keras_shape(graph.tensors[k]))[1:]))
    for call in graph.calls:
        name = prefix + call.name
        if call.is_input:
            outs = []
            for k in call.outputs:
                t = graph.tensors[k]
                if k in seeded:
                    shape = _seed(scope, seeded[k].shape, _keras_shape(t), name)
                else:
                    shape = _input_shape(scope, t, call.name, qualify=unknown_inputs > 1)
                outs.append(shape)
                syms[k] = Sym(shape, _dtype(t))
            if results is not None:
                results.append(CallResult(call, outs))
            continue
        args, kwargs = _symbolic_args(call.knode, syms)
        keras_shapes = [_keras_shape(t) for t in call.knode.outputs]
        if call.failure is not None:  # Keras refused it: a finding says so
            shapes = _refused(scope, call, name, args, kwargs, keras_shapes)
        else:
            try:
                raw = scope.apply(call.op, args, kwargs, layer=name)
                shapes = flatten_shapes(raw)
            except ShapeError as err:
                scope.note(name, "shape-error", str(err))
                shapes = None
            except Exception as err:  # a rule's own bug must not stop the check
                scope.note(name, "rule-error", f"{type(err).__name__}: {err}")
                shapes = None
            follows = any(k in scope.undeclared for k in call.inputs)
            shapes = _reconcile(scope, name, shapes, keras_shapes, follows=follows)
            for k, shape, ks in zip(call.outputs, shapes, keras_shapes):
                if _differs(shape, ks):
                    scope.undeclared.add(k)
        for k, shape, t in zip(call.outputs, shapes, call.knode.outputs):
            syms[k] = Sym(shape, _dtype(t))
        if results is not None:
            results.append(CallResult(call, shapes))
    return syms


def _refused(scope: Scope, call: LayerCall, name: str, args: tuple, kwargs: dict,
             keras_shapes: list[tuple]) -> list[tuple]:
    """Best shapes for a call Keras refused: its rule on a rank-fitted input, else the
    stand-in's shapes with the batch of the input."""
    from shapecheck.shapes.refused import fit_rank

    trial = Scope(dims=scope.dims)  # constraints of a refused call are not findings
    for n, attempt in enumerate((args, fit_rank(call.op, args))):
        if attempt is None:
            continue
        try:
            shapes = flatten_shapes(trial.apply(call.op, attempt, kwargs, layer=name))
        except ShapeError as err:
            if n == 0:
                scope.refusals[name] = Refusal([], str(err))
            continue
        except Exception:
            continue
        finally:
            if n == 0 and name not in scope.refusals:
                scope.refusals[name] = Refusal(
                    [c for c in trial.constraints if c.holds is False], None)
        if [len(s) for s in shapes] == [len(k) for k in keras_shapes]:
            return shapes
    first = next((s for s in flatten_shapes_safe(args) if s), None)
    batch = first[0] if first else None
    out = []
    for i, ks in enumerate(keras_shapes):
        shape: list[Dim] = []
        for axis, k in enumerate(ks):
            if k is not None:
                shape.append(int(k))
            elif axis == 0 and batch is not None:
                shape.append(batch)
            else:
                shape.append(scope.new_dim(f"{name}_{axis}", f"axis {axis} of `{name}`'s "
                                           "output (the layer could not be built)"))
        out.append(tuple(shape))
    return out


def flatten_shapes_safe(args: Any) -> list[tuple]:
    return [s.shape for s in _flat(args) if isinstance(s, Sym)]


def _keras_shape(t: Any) -> tuple:
    shape = getattr(t, "shape", None)
    return tuple(shape) if shape is not None else ()


def _dtype(t: Any) -> str:
    return str(getattr(t, "dtype", "float32"))


_AXIS_LETTERS = {2: ["L"], 3: ["T", "F"], 4: ["H", "W", "C"], 5: ["D", "H", "W", "C"]}


def _input_shape(scope: Scope, t: Any, input_name: str, *, qualify: bool) -> tuple:
    """Name the unknown dims of a model input."""
    shape = _keras_shape(t)
    letters = _AXIS_LETTERS.get(len(shape), [])
    out: list[Dim] = []
    for axis, d in enumerate(shape):
        if d is not None:
            out.append(int(d))
        elif axis == 0:
            out.append(scope.shared_dim("batch", "the batch size, shared by all inputs"))
        else:
            letter = letters[axis - 1] if axis - 1 < len(letters) else f"d{axis}"
            hint = f"{letter}_{input_name}" if qualify else letter
            out.append(scope.new_dim(hint, f"axis {axis} of input `{input_name}`"))
    return tuple(out)


def _seed(scope: Scope, given: tuple, declared: tuple, layer: str) -> tuple:
    """A nested model's input: the caller's shape, checked against its declaration."""
    if len(given) != len(declared):
        scope.note(layer, "shape-error",
                   f"input `{layer}` expects rank {len(declared)}; got {dims.fmt_shape(given)}")
        return given
    out = []
    for g, d in zip(given, declared):
        if d is not None:
            g = scope.require_equal(g, int(d), layer, "the nested model's declared input size")
        out.append(g)
    return tuple(out)


def _symbolic_args(knode: Any, syms: dict[int, Sym]) -> tuple[tuple, dict]:
    def sub(obj: Any) -> Any:
        if isinstance(obj, (list, tuple)):
            items = [sub(o) for o in obj]
            return items if isinstance(obj, list) else tuple(items)
        if isinstance(obj, dict):
            return {k: sub(v) for k, v in obj.items()}
        s = syms.get(id(obj))
        return s if s is not None else obj

    a = knode.arguments
    args = tuple(sub(x) for x in a.args)
    kwargs = {k: sub(v) for k, v in a.kwargs.items()}
    if not args:  # called by keyword, e.g. ``Dense(3)(inputs=x)``: rules read args
        first = first_parameter(knode.operation)
        if first is not None and first in kwargs:
            args = (kwargs.pop(first),)
    return args, kwargs


def _differs(shape: tuple, declared: tuple) -> bool:
    """``shape`` is not what Keras declares (``None`` there: any size)."""
    return len(shape) != len(declared) or any(
        k is not None and d != int(k) for d, k in zip(shape, declared))


def _reconcile(scope: Scope, layer: str, shapes: list[tuple] | None,
               keras_shapes: list[tuple], *, follows: bool = False) -> list[tuple]:
    """Check inferred shapes against Keras's own (``None`` where unknown).

    ``follows``: an input's run-time shape differs from Keras's declaration, so Keras's
    shapes for this call rest on it: where they differ, the inferred shapes stand."""
    if shapes is None:
        return [_fresh_from_keras(scope, layer, i, ks) for i, ks in enumerate(keras_shapes)]
    if len(shapes) != len(keras_shapes):
        scope.note(layer, "inference-defect",
                   f"inferred {len(shapes)} output(s); Keras has {len(keras_shapes)}")
        return [_fresh_from_keras(scope, layer, i, ks) for i, ks in enumerate(keras_shapes)]
    out = []
    runtime = scope.runtime_outputs.get(layer, {})
    for i, (ours, theirs) in enumerate(zip(shapes, keras_shapes)):
        if i in runtime or follows:  # Keras declares another shape than the call returns
            if i in runtime and _differs(ours, theirs):
                scope.note(layer, "keras-declaration",
                           f"output {i}: Keras declares {dims.fmt_shape(theirs)}; at run time "
                           f"it is {dims.fmt_shape(ours)} ({runtime[i]})")
            out.append(tuple(d if d is not None else
                             scope.new_dim(f"{layer}_{axis}", f"axis {axis} of `{layer}`'s "
                                           "output (not inferred)")
                             for axis, d in enumerate(ours)))
            continue
        if len(ours) != len(theirs):
            scope.note(layer, "inference-defect",
                       f"output {i}: inferred {dims.fmt_shape(ours)}; Keras has "
                       f"{dims.fmt_shape(theirs)}")
            out.append(_fresh_from_keras(scope, layer, i, theirs))
            continue
        fixed = []
        for axis, (d, k) in enumerate(zip(ours, theirs)):
            if k is None:
                if d is None:
                    d = scope.new_dim(f"{layer}_{axis}",
                                      f"axis {axis} of `{layer}`'s output (not inferred)")
                fixed.append(d)
            elif d == int(k):
                fixed.append(int(k))
            else:
                if d is not None:
                    scope.note(layer, "inference-defect",
                               f"output {i} axis {axis}: inferred {dims.fmt(d)}; Keras has {k}")
                fixed.append(int(k))
        out.append(tuple(fixed))
    return out


def _fresh_from_keras(scope: Scope, layer: str, index: int, keras_shape: tuple) -> tuple:
    out: list[Dim] = []
    for axis, k in enumerate(keras_shape):
        if k is not None:
            out.append(int(k))
        else:
            out.append(scope.new_dim(f"{layer}_{axis}",
                                     f"axis {axis} of `{layer}`'s output (not inferred)"))
    if any(k is None for k in keras_shape):
        scope.note(layer, "approximate",
                   f"output {index}: unknown axes of {dims.fmt_shape(tuple(out))} "
                   "are not tied to the inputs")
    return tuple(out)
