"""The smallest input sizes at which every window of a model fits (named dims solved by scan).
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Any, Callable

from shapecheck.rules.context import ModelContext
from shapecheck.shapes import dims


_SCAN = 4096
_LIMIT = 1 << 40


def input_dim_names(ctx: ModelContext) -> set[str]:
    """Named non-batch dims of the model's inputs."""
    out: set[str] = set()
    for call in ctx.model_inputs():
        for shape in ctx.out_shapes(call):
            for d in shape[1:]:
                out |= dims.free_names(d)
    return out - {"batch"}


def exact_fn(expr: Any) -> Callable[[dict[str, int]], Fraction]:
    """``expr`` as a function of dim sizes, in exact rational arithmetic (floats
    round ``floor(14/3 - 2/3)`` down to 3)."""
    if isinstance(expr, int) or expr.is_Integer:
        value = Fraction(int(expr))
        return lambda env: value
    if expr.is_Rational:
        value = Fraction(int(expr.p), int(expr.q))
        return lambda env: value
    if expr.is_Symbol:
        name = expr.name
        return lambda env: Fraction(env[name])
    parts = [exact_fn(a) for a in expr.args]
    if expr.is_Add:
        return lambda env: sum((p(env) for p in parts), Fraction(0))
    if expr.is_Mul:
        return lambda env: math.prod((p(env) for p in parts), start=Fraction(1))
    if expr.is_Pow and expr.exp.is_Integer:
        base, exp = parts[0], int(expr.exp)
        return lambda env: base(env) ** exp
    import sympy as sp

    rounding = {sp.floor: math.floor, sp.ceiling: math.ceil}.get(expr.func)
    if rounding is not None:
        inner = parts[0]
        return lambda env: Fraction(rounding(inner(env)))
    if expr.func in (sp.Max, sp.Min):
        pick = max if expr.func is sp.Max else min
        return lambda env: pick(p(env) for p in parts)
    raise ValueError(f"cannot evaluate {expr}")


def _fits_fn(d: Any, name: str) -> Callable[[int], bool]:
    """``v -> d(v) >= 1`` for a requirement over the one dim ``name``."""
    try:
        fn = exact_fn(d)
    except ValueError:
        return lambda v: (dims.evaluate(d, {name: v}) or 0) >= 1
    return lambda v: fn({name: v}) >= 1


def first_fit(fits: Callable[[int], bool], start: int = 1) -> int | None:
    """The smallest ``v >= start`` with ``fits(v)``: a scan, then doubling and bisection."""
    for v in range(start, max(start, _SCAN) + 1):
        if fits(v):
            return v
    lo, hi = max(start, _SCAN), max(start, _SCAN) * 2
    while not fits(hi):
        lo, hi = hi, hi * 2
        if hi > _LIMIT:
            return None
    while hi - lo > 1:  # fits(hi), not fits(lo); requirements are monotone in practice
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if fits(mid) else (mid, hi)
    return hi


def minimum_sizes(ctx: ModelContext) -> dict[str, tuple[int, str]]:
    """``dim -> (smallest size, layer that sets it)`` for each variable input dim that
    a window or crop bounds from below (e.g. ``{"H": (32, "conv5_block3_2_conv")}``).

    Only requirements that depend on that one dim count; a dim every size of which
    fits is left out.
    """
    names = input_dim_names(ctx)
    groups: dict[str, list[Any]] = {}
    for req in ctx.scope.requirements:
        free = dims.free_names(req.dim)
        if req.holds is None and len(free) == 1 and free <= names:
            groups.setdefault(next(iter(free)), []).append(req)
    out: dict[str, tuple[int, str]] = {}
    for name, reqs in groups.items():
        found = _minimum_for(name, reqs)
        if found is not None and found[0] > 1:
            out[name] = found
    return dict(sorted(out.items()))


def _minimum_for(name: str, reqs: list[Any]) -> tuple[int, str] | None:
    unique: dict[Any, Any] = {}  # one per expression: many layers repeat a window
    for r in reqs:
        unique.setdefault(r.dim, r)
    reqs = list(unique.values())
    fns = [_fits_fn(r.dim, name) for r in reqs]
    best: tuple[int, str] | None = None
    for req, fits in zip(reqs, fns):
        v = first_fit(fits)
        if v is None:
            return None
        if best is None or v > best[0]:
            best = (v, req.layer)
    assert best is not None
    value = first_fit(lambda v: all(f(v) for f in fns), best[0])
    if value is None:
        return None
    if not all((dims.evaluate(r.dim, {name: value}) or 0) >= 1 for r in reqs):
        return None
    return value, best[1]
