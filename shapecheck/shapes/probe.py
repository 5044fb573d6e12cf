"""Fallback for calls without a rule: ask Keras at concrete probe sizes.

Each named dim gets a few distinct sizes; Keras's ``compute_output_spec`` runs
at each; an output dim that follows one named dim affinely (``T``, ``2*T + 1``)
stays symbolic, one that never changes is an int, and anything else becomes a
fresh dim with a note that it could not be kept symbolic.
"""

from __future__ import annotations

from typing import Any

from shapecheck.shapes import dims
from shapecheck.shapes.layers.registry import Sym, flatten


# Probe sizes: distinct, large enough for usual kernels and windows, and of
# mixed residues (all-odd sizes would make floor(T/2) look linear).  Probe k
# gives dim i the size _SIZES[(7 * k + i) % len(_SIZES)].
_SIZES = (64, 75, 89, 98, 106, 117, 131, 140, 152, 163, 178, 185, 197, 210, 221, 234,
          243, 250, 262, 271, 283, 290, 305, 316, 322, 339, 347, 358, 364, 381)
_MAX_SYMS = 8
_SMALL_PROBES = 8  # extra probes at small sizes, for input dims that saturate (Min, Max);
_STEPS = (1, 3, 4, 5, 2, 7, 8, 6, 9, 10)  # dim i takes 1 + (k + 1) * step_i mod 11: sizes
# 1..11 that no two dims share in the same order


def _cache_key(op: Any, args: tuple, kwargs: dict) -> Any:
    """Same class, same config, same symbolic inputs: same output (or None)."""
    try:
        config = dict(op.get_config())
    except Exception:  # a custom layer without a usable config
        return None
    config.pop("name", None)
    try:
        key = (type(op), repr(sorted(config.items())), _freeze((args, kwargs)))
        hash(key)
    except Exception:
        return None
    return key


def _freeze(obj: Any) -> Any:
    """A hashable stand-in for call arguments (sympy dims hash; printing them is slow)."""
    if isinstance(obj, Sym):
        return ("Sym", tuple(obj.shape), obj.dtype)
    if isinstance(obj, (list, tuple)):
        return (type(obj).__name__, tuple(_freeze(o) for o in obj))
    if isinstance(obj, dict):
        return ("dict", tuple((k, _freeze(v)) for k, v in sorted(obj.items(), key=repr)))
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    return repr(obj)


_CACHE: dict[Any, tuple[list[tuple], list[str]]] = {}


def probe_output(scope: Any, op: Any, args: tuple, kwargs: dict, *, layer: str) -> list[tuple]:
    key = _cache_key(op, args, kwargs)
    if key is not None and key in _CACHE:
        shapes, notes = _CACHE[key]
        for message in notes:
            scope.note(layer, "approximate", message)
        return shapes
    before = len(scope.notes)
    shapes = _probe(scope, op, args, kwargs, layer=layer)
    if key is not None:
        if len(_CACHE) > 4096:
            _CACHE.clear()
        _CACHE[key] = (shapes, [n.message for n in scope.notes[before:]])
    return shapes


def _probe(scope: Any, op: Any, args: tuple, kwargs: dict, *, layer: str) -> list[tuple]:
    from keras import KerasTensor, tree

    in_dims = [d for item in flatten((args, kwargs)) if isinstance(item, Sym)
               for d in item.shape if dims.is_symbolic(d)]
    if all(isinstance(d, dims.Named) for d in in_dims):  # no algebra (yet): no sympy
        syms = sorted(set(in_dims), key=lambda s: s.name)
    else:
        syms = sorted({s for d in in_dims for s in d.free_symbols}, key=lambda s: s.name)
    # The input dims themselves are the natural terms of an output size
    # (a concatenation adds them, a reshape divides them).
    terms = list(dict.fromkeys(d for d in in_dims if not d.is_Symbol))
    count = 1 if not syms else max(4, min(len(syms) + len(terms), _MAX_SYMS) + 2)
    assignments = [{s: _SIZES[(7 * k + i) % len(_SIZES)] for i, s in enumerate(syms)}
                   for k in range(count)]

    def concrete(obj: Any, values: dict) -> Any:
        if isinstance(obj, Sym):
            shape = tuple(None if d is None else _value(d, values) for d in obj.shape)
            return KerasTensor(shape, dtype=obj.dtype)
        if isinstance(obj, list):
            return [concrete(o, values) for o in obj]
        if isinstance(obj, tuple):
            return tuple(concrete(o, values) for o in obj)
        if isinstance(obj, dict):
            return {k: concrete(v, values) for k, v in obj.items()}
        return obj

    def run(values: dict) -> list[tuple]:
        spec = op.compute_output_spec(*concrete(args, values), **concrete(kwargs, values))
        return [tuple(t.shape) for t in tree.flatten(spec)]

    observed: list[list[tuple]] = []
    inputs = [item for item in flatten((args, kwargs)) if isinstance(item, Sym)]
    if syms and inputs and all(tuple(i.shape) == tuple(inputs[0].shape) for i in inputs):
        # shape-preserving (scales, activations, x + a * y of equal shapes): two probes tell
        for values in assignments[:2]:
            observed.append(run(values))
        given = [concrete(inputs[0], v).shape for v in assignments[:2]]
        if all(obs == [tuple(g)] for obs, g in zip(observed, given)):
            return [tuple(inputs[0].shape)]
    for values in assignments[len(observed):]:
        observed.append(run(values))
    # An input dim such as Min(3, W - 1) is the same at every probe size: probe again at
    # small sizes where it varies, so that an output passing it through is not taken
    # for a constant.
    if any(t.free_symbols and len({int(t.xreplace(a)) for a in assignments}) == 1
           for t in terms):
        for k in range(_SMALL_PROBES):
            values = {s: 1 + (k + 1) * _STEPS[i % len(_STEPS)] % 11 for i, s in enumerate(syms)}
            if any(int(d.xreplace(values)) < 1 for d in in_dims):
                continue
            try:
                shapes = run(values)
            except Exception:  # a window that does not fit a small size
                continue
            if [len(x) for x in shapes] == [len(x) for x in observed[0]]:
                assignments.append(values)
                observed.append(shapes)

    out = []
    for i, shape0 in enumerate(observed[0]):
        fitted = []
        for axis in range(len(shape0)):
            seen = [obs[i][axis] for obs in observed]
            fitted.append(_fit(seen, syms, assignments, terms))
        if any(d is None for d in fitted) and syms:
            scope.note(layer, "approximate",
                       f"output {i} axis {[a for a, d in enumerate(fitted) if d is None]}: "
                       "size not expressible in the input dims")
        out.append(tuple(fitted))
    return out


def _value(d: dims.Dim, values: dict) -> int:
    """The size of ``d`` at one probe (``values``: named dim -> size)."""
    if isinstance(d, int):
        return d
    if isinstance(d, dims.Named) and d in values:
        return int(values[d])
    import sympy as sp

    return int(sp.sympify(d).xreplace(values))


def _as_symbols(syms: list, assignments: list[dict]) -> tuple[list, list[dict]]:
    """``syms`` and ``assignments`` with :class:`dims.Named` dims as sympy symbols."""
    if not any(isinstance(s, dims.Named) for s in syms):
        return syms, assignments
    to = {s: dims.symbol(s.name) if isinstance(s, dims.Named) else s for s in syms}
    return [to[s] for s in syms], [{to[s]: v for s, v in a.items()} for a in assignments]


def _fit(seen: list, syms: list, assignments: list[dict], terms: list) -> dims.Dim:
    """An expression in the named dims that reproduces every probe, or None."""
    if any(v is None for v in seen):
        return None
    if len(set(seen)) == 1:
        return int(seen[0])
    if len(assignments) < 3:
        return None
    for t in [*syms, *terms]:  # the commonest case: an input dim passed through
        if all(_value(t, a) == v for a, v in zip(assignments, seen)):
            return dims.norm(t)
    import sympy as sp

    syms, assignments = _as_symbols(syms, assignments)
    cap = max(seen)  # an input dim cut to a length (a slice ``[:c]``): Min(c, t)
    for t in [*syms, *terms]:
        if all(min(cap, int(t.xreplace(a))) == v for a, v in zip(assignments, seen)):
            return dims.norm(sp.Min(cap, t))
    return (_linear(seen, syms, assignments)
            or _linear(seen, syms + terms, assignments)
            or _floor_div(seen, syms, assignments))


def _linear(seen: list, syms: list, assignments: list[dict]) -> dims.Dim:
    """``sum(a_i * t_i) + b`` with integer coefficients, checked on every probe."""
    import sympy as sp

    if not syms or len(assignments) < len(syms) + 2:
        return None
    rows = [[int(sp.sympify(s).xreplace(a)) for s in syms] + [1] for a in assignments]
    # probes that tell the terms apart (a term such as Min(25, L) is constant over the
    # large probe sizes, and only the small ones separate it from the constant)
    picked: list[int] = []
    for i in range(len(rows)):
        if sp.Matrix([rows[j] for j in picked + [i]]).rank() == len(picked) + 1:
            picked.append(i)
            if len(picked) == len(syms) + 1:
                break
    if len(picked) < len(syms) + 1:
        return None
    m = sp.Matrix([rows[i] for i in picked])
    coef = m.solve(sp.Matrix([seen[i] for i in picked]))
    expr = sum((c * s for c, s in zip(coef, syms)), sp.Integer(0)) + coef[-1]
    if not all(c.is_integer for c in coef):
        return None
    expr = sp.expand(expr)
    if any(sp.Integer(v) != expr.xreplace(a) for v, a in zip(seen, assignments)):
        return None
    return dims.norm(expr)


def _floor_div(seen: list, syms: list, assignments: list[dict]) -> dims.Dim:
    """``floor((s + b) / c)``: strided windows and poolings over one dim."""
    import sympy as sp

    for s in syms:
        xs = [a[s] for a in assignments]
        for c in range(2, 9):
            low = c * seen[0] - xs[0]
            for b in range(low, low + c):
                if all((x + b) // c == v for x, v in zip(xs, seen)):
                    return dims.norm(sp.floor((s + b) / sp.Integer(c)))
    return None
