"""SC2xx sizes, windows and reshapes: axes that shrink to nothing, element counts
that do not add up, literal sizes that pin what the inputs leave free.

Also :func:`minimum_sizes`: the smallest size of each variable input dim that
every window of the model fits (not a finding; reports show it as ``H >= 32``).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Callable, Iterator

import networkx as nx

from shapecheck.shapes import dims
from shapecheck.shapes.dims import Dim
from shapecheck.shapes.graph import LayerCall
from shapecheck.rules import define, failure_check, model_check
from shapecheck.rules.construction import CLAIMED_BY_FAMILIES
from shapecheck.rules.context import (SHAPE_PRESERVING, ModelContext, failure_finding,
                                      failure_shapes, source_line)

SHRINKS = define("SC201", "axis-shrinks-to-zero", "error",
                 "a convolution, pooling or cropping window does not fit its axis", """
    ## What it does
    Finds a convolution, pooling or cropping layer whose window (kernel size
    times dilation, pool size, or the steps cropped) is larger than the axis
    it slides along, so that the output axis would have zero or fewer steps.
    It names the axis, its size, the window and, when the axis was shrunk by
    earlier layers, which ones. When another axis of the input is large enough
    for the window, it says that the axes look swapped (time and features,
    channels first).

    ## Why is this bad
    Keras refuses the call with "Computed output size would be zero or
    negative" and the whole shape, without saying which axis is too short;
    where the size is unknown until run time, the first batch fails instead.

    ## Example
    ```python
    x = keras.Input(shape=(3, 100))          # 3 sensors x 100 time steps
    y = layers.Conv1D(16, 5)(x)              # slides along the 3, not the 100
    ```

    ## Use instead
    ```python
    x = keras.Input(shape=(3, 100))
    y = layers.Conv1D(16, 5)(layers.Permute((2, 1))(x))   # (batch, 100, 3)
    ```
    """)

RESHAPE_SIZE = define("SC202", "reshape-size", "error",
                      "a Reshape target does not hold the input's elements", """
    ## What it does
    Compares the elements per sample of a `Reshape`'s input with its target
    shape: a target of another size, or a `-1` that would not be a whole
    number. It shows the element count (`32*32*16 = 16384`) and, when one
    exists, a target that fits (the size the last axis needs, or where the
    `-1` goes).

    ## Why is this bad
    Keras refuses the call ("The total size of the tensor must be unchanged")
    when it knows the sizes; when they depend on sizes known only at run time,
    the model builds and the first batch fails.

    ## Example
    ```python
    x = keras.Input(shape=(32, 32, 16))
    y = layers.Reshape((32, 500))(x)         # 16000 slots for 16384 elements
    ```

    ## Use instead
    ```python
    y = layers.Reshape((32, 512))(x)         # or layers.Reshape((32, -1))
    ```
    """)

FROZEN_DIM = define("SC203", "frozen-dim", "warning",
                    "a literal size fixes a dim that a model input leaves variable", """
    ## What it does
    Finds a literal size that pins down a size a model input declares as
    variable (`None`):

    - a `RepeatVector(n)` whose input comes from a variable-length sequence
      and whose steps reach a model output: the output always has `n` steps,
      whatever the input's length (the sequence autoencoder pattern);
    - a `Reshape` to a literal target after an input of variable size: it
      works only for the input sizes whose element count matches the target.

    ## Why is this bad
    The model builds and accepts inputs of any length, but targets of another
    length than `n`, or inputs of another size than the Reshape assumes, fail
    in `fit` or `predict`, far from the line that fixed the size. Where the
    script feeds that output targets of exactly `n` steps, they agree with the
    decoder and the `RepeatVector` is not reported.

    ## Example
    ```python
    seq = keras.Input(shape=(None, 8))       # any length T
    code = layers.LSTM(32)(seq)
    steps = layers.RepeatVector(10)(code)    # always 10 steps
    out = layers.LSTM(8, return_sequences=True)(steps)
    autoencoder = keras.Model(seq, out)      # fit(x, x) fails for T != 10
    ```

    ## Use instead
    ```python
    seq = keras.Input(shape=(10, 8))         # the length the decoder makes
    code = layers.LSTM(32)(seq)
    steps = layers.RepeatVector(10)(code)
    out = layers.LSTM(8, return_sequences=True)(steps)
    ```
    """, outcome="silent")


# --- windows -------------------------------------------------------------------------


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


def _describe(call_text: str, shape: tuple, bad: list[AxisWindow], op: Any = None) -> str:
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


def _window_hint(ctx: ModelContext | None, call: LayerCall | None, op: Any, x: tuple,
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


_REFUSED_WINDOW = re.compile(
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


def _inner_layer(model: Any, window: _Described, kernel: tuple | None) -> Any:
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


_WINDOW_CLASS = re.compile(r"Conv|Pool|Cropping")


@failure_check(priority=40)
def refused_window(failure: Any, ctx: ModelContext | None, call: Any) -> Any:
    """Keras refused a convolution, pooling or cropping whose window does not fit."""
    if not _REFUSED_WINDOW.search(failure.message):
        return None
    op = failure.op
    shapes = failure_shapes(failure, ctx, call)
    x = shapes[0] if shapes else None
    kernel = tuple(failure.input_shapes[1]) if len(failure.input_shapes) > 1 else None
    windows = window_axes(op, x, kernel) if x is not None else None
    name = f"{type(op).__name__} `{getattr(op, 'name', '?')}`"
    if windows is None:  # e.g. a nested model: Keras's text names the window
        inner = from_keras_text(failure.message)
        if inner is not None:
            window, raw, kernel = inner
            x = (dims.named("batch"),) + raw[1:]
            windows = window_axes(window, x, kernel)
            layer = _inner_layer(op, window, kernel)
            name = (f"{type(layer).__name__} `{layer.name}` inside {name}" if layer is not None
                    else f"a layer inside {name}")
            op = window
    bad = too_short(windows or [])
    if windows is None and not _WINDOW_CLASS.search(type(op).__name__):
        return None  # not a window this rule knows: let the others explain it
    if x is None or not bad:
        first = failure.message.strip().splitlines()[0]
        return failure_finding(
            SHRINKS, failure, ctx, call,
            f"{name}: a window does not fit its input ({first})",
            shapes={"input": x} if x is not None else None,
            hint="use `padding=\"same\"`, a smaller window, or a larger input")
    return failure_finding(SHRINKS, failure, ctx, call, _describe(name, x, bad, op),
                           shapes={"input": x}, hint=_window_hint(ctx, call, op, x, bad))


def _follows_refusal(ctx: ModelContext, call: LayerCall) -> bool:
    return any(ctx.by_id[a].failure is not None for a in ctx.ancestors(call))


@model_check
def window_never_fits(ctx: ModelContext) -> Iterator[Any]:
    """Requirements that never hold at calls Keras let through (unknown sizes)."""
    seen: set[str] = set()
    for req in ctx.scope.requirements:
        if req.holds is not False or req.layer in seen:
            continue
        call = ctx.by_name.get(req.layer.split("/")[0])
        if call is None or call.failure is not None or _follows_refusal(ctx, call):
            continue
        seen.add(req.layer)
        name = f"{call.cls} `{req.layer}`"
        x = ctx.in_shapes(call)[0] if call.inputs and req.layer == call.name else None
        bad = too_short(window_axes(call.op, x) or []) if x is not None else []
        if bad:
            yield ctx.finding(SHRINKS, call, _describe(name, x, bad, call.op),
                              shapes={"input": x},
                              hint=_window_hint(ctx, call, call.op, x, bad))
        else:
            yield ctx.finding(SHRINKS, call,
                              f"{name}: {req.reason}, but the output axis has "
                              f"{dims.fmt(req.dim)} steps",
                              hint="use `padding=\"same\"`, a smaller window, or a larger "
                                   "input")


# --- minimum input sizes ---------------------------------------------------------------

_SCAN = 4096
_LIMIT = 1 << 40


def input_dim_names(ctx: ModelContext) -> set[str]:
    """Named non-batch dims of the model's inputs."""
    out: set[str] = set()
    for call in ctx.model_inputs():
        for shape in ctx.out_shapes(call):
            for d in shape[1:]:
                out |= dims.free_names(d)
    return out - {"batch"}


def exact_fn(expr: Any) -> Callable[[dict[str, int]], Fraction]:
    """``expr`` as a function of dim sizes, in exact rational arithmetic (floats
    round ``floor(14/3 - 2/3)`` down to 3)."""
    if isinstance(expr, int) or expr.is_Integer:
        value = Fraction(int(expr))
        return lambda env: value
    if expr.is_Rational:
        value = Fraction(int(expr.p), int(expr.q))
        return lambda env: value
    if expr.is_Symbol:
        name = expr.name
        return lambda env: Fraction(env[name])
    parts = [exact_fn(a) for a in expr.args]
    if expr.is_Add:
        return lambda env: sum((p(env) for p in parts), Fraction(0))
    if expr.is_Mul:
        return lambda env: math.prod((p(env) for p in parts), start=Fraction(1))
    if expr.is_Pow and expr.exp.is_Integer:
        base, exp = parts[0], int(expr.exp)
        return lambda env: base(env) ** exp
    import sympy as sp

    rounding = {sp.floor: math.floor, sp.ceiling: math.ceil}.get(expr.func)
    if rounding is not None:
        inner = parts[0]
        return lambda env: Fraction(rounding(inner(env)))
    if expr.func in (sp.Max, sp.Min):
        pick = max if expr.func is sp.Max else min
        return lambda env: pick(p(env) for p in parts)
    raise ValueError(f"cannot evaluate {expr}")


def _fits_fn(d: Any, name: str) -> Callable[[int], bool]:
    """``v -> d(v) >= 1`` for a requirement over the one dim ``name``."""
    try:
        fn = exact_fn(d)
    except ValueError:
        return lambda v: (dims.evaluate(d, {name: v}) or 0) >= 1
    return lambda v: fn({name: v}) >= 1


def first_fit(fits: Callable[[int], bool], start: int = 1) -> int | None:
    """The smallest ``v >= start`` with ``fits(v)``: a scan, then doubling and bisection."""
    for v in range(start, max(start, _SCAN) + 1):
        if fits(v):
            return v
    lo, hi = max(start, _SCAN), max(start, _SCAN) * 2
    while not fits(hi):
        lo, hi = hi, hi * 2
        if hi > _LIMIT:
            return None
    while hi - lo > 1:  # fits(hi), not fits(lo); requirements are monotone in practice
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if fits(mid) else (mid, hi)
    return hi


def minimum_sizes(ctx: ModelContext) -> dict[str, tuple[int, str]]:
    """``dim -> (smallest size, layer that sets it)`` for each variable input dim that
    a window or crop bounds from below (e.g. ``{"H": (32, "conv5_block3_2_conv")}``).

    Only requirements that depend on that one dim count; a dim every size of which
    fits is left out.
    """
    names = input_dim_names(ctx)
    groups: dict[str, list[Any]] = {}
    for req in ctx.scope.requirements:
        free = dims.free_names(req.dim)
        if req.holds is None and len(free) == 1 and free <= names:
            groups.setdefault(next(iter(free)), []).append(req)
    out: dict[str, tuple[int, str]] = {}
    for name, reqs in groups.items():
        found = _minimum_for(name, reqs)
        if found is not None and found[0] > 1:
            out[name] = found
    return dict(sorted(out.items()))


def _minimum_for(name: str, reqs: list[Any]) -> tuple[int, str] | None:
    unique: dict[Any, Any] = {}  # one per expression: many layers repeat a window
    for r in reqs:
        unique.setdefault(r.dim, r)
    reqs = list(unique.values())
    fns = [_fits_fn(r.dim, name) for r in reqs]
    best: tuple[int, str] | None = None
    for req, fits in zip(reqs, fns):
        v = first_fit(fits)
        if v is None:
            return None
        if best is None or v > best[0]:
            best = (v, req.layer)
    assert best is not None
    value = first_fit(lambda v: all(f(v) for f in fns), best[0])
    if value is None:
        return None
    if not all((dims.evaluate(r.dim, {name: value}) or 0) >= 1 for r in reqs):
        return None
    return value, best[1]


# --- SC202: Reshape element counts --------------------------------------------------------


def _target(op: Any) -> tuple[int, ...] | None:
    target = getattr(op, "target_shape", None)
    if target is None:
        return None
    return tuple(int(d) if d is not None else -1 for d in target)


def _tup(items: tuple) -> str:
    text = ", ".join(str(i) for i in items)
    return f"({text},)" if len(items) == 1 else f"({text})"


def element_count(shape: tuple) -> str:
    """``32*32*16 = 16384`` for the axes after the batch."""
    axes = shape[1:]
    total = dims.prod(list(axes))
    if len(axes) <= 1:
        return dims.fmt(total)
    product = "*".join(dims.fmt(d) if dims.is_int(d) or getattr(d, "is_Symbol", False)
                       else f"({dims.fmt(d)})" for d in axes)
    return product if product == dims.fmt(total) else f"{product} = {dims.fmt(total)}"


def _nearest_divisor(n: int, near: int) -> int:
    best = 1
    for k in range(1, math.isqrt(n) + 1):
        if n % k == 0:
            for d in (k, n // k):
                if abs(d - near) < abs(best - near) or (abs(d - near) == abs(best - near)
                                                        and d > best):
                    best = d
    return best


def fitting_target(total: int, target: tuple[int, ...]) -> tuple[int, ...] | None:
    """A target close to ``target`` that holds ``total`` elements (one axis changed)."""
    known = [i for i, d in enumerate(target) if d != -1]
    for i in reversed(known):
        others = math.prod(target[j] for j in known if j != i)
        if others <= 0 or total % others:
            continue
        rest = total // others
        if -1 in target:
            size = _nearest_divisor(rest, target[i])
        else:
            size = rest
        return tuple(size if j == i else d for j, d in enumerate(target))
    return None


def _with_minus_one(target: tuple[int, ...]) -> tuple[int, ...]:
    """``target`` with its last axis as -1 (keeping a -1 that is there)."""
    if -1 in target:
        return target
    return target[:-1] + (-1,)


def _reshape_hint(total: Dim, target: tuple[int, ...]) -> str:
    if isinstance(total, int):
        fit = fitting_target(total, target)
        if fit is not None:
            text = f"`layers.Reshape({_tup(fit)})` holds all {total} elements"
            if -1 in fit:
                known = math.prod(d for d in fit if d != -1)
                text += f" (the -1 becomes {total // known})"
            elif math.prod(d for d in fit[:-1]) and total % math.prod(fit[:-1]) == 0:
                text += f"; so does `layers.Reshape({_tup(_with_minus_one(fit))})`"
            return text
        return (f"choose target sizes whose product is {total}, or put -1 for one axis "
                "whose size then follows from the rest")
    content = _content(total)
    if -1 not in target:  # a size that varies with the input: let the first axis follow
        target = (-1,) + target[1:]
    known = [i for i, d in enumerate(target) if d != -1]
    if content and known:
        i = known[-1]
        others = math.prod(target[j] for j in known if j != i)
        if others and content % others == 0:
            size = max(d for d in range(1, target[i] + 1) if (content // others) % d == 0)
            fit = tuple(size if j == i else d for j, d in enumerate(target))
            return (f"{dims.fmt(total)} is always a multiple of {content}: "
                    f"`layers.Reshape({_tup(fit)})` fits every input size")
    return "choose target sizes that divide the element count for every input size"


def _content(expr: Dim) -> int | None:
    """The largest integer dividing ``expr`` for every size of its dims (polynomials)."""
    import sympy as sp

    try:
        poly = sp.Poly(sp.expand(expr), *sorted(expr.free_symbols, key=lambda s: s.name))
    except (sp.PolynomialError, sp.GeneratorsNeeded, AttributeError):
        return None
    coeffs = [int(c) for c in poly.coeffs() if c.is_Integer]
    if len(coeffs) != len(poly.coeffs()):
        return None
    return math.gcd(*coeffs) or None


def _reshape_message(name: str, x: tuple, target: tuple[int, ...]) -> str:
    total = dims.prod(list(x[1:]))
    count = element_count(x)
    if -1 in target:
        known = math.prod(d for d in target if d != -1)
        return (f"{name} cannot spread the {count} elements per sample of "
                f"{dims.fmt_shape(x)} over {_tup(target)}: {dims.fmt(total)} is not a "
                f"multiple of {known}, so the -1 would not be a whole number")
    want = math.prod(target)
    return (f"{name} cannot put the {count} elements per sample of {dims.fmt_shape(x)} "
            f"into {_tup(target)}, which holds {want}")


_REFUSED_RESHAPE = re.compile(r"total size of the tensor must be unchanged", re.I)


@failure_check(priority=40)
def refused_reshape(failure: Any, ctx: ModelContext | None, call: Any) -> Any:
    """Keras refused a Reshape whose target holds another number of elements."""
    if not _REFUSED_RESHAPE.search(failure.message):
        return None
    op = failure.op
    target = _target(op)
    shapes = failure_shapes(failure, ctx, call)
    x = shapes[0] if shapes else None
    if target is None or x is None or not x:
        return None
    name = f"{type(op).__name__} `{getattr(op, 'name', '?')}`"
    return failure_finding(RESHAPE_SIZE, failure, ctx, call, _reshape_message(name, x, target),
                           shapes={"input": x},
                           hint=_reshape_hint(dims.prod(list(x[1:])), target))


def _is_reshape_layer(call: Any) -> bool:
    return call.cls == "Reshape" and _target(call.op) is not None


def _claims_reshape(ctx: ModelContext, call: Any, c: Any) -> bool:
    return _is_reshape_layer(call)


CLAIMED_BY_FAMILIES.append(_claims_reshape)


def never_holds(c: Any) -> bool:
    """A constraint that fails for every size: known False, or ``16*H*W == 1000``
    (the left side is always a multiple of 16, the right side is not)."""
    if c.holds is False:
        return True
    if c.holds is None and isinstance(c.rhs, int) and dims.is_symbolic(c.lhs):
        content = _content(c.lhs)
        return bool(content) and c.rhs % content != 0
    return False


@model_check
def reshape_never_fits(ctx: ModelContext) -> Iterator[Any]:
    """Reshapes Keras let through (sizes unknown) whose element count never fits."""
    bad = {c.layer for c in ctx.scope.constraints if never_holds(c)}
    bad |= {n.layer for n in ctx.scope.notes if n.kind == "shape-error"}
    for call in ctx.calls:
        if call.name not in bad or not _is_reshape_layer(call) or call.failure is not None:
            continue
        x = ctx.in_shapes(call)[0] if call.inputs else None
        if x is None or not x or _follows_refusal(ctx, call):
            continue
        target = _target(call.op)
        assert target is not None
        yield ctx.finding(RESHAPE_SIZE, call,
                          _reshape_message(f"Reshape `{call.name}`", x, target),
                          shapes={"input": x},
                          hint=_reshape_hint(dims.prod(list(x[1:])), target))


# --- SC203: literal sizes that pin variable dims ------------------------------------------


def sequence_dims(ctx: ModelContext) -> dict[int, tuple[LayerCall, str]]:
    """``input call id -> (input, dim name)`` for inputs of variable length: axis 1 of
    a ``(batch, T)`` or ``(batch, T, features)`` input left ``None``."""
    out: dict[int, tuple[LayerCall, str]] = {}
    for call in ctx.model_inputs():
        shapes = ctx.out_shapes(call)
        if not shapes or len(shapes[0]) not in (2, 3):
            continue
        d = shapes[0][1]
        if dims.is_symbolic(d) and getattr(d, "is_Symbol", False):
            out[call.id] = (call, str(d))
    return out


def _n_source(call: LayerCall, n: int) -> str:
    """``RepeatVector(10)``, or ``RepeatVector(max_len)`` with max_len = 10."""
    text = source_line(call.path, call.line) or ""
    m = re.search(r"RepeatVector\(\s*(?:n\s*=\s*)?([^,()]+?)\s*[,)]", text)
    expr = m.group(1).strip() if m else None
    if expr is None or expr == str(n):
        return f"the literal `RepeatVector({n})`"
    return f"`RepeatVector({expr})` with {expr} = {n}"


def _decoded_output(ctx: ModelContext, call: LayerCall, n: int) -> LayerCall | None:
    """A model output downstream of ``call`` with ``n`` steps on axis 1, unless the
    script feeds it targets, all of ``n`` steps (they agree with the decoder)."""
    later = nx.descendants(ctx.graph.graph, call.id)
    for key in ctx.graph.outputs:
        c = ctx.producer(key)
        if c is None or c.id not in later:
            continue
        shape = ctx.tensor_shape(key)
        if shape is None or len(shape) < 3 or shape[1] != n:
            continue
        fed = ctx.fed_targets.get(key)
        if fed and all(len(t) >= 2 and t[1] == n for t in fed):
            continue
        return c
    return None


@model_check
def frozen_repeat(ctx: ModelContext) -> Iterator[Any]:
    """RepeatVector(n) decoding a variable-length sequence into n steps."""
    seqs = sequence_dims(ctx)
    if not seqs:
        return
    for call in ctx.calls:
        if call.cls != "RepeatVector" or call.failure is not None:
            continue
        n = int(call.op.n)
        up = [seqs[a] for a in sorted(ctx.ancestors(call)) if a in seqs]
        out = _decoded_output(ctx, call, n) if up else None
        if out is None:
            continue
        src, dim = up[0]
        shape = ctx.out_shapes(src)[0]
        yield ctx.finding(
            FROZEN_DIM, call,
            f"RepeatVector `{call.name}` always makes {n} steps ({_n_source(call, n)}), so "
            f"output `{out.name}` has {n} steps whatever the length {dim} of input "
            f"`{src.name}` {dims.fmt_shape(shape)}: targets must have exactly {n} steps "
            f"(trained on (x, x), as an autoencoder, it fails for every {dim} != {n})",
            shapes={"input": ctx.in_shapes(call)[0], "output": ctx.out_shapes(call)[0],
                    src.name: shape},
            hint=f"declare the input with the length the decoder makes "
                 f"(`keras.Input(shape={_tup((n,) + tuple(shape[2:]))})`, padding or "
                 f"cutting the sequences to it), or repeat to the input's length at run "
                 f"time instead of a fixed {n}")


def _reduced(lhs: Any, rhs: int) -> str | None:
    """``H*W == 1024`` for ``16*H*W == 16384`` (None when no whole size fits)."""
    import sympy as sp

    coeff, rest = sp.sympify(lhs).as_coeff_Mul()
    coeff = int(coeff) if coeff.is_Integer and coeff > 0 else 1
    if rhs % coeff:
        return None
    return f"{dims.fmt(dims.norm(rest)) if coeff != 1 else dims.fmt(lhs)} == {rhs // coeff}"


def _free_target(lhs: Any, target: tuple[int, ...]) -> tuple[int, ...] | None:
    """``target`` with one axis as -1 that fits every input size, if any."""
    for i in range(len(target)):
        others = math.prod(d for j, d in enumerate(target) if j != i)
        q = dims.exact_div(lhs, others)
        if q is not None and (isinstance(q, int) or getattr(q, "is_integer", False)):
            return tuple(-1 if j == i else d for j, d in enumerate(target))
    return None


@model_check
def frozen_reshape(ctx: ModelContext) -> Iterator[Any]:
    """A literal Reshape target that fixes the element count of variable input dims."""
    names = input_dim_names(ctx)
    seen: set[str] = set()
    for c in ctx.scope.constraints:
        call = ctx.by_name.get(c.layer)
        if (c.holds is not None or call is None or not _is_reshape_layer(call)
                or call.name in seen or not isinstance(c.rhs, int) or never_holds(c)):
            continue
        free = dims.free_names(c.lhs)
        target = _target(call.op)
        if not free or not free <= names or target is None or -1 in target:
            continue
        seen.add(call.name)
        x = ctx.in_shapes(call)[0]
        variable = ", ".join(sorted(free))
        reduced = _reduced(c.lhs, c.rhs)
        only = f"inputs with {reduced}" if reduced else "some input sizes"
        free_target = _free_target(c.lhs, target)
        hint = ("declare the input's sizes in `keras.Input(shape=...)` if they are fixed"
                + (f", or let one axis follow the input: `layers.Reshape({_tup(free_target)})`"
                   if free_target else
                   ", or use -1 for the target axis that should follow the input"))
        yield ctx.finding(
            FROZEN_DIM, call,
            f"Reshape `{call.name}` to {_tup(target)} needs {dims.fmt(c.lhs)} == {c.rhs} "
            f"elements per sample: the model works only for {only}, though its input "
            f"leaves {variable} variable",
            shapes={"input": x}, hint=hint)
