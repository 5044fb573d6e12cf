"""Shape rules for ``keras.ops`` indexing: ``x[...]``, slice, take, take_along_axis,
with slice lengths kept symbolic.
"""

from __future__ import annotations

import functools
from typing import Any, Callable

import numpy as np

from shapecheck.shapes import dims
from shapecheck.shapes.dims import Dim
from shapecheck.shapes.layers.ops import (Unsupported, as_int, as_ints, broadcast, first_arg,
                                          normalize_axis, op_name, ops_rule, shape_of)
from shapecheck.shapes.layers.registry import Call, ShapeError


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
    return None if v is None else as_int(v)


@ops_rule("GetItem")
def get_item(call: Call) -> tuple:
    """``x[key]`` for ints, slices, ``...`` and ``None`` (Keras's ``GetItem``)."""
    x = first_arg(call)
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
        raise Unsupported(f"key {key!r}")
    for k in keys:
        if not (k is Ellipsis or k is None or isinstance(k, slice)
                or (isinstance(k, (int, np.integer)) and not isinstance(k, bool))):
            raise Unsupported(f"key element {k!r}")
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
                                      f"`{op_name(call)}` slices {k.start}:{k.stop} of "
                                      f"axis {axis} (a shorter axis gives an empty slice)")
            out.append(size)
            continue
        i = as_int(k)
        if isinstance(length, int):
            if not -length <= i < length:
                raise ShapeError(f"index {i} is out of bounds for axis {axis} of size {length}",
                                 expected=f"a size of at least {i + 1 if i >= 0 else -i}",
                                 got=str(length))
        elif length is not None:
            need = dims.sub(length, i) if i >= 0 else dims.add(length, i + 1)
            call.require_positive(need, f"`{op_name(call)}` takes index {i} of axis {axis}")
    return tuple(out)


@ops_rule("Slice")
def slice_op(call: Call) -> tuple:
    """``ops.slice(x, start_indices, shape)``: ``-1`` takes the rest of the axis."""
    x = first_arg(call)
    start = call.arg(1, "start_indices")
    if not isinstance(start, (list, tuple)):
        raise Unsupported("tensor start indices")
    starts = [as_int(s) for s in start]
    sizes = as_ints(call.op.shape)
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
                                  f"`{op_name(call)}` takes [{s}, {s + n}) of axis {axis}")
    return tuple(out)


@ops_rule("Take")
def take(call: Call) -> tuple:
    x = list(first_arg(call))
    indices = shape_of(call.arg(1, "indices"))
    axis = call.op.axis
    if axis is None:
        return tuple(indices)
    a = normalize_axis(axis, len(x))
    return tuple(x[:a]) + tuple(indices) + tuple(x[a + 1:])


@ops_rule("TakeAlongAxis")
def take_along_axis(call: Call) -> tuple:
    x = list(first_arg(call))
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
        a = normalize_axis(axis, len(x))
    x[a] = indices[a]
    return broadcast(call, [x, indices], f"`{op_name(call)}` indices must broadcast")
