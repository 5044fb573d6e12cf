"""Shape rules for ``keras.ops`` calls applied to symbolic tensors.

Each rule mirrors the op's ``compute_output_spec`` in ``keras/src/ops`` but
keeps unknown sizes symbolic: where Keras writes ``None`` (a concatenation of
two unknown lengths, ``x[:, 1:]`` on an unknown axis, ``reshape(x, (-1, 32))``)
the rule writes ``T_a + T_b``, ``T - 1``, ``2*T*batch``.  Equalities Keras
cannot check statically (the inner dims of ``matmul``, two unknown dims that
broadcast) are recorded as constraints with :meth:`Call.require_equal`.

A call that a rule does not model (a tensor-valued shape argument, an unusual
``einsum``) is handed to :func:`shapecheck.shapes.probe.probe_output`, exactly as if
the op had no rule.
"""

from __future__ import annotations

import functools
import operator
from typing import Any, Callable, Sequence

import numpy as np

from shapecheck.shapes import dims
from shapecheck.shapes.dims import Dim
from shapecheck.shapes.layers.registry import Call, ShapeError, Sym, rule


class Unsupported(Exception):
    """This call is outside what the rule models: let the probe answer."""


def _fallback(call: Call) -> Any:
    from shapecheck.shapes.probe import probe_output

    return probe_output(call.scope, call.op, call.args, call.kwargs, layer=call.layer)


def ops_rule(*names: str) -> Callable[[Callable[[Call], Any]], Callable[[Call], Any]]:
    """Register ``fn`` for ``ops.<name>``; ``Unsupported`` falls back to the probe."""

    def deco(fn: Callable[[Call], Any]) -> Callable[[Call], Any]:
        @functools.wraps(fn)
        def wrapped(call: Call) -> Any:
            try:
                return fn(call)
            except (Unsupported, AttributeError):
                # AttributeError: an op whose attributes differ in another Keras version.
                return _fallback(call)

        rule(*(f"ops.{n}" for n in names))(wrapped)
        return wrapped

    return deco


def op_name(call: Call) -> str:
    return getattr(call.op, "name", None) or type(call.op).__name__


def shape_of(value: Any) -> tuple:
    """The shape of a call argument: a :class:`Sym`, a constant, a Python scalar."""
    if isinstance(value, Sym):
        return tuple(value.shape)
    if value is None:
        raise Unsupported("no value")
    shape = getattr(value, "shape", None)
    if shape is not None:
        try:
            return tuple(None if d is None else int(d) for d in shape)
        except TypeError as err:
            raise Unsupported(str(err)) from err
    if isinstance(value, (bool, int, float, complex, str)):
        return ()
    try:
        return tuple(int(d) for d in np.shape(value))
    except Exception as err:  # ragged lists and the like
        raise Unsupported(str(err)) from err


def as_int(v: Any) -> int:
    """``v`` as a Python int (numpy ints included); ``Unsupported`` otherwise."""
    if isinstance(v, bool) or isinstance(v, Sym):
        raise Unsupported(f"not an int: {v!r}")
    try:
        return operator.index(v)
    except TypeError as err:
        raise Unsupported(f"not an int: {v!r}") from err


def as_ints(v: Any) -> list[int]:
    if isinstance(v, (list, tuple)):
        return [as_int(a) for a in v]
    return [as_int(v)]


def normalize_axis(axis: Any, rank: int, what: str = "axis") -> int:
    a = as_int(axis)
    if not -rank <= a < rank:
        raise ShapeError(f"{what} {a} is out of bounds for a tensor of rank {rank}")
    return a + rank if a < 0 else a


def _axes(axis: Any, rank: int) -> list[int]:
    out = [normalize_axis(a, rank) for a in as_ints(axis)]
    if len(set(out)) != len(out):
        raise Unsupported("repeated axis")
    return out


def is_one(d: Dim) -> bool:
    return isinstance(d, int) and d == 1


def unify(call: Call, a: Dim, b: Dim, reason: str) -> Dim:
    """Two dims that must be equal: ``ShapeError`` when both known and different."""
    if a is None:
        return b
    if b is None:
        return a
    if isinstance(a, int) and isinstance(b, int):
        if a != b:
            raise ShapeError(f"{reason}: {a} != {b}", expected=str(a), got=str(b))
        return a
    return call.require_equal(a, b, reason)


def broadcast(call: Call, shapes: Sequence[Sequence[Dim]], reason: str = "broadcast") -> tuple:
    """NumPy broadcasting of ``shapes`` (Keras's ``broadcast_shapes``, folded left).

    A dim that is 1 takes the other's size; two known sizes must agree
    (``ShapeError`` otherwise); a symbolic dim against a different one records
    the constraint that they are equal and keeps the known or first one.
    """
    if not shapes:
        return ()
    out = list(shapes[0])
    for shape in shapes[1:]:
        other = list(shape)
        n = max(len(out), len(other))
        a = [1] * (n - len(out)) + out
        b = [1] * (n - len(other)) + other
        merged: list[Dim] = []
        for i, (x, y) in enumerate(zip(a, b)):
            if is_one(x):
                merged.append(y)
            elif is_one(y):
                merged.append(x)
            elif x is None:
                merged.append(y)
            elif y is None:
                merged.append(x)
            elif isinstance(x, int) and isinstance(y, int):
                if x != y:
                    raise ShapeError(
                        f"{reason}: cannot broadcast {dims.fmt_shape(tuple(a))} with "
                        f"{dims.fmt_shape(tuple(b))} (axis {i - n}: {x} vs {y})",
                        expected=str(x), got=str(y))
                merged.append(x)
            else:
                merged.append(call.require_equal(x, y, f"{reason} (axis {i - n})"))
        out = merged
    return tuple(out)


_BINARY = (
    "Add", "Subtract", "Multiply", "Divide", "DivideNoNan", "TrueDivide", "FloorDivide",
    "Power", "Mod", "Fmod", "Maximum", "Minimum", "Fmax", "Fmin",
    "Equal", "NotEqual", "Greater", "GreaterEqual", "Less", "LessEqual",
    "LogicalAnd", "LogicalOr", "LogicalXor",
    "Arctan2", "Logaddexp", "Logaddexp2", "Hypot", "Heaviside", "Isclose", "Nextafter",
    "Gcd", "Lcm", "Ldexp",
)


@ops_rule(*_BINARY)
def elementwise_binary(call: Call) -> tuple:
    """``x1 op x2`` with NumPy broadcasting; either side may be a plain number."""
    if len(call.args) < 2 and not call.kwargs:
        raise Unsupported("binary op with one argument")
    x1 = call.arg(0, "x1")
    x2 = call.arg(1, "x2")
    return broadcast(call, [shape_of(x1), shape_of(x2)],
                     f"operands of `{op_name(call)}` must broadcast")


@ops_rule("Where")
def where(call: Call) -> tuple:
    condition, x1, x2 = call.arg(0, "condition"), call.arg(1, "x1"), call.arg(2, "x2")
    if x1 is None or x2 is None:
        raise Unsupported("where(condition) returns indices")
    return broadcast(call, [shape_of(condition), shape_of(x1), shape_of(x2)],
                     f"operands of `{op_name(call)}` must broadcast")


_UNARY = (
    # numpy
    "Absolute", "Abs", "Fabs", "Angle", "Arccos", "Arccosh", "Arcsin", "Arcsinh", "Arctan",
    "Arctanh", "Array", "BitwiseInvert", "BitwiseNot", "Cbrt", "Ceil", "Clip", "Conjugate",
    "Conj", "Copy", "Cos", "Cosh", "Deg2rad", "Rad2deg", "Digitize", "EmptyLike", "Exp",
    "Exp2", "Expm1", "Flip", "Fliplr", "Flipud", "Floor", "FullLike", "Imag", "I0",
    "Isfinite", "Isinf", "Isnan", "Isneginf", "Isposinf", "Isreal", "Log", "Log10", "Log1p",
    "Log2", "LogicalNot", "NanToNum", "Negative", "OnesLike", "ZerosLike", "Real",
    "Reciprocal", "Roll", "Round", "Sign", "Signbit", "Sin", "Sinc", "Sinh", "Square",
    "Sqrt", "Tan", "Tanh", "Tril", "Triu", "Trunc", "IsIn",
    # nn
    "Relu", "Relu6", "Sigmoid", "SparseSigmoid", "Softplus", "Softsign", "SoftShrink",
    "SparsePlus", "Silu", "Squareplus", "LogSigmoid", "LeakyRelu", "HardSigmoid", "HardSilu",
    "Elu", "Selu", "Gelu", "Celu", "TanhShrink", "HardTanh", "HardShrink", "Threshold",
    "Softmax", "LogSoftmax", "Sparsemax", "Normalize", "RMSNorm", "LayerNorm", "BatchNorm",
    # math
    "Rsqrt", "Erf", "Erfc", "Erfinv",
    # core
    "Cast", "SaturateCast", "ConvertToTensor", "StopGradient", "ScatterUpdate", "SliceUpdate",
)


def first_arg(call: Call) -> tuple:
    """Shape of the op's first argument (the tensor most ops transform)."""
    if call.args:
        return shape_of(call.args[0])
    for value in call.kwargs.values():
        if isinstance(value, Sym):
            return value.shape
    raise Unsupported("no tensor argument")


@ops_rule(*_UNARY)
def same_shape(call: Call) -> tuple:
    """Elementwise ops, activations, casts: the output has the input's shape."""
    return first_arg(call)


@ops_rule("Cumsum", "Cumprod", "Nancumsum", "Nancumprod", "Sort", "Argsort")
def along_axis(call: Call) -> tuple:
    """Same shape along ``axis``; ``axis=None`` flattens first."""
    x = first_arg(call)
    axis = getattr(call.op, "axis", None)
    if axis is None:
        return (dims.prod(x),)
    normalize_axis(axis, len(x))
    return x


def reduce_shape(shape: Sequence[Dim], axis: Any, keepdims: bool) -> tuple:
    """Keras's ``reduce_shape``: drop (or set to 1) the reduced axes."""
    shape = list(shape)
    if axis is None:
        return tuple(1 for _ in shape) if keepdims else ()
    axes = _axes(axis, len(shape))
    if keepdims:
        for a in axes:
            shape[a] = 1
        return tuple(shape)
    return tuple(d for i, d in enumerate(shape) if i not in axes)


@ops_rule("Sum", "Mean", "Max", "Min", "Amax", "Amin", "Prod", "Any", "All", "Std", "Var",
          "Argmax", "Argmin", "Median", "Ptp", "Nanmax", "Nanmin", "Nanmean", "Nanmedian",
          "Nanprod", "Nanstd", "Nansum", "Nanvar", "Logsumexp")
def reduction(call: Call) -> tuple:
    return reduce_shape(first_arg(call), call.op.axis, bool(call.op.keepdims))


@ops_rule("Nanargmax", "Nanargmin")
def nan_arg_reduction(call: Call) -> tuple:
    axis = call.op.axis
    return reduce_shape(first_arg(call), None if axis is None else [axis], bool(call.op.keepdims))


@ops_rule("CountNonzero")
def count_nonzero(call: Call) -> tuple:
    return reduce_shape(first_arg(call), call.op.axis, False)


@ops_rule("Moments")
def moments(call: Call) -> list:
    out = reduce_shape(first_arg(call), call.op.axes, bool(call.op.keepdims))
    return [out, out]


@ops_rule("ExpandDims")
def expand_dims(call: Call) -> tuple:
    x = first_arg(call)
    axis = call.op.axis
    if axis is None:
        axis = len(x)
    axis_list = as_ints(axis)
    out_rank = len(axis_list) + len(x)
    axes = _axes(axis_list, out_rank)
    it = iter(x)
    return tuple(1 if i in axes else next(it) for i in range(out_rank))


@ops_rule("Squeeze")
def squeeze(call: Call) -> tuple:
    x = list(first_arg(call))
    axis = call.op.axis
    if axis is None:
        return tuple(d for d in x if not is_one(d))
    axes = _axes(axis, len(x))
    for a in axes:
        d = x[a]
        if isinstance(d, int) and d != 1:
            raise ShapeError(f"cannot squeeze axis {a} of size {d}", expected="1", got=str(d))
        if d is not None and not isinstance(d, int):
            call.require_equal(d, 1, f"`{op_name(call)}` squeezes axis {a}, so it must be 1")
    return tuple(d for i, d in enumerate(x) if i not in axes)


@ops_rule("Transpose")
def transpose(call: Call) -> tuple:
    x = first_arg(call)
    axes = call.op.axes
    if axes is None:
        return tuple(reversed(x))
    axes = as_ints(axes)
    if len(axes) != len(x):
        raise ShapeError(f"transpose axes {axes} do not match rank {len(x)}")
    perm = [normalize_axis(a, len(x)) for a in axes]
    if len(set(perm)) != len(perm):
        raise ShapeError(f"transpose axes {axes} are not a permutation")
    return tuple(x[a] for a in perm)


@ops_rule("Swapaxes")
def swapaxes(call: Call) -> tuple:
    x = list(first_arg(call))
    a, b = normalize_axis(call.op.axis1, len(x)), normalize_axis(call.op.axis2, len(x))
    x[a], x[b] = x[b], x[a]
    return tuple(x)


@ops_rule("Moveaxis")
def moveaxis(call: Call) -> tuple:
    x = list(first_arg(call))
    n = len(x)
    src = [normalize_axis(a, n) for a in as_ints(call.op.source)]
    dst = [normalize_axis(a, n) for a in as_ints(call.op.destination)]
    if len(src) != len(dst) or len(set(src)) != len(src) or len(set(dst)) != len(dst):
        raise Unsupported("moveaxis source/destination")
    out: list[Any] = [_MISSING] * n
    for s, d in zip(src, dst):
        out[d] = x[s]
    rest = iter(d for i, d in enumerate(x) if i not in src)
    return tuple(next(rest) if d is _MISSING else d for d in out)


_MISSING = object()


@ops_rule("Reshape")
def reshape(call: Call) -> tuple:
    """``-1`` becomes the exact quotient of the element counts (``2*T*batch``)."""
    x = first_arg(call)
    # traced from a subclassed model's `call` (shapecheck.script.trace.make_runnable):
    # the target as the code gave it, before None became -1
    traced = getattr(call.op, "_shapecheck_target", None)
    newshape = traced or call.op.newshape
    if not isinstance(newshape, (list, tuple)):
        newshape = [newshape]
    if traced is not None:
        # Traced from a subclassed model's `call`: None is a size the code read from a
        # shape (`ops.shape(x)[0]`), known when it runs: the batch at axis 0, and one
        # other unknown sized by the element count.
        newshape = [x[0] if i == 0 and d is None and x else d
                    for i, d in enumerate(newshape)]
        if sum(d is None for d in newshape) == 1 and -1 not in newshape:
            newshape = [-1 if d is None else d for d in newshape]
    if any(d is None for d in newshape):
        # ``ops.shape(x)[0]`` of a symbolic tensor is None; every backend's
        # reshape rejects None when the model runs.
        raise ShapeError(f"`{op_name(call)}` target {tuple(newshape)} contains None (an "
                         "unknown size read from a symbolic shape); the reshape fails when "
                         "the model runs: use -1 for one unknown size")
    target = [d if dims.is_symbolic(d) else as_int(d) for d in newshape]
    if any(isinstance(d, int) and d < -1 for d in target) or target.count(-1) > 1:
        raise ShapeError(f"invalid reshape target {tuple(target)}")
    size = dims.prod(x)
    if -1 not in target:
        total = dims.prod(target)
        unify(call, size, total,
              f"`{op_name(call)}` to {tuple(target)} keeps the number of elements")
        return tuple(target)
    known = dims.prod([d for d in target if d != -1])
    if known == 0:
        raise Unsupported("reshape with a zero dim and -1")
    q = dims.exact_div(size, known)
    if q is None and isinstance(size, int):
        raise ShapeError(f"cannot reshape {dims.fmt_shape(x)} ({size} elements) to "
                         f"{tuple(target)}")
    if q is not None and not isinstance(q, int) and not getattr(q, "is_integer", False):
        # not a multiple of `known` for every size: an integer expression, and the
        # divisibility the reshape needs
        q = dims.floordiv(size, known)
        unify(call, dims.mul(q, known), size,
              f"`{op_name(call)}` to {tuple(target)} needs the {dims.fmt(size)} elements "
              f"to be divisible by {known}")
    return tuple(q if d == -1 else d for d in target)


@ops_rule("Ravel")
def ravel(call: Call) -> tuple:
    return (dims.prod(first_arg(call)),)
