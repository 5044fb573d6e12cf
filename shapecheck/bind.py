"""Bind sampled data to a model's named dims: which sizes each batch gives them.

One :class:`Binding` per sampled batch: the arrays matched to the model's
inputs and outputs (by position or by name, as Keras matches them), the size
each named dim takes and where that size came from, and the conflicts — two
inputs giving ``batch`` different sizes.  Rules read bindings; nothing here
decides what is a finding.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from shapecheck import dims
from shapecheck.rules.context import ModelContext


@dataclass
class Match:
    """One array of a batch matched to a model input or output."""

    key: int  # the model tensor's key
    name: str  # the Keras name of the input layer or output layer
    label: str  # where the array sits in the data: "x", "x[1]", "y['label']"
    shape: tuple  # the model's symbolic shape
    info: Any  # feeds.ArrayInfo


@dataclass
class Conflict:
    """A named dim given two sizes by one batch."""

    dim: str
    sizes: list[tuple[int, str, str]]  # (size, label of the array, model input name)


@dataclass
class Binding:
    feed: Any  # feeds.Feed
    batch: Any  # feeds.Batch
    inputs: list[Match] = field(default_factory=list)
    targets: list[Match] = field(default_factory=list)
    values: dict[str, int] = field(default_factory=dict)  # dim -> size
    sources: dict[str, str] = field(default_factory=dict)  # dim -> "x[0] axis 1"
    conflicts: list[Conflict] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # structure: counts, names
    rank_mismatches: list[Match] = field(default_factory=list)
    size_mismatches: list[tuple[Match, int, int, int]] = field(default_factory=list)
    # (match, axis, model size, data size)

    def describe(self, show: Any = None) -> str:
        """The data in words: "`fit` at model.py:62, generator item 1"."""
        path = show(self.feed.path) if show and self.feed.path else self.feed.path
        site = f" at {path}:{self.feed.line}" if path else ""
        role = f" ({self.feed.role} data)" if self.feed.role == "validation" else ""
        return f"`{self.feed.method}`{site}{role}, {self.batch.label}"


def input_names(ctx: ModelContext) -> list[str]:
    return [_op_name(ctx.graph.tensors.get(k)) for k in ctx.graph.inputs]


def output_names(ctx: ModelContext) -> list[str]:
    names = list(getattr(ctx.model, "output_names", None) or [])
    if len(names) == len(ctx.graph.outputs):
        return names
    return [_op_name(ctx.graph.tensors.get(k)) for k in ctx.graph.outputs]


def _op_name(t: Any) -> str:
    hist = getattr(t, "_keras_history", None)
    op = getattr(hist, "operation", None)
    return getattr(op, "name", None) or getattr(t, "name", "?")


def _is_array(obj: Any) -> bool:
    return hasattr(obj, "shape") and hasattr(obj, "dtype")


def match(struct: Any, keys: list[int], names: list[str], shapes: list[tuple],
          what: str) -> tuple[list[Match], list[str]]:
    """Arrays of ``struct`` matched to model tensors, as Keras matches them."""
    out: list[Match] = []
    arg = "x" if what == "input" else "y"
    if struct is None:
        return out, []
    if _is_array(struct):
        if len(keys) != 1:
            return out, [f"the model has {len(keys)} {what}s ({', '.join(names)}); the data "
                         "gives one array"]
        return [Match(keys[0], names[0], arg, shapes[0], struct)], []
    if isinstance(struct, dict):
        missing = [n for n in names if n not in struct]
        extra = [k for k in struct if k not in names]
        problems = []
        if missing:
            problems.append(f"no data for {what}(s) {', '.join(map(repr, missing))}; the data's "
                            f"keys are {', '.join(map(repr, struct))}")
        if extra and len(keys) > 1:
            problems.append(f"data key(s) {', '.join(map(repr, extra))} match no {what} "
                            f"(the model's {what}s: {', '.join(map(repr, names))})")
        for k, n, s in zip(keys, names, shapes):
            if n in struct and _is_array(struct[n]):
                out.append(Match(k, n, f"{arg}[{n!r}]", s, struct[n]))
        if not out and len(keys) == 1 and len(struct) == 1:  # one output, any key
            v = next(iter(struct.values()))
            if _is_array(v):
                return [Match(keys[0], names[0], f"{arg}[{next(iter(struct))!r}]",
                              shapes[0], v)], []
        return out, problems
    if isinstance(struct, (list, tuple)):
        items = list(struct)
        if len(keys) == 1 and len(items) == 1:
            items = items[:1]
        if len(items) != len(keys):
            return out, [f"the model has {len(keys)} {what}(s) ({', '.join(names)}); the "
                         f"data gives {len(items)}"]
        for i, (k, n, s, v) in enumerate(zip(keys, names, shapes, items)):
            if _is_array(v):
                out.append(Match(k, n, f"{arg}[{i}]", s, v))
        return out, []
    return out, [f"{what} data of type {type(struct).__name__} is not an array, list or dict"]


def bind(ctx: ModelContext, feed: Any, batch: Any) -> Binding:
    """What one sampled batch says about the model's named dims."""
    b = Binding(feed, batch)
    in_keys = list(ctx.graph.inputs)
    in_shapes = [ctx.tensor_shape(k) or () for k in in_keys]
    b.inputs, problems = match(batch.x, in_keys, input_names(ctx), in_shapes, "input")
    b.problems += problems
    seen: dict[str, list[tuple[int, str, str, int]]] = {}
    for m in b.inputs:
        data = keras_adjusted(tuple(m.info.shape), m.shape)
        if len(data) != len(m.shape):
            b.rank_mismatches.append(m)
            continue
        for axis, (d, v) in enumerate(zip(m.shape, data)):
            if d is None:
                continue
            if isinstance(d, int):
                if d != v:
                    b.size_mismatches.append((m, axis, d, v))
                continue
            names = dims.free_names(d)
            if len(names) == 1 and d == dims.named(next(iter(names))):
                name = next(iter(names))
                seen.setdefault(name, []).append((int(v), m.label, m.name, axis))
    for name, found in seen.items():
        first = found[0]
        b.values[name] = first[0]
        b.sources[name] = f"{first[1]} axis {first[3]} (input `{first[2]}`)"
        if len({s for s, _, _, _ in found}) > 1:
            b.conflicts.append(Conflict(name, [(s, label, n) for s, label, n, _ in found]))
    if batch.y is not None:
        out_keys = list(ctx.graph.outputs)
        out_shapes = [ctx.tensor_shape(k) or () for k in out_keys]
        b.targets, problems = match(batch.y, out_keys, output_names(ctx), out_shapes,
                                    "output")
        b.problems += problems
    return b


def keras_adjusted(data: tuple, model: tuple) -> tuple:
    """The data's shape after Keras's own rank fix-up of model inputs
    (``Functional._adjust_input_rank``): a trailing axis of 1 is added or dropped."""
    if len(data) == len(model) + 1 and data and data[-1] == 1:
        return data[:-1]
    if len(data) == len(model) - 1 and model and model[-1] == 1:
        return data + (1,)
    return data


def evaluate(shape: tuple, values: dict[str, int]) -> tuple:
    """``shape`` at the bound sizes: ints, or None where a dim is still unknown."""
    return tuple(dims.evaluate(d, values) for d in shape)


def meeting_call(ctx: ModelContext, keys: list[int]) -> Any:
    """The first call (in graph order) that depends on every input in ``keys``."""
    sources = []
    for k in keys:
        c = ctx.producer(k)
        if c is not None:
            sources.append(c.id)
    for call in ctx.calls:
        anc = ctx.ancestors(call)
        if all(s in anc for s in sources):
            return call
    return None
