"""Shape rules for ``keras.ops`` that join, split, repeat and pad tensors: concatenate,
stack, split, tile, repeat, pad, broadcast_to, one_hot.
"""

from __future__ import annotations

from typing import Any

from shapecheck.shapes import dims
from shapecheck.shapes.layers.ops import (Unsupported, as_int, as_ints, first_arg, is_one,
                                          normalize_axis, op_name, ops_rule, shape_of, unify)
from shapecheck.shapes.layers.registry import Call, ShapeError


def _tensor_list(value: Any) -> list[tuple]:
    if not isinstance(value, (list, tuple)) or not value:
        raise Unsupported("expected a list of tensors")
    return [shape_of(v) for v in value]


@ops_rule("Concatenate")
def concatenate(call: Call) -> tuple:
    """Sizes along ``axis`` add up; every other axis must agree."""
    shapes = _tensor_list(call.arg(0, "xs"))
    return _concat(call, shapes, normalize_axis(call.op.axis, len(shapes[0])))


def _concat(call: Call, shapes: list[tuple], axis: int) -> tuple:
    first = shapes[0]
    rank = len(first)
    out = list(first)
    for j, s in enumerate(shapes[1:], start=1):
        if len(s) != rank:
            raise ShapeError(f"`{op_name(call)}`: input {j} has rank {len(s)}; "
                             f"input 0 has rank {rank}")
        for i in range(rank):
            if i != axis:
                out[i] = unify(call, out[i], s[i],
                               f"`{op_name(call)}` inputs must match off the concat "
                               f"axis (input {j}, axis {i})")
    out[axis] = dims.add(*(s[axis] for s in shapes))
    return tuple(out)


@ops_rule("Hstack", "Vstack")
def hstack_vstack(call: Call) -> tuple:
    """Concatenation along axis 1 (``hstack``) or 0 (``vstack``) of rank >= 2 tensors."""
    shapes = _tensor_list(call.arg(0, "xs"))
    axis = 1 if type(call.op).__name__ == "Hstack" else 0
    if any(len(s) < 2 for s in shapes):
        raise Unsupported("hstack/vstack of vectors")
    return _concat(call, shapes, axis)


@ops_rule("Append")
def append(call: Call) -> tuple:
    a = shape_of(call.arg(0, "x1"))
    b = shape_of(call.arg(1, "x2"))
    if call.op.axis is None:
        return (dims.add(dims.prod(a), dims.prod(b)),)
    return _concat(call, [a, b], normalize_axis(call.op.axis, len(a)))


@ops_rule("Stack")
def stack(call: Call) -> tuple:
    shapes = _tensor_list(call.arg(0, "x"))
    first = list(shapes[0])
    for j, s in enumerate(shapes[1:], start=1):
        if len(s) != len(first):
            raise ShapeError(f"`{op_name(call)}`: input {j} has rank {len(s)}; "
                             f"input 0 has rank {len(first)}")
        for i in range(len(first)):
            first[i] = unify(call, first[i], s[i],
                             f"`{op_name(call)}` inputs must have the same shape "
                             f"(input {j}, axis {i})")
    axis = normalize_axis(call.op.axis, len(first) + 1)
    first.insert(axis, len(shapes))
    return tuple(first)


@ops_rule("Split")
def split(call: Call) -> list:
    x = list(first_arg(call))
    axis = normalize_axis(call.op.axis, len(x))
    return _split(call, x, axis, call.op.indices_or_sections)


def _split(call: Call, x: list, axis: int, spec: Any) -> list:
    d = x[axis]
    if isinstance(spec, (list, tuple)):
        idx = [as_int(i) for i in spec]
        if any(i < 0 for i in idx) or idx != sorted(idx):
            raise Unsupported("split indices not ascending")
        bounds = [0] + idx + [d]
        sizes = [dims.sub(b, a) for a, b in zip(bounds[:-1], bounds[1:])]
        if idx and not isinstance(d, int):
            call.require_positive(dims.add(dims.sub(d, idx[-1]), 1),
                                  f"`{op_name(call)}` splits at index {idx[-1]}")
        elif idx and isinstance(d, int) and d < idx[-1]:
            raise ShapeError(f"split index {idx[-1]} exceeds axis size {d}")
    else:
        n = as_int(spec)
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


@ops_rule("Hsplit")
def hsplit(call: Call) -> list:
    x = list(first_arg(call))
    if not x:
        raise ShapeError("hsplit needs rank >= 1")
    return _split(call, x, 0 if len(x) == 1 else 1, call.op.indices_or_sections)


@ops_rule("Vsplit")
def vsplit(call: Call) -> list:
    x = list(first_arg(call))
    if len(x) < 2:
        raise ShapeError("vsplit needs rank >= 2")
    return _split(call, x, 0, call.op.indices_or_sections)


@ops_rule("Dsplit")
def dsplit(call: Call) -> list:
    x = list(first_arg(call))
    if len(x) < 3:
        raise ShapeError("dsplit needs rank >= 3")
    return _split(call, x, 2, call.op.indices_or_sections)


@ops_rule("ArraySplit")
def array_split(call: Call) -> list:
    """Sections differ by at most one: section ``i`` has ``ceil((d - i) / n)``."""
    x = list(first_arg(call))
    axis = normalize_axis(call.op.axis, len(x))
    n = as_int(call.op.indices_or_sections)
    if n <= 0:
        raise ShapeError(f"cannot split into {n} sections")
    d = x[axis]
    outs = []
    for i in range(n):
        shape = list(x)
        shape[axis] = dims.floordiv(dims.add(d, n - 1 - i), n)
        outs.append(tuple(shape))
    return outs


@ops_rule("Unstack")
def unstack(call: Call) -> list:
    x = list(first_arg(call))
    axis = normalize_axis(call.op.axis, len(x))
    d = x[axis]
    num = call.op.num
    if num is None:
        if not isinstance(d, int):
            raise Unsupported("unstack of an unknown axis")
        num = d
    else:
        num = as_int(num)
        unify(call, d, num, f"`{op_name(call)}` unstacks axis {axis} into {num} tensors")
    rest = tuple(x[:axis] + x[axis + 1:])
    return [rest for _ in range(num)]


@ops_rule("Tile")
def tile(call: Call) -> tuple:
    x = list(first_arg(call))
    reps = as_ints(call.op.repeats)
    if len(x) > len(reps):
        reps = [1] * (len(x) - len(reps)) + reps
    else:
        x = [1] * (len(reps) - len(x)) + x
    return tuple(dims.mul(d, r) for d, r in zip(x, reps))


@ops_rule("Repeat")
def repeat(call: Call) -> tuple:
    x = list(first_arg(call))
    reps = as_ints(call.op.repeats)
    axis = call.op.axis
    if axis is None:
        size = dims.prod(x)
        if len(reps) == 1:
            return (dims.mul(size, reps[0]),)
        unify(call, size, len(reps), f"`{op_name(call)}`: one repeat count per element")
        return (sum(reps),)
    a = normalize_axis(axis, len(x))
    if len(reps) == 1:
        x[a] = dims.mul(x[a], reps[0])
    else:
        unify(call, x[a], len(reps), f"`{op_name(call)}`: one repeat count per entry "
                                     f"of axis {a}")
        x[a] = sum(reps)
    return tuple(x)


@ops_rule("Pad")
def pad(call: Call) -> tuple:
    x = list(first_arg(call))
    widths = call.op.pad_width
    try:
        widths = [tuple(as_int(v) for v in w) for w in widths]
    except TypeError as err:
        raise Unsupported(str(err)) from err
    if len(widths) == 1 and len(x) != 1:
        # One (before, after) pair for every axis: Keras's spec broadcasts it,
        # the TensorFlow backend rejects it at run time.
        raise Unsupported("a single pad pair for several axes")
    if len(widths) != len(x) or any(len(w) != 2 for w in widths):
        raise ShapeError(f"pad_width {call.op.pad_width} does not match rank {len(x)}")
    return tuple(dims.add(d, w[0] + w[1]) for d, w in zip(x, widths))


@ops_rule("BroadcastTo")
def broadcast_to(call: Call) -> tuple:
    x = list(first_arg(call))
    target = as_ints(call.op.shape)
    if len(x) > len(target):
        raise ShapeError(f"cannot broadcast {dims.fmt_shape(tuple(x))} to {tuple(target)}")
    padded = [1] * (len(target) - len(x)) + x
    for i, (d, t) in enumerate(zip(padded, target)):
        if not is_one(d):
            unify(call, d, t, f"`{op_name(call)}` to {tuple(target)} (axis {i})")
    return tuple(target)


@ops_rule("OneHot")
def one_hot(call: Call) -> tuple:
    x = list(first_arg(call))
    axis = as_int(call.op.axis)
    n = as_int(call.op.num_classes)
    if axis == -1:
        x.append(n)
    elif 0 <= axis < len(x):
        x.insert(axis, n)
    else:
        raise ShapeError(f"one_hot axis must be -1 or in [0, {len(x)}); got {axis}")
    return tuple(x)
