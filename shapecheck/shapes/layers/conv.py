"""Convolution layers: Conv, ConvTranspose, SeparableConv, DepthwiseConv (1D/2D/3D).

Formulas mirror ``keras.src.ops.operation_utils.compute_conv_output_shape`` and
``keras.src.backend.common.backend_utils.compute_conv_transpose_output_shape``:

- ``valid``: ``floor((n - dilation*(kernel-1) - 1) / stride) + 1`` (must be >= 1);
- ``same`` / ``causal``: ``floor((n - 1) / stride) + 1 == ceil(n / stride)``;
- transposed ``valid``: ``(n-1)*stride + span + (output_padding or max(span, stride) - span)``;
- transposed ``same``: ``n*stride``, or ``(n-1)*stride + span % 2 + output_padding``.
"""

from __future__ import annotations

from typing import Any

from shapecheck.shapes import dims
from shapecheck.shapes.dims import Dim
from shapecheck.shapes.layers.registry import Call, ShapeError, rule


def _tuple(value: Any, rank: int) -> tuple:
    if value is None:
        return (None,) * rank
    if isinstance(value, int):
        return (value,) * rank
    return tuple(value)


def _channels_first(op: Any) -> bool:
    return getattr(op, "data_format", "channels_last") == "channels_first"


def _layout(call: Call, rank: int, kind: str) -> tuple[tuple, int, list[int]]:
    """The input shape, its channel axis and its spatial axes (checks the rank)."""
    x = call.x
    if len(x) != rank + 2:
        raise ShapeError(
            f"{kind} expects a rank-{rank + 2} input (batch, {rank} spatial axes, "
            f"channels); got rank {len(x)} {dims.fmt_shape(x)}",
            expected=f"rank {rank + 2}", got=f"rank {len(x)}")
    if _channels_first(call.op):
        return x, 1, list(range(2, rank + 2))
    return x, rank + 1, list(range(1, rank + 1))


def _built_channels(op: Any, channels_first: bool) -> int | None:
    """The channel count the layer was built for (its input spec), if any."""
    spec = getattr(op, "input_spec", None)
    if isinstance(spec, (list, tuple)):
        spec = spec[0] if spec else None
    axes = getattr(spec, "axes", None) or {}
    value = axes.get(1 if channels_first else -1)
    return value if isinstance(value, int) else None


def _in_channels(call: Call, x: tuple, ch_axis: int) -> Dim:
    c = x[ch_axis]
    built = _built_channels(call.op, ch_axis == 1)
    if built is not None:
        c = call.require_equal(c, built, "input channels must match the layer's kernel")
    return c


def _assemble(x: tuple, ch_axis: int, spatial: list, channels: Dim) -> tuple:
    if ch_axis == 1:
        return (x[0], channels, *spatial)
    return (x[0], *spatial, channels)


def _conv_spatial(call: Call, x: tuple, axes: list[int], rank: int) -> list:
    op = call.op
    kernel = _tuple(op.kernel_size, rank)
    strides = _tuple(op.strides, rank)
    dilation = _tuple(getattr(op, "dilation_rate", 1), rank)
    padding = str(op.padding).lower()
    out = []
    for i, axis in enumerate(axes):
        n = dims.conv_length(x[axis], kernel[i], strides[i], dilation[i], padding)
        if padding == "valid":
            call.require_positive(
                n, f"the kernel (size {kernel[i]}, dilation {dilation[i]}) must fit "
                   f"spatial axis {axis}")
        out.append(n)
    return out


def _conv(call: Call) -> tuple:
    """Conv1D/2D/3D (incl. causal and groups) and SeparableConv1D/2D."""
    op = call.op
    rank = int(op.rank)
    x, ch, axes = _layout(call, rank, type(op).__name__)
    _in_channels(call, x, ch)
    return _assemble(x, ch, _conv_spatial(call, x, axes, rank), op.filters)


def _depthwise(call: Call) -> tuple:
    """DepthwiseConv1D/2D: ``channels * depth_multiplier`` output channels."""
    op = call.op
    rank = int(op.rank)
    x, ch, axes = _layout(call, rank, type(op).__name__)
    c = _in_channels(call, x, ch)
    return _assemble(x, ch, _conv_spatial(call, x, axes, rank),
                     dims.mul(c, int(op.depth_multiplier)))


def _transpose(call: Call) -> tuple:
    """Conv1D/2D/3DTranspose."""
    op = call.op
    rank = int(op.rank)
    x, ch, axes = _layout(call, rank, type(op).__name__)
    _in_channels(call, x, ch)
    kernel = _tuple(op.kernel_size, rank)
    strides = _tuple(op.strides, rank)
    dilation = _tuple(getattr(op, "dilation_rate", 1), rank)
    output_padding = _tuple(getattr(op, "output_padding", None), rank)
    padding = str(op.padding).lower()
    spatial = [
        dims.conv_transpose_length(x[axis], kernel[i], strides[i], dilation[i],
                                   padding, output_padding[i])
        for i, axis in enumerate(axes)
    ]
    return _assemble(x, ch, spatial, op.filters)


rule("layers.BaseConv", "layers.Conv1D", "layers.Conv2D", "layers.Conv3D",
     "layers.BaseSeparableConv", "layers.SeparableConv1D",
     "layers.SeparableConv2D")(_conv)
rule("layers.BaseDepthwiseConv", "layers.DepthwiseConv1D",
     "layers.DepthwiseConv2D")(_depthwise)
rule("layers.BaseConvTranspose", "layers.Conv1DTranspose", "layers.Conv2DTranspose",
     "layers.Conv3DTranspose")(_transpose)
