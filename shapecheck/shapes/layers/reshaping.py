"""Reshaping layers: Reshape, Flatten, Permute, RepeatVector, UpSampling,
ZeroPadding and Cropping (1D/2D/3D)."""

from __future__ import annotations

from typing import Any

from shapecheck.shapes import dims
from shapecheck.shapes.dims import Dim
from shapecheck.shapes.layers.registry import Call, ShapeError, require_rank, rule


def _spatial_axes(op: Any, count: int) -> list[int]:
    if getattr(op, "data_format", "channels_last") == "channels_first":
        return list(range(2, count + 2))
    return list(range(1, count + 1))


def _pairs(value: Any, count: int) -> list[tuple[int, int]]:
    """``((a, b), ...)`` per spatial axis from an int, ints or pairs."""
    if isinstance(value, int):
        return [(value, value)] * count
    out = []
    for v in value:
        if isinstance(v, int):
            out.append((v, v))
        else:
            a, b = v
            out.append((int(a), int(b)))
    return out


# --- Reshape / Flatten -----------------------------------------------------------


def _is_integer_valued(d: Dim) -> bool:
    if d is None or isinstance(d, int):
        return True
    return bool(getattr(d, "is_integer", False))


@rule("layers.Reshape")
def reshape(call: Call) -> tuple:
    x = call.x
    if not x:
        raise ShapeError("Reshape needs a batched input (rank >= 1)")
    target = [int(d) if isinstance(d, int) or hasattr(d, "__index__") else -1
              for d in call.op.target_shape]
    if target.count(-1) > 1:
        raise ShapeError(f"Reshape target_shape {tuple(call.op.target_shape)} has more "
                         "than one unknown (-1) dimension")
    total = dims.prod(x[1:])
    if -1 not in target:
        want = dims.prod(target)
        holds = dims.equal(total, want)
        if holds is False:
            raise ShapeError(
                f"Reshape to {tuple(target)} needs {want} elements per sample; the "
                f"input {dims.fmt_shape(x)} has {dims.fmt(total)}",
                expected=str(want), got=dims.fmt(total))
        if holds is None and total is not None:
            call.require_equal(total, want,
                               "Reshape keeps the number of elements per sample")
        return (x[0], *target)
    known = dims.prod([d for d in target if d != -1])
    if known == 0:
        raise ShapeError(f"Reshape target_shape {tuple(target)} has a zero dimension "
                         "next to -1")
    missing: Dim
    if total is None:
        missing = None
    elif isinstance(total, int):
        if total % known:
            raise ShapeError(
                f"Reshape to {tuple(target)}: {total} elements per sample are not "
                f"divisible by {known}", expected=f"a multiple of {known}",
                got=str(total))
        missing = total // known
    else:
        missing = dims.exact_div(total, known)
        if not _is_integer_valued(missing):
            # Not a multiple of `known` for every size: keep an integer expression
            # and record the divisibility the layer needs.
            missing = dims.floordiv(total, known)
            call.require_equal(dims.mul(missing, known), total,
                               f"Reshape's -1 needs the {dims.fmt(total)} elements "
                               f"per sample to be divisible by {known}")
    return (x[0], *[missing if d == -1 else d for d in target])


@rule("layers.Flatten")
def flatten(call: Call) -> tuple:
    x = call.x
    if not x:
        raise ShapeError("Flatten needs a batched input (rank >= 1)")
    return (x[0], dims.prod(x[1:]) if len(x) > 1 else 1)


# --- Permute / RepeatVector ------------------------------------------------------


@rule("layers.Permute")
def permute(call: Call) -> tuple:
    order = tuple(int(d) for d in call.op.dims)
    x = require_rank(call, len(order) + 1)
    return (x[0], *[x[d] for d in order])


@rule("layers.RepeatVector")
def repeat_vector(call: Call) -> tuple:
    x = require_rank(call, 2)
    return (x[0], int(call.op.n), x[1])


# --- UpSampling ------------------------------------------------------------------


@rule("layers.UpSampling1D")
def up_sampling_1d(call: Call) -> tuple:
    x = require_rank(call, 3)
    return (x[0], dims.mul(x[1], int(call.op.size)), x[2])


def _up_sampling(count: int):
    def fn(call: Call) -> tuple:
        x = list(require_rank(call, count + 2))
        size = call.op.size
        size = (size,) * count if isinstance(size, int) else tuple(size)
        for factor, axis in zip(size, _spatial_axes(call.op, count)):
            x[axis] = dims.mul(x[axis], int(factor))
        return tuple(x)

    fn.__name__ = f"up_sampling_{count}d"
    return fn


rule("layers.UpSampling2D")(_up_sampling(2))
rule("layers.UpSampling3D")(_up_sampling(3))


# --- ZeroPadding -----------------------------------------------------------------


def _zero_padding(count: int):
    def fn(call: Call) -> tuple:
        x = list(require_rank(call, count + 2))
        padding = call.op.padding
        pads = [tuple(int(p) for p in padding)] if count == 1 else _pairs(padding, count)
        for (a, b), axis in zip(pads, _spatial_axes(call.op, count)):
            x[axis] = dims.add(x[axis], a + b)
        return tuple(x)

    fn.__name__ = f"zero_padding_{count}d"
    return fn


rule("layers.ZeroPadding1D")(_zero_padding(1))
rule("layers.ZeroPadding2D")(_zero_padding(2))
rule("layers.ZeroPadding3D")(_zero_padding(3))


# --- Cropping --------------------------------------------------------------------


def _crop(call: Call, x: list, axis: int, a: int, b: int) -> None:
    n = dims.sub(x[axis], a + b)
    call.require_positive(n, f"cropping ({a}, {b}) must leave at least one element "
                             f"on axis {axis}")
    x[axis] = n


@rule("layers.Cropping1D")
def cropping_1d(call: Call) -> tuple:
    x = list(require_rank(call, 3))
    a, b = (int(c) for c in call.op.cropping)
    _crop(call, x, 1, a, b)
    return tuple(x)


def _cropping(count: int):
    def fn(call: Call) -> tuple:
        x = list(require_rank(call, count + 2))
        crops = _pairs(call.op.cropping, count)
        for (a, b), axis in zip(crops, _spatial_axes(call.op, count)):
            _crop(call, x, axis, a, b)
        return tuple(x)

    fn.__name__ = f"cropping_{count}d"
    return fn


rule("layers.Cropping2D")(_cropping(2))
rule("layers.Cropping3D")(_cropping(3))
