"""Shape contracts: jaxtyping-style specs matched against symbolic shapes.

A *spec* is a string of whitespace-separated axes, as jaxtyping writes them::

    "batch T 400"      names bind to the model's dim on first use, then must match it
    "*batch 64"        ``*name``: any number of axes, the same sequence everywhere
    "_ T//2+1 ..."     ``_``: any one axis; ``...`` (or ``*_``): any number of axes
    "batch 2*T T1+T2"  expressions of names (``+ - * // %``, ints, parentheses)

Names bind across a whole assertion.  A contract *holds* when every axis is equal
to what the spec asks for every size of the model's named dims (where the model
runs: each dim at least its minimum, the model's own equalities true); else the
failure says which axes differ and, found by trying small sizes, a concrete size
where they do.  Nothing here reads a Keras model: :class:`ShapeTable` holds the
shapes of one model's layers (built by the API from a report's model entry).
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
from typing import Any, Sequence

from shapecheck.shapes import dims
from shapecheck.shapes.dims import Dim
from shapecheck.shapes.witness import Domain, Verdict, compare, substitute  # noqa: F401


class SpecError(ValueError):
    """A spec that is not valid syntax (or names a name it never binds)."""


class ShapeContractError(AssertionError):
    """A shape contract does not hold; the message shows where and for which sizes.

    ``failures`` holds one :class:`Entry` per shape that does not match,
    ``bindings`` what each spec name was bound to."""

    def __init__(self, message: str, failures: list["Entry"],
                 bindings: dict[str, Any]) -> None:
        super().__init__(message)
        self.failures = failures
        self.bindings = bindings


# --- specs ---------------------------------------------------------------------

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def _mod(a: Dim, b: Dim) -> Dim:
    if a is None or b is None or isinstance(a, int) and isinstance(b, int):
        return None if a is None or b is None else a % b
    return dims.norm(_sympy().Mod(a, b))


_OPS = {ast.Add: dims.add, ast.Sub: dims.sub, ast.Mult: dims.mul, ast.FloorDiv: dims.floordiv,
        ast.Mod: _mod}


@dataclass(frozen=True)
class Axis:
    """One axis of a spec: ``kind`` is "name", "int", "expr", "any" or "many"."""

    kind: str
    text: str
    name: str | None = None  # "name"; "many" (None: anonymous)
    value: int | None = None  # "int"
    tree: Any = None  # "expr": the parsed expression


def parse_spec(text: str) -> list[Axis]:
    """The axes of a spec string; :class:`SpecError` when it is not one."""
    if not isinstance(text, str):
        raise SpecError(f"a spec is a string like \"batch T 64\"; got {text!r}")
    axes: list[Axis] = []
    for token in text.split():
        if token in ("...", "*_"):
            axes.append(Axis("many", token))
        elif token.startswith("*") and _NAME.match(token[1:]):
            axes.append(Axis("many", token, name=token[1:]))
        elif token == "_":
            axes.append(Axis("any", token))
        elif token.isdigit():
            axes.append(Axis("int", token, value=int(token)))
        elif _NAME.match(token):
            axes.append(Axis("name", token, name=token))
        else:
            axes.append(Axis("expr", token, tree=_parse_expr(token, text)))
    if sum(a.kind == "many" for a in axes) > 1:
        raise SpecError(f"spec \"{text}\": at most one `*name` or `...` axis")
    return axes


def _parse_expr(token: str, text: str) -> Any:
    try:
        tree = ast.parse(token, mode="eval").body
    except SyntaxError:
        tree = None
    for node in ast.walk(tree) if tree is not None else [None]:
        ok = isinstance(node, (ast.Name, ast.BinOp, ast.UnaryOp, ast.Load, ast.USub,
                               *_OPS)) or (
            isinstance(node, ast.Constant) and type(node.value) is int)
        if not ok:
            raise SpecError(f"spec \"{text}\": `{token}` is not an axis (a name, a size, "
                            "`_`, `*name`, `...`, or an expression of names with "
                            "+ - * // %)")
    return tree


def expr_names(tree: Any) -> set[str]:
    return {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}


def eval_expr(tree: Any, env: dict[str, Dim]) -> Dim:
    """The expression's dim with its names replaced by ``env``."""
    if isinstance(tree, ast.Constant):
        return tree.value
    if isinstance(tree, ast.Name):
        return env[tree.id]
    if isinstance(tree, ast.UnaryOp):
        return dims.sub(0, eval_expr(tree.operand, env))
    return _OPS[type(tree.op)](eval_expr(tree.left, env), eval_expr(tree.right, env))


def _sympy() -> Any:
    import sympy

    return sympy


# --- the shapes of one model ----------------------------------------------------


@dataclass
class ShapeTable:
    """The symbolic output shapes of one model's layers, its inputs and outputs."""

    name: str
    layers: dict[str, list[tuple]]  # layer name -> its output shapes
    inputs: list[tuple[str, str, int]]  # (label, layer, output index)
    outputs: list[tuple[str, str, int]]
    domain: Domain = field(default_factory=Domain)
    keyed_inputs: bool = False  # the model takes a dict (labels are its keys)
    keyed_outputs: bool = False

    def shape(self, layer: str, index: int = 0) -> tuple:
        return self.layers[layer][index]


# --- matching -------------------------------------------------------------------


@dataclass
class Column:
    """One spec axis against the model's axes it covers."""

    axis: Axis
    start: int  # index of the first model axis it covers
    got: list[Dim]
    expected: list[Dim] | None = None  # what the spec asks, once known
    verdict: Verdict | None = None
    said: str = ""  # what the spec's axis is: "T is T_input_1 (bound at ...)"

    @property
    def bad(self) -> bool:
        return self.verdict is not None and not self.verdict.holds


@dataclass
class Entry:
    """One shape checked against a spec (a layer's output, a model's input); a
    :class:`ShapeContractError` holds the entries that do not match."""

    label: str  # "`decoder_out`", "output `y` (layer `dense`)"
    spec: str
    got: tuple | None
    axes: list[Axis]
    columns: list[Column] | None = None  # None: the ranks do not fit
    problem: str = ""
    quote: bool = True  # the spec was written by the user (not a consumer's shape)
    witness: dict[str, int] | None = None  # sizes where it differs

    @property
    def bad(self) -> bool:
        return bool(self.problem) or any(c.bad for c in self.columns or ())


def align(axes: list[Axis], shape: tuple) -> list[Column] | None:
    """The spec's axes over the shape's, or None when the ranks cannot fit."""
    v = next((i for i, a in enumerate(axes) if a.kind == "many"), None)
    if v is None:
        return ([Column(a, i, [d]) for i, (a, d) in enumerate(zip(axes, shape))]
                if len(axes) == len(shape) else None)
    if len(shape) < len(axes) - 1:
        return None
    stop = len(shape) - (len(axes) - v - 1)
    return ([Column(a, i, [shape[i]]) for i, a in enumerate(axes[:v])]
            + [Column(axes[v], v, list(shape[v:stop]))]
            + [Column(a, stop + j, [shape[stop + j]]) for j, a in enumerate(axes[v + 1:])])


class Matcher:
    """Binds spec names to dims across entries and checks every axis."""

    def __init__(self, domain: Domain) -> None:
        self.domain = domain
        self.bindings: dict[str, Any] = {}  # name -> Dim, or tuple for *name
        self.origin: dict[str, str] = {}  # name -> where it was bound

    def run(self, entries: list[Entry]) -> list[Entry]:
        for e in entries:
            if e.got is None:
                e.problem = "shapecheck has no shape for it"
                continue
            e.columns = align(e.axes, e.got)
            if e.columns is None:
                fixed = sum(a.kind != "many" for a in e.axes)
                want = f"{fixed}" + (" or more" if fixed < len(e.axes) else "")
                e.problem = (f"rank: the spec has {want} axes, the shape has "
                             f"{len(e.got)}")
                continue
            for c in e.columns:
                if c.axis.kind != "expr":
                    self.plain(e, c)
        for e in entries:  # expressions once every name is bound
            for c in e.columns or ():
                if c.axis.kind == "expr":
                    self.expression(e, c)
        return [self.failure(e) for e in entries if e.bad]

    def plain(self, e: Entry, c: Column) -> None:
        a = c.axis
        where = f"{e.label} axis {c.start}"
        if a.kind == "any" or a.kind == "many" and a.name is None:
            c.expected = list(c.got)
            return
        if a.kind == "int":
            self.check(c, [a.value], "")
            return
        bound = self.bindings.get(a.name)
        if isinstance(bound, tuple) != (a.kind == "many") and a.name in self.bindings:
            raise SpecError(f"spec \"{e.spec}\": `{a.name}` is used both as `*{a.name}` "
                            "and alone")
        if a.name not in self.bindings:
            self.bindings[a.name] = tuple(c.got) if a.kind == "many" else c.got[0]
            self.origin[a.name] = where if len(c.got) == 1 else (
                f"{e.label} axes {c.start}..{c.start + len(c.got) - 1}")
            c.expected = list(c.got)
            return
        if a.kind == "many":
            if len(bound) != len(c.got):
                c.expected, c.said = list(bound), f"`{a.text}` is {dims.fmt_shape(bound)}"
                c.verdict = Verdict(False, f"{len(bound)} axes, here {len(c.got)}")
            else:
                self.check(c, list(bound), f"`{a.text}` is {dims.fmt_shape(bound)}")
        else:
            self.check(c, [bound], f"`{a.name}` is {dims.fmt(bound)}")
        c.said += f" (bound at {self.origin[a.name]})"

    def expression(self, e: Entry, c: Column) -> None:
        a = c.axis
        unbound = sorted(expr_names(a.tree) - set(self.bindings))
        if len(unbound) == 1:
            self.solve(a, unbound[0], c.got[0], f"{e.label} axis {c.start}")
            unbound = sorted(expr_names(a.tree) - set(self.bindings))
        if unbound:
            raise SpecError(f"spec \"{e.spec}\": {', '.join(unbound)} in `{a.text}` is "
                            "bound nowhere (name it alone on some axis)")
        env = {n: v for n, v in self.bindings.items() if not isinstance(v, tuple)}
        self.check(c, [eval_expr(a.tree, env)], "")

    def solve(self, a: Axis, name: str, got: Dim, where: str) -> None:
        """Bind ``name`` so that ``a`` is ``got``, when that has one solution."""
        if got is None:
            return
        sp = _sympy()
        x = sp.Symbol("x_unknown", integer=True, positive=True)
        env = {n: v for n, v in self.bindings.items() if not isinstance(v, tuple)}
        env[name] = x
        try:
            sols = sp.solve(sp.Eq(sp.sympify(eval_expr(a.tree, env)), sp.sympify(got)), x)
        except (NotImplementedError, TypeError, ValueError):
            return
        if len(sols) == 1 and (isinstance(sols[0], int) or sols[0].is_integer):
            self.bindings[name] = dims.norm(sols[0])
            self.origin[name] = f"{where}, solved from `{a.text}`"

    def check(self, c: Column, expected: list[Dim], said: str) -> None:
        c.expected = expected
        c.said = said
        for want, got in zip(expected, c.got):
            v = compare(want, got, self.domain)
            if not v.holds:
                c.verdict = v
                return
        c.verdict = Verdict(True)

    def failure(self, e: Entry) -> Entry:
        """``e`` with the sizes where it differs (the first bad axis's, and the
        smallest sizes of its other dims)."""
        for c in e.columns or ():
            if c.bad and c.verdict.witness is not None:
                e.witness = dict(c.verdict.witness)
                names = {n for c in e.columns for d in [*c.got, *(c.expected or ())]
                         for n in dims.free_names(d)}
                for n in sorted(names - set(e.witness)):
                    e.witness[n] = self.domain.low(n)
                break
        return e


def render_failure(f: Entry) -> list[str]:
    """The lines of one failure, as pytest would show a failed comparison."""
    lines = [f"{f.label}: \"{f.spec}\"" if f.quote else f.label]
    got = dims.fmt_shape(f.got) if f.got is not None else "?"
    if f.columns is None:
        lines += [f"  expected: ({', '.join(f.spec.split())})", f"  got:      {got}",
                  f"  {f.problem}"]
        return lines
    last = len(f.columns) - 1
    exp = [c.axis.text + ("," if i < last else "") for i, c in enumerate(f.columns)]
    had = [", ".join(dims.fmt(d) for d in c.got) + ("," if i < last else "")
           for i, c in enumerate(f.columns)]
    widths = [max(len(a), len(b)) for a, b in zip(exp, had)]
    marks = [("^" * (max(1, len(b.rstrip(","))) if c.bad else 0)).ljust(w)
             for c, b, w in zip(f.columns, had, widths)]
    lines += [f"  expected: ({' '.join(s.ljust(w) for s, w in zip(exp, widths)).rstrip()})",
              f"  got:      ({' '.join(s.ljust(w) for s, w in zip(had, widths)).rstrip()})",
              ("             " + " ".join(marks)).rstrip()]
    return lines + [f"  {text}" for text in failure_details(f)]


def failure_details(f: Entry) -> list[str]:
    """What differs, in words: one line per axis that does not match, then the
    witness's concrete shapes (or the rank problem)."""
    if f.columns is None:
        return [f.problem]
    lines = []
    for c in f.columns:
        if not c.bad:
            continue
        span = len(c.got)
        where = (f"axis {c.start}" if span == 1 else
                 f"axes {c.start}..{c.start + span - 1}" if span else f"at axis {c.start}")
        want = c.said or (f"`{c.axis.text}` is " + ", ".join(dims.fmt(d)
                                                              for d in c.expected or ()))
        if c.axis.kind == "int":
            want = f"expected {c.axis.value}"
        text = f"{where}: {want}; got {', '.join(dims.fmt(d) for d in c.got) or 'none'}"
        lines.append(text + (f": {c.verdict.why}" if c.verdict.why else "")
                     + _eg(c.verdict.witness))
    if f.witness:
        at = ", ".join(f"{n} = {s}" for n, s in f.witness.items())
        exp = _concrete([d for c in f.columns for d in (c.expected or c.got)], f.witness)
        had = _concrete(list(f.got), f.witness)
        lines.append(f"at {at}: expected {exp}, got {had}")
    return lines


def _concrete(shape: list[Dim], point: dict[str, int]) -> str:
    values = [dims.evaluate(d, point) for d in shape]
    return dims.fmt_shape(tuple(v if v is not None else d for v, d in zip(values, shape)))


def raise_failures(head: str, failures: list[Entry], matcher: Matcher,
                   extra: Sequence[str] = (), title: str = "bindings") -> None:
    """Raise :class:`ShapeContractError` for ``failures`` (and ``extra`` lines)."""
    if not failures and not extra:
        return
    lines = [head]
    for f in failures:
        lines += render_failure(f)
    lines += list(extra)
    said = [f"{n} = {dims.fmt_shape(v) if isinstance(v, tuple) else dims.fmt(v)}"
            + (f" ({matcher.origin[n]})" if n in matcher.origin else "")
            for n, v in matcher.bindings.items()]
    lines.append(f"{title}: " + (", ".join(said) or "none"))
    raise ShapeContractError("\n".join(lines), failures, dict(matcher.bindings))


# --- assertions -----------------------------------------------------------------


def io_label(what: str, io: tuple[str, str, int], table: ShapeTable) -> str:
    label, layer, index = io
    several = len(table.layers.get(layer, ())) > 1
    tail = f" (layer `{layer}`" + (f", output {index})" if several else ")")
    return f"{what} `{label}`" + ("" if label == layer else tail)


def check_shapes(table: ShapeTable, specs: dict[str, str] | None = None,
                 inputs: Sequence[tuple[tuple[str, str, int], str]] = (),
                 outputs: Sequence[tuple[tuple[str, str, int], str]] = ()) -> dict[str, Any]:
    """Match specs against ``table``: ``specs`` by layer name, ``inputs`` and
    ``outputs`` as ``((label, layer, index), spec)`` pairs.  Returns the bindings;
    raises :class:`ShapeContractError`."""
    pairs = [(io_label("input", io, table), io[1], io[2], spec) for io, spec in inputs]
    for name, spec in (specs or {}).items():
        if name not in table.layers:
            raise SpecError(f"model `{table.name}` has no layer `{name}`")
        pairs.append((f"`{name}`", name, 0, spec))
    pairs += [(io_label("output", io, table), io[1], io[2], spec) for io, spec in outputs]
    return check_pairs(table, pairs, f"shape contract of model `{table.name}`")


def check_pairs(table: ShapeTable, pairs: Sequence[tuple[str, str, int, str]],
                head: str) -> dict[str, Any]:
    """Match ``(label, layer, output index, spec)`` pairs against ``table``, names
    bound across all of them in order.  Returns the bindings; raises
    :class:`ShapeContractError` whose first line is ``head`` and a count."""
    entries = [Entry(label, spec, table.shape(layer, index), parse_spec(spec))
               for label, layer, index, spec in pairs]
    m = Matcher(table.domain)
    failures = m.run(entries)
    raise_failures(f"{head}: {len(failures)} of {len(entries)} shape(s) do not match",
                   failures, m)
    return dict(m.bindings)


def table_from_entry(entry: Any, inputs: list | None = None,
                     outputs: list | None = None) -> ShapeTable:
    """A report's model entry (:class:`shapecheck.report.ModelEntry`) as a table;
    ``inputs``/``outputs`` are its ``(label, layer, index)`` in the model's order (by
    default its input layers and the layers no other layer reads)."""
    if not entry.checked:
        raise ValueError(f"model `{entry.name}` was not checked: {entry.reason}")
    layers = {e.name: [tuple(dims.from_json(d) for d in s) for s in e.output_shapes]
              for e in entry.layers}
    if inputs is None:
        inputs = [(e.name, e.name, 0) for e in entry.layers if e.cls == "InputLayer"]
    if outputs is None:
        read = {tuple(s) for e in entry.layers for s in e.sources}
        outputs = [(e.name, e.name, i) for n, e in enumerate(entry.layers)
                   if e.cls != "InputLayer" for i in range(len(e.output_shapes))
                   if (n, i) not in read]
    domain = Domain({n: int(m["size"]) for n, m in entry.minimums.items()},
                    [(dims.from_json(c.lhs), dims.from_json(c.rhs))
                     for c in entry.constraints if c.holds is None])
    return ShapeTable(entry.name, layers, list(inputs), list(outputs), domain)


def pair_specs(ios: list[tuple[str, str, int]], spec: Any, what: str,
         keyed: bool) -> list[tuple[tuple[str, str, int], str]]:
    """Each of a model's inputs (or outputs) with its spec: one spec for a single one,
    a list in order, or a dict by key or layer name."""
    if isinstance(spec, str):
        spec = [spec]
        if len(ios) != 1:
            raise SpecError(f"{len(ios)} {what}s, one spec: give a list or dict of specs")
    if isinstance(spec, dict):
        by = {io[0]: io for io in ios} | {io[1]: io for io in ios if not keyed}
        unknown = [k for k in spec if k not in by]
        if unknown:
            raise SpecError(f"no {what} called {', '.join(map(repr, unknown))}; the "
                            f"{what}s are {', '.join(repr(io[0]) for io in ios)}")
        return [(by[k], s) for k, s in spec.items()]
    spec = list(spec)
    if len(spec) != len(ios):
        raise SpecError(f"{len(spec)} specs for {len(ios)} {what}(s) "
                        f"({', '.join(repr(io[0]) for io in ios)})")
    return list(zip(ios, spec))


def as_spec(shape: tuple) -> str:
    """A consumer's input shape as a spec: its named dims become names to bind."""
    return " ".join(str(d) if isinstance(d, int) else d.name
                    if getattr(d, "is_Symbol", False) else "_" for d in shape)


def check_compatible(producer: ShapeTable, consumer: ShapeTable,
                     sizes: dict[str, int] | None = None) -> dict[str, Any]:
    """``producer``'s outputs fed to ``consumer``'s inputs, for every size of the
    producer's named dims (or at ``sizes`` of them); the consumer's dims as bound to
    the producer's, or ShapeContractError."""
    outs, ins = producer.outputs, consumer.inputs
    head = (f"model `{producer.name}`'s outputs do not fit model `{consumer.name}`'s "
            "inputs")
    if len(outs) != len(ins):
        raise ShapeContractError(
            f"{head}: `{producer.name}` gives {len(outs)} output(s) ({_names(outs)}), "
            f"`{consumer.name}` takes {len(ins)} input(s) ({_names(ins)})", [], {})
    if producer.keyed_outputs and consumer.keyed_inputs:
        by = {io[0]: io for io in outs}
        missing = [io[0] for io in ins if io[0] not in by]
        if missing:
            raise ShapeContractError(f"{head}: no output for input(s) "
                                     f"{', '.join(map(repr, missing))}", [], {})
        pairs = [(by[io[0]], io) for io in ins]
    else:
        pairs = list(zip(outs, ins))
    sizes = sizes or {}
    entries = []
    for out, inp in pairs:
        got = tuple(dims.bind(d, sizes) for d in producer.shape(*out[1:]))
        want = consumer.shape(*inp[1:])  # its dims are bound to what is fed
        label = (f"{io_label('output', out, producer)} -> "
                 f"{io_label('input', inp, consumer)}")
        entries.append(Entry(label, as_spec(want), got, parse_spec(as_spec(want)),
                             quote=False))
    domain = Domain({n: v for n, v in producer.domain.minimums.items() if n not in sizes},
                    [(dims.bind(a, sizes), dims.bind(b, sizes))
                     for a, b in producer.domain.equalities])
    m = Matcher(domain)
    failures = m.run(entries)
    env = {n: v for n, v in m.bindings.items() if not isinstance(v, tuple)}
    extra = []
    for lhs, rhs in consumer.domain.equalities:  # what the consumer's layers need
        names = dims.free_names(lhs) | dims.free_names(rhs)
        if names and names <= set(env):
            a, b = substitute(lhs, env), substitute(rhs, env)
            v = compare(a, b, domain)
            if not v.holds:
                extra.append(f"`{consumer.name}` needs its {dims.fmt(lhs)} == "
                             f"{dims.fmt(rhs)}; fed {dims.fmt(a)} and {dims.fmt(b)}: {v.why}"
                             + _eg(v.witness))
    for n, low in consumer.domain.minimums.items():  # windows that must fit
        d = env.get(n)
        if d is None:
            continue
        short = [p for p in domain.points(sorted(dims.free_names(d)))
                 if (dims.evaluate(d, p) or low) < low]
        if short:
            extra.append(f"`{consumer.name}` needs its {n} >= {low} (its windows must "
                         f"fit); fed {dims.fmt(d)}: shorter" + _eg(short[0]))
    raise_failures(head, failures, m, extra, f"`{consumer.name}`'s dims")
    return dict(m.bindings)


def _eg(point: dict[str, int] | None) -> str:
    return ", e.g. " + ", ".join(f"{n} = {v}" for n, v in point.items()) if point else ""


def _names(ios: list[tuple[str, str, int]]) -> str:
    return ", ".join(f"`{io[0]}`" for io in ios)
