"""Fallback for calls without a rule: ask Keras at concrete probe sizes.

Each named dim gets a few distinct sizes; Keras's ``compute_output_spec`` runs
at each; an output dim that follows one named dim affinely (``T``, ``2*T + 1``)
stays symbolic, one that never changes is an int, and anything else becomes a
fresh dim with a note that it could not be kept symbolic.
"""

from __future__ import annotations

from fractions import Fraction
from typing import TYPE_CHECKING, Any

import sympy as sp

from shapecheck import dims
from shapecheck.layers.registry import Sym, flatten

if TYPE_CHECKING:  # pragma: no cover
    from shapecheck.infer import Scope

# Distinct primes per probe, large enough for usual kernels and windows.
_PROBES = (
    (67, 71, 73, 79, 83, 89, 97, 101, 103, 107, 109, 113),
    (131, 137, 139, 149, 151, 157, 163, 167, 173, 179, 181, 191),
    (197, 199, 211, 223, 227, 229, 233, 239, 241, 251, 257, 263),
)


def probe_output(scope: "Scope", op: Any, args: tuple, kwargs: dict, *, layer: str) -> list[tuple]:
    from keras import KerasTensor, tree

    syms = sorted({s for item in flatten((args, kwargs)) if isinstance(item, Sym)
                   for d in item.shape if isinstance(d, sp.Expr)
                   for s in d.free_symbols}, key=lambda s: s.name)
    assignments = []
    for probe in _PROBES:
        values = {s: probe[i % len(probe)] + 256 * (i // len(probe)) for i, s in enumerate(syms)}
        assignments.append(values)
        if not syms:
            break

    def concrete(obj: Any, values: dict) -> Any:
        if isinstance(obj, Sym):
            shape = tuple(None if d is None else int(sp.sympify(d).subs(values))
                          for d in obj.shape)
            return KerasTensor(shape, dtype=obj.dtype)
        if isinstance(obj, list):
            return [concrete(o, values) for o in obj]
        if isinstance(obj, tuple):
            return tuple(concrete(o, values) for o in obj)
        if isinstance(obj, dict):
            return {k: concrete(v, values) for k, v in obj.items()}
        return obj

    observed: list[list[tuple]] = []
    for values in assignments:
        a = concrete(args, values)
        kw = concrete(kwargs, values)
        spec = op.compute_output_spec(*a, **kw)
        observed.append([tuple(t.shape) for t in tree.flatten(spec)])

    out = []
    for i, shape0 in enumerate(observed[0]):
        fitted = []
        for axis in range(len(shape0)):
            seen = [obs[i][axis] for obs in observed]
            fitted.append(_fit(seen, syms, assignments))
        if any(d is None for d in fitted) and syms:
            scope.note(layer, "approximate",
                       f"output {i} axis {[a for a, d in enumerate(fitted) if d is None]}: "
                       "size not expressible in the input dims")
        out.append(tuple(fitted))
    return out


def _fit(seen: list, syms: list, assignments: list[dict]) -> dims.Dim:
    if any(v is None for v in seen):
        return None
    if len(set(seen)) == 1:
        return int(seen[0])
    if len(seen) < 3:
        return None
    for s in syms:
        xs = [a[s] for a in assignments]
        slope = Fraction(seen[1] - seen[0], xs[1] - xs[0])
        icpt = seen[0] - slope * xs[0]
        if all(slope * x + icpt == v for x, v in zip(xs, seen)):
            expr = sp.Rational(slope.numerator, slope.denominator) * s + \
                sp.Rational(icpt.numerator, icpt.denominator)
            if all(e.is_integer for e in [expr]) or slope.denominator == 1:
                return dims.norm(expr)
    return None
