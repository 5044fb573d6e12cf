"""Shape rules for Keras merge layers.

Add, Subtract, Multiply, Average, Maximum, Minimum broadcast their inputs as
``keras.src.layers.merging.base_merge.Merge`` does: the batch axes are merged,
the other axes are broadcast right-aligned (inputs of lower rank get size-1
axes inserted after the batch axis).  Concatenate sums the concatenation axis
and needs the other axes equal; Dot is Keras's ``batch_dot``.
"""

from __future__ import annotations

from shapecheck.shapes import dims
from shapecheck.shapes.dims import Dim
from shapecheck.shapes.layers.core import input_syms
from shapecheck.shapes.layers.registry import Call, ShapeError, rule


def _name(call: Call) -> str:
    return getattr(call.op, "name", type(call.op).__name__)


def _shapes(call: Call) -> list[tuple]:
    shapes = [tuple(s.shape) for s in input_syms(call)]
    if not shapes:
        raise ShapeError(f"merge layer `{_name(call)}` needs a list of at least one input")
    return shapes


def _broadcast_dim(call: Call, i: Dim, j: Dim, shape1: tuple, shape2: tuple) -> Dim:
    """One axis of ``_compute_elemwise_op_output_shape`` (and of the run-time broadcast)."""
    if i == 1:
        return j
    if j == 1:
        return i
    if i is None or j is None:
        other = j if i is None else i
        return other if other is not None else None
    if dims.is_int(i) and dims.is_int(j):
        if i != j:
            raise ShapeError(
                f"inputs of `{_name(call)}` have incompatible shapes "
                f"{dims.fmt_shape(shape1)} and {dims.fmt_shape(shape2)}",
                expected=dims.fmt_shape(shape1), got=dims.fmt_shape(shape2))
        return i
    return call.require_equal(i, j, "merged (broadcast) axes must agree")


def _elemwise(call: Call, shape1: tuple | None, shape2: tuple | None) -> tuple | None:
    if shape1 is None or shape2 is None:
        return None
    if len(shape1) < len(shape2):
        return _elemwise(call, shape2, shape1)
    if not shape2:
        return shape1
    out = list(shape1[: -len(shape2)])
    for i, j in zip(shape1[-len(shape2):], shape2):
        out.append(_broadcast_dim(call, i, j, shape1, shape2))
    return tuple(out)


def _merge_batch(call: Call, shapes: list[tuple]) -> Dim:
    batches = [s[0] for s in shapes if s]
    known = {b for b in batches if dims.is_int(b)}
    if len(known) > 1:
        raise ShapeError(
            f"`{_name(call)}` cannot merge tensors with different batch sizes "
            f"{', '.join(dims.fmt_shape(s) for s in shapes)}",
            expected=dims.fmt_shape(shapes[0]), got=dims.fmt_shape(shapes[1]))
    out: Dim = None
    first = True
    for b in batches:
        if first:
            out, first = b, False
        elif b is not None:
            out = b if out is None else _broadcast_dim(call, out, b, shapes[0], shapes[1])
    if known:
        return next(iter(known))  # Keras's static batch size
    return out


@rule("layers.Add", "layers.Multiply", "layers.Average", "layers.Maximum",
      "layers.Minimum", "layers.Subtract")
def elementwise_merge(call: Call) -> tuple:
    shapes = _shapes(call)
    if type(call.op).__name__ == "Subtract" and len(shapes) != 2:
        raise ShapeError(f"Subtract `{_name(call)}` needs exactly 2 inputs; got {len(shapes)}",
                         expected="2 inputs", got=f"{len(shapes)} inputs")
    rest: tuple | None = shapes[0][1:]
    for s in shapes[1:]:
        rest = _elemwise(call, rest, s[1:])
    batch = _merge_batch(call, shapes)
    return (batch,) + tuple(rest or ())


@rule("layers.Concatenate")
def concatenate(call: Call) -> tuple:
    shapes = _shapes(call)
    axis = int(call.op.axis)
    ranks = {len(s) for s in shapes}
    if len(ranks) != 1:
        raise ShapeError(
            f"`{_name(call)}` needs inputs of one rank; got "
            f"{', '.join(dims.fmt_shape(s) for s in shapes)}",
            expected=f"rank {len(shapes[0])}", got=dims.fmt_shape(
                next(s for s in shapes if len(s) != len(shapes[0]))))
    rank = ranks.pop()
    if not -rank <= axis < rank:
        raise ShapeError(f"concatenation axis {axis} is out of bounds for rank {rank}",
                         expected=f"rank > {axis if axis >= 0 else -axis - 1}",
                         got=f"rank {rank}")
    ax = axis % rank
    out = list(shapes[0])
    for s in shapes[1:]:
        for k in range(rank):
            if k == ax:
                continue
            a, b = out[k], s[k]
            if dims.is_int(a) and dims.is_int(b):
                if a != b:
                    raise ShapeError(
                        f"`{_name(call)}` needs inputs with matching shapes except for "
                        f"axis {axis}; got {', '.join(dims.fmt_shape(x) for x in shapes)}",
                        expected=dims.fmt_shape(shapes[0]), got=dims.fmt_shape(s))
                continue
            if a is None or b is None:
                out[k] = a if b is None else b
                continue
            out[k] = call.require_equal(a, b, f"axes other than {axis} of concatenated inputs")
    out[ax] = dims.add(*[s[ax] for s in shapes])
    return tuple(out)


@rule("layers.Dot")
def dot(call: Call) -> tuple:
    shapes = _shapes(call)
    if len(shapes) != 2:
        raise ShapeError(f"Dot `{_name(call)}` needs exactly 2 inputs; got {len(shapes)}",
                         expected="2 inputs", got=f"{len(shapes)} inputs")
    s1, s2 = shapes
    if len(s1) < 2 or len(s2) < 2:
        raise ShapeError("Dot needs inputs of rank >= 2",
                         expected="rank >= 2",
                         got=f"{dims.fmt_shape(s1)} and {dims.fmt_shape(s2)}")
    axes = call.op.axes
    if isinstance(axes, int):
        a0, a1 = (axes % len(s1), axes % len(s2)) if axes < 0 else (axes, axes)
    else:
        a0, a1 = int(axes[0]), int(axes[1])
    for a, s in ((a0, s1), (a1, s2)):
        if not -len(s) <= a < len(s):
            raise ShapeError(f"Dot axis {a} is out of bounds for {dims.fmt_shape(s)}",
                             expected=f"rank > {a}", got=dims.fmt_shape(s))
    a0, a1 = a0 % len(s1), a1 % len(s2)
    if a0 == 0 or a1 == 0:
        raise ShapeError("Dot cannot take the product over the batch axis 0",
                         expected="axes != 0", got=f"axes=({a0}, {a1})")
    d1, d2 = s1[a0], s2[a1]
    if dims.is_int(d1) and dims.is_int(d2) and d1 != d2:
        raise ShapeError(
            f"Dot `{_name(call)}`: axis {a0} of {dims.fmt_shape(s1)} != axis {a1} of "
            f"{dims.fmt_shape(s2)}", expected=str(d1), got=str(d2))
    if d1 is not None and d2 is not None:
        call.require_equal(d1, d2, "the axes a Dot reduces must agree")
    b1, b2 = s1[0], s2[0]
    if dims.is_int(b1) and dims.is_int(b2) and b1 != b2:
        raise ShapeError("Dot needs inputs of one batch size",
                         expected=str(b1), got=str(b2))
    if b1 is not None and b2 is not None:
        call.require_equal(b1, b2, "the batch axes of a Dot's inputs must agree")
    left = [d for k, d in enumerate(s1) if k != a0]
    right = [d for k, d in enumerate(s2) if k not in (0, a1)]
    out = left + right
    if len(out) == 1:
        out.append(1)
    return tuple(out)
