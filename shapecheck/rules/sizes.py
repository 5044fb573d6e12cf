"""SC2xx sizes, windows and reshapes: axes that shrink to nothing, element counts
that do not add up, literal sizes that pin what the inputs leave free.

Also :func:`minimum_sizes`: the smallest size of each variable input dim that
every window of the model fits (not a finding; reports show it as ``H >= 32``).
"""

from __future__ import annotations

import math
import re
from typing import Any, Iterator

import networkx as nx

from shapecheck.rules import define, failure_check, model_check
from shapecheck.rules.construction import CLAIMED_BY_FAMILIES
from shapecheck.rules.context import ModelContext, failure_finding, failure_shapes, source_line
from shapecheck.rules.minimum import input_dim_names
from shapecheck.rules.windows import (REFUSED_WINDOW, WINDOW_CLASS, describe, from_keras_text,
                                      inner_layer, too_short, window_axes, window_hint)
from shapecheck.shapes import dims
from shapecheck.shapes.dims import Dim
from shapecheck.shapes.graph import LayerCall


SHRINKS = define("SC201", "axis-shrinks-to-zero", "error",
                 "a convolution, pooling or cropping window does not fit its axis", """
    ## What it does
    Finds a convolution, pooling or cropping layer whose window (kernel size
    times dilation, pool size, or the steps cropped) is larger than the axis
    it slides along, so that the output axis would have zero or fewer steps.
    It names the axis, its size, the window and, when the axis was shrunk by
    earlier layers, which ones. When another axis of the input is large enough
    for the window, it says that the axes look swapped (time and features,
    channels first).

    ## Why is this bad
    Keras refuses the call with "Computed output size would be zero or
    negative" and the whole shape, without saying which axis is too short;
    where the size is unknown until run time, the first batch fails instead.

    ## Example
    ```python
    x = keras.Input(shape=(3, 100))          # 3 sensors x 100 time steps
    y = layers.Conv1D(16, 5)(x)              # slides along the 3, not the 100
    ```

    ## Use instead
    ```python
    x = keras.Input(shape=(3, 100))
    y = layers.Conv1D(16, 5)(layers.Permute((2, 1))(x))   # (batch, 100, 3)
    ```
    """)

RESHAPE_SIZE = define("SC202", "reshape-size", "error",
                      "a Reshape target does not hold the input's elements", """
    ## What it does
    Compares the elements per sample of a `Reshape`'s input with its target
    shape: a target of another size, or a `-1` that would not be a whole
    number. It shows the element count (`32*32*16 = 16384`) and, when one
    exists, a target that fits (the size the last axis needs, or where the
    `-1` goes). It also finds an `ops.reshape` (or `ops.broadcast_to`) whose
    target holds a size read from a Keras tensor's shape (`ops.shape(x)[0]` is
    None while the model is built, and the op keeps the None).

    ## Why is this bad
    Keras refuses the call ("The total size of the tensor must be unchanged")
    when it knows the sizes; when they depend on sizes known only at run time,
    the model builds and the first batch fails.

    ## Example
    ```python
    x = keras.Input(shape=(32, 32, 16))
    y = layers.Reshape((32, 500))(x)         # 16000 slots for 16384 elements
    ```

    ## Use instead
    ```python
    y = layers.Reshape((32, 512))(x)         # or layers.Reshape((32, -1))
    ```
    """)

FROZEN_DIM = define("SC203", "frozen-dim", "warning",
                    "a literal size fixes a dim that a model input leaves variable", """
    ## What it does
    Finds a literal size that pins down a size a model input declares as
    variable (`None`):

    - a `RepeatVector(n)` whose input comes from a variable-length sequence
      and whose steps reach a model output: the output always has `n` steps,
      whatever the input's length (the sequence autoencoder pattern);
    - a `Reshape` to a literal target after an input of variable size: it
      works only for the input sizes whose element count matches the target.

    ## Why is this bad
    The model builds and accepts inputs of any length, but targets of another
    length than `n`, or inputs of another size than the Reshape assumes, fail
    in `fit` or `predict`, far from the line that fixed the size. Where the
    script feeds that output targets of exactly `n` steps, they agree with the
    decoder and the `RepeatVector` is not reported.

    ## Example
    ```python
    seq = keras.Input(shape=(None, 8))       # any length T
    code = layers.LSTM(32)(seq)
    steps = layers.RepeatVector(10)(code)    # always 10 steps
    out = layers.LSTM(8, return_sequences=True)(steps)
    autoencoder = keras.Model(seq, out)      # fit(x, x) fails for T != 10
    ```

    ## Use instead
    ```python
    seq = keras.Input(shape=(10, 8))         # the length the decoder makes
    code = layers.LSTM(32)(seq)
    steps = layers.RepeatVector(10)(code)
    out = layers.LSTM(8, return_sequences=True)(steps)
    ```
    """, outcome="silent")


@failure_check(priority=40)
def refused_window(failure: Any, ctx: ModelContext | None, call: Any) -> Any:
    """Keras refused a convolution, pooling or cropping whose window does not fit."""
    if not REFUSED_WINDOW.search(failure.message):
        return None
    op = failure.op
    shapes = failure_shapes(failure, ctx, call)
    x = shapes[0] if shapes else None
    kernel = tuple(failure.input_shapes[1]) if len(failure.input_shapes) > 1 else None
    windows = window_axes(op, x, kernel) if x is not None else None
    name = f"{type(op).__name__} `{getattr(op, 'name', '?')}`"
    if windows is None:  # e.g. a nested model: Keras's text names the window
        inner = from_keras_text(failure.message)
        if inner is not None:
            window, raw, kernel = inner
            x = (dims.named("batch"),) + raw[1:]
            windows = window_axes(window, x, kernel)
            layer = inner_layer(op, window, kernel)
            name = (f"{type(layer).__name__} `{layer.name}` inside {name}" if layer is not None
                    else f"a layer inside {name}")
            op = window
    bad = too_short(windows or [])
    if windows is None and not WINDOW_CLASS.search(type(op).__name__):
        return None  # not a window this rule knows: let the others explain it
    if x is None or not bad:
        first = failure.message.strip().splitlines()[0]
        return failure_finding(
            SHRINKS, failure, ctx, call,
            f"{name}: a window does not fit its input ({first})",
            shapes={"input": x} if x is not None else None,
            hint="use `padding=\"same\"`, a smaller window, or a larger input")
    return failure_finding(SHRINKS, failure, ctx, call, describe(name, x, bad, op),
                           shapes={"input": x}, hint=window_hint(ctx, call, op, x, bad))


def _follows_refusal(ctx: ModelContext, call: LayerCall) -> bool:
    return any(ctx.by_id[a].failure is not None for a in ctx.ancestors(call))


@model_check
def window_never_fits(ctx: ModelContext) -> Iterator[Any]:
    """Requirements that never hold at calls Keras let through (unknown sizes)."""
    seen: set[str] = set()
    for req in ctx.scope.requirements:
        if req.holds is not False or req.layer in seen:
            continue
        call = ctx.by_name.get(req.layer.split("/")[0])
        if call is None or call.failure is not None or _follows_refusal(ctx, call):
            continue
        seen.add(req.layer)
        name = f"{call.cls} `{req.layer}`"
        x = ctx.in_shapes(call)[0] if call.inputs and req.layer == call.name else None
        bad = too_short(window_axes(call.op, x) or []) if x is not None else []
        if bad:
            yield ctx.finding(SHRINKS, call, describe(name, x, bad, call.op),
                              shapes={"input": x},
                              hint=window_hint(ctx, call, call.op, x, bad))
        else:
            yield ctx.finding(SHRINKS, call,
                              f"{name}: {req.reason}, but the output axis has "
                              f"{dims.fmt(req.dim)} steps",
                              hint="use `padding=\"same\"`, a smaller window, or a larger "
                                   "input")


def _target(op: Any) -> tuple[int, ...] | None:
    target = getattr(op, "target_shape", None)
    if target is None:
        return None
    return tuple(int(d) if d is not None else -1 for d in target)


def _tup(items: tuple) -> str:
    text = ", ".join(str(i) for i in items)
    return f"({text},)" if len(items) == 1 else f"({text})"


def element_count(shape: tuple) -> str:
    """``32*32*16 = 16384`` for the axes after the batch."""
    axes = shape[1:]
    total = dims.prod(list(axes))
    if len(axes) <= 1:
        return dims.fmt(total)
    product = "*".join(dims.fmt(d) if dims.is_int(d) or getattr(d, "is_Symbol", False)
                       else f"({dims.fmt(d)})" for d in axes)
    return product if product == dims.fmt(total) else f"{product} = {dims.fmt(total)}"


def _nearest_divisor(n: int, near: int) -> int:
    best = 1
    for k in range(1, math.isqrt(n) + 1):
        if n % k == 0:
            for d in (k, n // k):
                if abs(d - near) < abs(best - near) or (abs(d - near) == abs(best - near)
                                                        and d > best):
                    best = d
    return best


def fitting_target(total: int, target: tuple[int, ...]) -> tuple[int, ...] | None:
    """A target close to ``target`` that holds ``total`` elements (one axis changed)."""
    known = [i for i, d in enumerate(target) if d != -1]
    for i in reversed(known):
        others = math.prod(target[j] for j in known if j != i)
        if others <= 0 or total % others:
            continue
        rest = total // others
        if -1 in target:
            size = _nearest_divisor(rest, target[i])
        else:
            size = rest
        return tuple(size if j == i else d for j, d in enumerate(target))
    return None


def _with_minus_one(target: tuple[int, ...]) -> tuple[int, ...]:
    """``target`` with its last axis as -1 (keeping a -1 that is there)."""
    if -1 in target:
        return target
    return target[:-1] + (-1,)


def _reshape_hint(total: Dim, target: tuple[int, ...]) -> str:
    if isinstance(total, int):
        fit = fitting_target(total, target)
        if fit is not None:
            text = f"`layers.Reshape({_tup(fit)})` holds all {total} elements"
            if -1 in fit:
                known = math.prod(d for d in fit if d != -1)
                text += f" (the -1 becomes {total // known})"
            elif math.prod(d for d in fit[:-1]) and total % math.prod(fit[:-1]) == 0:
                text += f"; so does `layers.Reshape({_tup(_with_minus_one(fit))})`"
            return text
        return (f"choose target sizes whose product is {total}, or put -1 for one axis "
                "whose size then follows from the rest")
    content = _content(total)
    if -1 not in target:  # a size that varies with the input: let the first axis follow
        target = (-1,) + target[1:]
    known = [i for i, d in enumerate(target) if d != -1]
    if content and known:
        i = known[-1]
        others = math.prod(target[j] for j in known if j != i)
        if others and content % others == 0:
            size = max(d for d in range(1, target[i] + 1) if (content // others) % d == 0)
            fit = tuple(size if j == i else d for j, d in enumerate(target))
            return (f"{dims.fmt(total)} is always a multiple of {content}: "
                    f"`layers.Reshape({_tup(fit)})` fits every input size")
    return "choose target sizes that divide the element count for every input size"


def _content(expr: Dim) -> int | None:
    """The largest integer dividing ``expr`` for every size of its dims (polynomials)."""
    import sympy as sp

    try:
        poly = sp.Poly(sp.expand(expr), *sorted(expr.free_symbols, key=lambda s: s.name))
    except (sp.PolynomialError, sp.GeneratorsNeeded, AttributeError):
        return None
    coeffs = [int(c) for c in poly.coeffs() if c.is_Integer]
    if len(coeffs) != len(poly.coeffs()):
        return None
    return math.gcd(*coeffs) or None


def _reshape_message(name: str, x: tuple, target: tuple[int, ...]) -> str:
    total = dims.prod(list(x[1:]))
    count = element_count(x)
    if -1 in target:
        known = math.prod(d for d in target if d != -1)
        return (f"{name} cannot spread the {count} elements per sample of "
                f"{dims.fmt_shape(x)} over {_tup(target)}: {dims.fmt(total)} is not a "
                f"multiple of {known}, so the -1 would not be a whole number")
    want = math.prod(target)
    return (f"{name} cannot put the {count} elements per sample of {dims.fmt_shape(x)} "
            f"into {_tup(target)}, which holds {want}")


_REFUSED_RESHAPE = re.compile(r"total size of the tensor must be unchanged", re.I)


@failure_check(priority=40)
def refused_reshape(failure: Any, ctx: ModelContext | None, call: Any) -> Any:
    """Keras refused a Reshape whose target holds another number of elements."""
    if not _REFUSED_RESHAPE.search(failure.message):
        return None
    op = failure.op
    target = _target(op)
    shapes = failure_shapes(failure, ctx, call)
    x = shapes[0] if shapes else None
    if target is None or x is None or not x:
        return None
    name = f"{type(op).__name__} `{getattr(op, 'name', '?')}`"
    return failure_finding(RESHAPE_SIZE, failure, ctx, call, _reshape_message(name, x, target),
                           shapes={"input": x},
                           hint=_reshape_hint(dims.prod(list(x[1:])), target))


def _is_reshape_layer(call: Any) -> bool:
    return call.cls == "Reshape" and _target(call.op) is not None


def _claims_reshape(ctx: ModelContext, call: Any, c: Any) -> bool:
    return _is_reshape_layer(call)


CLAIMED_BY_FAMILIES.append(_claims_reshape)


def never_holds(c: Any) -> bool:
    """A constraint that fails for every size: known False, or ``16*H*W == 1000``
    (the left side is always a multiple of 16, the right side is not)."""
    if c.holds is False:
        return True
    if c.holds is None and isinstance(c.rhs, int) and dims.is_symbolic(c.lhs):
        content = _content(c.lhs)
        return bool(content) and c.rhs % content != 0
    return False


@model_check
def reshape_never_fits(ctx: ModelContext) -> Iterator[Any]:
    """Reshapes Keras let through (sizes unknown) whose element count never fits."""
    bad = {c.layer for c in ctx.scope.constraints if never_holds(c)}
    bad |= {n.layer for n in ctx.scope.notes if n.kind == "shape-error"}
    for call in ctx.calls:
        if call.name not in bad or not _is_reshape_layer(call) or call.failure is not None:
            continue
        x = ctx.in_shapes(call)[0] if call.inputs else None
        if x is None or not x or _follows_refusal(ctx, call):
            continue
        target = _target(call.op)
        assert target is not None
        yield ctx.finding(RESHAPE_SIZE, call,
                          _reshape_message(f"Reshape `{call.name}`", x, target),
                          shapes={"input": x},
                          hint=_reshape_hint(dims.prod(list(x[1:])), target))


# ops whose target shape is kept in the model: op class -> (attribute, verb)
_STORED_SHAPES = {"Reshape": ("newshape", "reshapes"), "BroadcastTo": ("shape", "broadcasts")}


@model_check
def shape_from_unknown_sizes(ctx: ModelContext) -> Iterator[Any]:
    """``ops.reshape(x, (ops.shape(x)[0], ...))`` (or ``ops.broadcast_to``) in a
    functional graph: a Keras tensor's shape holds None while the model is built, and
    the op keeps that None as its target."""
    for call in ctx.calls:
        attr, verb = _STORED_SHAPES.get(type(call.op).__name__, (None, None))
        target = getattr(call.op, attr, None) if attr else None
        if (call.failure is not None or not isinstance(target, (list, tuple))
                or None not in target or hasattr(call.op, "_shapecheck_target")):
            continue  # (a subclassed model's `call` reads real sizes when it runs)
        x = ctx.in_shapes(call)[0] if call.inputs else None
        shown = "(" + ", ".join("None" if d is None else str(d) for d in target) + ")"
        rest = [-1 if d is None else d for d in target[1:]]
        if verb == "broadcasts":
            hint = ("broadcast by arithmetic against the tensor whose sizes you need: "
                    "`ops.expand_dims(v, 1) + ops.zeros_like(x)` takes x's sizes on "
                    "each batch")
        elif rest.count(-1) <= 1:
            hint = (f"`layers.Reshape({_tup(tuple(rest))})` keeps the batch and works out "
                    "the -1 on each batch")
        else:
            hint = "write the sizes you know, and -1 for at most one other"
        yield ctx.finding(
            RESHAPE_SIZE, call,
            f"`{call.name}` {verb} to {shown}: each None is a size read from a Keras "
            "tensor's shape (`ops.shape(x)[0]`, `x.shape[1]`) while the model is built, "
            "where it is unknown; the op keeps the None, and fails on the first batch",
            shapes={"input": x} if x else None,
            hint="a size read from a symbolic shape cannot be stored in the model: " + hint)


def sequence_dims(ctx: ModelContext) -> dict[int, tuple[LayerCall, str]]:
    """``input call id -> (input, dim name)`` for inputs of variable length: axis 1 of
    a ``(batch, T)`` or ``(batch, T, features)`` input left ``None``."""
    out: dict[int, tuple[LayerCall, str]] = {}
    for call in ctx.model_inputs():
        shapes = ctx.out_shapes(call)
        if not shapes or len(shapes[0]) not in (2, 3):
            continue
        d = shapes[0][1]
        if dims.is_symbolic(d) and getattr(d, "is_Symbol", False):
            out[call.id] = (call, str(d))
    return out


def _n_source(call: LayerCall, n: int) -> str:
    """``RepeatVector(10)``, or ``RepeatVector(max_len)`` with max_len = 10."""
    text = source_line(call.path, call.line) or ""
    m = re.search(r"RepeatVector\(\s*(?:n\s*=\s*)?([^,()]+?)\s*[,)]", text)
    expr = m.group(1).strip() if m else None
    if expr is None or expr == str(n):
        return f"the literal `RepeatVector({n})`"
    return f"`RepeatVector({expr})` with {expr} = {n}"


def _decoded_output(ctx: ModelContext, call: LayerCall, n: int) -> LayerCall | None:
    """A model output downstream of ``call`` with ``n`` steps on axis 1, unless the
    script feeds it targets, all of ``n`` steps (they agree with the decoder)."""
    later = nx.descendants(ctx.graph.graph, call.id)
    for key in ctx.graph.outputs:
        c = ctx.producer(key)
        if c is None or c.id not in later:
            continue
        shape = ctx.tensor_shape(key)
        if shape is None or len(shape) < 3 or shape[1] != n:
            continue
        fed = ctx.fed_targets.get(key)
        if fed and all(len(t) >= 2 and t[1] == n for t in fed):
            continue
        return c
    return None


@model_check
def frozen_repeat(ctx: ModelContext) -> Iterator[Any]:
    """RepeatVector(n) decoding a variable-length sequence into n steps."""
    seqs = sequence_dims(ctx) if not ctx.traced else None
    if not seqs:
        return
    for call in ctx.calls:
        if call.cls != "RepeatVector" or call.failure is not None:
            continue
        n = int(call.op.n)
        up = [seqs[a] for a in sorted(ctx.ancestors(call)) if a in seqs]
        out = _decoded_output(ctx, call, n) if up else None
        if out is None:
            continue
        src, dim = up[0]
        shape = ctx.out_shapes(src)[0]
        yield ctx.finding(
            FROZEN_DIM, call,
            f"RepeatVector `{call.name}` always makes {n} steps ({_n_source(call, n)}), so "
            f"output `{out.name}` has {n} steps whatever the length {dim} of input "
            f"`{src.name}` {dims.fmt_shape(shape)}: targets must have exactly {n} steps "
            f"(trained on (x, x), as an autoencoder, it fails for every {dim} != {n})",
            shapes={"input": ctx.in_shapes(call)[0], "output": ctx.out_shapes(call)[0],
                    src.name: shape},
            hint=f"declare the input with the length the decoder makes "
                 f"(`keras.Input(shape={_tup((n,) + tuple(shape[2:]))})`, padding or "
                 f"cutting the sequences to it), or repeat to the input's length at run "
                 f"time instead of a fixed {n}")


def _reduced(lhs: Any, rhs: int) -> str | None:
    """``H*W == 1024`` for ``16*H*W == 16384`` (None when no whole size fits)."""
    import sympy as sp

    coeff, rest = sp.sympify(lhs).as_coeff_Mul()
    coeff = int(coeff) if coeff.is_Integer and coeff > 0 else 1
    if rhs % coeff:
        return None
    return f"{dims.fmt(dims.norm(rest)) if coeff != 1 else dims.fmt(lhs)} == {rhs // coeff}"


def _free_target(lhs: Any, target: tuple[int, ...]) -> tuple[int, ...] | None:
    """``target`` with one axis as -1 that fits every input size, if any."""
    for i in range(len(target)):
        others = math.prod(d for j, d in enumerate(target) if j != i)
        q = dims.exact_div(lhs, others)
        if q is not None and (isinstance(q, int) or getattr(q, "is_integer", False)):
            return tuple(-1 if j == i else d for j, d in enumerate(target))
    return None


@model_check
def frozen_reshape(ctx: ModelContext) -> Iterator[Any]:
    """A literal Reshape target that fixes the element count of variable input dims."""
    if ctx.traced:  # the data gives its sizes: SC604 when they break the target
        return
    names = input_dim_names(ctx)
    seen: set[str] = set()
    for c in ctx.scope.constraints:
        call = ctx.by_name.get(c.layer)
        if (c.holds is not None or call is None or not _is_reshape_layer(call)
                or call.name in seen or not isinstance(c.rhs, int) or never_holds(c)):
            continue
        free = dims.free_names(c.lhs)
        target = _target(call.op)
        if not free or not free <= names or target is None or -1 in target:
            continue
        seen.add(call.name)
        x = ctx.in_shapes(call)[0]
        variable = ", ".join(sorted(free))
        reduced = _reduced(c.lhs, c.rhs)
        only = f"inputs with {reduced}" if reduced else "some input sizes"
        free_target = _free_target(c.lhs, target)
        hint = ("declare the input's sizes in `keras.Input(shape=...)` if they are fixed"
                + (f", or let one axis follow the input: `layers.Reshape({_tup(free_target)})`"
                   if free_target else
                   ", or use -1 for the target axis that should follow the input"))
        yield ctx.finding(
            FROZEN_DIM, call,
            f"Reshape `{call.name}` to {_tup(target)} needs {dims.fmt(c.lhs)} == {c.rhs} "
            f"elements per sample: the model works only for {only}, though its input "
            f"leaves {variable} variable",
            shapes={"input": x}, hint=hint)
