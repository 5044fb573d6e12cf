"""Shape rules for Keras normalization and regularization layers.

All of them keep their input's shape.  What they check mirrors Keras: the
input spec set at build time (BatchNormalization, GroupNormalization,
SpatialDropout*), axes in bounds (``compute_output_shape``), and the sizes of
built weights along the normalized axes (LayerNormalization, RMSNormalization,
which have no input spec but fail at run time on another size).
"""

from __future__ import annotations

from typing import Any

from shapecheck.shapes.layers.core import (check_axes, check_input_spec, check_weight_axes,
                                           input_shape, input_syms, match_dim, normalize_axes,
                                           preserve)
from shapecheck.shapes import dims
from shapecheck.shapes.layers.registry import Call, ShapeError, Sym, rule


def _axes_rule(call: Call) -> tuple:
    check_input_spec(call)
    x = input_shape(call)
    check_axes(call, normalize_axes(call.op.axis), len(x))
    return x


@rule("layers.GroupNormalization", "layers.UnitNormalization")
def axis_normalization(call: Call) -> tuple:
    return _axes_rule(call)


@rule("layers.BatchNormalization")
def batch_normalization(call: Call) -> tuple:
    x = _axes_rule(call)
    mask = call.kwargs.get("mask")
    if mask is None and len(call.args) > 2:
        mask = call.args[2]
    if isinstance(mask, Sym) and len(mask.shape) != len(x) - 1:
        raise ShapeError(
            f"the mask of `{call.op.name}` must have one axis less than its input "
            f"{dims.fmt_shape(x)}", expected=f"rank {len(x) - 1}",
            got=dims.fmt_shape(mask.shape))
    return x


def _weights(op: Any, *names: str) -> list[Any]:
    out = []
    for n in names:
        try:
            w = getattr(op, n, None)
        except Exception:  # an unbuilt property may raise
            w = None
        if w is not None and hasattr(w, "shape"):
            out.append(w)
    return out


@rule("layers.LayerNormalization")
def layer_normalization(call: Call) -> tuple:
    x = _axes_rule(call)
    axes = check_axes(call, normalize_axes(call.op.axis), len(x))
    check_weight_axes(call, x, axes, _weights(call.op, "gamma", "beta"),
                      f"normalized axes of `{call.op.name}` (its gamma/beta size)")
    return x


@rule("layers.RMSNormalization")
def rms_normalization(call: Call) -> tuple:
    x = _axes_rule(call)
    axes = check_axes(call, normalize_axes(call.op.axis), len(x))
    check_weight_axes(call, x, axes, _weights(call.op, "scale"),
                      f"normalized axes of `{call.op.name}` (its scale size)")
    return x


@rule("layers.SpectralNormalization")
def spectral_normalization(call: Call) -> Any:
    check_input_spec(call)
    return call.infer(call.op.layer, input_syms(call)[0])


@rule("layers.Dropout", "layers.SpatialDropout1D", "layers.SpatialDropout2D",
      "layers.SpatialDropout3D", "layers.GaussianNoise", "layers.GaussianDropout",
      "layers.AlphaDropout", "layers.ActivityRegularization")
def regularization(call: Call) -> tuple:
    return preserve(call)


@rule("layers.Normalization")
def normalization(call: Call) -> tuple:
    """Its mean and variance, once adapted (or given), broadcast over the input from
    its last axis: each kept axis must have the size they were made for."""
    x = input_shape(call)
    op = call.op
    shape = getattr(op, "_broadcast_shape", None) if op.built else None
    if not shape or len(shape) > len(x):
        return x
    built = getattr(op, "_build_input_shape", None)
    made = (f"the statistics of `{op.name}` (adapted to data of shape "
            f"{dims.fmt_shape(tuple(built))})" if built is not None and op.input_mean is None
            else f"the mean and variance given to `{op.name}`")
    for i, size in enumerate(reversed(shape)):
        if size != 1:
            match_dim(call, x[len(x) - 1 - i], size, f"{made}: axis {len(x) - 1 - i}")
    return x
