"""Shape rules for ``keras.ops`` products (matmul, dot, tensordot, outer, einsum), a few
others (diff, glu, top_k, size) and einops' ``rearrange``.
"""

from __future__ import annotations

from shapecheck.shapes import dims
from shapecheck.shapes.dims import Dim
from shapecheck.shapes.layers.ops import (Unsupported, as_int, as_ints, broadcast, first_arg,
                                          is_one, normalize_axis, op_name, ops_rule, shape_of,
                                          unify)
from shapecheck.shapes.layers.registry import Call, ShapeError


@ops_rule("Matmul")
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
    unify(call, a[-1], b[-2], f"`{op_name(call)}` inner dims (x1[-1] and x2[-2])")
    lead = list(broadcast(call, [a[:-2], b[:-2]],
                          f"`{op_name(call)}` batch dims must broadcast"))
    out = lead + [a[-2], b[-1]]
    if a_1d:
        del out[-2]
    if b_1d:
        del out[-1]
    return tuple(out)


@ops_rule("Dot")
def dot(call: Call) -> tuple:
    a = list(shape_of(call.arg(0, "x1")))
    b = list(shape_of(call.arg(1, "x2")))
    if not a or not b:
        return broadcast(call, [a, b], f"operands of `{op_name(call)}` must broadcast")
    if len(a) == 1 and len(b) == 1:
        unify(call, a[0], b[0], f"`{op_name(call)}` of two vectors")
        return ()
    if len(b) == 1:
        unify(call, a[-1], b[0], f"`{op_name(call)}` contracts x1[-1] with x2[0]")
        return tuple(a[:-1])
    unify(call, a[-1], b[-2], f"`{op_name(call)}` contracts x1[-1] with x2[-2]")
    return tuple(a[:-1] + b[:-2] + b[-1:])


@ops_rule("Tensordot")
def tensordot(call: Call) -> tuple:
    a = list(shape_of(call.arg(0, "x1")))
    b = list(shape_of(call.arg(1, "x2")))
    axes = call.op.axes
    if isinstance(axes, (list, tuple)):
        if len(axes) != 2:
            raise Unsupported("tensordot axes")
        ax_a = [normalize_axis(i, len(a)) for i in as_ints(axes[0])]
        ax_b = [normalize_axis(i, len(b)) for i in as_ints(axes[1])]
        if len(ax_a) != len(ax_b):
            raise ShapeError("tensordot: axes lists of different lengths")
    else:
        n = as_int(axes)
        if n < 0 or n > min(len(a), len(b)):
            raise Unsupported("tensordot axes")
        ax_a = list(range(len(a) - n, len(a)))
        ax_b = list(range(n))
    for i, j in zip(ax_a, ax_b):
        unify(call, a[i], b[j], f"`{op_name(call)}` contracts x1 axis {i} with x2 axis {j}")
    return tuple([d for i, d in enumerate(a) if i not in ax_a] +
                 [d for j, d in enumerate(b) if j not in ax_b])


@ops_rule("Outer")
def outer(call: Call) -> tuple:
    return (dims.prod(shape_of(call.arg(0, "x1"))), dims.prod(shape_of(call.arg(1, "x2"))))


@ops_rule("Einsum")
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
            raise Unsupported("several ellipses")
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
            raise Unsupported("einsum labels")
        for c, d in zip(labels, sizes):
            if c not in label_dims or is_one(label_dims[c]):
                label_dims[c] = d
            elif not is_one(d):
                label_dims[c] = unify(call, label_dims[c], d,
                                      f"`{op_name(call)}` label {c!r} must have one size")
    if len({len(e) for e in ellipses}) > 1:
        raise Unsupported("ellipses of different lengths")
    ell = broadcast(call, ellipses, f"`{op_name(call)}` '...' dims must broadcast") \
        if ellipses else ()
    if out_spec is None:
        # Implicit output: Keras's spec sorts the labels, the TensorFlow backend
        # renames them in order of appearance first; the order is backend-specific.
        raise Unsupported("implicit einsum output")
    if out_spec.count("...") > 1:
        raise Unsupported("several ellipses in the output")
    if "..." in out_spec:
        pre, post = out_spec.split("...")
    else:
        if ell:
            raise Unsupported("output drops the '...' dims")
        pre, post = out_spec, ""
    labels = pre + post
    if not all(c in label_dims for c in labels) or len(set(labels)) != len(labels):
        raise Unsupported("output labels")
    return tuple([label_dims[c] for c in pre] + list(ell) + [label_dims[c] for c in post])


@ops_rule("Diff")
def diff(call: Call) -> tuple:
    a = list(first_arg(call))
    axis = normalize_axis(call.op.axis, len(a))
    n = as_int(call.op.n)
    d = a[axis]
    if isinstance(d, int):
        a[axis] = max(d - n, 0)
    elif d is not None:
        a[axis] = dims.sub(d, n)
        if n > 1:
            call.require_positive(dims.sub(d, n - 1),
                                  f"`{op_name(call)}` of order {n} along axis {axis} "
                                  "(a shorter axis gives an empty result)")
    return tuple(a)


@ops_rule("Glu")
def glu(call: Call) -> tuple:
    x = list(first_arg(call))
    axis = normalize_axis(call.op.axis, len(x))
    d = x[axis]
    if isinstance(d, int) and d % 2:
        raise ShapeError(f"glu halves axis {axis}, of odd size {d}",
                         expected="an even size", got=str(d))
    x[axis] = dims.exact_div(d, 2)
    return tuple(x)


@ops_rule("TopK")
def top_k(call: Call) -> list:
    x = list(first_arg(call))
    if not x:
        raise ShapeError("top_k of a scalar")
    k = as_int(call.op.k)
    d = x[-1]
    if isinstance(d, int) and d < k:
        raise ShapeError(f"top_k with k={k} on a last axis of size {d}",
                         expected=f">= {k}", got=str(d))
    if d is not None and not isinstance(d, int):
        call.require_positive(dims.sub(d, k - 1), f"`{op_name(call)}` takes the top {k}")
    x[-1] = k
    return [tuple(x), tuple(x)]


@ops_rule("Size")
def size(call: Call) -> tuple:
    return ()


def _einops_axes(pattern: str) -> list[list[str]]:
    import re

    groups = []
    for token in re.findall(r"\w+|\(.*?\)", pattern):
        names = token[1:-1].split() if token.startswith("(") else [token]
        if not names or not all(n.isidentifier() for n in names):
            raise Unsupported(f"einops axis {token!r}")
        groups.append(names)
    return groups


@ops_rule("Rearrange")
def rearrange(call: Call) -> tuple:
    """``ops.rearrange(x, "b t (h d) -> b h t d", h=8)``: decompose, permute, merge."""
    import re

    x = first_arg(call)
    pattern = call.arg(1, "pattern")
    if not isinstance(pattern, str):
        raise Unsupported("pattern")
    lengths = {k: as_int(v) for k, v in call.kwargs.items() if k != "pattern"}
    sides = re.split(r"\s*->\s*", pattern.strip())
    if len(sides) != 2 or "..." in pattern:
        raise Unsupported("pattern")
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
            raise Unsupported("several unknown axes in one group")
        if unknown:
            if isinstance(d, int) and known and d % known:
                raise ShapeError(f"rearrange cannot split {d} into ({' '.join(group)})",
                                 expected=f"a multiple of {known}", got=str(d))
            sizes[unknown[0]] = dims.exact_div(d, known) if known else None
        else:
            unify(call, d, known, f"`{op_name(call)}` splits an axis into ({' '.join(group)})")
        for a in group:
            if a in lengths:
                sizes[a] = lengths[a]
    flat_in = [a for g in inputs for a in g]
    flat_out = [a for g in outputs for a in g]
    if sorted(flat_in) != sorted(flat_out) or len(set(flat_in)) != len(flat_in):
        raise Unsupported("axes differ between the sides")
    return tuple(dims.prod([sizes[a] for a in g]) for g in outputs)
