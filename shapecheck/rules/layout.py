"""SC610 channels-first data: images laid out for one data format reach a layer of the other.

A channels-last convolution given ``(N, 3, 64, 64)`` builds and trains: it reads
3 as the height and 64 as the channels.  The rule judges the shape the model's
input declares (statically) and the shape of each sampled batch, against the
``data_format`` of the spatial layer that first consumes the input.
"""

from __future__ import annotations

import re
from collections import deque
from dataclasses import dataclass
from typing import Any, Iterator

from shapecheck.shapes import dims
from shapecheck.data.bind import Binding, keras_adjusted
from shapecheck.shapes.graph import LayerCall
from shapecheck.rules import batch_check, define, model_check
from shapecheck.rules.context import SHAPE_PRESERVING, ModelContext, data_finding
from shapecheck.rules.windows import axis_name, too_short, window_axes

CHANNELS_FIRST_DATA = define(
    "SC610", "channels-first-data", "warning",
    "images laid out channels-first reach a channels-last layer (or the reverse)", """
    ## What it does
    Finds the spatial layer (a convolution, pooling, padding, cropping or
    upsampling layer) that first consumes each model input, and compares its
    `data_format` with the shape the input declares and with the batches the
    script feeds. For a `channels_last` layer it reports a shape whose axis 1
    is 1, 3 or 4 while the other axes are at least 8 and the last is at
    least 4 times axis 1 (`(3, 64, 64)`, `(1, 28, 28)`); for a 1-D
    convolution or pooling it asks for a window wider than one step, a last
    axis of at least 32 and 16 times axis 1 (`(3, 128)`: 3 sensors, 128
    steps). For a `channels_first` layer it reports the mirror image
    (`(64, 64, 3)`). Inputs that reach an RNN, a `Dense`, a `Permute` or a
    `Reshape` first are left alone: `(N, 3, 128)` into an `LSTM` is 3 steps
    of 128 features.

    ## Why is this bad
    Nothing fails when the sizes happen to fit: with `padding="same"` (or
    windows no larger than the small axis) Keras builds the model and trains
    it on the wrong axes, with 64 "channels" of 3 x 64 images instead of 3
    channels of 64 x 64. The accuracy is poor and nothing says why. (When the
    model's input fixes the channels, `(64, 64, 3)`, the same data fails at
    `fit` instead: SC603.)

    ## Example
    ```python
    images = np.zeros((100, 3, 64, 64), "float32")    # PyTorch-style NCHW
    inputs = keras.Input(shape=images.shape[1:])
    x = layers.Conv2D(16, 3, padding="same", activation="relu")(inputs)
    ```

    ## Use instead
    ```python
    images = np.transpose(images, (0, 2, 3, 1))       # (100, 64, 64, 3)
    inputs = keras.Input(shape=images.shape[1:])
    x = layers.Conv2D(16, 3, padding="same", activation="relu")(inputs)
    # in a tf.data pipeline: ds.map(lambda x, y: (tf.transpose(x, (1, 2, 0)), y))
    # or keep the data and tell the layers: data_format="channels_first"
    ```
    """, outcome="none")

# The sizes of a channel axis that give the layout away: grey, RGB, RGBA.
CHANNEL_SIZES = frozenset({1, 3, 4})
# Images (2-D, 3-D): every other axis at least MIN_SIDE, the far end RATIO times the channels.
MIN_SIDE, RATIO = 8, 4
# 1-D signals, where a short sequence of wide steps is common: stricter.
MIN_STEPS, RATIO_1D = 32, 16

# Spatial layers whose data_format decides how they read their input.
_SPATIAL = re.compile(r"^(?:Conv|SeparableConv|DepthwiseConv)([123])D(?:Transpose)?$|"
                      r"^(?:Max|Average|GlobalMax|GlobalAverage|AdaptiveMax|AdaptiveAverage)"
                      r"Pooling([123])D$|^(?:ZeroPadding|Cropping|UpSampling)([123])D$")
# Layers that reorder or reinterpret axes while keeping the shape: they decide the layout.
_REORDERING = frozenset({"Permute", "Transpose", "Reshape", "Lambda", "Moveaxis", "Swapaxes",
                         "TFSMLayer", "TorchModuleWrapper", "JaxLayer", "FlaxLayer"})
_WALK_LIMIT = 64


@dataclass(frozen=True)
class Layout:
    """A spatial layer that reads an input, and how it reads the input's axes."""

    call: LayerCall
    data_format: str  # "channels_last" | "channels_first"
    spatial: int  # 1, 2 or 3


def spatial_layout(call: LayerCall) -> Layout | None:
    """The layout ``call`` reads its input with, if it is a spatial layer that has one."""
    m = _SPATIAL.match(call.cls)
    fmt = getattr(call.op, "data_format", None)
    if m is None or fmt not in ("channels_last", "channels_first"):
        return None
    spatial = int(next(g for g in m.groups() if g))
    if spatial == 1 and not call.cls.startswith(("Conv", "SeparableConv", "DepthwiseConv",
                                                 "Max", "Average")):
        return None  # global pooling, padding, cropping, upsampling: common on short sequences
    return Layout(call, fmt, spatial)


def _passes_through(ctx: ModelContext, call: LayerCall) -> bool:
    """Whether ``call`` hands its one input on with the same shape and axis meaning."""
    if call.cls in SHAPE_PRESERVING:
        return True
    if call.cls in _REORDERING or len(call.inputs) != 1 or call.failure is not None:
        return False
    outs, ins = ctx.out_shapes(call), ctx.in_shapes(call)
    return len(outs) == 1 and bool(ins) and ins[0] is not None and outs[0] == ins[0]


def first_layout(ctx: ModelContext, start: LayerCall) -> Layout | None:
    """The layout of the spatial layers that first consume ``start``'s output.

    None unless every path from ``start`` reaches a spatial layer before any
    other layer, and they all read one data format and rank.
    """
    found: list[Layout] = []
    queue = deque(ctx.consumers(start))
    seen: set[int] = set()
    while queue:
        call = queue.popleft()
        if call.id in seen:
            continue
        seen.add(call.id)
        if len(seen) > _WALK_LIMIT:
            return None
        layout = spatial_layout(call)
        if layout is not None:
            found.append(layout)
        elif _passes_through(ctx, call):
            queue.extend(ctx.consumers(call))
        else:
            return None
    if not found or len({(f.data_format, f.spatial) for f in found}) != 1:
        return None
    return found[0]


def misread_axes(shape: tuple, layout: Layout) -> tuple[int, int] | None:
    """``(small, large)``: the axis ``layout`` takes for channels or space that looks like
    the other, and the axis that looks like it should be there instead; None if the
    shape reads as the layer's data format says (or cannot be judged)."""
    rank = layout.spatial + 2
    if len(shape) != rank or not all(isinstance(d, int) for d in shape[1:]):
        return None
    if layout.data_format == "channels_last":
        small, large = 1, rank - 1
    else:
        small, large = rank - 1, 1
    channels = shape[small]
    if channels not in CHANNEL_SIZES:
        return None
    sides = [shape[a] for a in range(1, rank) if a != small]
    min_side, ratio = (MIN_STEPS, RATIO_1D) if layout.spatial == 1 else (MIN_SIDE, RATIO)
    if min(sides) < min_side or shape[large] < ratio * channels:
        return None
    if layout.spatial == 1 and _window(layout.call) <= 1:
        return None  # a pointwise Conv1D over short steps is a per-step Dense
    return small, large


def _window(call: LayerCall) -> int:
    """The steps a 1-D conv or pooling window spans."""
    op = call.op
    size = getattr(op, "kernel_size", None) or getattr(op, "pool_size", None) or 1
    dilation = getattr(op, "dilation_rate", 1) or 1
    k = int(size[0] if isinstance(size, (tuple, list)) else size)
    d = int(dilation[0] if isinstance(dilation, (tuple, list)) else dilation)
    return d * (k - 1) + 1


def _window_fails(layout: Layout, shape: tuple) -> bool:
    """Whether the layer refuses or cannot fit ``shape`` (SC201/SC605 say so then)."""
    if layout.call.failure is not None:
        return True
    windows = window_axes(layout.call.op, shape)
    return bool(windows and too_short(windows))


def _axes_text(shape: tuple, layout: Layout, small: int, large: int) -> str:
    op = layout.call.op
    return (f"axis {small} ({axis_name(op, small, layout.spatial)}) is {shape[small]}, "
            f"axis {large} ({axis_name(op, large, layout.spatial)}) is {shape[large]}")


def _looks(layout: Layout) -> str:
    return "channels-first" if layout.data_format == "channels_last" else "channels-last"


def _layer_text(layout: Layout) -> str:
    return f"{layout.call.cls} `{layout.call.name}` (data_format=\"{layout.data_format}\")"


def _perm(layout: Layout) -> tuple[int, ...]:
    """The transpose of a batch that gives ``layout`` its axes in order."""
    rank = layout.spatial + 2
    if layout.data_format == "channels_last":
        return (0,) + tuple(range(2, rank)) + (1,)
    return (0, rank - 1) + tuple(range(1, rank - 1))


def _hint(layout: Layout, name: str, shape: tuple, declared: bool) -> str:
    perm = _perm(layout)
    sample = tuple(p - 1 for p in perm[1:])
    moved = tuple(shape[p] for p in perm)
    other = "channels_first" if layout.data_format == "channels_last" else "channels_last"
    pipeline = (f"(in a `tf.data` pipeline, `tf.transpose(x, {sample})` inside `Dataset.map` "
                f"before `.batch`, {perm} after it)")
    if declared:
        first = (f"declare `keras.Input(shape={moved[1:]})` and transpose the data to "
                 f"match: `np.transpose({name}, {perm})` {pipeline}")
    else:
        first = (f"transpose the data: `np.transpose({name}, {perm})` gives "
                 f"{dims.fmt_shape(moved)} {pipeline}; declare any `Input(shape=...)` to match")
    return f"{first}; or keep the layout and pass `data_format=\"{other}\"` to the " \
           "spatial layers"


def _static(ctx: ModelContext, start: LayerCall) -> tuple[Layout, tuple, int, int] | None:
    """The declared input shape that already looks misread, with its layer and axes."""
    if not start.is_input:
        return None
    layout = first_layout(ctx, start)
    outs = ctx.out_shapes(start)
    if layout is None or not outs:
        return None
    shape = tuple(outs[0])
    axes = misread_axes(shape, layout)
    if axes is None or _window_fails(layout, shape):
        return None
    return layout, shape, axes[0], axes[1]


@model_check
def declared_channels_first(ctx: ModelContext) -> Iterator[Any]:
    for start in ctx.model_inputs():
        got = _static(ctx, start)
        if got is None:
            continue
        layout, shape, small, large = got
        yield ctx.finding(
            CHANNELS_FIRST_DATA, start,
            f"input `{start.name}` declares {dims.fmt_shape(shape)}, passed unchanged to "
            f"{_layer_text(layout)}: {_axes_text(shape, layout, small, large)}; this looks "
            f"like {_looks(layout)} data",
            shapes={f"input `{start.name}`": shape}, hint=_hint(layout, "x", shape, True))


@batch_check
def fed_channels_first(ctx: ModelContext, b: Binding) -> Iterator[Any]:
    skip = {m.name for m in b.rank_mismatches} | {m.name for m, _, _, _ in b.size_mismatches}
    for m in b.inputs:
        start = ctx.producer(m.key)
        if m.name in skip or start is None or _static(ctx, start) is not None:
            continue  # SC602/SC603 explain it, or the declared shape was reported
        layout = first_layout(ctx, start)
        if layout is None:
            continue
        data = keras_adjusted(tuple(m.info.shape), tuple(m.shape))
        axes = misread_axes(data, layout)
        if axes is None or _window_fails(layout, data):
            continue
        small, large = axes
        yield data_finding(
            CHANNELS_FIRST_DATA, ctx, b,
            f"{m.label} is {dims.fmt_shape(data)}; input `{start.name}` passes it unchanged to "
            f"{_layer_text(layout)}: {_axes_text(data, layout, small, large)}; this looks "
            f"like {_looks(layout)} data",
            layer=start.name, shapes={f"input `{start.name}`": m.shape, m.label: data},
            hint=_hint(layout, m.label.split("[")[0], data, False))
