"""Where two symbolic dims differ: the sizes a model runs at (each named dim above its
minimum, the equalities its layers need), and, for a contract that does not hold for
every size, the sizes where it fails and a witness, in words."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

from shapecheck.shapes import dims
from shapecheck.shapes.dims import Dim


def substitute(d: Dim, env: dict[str, Any]) -> Dim:
    """``d`` with the named dims in ``env`` replaced by the dims given there."""
    import sympy

    names = dims.free_names(d) & set(env)
    return dims.norm(sympy.sympify(d).subs({dims.symbol(n): env[n] for n in names})
                     ) if names else d


@dataclass
class Domain:
    """The sizes a model runs at: each named dim at least its minimum, and the
    equalities its layers need (``lhs == rhs``) true."""

    minimums: dict[str, int] = field(default_factory=dict)
    equalities: list[tuple[Dim, Dim]] = field(default_factory=list)

    def low(self, name: str) -> int:
        return max(1, self.minimums.get(name, 1))

    def substitute(self, d: Dim) -> Dim:
        """``d`` with each dim an equality ties to another replaced by it."""
        subs: dict[str, Dim] = {}
        for lhs, rhs in self.equalities:
            a, b = (lhs, rhs) if getattr(lhs, "is_Symbol", False) else (rhs, lhs)
            if getattr(a, "is_Symbol", False) and a.name not in subs and b is not None:
                subs[a.name] = b
        return substitute(d, subs)

    def allows(self, point: dict[str, int]) -> bool:
        if any(v < self.low(n) for n, v in point.items()):
            return False
        for lhs, rhs in self.equalities:
            if dims.free_names(lhs) | dims.free_names(rhs) <= set(point):
                a, b = dims.evaluate(lhs, point), dims.evaluate(rhs, point)
                if a is not None and b is not None and a != b:
                    return False
        return True

    def points(self, names: Sequence[str], extra: Iterable[int] = ()) -> list[dict[str, int]]:
        """Small sizes of ``names`` above their minimums, fewest first (and, for one
        name, the sizes in ``extra`` and beside them)."""
        names = sorted(names)
        if not names:
            return [{}]
        span = {1: 64, 2: 12, 3: 6}.get(len(names), 3)
        grid = [range(self.low(n), self.low(n) + span) for n in names]
        out = [dict(zip(names, p)) for p in itertools.product(*grid)]
        out.sort(key=lambda p: sum(p.values()))
        if len(names) == 1:
            seen = {p[names[0]] for p in out}
            for v in sorted({e + k for e in extra for k in (-1, 0, 1)} - seen):
                if v >= self.low(names[0]):
                    out.append({names[0]: v})
        return [p for p in out if self.allows(p)]


@dataclass
class Verdict:
    """Whether ``expected == got`` for every size, and if not, where not."""

    holds: bool
    why: str = ""  # "differ for T >= 2 (T = 1..64 tried)", ...
    witness: dict[str, int] | None = None


def _numbers(*ds: Dim) -> set[int]:
    """The integers in ``ds``: sizes beside which two dims may meet."""
    return {abs(int(a)) for d in ds for a in ((d,) if isinstance(d, int) else
            d.atoms() if dims.is_symbolic(d) and not isinstance(d, dims.Named) else ())
            if isinstance(a, int) or getattr(a, "is_Integer", False)}


def compare(expected: Dim, got: Dim, domain: Domain) -> Verdict:
    """``expected`` against ``got`` for every size in ``domain``."""
    if got is None or expected is None:
        return Verdict(False, "shapecheck could not infer this axis" if got is None
                       else "the spec's size is unknown")
    if dims.equal(expected, got) is True:
        return Verdict(True)
    a, b = domain.substitute(expected), domain.substitute(got)
    if dims.equal(a, b) is True:
        return Verdict(True)
    always = dims.equal(a, b) is False
    names = sorted(dims.free_names(a) | dims.free_names(b))
    tried = domain.points(names, _numbers(a, b))
    if len(names) == 1:  # where they meet beyond the small sizes (ceiling(T/2) = 50)
        seen = {p[names[0]] for p in tried}
        tried += [p for p in domain.points(names, _crossing(a, b, names[0], domain))
                  if p[names[0]] not in seen]
    differ = [p for p in tried if _differs(a, b, p)]
    if not differ:
        if not tried:
            return Verdict(False, "no size satisfies the model's own constraints")
        return Verdict(False, "not proven equal for every size (no difference at the "
                       "sizes tried)")
    return Verdict(False, _describe(names, tried, differ, always), differ[0])


def _crossing(a: Dim, b: Dim, name: str, domain: Domain, top: int = 1 << 24) -> set[int]:
    """Sizes of ``name`` around where ``a - b`` changes sign, found by bisection (the
    sides of a contract are monotone in practice: strides, sums, windows)."""

    def sign(v: int) -> int | None:
        x, y = dims.evaluate(a, {name: v}), dims.evaluate(b, {name: v})
        if x is None or y is None:
            return None
        return (x > y) - (x < y)

    lo, hi = domain.low(name), top
    s_lo, s_hi = sign(lo), sign(hi)
    if s_lo is None or s_hi is None or s_lo == s_hi or 0 in (s_lo, s_hi):
        return set()
    while hi - lo > 1:
        mid = (lo + hi) // 2
        s_mid = sign(mid)
        if s_mid is None:
            return set()
        if s_mid == s_lo:
            lo = mid
        else:
            hi = mid
    return {hi + k for k in range(-3, 4)}


def _differs(a: Dim, b: Dim, point: dict[str, int]) -> bool:
    x, y = dims.evaluate(a, point), dims.evaluate(b, point)
    return x is not None and y is not None and x != y


def _describe(names: list[str], tried: list[dict], differ: list[dict], always: bool) -> str:
    """Where two dims differ, in words, from the sizes tried."""
    if always or not names:
        return "differ for every size"
    if len(names) != 1:
        return "differ for some sizes"
    n = names[0]
    values = sorted(p[n] for p in tried)
    bad = {p[n] for p in differ}
    good = [v for v in values if v not in bad]
    if all(v in bad for v in values if v >= min(bad)):
        return f"differ for {n} >= {min(bad)} ({n} = {values[0]}..{values[-1]} tried)"
    if all(v in bad for v in values if v <= max(bad)):
        return f"differ for {n} <= {max(bad)}"
    if len(good) <= 3:
        return f"differ unless {n} = " + " or ".join(str(v) for v in good)
    for r, word in ((0, "even"), (1, "odd")):
        if bad == {v for v in values if v % 2 == r}:
            return f"differ for {word} {n}"
    return f"differ for some {n}"
