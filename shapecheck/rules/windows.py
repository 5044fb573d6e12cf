"""Windows over spatial axes (kernels, pools, crops) as the size rules read them: the axes
each layer slides over, what is too short, and Keras's refusal messages parsed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from shapecheck.rules.context import SHAPE_PRESERVING, ModelContext
from shapecheck.shapes import dims
from shapecheck.shapes.dims import Dim
from shapecheck.shapes.graph import LayerCall


@dataclass(frozen=True)
class AxisWindow:
    """One axis a window slides along (or is cropped from)."""

    axis: int  # index in the input shape
    size: Dim  # the axis's size
    kind: str  # "conv" | "pool" | "crop"
    span: int  # steps one window covers (crop: steps removed)
    out: Dim  # the output's size along the axis
    detail: str  # the layer's arguments for this axis, in words


def _per_axis(value: Any, rank: int) -> tuple:
    if value is None:
        return (None,) * rank
    if isinstance(value, int):
        return (value,) * rank
    value = tuple(value)
    return value * rank if len(value) == 1 and rank > 1 else value


def _spatial(op: Any, spatial: int) -> list[int]:
    """Input axes of the ``spatial`` window axes, by the op's data format."""
    fmt = getattr(op, "data_format", None) or "channels_last"
    if fmt == "channels_first":
        return list(range(2, spatial + 2))
    return list(range(1, spatial + 1))


_SPATIAL_NAMES = {1: ("steps",), 2: ("height", "width"), 3: ("depth", "height", "width")}


def axis_name(op: Any, axis: int, spatial: int) -> str:
    """What ``op``'s data format calls input ``axis``: height, width, depth, steps, channels."""
    names = _SPATIAL_NAMES.get(spatial)
    if names is None or not 1 <= axis <= spatial + 1:
        return f"axis {axis}"
    space = _spatial(op, spatial)
    return names[space.index(axis)] if axis in space else "channels"


def _crop_pairs(op: Any, spatial: int) -> list[tuple[int, int]]:
    value = op.cropping
    if spatial == 1 and len(value) == 2 and all(isinstance(v, int) for v in value):
        return [(int(value[0]), int(value[1]))]
    out = []
    for v in _per_axis(value, spatial):
        out.append((int(v), int(v)) if isinstance(v, int) else (int(v[0]), int(v[1])))
    return out


def _spatial_rank(op: Any, x: tuple) -> int:
    m = re.search(r"([123])D", type(op).__name__)
    return int(m.group(1)) if m else len(x) - 2


def window_axes(op: Any, x: tuple, kernel: tuple | None = None) -> list[AxisWindow] | None:
    """Each axis of ``x`` that ``op`` slides a ``valid`` window along or crops.

    ``kernel`` gives the window for ``keras.ops.conv`` (its kernel's shape).
    None when ``op`` has no window this module understands.
    """
    cls = type(op).__name__
    rank = _spatial_rank(op, x)
    if rank < 1 or len(x) < rank + 2 or "LSTM" in cls:  # ConvLSTM: time comes first
        return None
    axes = _spatial(op, rank)
    if cls.startswith("Cropping"):
        out = []
        for (a, b), axis in zip(_crop_pairs(op, rank), axes):
            out.append(AxisWindow(axis, x[axis], "crop", a + b, dims.sub(x[axis], a + b),
                                  f"cropping ({a}, {b})"))
        return out
    padding = str(getattr(op, "padding", "valid")).lower()
    if getattr(op, "pool_size", None) is not None:
        pool = _per_axis(op.pool_size, rank)
        strides = _per_axis(op.strides if op.strides is not None else op.pool_size, rank)
        if padding != "valid":
            return []
        return [AxisWindow(axis, x[axis], "pool", int(pool[i]),
                           dims.conv_length(x[axis], int(pool[i]), int(strides[i])),
                           f"pool_size {pool[i]}, strides {strides[i]}, padding \"valid\"")
                for i, axis in enumerate(axes)]
    size = getattr(op, "kernel_size", None)
    if size is None and kernel is not None and len(kernel) >= rank:
        size = tuple(kernel[:rank])
    if size is None or "Transpose" in cls:
        return None
    size = _per_axis(size, rank)
    strides = _per_axis(getattr(op, "strides", 1), rank)
    dilation = _per_axis(getattr(op, "dilation_rate", 1) or 1, rank)
    if padding != "valid":
        return []
    out = []
    for i, axis in enumerate(axes):
        k, s, d = int(size[i]), int(strides[i] or 1), int(dilation[i] or 1)
        span = d * (k - 1) + 1
        detail = f"kernel {k}" + (f", dilation {d}" if d != 1 else "") + \
            f", strides {s}, padding \"valid\""
        out.append(AxisWindow(axis, x[axis], "conv", span,
                              dims.conv_length(x[axis], k, s, d), detail))
    return out


def too_short(windows: list[AxisWindow]) -> list[AxisWindow]:
    """The windows whose output axis has zero or fewer steps."""
    return [w for w in windows if isinstance(w.out, int) and w.out <= 0]


def describe(call_text: str, shape: tuple, bad: list[AxisWindow], op: Any = None) -> str:
    """``Conv1D `c` slides a window of 5 along axis 1 (steps) of (batch, 3, 100), ...``."""
    w = bad[0]
    rank = _spatial_rank(op, shape) if op is not None else 0

    def named(axis: int) -> str:
        return f"axis {axis} ({axis_name(op, axis, rank)})" if rank in _SPATIAL_NAMES \
            else f"axis {axis}"

    where = f"{named(w.axis)} of {dims.fmt_shape(shape)}"
    if w.kind == "crop":
        text = (f"{call_text} crops {w.detail.split(' ', 1)[1]} = {w.span} steps from "
                f"{where}, which has only {dims.fmt(w.size)}: {dims.fmt(w.out)} would be left")
    else:
        verb = "slides a window of" if w.kind == "conv" else "pools windows of"
        text = (f"{call_text} {verb} {w.span} along {where}, which has only "
                f"{dims.fmt(w.size)} step{'' if w.size == 1 else 's'} ({w.detail}; the "
                f"output axis would have {dims.fmt(w.out)})")
    more = [f"{named(v.axis)}: {dims.fmt(v.size)} for {v.span}" for v in bad[1:]]
    if more:
        text += "; also " + ", ".join(more)
    return text


def _swap_hint(op: Any, x: tuple, bad: list[AxisWindow]) -> str | None:
    """A fix when another non-batch axis is large enough for the window."""
    # Credible only when the other axis is much longer: (3 sensors, 100 steps).
    need = max([w.span for w in bad] + [4 * w.size for w in bad if isinstance(w.size, int)])
    failing = {w.axis for w in bad}
    others = [a for a in range(1, len(x)) if a not in failing
              and isinstance(x[a], int) and x[a] >= need]
    if not others:
        return None
    if len(x) == 3:
        a, b = dims.fmt(x[1]), dims.fmt(x[2])
        return (f"axis {others[0]} has {dims.fmt(x[others[0]])} steps: ({a}, {b}) looks like "
                f"(features, time) with the axes swapped; put time first with "
                f"`layers.Permute((2, 1))` before this layer, or transpose the data "
                f"(`x.transpose(0, 2, 1)`)")
    channels_last = (getattr(op, "data_format", None) or "channels_last") != "channels_first"
    if channels_last and failing == {1} and len(x) - 1 in others \
            and isinstance(x[1], int) and x[1] <= 4:
        perm = tuple(range(2, len(x))) + (1,)
        shape = dims.fmt_shape(x[1:])
        return (f"{shape} looks channels-first: pass `data_format=\"channels_first\"` to the "
                f"layers, or move the channels last with `layers.Permute({perm})` (or "
                f"transpose the data)")
    return None


_SPATIAL_CLASS = re.compile(r"Conv|Pooling[123]D|Cropping|ZeroPadding|UpSampling|Dense")


def shrink_path(ctx: ModelContext, call: LayerCall, axis: int) -> str | None:
    """``28 at input `x`, 14 after `pool`, ...``: how an axis came to its size."""
    steps: list[str] = []
    cur: LayerCall | None = ctx.producer(call.inputs[0]) if call.inputs else None
    while cur is not None:
        out = ctx.out_shapes(cur)
        size = out[0][axis] if out and len(out[0]) > axis else None
        if cur.is_input:
            steps.append(f"{dims.fmt(size)} at input `{cur.name}`")
            break
        ins = ctx.in_shapes(cur)
        before = ins[0] if ins else None
        if (len(cur.inputs) != 1 or before is None or len(before) != len(out[0])
                or not (cur.cls in SHAPE_PRESERVING or _SPATIAL_CLASS.search(cur.cls))):
            steps.append(f"{dims.fmt(size)} after `{cur.name}`")
            break
        if before[axis] != size:
            steps.append(f"{dims.fmt(size)} after `{cur.name}`")
        cur = ctx.producer(cur.inputs[0])
    if len(steps) < 2:
        return None
    return ", ".join(reversed(steps))


def window_hint(ctx: ModelContext | None, call: LayerCall | None, op: Any, x: tuple,
                bad: list[AxisWindow]) -> str:
    w = bad[0]
    path = shrink_path(ctx, call, w.axis) if ctx is not None and call is not None else None
    if path is None and w.kind != "crop":  # the axis as the data has it: maybe swapped
        swap = _swap_hint(op, x, bad)
        if swap is not None:
            return swap
    if w.kind == "crop":
        hint = (f"crop at most {dims.fmt(dims.sub(w.size, 1))} steps in total from axis "
                f"{w.axis}" + (", or crop before the layers that shrink it" if path else ""))
    else:
        what = ("a pool_size of" if w.kind == "pool" else "a kernel_size of" if "dilation"
                not in w.detail else "a kernel_size and dilation_rate whose window spans")
        hint = (f"use `padding=\"same\"` (the axis then keeps ceil(n / strides) steps), "
                f"{what} at most {dims.fmt(w.size)}, or a longer input")
    if path is not None:
        hint += f"; axis {w.axis} is {path}: fewer downsampling layers also help"
    return hint


REFUSED_WINDOW = re.compile(
   r"output size would be zero or negative|`?cropping`? (parameter|argument)|"
   r"negative dimension", re.I)


_CONV_TEXT = re.compile(r"inputs shape=(\([^)]*\))`, `kernel shape=(\([^)]*\))`, "
                        r"`dilation_rate=\[([^\]]*)\]`, `strides=(\([^)]*\))`")
_POOL_TEXT = re.compile(r"inputs\.shape=\[([^\]]*)\]`, `pool_size=\[([^\]]*)\]`, "
                        r"`strides=(\([^)]*\))`")


def _ints(text: str) -> tuple:
    """``(None, 3, 100)`` or ``[None 3 100]`` as a tuple (None stays None)."""
    items = [t for t in re.split(r"[\s,()\[\]]+", text) if t]
    if not all(t == "None" or t.isdigit() for t in items):
        raise ValueError(text)
    return tuple(None if t == "None" else int(t) for t in items)


@dataclass
class _Described:
    """A window read back from Keras's message (a layer inside a nested model)."""

    data_format: str
    padding: str = "valid"
    kernel_size: tuple | None = None
    dilation_rate: tuple | None = None
    strides: tuple | None = None
    pool_size: tuple | None = None


def from_keras_text(message: str) -> tuple[_Described, tuple, tuple | None] | None:
    """``(window, input shape, kernel shape)`` from Keras's "zero or negative" text."""
    try:
        return _parse_keras_text(message)
    except (ValueError, IndexError):
        return None


def _parse_keras_text(message: str) -> tuple[_Described, tuple, tuple | None] | None:
    m = _CONV_TEXT.search(message)
    if m is not None:
        x, kernel = _ints(m.group(1)), _ints(m.group(2))
        rank = len(kernel) - 2
        last = "channels_last" if x[-1] == kernel[-2] else "channels_first"
        return (_Described(last, kernel_size=kernel[:rank], dilation_rate=_ints(m.group(3)),
                           strides=_ints(m.group(4))), x, kernel)
    m = _POOL_TEXT.search(message)
    if m is not None:
        return (_Described("channels_last", pool_size=_ints(m.group(2)),
                           strides=_ints(m.group(3))), _ints(m.group(1)), None)
    return None


def inner_layer(model: Any, window: _Described, kernel: tuple | None) -> Any:
    """The one layer of a nested model with this window, if exactly one."""
    found = []
    for layer in getattr(model, "_flatten_layers", lambda **_: [])(include_self=False):
        if window.pool_size is not None:
            ok = tuple(getattr(layer, "pool_size", ()) or ()) == tuple(window.pool_size)
        else:
            ok = (tuple(getattr(layer, "kernel_size", ()) or ()) == tuple(window.kernel_size)
                  and kernel is not None and getattr(layer, "filters", None) == kernel[-1])
        if ok:
            found.append(layer)
    return found[0] if len(found) == 1 else None


WINDOW_CLASS = re.compile(r"Conv|Pool|Cropping")
