"""Symbolic dimensions: ints, named dims, sympy expressions over named dims, or None.

A *dim* is one of
- ``int``: known size;
- :class:`Named`: one named unknown dim on its own (``batch``, ``T``);
- ``sympy.Expr``: a size that depends on named unknown dims (``T``, ``floor(T/2)``);
- ``None``: truly unknown (no rule could keep it symbolic).

A *shape* is a tuple of dims.  Nothing here imports Keras.

SymPy is imported only when a dim needs algebra: most models only ever have
the ``batch`` dim unknown, and it is compared, printed and bound, never
computed with.  A :class:`Named` dim equals (and hashes like) the sympy
symbol of the same name (:func:`symbol`), and turns into it for arithmetic,
sympy functions and sympy attributes.
"""

from __future__ import annotations

import keyword
import re
import sys
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Iterable, Sequence, Union

if TYPE_CHECKING:  # pragma: no cover
    import sympy

Dim = Union[int, "Named", "sympy.Expr", None]
Shape = tuple  # tuple[Dim, ...]

_IDENT = re.compile(r"[^0-9A-Za-z_]+")


_CHECKED: list[bool] = []


def _sympy() -> Any:
    """The sympy module, imported on first use.

    The first time, check that a Named dim hashed before sympy was imported hashes
    as its symbol does (the same in sympy 1.12 to 1.14): a sympy that hashes symbols
    otherwise would make equal dims miss each other in dicts, so it is refused loudly.
    """
    import sympy

    if not _CHECKED:
        _CHECKED.append(True)
        probe = sympy.Symbol("batch", integer=True, positive=True)
        if hash(probe) != hash(("Symbol", "batch") + _SYMBOL_ASSUMPTIONS):
            raise RuntimeError(f"sympy {sympy.__version__} hashes symbols in a way this "
                               "shapecheck does not know; please report it")
    return sympy


def _loaded() -> Any:
    """The sympy module if it is imported already, else None (then no dim is a sympy
    object)."""
    return sys.modules.get("sympy")


def _is_expr(d: object) -> bool:
    sp = _loaded()
    return sp is not None and isinstance(d, sp.Expr)


def _parses_as_symbol(name: str) -> bool:
    sp = _sympy()
    try:
        return sp.sympify(name) == sp.Symbol(name)
    except (sp.SympifyError, SyntaxError, TypeError, AttributeError):
        return False


# Names that sympify reads as a symbol, known without sympy: the batch and the axis
# letters inference names input dims after, alone or with a suffix (``T_enc``).  No
# name in sympify's namespace has that form (tests check it).
_PLAIN = re.compile(r"(?:batch|[LTFHWCD])(?:_[0-9A-Za-z_]*[0-9A-Za-z])?")


def identifier(text: str) -> str:
    """A plain identifier that ``sympy.sympify`` reads back as a symbol."""
    if _PLAIN.fullmatch(text):
        return text
    name = _IDENT.sub("_", text).strip("_") or "d"
    if name[0].isdigit():
        name = "d_" + name
    while keyword.iskeyword(name) or not _parses_as_symbol(name):
        name += "_"
    return name


@lru_cache(maxsize=None)
def symbol(name: str) -> "sympy.Symbol":
    """The sympy symbol of the dim called ``name`` (a positive integer)."""
    return _sympy().Symbol(name, integer=True, positive=True)


# How sympy hashes ``symbol(name)`` (its class name, the name, its assumptions), for
# hashing a Named dim before sympy is imported; once it is, the symbol's own hash is
# used.  Tests check that the two agree.
_SYMBOL_ASSUMPTIONS = (
    ("algebraic", True), ("commutative", True), ("complex", True),
    ("extended_negative", False), ("extended_nonnegative", True),
    ("extended_nonpositive", False), ("extended_nonzero", True),
    ("extended_positive", True), ("extended_real", True), ("finite", True),
    ("hermitian", True), ("imaginary", False), ("infinite", False), ("integer", True),
    ("irrational", False), ("negative", False), ("noninteger", False),
    ("nonnegative", True), ("nonpositive", False), ("nonzero", True), ("positive", True),
    ("rational", True), ("real", True), ("transcendental", False), ("zero", False))


def _binary(op: str) -> Any:
    def method(self: "Named", other: Any) -> Any:
        if isinstance(other, Named):
            other = symbol(other.name)
        return getattr(symbol(self.name), op)(other)

    method.__name__ = op
    return method


def _unary(op: str) -> Any:
    def method(self: "Named", *args: Any) -> Any:
        return getattr(symbol(self.name), op)(*args)

    method.__name__ = op
    return method


class Named:
    """The named dim ``name`` on its own, without sympy.

    Equal to, and hashed like, ``symbol(name)``; arithmetic, comparisons by size,
    sympy functions (through ``_sympy_``) and any sympy attribute turn it into that
    symbol.  Make one with :func:`named`.
    """

    __slots__ = ("name",)

    # the assumptions of symbol(): read without sympy
    is_Symbol = True
    is_Atom = True
    is_Integer = False
    is_Number = False
    is_Rational = False
    is_number = False
    is_integer = True
    is_positive = True

    def __init__(self, name: str) -> None:
        self.name = name

    def _sympy_(self) -> Any:
        return symbol(self.name)

    def __getattr__(self, attr: str) -> Any:
        if attr.startswith("_"):  # sympy's own protocol (_op_priority): see _sympy_
            raise AttributeError(attr)
        return getattr(symbol(self.name), attr)

    def __reduce__(self) -> tuple:
        return (named, (self.name,))

    def __repr__(self) -> str:
        return self.name

    __str__ = __repr__

    def __format__(self, spec: str) -> str:
        return self.name if not spec else format(symbol(self.name), spec)

    def __eq__(self, other: object) -> Any:
        if isinstance(other, Named):
            return self.name == other.name
        sp = _loaded()
        if sp is not None and isinstance(other, sp.Basic):
            return other == symbol(self.name)
        return NotImplemented

    def __ne__(self, other: object) -> Any:
        eq = self.__eq__(other)
        return eq if eq is NotImplemented else not eq

    def __hash__(self) -> int:
        if _loaded() is not None:
            return hash(symbol(self.name))
        return hash(("Symbol", self.name) + _SYMBOL_ASSUMPTIONS)


for _op in ("__add__", "__radd__", "__sub__", "__rsub__", "__mul__", "__rmul__",
            "__truediv__", "__rtruediv__", "__floordiv__", "__rfloordiv__", "__mod__",
            "__rmod__", "__pow__", "__rpow__", "__divmod__", "__rdivmod__", "__lt__", "__le__",
            "__gt__", "__ge__"):
    setattr(Named, _op, _binary(_op))
for _op in ("__neg__", "__pos__", "__abs__", "__int__", "__float__", "__complex__",
            "__trunc__", "__round__"):
    setattr(Named, _op, _unary(_op))
del _op


_NAMED: dict[str, Named] = {}


def named(name: str) -> Named:
    """The dim called ``name`` (equal to ``symbol(name)``; no sympy needed)."""
    d = _NAMED.get(name)
    if d is None:
        d = _NAMED[name] = Named(name)
    return d


def norm(d: object) -> Dim:
    """Normalize to int / Named / Expr / None (sympy integers become ints)."""
    if d is None or isinstance(d, bool):
        return None if d is None else int(d)
    if isinstance(d, (int, Named)):
        return d
    sp = _loaded()
    if sp is not None and isinstance(d, sp.Basic):
        if d.is_Integer:
            return int(d)
        return d
    if hasattr(d, "__index__"):
        return int(d)  # numpy ints
    raise TypeError(f"not a dim: {d!r}")


def is_int(d: Dim) -> bool:
    return isinstance(d, int)


def is_symbolic(d: Dim) -> bool:
    return isinstance(d, Named) or _is_expr(d)


def free_names(d: Dim) -> set[str]:
    if isinstance(d, Named):
        return {d.name}
    if _is_expr(d):
        return {s.name for s in d.free_symbols}
    return set()


# --- arithmetic ---------------------------------------------------------------


def add(*ds: Dim) -> Dim:
    if any(d is None for d in ds):
        return None
    if all(isinstance(d, int) for d in ds):
        return sum(ds)  # type: ignore[arg-type]
    return norm(_sympy().Add(*ds))


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
    return norm(_sympy().Mul(*ds))


def prod(ds: Iterable[Dim]) -> Dim:
    return mul(*ds) if ds else 1


def floordiv(a: Dim, b: Dim) -> Dim:
    if a is None or b is None:
        return None
    if isinstance(a, int) and isinstance(b, int):
        return a // b
    if b == 1:
        return a
    sp = _sympy()
    return norm(sp.floor(sp.Rational(1, 1) * a / b))


def ceildiv(a: Dim, b: Dim) -> Dim:
    if a is None or b is None:
        return None
    if isinstance(a, int) and isinstance(b, int):
        return -(-a // b)
    if b == 1:
        return a
    sp = _sympy()
    return norm(sp.ceiling(sp.Rational(1, 1) * a / b))


def exact_div(a: Dim, b: Dim) -> Dim:
    """``a / b`` where the division must be exact (Reshape's ``-1``)."""
    if a is None or b is None:
        return None
    if isinstance(a, int) and isinstance(b, int):
        return a // b if b and a % b == 0 else None
    sp = _sympy()
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
    if isinstance(a, Named) and isinstance(b, (Named, int)) or (
            isinstance(b, Named) and isinstance(a, int)):
        # one named dim against itself, another or a size: only itself is equal for
        # every size (what the algebra below finds too)
        return True if a == b else None
    sp = _sympy()
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


def _vanishes(expr: "sympy.Expr") -> bool:
    """Whether ``expr`` is zero for every size of its dims (tested on many sizes)."""
    syms = sorted(expr.free_symbols, key=lambda s: s.name)
    if not syms:
        return expr == 0
    fn = _sympy().lambdify(syms, expr, modules="math")
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
    if isinstance(d, Named):
        value = bindings.get(d.name)
        if value is None or type(value) is int:
            return value
    fn, names = _compiled(d)
    if fn is not None and all(type(bindings.get(n)) is int for n in names):
        try:  # the same value as sympy's, without building expressions
            value = fn(bindings)
        except ZeroDivisionError:  # sympy's own answer (zoo, nan or its error)
            value = None
        if type(value) is int:
            return value
        if value is not None:
            return int(value) if value.denominator == 1 else None
    subs = {s: bindings[s.name] for s in d.free_symbols if s.name in bindings}
    if len(subs) < len(d.free_symbols):
        return None
    value = d.subs(subs)
    return int(value) if value.is_Integer else None


@lru_cache(maxsize=4096)
def _compiled(expr: Any) -> tuple[Any, tuple[str, ...]]:
    """:func:`_exact` of ``expr`` and the names of its dims."""
    return _exact(expr), tuple(sorted(s.name for s in expr.free_symbols))


def _exact(expr: Any) -> Any:
    """``expr`` as a Python function of the bindings computing with ints and exact
    fractions (``floor``, ``ceiling``, ``Mod``, ``Min``, ``Max``, ``Abs``, integer
    powers), or None for anything else (then :func:`evaluate` asks sympy).  Much
    faster than ``subs`` where a rule evaluates one dim at a thousand sizes."""
    import math
    from fractions import Fraction

    sp = _sympy()
    if expr.is_Integer:
        c = int(expr)
        return lambda b: c
    if expr.is_Rational:
        q = Fraction(int(expr.p), int(expr.q))
        return lambda b: q
    if expr.is_Symbol:
        name = expr.name
        return lambda b: b[name]
    args = [_exact(a) for a in expr.args]
    if any(f is None for f in args):
        return None
    if expr.is_Add:
        return lambda b: sum(f(b) for f in args)
    if expr.is_Mul:
        return lambda b: math.prod(f(b) for f in args)
    if expr.is_Pow:
        base, exp = expr.args
        if not exp.is_Integer:
            return None
        fb, e = args[0], int(exp)
        return (lambda b: fb(b) ** e) if e >= 0 else (lambda b: Fraction(fb(b)) ** e)
    one = {sp.floor: math.floor, sp.ceiling: math.ceil, sp.Abs: abs}.get(expr.func)
    if one is not None and len(args) == 1:
        f = args[0]
        return lambda b: one(f(b))
    if expr.func is sp.Mod and len(args) == 2:
        fa, fm = args
        return lambda b: fa(b) % fm(b)
    many = {sp.Min: min, sp.Max: max}.get(expr.func)
    if many is not None:
        return lambda b: many(f(b) for f in args)
    return None


def bind(d: Dim, bindings: dict[str, int] | None) -> Dim:
    """``d`` with the named dims in ``bindings`` replaced by their sizes."""
    if not bindings or not is_symbolic(d):
        return d
    if isinstance(d, Named):
        value = bindings.get(d.name, d)
        if value is d or type(value) is int:
            return value
    subs = {s: bindings[s.name] for s in d.free_symbols if s.name in bindings}
    return norm(d.subs(subs)) if subs else d


# --- display ------------------------------------------------------------------


@lru_cache(maxsize=None)
def _printer() -> Any:
    """Writes ``floor((T - 3)/2)`` rather than sympy's ``floor(T/2 - 3/2)``."""
    sp = _sympy()
    from sympy.printing.str import StrPrinter

    class _Printer(StrPrinter):
        def _print_floor(self, e: sp.Expr) -> str:
            return f"floor({self._print(sp.together(e.args[0]))})"

        def _print_ceiling(self, e: sp.Expr) -> str:
            return f"ceiling({self._print(sp.together(e.args[0]))})"

    return _Printer()


def fmt(d: Dim) -> str:
    if d is None:
        return "?"
    if isinstance(d, (int, Named)):
        return str(d)
    return _printer().doprint(d)


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
    sp = _sympy()
    expr = sp.sympify(v)
    return norm(expr.subs({s: symbol(s.name) for s in expr.free_symbols}))
