"""Symbolic dimensions: ints, sympy expressions over named dims, or None.

A *dim* is one of
- ``int``: known size;
- ``sympy.Expr``: a size that depends on named unknown dims (``T``, ``floor(T/2)``);
- ``None``: truly unknown (no rule could keep it symbolic).

A *shape* is a tuple of dims.  Nothing here imports Keras.
"""

from __future__ import annotations

import keyword
import re
from functools import lru_cache
from typing import Iterable, Sequence, Union

import sympy as sp
from sympy.printing.str import StrPrinter

Dim = Union[int, sp.Expr, None]
Shape = tuple  # tuple[Dim, ...]

_IDENT = re.compile(r"[^0-9A-Za-z_]+")


def _parses_as_symbol(name: str) -> bool:
    try:
        return sp.sympify(name) == sp.Symbol(name)
    except (sp.SympifyError, SyntaxError, TypeError, AttributeError):
        return False


def identifier(text: str) -> str:
    """A plain identifier that ``sympy.sympify`` reads back as a symbol."""
    name = _IDENT.sub("_", text).strip("_") or "d"
    if name[0].isdigit():
        name = "d_" + name
    while keyword.iskeyword(name) or not _parses_as_symbol(name):
        name += "_"
    return name


@lru_cache(maxsize=None)
def symbol(name: str) -> sp.Symbol:
    """The dim symbol called ``name`` (a positive integer)."""
    return sp.Symbol(name, integer=True, positive=True)


def norm(d: object) -> Dim:
    """Normalize to int / Expr / None (sympy integers become ints)."""
    if d is None or isinstance(d, bool):
        return None if d is None else int(d)
    if isinstance(d, int):
        return d
    if isinstance(d, sp.Basic):
        if d.is_Integer:
            return int(d)
        return d
    if hasattr(d, "__index__"):
        return int(d)  # numpy ints
    raise TypeError(f"not a dim: {d!r}")


def is_int(d: Dim) -> bool:
    return isinstance(d, int)


def is_symbolic(d: Dim) -> bool:
    return isinstance(d, sp.Expr)


def free_names(d: Dim) -> set[str]:
    if isinstance(d, sp.Expr):
        return {s.name for s in d.free_symbols}
    return set()


# --- arithmetic ---------------------------------------------------------------


def add(*ds: Dim) -> Dim:
    if any(d is None for d in ds):
        return None
    if all(isinstance(d, int) for d in ds):
        return sum(ds)  # type: ignore[arg-type]
    return norm(sp.Add(*ds))


def sub(a: Dim, b: Dim) -> Dim:
    if a is None or b is None:
        return None
    if isinstance(a, int) and isinstance(b, int):
        return a - b
    return norm(a - b)


def mul(*ds: Dim) -> Dim:
    if any(d == 0 for d in ds if isinstance(d, int)):
        return 0
    if any(d is None for d in ds):
        return None
    if all(isinstance(d, int) for d in ds):
        out = 1
        for d in ds:
            out *= d  # type: ignore[operator]
        return out
    return norm(sp.Mul(*ds))


def prod(ds: Iterable[Dim]) -> Dim:
    return mul(*ds) if ds else 1


def floordiv(a: Dim, b: Dim) -> Dim:
    if a is None or b is None:
        return None
    if isinstance(a, int) and isinstance(b, int):
        return a // b
    if b == 1:
        return a
    return norm(sp.floor(sp.Rational(1, 1) * a / b))


def ceildiv(a: Dim, b: Dim) -> Dim:
    if a is None or b is None:
        return None
    if isinstance(a, int) and isinstance(b, int):
        return -(-a // b)
    if b == 1:
        return a
    return norm(sp.ceiling(sp.Rational(1, 1) * a / b))


def exact_div(a: Dim, b: Dim) -> Dim:
    """``a / b`` where the division must be exact (Reshape's ``-1``)."""
    if a is None or b is None:
        return None
    if isinstance(a, int) and isinstance(b, int):
        return a // b if b and a % b == 0 else None
    return norm(sp.cancel(sp.Rational(1, 1) * a / b))


def conv_length(n: Dim, kernel: int, stride: int = 1, dilation: int = 1,
                padding: str = "valid") -> Dim:
    """Output length of a convolution or pooling window along one axis."""
    padding = padding.lower()
    if padding in ("same", "causal"):
        return ceildiv(n, stride)
    span = dilation * (kernel - 1) + 1
    return add(floordiv(sub(n, span), stride), 1)


def conv_transpose_length(n: Dim, kernel: int, stride: int = 1, dilation: int = 1,
                          padding: str = "valid",
                          output_padding: int | None = None) -> Dim:
    """Output length of a transposed convolution (Keras's formula)."""
    if n is None:
        return None
    span = dilation * (kernel - 1) + 1
    if padding.lower() == "valid":
        extra = max(span, stride) - span if output_padding is None else output_padding
        return add(mul(sub(n, 1), stride), span + extra)
    if output_padding is None:
        return mul(n, stride)
    return add(mul(sub(n, 1), stride), span % 2 + output_padding)


# --- comparison ---------------------------------------------------------------


def equal(a: Dim, b: Dim) -> bool | None:
    """True / False when decided for every size of the named dims; else None."""
    if a is None or b is None:
        return None
    if isinstance(a, int) and isinstance(b, int):
        return a == b
    diff = sp.sympify(a) - sp.sympify(b)
    if diff == 0:
        return True
    if diff.is_number:
        return False
    if _vanishes(diff):
        return True
    return None


# Sizes with mixed residues, for deciding identities sympy cannot simplify
# (floor(T/2 + 1/2) == ceiling(T/2) for integer T).
_SAMPLES = (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 16, 17, 24, 31, 32, 33, 63, 64,
            65, 97, 100, 127, 128, 255, 256, 360, 1000, 1001, 4096)


def _vanishes(expr: sp.Expr) -> bool:
    """Whether ``expr`` is zero for every size of its dims (tested on many sizes)."""
    syms = sorted(expr.free_symbols, key=lambda s: s.name)
    if not syms:
        return expr == 0
    fn = sp.lambdify(syms, expr, modules="math")
    n = len(_SAMPLES)
    for k in range(n * 2):
        point = [_SAMPLES[(k + 5 * i) % n] for i in range(len(syms))]
        if fn(*point) != 0:
            return False
    return True


def evaluate(d: Dim, bindings: dict[str, int]) -> int | None:
    """The dim's value under ``bindings`` (dim name -> size), or None."""
    if d is None:
        return None
    if isinstance(d, int):
        return d
    subs = {s: bindings[s.name] for s in d.free_symbols if s.name in bindings}
    if len(subs) < len(d.free_symbols):
        return None
    value = d.subs(subs)
    return int(value) if value.is_Integer else None


def bind(d: Dim, bindings: dict[str, int] | None) -> Dim:
    """``d`` with the named dims in ``bindings`` replaced by their sizes."""
    if not bindings or not isinstance(d, sp.Expr):
        return d
    subs = {s: bindings[s.name] for s in d.free_symbols if s.name in bindings}
    return norm(d.subs(subs)) if subs else d


# --- display ------------------------------------------------------------------


class _Printer(StrPrinter):
    """Writes ``floor((T - 3)/2)`` rather than sympy's ``floor(T/2 - 3/2)``."""

    def _print_floor(self, e: sp.Expr) -> str:
        return f"floor({self._print(sp.together(e.args[0]))})"

    def _print_ceiling(self, e: sp.Expr) -> str:
        return f"ceiling({self._print(sp.together(e.args[0]))})"


_PRINTER = _Printer()


def fmt(d: Dim) -> str:
    if d is None:
        return "?"
    if isinstance(d, int):
        return str(d)
    return _PRINTER.doprint(d)


def fmt_shape(shape: Sequence[Dim] | None) -> str:
    if shape is None:
        return "?"
    inner = ", ".join(fmt(d) for d in shape)
    return f"({inner},)" if len(shape) == 1 else f"({inner})"


def to_json(d: Dim) -> int | str | None:
    if d is None or isinstance(d, int):
        return d
    return fmt(d)


def from_json(v: int | str | None) -> Dim:
    if v is None or isinstance(v, int):
        return v
    expr = sp.sympify(v)
    return norm(expr.subs({s: symbol(s.name) for s in expr.free_symbols}))
