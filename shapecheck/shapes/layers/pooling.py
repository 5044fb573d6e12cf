"""Pooling layers: windowed, global and adaptive (1D/2D/3D).

Windowed pooling mirrors ``keras.src.ops.operation_utils.compute_pooling_output_shape``:
``valid`` gives ``floor((n - pool) / stride) + 1`` (must be >= 1), ``same`` gives
``ceil(n / stride)``; ``strides`` defaults to ``pool_size``.
"""

from __future__ import annotations

from typing import Any

from shapecheck.shapes import dims
from shapecheck.shapes.layers.registry import Call, ShapeError, require_rank, rule


def _tuple(value: Any, rank: int) -> tuple:
    if isinstance(value, int):
        return (value,) * rank
    return tuple(value)


def _spatial_axes(op: Any, rank: int) -> list[int]:
    if getattr(op, "data_format", "channels_last") == "channels_first":
        return list(range(2, rank + 2))
    return list(range(1, rank + 1))


def _pool(call: Call, rank: int) -> tuple:
    op = call.op
    x = require_rank(call, rank + 2)
    pool = _tuple(op.pool_size, rank)
    strides = _tuple(op.strides if op.strides is not None else op.pool_size, rank)
    padding = str(op.padding).lower()
    out = list(x)
    for i, axis in enumerate(_spatial_axes(op, rank)):
        n = dims.conv_length(x[axis], pool[i], strides[i], 1, padding)
        if padding == "valid":
            call.require_positive(
                n, f"the pooling window (size {pool[i]}) must fit spatial axis {axis}")
        out[axis] = n
    return tuple(out)


def _pool_rule(rank: int):
    def fn(call: Call) -> tuple:
        return _pool(call, rank)

    fn.__name__ = f"pool{rank}d"
    return fn


rule("layers.MaxPooling1D", "layers.AveragePooling1D")(_pool_rule(1))
rule("layers.MaxPooling2D", "layers.AveragePooling2D")(_pool_rule(2))
rule("layers.MaxPooling3D", "layers.AveragePooling3D")(_pool_rule(3))


@rule("layers.BasePooling")
def _base_pool(call: Call) -> tuple:
    return _pool(call, len(_tuple(call.op.pool_size, 1)))


def _global_rule(rank: int):
    def fn(call: Call) -> tuple:
        op = call.op
        x = require_rank(call, rank + 2)
        channels_first = getattr(op, "data_format", "channels_last") == "channels_first"
        c = x[1] if channels_first else x[-1]
        if getattr(op, "keepdims", False):
            ones = (1,) * rank
            return (x[0], c, *ones) if channels_first else (x[0], *ones, c)
        return (x[0], c)

    fn.__name__ = f"global_pool{rank}d"
    return fn


rule("layers.GlobalMaxPooling1D", "layers.GlobalAveragePooling1D")(_global_rule(1))
rule("layers.GlobalMaxPooling2D", "layers.GlobalAveragePooling2D")(_global_rule(2))
rule("layers.GlobalMaxPooling3D", "layers.GlobalAveragePooling3D")(_global_rule(3))


@rule("layers.AdaptiveAveragePooling1D", "layers.AdaptiveAveragePooling2D",
      "layers.AdaptiveAveragePooling3D", "layers.AdaptiveMaxPooling1D",
      "layers.AdaptiveMaxPooling2D", "layers.AdaptiveMaxPooling3D",
      "layers.BaseAdaptiveAveragePooling", "layers.BaseAdaptiveMaxPooling")
def _adaptive(call: Call) -> tuple:
    """Adaptive pooling: the spatial axes become ``output_size``."""
    op = call.op
    x = call.x
    size = op.output_size
    rank = len(x) - 2
    size = _tuple(size, rank) if isinstance(size, int) else tuple(size)
    if len(size) != rank:
        raise ShapeError(
            f"{type(op).__name__} has output_size {size} for a rank-{len(x)} input "
            f"{dims.fmt_shape(x)}",
            expected=f"rank {len(size) + 2}", got=f"rank {len(x)}")
    if getattr(op, "data_format", "channels_last") == "channels_first":
        return (x[0], x[1], *size)
    return (x[0], *size, x[-1])
