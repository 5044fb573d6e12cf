"""Random valid Keras 3 functional graphs, emitted as Python source.

The generator knows nothing of shapecheck: it tracks every tensor's shape
itself, as the concrete size of each axis at ``K`` probe assignments of the
variable input dims (``T``, ``H``, ``W`` ...), with Keras's own formulas for
windows, strides and padding.  An axis whose size differs between probes is
one Keras sees as ``None``.  A layer is only added where it builds in Keras
and runs at every probe assignment: windows fit, merged tensors agree, layers
that create weights see fixed sizes.

Choices go through a :class:`Chooser`, so the same code serves hypothesis
(``DrawChooser``, shrinkable) and a seeded ``random.Random`` (``RandomChooser``,
for long runs).  :func:`generate` returns a :class:`GraphSpec`, whose
``source()`` is a self-contained script building ``model``; ``SIZES`` in
that script gives the probe sizes of each variable input axis, so a failure
can be replayed (:func:`tests.fuzz.harness.replay`) and kept as a fixture.

:func:`inject` derives a graph with one shape bug from a valid one.
"""

from __future__ import annotations

import copy
import functools
import math
import random
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

K = 4  # probe assignments tracked per graph; the harness runs the first 2-3
MAX_ELEMENTS = 40_000  # per sample, at the largest probe
MAX_WEIGHTS = 300_000


# --- choices -----------------------------------------------------------------------------


class Chooser:
    """Every random choice the generator makes."""

    def int(self, lo: int, hi: int) -> int:  # pragma: no cover - interface
        raise NotImplementedError

    def choice(self, seq: Sequence[Any]) -> Any:
        return seq[self.int(0, len(seq) - 1)]

    def bool(self, p: float = 0.5) -> bool:
        return self.int(0, 99) < int(p * 100)

    def sample(self, seq: Sequence[Any], n: int) -> list[Any]:
        pool = list(seq)
        out = []
        for _ in range(min(n, len(pool))):
            out.append(pool.pop(self.int(0, len(pool) - 1)))
        return out


class RandomChooser(Chooser):
    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)

    def int(self, lo: int, hi: int) -> int:
        return self.rng.randint(lo, hi)


class DrawChooser(Chooser):
    """Choices drawn by hypothesis (``draw`` of an ``st.composite``)."""

    def __init__(self, draw: Callable[[Any], Any]) -> None:
        from hypothesis import strategies as st

        self.draw = draw
        self.st = st

    def int(self, lo: int, hi: int) -> int:
        return self.draw(self.st.integers(lo, hi))


# --- tensors -----------------------------------------------------------------------------

Axis = tuple  # the axis's size at each of the K probes


def fixed(n: int) -> Axis:
    return (int(n),) * K


def is_fixed(a: Axis) -> bool:
    return len(set(a)) == 1


@dataclass
class Tensor:
    name: str  # the script's variable
    shape: tuple  # non-batch axes, each an Axis
    var: tuple  # per axis: Keras sees None (a variable input dim flows into it)
    dtype: str = "float32"
    kind: str = ""  # the layer that made it, in words ("lstm-last", "lstm-seq", ...)
    reduced: bool = False  # a variable axis was reduced into it (RNN last step, pooling)
    seq_of: str | None = None  # RNN with return_sequences=True: its name

    @property
    def rank(self) -> int:
        return len(self.shape)

    def fixed_at(self, axis: int) -> int | None:
        a = self.shape[axis]
        return a[0] if is_fixed(a) and not self.var[axis] else None

    def elements(self) -> int:
        return max(math.prod(a[k] for a in self.shape) for k in range(K)) if self.shape else 1

    def same_shape(self, other: "Tensor") -> bool:
        return self.shape == other.shape and self.var == other.var

    def describe(self) -> str:
        return "(batch, " + ", ".join(
            (f"{a[0]}" if not v else "~" + "/".join(map(str, a)))
            for a, v in zip(self.shape, self.var)) + ")"


@dataclass
class Node:
    """One line of the script: ``outs = template.format(**params)``."""

    template: str
    params: dict
    outs: list[str]
    ins: list[str]
    kind: str  # the layer or op type, for coverage counts
    meta: dict = field(default_factory=dict)

    def line(self) -> str:
        rhs = self.template.format(**self.params)
        lhs = ", ".join(self.outs) if len(self.outs) > 1 else (self.outs[0] if self.outs else "_")
        return f"{lhs} = {rhs}"


@dataclass
class InputSpec:
    name: str
    shape: tuple  # Keras shape (None where variable)
    dims: tuple  # per axis: the generator's dim name (None where fixed)
    dtype: str = "float32"


@dataclass
class GraphSpec:
    inputs: list[InputSpec]
    nodes: list[Node]
    outputs: list[str]
    dims: dict[str, tuple]  # dim name -> its size at each probe
    tensors: dict[str, Tensor]
    extra: list[str] = field(default_factory=list)  # lines after the model (compile, fit)
    bug: str | None = None  # the injected bug's kind
    bug_note: str = ""
    refs: dict = field(default_factory=dict)  # data the harness needs (targets, loss)
    sequential: bool = False  # emitted as keras.Sequential (a chain of layers)

    def kinds(self) -> set[str]:
        return {n.kind for n in self.nodes}

    def keras_names(self) -> set[str]:
        """Every Keras layer class (``layers.X``) and op (``ops.y``) the script calls."""
        import re

        text = self.source()
        found = set(re.findall(r"\b(layers\.[A-Z]\w*)\(", text))
        found |= set(re.findall(r"\b(ops\.[a-z_]\w*(?:\.[a-z_]\w*)?)\(", text))
        found |= {"keras.Sequential"} if "keras.Sequential(" in text else set()
        if re.search(r"\w\[[^\]]*:", text.split("\nmodel = ")[0]):
            found.add("getitem")
        if re.search(r" [+*] ", text):
            found.add("operators")
        return found

    def sizes(self) -> dict[str, list[int]]:
        """``"input_name:axis" -> sizes`` for every variable input axis (axis counts batch)."""
        out = {}
        for inp in self.inputs:
            for i, d in enumerate(inp.dims):
                if d is not None:
                    out[f"{inp.name}:{i + 1}"] = list(self.dims[d])
        return out

    def _input_text(self, inp: InputSpec) -> str:
        shape = "(" + ", ".join("None" if d is None else str(d) for d in inp.shape) + \
            ("," if len(inp.shape) == 1 else "") + ")"
        dtype = f", dtype={inp.dtype!r}" if inp.dtype != "float32" else ""
        return f"keras.Input(shape={shape}{dtype}, name={inp.name!r})"

    def _sequential_lines(self) -> list[str]:
        items = [self._input_text(self.inputs[0])]
        for n in self.nodes:
            call = n.template.format(**{**n.params, "x0": "@"})
            assert call.endswith("(@)"), call
            items.append(call[:-3])
        return ["model = keras.Sequential(["] + [f"    {i}," for i in items] + ["])"]

    def source(self) -> str:
        lines = [
            '"""A generated Keras model (shapecheck differential fuzzing)."""',
            "",
            "import keras",
            "from keras import layers, ops",
            "",
            "# Sizes of the variable input axes at each probe assignment (axis 0 is the batch).",
            f"SIZES = {self.sizes()!r}",
        ]
        if self.bug:
            lines.append(f"BUG = {self.bug!r}  # {self.bug_note}")
        lines.append("")
        if self.sequential:
            return "\n".join(lines + self._sequential_lines() + self.extra) + "\n"
        for inp in self.inputs:
            shape = "(" + ", ".join("None" if d is None else str(d) for d in inp.shape) + \
                ("," if len(inp.shape) == 1 else "") + ")"
            dtype = f", dtype={inp.dtype!r}" if inp.dtype != "float32" else ""
            lines.append(f"{inp.name} = keras.Input(shape={shape}{dtype}, name={inp.name!r})")
        lines += [n.line() for n in self.nodes]
        ins = ", ".join(i.name for i in self.inputs)
        outs = ", ".join(self.outputs)
        lines.append(f"model = keras.Model([{ins}], [{outs}])")
        lines += self.extra
        return "\n".join(lines) + "\n"


# --- the graph under construction ------------------------------------------------------------


class Builder:
    def __init__(self, ch: Chooser) -> None:
        self.ch = ch
        self.inputs: list[InputSpec] = []
        self.nodes: list[Node] = []
        self.tensors: dict[str, Tensor] = {}
        self.order: list[str] = []
        self.consumed: set[str] = set()
        self.dims: dict[str, tuple] = {}
        self._n = 0
        self.prefix = "t"
        self.depth = 0  # nesting of sub-models

    # -- names and dims ----------------------------------------------------------------
    def fresh(self) -> str:
        self._n += 1
        return f"{self.prefix}{self._n}"

    def new_dim(self, letter: str, lo: int, hi: int) -> tuple[str, Axis]:
        ch = self.ch
        base = ch.int(lo, hi)
        step = ch.choice([1, 2, 3, 5, 7])
        mult = ch.choice([1, 1, 1, 2, 4])
        values = [mult * ((base + mult - 1) // mult + i * step) for i in range(K)]
        # distinct from every other variable dim at each probe, so no equality hides a bug
        while any(values[i] == other[i] for other in self.dims.values() for i in range(K)):
            values = [v + mult for v in values]
        name = letter
        n = 1
        while name in self.dims:
            n += 1
            name = f"{letter}{n}"
        self.dims[name] = tuple(values)
        return name, tuple(values)

    # -- tensors ----------------------------------------------------------------------
    def add_input(self, axes: list[tuple[str, int, int] | int], dtype: str = "float32") -> Tensor:
        """``axes``: an int (fixed) or ``(letter, lo, hi)`` (variable) per non-batch axis."""
        name = f"in{len(self.inputs)}"
        shape, var, keras_shape, dnames = [], [], [], []
        for a in axes:
            if isinstance(a, int):
                shape.append(fixed(a))
                var.append(False)
                keras_shape.append(a)
                dnames.append(None)
            else:
                d, values = self.new_dim(*a)
                shape.append(values)
                var.append(True)
                keras_shape.append(None)
                dnames.append(d)
        self.inputs.append(InputSpec(name, tuple(keras_shape), tuple(dnames), dtype))
        t = Tensor(name, tuple(shape), tuple(var), dtype, kind="input")
        self.tensors[name] = t
        self.order.append(name)
        return t

    def reuse_dim_input(self, like: InputSpec, dtype: str = "float32",
                        last: int | None = None) -> Tensor:
        """Another input sharing ``like``'s variable dims (sizes tied by the data)."""
        name = f"in{len(self.inputs)}"
        src = self.tensors[like.name]
        shape = list(src.shape)
        keras_shape = list(like.shape)
        dnames = list(like.dims)
        if last is not None:
            shape[-1] = fixed(last)
            keras_shape[-1] = last
            dnames[-1] = None
        self.inputs.append(InputSpec(name, tuple(keras_shape), tuple(dnames), dtype))
        var = tuple(d is not None for d in dnames)
        t = Tensor(name, tuple(shape), var, dtype, kind="input")
        self.tensors[name] = t
        self.order.append(name)
        return t

    def emit(self, kind: str, template: str, ins: list[Tensor], outs: list[Tensor],
             params: dict | None = None, meta: dict | None = None) -> list[Tensor]:
        for t in outs:
            if t.rank and (t.elements() > MAX_ELEMENTS or min(min(a) for a in t.shape) < 1):
                raise Reject(f"{kind}: output too large or empty {t.describe()}")
        params = dict(params or {})
        for i, t in enumerate(ins):
            params.setdefault(f"x{i}", t.name)
        self.nodes.append(Node(template, params, [t.name for t in outs],
                               [t.name for t in ins], kind, dict(meta or {})))
        for t in ins:
            self.consumed.add(t.name)
        for t in outs:
            self.tensors[t.name] = t
            self.order.append(t.name)
        return outs

    def out(self, shape: Sequence[Axis], var: Sequence[bool], *, like: Tensor | None = None,
            kind: str = "", reduced: bool | None = None) -> Tensor:
        red = (like.reduced if like is not None else False) if reduced is None else reduced
        return Tensor(self.fresh(), tuple(tuple(a) for a in shape), tuple(bool(v) for v in var),
                      kind=kind, reduced=red)

    def float_tensors(self) -> list[Tensor]:
        return [self.tensors[n] for n in self.order if self.tensors[n].dtype == "float32"]


class Reject(Exception):
    """This layer does not fit here; the generator tries something else."""


# --- shape arithmetic (Keras's formulas) --------------------------------------------------------


def conv_len(n: int, k: int, s: int, d: int, padding: str) -> int:
    if padding == "valid":
        return (n - d * (k - 1) - 1) // s + 1
    return (n - 1) // s + 1


def pool_len(n: int, p: int, s: int, padding: str) -> int:
    if padding == "valid":
        return (n - p) // s + 1
    return (n - 1) // s + 1


def deconv_len(n: int, k: int, s: int, padding: str, output_padding: int | None) -> int:
    if output_padding is None:
        return n * s + max(k - s, 0) if padding == "valid" else n * s
    pad = k // 2 if padding == "same" else 0
    return (n - 1) * s + k - 2 * pad + output_padding


def amap(f: Callable[[int], int], a: Axis) -> Axis:
    return tuple(f(v) for v in a)


def positive(a: Axis) -> bool:
    return min(a) >= 1


def tup(values: Sequence[int]) -> str:
    values = list(values)
    return f"({values[0]},)" if len(values) == 1 else "(" + ", ".join(map(str, values)) + ")"


def kw(**kwargs: Any) -> str:
    """``, key=value`` for each argument that is not None."""
    return "".join(f", {k}={v!r}" for k, v in kwargs.items() if v is not None)


# --- layers ------------------------------------------------------------------------------------
# Each op takes the builder and a tensor, adds one or a few nodes, and returns the new
# tensor (or raises Reject).  ``OPS`` lists them with the input ranks they take.

OPS: list[tuple[str, Callable[[Builder, Tensor], Tensor], Callable[[Tensor], bool]]] = []


def op(name: str, accepts: Callable[[Tensor], bool]):
    def deco(fn):
        OPS.append((name, fn, accepts))
        return fn
    return deco


def last_fixed(t: Tensor) -> bool:
    return t.rank >= 1 and t.fixed_at(-1) is not None


@functools.cache
def cpu_kernels_limited() -> bool:
    """TensorFlow without oneDNN (a CPU without AVX-512) runs no channels_first
    convolution or pooling and no depthwise convolution with unequal strides: the
    generator then makes only graphs Keras can run here."""
    import keras
    import numpy as np

    if keras.backend.backend() != "tensorflow":
        return False
    try:
        keras.layers.DepthwiseConv2D(1, strides=(1, 2))(np.zeros((1, 4, 4, 1), "float32"))
        keras.layers.Conv2D(1, 1, data_format="channels_first")(
            np.zeros((1, 1, 4, 4), "float32"))
        keras.layers.MaxPooling2D(data_format="channels_first")(
            np.zeros((1, 1, 4, 4), "float32"))
    except Exception:
        return True
    return False


def _spatial_layout(b: Builder, t: Tensor, n: int) -> tuple[str, int, list[int]]:
    """``(data_format, channel axis, spatial axes)`` for an N-D layer on ``t``."""
    cf = t.fixed_at(0) is not None and b.ch.bool(0.2)
    if cf and not cpu_kernels_limited():
        return "channels_first", 0, list(range(1, n + 1))
    return "channels_last", n, list(range(n))


@op("Dense", last_fixed)
def dense(b: Builder, x: Tensor) -> Tensor:
    units = b.ch.choice([1, 2, 3, 4, 5, 8, 12, 16])
    if x.fixed_at(-1) * units > MAX_WEIGHTS:
        raise Reject("Dense too large")
    act = b.ch.choice([None, None, "relu", "tanh", "sigmoid"])
    if units == 1 and act == "sigmoid" or units > 1 and b.ch.bool(0.1):
        act = act if units == 1 else "softmax"
    y = b.out(x.shape[:-1] + (fixed(units),), x.var[:-1] + (False,), like=x, kind="dense")
    return b.emit("Dense", "layers.Dense({units}{extra})({x0})", [x], [y],
                  {"units": units, "extra": kw(activation=act)})[0]


@op("EinsumDense", lambda t: last_fixed(t) and t.rank in (1, 2, 3))
def einsum_dense(b: Builder, x: Tensor) -> Tensor:
    units = b.ch.choice([2, 3, 4, 6])
    if x.rank == 1:
        eq, out_shape = "ab,bc->ac", str(units)
        y = b.out((fixed(units),), (False,), like=x, kind="einsum")
        bias = "c"
    elif x.rank == 2 and b.ch.bool():
        first = "None" if x.var[0] else str(x.shape[0][0])
        extra = b.ch.choice([2, 3])
        eq, out_shape = "abc,cde->abde", f"({first}, {units}, {extra})"
        y = b.out((x.shape[0], fixed(units), fixed(extra)), (x.var[0], False, False), like=x)
        bias = b.ch.choice(["de", "e", None])
    else:
        lead = ", ".join("None" if v else str(a[0]) for a, v in zip(x.shape[:-1], x.var[:-1]))
        letters = "bcdefg"[: x.rank - 1]
        eq = f"a{letters}x,xy->a{letters}y"
        out_shape = f"({lead}, {units})"
        y = b.out(x.shape[:-1] + (fixed(units),), x.var[:-1] + (False,), like=x)
        bias = b.ch.choice(["y", None])
    return b.emit("EinsumDense", "layers.EinsumDense({eq!r}, output_shape={out}{extra})({x0})",
                  [x], [y], {"eq": eq, "out": out_shape, "extra": kw(bias_axes=bias)})[0]


def _conv_start(b: Builder, x: Tensor, n: int) -> tuple[str, int, list[int], int, list[int]]:
    """A convolution's layout, input channels and kernel (drawn in this order)."""
    fmt, cax, sax = _spatial_layout(b, x, n)
    cin = x.fixed_at(cax)
    if cin is None:
        raise Reject("channels unknown")
    return fmt, cax, sax, cin, [b.ch.int(1, 4) for _ in range(n)]


def _with_channels(x: Tensor, shape: list, cax: int, cout: int) -> tuple[list, list]:
    """``shape`` and ``x``'s variable axes with ``cout`` fixed channels at ``cax``."""
    shape[cax] = fixed(cout)
    var = list(x.var)
    var[cax] = False
    return shape, var


def _conv_common(b: Builder, x: Tensor, n: int, kind: str) -> Tensor:
    fmt, cax, sax, cin, kernel = _conv_start(b, x, n)
    ch = b.ch
    strided = ch.bool(0.4)
    strides = [ch.int(1, 3) if strided else 1 for _ in range(n)]
    if kind != "Conv" and n == 2 and cpu_kernels_limited():
        strides = [strides[0]] * n  # the kernel takes equal strides only
    dil = [1] * n
    if not strided and ch.bool(0.3):
        dil = [ch.int(1, 3) for _ in range(n)]
    pads = ["valid", "same"] + (["causal"] if n == 1 and kind == "Conv" else [])
    padding = ch.choice(pads)
    out_ch = ch.choice([1, 2, 3, 4, 6, 8])
    groups = None
    extra: dict[str, Any] = {}
    if kind == "Conv" and fmt == "channels_last" and ch.bool(0.2):
        g = ch.choice([2, 3])
        if cin % g == 0 and out_ch % g == 0:
            groups = g
    if kind == "Conv":
        extra = {"groups": groups}
        cout = out_ch
    elif kind == "SeparableConv":
        dm = ch.choice([1, 1, 2])
        extra = {"depth_multiplier": dm if dm != 1 else None}
        cout = out_ch
    else:  # DepthwiseConv
        dm = ch.choice([1, 1, 2, 3])
        extra = {"depth_multiplier": dm if dm != 1 else None}
        cout = cin * dm
    shape = list(x.shape)
    for axis, k, s, d in zip(sax, kernel, strides, dil):
        shape[axis] = amap(lambda v: conv_len(v, k, s, d, padding), x.shape[axis])
        if not positive(shape[axis]):
            raise Reject("window does not fit")
    shape, var = _with_channels(x, shape, cax, cout)
    if math.prod(kernel) * cin * max(cout, 1) > MAX_WEIGHTS:
        raise Reject("too many weights")
    y = b.out(shape, var, like=x, kind=kind.lower())
    args = {"kernel_size": kernel[0] if ch.bool() and len(set(kernel)) == 1 else tuple(kernel),
            "strides": None if not strided else (strides[0] if n == 1 else tuple(strides)),
            "padding": padding if padding != "valid" or ch.bool(0.3) else None,
            "dilation_rate": None if max(dil) == 1 else (dil[0] if n == 1 else tuple(dil)),
            "data_format": fmt if fmt == "channels_first" else None, **extra}
    name = f"{kind}{n}D"
    first = "" if kind == "DepthwiseConv" else f"{out_ch}, "
    return b.emit(name, f"layers.{name}({first}{{ks}}{{extra}})({{x0}})", [x], [y],
                  {"ks": args.pop("kernel_size"), "extra": kw(**args)})[0]


for _n in (1, 2, 3):
    op(f"Conv{_n}D", lambda t, n=_n: t.rank == n + 1)(
        lambda b, x, n=_n: _conv_common(b, x, n, "Conv"))
for _n in (1, 2):
    op(f"SeparableConv{_n}D", lambda t, n=_n: t.rank == n + 1)(
        lambda b, x, n=_n: _conv_common(b, x, n, "SeparableConv"))
    op(f"DepthwiseConv{_n}D", lambda t, n=_n: t.rank == n + 1)(
        lambda b, x, n=_n: _conv_common(b, x, n, "DepthwiseConv"))


def _conv_transpose(b: Builder, x: Tensor, n: int) -> Tensor:
    fmt, cax, sax, _, kernel = _conv_start(b, x, n)
    ch = b.ch
    strides = [ch.int(1, 3) for _ in range(n)]
    padding = ch.choice(["valid", "same"])
    out_pad = None
    if ch.bool(0.3):
        out_pad = [ch.int(0, s - 1) for s in strides]
        # TensorFlow cannot run "same" with an even kernel and no output padding, though
        # Keras computes a length for it (a Keras/TensorFlow inconsistency): leave it out.
        if padding == "same" and any(k % 2 == 0 and p == 0 for k, p in zip(kernel, out_pad)):
            out_pad = None
    cout = ch.choice([1, 2, 3, 4, 6])
    shape = list(x.shape)
    for i, (axis, k, s) in enumerate(zip(sax, kernel, strides)):
        p = None if out_pad is None else out_pad[i]
        shape[axis] = amap(lambda v: deconv_len(v, k, s, padding, p), x.shape[axis])
        if not positive(shape[axis]):
            raise Reject("empty")
    shape, var = _with_channels(x, shape, cax, cout)
    y = b.out(shape, var, like=x, kind="convT")
    name = f"Conv{n}DTranspose"
    args = {"strides": strides[0] if n == 1 else tuple(strides),
            "padding": padding if padding != "valid" else None,
            "output_padding": None if out_pad is None else (out_pad[0] if n == 1
                                                            else tuple(out_pad)),
            "data_format": fmt if fmt == "channels_first" else None}
    return b.emit(name, f"layers.{name}({cout}, {{ks}}{{extra}})({{x0}})", [x], [y],
                  {"ks": kernel[0] if n == 1 else tuple(kernel), "extra": kw(**args)})[0]


for _n in (1, 2, 3):
    op(f"Conv{_n}DTranspose", lambda t, n=_n: t.rank == n + 1)(
        lambda b, x, n=_n: _conv_transpose(b, x, n))


def _pool(b: Builder, x: Tensor, n: int, kind: str) -> Tensor:
    fmt, cax, sax = _spatial_layout(b, x, n)
    ch = b.ch
    pool = [ch.int(1, 3) for _ in range(n)]
    strides = None if ch.bool() else [ch.int(1, 3) for _ in range(n)]
    padding = ch.choice(["valid", "same"])
    shape = list(x.shape)
    for i, axis in enumerate(sax):
        s = pool[i] if strides is None else strides[i]
        shape[axis] = amap(lambda v: pool_len(v, pool[i], s, padding), x.shape[axis])
        if not positive(shape[axis]):
            raise Reject("window does not fit")
    y = b.out(shape, x.var, like=x, kind="pool")
    name = f"{kind}Pooling{n}D"
    args = {"strides": None if strides is None else (strides[0] if n == 1 else tuple(strides)),
            "padding": padding if padding != "valid" else None,
            "data_format": fmt if fmt == "channels_first" else None}
    return b.emit(name, f"layers.{name}({{pool}}{{extra}})({{x0}})", [x], [y],
                  {"pool": pool[0] if n == 1 else tuple(pool), "extra": kw(**args)})[0]


def _global_pool(b: Builder, x: Tensor, n: int, kind: str) -> Tensor:
    fmt, cax, sax = _spatial_layout(b, x, n)
    keep = b.ch.bool(0.25)
    if keep:
        shape = [fixed(1) if i in sax else a for i, a in enumerate(x.shape)]
        var = [False if i in sax else v for i, v in enumerate(x.var)]
    else:
        shape = [x.shape[cax]]
        var = [x.var[cax]]
    reduced = x.reduced or any(x.var[i] for i in sax)
    y = b.out(shape, var, like=x, kind="gpool", reduced=reduced)
    name = f"Global{kind}Pooling{n}D"
    return b.emit(name, f"layers.{name}({{extra}})({{x0}})", [x], [y],
                  {"extra": kw(data_format=fmt if fmt == "channels_first" else None,
                               keepdims=True if keep else None).lstrip(", ")})[0]


for _n in (1, 2, 3):
    for _k in ("Max", "Average"):
        op(f"{_k}Pooling{_n}D", lambda t, n=_n: t.rank == n + 1)(
            lambda b, x, n=_n, k=_k: _pool(b, x, n, k))
        op(f"Global{_k}Pooling{_n}D", lambda t, n=_n: t.rank == n + 1)(
            lambda b, x, n=_n, k=_k: _global_pool(b, x, n, k))


@op("Flatten", lambda t: t.rank >= 2)
def flatten(b: Builder, x: Tensor) -> Tensor:
    shape = tuple(math.prod(a[k] for a in x.shape) for k in range(K))
    y = b.out((shape,), (any(x.var),), like=x)
    return b.emit("Flatten", "layers.Flatten()({x0})", [x], [y])[0]


def _factorizations(total: int, parts: int, ch: Chooser) -> list[int]:
    out = []
    rest = total
    for _ in range(parts - 1):
        divisors = [d for d in range(1, rest + 1) if rest % d == 0]
        d = ch.choice(divisors)
        out.append(d)
        rest //= d
    out.append(rest)
    return out


@op("Reshape", lambda t: t.rank >= 1 and all(not v for v in t.var[1:]))
def reshape(b: Builder, x: Tensor) -> Tensor:
    ch = b.ch
    if x.var[0]:  # (T, fixed...) -> (-1, other fixed...) keeping T's size
        rest = math.prod(a[0] for a in x.shape[1:])
        if rest == 1:
            raise Reject("nothing to reshape")
        target = _factorizations(rest, ch.int(1, 3), ch)
        shape = (x.shape[0],) + tuple(fixed(v) for v in target)
        y = b.out(shape, (True,) + (False,) * len(target), like=x)
        text = tup([-1] + target)
    else:
        total = math.prod(a[0] for a in x.shape)
        target = _factorizations(total, ch.int(1, 3), ch)
        shape = tuple(fixed(v) for v in target)
        y = b.out(shape, (False,) * len(target), like=x)
        show = list(target)
        if ch.bool(0.4):
            show[ch.int(0, len(show) - 1)] = -1
        text = tup(show)
    return b.emit("Reshape", "layers.Reshape({target})({x0})", [x], [y], {"target": text})[0]


@op("Permute", lambda t: t.rank >= 2)
def permute(b: Builder, x: Tensor) -> Tensor:
    perm = b.ch.sample(list(range(x.rank)), x.rank)
    if perm == sorted(perm):
        perm = perm[1:] + perm[:1]
    y = b.out([x.shape[p] for p in perm], [x.var[p] for p in perm], like=x)
    return b.emit("Permute", "layers.Permute({perm})({x0})", [x], [y],
                  {"perm": tup([p + 1 for p in perm])})[0]


@op("RepeatVector", lambda t: t.rank == 1 and not t.var[0])
def repeat_vector(b: Builder, x: Tensor) -> Tensor:
    if x.reduced:  # a fixed count of steps after a variable length (a finding of its own)
        raise Reject("frozen length")
    n = b.ch.int(1, 9)
    y = b.out((fixed(n), x.shape[0]), (False, False), like=x)
    return b.emit("RepeatVector", "layers.RepeatVector({n})({x0})", [x], [y], {"n": n})[0]


def _resample(b: Builder, x: Tensor, n: int, kind: str) -> Tensor:
    ch = b.ch
    fmt, cax, sax = _spatial_layout(b, x, n) if n > 1 else ("channels_last", 1, [0])
    shape = list(x.shape)
    extra: dict[str, Any] = {}
    if kind == "UpSampling":
        size = [ch.int(1, 3) for _ in range(n)]
        for axis, s in zip(sax, size):
            shape[axis] = amap(lambda v: v * s, x.shape[axis])
        arg = size[0] if n == 1 else tuple(size)
        if n == 2 and ch.bool(0.3):
            extra["interpolation"] = "bilinear"
    else:
        pairs = [(ch.int(0, 3), ch.int(0, 3)) for _ in range(n)]
        sign = 1 if kind == "ZeroPadding" else -1
        for axis, (lo, hi) in zip(sax, pairs):
            shape[axis] = amap(lambda v: v + sign * (lo + hi), x.shape[axis])
            if not positive(shape[axis]):
                raise Reject("cropped away")
        if ch.bool(0.3) and len({p for pair in pairs for p in pair}) == 1:
            arg = pairs[0][0]
        else:
            arg = pairs[0] if n == 1 else tuple(pairs)
    if fmt == "channels_first":
        extra["data_format"] = fmt
    y = b.out(shape, x.var, like=x)
    name = f"{kind}{n}D"
    return b.emit(name, f"layers.{name}({{arg}}{{extra}})({{x0}})", [x], [y],
                  {"arg": arg, "extra": kw(**extra)})[0]


for _n in (1, 2, 3):
    for _k in ("UpSampling", "ZeroPadding", "Cropping"):
        op(f"{_k}{_n}D", lambda t, n=_n: t.rank == n + 1)(
            lambda b, x, n=_n, k=_k: _resample(b, x, n, k))


def _same(b: Builder, x: Tensor, name: str, template: str, params: dict | None = None,
          kind: str | None = None) -> Tensor:
    y = b.out(x.shape, x.var, like=x, kind=x.kind if kind is None else kind)
    y.seq_of = x.seq_of
    return b.emit(name, template, [x], [y], params)[0]


@op("Dropout", lambda t: True)
def dropout(b: Builder, x: Tensor) -> Tensor:
    return _same(b, x, "Dropout", "layers.Dropout({r})({x0})", {"r": b.ch.choice([0.1, 0.5])})


for _n in (1, 2, 3):
    op(f"SpatialDropout{_n}D", lambda t, n=_n: t.rank == n + 1)(
        lambda b, x, n=_n: _same(b, x, f"SpatialDropout{n}D",
                                 f"layers.SpatialDropout{n}D(0.2)({{x0}})"))
op("GaussianNoise", lambda t: True)(
    lambda b, x: _same(b, x, "GaussianNoise", "layers.GaussianNoise(0.1)({x0})"))
op("GaussianDropout", lambda t: True)(
    lambda b, x: _same(b, x, "GaussianDropout", "layers.GaussianDropout(0.1)({x0})"))
op("ActivityRegularization", lambda t: True)(
    lambda b, x: _same(b, x, "ActivityRegularization",
                       "layers.ActivityRegularization(l1=0.01)({x0})"))


@op("Activation", lambda t: True)
def activation(b: Builder, x: Tensor) -> Tensor:
    act = b.ch.choice(["relu", "tanh", "sigmoid", "gelu", "swish", "linear"])
    return _same(b, x, "Activation", "layers.Activation({a!r})({x0})", {"a": act})


op("ReLU", lambda t: True)(lambda b, x: _same(b, x, "ReLU", "layers.ReLU()({x0})"))
op("LeakyReLU", lambda t: True)(
    lambda b, x: _same(b, x, "LeakyReLU", "layers.LeakyReLU(negative_slope=0.2)({x0})"))
op("ELU", lambda t: True)(lambda b, x: _same(b, x, "ELU", "layers.ELU()({x0})"))


@op("PReLU", lambda t: t.rank >= 1)
def prelu(b: Builder, x: Tensor) -> Tensor:
    shared = [i + 1 for i, v in enumerate(x.var) if v or b.ch.bool(0.3)]
    return _same(b, x, "PReLU", "layers.PReLU({extra})({x0})",
                 {"extra": kw(shared_axes=shared or None).lstrip(", ")})


# TensorFlow's softmax kernel on CPU (oneDNN) refuses tensors of rank above 5, which
# Keras builds without complaint: left out.
@op("Softmax", lambda t: 1 <= t.rank <= 4)
def softmax(b: Builder, x: Tensor) -> Tensor:
    axis = b.ch.int(0, x.rank - 1)
    if set(x.shape[axis]) == {1}:
        raise Reject("softmax over one unit")
    text = b.ch.choice([axis + 1, axis - x.rank])
    return _same(b, x, "Softmax", "layers.Softmax(axis={a})({x0})", {"a": text})


def _norm_axes(b: Builder, x: Tensor, many: bool) -> list[int]:
    fixed_axes = [i for i in range(x.rank) if not x.var[i]]
    if not fixed_axes:
        raise Reject("no fixed axis")
    if many and len(fixed_axes) > 1 and b.ch.bool(0.3):
        return sorted(b.ch.sample(fixed_axes, b.ch.int(1, len(fixed_axes))))
    if x.rank - 1 in fixed_axes and b.ch.bool(0.7):
        return [x.rank - 1]
    return [b.ch.choice(fixed_axes)]


def _axis_text(b: Builder, axes: list[int], rank: int) -> Any:
    texts = [b.ch.choice([a + 1, a - rank]) for a in axes]
    return texts[0] if len(texts) == 1 else texts


@op("LayerNormalization", lambda t: t.rank >= 1)
def layer_norm(b: Builder, x: Tensor) -> Tensor:
    axes = _norm_axes(b, x, True)
    return _same(b, x, "LayerNormalization", "layers.LayerNormalization(axis={a})({x0})",
                 {"a": _axis_text(b, axes, x.rank)})


@op("BatchNormalization", lambda t: t.rank >= 1)
def batch_norm(b: Builder, x: Tensor) -> Tensor:
    axes = _norm_axes(b, x, False)
    return _same(b, x, "BatchNormalization", "layers.BatchNormalization(axis={a})({x0})",
                 {"a": _axis_text(b, axes, x.rank)})


@op("GroupNormalization", lambda t: last_fixed(t))
def group_norm(b: Builder, x: Tensor) -> Tensor:
    c = x.fixed_at(-1)
    groups = b.ch.choice([g for g in (1, 2, 3, 4) if c % g == 0])
    return _same(b, x, "GroupNormalization", "layers.GroupNormalization(groups={g})({x0})",
                 {"g": groups})


@op("UnitNormalization", lambda t: t.rank >= 1)
def unit_norm(b: Builder, x: Tensor) -> Tensor:
    axis = b.ch.int(0, x.rank - 1)
    return _same(b, x, "UnitNormalization", "layers.UnitNormalization(axis={a})({x0})",
                 {"a": _axis_text(b, [axis], x.rank)})


# --- recurrent -------------------------------------------------------------------------------


def seq_ok(t: Tensor) -> bool:
    return t.rank == 2 and t.fixed_at(1) is not None


def _rnn_outputs(b: Builder, x: Tensor, cls: str, units: int, seqs: bool,
                 states: int) -> list[Tensor]:
    kind = f"{cls.lower()}-" + ("seq" if seqs else "last")
    main = (b.out((x.shape[0], fixed(units)), (x.var[0], False), like=x, kind=kind) if seqs
            else b.out((fixed(units),), (False,), like=x, kind=kind,
                       reduced=x.reduced or x.var[0]))
    if seqs:
        main.seq_of = cls
    outs = [main]
    for _ in range(states):
        outs.append(b.out((fixed(units),), (False,), like=x, kind=f"{cls.lower()}-state",
                          reduced=x.reduced or x.var[0]))
    return outs


def _rnn(b: Builder, x: Tensor, cls: str) -> Tensor:
    ch = b.ch
    units = ch.choice([2, 3, 4, 6, 8])
    seqs = ch.bool()
    with_state = ch.bool(0.25)
    n_states = (2 if cls == "LSTM" else 1) if with_state else 0
    outs = _rnn_outputs(b, x, cls, units, seqs, n_states)
    extra = kw(return_sequences=True if seqs else None, return_state=True if with_state else None)
    if cls == "GRU" and ch.bool(0.2):
        extra += ", reset_after=False"
    if cls == "SimpleRNN" and ch.bool(0.2):
        extra += ", unroll=False"
    res = b.emit(cls, f"layers.{cls}({units}{{extra}})({{x0}})", [x], outs,
                 {"extra": extra}, meta={"units": units, "seqs": seqs})
    if with_state and ch.bool(0.6):  # a decoder started from the states
        dec_in = _pick_seq(b, x)
        dec_seqs = ch.bool()
        douts = _rnn_outputs(b, dec_in, cls, units, dec_seqs, 0)
        state_names = ", ".join(t.name for t in res[1:])
        b.emit(cls, f"layers.{cls}({units}{{extra}})({{x0}}, initial_state=[{{states}}])",
               [dec_in] + res[1:], douts,
               {"extra": kw(return_sequences=True if dec_seqs else None),
                "states": state_names},
               meta={"initial_state": [t.name for t in res[1:]], "units": units})
        for t in res[1:]:
            b.consumed.add(t.name)
        return douts[0]
    return res[0]


def _pick_seq(b: Builder, x: Tensor) -> Tensor:
    seqs = [t for t in b.float_tensors() if seq_ok(t)]
    return b.ch.choice(seqs) if seqs and b.ch.bool(0.6) else x


for _cls in ("SimpleRNN", "GRU", "LSTM"):
    op(_cls, seq_ok)(lambda b, x, c=_cls: _rnn(b, x, c))


@op("Bidirectional", seq_ok)
def bidirectional(b: Builder, x: Tensor) -> Tensor:
    ch = b.ch
    cls = ch.choice(["LSTM", "GRU", "SimpleRNN"])
    units = ch.choice([2, 3, 4])
    seqs = ch.bool()
    mode = ch.choice(["concat", "concat", "sum", "mul", "ave"])
    width = 2 * units if mode == "concat" else units
    y = _rnn_outputs(b, x, cls, width, seqs, 0)[0]
    y.kind = "bidirectional-" + ("seq" if seqs else "last")
    return b.emit("Bidirectional",
                  f"layers.Bidirectional(layers.{cls}({units}{{rs}}){{mode}})({{x0}})",
                  [x], [y], {"rs": kw(return_sequences=True if seqs else None),
                             "mode": kw(merge_mode=mode if mode != "concat" else None)})[0]


@op("TimeDistributed", lambda t: t.rank >= 2)
def time_distributed(b: Builder, x: Tensor) -> Tensor:
    ch = b.ch
    inner = ch.choice(["Dense", "Flatten", "Conv1D", "GlobalAveragePooling1D", "Dropout"])
    rest = x.shape[1:]
    if inner == "Dense":
        if not last_fixed(x):
            raise Reject("Dense needs a fixed last axis")
        u = ch.choice([2, 3, 5])
        y = b.out(x.shape[:-1] + (fixed(u),), x.var[:-1] + (False,), like=x)
        code = f"layers.Dense({u})"
    elif inner == "Flatten":
        if x.rank < 3 or any(x.var[1:]):
            raise Reject("Flatten inside needs fixed inner axes")
        y = b.out((x.shape[0], fixed(math.prod(a[0] for a in rest))), (x.var[0], False), like=x)
        code = "layers.Flatten()"
    elif inner == "Conv1D":
        if x.rank != 3 or x.fixed_at(2) is None:
            raise Reject("Conv1D inside needs (T, L, C)")
        k = ch.int(1, 3)
        f = ch.choice([2, 3])
        length = amap(lambda v: v - k + 1, x.shape[1])
        if not positive(length):
            raise Reject("window")
        y = b.out((x.shape[0], length, fixed(f)), (x.var[0], x.var[1], False), like=x)
        code = f"layers.Conv1D({f}, {k})"
    elif inner == "GlobalAveragePooling1D":
        if x.rank != 3:
            raise Reject("rank")
        y = b.out((x.shape[0], x.shape[2]), (x.var[0], x.var[2]), like=x,
                  reduced=x.reduced or x.var[1])
        code = "layers.GlobalAveragePooling1D()"
    else:
        y = b.out(x.shape, x.var, like=x)
        code = "layers.Dropout(0.1)"
    return b.emit("TimeDistributed", "layers.TimeDistributed({inner})({x0})", [x], [y],
                  {"inner": code}, meta={"inner": inner})[0]


# --- attention --------------------------------------------------------------------------------


def _partner_seq(b: Builder, x: Tensor, width: int | None) -> Tensor:
    """A rank-2 sequence (any length) whose features are ``width`` (any fixed when None)."""
    cands = [t for t in b.float_tensors() if t.rank == 2 and t.fixed_at(1) is not None
             and (width is None or t.fixed_at(1) == width) and t.name != x.name]
    if cands and b.ch.bool(0.7):
        return b.ch.choice(cands)
    if width is None or b.ch.bool(0.3):
        return x
    src = b.ch.choice([t for t in b.float_tensors() if seq_ok(t)] or [x])
    y = b.out((src.shape[0], fixed(width)), (src.var[0], False), like=src, kind="dense")
    return b.emit("Dense", "layers.Dense({units})({x0})", [src], [y], {"units": width})[0]


@op("Attention", seq_ok)
def attention(b: Builder, x: Tensor) -> Tensor:
    ch = b.ch
    d = x.fixed_at(1)
    v = _partner_seq(b, x, d)
    cls = ch.choice(["Attention", "AdditiveAttention"])
    extra = ""
    if cls == "Attention" and ch.bool(0.3):
        extra = kw(use_scale=True, score_mode=ch.choice(["dot", "concat"])).lstrip(", ")
    use_key = ch.bool(0.3)
    ins = [x, v] + ([v] if use_key else [])
    y = b.out(x.shape, x.var, like=x, kind="attention")
    return b.emit(cls, f"layers.{cls}({{extra}})([{{items}}])", ins, [y],
                  {"extra": extra, "items": ", ".join(t.name for t in ins)})[0]


@op("MultiHeadAttention", lambda t: t.rank in (2, 3) and last_fixed(t))
def mha(b: Builder, x: Tensor) -> Tensor:
    ch = b.ch
    if x.rank == 3:  # attention over both inner axes needs a value of the same rank
        v = x
    else:
        v = _partner_seq(b, x, None)
    heads = ch.choice([1, 2, 3])
    key_dim = ch.choice([2, 4, 5])
    out_dim = None
    if ch.bool(0.25):
        out_dim = ch.choice([3, 6])
    width = out_dim or x.fixed_at(-1)
    y = b.out(x.shape[:-1] + (fixed(width),), x.var[:-1] + (False,), like=x, kind="mha")
    ins = [x, v]
    return b.emit("MultiHeadAttention",
                  "layers.MultiHeadAttention({h}, {k}{extra})({x0}, {x1})", ins, [y],
                  {"h": heads, "k": key_dim, "extra": kw(output_shape=out_dim)})[0]


# --- merges -------------------------------------------------------------------------------------


def _variant(b: Builder, x: Tensor) -> Tensor:
    """A tensor shaped like ``x`` made from ``x`` (a residual branch)."""
    ch = b.ch
    opts = ["act", "norm", "drop"]
    if last_fixed(x):
        opts += ["dense", "dense"]
    if 2 <= x.rank <= 4 and last_fixed(x):
        opts += ["conv", "conv"]
    pick = ch.choice(opts)
    if pick == "dense":
        y = b.out(x.shape, x.var, like=x, kind="dense")
        return b.emit("Dense", "layers.Dense({units}{extra})({x0})", [x], [y],
                      {"units": x.fixed_at(-1),
                       "extra": kw(activation=ch.choice([None, "relu"]))})[0]
    if pick == "conv":
        n = x.rank - 1
        k = ch.int(1, 3)
        y = b.out(x.shape, x.var, like=x, kind="conv")
        return b.emit(f"Conv{n}D", f"layers.Conv{n}D({{f}}, {k}, padding='same')({{x0}})",
                      [x], [y], {"f": x.fixed_at(-1)})[0]
    if pick == "norm":
        return layer_norm(b, x) if any(not v for v in x.var) else activation(b, x)
    if pick == "drop":
        return dropout(b, x)
    return activation(b, x)


def _partner(b: Builder, x: Tensor) -> Tensor:
    same = [t for t in b.float_tensors() if t.same_shape(x) and t.name != x.name]
    if same and b.ch.bool(0.5):
        return b.ch.choice(same)
    return _variant(b, x)


@op("Add", lambda t: True)
def add_like(b: Builder, x: Tensor) -> Tensor:
    ch = b.ch
    cls = ch.choice(["Add", "Add", "Multiply", "Subtract", "Average", "Maximum", "Minimum"])
    n = 2 if cls == "Subtract" else ch.choice([2, 2, 3])
    ins = [x] + [_partner(b, x) for _ in range(n - 1)]
    if cls == "Multiply" and last_fixed(x) and x.fixed_at(-1) > 1 and ch.bool(0.3):
        # a gate of width 1, broadcast along the last axis
        g = b.out(x.shape[:-1] + (fixed(1),), x.var[:-1] + (False,), like=x, kind="dense")
        b.emit("Dense", "layers.Dense(1, activation='sigmoid')({x0})", [x], [g])
        ins = [x, g]
    y = b.out(x.shape, x.var, like=x, kind="merge")
    fn = ch.bool(0.2)
    if fn and cls != "Subtract":
        template = f"layers.{cls.lower()}([{{items}}])"
    else:
        template = f"layers.{cls}()([{{items}}])"
    return b.emit(cls, template, ins, [y], {"items": ", ".join(t.name for t in ins)},
                  meta={"merge": cls})[0]


def _concat_partner(b: Builder, x: Tensor, axis: int) -> Tensor:
    """A tensor equal to ``x`` on every axis but ``axis``."""
    ch = b.ch
    cands = [t for t in b.float_tensors() if t.rank == x.rank and t.name != x.name and all(
        (t.shape[i] == x.shape[i] and t.var[i] == x.var[i]) for i in range(x.rank) if i != axis)
        and (t.var[axis] == x.var[axis] or True)]
    if cands and ch.bool(0.5):
        return ch.choice(cands)
    if axis == x.rank - 1 and last_fixed(x):
        u = ch.choice([1, 2, 3, 5])
        y = b.out(x.shape[:-1] + (fixed(u),), x.var[:-1] + (False,), like=x, kind="dense")
        return b.emit("Dense", "layers.Dense({u})({x0})", [x], [y], {"u": u})[0]
    # slice or pad along the axis
    shape = list(x.shape)
    if ch.bool() and min(x.shape[axis]) > 2:
        start = ch.int(1, 2)
        shape[axis] = amap(lambda v: v - start, x.shape[axis])
        y = b.out(shape, x.var, like=x)
        index = ", ".join([":"] * (axis + 1) + [f"{start}:"])
        return b.emit("GetItem", "{x0}[{idx}]", [x], [y], {"idx": index})[0]
    lo, hi = ch.int(0, 2), ch.int(1, 2)
    shape[axis] = amap(lambda v: v + lo + hi, x.shape[axis])
    y = b.out(shape, x.var, like=x)
    pads = [[0, 0]] * (x.rank + 1)
    pads[axis + 1] = [lo, hi]
    return b.emit("ops.pad", "ops.pad({x0}, {pads})", [x], [y], {"pads": pads})[0]


@op("Concatenate", lambda t: t.rank >= 1)
def concatenate(b: Builder, x: Tensor) -> Tensor:
    ch = b.ch
    axis = x.rank - 1 if ch.bool(0.5) else ch.int(0, x.rank - 1)
    other = _concat_partner(b, x, axis)
    ins = [x, other]
    shape = list(x.shape)
    shape[axis] = tuple(p + q for p, q in zip(x.shape[axis], other.shape[axis]))
    var = list(x.var)
    var[axis] = x.var[axis] or other.var[axis]
    y = b.out(shape, var, like=x, kind="concat")
    text = ch.choice([axis + 1, axis - x.rank])
    if ch.bool(0.25):
        return b.emit("ops.concatenate", "ops.concatenate([{x0}, {x1}], axis={a})", ins, [y],
                      {"a": text}, meta={"axis": axis})[0]
    arg = "" if text == -1 and ch.bool() else f"axis={text}"
    return b.emit("Concatenate", "layers.Concatenate({a})([{x0}, {x1}])", ins, [y],
                  {"a": arg}, meta={"axis": axis})[0]


@op("Dot", lambda t: t.rank in (1, 2) and last_fixed(t))
def dot(b: Builder, x: Tensor) -> Tensor:
    ch = b.ch
    norm = kw(normalize=True if ch.bool(0.3) else None)
    if x.rank == 1:
        other = _partner(b, x)
        y = b.out((fixed(1),), (False,), like=x)
        return b.emit("Dot", "layers.Dot(axes=1{n})([{x0}, {x1}])", [x, other], [y],
                      {"n": norm})[0]
    if ch.bool():  # contract the features: (T1, d) . (T2, d) -> (T1, T2)
        other = _partner_seq(b, x, x.fixed_at(1))
        y = b.out((x.shape[0], other.shape[0]), (x.var[0], other.var[0]), like=x)
        return b.emit("Dot", "layers.Dot(axes={a}{n})([{x0}, {x1}])", [x, other], [y],
                      {"a": ch.choice([2, -1, (2, 2)]), "n": norm})[0]
    # contract the steps: (T, d1) . (T, d2) -> (d1, d2)
    cands = [t for t in b.float_tensors() if t.rank == 2 and t.shape[0] == x.shape[0]
             and t.var[0] == x.var[0] and t.fixed_at(1) is not None]
    other = ch.choice(cands)
    y = b.out((x.shape[1], other.shape[1]), (False, False), like=x,
              reduced=x.reduced or x.var[0])
    return b.emit("Dot", "layers.Dot(axes=1{n})([{x0}, {x1}])", [x, other], [y], {"n": norm})[0]


# --- keras.ops ----------------------------------------------------------------------------------


def _axis_arg(b: Builder, axis: int, rank: int) -> int:
    """``axis`` (non-batch index) as the op's argument: from the front or the back."""
    return b.ch.choice([axis + 1, axis - rank])


@op("ops.transpose", lambda t: t.rank >= 2)
def ops_transpose(b: Builder, x: Tensor) -> Tensor:
    perm = b.ch.sample(list(range(x.rank)), x.rank)
    y = b.out([x.shape[p] for p in perm], [x.var[p] for p in perm], like=x)
    return b.emit("ops.transpose", "ops.transpose({x0}, {perm})", [x], [y],
                  {"perm": tup([0] + [p + 1 for p in perm])})[0]


@op("ops.swapaxes", lambda t: t.rank >= 2)
def ops_swapaxes(b: Builder, x: Tensor) -> Tensor:
    i, j = b.ch.sample(list(range(x.rank)), 2)
    shape, var = list(x.shape), list(x.var)
    shape[i], shape[j] = shape[j], shape[i]
    var[i], var[j] = var[j], var[i]
    y = b.out(shape, var, like=x)
    return b.emit("ops.swapaxes", "ops.swapaxes({x0}, {i}, {j})", [x], [y],
                  {"i": _axis_arg(b, i, x.rank), "j": _axis_arg(b, j, x.rank)})[0]


@op("ops.reshape", lambda t: t.rank >= 1 and not any(t.var))
def ops_reshape(b: Builder, x: Tensor) -> Tensor:
    total = math.prod(a[0] for a in x.shape)
    target = _factorizations(total, b.ch.int(1, 3), b.ch)
    y = b.out([fixed(v) for v in target], [False] * len(target), like=x)
    return b.emit("ops.reshape", "ops.reshape({x0}, {t})", [x], [y],
                  {"t": tup([-1] + target)})[0]


def _reduce(b: Builder, x: Tensor, fn: str) -> Tensor:
    ch = b.ch
    axes = sorted(ch.sample(list(range(x.rank)), ch.int(1, min(2, x.rank))))
    keep = ch.bool(0.3)
    if keep:
        shape = [fixed(1) if i in axes else a for i, a in enumerate(x.shape)]
        var = [False if i in axes else v for i, v in enumerate(x.var)]
    else:
        shape = [a for i, a in enumerate(x.shape) if i not in axes]
        var = [v for i, v in enumerate(x.var) if i not in axes]
    texts = [_axis_arg(b, a, x.rank) for a in axes]
    arg = texts[0] if len(texts) == 1 else tuple(texts)
    y = b.out(shape, var, like=x, reduced=x.reduced or any(x.var[a] for a in axes))
    return b.emit(f"ops.{fn}", f"ops.{fn}({{x0}}, axis={{a}}{{k}})", [x], [y],
                  {"a": arg, "k": kw(keepdims=True if keep else None)})[0]


for _fn in ("mean", "sum", "max"):
    op(f"ops.{_fn}", lambda t: t.rank >= 2)(lambda b, x, f=_fn: _reduce(b, x, f))


@op("ops.expand_dims", lambda t: t.rank <= 3)
def ops_expand_dims(b: Builder, x: Tensor) -> Tensor:
    pos = b.ch.int(0, x.rank)
    shape = list(x.shape)
    var = list(x.var)
    shape.insert(pos, fixed(1))
    var.insert(pos, False)
    y = b.out(shape, var, like=x)
    return b.emit("ops.expand_dims", "ops.expand_dims({x0}, {a})", [x], [y],
                  {"a": b.ch.choice([pos + 1, pos - (x.rank + 1)])})[0]


@op("ops.squeeze", lambda t: any(t.fixed_at(i) == 1 for i in range(t.rank)) and t.rank >= 2)
def ops_squeeze(b: Builder, x: Tensor) -> Tensor:
    axis = b.ch.choice([i for i in range(x.rank) if x.fixed_at(i) == 1])
    shape = [a for i, a in enumerate(x.shape) if i != axis]
    var = [v for i, v in enumerate(x.var) if i != axis]
    y = b.out(shape, var, like=x)
    return b.emit("ops.squeeze", "ops.squeeze({x0}, axis={a})", [x], [y],
                  {"a": _axis_arg(b, axis, x.rank)})[0]


@op("ops.stack", lambda t: t.rank <= 3)
def ops_stack(b: Builder, x: Tensor) -> Tensor:
    other = _partner(b, x)
    pos = b.ch.int(0, x.rank)
    shape, var = list(x.shape), list(x.var)
    shape.insert(pos, fixed(2))
    var.insert(pos, False)
    y = b.out(shape, var, like=x)
    return b.emit("ops.stack", "ops.stack([{x0}, {x1}], axis={a})", [x, other], [y],
                  {"a": pos + 1})[0]


@op("ops.split", lambda t: any(t.fixed_at(i) and t.fixed_at(i) % 2 == 0
                               for i in range(t.rank)))
def ops_split(b: Builder, x: Tensor) -> Tensor:
    axis = b.ch.choice([i for i in range(x.rank) if x.fixed_at(i) and x.fixed_at(i) % 2 == 0])
    parts = b.ch.choice([p for p in (2, 3, 4) if x.fixed_at(axis) % p == 0])
    shape = list(x.shape)
    shape[axis] = fixed(x.fixed_at(axis) // parts)
    y = b.out(shape, x.var, like=x)
    return b.emit("ops.split", "ops.split({x0}, {p}, axis={a})[{i}]", [x], [y],
                  {"p": parts, "a": _axis_arg(b, axis, x.rank), "i": b.ch.int(0, parts - 1)})[0]


@op("ops.add", lambda t: True)
def ops_binary(b: Builder, x: Tensor) -> Tensor:
    other = _partner(b, x)
    form = b.ch.choice(["{x0} + {x1}", "{x0} * {x1}", "ops.add({x0}, {x1})",
                        "ops.multiply({x0}, {x1})", "ops.subtract({x0}, {x1})",
                        "ops.maximum({x0}, {x1})"])
    y = b.out(x.shape, x.var, like=x)
    kind = "ops.add" if "+" in form or "add" in form else "ops.binary"
    return b.emit(kind, form, [x, other], [y])[0]


@op("ops.unary", lambda t: True)
def ops_unary(b: Builder, x: Tensor) -> Tensor:
    fn = b.ch.choice(["relu", "tanh", "sigmoid", "abs", "square", "exp", "negative"])
    return _same(b, x, f"ops.{fn}", f"ops.{fn}({{x0}})")


@op("ops.softmax", lambda t: 1 <= t.rank <= 4)
def ops_softmax(b: Builder, x: Tensor) -> Tensor:
    axis = b.ch.int(0, x.rank - 1)
    if set(x.shape[axis]) == {1}:
        raise Reject("softmax over one unit")
    return _same(b, x, "ops.softmax", "ops.softmax({x0}, axis={a})",
                 {"a": _axis_arg(b, axis, x.rank)})


@op("ops.matmul", lambda t: t.rank == 2 and last_fixed(t))
def ops_matmul(b: Builder, x: Tensor) -> Tensor:
    ch = b.ch
    d = x.fixed_at(1)
    if ch.bool():  # scores: (T1, d) @ (d, T2)
        other = _partner_seq(b, x, d)
        y = b.out((x.shape[0], other.shape[0]), (x.var[0], other.var[0]), like=x)
        return b.emit("ops.matmul", "ops.matmul({x0}, ops.swapaxes({x1}, 1, 2))", [x, other],
                      [y])[0]
    # (T, d) @ (d, e): a tensor whose first axis is d
    cands = [t for t in b.float_tensors() if t.rank == 2 and t.fixed_at(0) == d
             and t.fixed_at(1) is not None]
    if not cands:
        raise Reject("no (d, e) tensor")
    other = ch.choice(cands)
    y = b.out((x.shape[0], other.shape[1]), (x.var[0], False), like=x)
    return b.emit("ops.matmul", "ops.matmul({x0}, {x1})", [x, other], [y])[0]


@op("ops.einsum", lambda t: t.rank == 2 and last_fixed(t))
def ops_einsum(b: Builder, x: Tensor) -> Tensor:
    other = _partner_seq(b, x, x.fixed_at(1))
    y = b.out((x.shape[0], other.shape[0]), (x.var[0], other.var[0]), like=x)
    return b.emit("ops.einsum", "ops.einsum('btd,bsd->bts', {x0}, {x1})", [x, other], [y])[0]


@op("GetItem", lambda t: t.rank >= 1)
def get_item(b: Builder, x: Tensor) -> Tensor:
    ch = b.ch
    axis = ch.int(0, x.rank - 1)
    n = min(x.shape[axis])
    if n < 2:
        raise Reject("too short to slice")
    form = ch.choice(["start", "stop", "step", "both"])
    shape = list(x.shape)
    if form == "start":
        s = ch.int(1, min(3, n - 1))
        text, f = f"{s}:", (lambda v: v - s)
    elif form == "stop":
        s = ch.int(1, min(3, n - 1))
        text, f = f":-{s}", (lambda v: v - s)
    elif form == "step":
        s = ch.int(2, 3)
        text, f = f"::{s}", (lambda v: (v + s - 1) // s)
    else:
        lo = ch.int(0, 1)
        hi = ch.int(lo + 1, min(n, lo + 4))
        text, f = f"{lo}:{hi}", (lambda v: hi - lo)
    shape[axis] = amap(f, x.shape[axis])
    y = b.out(shape, x.var, like=x)  # Keras leaves a slice of an unknown axis unknown
    index = ", ".join([":"] * (axis + 1) + [text])
    return b.emit("GetItem", "{x0}[{idx}]", [x], [y], {"idx": index})[0]


@op("ops.pad", lambda t: t.rank >= 1)
def ops_pad(b: Builder, x: Tensor) -> Tensor:
    axis = b.ch.int(0, x.rank - 1)
    lo, hi = b.ch.int(0, 2), b.ch.int(0, 2)
    shape = list(x.shape)
    shape[axis] = amap(lambda v: v + lo + hi, x.shape[axis])
    pads = [[0, 0]] * (x.rank + 1)
    pads[axis + 1] = [lo, hi]
    y = b.out(shape, x.var, like=x)
    return b.emit("ops.pad", "ops.pad({x0}, {pads})", [x], [y], {"pads": pads})[0]


@op("ops.repeat", lambda t: t.rank >= 1)
def ops_repeat(b: Builder, x: Tensor) -> Tensor:
    axis = b.ch.int(0, x.rank - 1)
    r = b.ch.int(2, 3)
    shape = list(x.shape)
    shape[axis] = amap(lambda v: v * r, x.shape[axis])
    y = b.out(shape, x.var, like=x)
    return b.emit("ops.repeat", "ops.repeat({x0}, {r}, axis={a})", [x], [y],
                  {"r": r, "a": _axis_arg(b, axis, x.rank)})[0]


@op("ops.cumsum", lambda t: t.rank >= 1)
def ops_cumsum(b: Builder, x: Tensor) -> Tensor:
    axis = b.ch.int(0, x.rank - 1)
    return _same(b, x, "ops.cumsum", "ops.cumsum({x0}, axis={a})",
                 {"a": _axis_arg(b, axis, x.rank)})


# --- more layers --------------------------------------------------------------------------------


@op("RNN", seq_ok)
def rnn_cells(b: Builder, x: Tensor) -> Tensor:
    """``layers.RNN`` over one cell or a stack of cells."""
    ch = b.ch
    cells = [(ch.choice(["LSTMCell", "GRUCell", "SimpleRNNCell"]), ch.choice([2, 3, 4]))
             for _ in range(ch.choice([1, 1, 2]))]
    text = ", ".join(f"layers.{c}({u})" for c, u in cells)
    if len(cells) > 1:
        text = f"[{text}]" if ch.bool() else f"layers.StackedRNNCells([{text}])"
    units = cells[-1][1]
    seqs = ch.bool()
    y = _rnn_outputs(b, x, "RNN", units, seqs, 0)[0]
    return b.emit("RNN", "layers.RNN({cells}{extra})({x0})", [x], [y],
                  {"cells": text, "extra": kw(return_sequences=True if seqs else None)})[0]


def _conv_lstm(b: Builder, x: Tensor, n: int) -> Tensor:
    if any(x.var[1:]) or x.fixed_at(-1) is None:
        raise Reject("ConvLSTM needs static spatial axes")
    ch = b.ch
    k = [ch.int(1, 3) for _ in range(n)]
    padding = ch.choice(["valid", "same"])
    f = ch.choice([2, 3])
    seqs = ch.bool()
    spatial = [amap(lambda v: conv_len(v, kk, 1, 1, padding), x.shape[1 + i])
               for i, kk in enumerate(k)]
    if not all(positive(a) for a in spatial):
        raise Reject("window")
    shape = ([x.shape[0]] if seqs else []) + spatial + [fixed(f)]
    var = ([x.var[0]] if seqs else []) + [False] * n + [False]
    y = b.out(shape, var, like=x, reduced=x.reduced or (x.var[0] and not seqs))
    name = f"ConvLSTM{n}D"
    return b.emit(name, f"layers.{name}({f}, {{k}}{{extra}})({{x0}})", [x], [y],
                  {"k": k[0] if n == 1 else tuple(k),
                   "extra": kw(padding=padding if padding != "valid" else None,
                               return_sequences=True if seqs else None)})[0]


op("ConvLSTM1D", lambda t: t.rank == 3)(lambda b, x: _conv_lstm(b, x, 1))
op("ConvLSTM2D", lambda t: t.rank == 4)(lambda b, x: _conv_lstm(b, x, 2))


@op("RMSNormalization", lambda t: last_fixed(t))
def rms_norm(b: Builder, x: Tensor) -> Tensor:
    return _same(b, x, "RMSNormalization", "layers.RMSNormalization(axis=-1)({x0})")


op("Identity", lambda t: True)(lambda b, x: _same(b, x, "Identity", "layers.Identity()({x0})"))
op("Rescaling", lambda t: True)(
    lambda b, x: _same(b, x, "Rescaling", "layers.Rescaling(1 / 255.0, offset=-0.5)({x0})"))


@op("Resizing", lambda t: t.rank == 3 and last_fixed(t))
def resizing(b: Builder, x: Tensor) -> Tensor:
    ch = b.ch
    h, w = ch.int(2, 20), ch.int(2, 20)
    cls = ch.choice(["Resizing", "CenterCrop"])
    y = b.out((fixed(h), fixed(w), x.shape[2]), (False, False, False), like=x)
    return b.emit(cls, f"layers.{cls}({h}, {w})({{x0}})", [x], [y])[0]


def _adaptive(b: Builder, x: Tensor, n: int, kind: str) -> Tensor:
    ch = b.ch
    sizes = [ch.int(1, 4) for _ in range(n)]
    if any(min(x.shape[i]) < s for i, s in enumerate(sizes)):
        raise Reject("output larger than input")
    if kind == "Max" and 1 in sizes:
        # TensorFlow's adaptive max pooling pools with a window one longer than the axis
        # when an output size is 1, and the process dies (SIGFPE): a Keras bug, left out.
        raise Reject("adaptive max pooling to size 1")
    shape = [fixed(s) for s in sizes] + [x.shape[n]]
    y = b.out(shape, [False] * n + [x.var[n]], like=x, reduced=x.reduced or any(x.var[:n]))
    name = f"Adaptive{kind}Pooling{n}D"
    return b.emit(name, f"layers.{name}({{s}})({{x0}})", [x], [y],
                  {"s": sizes[0] if n == 1 else tuple(sizes)})[0]


for _n in (1, 2):
    for _k in ("Average", "Max"):
        op(f"Adaptive{_k}Pooling{_n}D", lambda t, n=_n: t.rank == n + 1)(
            lambda b, x, n=_n, k=_k: _adaptive(b, x, n, k))


@op("Lambda", lambda t: t.rank >= 1)
def lambda_layer(b: Builder, x: Tensor) -> Tensor:
    """A layer shapecheck has no rule for: its shape comes from Keras (the probe)."""
    ch = b.ch
    form = ch.choice(["scale", "double", "slice"])
    if form == "scale":
        return _same(b, x, "Lambda", "layers.Lambda(lambda v: v * 2.0 - 1.0)({x0})")
    if form == "double":
        shape = x.shape[:-1] + (amap(lambda v: 2 * v, x.shape[-1]),)
        y = b.out(shape, x.var, like=x)
        return b.emit("Lambda",
                      "layers.Lambda(lambda v: ops.concatenate([v, v], axis=-1))({x0})",
                      [x], [y])[0]
    if min(x.shape[0]) < 2:
        raise Reject("too short")
    y = b.out((amap(lambda v: v - 1, x.shape[0]),) + x.shape[1:], x.var, like=x)
    return b.emit("Lambda", "layers.Lambda(lambda v: v[:, 1:])({x0})", [x], [y])[0]


@op("Attention+scores", seq_ok)
def attention_scores(b: Builder, x: Tensor) -> Tensor:
    d = x.fixed_at(1)
    v = _partner_seq(b, x, d)
    y = b.out(x.shape, x.var, like=x, kind="attention")
    s = b.out((x.shape[0], v.shape[0]), (x.var[0], v.var[0]), like=x)
    cls = b.ch.choice(["Attention", "AdditiveAttention"])
    b.emit(cls, f"layers.{cls}()([{{x0}}, {{x1}}], return_attention_scores=True)",
           [x, v], [y, s])
    return y


@op("MultiHeadAttention+scores", lambda t: t.rank == 2 and last_fixed(t))
def mha_scores(b: Builder, x: Tensor) -> Tensor:
    ch = b.ch
    v = _partner_seq(b, x, None)
    heads = ch.choice([1, 2])
    y = b.out(x.shape, x.var, like=x, kind="mha")
    # Keras declares the scores (batch, heads, Tq, Tq) whatever the key's length: the last
    # axis counts as unknown, so no layer that needs its size is put on it
    s = b.out((fixed(heads), x.shape[0], v.shape[0]), (False, x.var[0], True), like=x)
    ins = [x, v]
    key = ""
    if ch.bool(0.3):
        ins.append(v)
        key = ", key={x2}"
    b.emit("MultiHeadAttention",
           f"layers.MultiHeadAttention({heads}, {ch.choice([2, 3])})"
           f"({{x0}}, {{x1}}{key}, return_attention_scores=True)", ins, [y, s])
    return y


@op("Bidirectional+state", seq_ok)
def bidirectional_state(b: Builder, x: Tensor) -> Tensor:
    ch = b.ch
    cls = ch.choice(["LSTM", "GRU"])
    units = ch.choice([2, 3])
    seqs = ch.bool()
    y = _rnn_outputs(b, x, cls, 2 * units, seqs, 0)[0]
    n_states = 4 if cls == "LSTM" else 2
    states = [b.out((fixed(units),), (False,), like=x, kind="state", reduced=True)
              for _ in range(n_states)]
    b.emit("Bidirectional", f"layers.Bidirectional(layers.{cls}({units}{{rs}}, "
           "return_state=True))({x0})", [x], [y] + states,
           {"rs": kw(return_sequences=True if seqs else None)})
    return y


def _nested(b: Builder, x: Tensor) -> Tensor:
    """A functional sub-model, or a Sequential, built for ``x`` and called on it."""
    if b.depth >= 2:
        raise Reject("deep enough")
    ch = b.ch
    b._n += 1
    tag = f"m{b._n}"
    sub = Builder(ch)
    sub.prefix, sub.depth = f"{tag}_", b.depth + 1
    sub.dims = b.dims
    seq = ch.bool(0.3)
    shape = "(" + ", ".join("None" if v else str(a[0]) for a, v in zip(x.shape, x.var)) + \
        ("," if x.rank == 1 else "") + ")"
    inp = Tensor(f"{tag}_in", x.shape, x.var, kind="input")
    sub.tensors[inp.name] = inp
    sub.order.append(inp.name)
    if seq:
        names = ["Dense", "Activation", "Dropout", "LayerNormalization", "Conv1D", "Conv2D",
                 "MaxPooling1D", "MaxPooling2D", "Flatten", "GlobalAveragePooling1D", "GRU"]
    else:
        names = [n for n in OP_NAMES if not n.startswith("nested")]
    table = [(n, f, a) for n, f, a in OPS if n in names]
    cur = inp
    for _ in range(ch.int(1, 4)):
        usable = [(n, f) for n, f, a in table if a(cur)]
        if not usable:
            break
        n_nodes = len(sub.nodes)
        name, fn = ch.choice(usable)
        try:
            cur = fn(sub, cur)
        except Reject:
            del sub.nodes[n_nodes:]
            continue
        if seq and (len(sub.nodes) != n_nodes + 1 or len(sub.nodes[-1].outs) != 1
                    or sub.nodes[-1].ins != [sub.nodes[-1].ins[0]]):
            raise Reject("a Sequential takes one chain of single-output layers")
    if not sub.nodes:
        raise Reject("empty sub-model")
    out = cur
    y = b.out(out.shape, out.var, like=x, kind="nested", reduced=x.reduced or out.reduced)
    if seq:
        calls = [node.template.format(**{**node.params, "x0": "@"}) for node in sub.nodes]
        if not all(c.endswith("(@)") for c in calls):
            raise Reject("not a chain")
        layers_text = ", ".join(c[:-3] for c in calls)
        b.nodes.append(Node(f"keras.Sequential([keras.Input(shape={shape}), {layers_text}])",
                            {}, [tag], [], "Sequential"))
    else:
        b.nodes.append(Node(f"keras.Input(shape={shape})", {}, [inp.name], [], "InputLayer"))
        b.nodes.extend(sub.nodes)
        b.nodes.append(Node(f"keras.Model({inp.name}, {out.name})", {}, [tag], [],
                            "Model"))
    return b.emit("nested", f"{tag}({{x0}})", [x], [y])[0]


op("nested", lambda t: True)(_nested)


# --- more keras.ops -----------------------------------------------------------------------------


@op("ops.take", lambda t: t.rank >= 1)
def ops_take(b: Builder, x: Tensor) -> Tensor:
    axis = b.ch.int(0, x.rank - 1)
    n = min(x.shape[axis])
    idx = [b.ch.int(0, n - 1) for _ in range(b.ch.int(1, 4))]
    shape = list(x.shape)
    shape[axis] = fixed(len(idx))
    var = list(x.var)
    var[axis] = False
    y = b.out(shape, var, like=x)
    return b.emit("ops.take", "ops.take({x0}, {idx}, axis={a})", [x], [y],
                  {"idx": idx, "a": _axis_arg(b, axis, x.rank)})[0]


@op("ops.one_hot", lambda t: t.rank >= 1 and t.rank <= 3)
def ops_one_hot(b: Builder, x: Tensor) -> Tensor:
    axis = b.ch.int(0, x.rank - 1)
    n = b.ch.choice([2, 3, 5])
    shape = [a for i, a in enumerate(x.shape) if i != axis] + [fixed(n)]
    var = [v for i, v in enumerate(x.var) if i != axis] + [False]
    y = b.out(shape, var, like=x, reduced=x.reduced or x.var[axis])
    return b.emit("ops.one_hot", "ops.one_hot(ops.argmax({x0}, axis={a}), {n})", [x], [y],
                  {"a": _axis_arg(b, axis, x.rank), "n": n})[0]


@op("ops.tile", lambda t: t.rank >= 1)
def ops_tile(b: Builder, x: Tensor) -> Tensor:
    reps = [b.ch.choice([1, 1, 2, 3]) for _ in range(x.rank)]
    shape = [amap(lambda v, r=r: v * r, a) for a, r in zip(x.shape, reps)]
    y = b.out(shape, x.var, like=x)
    return b.emit("ops.tile", "ops.tile({x0}, {r})", [x], [y], {"r": tup([1] + reps)})[0]


@op("ops.where", lambda t: True)
def ops_where(b: Builder, x: Tensor) -> Tensor:
    other = _partner(b, x)
    y = b.out(x.shape, x.var, like=x)
    return b.emit("ops.where", "ops.where({x0} > 0, {x0}, {x1})", [x, other], [y])[0]


@op("ops.flip", lambda t: t.rank >= 1)
def ops_flip(b: Builder, x: Tensor) -> Tensor:
    axis = b.ch.int(0, x.rank - 1)
    fn = b.ch.choice(["flip", "roll"])
    if fn == "flip":
        return _same(b, x, "ops.flip", "ops.flip({x0}, axis={a})",
                     {"a": _axis_arg(b, axis, x.rank)})
    return _same(b, x, "ops.roll", "ops.roll({x0}, {s}, axis={a})",
                 {"s": b.ch.int(-2, 2), "a": _axis_arg(b, axis, x.rank)})


@op("ops.moveaxis", lambda t: t.rank >= 2)
def ops_moveaxis(b: Builder, x: Tensor) -> Tensor:
    i, j = b.ch.sample(list(range(x.rank)), 2)
    order = [a for a in range(x.rank) if a != i]
    order.insert(j, i)
    y = b.out([x.shape[a] for a in order], [x.var[a] for a in order], like=x)
    return b.emit("ops.moveaxis", "ops.moveaxis({x0}, {i}, {j})", [x], [y],
                  {"i": _axis_arg(b, i, x.rank), "j": _axis_arg(b, j, x.rank)})[0]


@op("ops.diff", lambda t: t.rank >= 1)
def ops_diff(b: Builder, x: Tensor) -> Tensor:
    axis = b.ch.int(0, x.rank - 1)
    n = b.ch.int(1, 2)
    shape = list(x.shape)
    shape[axis] = amap(lambda v: v - n, x.shape[axis])
    if not positive(shape[axis]):
        raise Reject("too short")
    y = b.out(shape, x.var, like=x)
    return b.emit("ops.diff", "ops.diff({x0}, n={n}, axis={a})", [x], [y],
                  {"n": n, "a": _axis_arg(b, axis, x.rank)})[0]


@op("ops.unstack", lambda t: t.rank >= 2 and any(
    t.fixed_at(i) and t.fixed_at(i) <= 16 for i in range(t.rank)))
def ops_unstack(b: Builder, x: Tensor) -> Tensor:
    axis = b.ch.choice([i for i in range(x.rank) if x.fixed_at(i) and x.fixed_at(i) <= 16])
    n = x.fixed_at(axis)
    shape = [a for i, a in enumerate(x.shape) if i != axis]
    var = [v for i, v in enumerate(x.var) if i != axis]
    y = b.out(shape, var, like=x)
    return b.emit("ops.unstack", "ops.unstack({x0}, axis={a})[{i}]", [x], [y],
                  {"a": _axis_arg(b, axis, x.rank), "i": b.ch.int(0, n - 1)})[0]


@op("ops.sort", lambda t: t.rank >= 1)
def ops_sort(b: Builder, x: Tensor) -> Tensor:
    if last_fixed(x) and b.ch.bool():
        k = b.ch.int(1, x.fixed_at(-1))
        y = b.out(x.shape[:-1] + (fixed(k),), x.var[:-1] + (False,), like=x)
        return b.emit("ops.top_k", "ops.top_k({x0}, {k})[0]", [x], [y], {"k": k})[0]
    return _same(b, x, "ops.sort", "ops.sort({x0}, axis={a})",
                 {"a": _axis_arg(b, b.ch.int(0, x.rank - 1), x.rank)})


@op("ops.image.resize", lambda t: t.rank == 3)
def ops_resize(b: Builder, x: Tensor) -> Tensor:
    h, w = b.ch.int(2, 16), b.ch.int(2, 16)
    y = b.out((fixed(h), fixed(w), x.shape[2]), (False, False, x.var[2]), like=x)
    return b.emit("ops.image.resize", "ops.image.resize({x0}, ({h}, {w}))", [x], [y],
                  {"h": h, "w": w})[0]


@op("ops.logsumexp", lambda t: t.rank >= 2)
def ops_logsumexp(b: Builder, x: Tensor) -> Tensor:
    return _reduce(b, x, b.ch.choice(["logsumexp", "std", "var", "min", "prod"]))


# --- patterns ---------------------------------------------------------------------------------


@op("shared", lambda t: t.rank in (1, 2) and last_fixed(t))
def shared_layer(b: Builder, x: Tensor) -> Tensor:
    """One layer object called on two tensors (a siamese pair): same features, any lengths."""
    ch = b.ch
    cands = [t for t in b.float_tensors() if t.rank == x.rank and t.name != x.name
             and t.fixed_at(-1) == x.fixed_at(-1)]
    other = ch.choice(cands) if cands and ch.bool(0.8) else None
    if other is None:
        other = _variant(b, x)
    kinds = ["Dense", "LayerNormalization"]
    if x.rank == 2:
        kinds += ["Conv1D", "LSTM", "GRU", "MaxPooling1D"]
    kind = ch.choice(kinds)
    b._n += 1
    tag = f"shared{b._n}"
    outs = []
    if kind == "Dense":
        u = ch.choice([2, 3, 4])
        text = f"layers.Dense({u})"
        for t in (x, other):
            outs.append(b.out(t.shape[:-1] + (fixed(u),), t.var[:-1] + (False,), like=t))
    elif kind == "LayerNormalization":
        text = "layers.LayerNormalization()"
        outs = [b.out(t.shape, t.var, like=t) for t in (x, other)]
    elif kind == "Conv1D":
        f, k = ch.choice([2, 3]), ch.int(1, 3)
        padding = ch.choice(["valid", "same", "causal"])
        text = f"layers.Conv1D({f}, {k}, padding={padding!r})"
        for t in (x, other):
            length = amap(lambda v: conv_len(v, k, 1, 1, padding), t.shape[0])
            if not positive(length):
                raise Reject("window")
            outs.append(b.out((length, fixed(f)), (t.var[0], False), like=t))
    elif kind == "MaxPooling1D":
        p = ch.int(1, 3)
        text = f"layers.MaxPooling1D({p})"
        for t in (x, other):
            length = amap(lambda v: pool_len(v, p, p, "valid"), t.shape[0])
            if not positive(length):
                raise Reject("window")
            outs.append(b.out((length, t.shape[1]), t.var, like=t))
    else:
        u = ch.choice([2, 3])
        seqs = ch.bool()
        text = f"layers.{kind}({u}{kw(return_sequences=True if seqs else None)})"
        outs = [_rnn_outputs(b, t, kind, u, seqs, 0)[0] for t in (x, other)]
    b.nodes.append(Node(text, {}, [tag], [], "shared-layer"))
    b.emit(f"shared {kind}", f"{tag}({{x0}})", [x], [outs[0]])
    b.emit(f"shared {kind}", f"{tag}({{x0}})", [other], [outs[1]])
    return outs[0]


@op("skip", lambda t: 2 <= t.rank <= 4 and last_fixed(t))
def skip_connection(b: Builder, x: Tensor) -> Tensor:
    """Down by a stride, up by the same factor, joined with the input (a U-Net level):
    valid only at sizes the stride divides, which the probes are built to have."""
    ch = b.ch
    n = x.rank - 1
    s = ch.choice([2, 2, 3])
    if not all(all(v % s == 0 and v >= s for v in x.shape[i]) for i in range(n)):
        raise Reject("the stride does not divide the sizes")
    c = x.fixed_at(-1)
    down_kind = ch.choice(["pool", "conv"])
    shape = [amap(lambda v: v // s, x.shape[i]) for i in range(n)]
    if down_kind == "pool":
        cls = ch.choice(["Max", "Average"])
        d = b.out(shape + [fixed(c)], x.var, like=x)
        b.emit(f"{cls}Pooling{n}D", f"layers.{cls}Pooling{n}D({s}{{pad}})({{x0}})", [x], [d],
               {"pad": kw(padding=ch.choice([None, "same"]))})
    else:
        f = ch.choice([2, 4, 8])
        d = b.out(shape + [fixed(f)], x.var, like=x)
        b.emit(f"Conv{n}D", f"layers.Conv{n}D({f}, {s}, strides={s}{{pad}})({{x0}})", [x], [d],
               {"pad": kw(padding=ch.choice([None, "same"]))})
    up_kind = ch.choice(["upsample", "transpose"]) if n <= 3 else "transpose"
    if up_kind == "upsample":
        u = b.out(x.shape[:n] + (d.shape[-1],), x.var[:n] + (False,), like=x)
        b.emit(f"UpSampling{n}D", f"layers.UpSampling{n}D({s})({{x0}})", [d], [u])
    else:
        f = c if ch.bool() else ch.choice([2, 3])
        u = b.out(x.shape[:n] + (fixed(f),), x.var[:n] + (False,), like=x)
        b.emit(f"Conv{n}DTranspose",
               f"layers.Conv{n}DTranspose({f}, {s}, strides={s}{{pad}})({{x0}})", [d], [u],
               {"pad": kw(padding=ch.choice([None, "same"]))})
    if u.fixed_at(-1) == c and ch.bool():
        y = b.out(x.shape, x.var, like=x, kind="merge")
        return b.emit("Add", "layers.Add()([{x0}, {x1}])", [x, u], [y])[0]
    y = b.out(x.shape[:-1] + (fixed(c + u.fixed_at(-1)),), x.var, like=x, kind="concat")
    return b.emit("Concatenate", "layers.Concatenate({a})([{x0}, {x1}])", [x, u], [y],
                  {"a": ""}, meta={"axis": x.rank - 1})[0]


@op("Reshape-1", lambda t: t.rank >= 2 and t.var[0] and not any(t.var[1:]))
def reshape_minus_one(b: Builder, x: Tensor) -> Tensor:
    """``Reshape((-1, f))`` over a variable axis: the -1 is ``T * rest / f``."""
    ch = b.ch
    rest = math.prod(a[0] for a in x.shape[1:])
    f = ch.choice([d for d in range(1, 4 * rest + 1)
                   if all((v * rest) % d == 0 for v in x.shape[0])])
    steps = tuple(v * rest // f for v in x.shape[0])
    if f == rest:
        raise Reject("no change")
    y = b.out((steps, fixed(f)), (True, False), like=x)
    return b.emit("Reshape", "layers.Reshape((-1, {f}))({x0})", [x], [y], {"f": f})[0]


@op("GetItem+", lambda t: t.rank >= 1)
def get_item_more(b: Builder, x: Tensor) -> Tensor:
    """Indexing beyond slices: an int drops an axis, None adds one, ``...``, negatives."""
    ch = b.ch
    axis = ch.int(0, x.rank - 1)
    n = min(x.shape[axis])
    form = ch.choice(["int", "newaxis", "ellipsis", "negative", "reverse"])
    shape, var = list(x.shape), list(x.var)
    if form == "int":
        if x.rank < 2:
            raise Reject("keep an axis")
        i = ch.int(-n, n - 1)
        del shape[axis], var[axis]
        index = ", ".join([":"] * (axis + 1) + [str(i)])
    elif form == "newaxis":
        shape.insert(axis, fixed(1))
        var.insert(axis, False)
        index = ", ".join([":"] * (axis + 1) + ["None"])
    elif form == "ellipsis":
        if axis != x.rank - 1 or n < 2:
            axis = x.rank - 1
            n = min(x.shape[axis])
            if n < 2:
                raise Reject("short")
        k = ch.int(1, n - 1)
        shape[axis] = amap(lambda v: v - k, x.shape[axis])
        index = f"..., {k}:"
    elif form == "negative":
        k = ch.int(1, n)
        shape[axis] = fixed(k)  # Keras leaves it unknown on an unknown axis
        index = ", ".join([":"] * (axis + 1) + [f"-{k}:"])
    else:
        index = ", ".join([":"] * (axis + 1) + ["::-1"])
    y = b.out(shape, var, like=x)
    return b.emit("GetItem", "{x0}[{idx}]", [x], [y], {"idx": index})[0]


@op("centre", lambda t: t.rank >= 2)
def centre(b: Builder, x: Tensor) -> Tensor:
    """``x - mean(x, axis, keepdims=True)``: a same-rank broadcast over a size-1 axis."""
    axis = b.ch.int(0, x.rank - 1)
    a = _axis_arg(b, axis, x.rank)
    form = b.ch.choice(["{x0} - ops.mean({x0}, axis={a}, keepdims=True)",
                        "ops.divide({x0}, ops.max({x0}, axis={a}, keepdims=True) + 1.0)",
                        "layers.Subtract()([{x0}, ops.mean({x0}, axis={a}, keepdims=True)])"])
    return _same(b, x, "centre", form, {"a": a})


@op("conditioned-state", seq_ok)
def conditioned_state(b: Builder, x: Tensor) -> Tensor:
    """An RNN whose initial states are made from another tensor (a vector per sample)."""
    ch = b.ch
    vecs = [t for t in b.float_tensors() if t.rank == 1 and t.fixed_at(0) is not None]
    src = ch.choice(vecs) if vecs else None
    if src is None:
        src = b.out((x.shape[1],), (False,), like=x, reduced=True)
        b.emit("GlobalAveragePooling1D", "layers.GlobalAveragePooling1D()({x0})", [x], [src])
    cls = ch.choice(["LSTM", "GRU", "SimpleRNN"])
    units = ch.choice([2, 3, 4])
    n = 2 if cls == "LSTM" else 1
    states = []
    for _ in range(n):
        s = b.out((fixed(units),), (False,), like=src)
        b.emit("Dense", "layers.Dense({u}, activation='tanh')({x0})", [src], [s], {"u": units})
        states.append(s)
    seqs = ch.bool()
    y = _rnn_outputs(b, x, cls, units, seqs, 0)[0]
    return b.emit(cls, f"layers.{cls}({units}{{rs}})({{x0}}, initial_state=[{{states}}])",
                  [x] + states, [y], {"rs": kw(return_sequences=True if seqs else None),
                                      "states": ", ".join(t.name for t in states)},
                  meta={"initial_state": [t.name for t in states], "units": units})[0]


@op("Concatenate3", lambda t: t.rank >= 1)
def concatenate3(b: Builder, x: Tensor) -> Tensor:
    ch = b.ch
    axis = ch.int(0, x.rank - 1)
    parts = [x] + [_concat_partner(b, x, axis) for _ in range(ch.int(2, 3))]
    shape = list(x.shape)
    shape[axis] = tuple(sum(t.shape[axis][k] for t in parts) for k in range(K))
    var = list(x.var)
    var[axis] = any(t.var[axis] for t in parts)
    y = b.out(shape, var, like=x, kind="concat")
    items = ", ".join(t.name for t in parts)
    if ch.bool(0.3):
        return b.emit("ops.concatenate", "ops.concatenate([{items}], axis={a})", parts, [y],
                      {"items": items, "a": _axis_arg(b, axis, x.rank)})[0]
    return b.emit("Concatenate", "layers.Concatenate(axis={a})([{items}])", parts, [y],
                  {"items": items, "a": _axis_arg(b, axis, x.rank)}, meta={"axis": axis})[0]


@op("MultiHeadAttention-axes", lambda t: t.rank == 3 and last_fixed(t))
def mha_axes(b: Builder, x: Tensor) -> Tensor:
    def scores(axes: tuple) -> int:  # elements of the attention scores, per sample
        sizes = [max(x.shape[a - 1][k] for k in range(K)) for a in (1, 2)]
        attended = math.prod(sizes[a - 1] for a in axes)
        return 2 * attended * attended * math.prod(sizes) // attended

    # (batch, heads, 200, 63, 200, 63) would be 6 GB at a batch of 5
    axes = b.ch.choice([a for a in [(1,), (2,), (1, 2)] if scores(a) <= 2_000_000] or [(2,)])
    y = b.out(x.shape, x.var, like=x, kind="mha")
    return b.emit("MultiHeadAttention",
                  "layers.MultiHeadAttention(2, 3, attention_axes={ax})({x0}, {x0})", [x], [y],
                  {"ax": axes})[0]


@op("Bidirectional-backward", seq_ok)
def bidirectional_backward(b: Builder, x: Tensor) -> Tensor:
    ch = b.ch
    u = ch.choice([2, 3])
    seqs = ch.bool()
    rs = kw(return_sequences=True if seqs else None)
    y = _rnn_outputs(b, x, "LSTM", 2 * u, seqs, 0)[0]
    return b.emit("Bidirectional",
                  f"layers.Bidirectional(layers.LSTM({u}{rs}), backward_layer="
                  f"layers.GRU({u}{rs}, go_backwards=True))({{x0}})", [x], [y])[0]


@op("TimeDistributed-model", lambda t: t.rank == 3 and t.fixed_at(-1) is not None
    and t.fixed_at(1) is not None)
def time_distributed_model(b: Builder, x: Tensor) -> Tensor:
    """TimeDistributed over a Sequential block applied at each step."""
    ch = b.ch
    L, C = x.fixed_at(1), x.fixed_at(2)
    k = ch.int(1, min(3, L))
    f = ch.choice([2, 3])
    u = ch.choice([2, 4])
    y = b.out((x.shape[0], fixed(u)), (x.var[0], False), like=x)
    text = (f"keras.Sequential([keras.Input(shape=({L}, {C})), layers.Conv1D({f}, {k}), "
            f"layers.GlobalMaxPooling1D(), layers.Dense({u})])")
    return b.emit("TimeDistributed", "layers.TimeDistributed({m})({x0})", [x], [y],
                  {"m": text})[0]


OP_NAMES = [name for name, _, _ in OPS]


# --- whole graphs -------------------------------------------------------------------------------


def _inputs(b: Builder, count: int | None = None) -> None:
    ch = b.ch
    n = count or ch.choice([1, 1, 1, 2, 2, 3])
    for i in range(n):
        kind = ch.choice(["seq", "seq", "image", "image", "volume", "ids", "vector"])
        var = ch.bool(0.7)
        if kind == "seq":
            if i and ch.bool(0.3) and any(inp.dims[0] for inp in b.inputs if len(inp.shape) == 2):
                like = ch.choice([inp for inp in b.inputs if len(inp.shape) == 2 and inp.dims[0]])
                b.reuse_dim_input(like, last=ch.choice([2, 4, 6, 8]))
                continue
            t = ("T", 8, 40) if var else ch.int(6, 40)
            b.add_input([t, ch.choice([1, 2, 3, 4, 6, 8, 12])])
        elif kind == "image":
            h = ("H", 10, 36) if var else ch.int(8, 32)
            w = ("W", 10, 36) if var and ch.bool(0.8) else ch.int(8, 32)
            b.add_input([h, w, ch.choice([1, 2, 3, 4])])
        elif kind == "volume":
            d = ("D", 5, 12) if var else ch.int(4, 12)
            b.add_input([d, ch.int(5, 12), ("W", 5, 12) if var and ch.bool() else ch.int(5, 12),
                         ch.choice([1, 2, 3])])
        elif kind == "ids":
            t = ("T", 6, 30) if var else ch.int(4, 30)
            ids = b.add_input([t], dtype="int32")
            vocab, width = ch.choice([5, 10, 50]), ch.choice([2, 4, 8])
            y = b.out((ids.shape[0], fixed(width)), (ids.var[0], False), kind="embedding")
            b.emit("Embedding", "layers.Embedding({v}, {w}{extra})({x0})", [ids], [y],
                   {"v": vocab, "w": width, "extra": kw(mask_zero=None)})
        else:
            b.add_input([ch.choice([2, 3, 5, 8, 16])])


def _pick(b: Builder) -> Tensor:
    ch = b.ch
    floats = b.float_tensors()
    open_ = [t for t in floats if t.name not in b.consumed]
    if open_ and ch.bool(0.75):
        return open_[-1] if ch.bool(0.6) else ch.choice(open_)
    return ch.choice(floats)


def generate(ch: Chooser, *, min_layers: int = 3, max_layers: int = 12,
             ops: Sequence[str] | None = None, sequential: float = 0.1) -> GraphSpec:
    """A random valid graph; ``ops`` limits the layer types (all when None); a share
    ``sequential`` of the graphs are ``keras.Sequential`` chains."""
    b = Builder(ch)
    table = [(n, f, a) for n, f, a in OPS if ops is None or n in ops]
    if ch.bool(sequential):
        return _sequential(b, table, ch.int(min_layers, max_layers))
    _inputs(b)
    steps = ch.int(min_layers, max_layers)
    attempts = 0
    while len(b.nodes) < steps and attempts < steps * 8:
        attempts += 1
        x = _pick(b)
        usable = [(n, f) for n, f, a in table if a(x)]
        if not usable:
            continue
        name, fn = ch.choice(usable)
        mark = (len(b.nodes), b._n, set(b.consumed), list(b.order))
        try:
            fn(b, x)
        except Reject:
            del b.nodes[mark[0]:]
            b.consumed = mark[2]
            b.order = mark[3]
    return finish(b)


def _sequential(b: Builder, table: list, steps: int) -> GraphSpec:
    """A chain of layers, each on the last one's output: a ``keras.Sequential``."""
    ch = b.ch
    _inputs(b, count=1)
    cur = b.tensors[b.order[-1]]
    attempts = 0
    while len(b.nodes) < steps and attempts < steps * 8:
        attempts += 1
        usable = [(n, f) for n, f, a in table if a(cur)]
        if not usable:
            break
        name, fn = ch.choice(usable)
        mark = (len(b.nodes), set(b.consumed), list(b.order))
        try:
            out = fn(b, cur)
            new = b.nodes[mark[0]:]
            if len(new) != 1 or new[0].ins != [cur.name] or new[0].outs != [out.name] \
                    or not new[0].template.startswith("layers.") \
                    or not new[0].template.endswith("({x0})"):
                raise Reject("not one layer on the last output")
            cur = out
        except Reject:
            del b.nodes[mark[0]:]
            b.consumed, b.order = mark[1], mark[2]
    spec = finish(b)
    spec.outputs = [cur.name]
    spec.sequential = True
    return spec


def finish(b: Builder) -> GraphSpec:
    outputs = [n for n in b.order if n not in b.consumed]
    if not outputs:
        outputs = [b.order[-1]]
    # every input reaches an output: an input nothing consumed is an output itself
    tensors = {n: b.tensors[n] for n in b.order}
    return GraphSpec(list(b.inputs), list(b.nodes), outputs, dict(b.dims), tensors)


# --- injected bugs ------------------------------------------------------------------------------

BUG_KINDS = ("concat-axis", "wrong-units", "missing-flatten", "dropped-state", "sequences-mix")


def rebuild(spec: GraphSpec, ch: Chooser) -> Builder:
    """A builder holding ``spec``'s graph, ready for more nodes."""
    b = Builder(ch)
    b.inputs = list(spec.inputs)
    b.nodes = copy.deepcopy(spec.nodes)
    b.dims = dict(spec.dims)
    b.tensors = dict(spec.tensors)
    b.order = list(spec.tensors)
    b.consumed = {n for node in spec.nodes for n in node.ins}
    b._n = max([int(n[1:]) for n in b.order if n.startswith("t")] + [0])
    return b


def inject(spec: GraphSpec, kind: str, ch: Chooser) -> GraphSpec | None:
    """A graph derived from ``spec`` with one shape bug of ``kind`` (None: no site for it)."""
    b = rebuild(spec, ch)
    fn = {"concat-axis": _bug_concat_axis, "wrong-units": _bug_wrong_units,
          "missing-flatten": _bug_missing_flatten, "dropped-state": _bug_dropped_state,
          "sequences-mix": _bug_sequences_mix}[kind]
    try:
        note = fn(b)
    except Reject:
        return None
    if note is None:
        return None
    out = finish(b)
    if [n.line() for n in out.nodes] == [n.line() for n in spec.nodes]:
        raise AssertionError(f"injecting {kind} left the graph as it was")
    compile(out.source(), f"<{kind}>", "exec")  # a SyntaxError is the generator's bug
    out.bug, out.bug_note = kind, note[0]
    out.extra, out.refs = note[1], note[2]
    return out


def _bug_concat_axis(b: Builder) -> tuple | None:
    ch = b.ch
    # an existing Concatenate layer whose inputs differ in fixed size on its axis
    sites = []
    for i, node in enumerate(b.nodes):
        if node.kind == "Concatenate" and "axis" in node.meta and all(
                n in b.tensors for n in node.ins):
            xs = [b.tensors[n] for n in node.ins]
            a = node.meta["axis"]
            fixed_sizes = {t.fixed_at(a) for t in xs}
            if None not in fixed_sizes and len(fixed_sizes) > 1 and xs[0].rank >= 2:
                sites.append(i)
    if sites and ch.bool(0.6):
        i = ch.choice(sites)
        node = b.nodes[i]
        rank = b.tensors[node.ins[0]].rank
        new = ch.choice([a for a in range(rank) if a != node.meta["axis"]])
        node.params["a"] = new + 1 if "axis={a}" in node.template else f"axis={new + 1}"
        return (f"{node.outs[0]}: concatenated on axis {new + 1}, where the inputs differ on "
                f"axis {node.meta['axis'] + 1}", [], {})
    # append: x and a branch that differs on one axis, joined on another
    cands = [t for t in b.float_tensors() if t.rank >= 2]
    if not cands:
        return None
    x = ch.choice(cands)
    if last_fixed(x) and ch.bool(0.5):  # a wider last axis, joined along another axis
        c = x.fixed_at(-1)
        u = c + ch.choice([1, 2, 3])
        y = b.out(x.shape[:-1] + (fixed(u),), x.var[:-1] + (False,), like=x)
        b.emit("Dense", "layers.Dense({u})({x0})", [x], [y], {"u": u})
        axis = ch.int(0, x.rank - 2)
        z = b.out(x.shape, x.var, like=x)
        b.emit("Concatenate", "layers.Concatenate(axis={a})([{x0}, {x1}])", [x, y], [z],
               {"a": axis + 1})
        return (f"{z.name}: axis {axis + 1} joined, last axes {c} and {u} differ", [], {})
    # a shorter axis (crop), joined along the last axis: sizes n and n - k never agree
    axis = ch.int(0, x.rank - 2)
    if min(x.shape[axis]) < 3:
        return None
    k = ch.int(1, 2)
    shape = list(x.shape)
    shape[axis] = amap(lambda v: v - k, x.shape[axis])
    y = b.out(shape, x.var, like=x)
    index = ", ".join([":"] * (axis + 1) + [f"{k}:"])
    b.emit("GetItem", "{x0}[{idx}]", [x], [y], {"idx": index})
    z = b.out(x.shape, x.var, like=x)
    b.emit("Concatenate", "layers.Concatenate(axis=-1)([{x0}, {x1}])", [x, y], [z])
    return (f"{z.name}: joined on the last axis; axis {axis + 1} is n and n - {k}", [], {})


def _downstream(nodes: list[Node], tensor: str) -> set[str]:
    """The tensors computed from ``tensor`` (itself included)."""
    out = {tensor}
    for node in nodes:  # in the script's order: producers before consumers
        if any(n in out for n in node.ins):
            out.update(node.outs)
    return out


def _bug_wrong_units(b: Builder) -> tuple | None:
    ch = b.ch
    sites = []
    for i, node in enumerate(b.nodes):
        if node.meta.get("merge") in ("Add", "Multiply", "Subtract", "Average", "Maximum",
                                      "Minimum"):
            for name in node.ins:
                prod = next((n for n in b.nodes if name in n.outs), None)
                if prod is not None and prod.kind == "Dense" and "units" in prod.params \
                        and prod.params["units"] > 1:
                    # the other inputs must not come from the Dense too (a merge of its
                    # output and a dropout of it stays valid for any units)
                    after = _downstream(b.nodes, prod.outs[0])
                    if any(o in after for o in node.ins if o != name):
                        continue
                    others = [b.tensors[o] for o in node.ins if o != name and o in b.tensors]
                    if all(o.fixed_at(-1) not in (None, 1) for o in others):
                        sites.append(prod)
    if sites and ch.bool(0.6):
        prod = ch.choice(sites)
        old = prod.params["units"]
        prod.params["units"] = old + ch.choice([1, 2, 3])
        return (f"{prod.outs[0]}: Dense({prod.params['units']}) where the merge needs {old}",
                [], {})
    cands = [t for t in b.float_tensors() if last_fixed(t) and t.fixed_at(-1) > 1]
    if not cands:
        return None
    x = ch.choice(cands)
    c = x.fixed_at(-1)
    u = c + ch.choice([-1, 1, 2, 3]) if c > 2 else c + ch.choice([1, 2, 3])
    y = b.out(x.shape[:-1] + (fixed(u),), x.var[:-1] + (False,), like=x)
    b.emit("Dense", "layers.Dense({u})({x0})", [x], [y], {"u": u})
    cls = ch.choice(["Add", "Multiply", "Subtract", "Average", "Maximum"])
    z = b.out(x.shape, x.var, like=x)
    b.emit(cls, f"layers.{cls}()([{{x0}}, {{x1}}])", [x, y], [z])
    return (f"{z.name}: {cls} of last axes {c} and {u}", [], {})


def _bug_missing_flatten(b: Builder) -> tuple | None:
    ch = b.ch
    cands = [t for t in b.float_tensors() if t.rank == 3 and last_fixed(t)]
    if not cands:  # make one: a conv over an image input, or over a new one
        imgs = [t for t in b.float_tensors() if t.rank == 3 and last_fixed(t)]
        if not imgs:
            x = b.add_input([ch.int(8, 16), ch.int(8, 16), 3])
        else:
            x = imgs[0]
        y = b.out((amap(lambda v: v - 2, x.shape[0]), amap(lambda v: v - 2, x.shape[1]),
                   fixed(4)), x.var[:2] + (False,), like=x, kind="conv")
        b.emit("Conv2D", "layers.Conv2D(4, 3)({x0})", [x], [y])
        cands = [y]
    x = ch.choice(cands)
    n = ch.choice([2, 3, 5, 10])
    if ch.bool():  # a head whose 2-D targets the loss compares with a 4-D output
        head = b.out(x.shape[:-1] + (fixed(n),), x.var[:-1] + (False,), like=x)
        b.emit("Dense", "layers.Dense({n}, activation='softmax')({x0})", [x], [head], {"n": n})
        return (f"{head.name}: Dense over {x.describe()} without Flatten; targets are "
                f"(batch, {n})", [], {"head": head.name, "classes": n})
    # joined with a 2-D tensor: Concatenate needs equal ranks
    pooled = b.out((x.shape[-1],), (False,), like=x, reduced=True)
    b.emit("GlobalAveragePooling2D", "layers.GlobalAveragePooling2D()({x0})", [x], [pooled])
    vec = b.out((fixed(n),), (False,), like=x)
    b.emit("Dense", "layers.Dense({n})({x0})", [pooled], [vec], {"n": n})
    head = b.out(x.shape[:-1] + (fixed(n),), x.var[:-1] + (False,), like=x)
    b.emit("Dense", "layers.Dense({n})({x0})", [x], [head], {"n": n})
    z = b.out((fixed(2 * n),), (False,), like=x)
    b.emit("Concatenate", "layers.Concatenate()([{x0}, {x1}])", [head, vec], [z])
    return (f"{z.name}: a Dense over {x.describe()} without Flatten joined with a 2-D tensor",
            [], {})


def _sequence_for_rnn(b: Builder) -> tuple[Tensor, int]:
    """A sequence to put an RNN on (a new input where there is none) and its units."""
    ch = b.ch
    cands = [t for t in b.float_tensors() if seq_ok(t)]
    x = ch.choice(cands) if cands else b.add_input([("T", 8, 30), ch.choice([2, 4, 8])])
    return x, ch.choice([2, 3, 4, 8])


def _bug_dropped_state(b: Builder) -> tuple | None:
    ch = b.ch
    sites = [n for n in b.nodes if n.kind == "LSTM" and "initial_state" in n.meta]
    if sites and ch.bool(0.6):
        node = ch.choice(sites)
        states = node.meta["initial_state"]
        keep = ch.choice(states)
        node.params["states"] = keep
        return (f"{node.outs[0]}: an LSTM given 1 of its 2 states", [], {})
    x, units = _sequence_for_rnn(b)
    if ch.bool(0.3):  # a Bidirectional(LSTM) given the two states of one direction
        outs = _rnn_outputs(b, x, "LSTM", units, False, 2)
        b.emit("LSTM", f"layers.LSTM({units}, return_state=True)({{x0}})", [x], outs)
        dec_in = _pick_seq(b, x)
        y = _rnn_outputs(b, dec_in, "LSTM", 2 * units, False, 0)[0]
        b.emit("Bidirectional", f"layers.Bidirectional(layers.LSTM({units}))({{x0}}, "
               f"initial_state=[{outs[1].name}, {outs[2].name}])", [dec_in] + outs[1:], [y])
        return (f"{y.name}: a Bidirectional(LSTM) given 2 of its 4 states", [], {})
    outs = _rnn_outputs(b, x, "LSTM", units, False, 2)
    b.emit("LSTM", f"layers.LSTM({units}, return_state=True)({{x0}})", [x], outs)
    dec_in = _pick_seq(b, x)
    douts = _rnn_outputs(b, dec_in, "LSTM", units, ch.bool(), 0)
    keep = ch.choice(outs[1:])
    b.emit("LSTM", f"layers.LSTM({units}{{rs}})({{x0}}, initial_state=[{keep.name}])",
           [dec_in, keep], douts, {"rs": kw(return_sequences=True if douts[0].rank == 2
                                            else None)})
    return (f"{douts[0].name}: an LSTM given 1 of its 2 states", [], {})


def _bug_sequences_mix(b: Builder) -> tuple | None:
    ch = b.ch
    x, units = _sequence_for_rnn(b)
    cls_a, cls_b = ch.choice(["LSTM", "GRU", "SimpleRNN"]), ch.choice(["LSTM", "GRU"])
    seq = _rnn_outputs(b, x, cls_a, units, True, 0)[0]
    b.emit(cls_a, f"layers.{cls_a}({units}, return_sequences=True)({{x0}})", [x], [seq])
    last = _rnn_outputs(b, x, cls_b, units, False, 0)[0]
    b.emit(cls_b, f"layers.{cls_b}({units})({{x0}})", [x], [last])
    z = b.out(seq.shape, seq.var, like=seq)
    cls = ch.choice(["Add", "Multiply", "Average", "Subtract"])
    ins = [seq, last] if ch.bool() else [last, seq]
    b.emit(cls, f"layers.{cls}()([{{x0}}, {{x1}}])", ins, [z])
    return (f"{z.name}: {cls} of a return_sequences=True output and a last step", [], {})
