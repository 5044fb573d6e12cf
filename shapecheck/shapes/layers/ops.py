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

# --- plumbing -------------------------------------------------------------------


class _Unsupported(Exception):
    """This call is outside what the rule models: let the probe answer."""


def _fallback(call: Call) -> Any:
    from shapecheck.shapes.probe import probe_output

    return probe_output(call.scope, call.op, call.args, call.kwargs, layer=call.layer)


def _ops_rule(*names: str) -> Callable[[Callable[[Call], Any]], Callable[[Call], Any]]:
    """Register ``fn`` for ``ops.<name>``; ``_Unsupported`` falls back to the probe."""

    def deco(fn: Callable[[Call], Any]) -> Callable[[Call], Any]:
        @functools.wraps(fn)
        def wrapped(call: Call) -> Any:
            try:
                return fn(call)
            except (_Unsupported, AttributeError):
                # AttributeError: an op whose attributes differ in another Keras version.
                return _fallback(call)

        rule(*(f"ops.{n}" for n in names))(wrapped)
        return wrapped

    return deco


def _op_name(call: Call) -> str:
    return getattr(call.op, "name", None) or type(call.op).__name__


def shape_of(value: Any) -> tuple:
    """The shape of a call argument: a :class:`Sym`, a constant, a Python scalar."""
    if isinstance(value, Sym):
        return tuple(value.shape)
    if value is None:
        raise _Unsupported("no value")
    shape = getattr(value, "shape", None)
    if shape is not None:
        try:
            return tuple(None if d is None else int(d) for d in shape)
        except TypeError as err:
            raise _Unsupported(str(err)) from err
    if isinstance(value, (bool, int, float, complex, str)):
        return ()
    try:
        return tuple(int(d) for d in np.shape(value))
    except Exception as err:  # ragged lists and the like
        raise _Unsupported(str(err)) from err


def _int(v: Any) -> int:
    """``v`` as a Python int (numpy ints included); ``_Unsupported`` otherwise."""
    if isinstance(v, bool) or isinstance(v, Sym):
        raise _Unsupported(f"not an int: {v!r}")
    try:
        return operator.index(v)
    except TypeError as err:
        raise _Unsupported(f"not an int: {v!r}") from err


def _ints(v: Any) -> list[int]:
    if isinstance(v, (list, tuple)):
        return [_int(a) for a in v]
    return [_int(v)]


def _axis(axis: Any, rank: int, what: str = "axis") -> int:
    a = _int(axis)
    if not -rank <= a < rank:
        raise ShapeError(f"{what} {a} is out of bounds for a tensor of rank {rank}")
    return a + rank if a < 0 else a


def _axes(axis: Any, rank: int) -> list[int]:
    out = [_axis(a, rank) for a in _ints(axis)]
    if len(set(out)) != len(out):
        raise _Unsupported("repeated axis")
    return out


def _is_one(d: Dim) -> bool:
    return isinstance(d, int) and d == 1


def _unify(call: Call, a: Dim, b: Dim, reason: str) -> Dim:
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


# --- broadcasting ---------------------------------------------------------------


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
            if _is_one(x):
                merged.append(y)
            elif _is_one(y):
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


@_ops_rule(*_BINARY)
def elementwise_binary(call: Call) -> tuple:
    """``x1 op x2`` with NumPy broadcasting; either side may be a plain number."""
    if len(call.args) < 2 and not call.kwargs:
        raise _Unsupported("binary op with one argument")
    x1 = call.arg(0, "x1")
    x2 = call.arg(1, "x2")
    return broadcast(call, [shape_of(x1), shape_of(x2)],
                     f"operands of `{_op_name(call)}` must broadcast")


@_ops_rule("Where")
def where(call: Call) -> tuple:
    condition, x1, x2 = call.arg(0, "condition"), call.arg(1, "x1"), call.arg(2, "x2")
    if x1 is None or x2 is None:
        raise _Unsupported("where(condition) returns indices")
    return broadcast(call, [shape_of(condition), shape_of(x1), shape_of(x2)],
                     f"operands of `{_op_name(call)}` must broadcast")


# --- shape-preserving ops -------------------------------------------------------

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


def _first(call: Call) -> tuple:
    """Shape of the op's first argument (the tensor most ops transform)."""
    if call.args:
        return shape_of(call.args[0])
    for value in call.kwargs.values():
        if isinstance(value, Sym):
            return value.shape
    raise _Unsupported("no tensor argument")


@_ops_rule(*_UNARY)
def same_shape(call: Call) -> tuple:
    """Elementwise ops, activations, casts: the output has the input's shape."""
    return _first(call)


@_ops_rule("Cumsum", "Cumprod", "Nancumsum", "Nancumprod", "Sort", "Argsort")
def along_axis(call: Call) -> tuple:
    """Same shape along ``axis``; ``axis=None`` flattens first."""
    x = _first(call)
    axis = getattr(call.op, "axis", None)
    if axis is None:
        return (dims.prod(x),)
    _axis(axis, len(x))
    return x


# --- reductions -----------------------------------------------------------------


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


@_ops_rule("Sum", "Mean", "Max", "Min", "Amax", "Amin", "Prod", "Any", "All", "Std", "Var",
           "Argmax", "Argmin", "Median", "Ptp", "Nanmax", "Nanmin", "Nanmean", "Nanmedian",
           "Nanprod", "Nanstd", "Nansum", "Nanvar", "Logsumexp")
def reduction(call: Call) -> tuple:
    return reduce_shape(_first(call), call.op.axis, bool(call.op.keepdims))


@_ops_rule("Nanargmax", "Nanargmin")
def nan_arg_reduction(call: Call) -> tuple:
    axis = call.op.axis
    return reduce_shape(_first(call), None if axis is None else [axis], bool(call.op.keepdims))


@_ops_rule("CountNonzero")
def count_nonzero(call: Call) -> tuple:
    return reduce_shape(_first(call), call.op.axis, False)


@_ops_rule("Moments")
def moments(call: Call) -> list:
    out = reduce_shape(_first(call), call.op.axes, bool(call.op.keepdims))
    return [out, out]


# --- axes: expand, squeeze, transpose -------------------------------------------


@_ops_rule("ExpandDims")
def expand_dims(call: Call) -> tuple:
    x = _first(call)
    axis = call.op.axis
    if axis is None:
        axis = len(x)
    axis_list = _ints(axis)
    out_rank = len(axis_list) + len(x)
    axes = _axes(axis_list, out_rank)
    it = iter(x)
    return tuple(1 if i in axes else next(it) for i in range(out_rank))


@_ops_rule("Squeeze")
def squeeze(call: Call) -> tuple:
    x = list(_first(call))
    axis = call.op.axis
    if axis is None:
        return tuple(d for d in x if not _is_one(d))
    axes = _axes(axis, len(x))
    for a in axes:
        d = x[a]
        if isinstance(d, int) and d != 1:
            raise ShapeError(f"cannot squeeze axis {a} of size {d}", expected="1", got=str(d))
        if d is not None and not isinstance(d, int):
            call.require_equal(d, 1, f"`{_op_name(call)}` squeezes axis {a}, so it must be 1")
    return tuple(d for i, d in enumerate(x) if i not in axes)


@_ops_rule("Transpose")
def transpose(call: Call) -> tuple:
    x = _first(call)
    axes = call.op.axes
    if axes is None:
        return tuple(reversed(x))
    axes = _ints(axes)
    if len(axes) != len(x):
        raise ShapeError(f"transpose axes {axes} do not match rank {len(x)}")
    perm = [_axis(a, len(x)) for a in axes]
    if len(set(perm)) != len(perm):
        raise ShapeError(f"transpose axes {axes} are not a permutation")
    return tuple(x[a] for a in perm)


@_ops_rule("Swapaxes")
def swapaxes(call: Call) -> tuple:
    x = list(_first(call))
    a, b = _axis(call.op.axis1, len(x)), _axis(call.op.axis2, len(x))
    x[a], x[b] = x[b], x[a]
    return tuple(x)


@_ops_rule("Moveaxis")
def moveaxis(call: Call) -> tuple:
    x = list(_first(call))
    n = len(x)
    src = [_axis(a, n) for a in _ints(call.op.source)]
    dst = [_axis(a, n) for a in _ints(call.op.destination)]
    if len(src) != len(dst) or len(set(src)) != len(src) or len(set(dst)) != len(dst):
        raise _Unsupported("moveaxis source/destination")
    out: list[Any] = [_MISSING] * n
    for s, d in zip(src, dst):
        out[d] = x[s]
    rest = iter(d for i, d in enumerate(x) if i not in src)
    return tuple(next(rest) if d is _MISSING else d for d in out)


_MISSING = object()


# --- reshape --------------------------------------------------------------------


@_ops_rule("Reshape")
def reshape(call: Call) -> tuple:
    """``-1`` becomes the exact quotient of the element counts (``2*T*batch``)."""
    x = _first(call)
    newshape = call.op.newshape
    if not isinstance(newshape, (list, tuple)):
        newshape = [newshape]
    if any(d is None for d in newshape):
        # ``ops.shape(x)[0]`` of a symbolic tensor is None; every backend's
        # reshape rejects None when the model runs.
        raise ShapeError(f"`{_op_name(call)}` target {tuple(newshape)} contains None (an "
                         "unknown size read from a symbolic shape); the reshape fails when "
                         "the model runs: use -1 for one unknown size")
    target = [_int(d) for d in newshape]
    if any(d < -1 for d in target) or target.count(-1) > 1:
        raise ShapeError(f"invalid reshape target {tuple(target)}")
    size = dims.prod(x)
    if -1 not in target:
        total = dims.prod(target)
        _unify(call, size, total,
               f"`{_op_name(call)}` to {tuple(target)} keeps the number of elements")
        return tuple(target)
    known = dims.prod([d for d in target if d != -1])
    if known == 0:
        raise _Unsupported("reshape with a zero dim and -1")
    q = dims.exact_div(size, known)
    if q is None and isinstance(size, int):
        raise ShapeError(f"cannot reshape {dims.fmt_shape(x)} ({size} elements) to "
                         f"{tuple(target)}")
    return tuple(q if d == -1 else d for d in target)


@_ops_rule("Ravel")
def ravel(call: Call) -> tuple:
    return (dims.prod(_first(call)),)


# --- joining and splitting ------------------------------------------------------


def _tensor_list(value: Any) -> list[tuple]:
    if not isinstance(value, (list, tuple)) or not value:
        raise _Unsupported("expected a list of tensors")
    return [shape_of(v) for v in value]


@_ops_rule("Concatenate")
def concatenate(call: Call) -> tuple:
    """Sizes along ``axis`` add up; every other axis must agree."""
    shapes = _tensor_list(call.arg(0, "xs"))
    return _concat(call, shapes, _axis(call.op.axis, len(shapes[0])))


def _concat(call: Call, shapes: list[tuple], axis: int) -> tuple:
    first = shapes[0]
    rank = len(first)
    out = list(first)
    for j, s in enumerate(shapes[1:], start=1):
        if len(s) != rank:
            raise ShapeError(f"`{_op_name(call)}`: input {j} has rank {len(s)}; "
                             f"input 0 has rank {rank}")
        for i in range(rank):
            if i != axis:
                out[i] = _unify(call, out[i], s[i],
                                f"`{_op_name(call)}` inputs must match off the concat "
                                f"axis (input {j}, axis {i})")
    out[axis] = dims.add(*(s[axis] for s in shapes))
    return tuple(out)


@_ops_rule("Hstack", "Vstack")
def hstack_vstack(call: Call) -> tuple:
    """Concatenation along axis 1 (``hstack``) or 0 (``vstack``) of rank >= 2 tensors."""
    shapes = _tensor_list(call.arg(0, "xs"))
    axis = 1 if type(call.op).__name__ == "Hstack" else 0
    if any(len(s) < 2 for s in shapes):
        raise _Unsupported("hstack/vstack of vectors")
    return _concat(call, shapes, axis)


@_ops_rule("Append")
def append(call: Call) -> tuple:
    a = shape_of(call.arg(0, "x1"))
    b = shape_of(call.arg(1, "x2"))
    if call.op.axis is None:
        return (dims.add(dims.prod(a), dims.prod(b)),)
    return _concat(call, [a, b], _axis(call.op.axis, len(a)))


@_ops_rule("Stack")
def stack(call: Call) -> tuple:
    shapes = _tensor_list(call.arg(0, "x"))
    first = list(shapes[0])
    for j, s in enumerate(shapes[1:], start=1):
        if len(s) != len(first):
            raise ShapeError(f"`{_op_name(call)}`: input {j} has rank {len(s)}; "
                             f"input 0 has rank {len(first)}")
        for i in range(len(first)):
            first[i] = _unify(call, first[i], s[i],
                              f"`{_op_name(call)}` inputs must have the same shape "
                              f"(input {j}, axis {i})")
    axis = _axis(call.op.axis, len(first) + 1)
    first.insert(axis, len(shapes))
    return tuple(first)


@_ops_rule("Split")
def split(call: Call) -> list:
    x = list(_first(call))
    axis = _axis(call.op.axis, len(x))
    return _split(call, x, axis, call.op.indices_or_sections)


def _split(call: Call, x: list, axis: int, spec: Any) -> list:
    d = x[axis]
    if isinstance(spec, (list, tuple)):
        idx = [_int(i) for i in spec]
        if any(i < 0 for i in idx) or idx != sorted(idx):
            raise _Unsupported("split indices not ascending")
        bounds = [0] + idx + [d]
        sizes = [dims.sub(b, a) for a, b in zip(bounds[:-1], bounds[1:])]
        if idx and not isinstance(d, int):
            call.require_positive(dims.add(dims.sub(d, idx[-1]), 1),
                                  f"`{_op_name(call)}` splits at index {idx[-1]}")
        elif idx and isinstance(d, int) and d < idx[-1]:
            raise ShapeError(f"split index {idx[-1]} exceeds axis size {d}")
    else:
        n = _int(spec)
        if n <= 0:
            raise ShapeError(f"cannot split into {n} sections")
        if isinstance(d, int) and d % n:
            raise ShapeError(f"axis {axis} of size {d} does not split into {n} equal parts",
                             expected=f"a multiple of {n}", got=str(d))
        sizes = [dims.exact_div(d, n)] * n
    outs = []
    for s in sizes:
        shape = list(x)
        shape[axis] = s
        outs.append(tuple(shape))
    return outs


@_ops_rule("Hsplit")
def hsplit(call: Call) -> list:
    x = list(_first(call))
    if not x:
        raise ShapeError("hsplit needs rank >= 1")
    return _split(call, x, 0 if len(x) == 1 else 1, call.op.indices_or_sections)


@_ops_rule("Vsplit")
def vsplit(call: Call) -> list:
    x = list(_first(call))
    if len(x) < 2:
        raise ShapeError("vsplit needs rank >= 2")
    return _split(call, x, 0, call.op.indices_or_sections)


@_ops_rule("Dsplit")
def dsplit(call: Call) -> list:
    x = list(_first(call))
    if len(x) < 3:
        raise ShapeError("dsplit needs rank >= 3")
    return _split(call, x, 2, call.op.indices_or_sections)


@_ops_rule("ArraySplit")
def array_split(call: Call) -> list:
    """Sections differ by at most one: section ``i`` has ``ceil((d - i) / n)``."""
    x = list(_first(call))
    axis = _axis(call.op.axis, len(x))
    n = _int(call.op.indices_or_sections)
    if n <= 0:
        raise ShapeError(f"cannot split into {n} sections")
    d = x[axis]
    outs = []
    for i in range(n):
        shape = list(x)
        shape[axis] = dims.floordiv(dims.add(d, n - 1 - i), n)
        outs.append(tuple(shape))
    return outs


@_ops_rule("Unstack")
def unstack(call: Call) -> list:
    x = list(_first(call))
    axis = _axis(call.op.axis, len(x))
    d = x[axis]
    num = call.op.num
    if num is None:
        if not isinstance(d, int):
            raise _Unsupported("unstack of an unknown axis")
        num = d
    else:
        num = _int(num)
        _unify(call, d, num, f"`{_op_name(call)}` unstacks axis {axis} into {num} tensors")
    rest = tuple(x[:axis] + x[axis + 1:])
    return [rest for _ in range(num)]


# --- repetition and padding -----------------------------------------------------


@_ops_rule("Tile")
def tile(call: Call) -> tuple:
    x = list(_first(call))
    reps = _ints(call.op.repeats)
    if len(x) > len(reps):
        reps = [1] * (len(x) - len(reps)) + reps
    else:
        x = [1] * (len(reps) - len(x)) + x
    return tuple(dims.mul(d, r) for d, r in zip(x, reps))


@_ops_rule("Repeat")
def repeat(call: Call) -> tuple:
    x = list(_first(call))
    reps = _ints(call.op.repeats)
    axis = call.op.axis
    if axis is None:
        size = dims.prod(x)
        if len(reps) == 1:
            return (dims.mul(size, reps[0]),)
        _unify(call, size, len(reps), f"`{_op_name(call)}`: one repeat count per element")
        return (sum(reps),)
    a = _axis(axis, len(x))
    if len(reps) == 1:
        x[a] = dims.mul(x[a], reps[0])
    else:
        _unify(call, x[a], len(reps), f"`{_op_name(call)}`: one repeat count per entry "
                                      f"of axis {a}")
        x[a] = sum(reps)
    return tuple(x)


@_ops_rule("Pad")
def pad(call: Call) -> tuple:
    x = list(_first(call))
    widths = call.op.pad_width
    try:
        widths = [tuple(_int(v) for v in w) for w in widths]
    except TypeError as err:
        raise _Unsupported(str(err)) from err
    if len(widths) == 1 and len(x) != 1:
        # One (before, after) pair for every axis: Keras's spec broadcasts it,
        # the TensorFlow backend rejects it at run time.
        raise _Unsupported("a single pad pair for several axes")
    if len(widths) != len(x) or any(len(w) != 2 for w in widths):
        raise ShapeError(f"pad_width {call.op.pad_width} does not match rank {len(x)}")
    return tuple(dims.add(d, w[0] + w[1]) for d, w in zip(x, widths))


@_ops_rule("BroadcastTo")
def broadcast_to(call: Call) -> tuple:
    x = list(_first(call))
    target = _ints(call.op.shape)
    if len(x) > len(target):
        raise ShapeError(f"cannot broadcast {dims.fmt_shape(tuple(x))} to {tuple(target)}")
    padded = [1] * (len(target) - len(x)) + x
    for i, (d, t) in enumerate(zip(padded, target)):
        if not _is_one(d):
            _unify(call, d, t, f"`{_op_name(call)}` to {tuple(target)} (axis {i})")
    return tuple(target)


@_ops_rule("OneHot")
def one_hot(call: Call) -> tuple:
    x = list(_first(call))
    axis = _int(call.op.axis)
    n = _int(call.op.num_classes)
    if axis == -1:
        x.append(n)
    elif 0 <= axis < len(x):
        x.insert(axis, n)
    else:
        raise ShapeError(f"one_hot axis must be -1 or in [0, {len(x)}); got {axis}")
    return tuple(x)


# --- indexing -------------------------------------------------------------------


@functools.lru_cache(maxsize=None)
def _axis_size() -> Any:
    """The symbol ``m_`` that :func:`_generic_len` writes a slice length in."""
    import sympy as sp

    return sp.Symbol("m_", integer=True, nonnegative=True)


def _concrete_len(n: int, start: int | None, stop: int | None, step: int) -> int:
    return len(range(*slice(start, stop, step).indices(n)))


def _generic_len(start: int | None, stop: int | None, step: int) -> Any:
    """Python's slice length on an axis of size ``_axis_size()`` (with Min/Max)."""
    import sympy as sp

    m = _axis_size()
    if step > 0:
        lo = 0 if start is None else (sp.Min(start, m) if start >= 0 else sp.Max(m + start, 0))
        hi = m if stop is None else (sp.Min(stop, m) if stop >= 0 else sp.Max(m + stop, 0))
        return sp.Max(0, sp.ceiling((hi - lo) / sp.Integer(step)))
    k = -step
    hi = m - 1 if start is None else (sp.Min(start, m - 1) if start >= 0
                                      else sp.Max(m + start, -1))
    lo = -1 if stop is None else (sp.Min(stop, m - 1) if stop >= 0 else sp.Max(m + stop, -1))
    return sp.Max(0, sp.ceiling((hi - lo) / sp.Integer(k)))


def _min_max(c: int, d: Dim) -> Any:
    """``Min(c, Max(0, d))``."""
    import sympy as sp

    return sp.Min(c, sp.Max(0, d))


def _ceil_expr(n: Dim, j: int, k: int) -> Dim:
    """``ceil((n - j) / k)``, built as the other rules build it."""
    return dims.ceildiv(dims.sub(n, j), k)


def slice_length(n: Dim, start: int | None, stop: int | None, step: int | None) -> Dim:
    """The length of ``x[start:stop:step]`` along an axis of size ``n``, exactly.

    For a symbolic ``n`` the simplest of ``ceil((n - j)/k)``, ``Max(0, ...)`` and
    ``Min(c, Max(0, ...))`` that equals Python's slice length for every ``n >= 0``
    is used (``T - 1`` for ``1:``, ``Max(0, T - 2)`` for ``1:-1``, ``Min(3, T)``
    for ``:3``).
    """
    length, floor_at_zero = _slice_length(n, start, stop, step)
    if floor_at_zero:
        import sympy as sp

        return dims.norm(sp.Max(0, length))
    return length


def _slice_length(n: Dim, start: int | None, stop: int | None,
                  step: int | None) -> tuple[Dim, bool]:
    """``(length, floored)``: when ``floored`` the exact length is ``Max(0, length)``."""
    step = 1 if step is None else step
    if step == 0:
        raise ShapeError("slice step cannot be zero")
    if n is None:
        return None, False
    if isinstance(n, int):
        return _concrete_len(n, start, stop, step), False
    if start is None and stop is None and step == 1:  # ``:``, what the search finds
        return n, False
    k = abs(step)
    # Past every breakpoint (|start|, |stop|) the length is c or ceil((n - j)/k).
    far = abs(start or 0) + abs(stop or 0) + 2 * k + 2
    if far > 200_000:
        return dims.norm(_generic_len(start, stop, step).subs(_axis_size(), n)), False
    values = [_concrete_len(i, start, stop, step) for i in range(far + 2 * k + 1)]

    def matches(fn: Callable[[int], int]) -> bool:
        return all(fn(i) == v for i, v in enumerate(values))

    # (python value, expression in n, floored at zero)
    candidates: list[tuple[Callable[[int], int], Callable[[], Any], bool]] = []
    tail = values[far]
    if values[far + k] == tail and values[far + 2 * k] == tail:
        c = tail
        candidates.append((lambda i: c, lambda: c, False))
        if c > 0 and c in values:
            # Min(c, ceil((n - j)/k)) first reaches c at n = j + 1 + (c - 1)*k.
            j = values.index(c) - 1 - (c - 1) * k
            candidates.append((
                lambda i: min(c, max(0, -(-(i - j) // k))),
                lambda: _min_max(c, _ceil_expr(n, j, k)), False))
    else:
        base = far - k * tail
        for j in range(base - k, base + k + 1):
            if all(-(-(i - j) // k) == values[i] for i in range(far, len(values))):
                candidates.append((lambda i, j=j: -(-(i - j) // k),
                                   lambda j=j: _ceil_expr(n, j, k), False))
                candidates.append((lambda i, j=j: max(0, -(-(i - j) // k)),
                                   lambda j=j: _ceil_expr(n, j, k), True))
                break
    for fn, expr, floored in candidates:
        if matches(fn):
            return dims.norm(expr()), floored
    return dims.norm(_generic_len(start, stop, step).subs(_axis_size(), n)), False


def _slice_part(v: Any) -> int | None:
    return None if v is None else _int(v)


@_ops_rule("GetItem")
def get_item(call: Call) -> tuple:
    """``x[key]`` for ints, slices, ``...`` and ``None`` (Keras's ``GetItem``)."""
    x = _first(call)
    key = call.arg(1, "key")
    if isinstance(key, tuple):
        keys = list(key)
    elif isinstance(key, list):
        keys = list(key)
    elif isinstance(key, int) and not isinstance(key, bool):
        keys = [key]
    elif isinstance(key, (slice, type(Ellipsis), type(None))):
        # Keras's GetItem takes an int, a tuple or a list: ``x[1:]`` is refused.
        raise ShapeError(f"Keras cannot index a symbolic tensor with a bare {key!r}; "
                         "use a tuple such as x[1:, ...]")
    else:
        raise _Unsupported(f"key {key!r}")
    for k in keys:
        if not (k is Ellipsis or k is None or isinstance(k, slice)
                or (isinstance(k, (int, np.integer)) and not isinstance(k, bool))):
            raise _Unsupported(f"key element {k!r}")
    if sum(1 for k in keys if k is Ellipsis) > 1:
        raise ShapeError("an index can only have a single ellipsis ('...')")
    if not any(k is Ellipsis for k in keys):
        keys.append(Ellipsis)
    remaining = list(x)
    out: list[Dim] = []
    while keys:
        k = keys.pop(0)
        if k is Ellipsis:
            needed = sum(1 for r in keys if r is not None)
            consumed = len(remaining) - needed
            if consumed < 0:
                raise ShapeError(f"too many indices for a tensor of rank {len(x)}")
            out += remaining[:consumed]
            remaining = remaining[consumed:]
            continue
        if k is None:
            out.append(1)
            continue
        if not remaining:
            raise ShapeError(f"too many indices for a tensor of rank {len(x)}")
        length = remaining.pop(0)
        axis = len(x) - len(remaining) - 1
        if isinstance(k, slice):
            size, floored = _slice_length(length, _slice_part(k.start), _slice_part(k.stop),
                                          _slice_part(k.step))
            if floored:
                # ``x[:, 1:-1]`` has ``Max(0, T - 2)`` rows: keep ``T - 2`` (as a
                # cropping layer would) and record where it holds.
                call.require_positive(dims.add(size, 1),
                                      f"`{_op_name(call)}` slices {k.start}:{k.stop} of "
                                      f"axis {axis} (a shorter axis gives an empty slice)")
            out.append(size)
            continue
        i = _int(k)
        if isinstance(length, int):
            if not -length <= i < length:
                raise ShapeError(f"index {i} is out of bounds for axis {axis} of size {length}",
                                 expected=f"a size of at least {i + 1 if i >= 0 else -i}",
                                 got=str(length))
        elif length is not None:
            need = dims.sub(length, i) if i >= 0 else dims.add(length, i + 1)
            call.require_positive(need, f"`{_op_name(call)}` takes index {i} of axis {axis}")
    return tuple(out)


@_ops_rule("Slice")
def slice_op(call: Call) -> tuple:
    """``ops.slice(x, start_indices, shape)``: ``-1`` takes the rest of the axis."""
    x = _first(call)
    start = call.arg(1, "start_indices")
    if not isinstance(start, (list, tuple)):
        raise _Unsupported("tensor start indices")
    starts = [_int(s) for s in start]
    sizes = _ints(call.op.shape)
    if len(sizes) != len(x) or len(starts) != len(x):
        raise ShapeError(f"slice of rank {len(sizes)} for a tensor of rank {len(x)}")
    out = []
    for axis, (d, s, n) in enumerate(zip(x, starts, sizes)):
        if n == -1:
            out.append(dims.sub(d, s))
            continue
        out.append(n)
        if d is not None and not isinstance(d, int):
            call.require_positive(dims.sub(d, s + n - 1),
                                  f"`{_op_name(call)}` takes [{s}, {s + n}) of axis {axis}")
    return tuple(out)


@_ops_rule("Take")
def take(call: Call) -> tuple:
    x = list(_first(call))
    indices = shape_of(call.arg(1, "indices"))
    axis = call.op.axis
    if axis is None:
        return tuple(indices)
    a = _axis(axis, len(x))
    return tuple(x[:a]) + tuple(indices) + tuple(x[a + 1:])


@_ops_rule("TakeAlongAxis")
def take_along_axis(call: Call) -> tuple:
    x = list(_first(call))
    indices = list(shape_of(call.arg(1, "indices")))
    axis = call.op.axis
    if axis is None:
        x = [dims.prod(x)]
        a = 0
    else:
        a = None
    if len(x) != len(indices):
        raise ShapeError(f"take_along_axis: ranks {len(x)} and {len(indices)} differ")
    if a is None:
        a = _axis(axis, len(x))
    x[a] = indices[a]
    return broadcast(call, [x, indices], f"`{_op_name(call)}` indices must broadcast")


# --- products -------------------------------------------------------------------


@_ops_rule("Matmul")
def matmul(call: Call) -> tuple:
    """Batch dims broadcast; ``x1.shape[-1]`` must equal ``x2.shape[-2]``."""
    a = list(shape_of(call.arg(0, "x1")))
    b = list(shape_of(call.arg(1, "x2")))
    if not a or not b:
        raise ShapeError("matmul of a scalar")
    a_1d, b_1d = len(a) == 1, len(b) == 1
    if a_1d:
        a = [1] + a
    if b_1d:
        b = b + [1]
    _unify(call, a[-1], b[-2], f"`{_op_name(call)}` inner dims (x1[-1] and x2[-2])")
    lead = list(broadcast(call, [a[:-2], b[:-2]],
                          f"`{_op_name(call)}` batch dims must broadcast"))
    out = lead + [a[-2], b[-1]]
    if a_1d:
        del out[-2]
    if b_1d:
        del out[-1]
    return tuple(out)


@_ops_rule("Dot")
def dot(call: Call) -> tuple:
    a = list(shape_of(call.arg(0, "x1")))
    b = list(shape_of(call.arg(1, "x2")))
    if not a or not b:
        return broadcast(call, [a, b], f"operands of `{_op_name(call)}` must broadcast")
    if len(a) == 1 and len(b) == 1:
        _unify(call, a[0], b[0], f"`{_op_name(call)}` of two vectors")
        return ()
    if len(b) == 1:
        _unify(call, a[-1], b[0], f"`{_op_name(call)}` contracts x1[-1] with x2[0]")
        return tuple(a[:-1])
    _unify(call, a[-1], b[-2], f"`{_op_name(call)}` contracts x1[-1] with x2[-2]")
    return tuple(a[:-1] + b[:-2] + b[-1:])


@_ops_rule("Tensordot")
def tensordot(call: Call) -> tuple:
    a = list(shape_of(call.arg(0, "x1")))
    b = list(shape_of(call.arg(1, "x2")))
    axes = call.op.axes
    if isinstance(axes, (list, tuple)):
        if len(axes) != 2:
            raise _Unsupported("tensordot axes")
        ax_a = [_axis(i, len(a)) for i in _ints(axes[0])]
        ax_b = [_axis(i, len(b)) for i in _ints(axes[1])]
        if len(ax_a) != len(ax_b):
            raise ShapeError("tensordot: axes lists of different lengths")
    else:
        n = _int(axes)
        if n < 0 or n > min(len(a), len(b)):
            raise _Unsupported("tensordot axes")
        ax_a = list(range(len(a) - n, len(a)))
        ax_b = list(range(n))
    for i, j in zip(ax_a, ax_b):
        _unify(call, a[i], b[j], f"`{_op_name(call)}` contracts x1 axis {i} with x2 axis {j}")
    return tuple([d for i, d in enumerate(a) if i not in ax_a] +
                 [d for j, d in enumerate(b) if j not in ax_b])


@_ops_rule("Outer")
def outer(call: Call) -> tuple:
    return (dims.prod(shape_of(call.arg(0, "x1"))), dims.prod(shape_of(call.arg(1, "x2"))))


@_ops_rule("Einsum")
def einsum(call: Call) -> tuple:
    """``einsum`` with an explicit output; labels shared by operands must agree."""
    subscripts = str(call.op.subscripts).replace(" ", "")
    operands = list(call.args)
    parts = subscripts.split("->")
    if len(parts) > 2:
        raise ShapeError(f"einsum subscripts {subscripts!r} have more than one '->'")
    lhs, out_spec = parts[0], (parts[1] if len(parts) == 2 else None)
    specs = lhs.split(",")
    if len(specs) != len(operands):
        raise ShapeError(f"einsum: {len(specs)} input specs for {len(operands)} operands")
    label_dims: dict[str, Dim] = {}
    ellipses: list[tuple] = []
    for spec, operand in zip(specs, operands):
        shape = list(shape_of(operand))
        if spec.count("...") > 1:
            raise _Unsupported("several ellipses")
        if "..." in spec:
            pre, post = spec.split("...")
            if len(pre) + len(post) > len(shape):
                raise ShapeError(f"einsum spec {spec!r} has more labels than rank {len(shape)}")
            labels = pre + post
            sizes = shape[:len(pre)] + shape[len(shape) - len(post):]
            ellipses.append(tuple(shape[len(pre):len(shape) - len(post)]))
        else:
            if len(spec) != len(shape):
                raise ShapeError(f"einsum spec {spec!r} does not match rank {len(shape)}")
            labels, sizes = spec, shape
        if not all(c.isalpha() for c in labels) or len(set(labels)) != len(labels):
            raise _Unsupported("einsum labels")
        for c, d in zip(labels, sizes):
            if c not in label_dims or _is_one(label_dims[c]):
                label_dims[c] = d
            elif not _is_one(d):
                label_dims[c] = _unify(call, label_dims[c], d,
                                       f"`{_op_name(call)}` label {c!r} must have one size")
    if len({len(e) for e in ellipses}) > 1:
        raise _Unsupported("ellipses of different lengths")
    ell = broadcast(call, ellipses, f"`{_op_name(call)}` '...' dims must broadcast") \
        if ellipses else ()
    if out_spec is None:
        # Implicit output: Keras's spec sorts the labels, the TensorFlow backend
        # renames them in order of appearance first; the order is backend-specific.
        raise _Unsupported("implicit einsum output")
    if out_spec.count("...") > 1:
        raise _Unsupported("several ellipses in the output")
    if "..." in out_spec:
        pre, post = out_spec.split("...")
    else:
        if ell:
            raise _Unsupported("output drops the '...' dims")
        pre, post = out_spec, ""
    labels = pre + post
    if not all(c in label_dims for c in labels) or len(set(labels)) != len(labels):
        raise _Unsupported("output labels")
    return tuple([label_dims[c] for c in pre] + list(ell) + [label_dims[c] for c in post])


# --- other ----------------------------------------------------------------------


@_ops_rule("Diff")
def diff(call: Call) -> tuple:
    a = list(_first(call))
    axis = _axis(call.op.axis, len(a))
    n = _int(call.op.n)
    d = a[axis]
    if isinstance(d, int):
        a[axis] = max(d - n, 0)
    elif d is not None:
        a[axis] = dims.sub(d, n)
        if n > 1:
            call.require_positive(dims.sub(d, n - 1),
                                  f"`{_op_name(call)}` of order {n} along axis {axis} "
                                  "(a shorter axis gives an empty result)")
    return tuple(a)


@_ops_rule("Glu")
def glu(call: Call) -> tuple:
    x = list(_first(call))
    axis = _axis(call.op.axis, len(x))
    d = x[axis]
    if isinstance(d, int) and d % 2:
        raise ShapeError(f"glu halves axis {axis}, of odd size {d}",
                         expected="an even size", got=str(d))
    x[axis] = dims.exact_div(d, 2)
    return tuple(x)


@_ops_rule("TopK")
def top_k(call: Call) -> list:
    x = list(_first(call))
    if not x:
        raise ShapeError("top_k of a scalar")
    k = _int(call.op.k)
    d = x[-1]
    if isinstance(d, int) and d < k:
        raise ShapeError(f"top_k with k={k} on a last axis of size {d}",
                         expected=f">= {k}", got=str(d))
    if d is not None and not isinstance(d, int):
        call.require_positive(dims.sub(d, k - 1), f"`{_op_name(call)}` takes the top {k}")
    x[-1] = k
    return [tuple(x), tuple(x)]


@_ops_rule("Size")
def size(call: Call) -> tuple:
    return ()


# --- einops ---------------------------------------------------------------------


def _einops_axes(pattern: str) -> list[list[str]]:
    import re

    groups = []
    for token in re.findall(r"\w+|\(.*?\)", pattern):
        names = token[1:-1].split() if token.startswith("(") else [token]
        if not names or not all(n.isidentifier() for n in names):
            raise _Unsupported(f"einops axis {token!r}")
        groups.append(names)
    return groups


@_ops_rule("Rearrange")
def rearrange(call: Call) -> tuple:
    """``ops.rearrange(x, "b t (h d) -> b h t d", h=8)``: decompose, permute, merge."""
    import re

    x = _first(call)
    pattern = call.arg(1, "pattern")
    if not isinstance(pattern, str):
        raise _Unsupported("pattern")
    lengths = {k: _int(v) for k, v in call.kwargs.items() if k != "pattern"}
    sides = re.split(r"\s*->\s*", pattern.strip())
    if len(sides) != 2 or "..." in pattern:
        raise _Unsupported("pattern")
    inputs, outputs = _einops_axes(sides[0]), _einops_axes(sides[1])
    if len(inputs) != len(x):
        raise ShapeError(f"rearrange pattern {sides[0]!r} has {len(inputs)} axes; "
                         f"the tensor has rank {len(x)}")
    sizes: dict[str, Dim] = {}
    for group, d in zip(inputs, x):
        if len(group) == 1:
            sizes[group[0]] = d
            continue
        unknown = [a for a in group if a not in lengths]
        known = dims.prod([lengths[a] for a in group if a in lengths])
        if len(unknown) > 1:
            raise _Unsupported("several unknown axes in one group")
        if unknown:
            if isinstance(d, int) and known and d % known:
                raise ShapeError(f"rearrange cannot split {d} into ({' '.join(group)})",
                                 expected=f"a multiple of {known}", got=str(d))
            sizes[unknown[0]] = dims.exact_div(d, known) if known else None
        else:
            _unify(call, d, known, f"`{_op_name(call)}` splits an axis into ({' '.join(group)})")
        for a in group:
            if a in lengths:
                sizes[a] = lengths[a]
    flat_in = [a for g in inputs for a in g]
    flat_out = [a for g in outputs for a in g]
    if sorted(flat_in) != sorted(flat_out) or len(set(flat_in)) != len(flat_in):
        raise _Unsupported("axes differ between the sides")
    return tuple(dims.prod([sizes[a] for a in g]) for g in outputs)
