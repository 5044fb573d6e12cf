"""Shape rules for Keras core layers and activation layers.

Dense, EinsumDense, Embedding (and ReversibleEmbedding), Identity, Masking,
Activation and the activation layers (ReLU, Softmax, LeakyReLU, PReLU, ELU).

The helpers :func:`check_input_spec` and :func:`check_axes` mirror the checks
Keras makes before a call (``assert_input_compatibility``) and in
``compute_output_shape``; the normalization rules use them too.
"""

from __future__ import annotations

import re
from typing import Any, Iterable

from shapecheck.shapes import dims
from shapecheck.shapes.dims import Dim
from shapecheck.shapes.layers.registry import (Call, ShapeError, Sym, first_parameter, flatten,
                                               rule)

# --- shared helpers --------------------------------------------------------------


def _name(call: Call) -> str:
    return getattr(call.op, "name", type(call.op).__name__)


def match_dim(call: Call, got: Dim, want: Any, reason: str) -> Dim:
    """``got`` must equal the known size ``want`` (a weight's size, a spec's axis).

    Two different ints raise :class:`ShapeError`; an unknown dim records the
    equality and becomes ``want``.
    """
    if want is None:
        return got
    want = dims.norm(want)
    if dims.is_int(got) and dims.is_int(want):
        if got != want:
            raise ShapeError(f"{reason}: expected {want}, got {got}",
                             expected=dims.fmt(want), got=dims.fmt(got))
        return got
    if got is None:
        return want
    return call.require_equal(got, want, reason)




def first_input(call: Call) -> Any:
    """The call's first argument (Keras's ``first_arg``), positional or by keyword."""
    if call.args:
        return call.args[0]
    name = first_parameter(call.op)
    if name is not None and name in call.kwargs:
        return call.kwargs[name]
    return None


def input_syms(call: Call) -> list[Sym]:
    """The tensors of the call's first argument (a merge layer's list), in order."""
    syms = [s for s in flatten(first_input(call)) if isinstance(s, Sym)]
    if not syms:
        raise ValueError(f"no tensor input found for `{_name(call)}`")
    return syms


def input_shape(call: Call) -> tuple:
    """Shape of the first input tensor (``call.x``, also when passed by keyword)."""
    return tuple(input_syms(call)[0].shape)


def first_arg_syms(call: Call) -> list[Sym] | None:
    """The tensors Keras checks the input spec on (None: not checked here)."""
    first = first_input(call)
    if first is None or isinstance(first, dict):
        return None  # dicts are matched by spec name in Keras; not worth mirroring
    return [s for s in flatten(first) if isinstance(s, Sym)]


def check_input_spec(call: Call) -> None:
    """Mirror ``keras.src.layers.input_spec.assert_input_compatibility``."""
    spec = getattr(call.op, "input_spec", None)
    if not spec:
        return
    specs = [s for s in flatten(spec)] if isinstance(spec, (list, tuple, dict)) else [spec]
    tensors = first_arg_syms(call)
    if tensors is None:
        return
    layer = _name(call)
    if len(tensors) != len(specs):
        raise ShapeError(f"layer `{layer}` expects {len(specs)} input(s); got {len(tensors)}",
                         expected=str(len(specs)), got=str(len(tensors)))
    for t, s in zip(tensors, specs):
        if s is None:
            continue
        shape = tuple(t.shape)
        rank = len(shape)
        squeeze = getattr(s, "allow_last_axis_squeeze", False)
        if s.ndim is not None and not squeeze and rank != s.ndim:
            raise ShapeError(f"layer `{layer}` expects rank {s.ndim}; got {dims.fmt_shape(shape)}",
                             expected=f"rank {s.ndim}", got=dims.fmt_shape(shape))
        if s.max_ndim is not None and rank > s.max_ndim:
            raise ShapeError(
                f"layer `{layer}` expects rank <= {s.max_ndim}; got {dims.fmt_shape(shape)}",
                expected=f"rank <= {s.max_ndim}", got=dims.fmt_shape(shape))
        if s.min_ndim is not None and rank < s.min_ndim:
            raise ShapeError(
                f"layer `{layer}` expects rank >= {s.min_ndim}; got {dims.fmt_shape(shape)}",
                expected=f"rank >= {s.min_ndim}", got=dims.fmt_shape(shape))
        if s.axes:
            for axis, value in s.axes.items():
                if value is None:
                    continue
                if not -rank <= int(axis) < rank:
                    raise ShapeError(
                        f"layer `{layer}` expects an axis {axis}; got {dims.fmt_shape(shape)}",
                        expected=f"axis {axis} of size {value}", got=dims.fmt_shape(shape))
                match_dim(call, shape[int(axis)], value,
                          f"axis {axis} of the input of `{layer}` (its weights' size)")
        if s.shape is not None:
            spec_shape = tuple(s.shape)
            if squeeze:
                if shape and shape[-1] == 1:
                    shape = shape[:-1]
                if spec_shape and spec_shape[-1] == 1:
                    spec_shape = spec_shape[:-1]
            for axis, (want, got) in enumerate(zip(spec_shape, shape)):
                match_dim(call, got, want, f"axis {axis} of the input of `{layer}`")


def normalize_axes(axis: Any) -> list[int]:
    if isinstance(axis, (list, tuple)):
        return [int(a) for a in axis]
    return [int(axis)]


def check_axes(call: Call, axes: Iterable[int], rank: int) -> list[int]:
    """Every axis in bounds for ``rank`` (Keras raises otherwise); returns them >= 0."""
    out = []
    for a in axes:
        if a >= rank or a < -rank:
            raise ShapeError(f"axis {a} is out of bounds for an input of rank {rank}",
                             expected=f"rank > {a if a >= 0 else -a - 1}", got=f"rank {rank}")
        out.append(a % rank)
    return out


def check_weight_axes(call: Call, x: tuple, axes: list[int], weights: Iterable[Any],
                      reason: str) -> None:
    """The input's ``axes`` must match a built weight's shape (LayerNorm's gamma)."""
    for w in weights:
        shape = getattr(w, "shape", None)
        if shape is None:
            continue
        shape = tuple(shape)
        if len(shape) != len(axes):
            continue
        for a, size in zip(axes, shape):
            match_dim(call, x[a], size, reason)


def preserve(call: Call) -> tuple:
    """Output shape = input shape (after the layer's input-spec checks)."""
    check_input_spec(call)
    return input_shape(call)


# --- Dense -----------------------------------------------------------------------


@rule("layers.Dense")
def dense(call: Call) -> tuple:
    x = input_shape(call)
    if len(x) < 2:
        raise ShapeError(f"Dense `{_name(call)}` expects rank >= 2; got {dims.fmt_shape(x)}",
                         expected="rank >= 2", got=dims.fmt_shape(x))
    check_input_spec(call)
    return x[:-1] + (int(call.op.units),)


# --- EinsumDense -----------------------------------------------------------------


def _parse_einsum(equation: str) -> tuple[str, str, str, str]:
    """(input spec, weight spec, output spec, elision) as Keras parses them."""
    eq = re.sub(r"\.\.\.", "0", equation)
    m = re.match("([a-zA-Z]+),([a-zA-Z]+)->([a-zA-Z]+)", eq)
    if m:
        return m.group(1), m.group(2), m.group(3), "none"
    m = re.match("0([a-zA-Z]+),([a-zA-Z]+)->0([a-zA-Z]+)", eq)
    if m:
        return m.group(1), m.group(2), m.group(3), "left"
    m = re.match("([a-zA-Z]{2,})0,([a-zA-Z]+)->([a-zA-Z]+)0", eq)
    if m:
        return m.group(1), m.group(2), m.group(3), "right"
    raise ShapeError(f"invalid einsum equation {equation!r}")


@rule("layers.EinsumDense")
def einsum_dense(call: Call) -> tuple:
    op = call.op
    x = input_shape(call)
    check_input_spec(call)
    ins, ws, outs, mode = _parse_einsum(op.equation)
    partial = op.partial_output_shape
    partial = [partial] if isinstance(partial, int) else list(partial)
    elided = len(x) - len(ins)
    if elided < 0 or (mode == "none" and elided != 0):
        raise ShapeError(
            f"einsum equation {op.equation!r} does not fit an input of rank {len(x)}",
            expected=f"rank {len(ins)}" + ("" if mode == "none" else " or more"),
            got=dims.fmt_shape(x))
    # Keras's full output shape (its static shape), as _analyze_split_string builds it.
    full: list[Dim] = [dims.norm(d) if d is not None else None for d in partial]
    full.insert(0, x[0])
    if mode == "left" and elided == 0:
        return tuple(full)  # Keras's static shape (it assumes a batch axis to pass)
    if mode == "left":
        for i in range(1, elided):
            full.insert(1, x[i])  # Keras inserts these in reverse order
    elif elided > 0:
        full.extend(x[len(x) - elided:])
    if mode == "left":
        in_pos = {c: i + elided for i, c in enumerate(ins)}
        out_pos = {c: i + elided for i, c in enumerate(outs)}
    else:
        in_pos = {c: i for i, c in enumerate(ins)}
        out_pos = {c: i for i, c in enumerate(outs)}
    for c in outs:
        if c not in ins and c not in ws:
            raise ShapeError(f"output dimension {c!r} of {op.equation!r} has no source")
    if len(full) != (elided if mode == "left" else 0) + len(outs) + (
            elided if mode != "left" else 0):
        raise ShapeError(f"output_shape {tuple(partial)} does not fit {op.equation!r}")
    kernel = None
    if getattr(op, "quantization_mode", None) is None:
        try:
            kernel = getattr(op, "kernel", None)
        except Exception:  # unbuilt
            kernel = None
    kshape = getattr(kernel, "shape", None)
    if kshape is not None and len(tuple(kshape)) == len(ws):
        # A built kernel fixes the contracted input axes (a shared layer).
        for c, size in zip(ws, tuple(kshape)):
            if c in in_pos:
                match_dim(call, x[in_pos[c]], size,
                          f"einsum axis {c!r} of the input of `{_name(call)}` (its kernel size)")
    out: list[Dim] = list(full)
    for c, p in out_pos.items():
        if c in in_pos:
            given = full[p]
            got = x[in_pos[c]]
            if given is None or p == 0:
                out[p] = got
            else:
                out[p] = match_dim(call, got, given,
                                   f"einsum axis {c!r} of `{_name(call)}` (output_shape)")
        else:
            out[p] = full[p]
    if mode == "left" and elided > 2:
        middle = list(x[1:elided])
        # Keras's static shape lists these in reverse order; the einsum keeps
        # them in order.  Known sizes follow Keras (its static shape wins),
        # unknown ones the einsum.
        if not any(dims.is_int(d) for d in middle):
            out[1:elided] = middle
    return tuple(out)


# --- Embedding -------------------------------------------------------------------


@rule("layers.Embedding")
def embedding(call: Call) -> tuple:
    check_input_spec(call)
    return input_shape(call) + (int(call.op.output_dim),)


@rule("layers.ReversibleEmbedding")
def reversible_embedding(call: Call) -> tuple:
    check_input_spec(call)
    x = input_shape(call)
    reverse = call.arg(1, "reverse", False)
    if isinstance(reverse, Sym):
        raise ShapeError("`reverse` must be a Python bool")
    if not reverse:
        return x + (int(call.op.output_dim),)
    if not x:
        raise ShapeError("reverse embedding needs an input of rank >= 1")
    match_dim(call, x[-1], int(call.op.output_dim),
              f"last axis of the input of `{_name(call)}` (reverse: the embedding size)")
    return x[:-1] + (int(call.op.input_dim),)


# --- shape-preserving layers -----------------------------------------------------


@rule("layers.Identity")
def identity(call: Call) -> Any:
    first = first_input(call)
    if first is None:
        raise ValueError(f"no input found for `{_name(call)}`")
    return first


@rule("layers.Masking", "layers.Activation", "layers.ReLU", "layers.LeakyReLU",
      "layers.ELU")
def shape_preserving(call: Call) -> tuple:
    return preserve(call)


@rule("layers.PReLU")
def prelu(call: Call) -> tuple:
    x = preserve(call)
    try:
        alpha = getattr(call.op, "alpha", None)
    except Exception:  # unbuilt
        alpha = None
    shape = getattr(alpha, "shape", None)
    if shape is None:
        return x
    shape = tuple(shape)
    if len(shape) > len(x) - 1:
        raise ShapeError(f"PReLU `{_name(call)}` was built for rank {len(shape) + 1}",
                         expected=f"rank {len(shape) + 1}", got=dims.fmt_shape(x))
    # ``alpha`` (the input's non-batch shape, 1 on shared axes) broadcasts
    # right-aligned against the input.
    for k, a in zip(range(len(x) - len(shape), len(x)), shape):
        if a is not None and int(a) != 1:
            match_dim(call, x[k], int(a),
                      f"axis {k} of the input of `{_name(call)}` (its alpha size)")
    return x


@rule("layers.Softmax")
def softmax(call: Call) -> tuple:
    x = preserve(call)
    mask = call.kwargs.get("mask")
    if mask is None and len(call.args) > 1:
        mask = call.args[1]
    if isinstance(mask, Sym):
        m = tuple(mask.shape)
        if len(m) > len(x):
            raise ShapeError(
                f"the mask of `{_name(call)}` has more axes than its input",
                expected=f"rank <= {len(x)}", got=dims.fmt_shape(m))
        for md, xd in zip(reversed(m), reversed(x)):
            if md is None or xd is None or md == 1:
                continue
            if dims.is_int(md) and dims.is_int(xd):
                if md != xd:
                    raise ShapeError(
                        f"the mask of `{_name(call)}` does not broadcast to its input",
                        expected=dims.fmt_shape(x), got=dims.fmt_shape(m))
            else:
                call.require_equal(md, xd, "the softmax mask must broadcast to the input")
    return x
