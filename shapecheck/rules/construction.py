"""SC1xx graph construction: calls Keras refuses, or would refuse, while building."""

from __future__ import annotations

import re
from typing import Any

from shapecheck.shapes import dims
from shapecheck.rules import define, failure_check, model_check
from shapecheck.rules.context import (ModelContext, failure_finding, failure_shapes,
                                      numbered)
from shapecheck.shapes.refused import expectation

CALL_FAILED = define("SC101", "call-failed", "error",
                     "Keras refused a layer or op call while the model was built", """
    ## What it does
    Reports a layer or `keras.ops` call on symbolic tensors that raised while the
    script built its model, at the line of the call, with the input shapes and
    Keras's own message. shapecheck then lets the script go on with a stand-in
    output, so later errors in the same script are reported too.

    ## Why is this bad
    The model cannot be built; Keras stops at the first such call and points
    into its own source.

    ## Example
    ```python
    x = keras.Input(shape=(8,))
    y = layers.Lambda(lambda t: t.nonexistent)(x)
    ```

    ## Use instead
    ```python
    y = layers.Lambda(lambda t: t * 2)(x)
    ```
    """)

INPUT_RANK = define("SC102", "input-rank", "error",
                    "a layer's input has another rank than the layer accepts", """
    ## What it does
    Finds a layer called on a tensor of the wrong rank (`expected ndim=3, found
    ndim=4`) and says what the layer wants, axis by axis, and the likely cause:
    an `Input(shape=...)` that includes the sample count, a missing channel or
    time axis, an `Embedding` fed ids with a trailing axis.

    ## Why is this bad
    Keras refuses the call with a message about `ndim` that does not say which
    axis is extra or missing.

    ## Example
    ```python
    x = keras.Input(shape=(64, 12, 20))   # 64 samples of (12, 20)
    y = layers.LSTM(32)(x)                # LSTM wants (batch, time, features)
    ```

    ## Use instead
    ```python
    x = keras.Input(shape=(12, 20))       # the shape of one sample
    y = layers.LSTM(32)(x)
    ```
    """)

UNDEFINED_DIM = define("SC103", "undefined-dim", "error",
                       "a layer needs a size that is unknown when the model is built", """
    ## What it does
    Finds layers whose weights depend on an axis that is `None` in the model:
    `Dense` after `Flatten` over an image of unknown height and width, a
    `Conv` with an unknown channel axis.

    ## Why is this bad
    Keras cannot create the weights and fails with "Shapes used to initialize
    variables must be fully-defined".

    ## Example
    ```python
    x = keras.Input(shape=(None, None, 3))
    y = layers.Dense(10)(layers.Flatten()(x))
    ```

    ## Use instead
    ```python
    x = keras.Input(shape=(None, None, 3))
    y = layers.Dense(10)(layers.GlobalAveragePooling2D()(x))
    ```
    """)

INPUT_SIZE = define("SC104", "input-size", "error",
                    "a layer already built for one input size is called with another", """
    ## What it does
    Finds a layer whose input size differs from the size it was built with or
    declares: a shared `Dense` reused on a tensor with another feature count,
    a layer whose input spec fixes an axis.

    ## Why is this bad
    Its weights have the first size; Keras refuses the call ("expected axis -1
    of input shape to have value 12").

    ## Example
    ```python
    shared = layers.Dense(8)
    a = shared(keras.Input(shape=(12,)))
    b = shared(keras.Input(shape=(20,)))
    ```

    ## Use instead
    ```python
    a = layers.Dense(8)(keras.Input(shape=(12,)))
    b = layers.Dense(8)(keras.Input(shape=(20,)))
    ```
    """)

INCOMPATIBLE = define("SC105", "incompatible-dims", "error",
                      "a layer needs two sizes to be equal and they never are", """
    ## What it does
    Reports a size a layer needs equal to another (a key and a value of
    different lengths in attention, the batch of two inputs of a `Dot`) when
    the two can never be equal, even where Keras builds the model without
    complaint; and a layer whose weights were made for another size (a
    `Normalization` adapted on transposed data, a `LayerNormalization`
    built for another width), which Keras does not check until it runs.

    ## Why is this bad
    The model builds but fails on the first batch, inside the layer's call or
    its gradient.

    ## Example
    ```python
    q = keras.Input(shape=(5, 16)); v = keras.Input(shape=(7, 16))
    k = keras.Input(shape=(9, 16))
    y = layers.MultiHeadAttention(2, 8)(q, v, key=k)   # key and value lengths differ
    ```

    ## Use instead
    ```python
    y = layers.MultiHeadAttention(2, 8)(q, v, key=v)
    ```
    """)

WEIGHT_SHAPE = define("SC106", "weight-shape", "error",
                      "a weight given to a layer has another shape than the layer makes", """
    ## What it does
    Reports an array given as a layer's weights whose shape is not the one
    the layer's arguments make: `weights=[matrix]` for an `Embedding`,
    `layer.set_weights([...])` (also with the wrong number of arrays, or
    before the layer has weights), or an initializer holding an array
    (`keras.initializers.Constant(matrix)`) whose shape does not fit when the
    layer is built. The finding is at the user's line, with both shapes, and
    says which argument to change (an `Embedding` whose `input_dim` and
    `output_dim` are not the matrix's rows and columns, a PyTorch-style
    transposed kernel).

    Keras raises there, so the script stops at that line when it runs;
    shapecheck goes on without those weights (a refused `weights=` or
    `set_weights` sets nothing, a refused build gives a stand-in output) to
    check the rest of the script.

    ## Why is this bad
    The script fails while the model is being made, with a message that
    names the two shapes but not the argument to fix.

    ## Example
    ```python
    matrix = np.load("glove.npy")                         # (412457, 400)
    layers.Embedding(43, 100, weights=[matrix])
    ```

    ## Use instead
    ```python
    layers.Embedding(matrix.shape[0], matrix.shape[1], weights=[matrix])
    ```
    """)


# --- what a layer wants ---------------------------------------------------------


def _spec_rank(op: Any) -> tuple[str, int] | None:
    """``("==", n)``, ``(">=", n)`` or ``("<=", n)`` from the layer's input spec."""
    spec = getattr(op, "input_spec", None)
    if isinstance(spec, (list, tuple)):
        spec = spec[0] if spec else None
    for attr, rel in (("ndim", "=="), ("min_ndim", ">="), ("max_ndim", "<=")):
        n = getattr(spec, attr, None)
        if n is not None:
            return rel, int(n)
    if type(op).__name__ == "TimeDistributed":
        return ">=", 3
    return None


def _rank_ok(rel: str, want: int, got: int) -> bool:
    return {"==": got == want, ">=": got >= want, "<=": got <= want}[rel]


def _keras_history_op(t: Any) -> Any:
    hist = getattr(t, "_keras_history", None)
    op = getattr(hist, "operation", None)
    return getattr(op, "failed_op", op)


def _upstream_ops(t: Any, limit: int = 6) -> list[Any]:
    """The ops that produced ``t``, walking back through first inputs."""
    out = []
    while t is not None and len(out) < limit:
        hist = getattr(t, "_keras_history", None)
        if hist is None or hist.operation is None:
            break
        op = hist.operation
        out.append(getattr(op, "failed_op", op))
        node = op._inbound_nodes[hist.node_index]
        ins = node.arguments.keras_tensors
        t = ins[0] if ins else None
    return out


def rank_cause(op: Any, got: tuple, want: int, tensor: Any) -> str | None:
    """A likely reason for a rank mismatch, as a fix."""
    ups = _upstream_ops(tensor)
    first = ups[0] if ups else None
    cls = type(first).__name__ if first is not None else ""
    if len(got) > want:
        if any(type(u).__name__ == "Embedding" for u in ups[:3]):
            emb = next(u for u in ups if type(u).__name__ == "Embedding")
            return (f"`{emb.name}` (Embedding) adds a feature axis to its ids: feed it "
                    "(batch, time) ids, not (batch, time, 1) — drop the trailing axis of "
                    "the input")
        if cls == "InputLayer":
            declared = tuple(got[1:])
            said = _declared(first, declared)
            if len(declared) > want - 1:
                if declared[-1] == 1:
                    fix = declared[:-1]
                    return (f"{said} ends in an axis of size 1; "
                            f"{_fix(first, fix)} (or Reshape to it)")
                fix = declared[len(declared) - (want - 1):]
                return (f"{said} has {len(declared)} axes; "
                        f"the layer wants {want - 1} besides the batch: if "
                        f"{dims.fmt(declared[0])} is the number of samples, "
                        f"{_fix(first, fix)} — the shape of one sample")
        if len(got) == 4 and want == 3:
            return ("an image-like (batch, height, width, channels) tensor meets a sequence "
                    "layer: reshape it to (batch, time, features) first, e.g. "
                    "`layers.Reshape((height, width * channels))`")
    else:
        if cls == "InputLayer":
            declared = tuple(got[1:])
            said = _declared(first, declared)
            if want - len(got) == 1 and expectation(op) and "channels" in (expectation(op) or ""):
                return f"{said} has no channel axis; {_fix(first, declared + (1,))}"
            if want == 3:
                steps = "(timesteps, " + ", ".join(map(dims.fmt, declared)) + ")"
                if _traced(first):
                    return (f"{said} has no time axis; give it samples of shape {steps}, "
                            f"e.g. `x[..., None]` for one feature per step")
                return f"{said} has no time axis; declare `shape={steps}`"
        if want == 3 and len(got) == 2:
            return ("the tensor has no time axis: keep one (`return_sequences=True`, no "
                    "Flatten/pooling before) or add it with `layers.Reshape((1, features))` "
                    "or `layers.RepeatVector(n)`")
    return None


def _traced(input_layer: Any) -> bool:
    """An input made by tracing a subclassed model's ``call`` on the data it was given."""
    return bool(getattr(input_layer, "_shapecheck_traced", None))


def _declared(input_layer: Any, declared: tuple) -> str:
    """How to name an input's shape: the declared Input's, or the data's."""
    if _traced(input_layer):
        return f"the data given to the model, samples of shape {_tup(declared)},"
    return f"the declared `Input(shape={_tup(declared)})`"


def _fix(input_layer: Any, shape: tuple) -> str:
    if _traced(input_layer):
        return f"give it samples of shape {_tup(shape)}"
    return f"declare `shape={_tup(shape)}`"


def _tup(shape: tuple) -> str:
    items = [dims.fmt(d) for d in shape]
    return "(" + ", ".join(items) + ("," if len(items) == 1 else "") + ")"


# --- failure explainers ------------------------------------------------------------


@failure_check(priority=10)
def weight_shape(failure: Any, ctx: ModelContext | None, call: Any) -> Any:
    """SC106: weights Keras refused while the layer was made, set or built."""
    from shapecheck.shapes.refused import errors_of

    found = errors_of(failure.op)
    if not failure.inputs and not failure.input_shapes:  # a refused set_weights / weights=
        err = next((e for _, e in reversed(found)
                    if e.source != "initializer" and e.message == failure.message), None)
    else:  # a refused first call: an initializer that did not fit
        err = next((e for part, e in reversed(found) if e.source == "initializer"
                    and e.weight not in {v.name for v in part.weights}), None)
    if err is None:
        return None
    op = failure.op
    if err.source == "initializer":
        message, shapes, hint = _initializer_words(op, err, failure, ctx, call)
    else:
        message, shapes, hint = _set_weights_words(op, err)
    return failure_finding(WEIGHT_SHAPE, failure, ctx, call, message, shapes=shapes, hint=hint)


def _layer_words(op: Any) -> str:
    """``Embedding(43, 100)``, ``Dense(8)``, or the class name."""
    cls = type(op).__name__
    if hasattr(op, "input_dim") and hasattr(op, "output_dim"):
        return f"{cls}({op.input_dim}, {op.output_dim})"
    for attr in ("units", "filters"):
        n = getattr(op, attr, None)
        if isinstance(n, int):
            return f"{cls}({n})"
    return cls


def _shape_words(shape: Any) -> str:
    return "?" if shape is None else _tup(tuple(shape))


def _fix_hint(op: Any, wname: str, declared: tuple, given: tuple | None) -> str:
    """How to make ``given`` fit, or the layer fit ``given``."""
    from itertools import permutations

    if given is None:
        return f"give `{wname}` an array of shape {_tup(declared)}"
    words = _layer_words(op)
    if hasattr(op, "input_dim") and hasattr(op, "output_dim") and len(given) == 2:
        return (f"the matrix has {given[0]} rows and {given[1]} columns; {words} needs "
                f"{_tup(declared)}: use input_dim={given[0]}, output_dim={given[1]}")
    if len(given) == len(declared) and sorted(given) == sorted(declared) and given != declared:
        if len(given) == 2:
            return (f"the array is transposed (PyTorch keeps a kernel as (out, in)): pass "
                    f"`w.T`, of shape {_tup(declared)}")
        order = next((p for p in permutations(range(len(given)))
                      if tuple(given[i] for i in p) == tuple(declared)), None)
        if order is not None:
            return (f"the array holds the same sizes in another order: "
                    f"`np.transpose(w, {order})` gives {_tup(declared)}")
    units = getattr(op, "units", None)
    if wname.split("/")[-1] == "kernel" and isinstance(units, int) and len(given) == 2 \
            and len(declared) == 2:
        return (f"{words} on inputs of {declared[0]} features needs a kernel of (input "
                f"features, units) = {_tup(declared)}; the array fits {type(op).__name__}"
                f"({given[1]}) on inputs of {given[0]} features")
    return (f"give `{wname}` an array of shape {_tup(declared)}, or change the layer's "
            f"arguments so that it makes {_tup(given)}")


_STOPS = ("Keras raises ValueError here, so the script stops at this line when it runs; "
          "shapecheck went on without these weights to check the rest of the script")


def _set_weights_words(op: Any, err: Any) -> tuple[str, dict, str]:
    where = "`weights=`" if err.source == "weights=" else "`set_weights`"
    head = f"{type(op).__name__} `{op.name}`"
    declared = [s for _, s in err.declared]
    if len(err.given) != len(err.declared):
        arrays = ", ".join(_shape_words(g) for g in err.given) or "none"
        mine = ", ".join(f"`{n.split('/')[-1]}` {_tup(s)}" for n, s in err.declared)
        message = (f"{head}: {where} gives {len(err.given)} array(s) ({arrays}); the layer "
                   f"has {len(err.declared)} weight(s)" + (f" ({mine})" if mine else "")
                   + f". {_STOPS}")
        if not err.declared:
            init = next((a for a in ("embeddings_initializer", "kernel_initializer")
                         if hasattr(op, a)), None)
            via = (f" (`{init}=keras.initializers.Constant(matrix)`)" if init else "")
            hint = ("the layer has no weights yet: Keras makes them when the layer is built "
                    "(its first call, or a model with an input shape); build it first, or "
                    f"pass the values through its initializer{via}")
        else:
            names = ", ".join(n.split("/")[-1] for n, _ in err.declared)
            hint = f"pass one array per weight, in the order of `layer.weights`: [{names}]"
        shapes = {f"weight {i}": s for i, s in enumerate(declared)}
        shapes |= {f"given {i}": g for i, g in enumerate(err.given)}
        return message, shapes, hint
    i = next((k for k, (d, g) in enumerate(zip(declared, err.given)) if tuple(d) != g), 0)
    wname, want = err.declared[i]
    given = err.given[i]
    short = wname.split("/")[-1]
    message = (f"{head}: {where} gives `{short}` an array of {_shape_words(given)}; "
               f"{_layer_words(op)} makes it {_tup(want)}. {_STOPS}")
    hint = _fix_hint(op, short, tuple(want), given)
    return message, {f"declared `{short}`": tuple(want), "given": given}, hint


# TensorFlow's op names around its messages ("{{function_node ...}}", "[Op:Mul] name:").
_BACKEND_NOISE = re.compile(r"\{\{function_node [^}]*\}\}\s*|\s*\[Op:\w+\][^\n]*")


def _initializer_words(op: Any, err: Any, failure: Any, ctx: ModelContext | None,
                       call: Any) -> tuple[str, dict, str]:
    wname, want = err.declared[0]
    given = err.given[0]
    shapes = failure_shapes(failure, ctx, call)
    got = shapes[0] if shapes else None
    on = f" on its input {dims.fmt_shape(got)}" if got is not None else ""
    text = _BACKEND_NOISE.sub("", failure.message).strip()
    first = text.splitlines()[0].strip() if text else ""
    message = (f"{type(op).__name__} `{op.name}`: `{err.initializer}` holds an array of "
               f"{_tup(given)}; {_layer_words(op)}{on} makes `{wname}` {_tup(want)}: Keras "
               f"fails building the layer ({failure.error_type}: {first[:160]})")
    out: dict = {f"declared `{wname}`": tuple(want), "given": given}
    if got is not None:
        out["input"] = got
    return message, out, _fix_hint(op, wname, tuple(want), given)


@failure_check(priority=60)
def input_rank(failure: Any, ctx: ModelContext | None, call: Any) -> Any:
    op = failure.op
    spec = _spec_rank(op)
    if spec is None or not failure.input_shapes:
        return None
    rel, want = spec
    shapes = failure_shapes(failure, ctx, call)
    got = shapes[0]
    if got is None or _rank_ok(rel, want, len(got)):
        return None
    expect = expectation(op, want) or f"rank {want}"
    rank_text = {"==": f"rank {want}", ">=": f"rank {want} or more",
                 "<=": f"rank {want} or less"}[rel]
    message = (f"{type(op).__name__} `{op.name}` wants {expect} ({rank_text}); got "
               f"{dims.fmt_shape(got)} (rank {len(got)})")
    tensor = failure.inputs[0] if failure.inputs else None
    hint = rank_cause(op, got, want, tensor)
    if hint is None:
        hint = ("reshape the input to the layer's rank" if rel == "==" else
                f"give the layer a tensor of {rank_text}")
    return failure_finding(INPUT_RANK, failure, ctx, call, message,
                           shapes={"input": got}, hint=hint)


_UNDEFINED = re.compile(r"fully-defined|should be defined\. Found `?None|"
                        r"dimension of the inputs? .* should be defined", re.I)


@failure_check(priority=60)
def undefined_dim(failure: Any, ctx: ModelContext | None, call: Any) -> Any:
    if not _UNDEFINED.search(failure.message):
        return None
    op = failure.op
    shapes = failure_shapes(failure, ctx, call)
    got = shapes[0] if shapes else None
    ups = _upstream_ops(failure.inputs[0]) if failure.inputs else []
    flatten = next((u for u in ups if type(u).__name__ in ("Flatten", "Reshape")), None)
    where = f" (`{flatten.name}` flattens axes of unknown size)" if flatten is not None else ""
    message = (f"{type(op).__name__} `{op.name}` needs the last axis of its input known "
               f"to create its weights; got {dims.fmt_shape(got) if got else '?'}{where}")
    if flatten is not None:
        hint = ("use GlobalAveragePooling/GlobalMaxPooling instead of Flatten, or declare "
                "the input's spatial sizes in `Input(shape=...)`")
    else:
        hint = "declare the size of that axis in `Input(shape=...)`"
    return failure_finding(UNDEFINED_DIM, failure, ctx, call, message,
                           shapes={"input": got}, hint=hint)


_AXIS_VALUE = re.compile(r"expected axis (-?\d+) of input shape to have value (\d+)")
_SPEC_SHAPE = re.compile(r"expected shape=\(([^)]*)\)")


@failure_check(priority=60)
def input_size(failure: Any, ctx: ModelContext | None, call: Any) -> Any:
    m = _AXIS_VALUE.search(failure.message)
    if m is None and not _SPEC_SHAPE.search(failure.message):
        return None
    op = failure.op
    shapes = failure_shapes(failure, ctx, call)
    got = shapes[0] if shapes else None
    if m is not None:
        axis, want = int(m.group(1)), int(m.group(2))
        have = dims.fmt(got[axis]) if got and -len(got) <= axis < len(got) else "?"
        message = (f"{type(op).__name__} `{op.name}` was built for {want} on axis {axis} of "
                   f"its input; got {have} in {dims.fmt_shape(got) if got else '?'}")
    else:
        message = f"{type(op).__name__} `{op.name}`: {failure.message.splitlines()[0]}"
    hint = ("a layer object keeps the sizes of its first call: use a new layer for an "
            "input of another size, or bring the input to the size it was built for")
    return failure_finding(INPUT_SIZE, failure, ctx, call, message,
                           shapes={"input": got}, hint=hint)


@failure_check(priority=90)
def rule_verdict(failure: Any, ctx: ModelContext | None, call: Any) -> Any:
    """Keras refused the call and the shape rule says which sizes can never agree."""
    if ctx is None or call is None:
        return None
    refusal = ctx.scope.refusals.get(call.name)
    if refusal is None:
        return None
    shapes = numbered(ctx.in_shapes(call))
    if not refusal.never:
        if refusal.error is None:
            return None
        return failure_finding(
            CALL_FAILED, failure, ctx, call,
            f"{call.cls} `{call.name}`: {refusal.error}", shapes=shapes,
            hint="check the layer's arguments against the input shapes shown")
    c = refusal.never[0]
    return failure_finding(
        INCOMPATIBLE, failure, ctx, call,
        f"{call.cls} `{call.name}` needs {dims.fmt(c.lhs)} == {dims.fmt(c.rhs)} "
        f"({c.reason}); they are never equal", shapes=shapes,
        hint="make the two sizes agree where they are created")


@failure_check(priority=99)
def call_failed(failure: Any, ctx: ModelContext | None, call: Any) -> Any:
    op = failure.op
    shapes = failure_shapes(failure, ctx, call)
    got = numbered(shapes)
    first = failure.message.strip().splitlines()[0] if failure.message.strip() else ""
    message = (f"{type(op).__name__} `{getattr(op, 'name', '?')}` refused its inputs "
               f"({failure.error_type}: {first})")
    return failure_finding(CALL_FAILED, failure, ctx, call, message, shapes=got,
                           hint="check the layer's arguments against the input shapes shown")


# --- constraints that never hold ---------------------------------------------------

CLAIMED_BY_FAMILIES: list[Any] = []  # predicates(ctx, call, constraint) -> bool


@model_check
def incompatible_dims(ctx: ModelContext) -> Any:
    for c in ctx.scope.constraints:
        if c.holds is not False:
            continue
        call = ctx.by_name.get(c.layer)
        if call is None or any(p(ctx, call, c) for p in CLAIMED_BY_FAMILIES):
            continue
        shapes = numbered(ctx.in_shapes(call))
        yield ctx.finding(
            INCOMPATIBLE, call,
            f"{call.cls} `{call.name}` needs {dims.fmt(c.lhs)} == {dims.fmt(c.rhs)} "
            f"({c.reason}); they are never equal",
            shapes=shapes,
            hint="make the two sizes agree where they are created")


def unexplained_shape_errors(ctx: ModelContext, found: list[Any]) -> list[Any]:
    """SC105 for each call Keras accepted while the model was built (its sizes unknown
    or unchecked then) whose shape rule proves it fails on every batch (a layer built,
    or adapted, for another size), where no finding at that layer says so already."""
    said = {d.layer for d in found if d.severity in ("error", "warning")}
    out = []
    for note in ctx.scope.notes:
        call = ctx.by_name.get(note.layer)
        if (note.kind != "shape-error" or call is None or call.failure is not None
                or note.layer in said or call.inner_failure is not None):
            continue
        said.add(note.layer)
        built = re.search(r"adapted|built|\(its [\w/ ]+ size\)", note.message) is not None
        out.append(ctx.finding(
            INCOMPATIBLE, call, f"{call.cls} `{call.name}` fails on the first batch, though "
            f"Keras builds the model: {note.message}", shapes=numbered(ctx.in_shapes(call)),
            hint=("the layer's weights were made for another input: build or adapt it on "
                  "data shaped like this input, or use a new layer here") if built else
                 "compare the shape the layer is given with the one it needs"))
    return out


# --- calls Keras built for a declared shape that the run does not have -------------------


@model_check
def built_for_declared_shape(ctx: ModelContext) -> Any:
    """A call Keras built for the shape an earlier layer declares, whose rule says it fails
    on the shape that layer returns at run time (a Dense over MultiHeadAttention's scores
    for a key of another length than the query)."""
    declared = {n.layer: n.message for n in ctx.scope.notes if n.kind == "keras-declaration"}
    if not declared:
        return
    seen = set()
    for note in ctx.scope.notes:
        if note.kind != "shape-error" or note.layer in seen:
            continue
        call = ctx.by_name.get(note.layer)
        if call is None or call.failure is not None:
            continue
        cause = next((ctx.by_id[a] for a in sorted(ctx.ancestors(call), reverse=True)
                      if ctx.by_id[a].name in declared), None)
        if cause is None:
            continue
        seen.add(note.layer)
        text = note.message.lower()
        spec = INPUT_RANK if "rank" in text else INPUT_SIZE if "weights" in text \
            else INCOMPATIBLE
        yield ctx.finding(spec, call,
                          f"{call.cls} `{call.name}` fails at run time: {note.message}",
                          shapes=numbered(ctx.in_shapes(call)),
                          hint=f"Keras built `{call.name}` for the shape `{cause.name}` "
                               f"declares, not the one it returns: {declared[cause.name]}")
