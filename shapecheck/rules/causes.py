"""Blame the cause: move a finding from the layer where a shape broke to the layer
argument that made the shape wrong (``return_sequences``, ``padding``, ``strides``,
``n``, ``units``), keeping the place where it broke as a related location.

An axis is traced back through the layers that keep it in place (Dense, convolutions,
pooling, recurrent layers over sequences, elementwise layers): each step records the
axis's size before and after the layer.  A culprit is chosen only where the trace
makes it plain; otherwise the finding stays where it broke.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Iterable

from shapecheck.shapes import dims
from shapecheck.shapes.graph import LayerCall
from shapecheck.report import Diagnostic, Location
from shapecheck.rules.context import SHAPE_PRESERVING, ModelContext, dot_axes, source_line

_RNNS = {"LSTM", "GRU", "SimpleRNN", "RNN", "ConvLSTM1D", "ConvLSTM2D", "ConvLSTM3D"}
_CONVS = {"Conv1D", "Conv2D", "Conv3D", "SeparableConv1D", "SeparableConv2D",
          "DepthwiseConv1D", "DepthwiseConv2D"}
_TRANSPOSED = {"Conv1DTranspose", "Conv2DTranspose", "Conv3DTranspose"}
_POOLS = {"MaxPooling1D", "MaxPooling2D", "MaxPooling3D", "AveragePooling1D",
          "AveragePooling2D", "AveragePooling3D"}
_UPSAMPLING = {"UpSampling1D", "UpSampling2D", "UpSampling3D"}
_CROPPING = {"Cropping1D", "Cropping2D", "Cropping3D"}
_PADDING = {"ZeroPadding1D", "ZeroPadding2D", "ZeroPadding3D"}
_ELEMWISE = {"Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum"}
# Layers whose every axis keeps its place; the channels axis too.
_KEEP_ALL = SHAPE_PRESERVING | _POOLS | _UPSAMPLING | _CROPPING | _PADDING | _ELEMWISE | {
    "Normalization", "Rescaling"}
# Layers that keep every axis but the channels, which they set.
_SET_CHANNELS = _CONVS | _TRANSPOSED | {"Dense", "EinsumDense"}

# What each kind of layer argument is called, by the size change it makes.
_TARGET_CODES = {"SC703", "SC704"}
_MERGE_CODES = {"SC301", "SC604"}
_MISSING_TIME_CODES = {"SC102", "SC403", "SC404"}
_INPUT_CODES = {"SC602", "SC603"}


@dataclass
class Step:
    """One layer on an axis's way: its size going in (None where it starts) and out."""

    call: LayerCall
    axis: int  # the axis's index in the layer's output
    size_in: Any
    size_out: Any


@dataclass
class Cause:
    call: LayerCall
    argument: str | None  # "return_sequences=True"; None where a layer is missing
    why: str  # what the argument did, in words
    arithmetic: str | None = None  # "290 → 145 → 73 → 146 → 292 ≠ 290"
    fix: str | None = None
    there: str = "the shape breaks here"  # what happens where the finding was


def _rnn(call: LayerCall) -> Any:
    """The recurrent layer of ``call`` (a Bidirectional's forward layer), or None."""
    if call.cls in _RNNS:
        return call.op
    if call.cls == "Bidirectional":
        return getattr(call.op, "forward_layer", None)
    return None


def _channels_axis(call: LayerCall, rank: int) -> int:
    fmt = getattr(call.op, "data_format", None)
    return 1 if fmt == "channels_first" else rank - 1


def _source_axis(ctx: ModelContext, call: LayerCall, axis: int) -> tuple[int, int] | None:
    """The input tensor and axis that output ``axis`` of ``call`` keeps in place, or
    None where the layer makes the axis (or moves axes in a way not followed)."""
    if not call.inputs or call.is_input:
        return None
    outs = ctx.out_shapes(call)
    ins = ctx.in_shapes(call)
    if not outs or not ins or outs[0] is None or ins[0] is None:
        return None
    out, first = outs[0], ins[0]
    rank = len(out)
    if call.cls == "RepeatVector":
        return (call.inputs[0], 1) if axis == 2 else None
    if call.cls == "Embedding":
        return (call.inputs[0], axis) if axis < rank - 1 else None
    if len(first) != rank:
        return None
    if call.cls in _KEEP_ALL:
        return call.inputs[0], axis
    if call.cls in _SET_CHANNELS:
        return None if axis == _channels_axis(call, rank) else (call.inputs[0], axis)
    rnn = _rnn(call)
    if rnn is not None and getattr(rnn, "return_sequences", False) and rank == 3:
        return (call.inputs[0], axis) if axis < 2 else None
    if call.cls == "TimeDistributed":
        return (call.inputs[0], axis) if axis < 2 else None
    if call.cls == "Concatenate":
        along = getattr(call.op, "axis", -1) % rank
        return None if axis == along else (call.inputs[0], axis)
    return None


def trace(ctx: ModelContext, key: int, axis: int, limit: int = 500) -> list[Step]:
    """The steps that made ``axis`` of tensor ``key``, from where it starts to it."""
    steps: list[Step] = []
    while len(steps) < limit:
        call = ctx.producer(key)
        if call is None:
            break
        outs = ctx.out_shapes(call)
        idx = ctx.graph.producer[key][1]
        shape = outs[idx] if idx < len(outs) else None
        if shape is None or axis >= len(shape):
            break
        src = _source_axis(ctx, call, axis) if idx == 0 else None
        size_in = None
        if src is not None:
            in_shape = ctx.tensor_shape(src[0])
            size_in = in_shape[src[1]] if in_shape is not None else None
        steps.append(Step(call, axis, size_in, shape[axis]))
        if src is None:
            break
        key, axis = src
    steps.reverse()
    return steps


# --- sizes ---------------------------------------------------------------------------


def _value(d: Any, values: dict[str, int]) -> int | None:
    return d if isinstance(d, int) else dims.evaluate(d, values)


def _same(a: Any, b: Any, values: dict[str, int]) -> bool:
    if dims.equal(a, b) is True:
        return True
    va, vb = _value(a, values), _value(b, values)
    return va is not None and va == vb


def _changed(step: Step, values: dict[str, int]) -> bool:
    return step.size_in is not None and not _same(step.size_in, step.size_out, values)


def _window(op: Any, axis: int, rank: int, attr: str) -> int:
    v = getattr(op, attr, None)
    if v is None:
        return 1
    if isinstance(v, int):
        return v
    v = tuple(v)
    if not v:
        return 1
    fmt = getattr(op, "data_format", "channels_last")
    spatial = axis - (2 if fmt == "channels_first" else 1)
    return int(v[spatial]) if 0 <= spatial < len(v) else int(v[0])


def _stride(step: Step, rank: int) -> int:
    """The stride of a convolution or pooling along the step's axis; 1 for other layers."""
    if step.call.cls not in _CONVS | _POOLS:
        return 1
    return _window(step.call.op, step.axis, rank, "strides")


def _size_cause(ctx: ModelContext, steps: list[Step], want: Any,
                values: dict[str, int], *, origin_ok: bool) -> Cause | None:
    """The layer argument that took the axis away from ``want`` on its way."""
    if not steps:
        return None
    rank = len(ctx.out_shapes(steps[-1].call)[0] or ())
    right = [i for i, s in enumerate(steps) if _same(s.size_out, want, values)]
    if not right:
        first = steps[0]
        return _origin_cause(first, want, values) if origin_ok else None
    after = steps[right[-1] + 1:]
    changers = [s for s in after if _changed(s, values)]
    if not changers:
        return None
    chain = " → ".join(_fmt(s, values) for s in [steps[right[-1]]] + changers)
    chain += f" ≠ {_fmt_dim(want, values)}"
    factor = 1
    for s in changers:
        factor *= _stride(s, rank)
    for s in changers:  # a stride that rounds: the size did not divide
        stride = _stride(s, rank)
        size = _value(s.size_in, values)
        if stride > 1 and size is not None and size % stride:
            name = "pool_size" if s.call.cls in _POOLS and getattr(s.call.op, "strides", None) \
                in (None, getattr(s.call.op, "pool_size", None)) else "strides"
            return Cause(s.call, f"{name}={_arg(s.call.op, name)}",
                         f"{size} is not a multiple of {stride}, so `{s.call.name}` rounds "
                         f"{size}/{stride} to {_fmt_dim(s.size_out, values)}", chain,
                         f"use a size that is a multiple of {factor} on this axis, or crop or "
                         "pad to one before the strided layers")
    for s in changers:  # a window that shrinks the axis
        padding = str(getattr(s.call.op, "padding", "")).lower()
        stride = _stride(s, rank)
        if s.call.cls in _CONVS | _POOLS and padding == "valid" and \
                not _same(dims.ceildiv(s.size_in, stride), s.size_out, values):
            return Cause(s.call, "padding='valid'",
                         f"`{s.call.name}` has no padding, so its window shrinks the axis "
                         f"from {_fmt_dim(s.size_in, values)} to {_fmt_dim(s.size_out, values)}",
                         chain, f"give `{s.call.name}` `padding=\"same\"`")
        if s.call.cls in _CROPPING:
            return Cause(s.call, f"cropping={_arg(s.call.op, 'cropping')}",
                         f"`{s.call.name}` crops the axis to {_fmt_dim(s.size_out, values)}",
                         chain, None)
    odd = _odd_downsampler(changers, rank, values)
    if odd is not None:
        return Cause(odd.call, f"strides={_arg(odd.call.op, 'strides')}",
                     f"`{odd.call.name}` divides the axis by {_stride(odd, rank)} once more "
                     f"than the layers after it multiply it back "
                     f"({_fmt_dim(odd.size_in, values)} → {_fmt_dim(odd.size_out, values)})",
                     chain,
                     f"give `{odd.call.name}` strides=1, or add the matching upsampling")
    if len(changers) == 1:
        s = changers[0]
        name = "size" if s.call.cls in _UPSAMPLING else (
            "padding" if s.call.cls in _PADDING else "strides")
        if hasattr(s.call.op, name):
            return Cause(s.call, f"{name}={_arg(s.call.op, name)}",
                         f"`{s.call.name}` takes the axis from {_fmt_dim(s.size_in, values)} "
                         f"to {_fmt_dim(s.size_out, values)}", chain, None)
    return None


def _odd_downsampler(changers: list[Step], rank: int,
                     values: dict[str, int]) -> Step | None:
    """The one strided convolution among pooling layers that shrink an axis by the same
    factor, where the axis ends smaller than it started."""
    first = _value(changers[0].size_in, values) if changers else None
    last = _value(changers[-1].size_out, values) if changers else None
    if first is None or last is None or last >= first:
        return None
    pools = [s for s in changers if s.call.cls in _POOLS]
    convs = [s for s in changers if s.call.cls in _CONVS and _stride(s, rank) > 1]
    if len(convs) != 1 or not pools:
        return None
    factors = {_stride(s, rank) for s in pools + convs}
    return convs[0] if len(factors) == 1 else None


def _origin_cause(first: Step, want: Any, values: dict[str, int]) -> Cause | None:
    """The layer that made an axis at a wrong size (RepeatVector(n), Dense(units))."""
    call, op = first.call, first.call.op
    got = _fmt_dim(first.size_out, values)
    wanted = _fmt_dim(want, values)
    if call.cls == "RepeatVector":
        return Cause(call, f"n={op.n}", f"`{call.name}` repeats its input {got} times",
                     None, f"use `RepeatVector({wanted})`, the length the rest needs")
    if call.cls == "Reshape":
        target = tuple(getattr(op, "target_shape", ()) or ())
        return Cause(call, f"target_shape={target!r}",
                     f"`{call.name}` makes this axis {got}", None,
                     f"give `{call.name}` a target whose axes are in the order the rest needs "
                     f"(this axis {wanted})")
    if call.cls not in _SET_CHANNELS | _RNNS | {"Embedding", "Bidirectional"}:
        return None
    layer = _rnn(call) or op
    for attr in ("units", "filters", "output_dim"):
        value = getattr(layer, attr, None)
        if isinstance(value, int):
            kind = "channels" if attr == "filters" else "features"
            return Cause(call, f"{attr}={value}", f"`{call.name}` gives {got} {kind}", None,
                         f"use `{attr}={wanted}`" if isinstance(want, int) else None)
    return None


def _arg(op: Any, name: str) -> str:
    v = getattr(op, name, None)
    if isinstance(v, list):
        v = tuple(v)
    if isinstance(v, tuple) and len(set(v)) == 1 and name in ("strides", "pool_size", "size"):
        v = v[0]
    return repr(v)


def _fmt_dim(d: Any, values: dict[str, int]) -> str:
    v = _value(d, values)
    return str(v) if v is not None else dims.fmt(d)


def _fmt(step: Step, values: dict[str, int]) -> str:
    return _fmt_dim(step.size_out, values)


# --- per kind of finding -------------------------------------------------------------


def _shape_of(d: Diagnostic, prefix: str) -> tuple | None:
    for label, shape in d.shapes.items():
        if label.startswith(prefix) and shape is not None:
            return tuple(dims.from_json(v) for v in shape)
    return None


def _output_key(ctx: ModelContext, call: LayerCall) -> int | None:
    for k in call.outputs:
        if k in ctx.graph.outputs:
            return k
    return call.outputs[0] if call.outputs else None


def _time_kept(ctx: ModelContext, steps: list[Step]) -> Cause | None:
    """The last recurrent layer that kept the time axis on its way."""
    for s in reversed(steps):
        rnn = _rnn(s.call)
        if rnn is not None and getattr(rnn, "return_sequences", False):
            return Cause(s.call, "return_sequences=True",
                         f"`{s.call.name}` returns every step, so the time axis reaches the "
                         "output", None, f"set `return_sequences=False` on `{s.call.name}` "
                         "for one value per sequence")
    return None


def _time_dropped(ctx: ModelContext, call: LayerCall | None) -> Cause | None:
    """The recurrent layer, upstream through layers that keep axes, that returned only
    its last step."""
    seen = 0
    while call is not None and seen < 100:
        seen += 1
        rnn = _rnn(call)
        if rnn is not None:
            if getattr(rnn, "return_sequences", True):
                return None
            return Cause(call, "return_sequences=False",
                         f"`{call.name}` returns only its last step, dropping the time axis",
                         None, f"set `return_sequences=True` on `{call.name}`")
        if call.cls not in _KEEP_ALL | {"Dense"} or not call.inputs:
            return None
        call = ctx.producer(call.inputs[0])
    return None


def _values_for(d: Diagnostic, bound: list[Any], show: Any) -> dict[str, int]:
    """The sizes of the batch that showed ``d``; none for a finding of the model alone."""
    if d.data is None:
        return {}
    for b in bound:
        if d.data and b.describe(show) == d.data:
            return dict(b.values)
    return dict(bound[0].values) if bound else {}


def _target_cause(ctx: ModelContext, d: Diagnostic, values: dict[str, int]) -> Cause | None:
    from shapecheck.rules.targets import SPARSE, loss_name, output_losses

    call = ctx.by_name.get(d.layer or "")
    out, y = _shape_of(d, "output"), _shape_of(d, "y")
    if call is None or out is None or y is None:
        return None
    key = _output_key(ctx, call)
    if key is None:
        return None
    if loss_name(output_losses(ctx).get(key)) in SPARSE:  # class ids: no class axis
        if len(y) == len(out) and len(y) > 1 and y[-1] == 1:
            y = y[:-1]
        out = out[:-1]
    if len(out) > len(y):  # an axis too many: a kept time axis, an unflattened map
        return _time_kept(ctx, trace(ctx, key, 1)) or _not_flattened(ctx, trace(ctx, key, 1))
    if len(out) < len(y):
        return _time_dropped(ctx, call)
    for axis in range(1, len(out)):
        if not _same(out[axis], y[axis], values) and isinstance(y[axis], int):
            return _size_cause(ctx, trace(ctx, key, axis), y[axis], values, origin_ok=True)
    return None


def _not_flattened(ctx: ModelContext, steps: list[Step]) -> Cause | None:
    """The first Dense applied at every position of a convolution's feature map."""
    spatial = _CONVS | _POOLS | _UPSAMPLING | _PADDING | _CROPPING
    seen_map = False
    for s in steps:
        if s.call.cls in spatial:
            seen_map = True
        elif s.call.cls == "Dense" and seen_map:
            rank = len(ctx.out_shapes(s.call)[0] or ())
            pool = f"GlobalAveragePooling{rank - 2}D" if rank in (3, 4, 5) else "a global pooling"
            return Cause(s.call, None,
                         f"`{s.call.name}` is applied at every position of the feature map, "
                         "whose spatial axes reach the output", None,
                         f"put `Flatten()` or `{pool}()` before `{s.call.name}`")
    return None


def _merge_cause(ctx: ModelContext, d: Diagnostic, values: dict[str, int]) -> Cause | None:
    call = ctx.by_name.get((d.layer or "").split("/")[0])
    if call is None or len(call.inputs) < 2:
        return None
    shapes = ctx.in_shapes(call)
    if any(s is None for s in shapes):
        return None
    if call.cls == "Dot":
        return _dot_cause(ctx, call, shapes, values)
    if len({len(s) for s in shapes}) != 1:
        return None
    rank = len(shapes[0])
    along = getattr(call.op, "axis", None) if call.cls == "Concatenate" else None
    for axis in range(1, rank):
        if along is not None and axis == along % rank:
            continue
        sizes = [s[axis] for s in shapes]
        if all(_same(sizes[0], v, values) for v in sizes[1:]):
            continue
        return _branch_cause(ctx, [(k, axis) for k in call.inputs], sizes, values)
    return None


def _dot_cause(ctx: ModelContext, call: LayerCall, shapes: list[tuple],
               values: dict[str, int]) -> Cause | None:
    axes = dot_axes(call.op, shapes)
    if axes is None:
        return None
    picked = list(axes)
    sizes = [s[a] for a, s in zip(picked, shapes)]
    if _same(sizes[0], sizes[1], values):
        return None
    return _branch_cause(ctx, list(zip(call.inputs, picked)), sizes, values)


def _branch_cause(ctx: ModelContext, branches: list[tuple[int, int]], sizes: list[Any],
                  values: dict[str, int]) -> Cause | None:
    """The branch argument that took one input of a merge away from the others."""
    found: list[Cause] = []
    origins: list[Cause] = []
    for i, (key, axis) in enumerate(branches):
        others = [v for j, v in enumerate(sizes) if j != i]
        if not all(_same(others[0], v, values) for v in others):
            continue
        steps = trace(ctx, key, axis)
        cause = _size_cause(ctx, steps, others[0], values, origin_ok=False)
        if cause is not None:
            found.append(cause)
        elif steps:
            origin = _origin_cause(steps[0], others[0], values)
            if origin is not None and origin.argument and origin.argument.split("=")[0] in (
                    "units", "filters", "output_dim"):
                origins.append(origin)
    if len(found) == 1:
        return found[0]
    if not found and len(origins) == len(branches) == 2:
        # Two widths chosen freely: the layer written later is made to fit the earlier.
        return max(origins, key=lambda c: c.call.seq)
    return None


def _cause(ctx: ModelContext, d: Diagnostic, values: dict[str, int],
           bound: list[Any]) -> Cause | None:
    if d.code in _TARGET_CODES:
        return _target_cause(ctx, d, values)
    if d.code in _MERGE_CODES:
        return _merge_cause(ctx, d, values)
    if d.code == "SC402" and "width" in d.message:
        call = ctx.by_name.get(d.layer or "")
        rnn = _rnn(call) if call is not None else None
        if rnn is None or not isinstance(getattr(rnn, "units", None), int):
            return None
        return Cause(call, f"units={rnn.units}", f"`{call.name}` is made with {rnn.units} units",
                     None, None)
    if d.code in _MISSING_TIME_CODES:
        call = ctx.by_name.get(d.layer or "")
        if call is None or not call.inputs:
            return None
        found = _time_dropped(ctx, ctx.producer(call.inputs[0]))
        if found is None and d.code == "SC102":
            source = ctx.through(ctx.producer(call.inputs[0]))
            want = re.search(r"\(rank (\d+)", d.message)
            ranks = _fed_ranks(source, bound)
            if want and ranks and ranks == {int(want.group(1))}:  # the data agrees with the layer
                return _declared_input(ctx, source, f"`{call.name}` needs another rank")
        return found
    if d.code in _INPUT_CODES:
        source = _input_named(ctx, d)
        data = _shape_of(d, "x")
        declared = ctx.tensor_shape(source.outputs[0]) if source and source.outputs else None
        if d.code == "SC602" and data is not None and declared is not None \
                and _declares_samples(tuple(declared[1:]), tuple(data)):
            return _declared_input(ctx, source, "takes the whole data set as one sample",
                                   "the data is fed here")
    return None


def _declares_samples(declared: tuple, data: tuple) -> bool:
    """``Input(shape=X.shape)``: the declared shape is the data set's, samples first."""
    return len(data) >= 2 and len(declared) == len(data) and isinstance(declared[0], int) \
        and isinstance(data[0], int) and declared[0] >= data[0] and declared[1:] == data[1:]


def _input_named(ctx: ModelContext, d: Diagnostic) -> LayerCall | None:
    name = next((label[len("input `"):-1] for label in d.shapes
                 if label.startswith("input `")), None)
    inputs = [c for c in ctx.model_inputs()
              if name in (c.name, getattr(ctx.graph.tensors.get(c.outputs[0]), "name", None))]
    return inputs[0] if len(inputs) == 1 else None


def _fed_ranks(call: LayerCall | None, bound: list[Any]) -> set[int]:
    """The ranks of the arrays the script feeds the model input ``call``."""
    if call is None or not call.outputs:
        return set()
    return {len(m.info.shape) for b in bound for m in b.inputs
            if m.key == call.outputs[0] and m.info is not None and m.info.shape is not None}


def _declaration_note(ctx: ModelContext, d: Diagnostic) -> None:
    """Data that disagrees with a declared input: show the declaration too."""
    source = _input_named(ctx, d) if d.code in _INPUT_CODES else None
    cause = _declared_input(ctx, source, "") if source is not None else None
    if cause is None or d.related:
        return
    path, line, col, end_col = _place(source)[:4]
    d.related.append(Location(path=ctx.show(path), line=line, col=col, end_col=end_col,
                              layer=source.name, source=source_line(path, line),
                              message=f"the input is declared here with `{cause.argument}`"))


def _declared_input(ctx: ModelContext, call: LayerCall | None, why: str,
                    there: str = "the shape breaks here") -> Cause | None:
    """An input the user declared (`keras.Input(shape=...)`) whose shape is at fault."""
    if call is None or not call.is_input or not call.outputs:
        return None
    made = call.created
    if not made or not made[0] or (made[0], made[1]) != (call.path, call.line):
        return None  # not written by the user on its own line
    text = source_line(made[0], made[1]) or ""
    if not any(w in text for w in ("Input(", "InputLayer(", "input_shape", "batch_shape")):
        return None  # made by Keras from the first batch: nothing declared it
    shape = ctx.tensor_shape(call.outputs[0])
    if shape is None:
        return None
    declared = tuple(dims.fmt(v) if not isinstance(v, int) else v for v in shape[1:])
    text = "(" + ", ".join(str(v) for v in declared) + ("," if len(declared) == 1 else "") + ")"
    return Cause(call, f"shape={text}", f"`{call.name}` is declared with `shape={text}` and "
                 f"{why}", None, None, there)


def blame_causes(ctx: ModelContext, findings: Iterable[Diagnostic],
                 bound: list[Any] = ()) -> None:
    """Move each finding whose cause is plain to the culprit's line (in place)."""
    for d in findings:
        if d.follows is not None or d.model != ctx.name or d.argument is not None:
            continue
        try:
            cause = _cause(ctx, d, _values_for(d, list(bound), ctx.show), list(bound))
            if cause is None:
                _declaration_note(ctx, d)
        except Exception:  # no culprit is better than a wrong one
            cause = None
        if cause is not None:
            _move(ctx, d, cause)


def _place(call: LayerCall) -> tuple:
    """Where the argument is written: where the user made the layer, else its call."""
    made = call.created
    if made and made[0] and made[1]:
        return tuple(made) + (None,) * (4 - len(made))
    return call.path, call.line, call.col, call.end_col


def _move(ctx: ModelContext, d: Diagnostic, cause: Cause) -> None:
    d.argument = cause.argument
    hint = cause.fix or d.hint
    if cause.arithmetic:
        hint = f"{cause.arithmetic}: {hint}" if hint else cause.arithmetic
    d.hint = hint
    c = cause.call
    path, line, col, end_col = _place(c)[:4]
    said = f" ({cause.argument})" if cause.argument and cause.argument not in cause.why else ""
    if c.name == d.layer and ctx.show(path) == d.path and line == d.line:
        d.message = f"{d.message} — {cause.why}{said}"
        return
    d.related.append(Location(path=d.path, line=d.line, col=d.col, end_col=d.end_col,
                              layer=d.layer, source=d.source, message=cause.there))
    d.message = f"{cause.why}{said}; so {d.message}"
    d.layer, d.path, d.line = c.name, ctx.show(path), line
    d.col, d.end_col, d.source = col, end_col, source_line(path, line)
