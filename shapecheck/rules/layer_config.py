"""SC5xx layer configuration: arguments that fit the shapes but not the task."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from shapecheck.shapes import dims
from shapecheck.shapes.graph import LayerCall
from shapecheck.rules import define, model_check
from shapecheck.rules.context import SHAPE_PRESERVING, ModelContext

SOFTMAX_SINGLE_UNIT = define("SC501", "softmax-single-unit", "error",
                             "a softmax over an axis of size 1 always outputs 1.0", """
    ## What it does
    Finds a softmax (or log-softmax) taken over an axis of size 1:
    `Dense(1, activation="softmax")`, a convolution with `filters=1` and a
    softmax, or an `Activation("softmax")`, `Softmax(axis=...)` or
    `keras.activations.softmax` / `keras.ops.softmax` applied to a tensor
    whose softmax axis has size 1 (attention scores of shape
    `(batch, time, 1)` normalised over the last axis instead of over time).

    ## Why is this bad
    A softmax divides by the sum over its axis; over one value the result is
    always exactly 1.0 (log-softmax: 0.0), whatever the input. The model
    builds and trains without error, its loss never moves and its
    predictions are constant.

    ## Example
    ```python
    x = keras.Input(shape=(20,))
    y = layers.Dense(1, activation="softmax")(x)   # always 1.0
    model = keras.Model(x, y)
    model.compile(optimizer="adam", loss="binary_crossentropy")
    ```

    ## Use instead
    ```python
    y = layers.Dense(1, activation="sigmoid")(x)          # one binary output
    # or, for n classes with one-hot or integer labels:
    y = layers.Dense(n_classes, activation="softmax")(x)
    ```
    """, outcome="none")

DENSE_OVER_SPATIAL = define("SC502", "dense-over-spatial", "info",
                            "a classifier head is applied at every position of an image", """
    ## What it does
    Finds a classifier head (a `Dense` with a softmax or sigmoid activation,
    or a `Dense` followed by such an activation) applied to a tensor of rank
    4 or more, such as image features `(batch, height, width, channels)`,
    whose result reaches a model output with the spatial axes still there.
    Models meant to predict per pixel (the output's spatial axes equal the
    input image's, as in segmentation) and sequence models (rank 3, one
    prediction per time step) are left alone.

    ## Why is this bad
    `Dense` acts on the last axis only, so the model makes one prediction per
    position, `(batch, 7, 7, 10)`, instead of one per image, `(batch, 10)`.
    The model builds; training fails on the labels' shape, or silently
    broadcasts them over the positions.

    ## Example
    ```python
    x = keras.Input(shape=(32, 32, 3))
    f = layers.Conv2D(32, 3, activation="relu")(x)
    f = layers.MaxPooling2D()(f)
    y = layers.Dense(10, activation="softmax")(f)   # (batch, 15, 15, 10)
    ```

    ## Use instead
    ```python
    f = layers.GlobalAveragePooling2D()(f)           # or layers.Flatten()
    y = layers.Dense(10, activation="softmax")(f)   # (batch, 10)
    ```
    """)

EMBEDDING_VOCAB = define("SC503", "embedding-vocab", "error",
                         "an Embedding has fewer rows than the ids fed to it", """
    ## What it does
    Finds an `Embedding(input_dim=n)` fed by a `TextVectorization`,
    `StringLookup`, `IntegerLookup` or `Hashing` layer (directly or through
    layers that keep the ids) that can output an id of `n` or more: the
    lookup's vocabulary size (after `adapt` or a given `vocabulary`, else its
    `max_tokens`) or the number of hash bins is larger than `input_dim`.

    ## Why is this bad
    Ids of `input_dim` or more have no row in the embedding table. On CPU the
    lookup fails part-way through training ("indices[...] = 4999 is not in
    [0, 1000)"); on GPU it silently returns zeros.

    ## Example
    ```python
    vectorize = layers.TextVectorization(max_tokens=20000, output_sequence_length=100)
    x = vectorize(keras.Input(shape=(1,), dtype="string"))
    x = layers.Embedding(input_dim=10000, output_dim=64)(x)
    ```

    ## Use instead
    ```python
    # max_tokens already counts the padding (0) and OOV (1) tokens
    x = layers.Embedding(input_dim=vectorize.vocabulary_size(), output_dim=64)(x)
    ```
    """)

EMBEDDING_TRAILING_AXIS = define("SC504", "embedding-trailing-axis", "warning",
                                 "an Embedding's ids end in an axis of size 1", """
    ## What it does
    Finds an `Embedding` whose input ids have a trailing axis of size 1, such
    as `(batch, time, 1)`, where the output keeps that axis:
    `(batch, time, 1, output_dim)`. A layer that flattens the axis right
    away (`Flatten`, a `Reshape` to a lower rank) is fine.

    ## Why is this bad
    `Embedding` adds a feature axis after all the axes of its input, so the
    extra axis flows on: a recurrent layer refuses the rank-4 tensor, and
    `Dense` or `TimeDistributed` layers silently produce outputs with an
    extra axis that no longer match the labels.

    ## Example
    ```python
    ids = keras.Input(shape=(50, 1), dtype="int32")
    x = layers.Embedding(10000, 64)(ids)        # (batch, 50, 1, 64)
    ```

    ## Use instead
    ```python
    ids = keras.Input(shape=(50,), dtype="int32")   # squeeze the data's last axis
    x = layers.Embedding(10000, 64)(ids)        # (batch, 50, 64)
    ```
    """)


# --- activations -------------------------------------------------------------------

_SOFTMAX = ("softmax", "log_softmax")
_HEAD_ACTIVATIONS = ("softmax", "sigmoid")
# Layers whose `activation` is applied to their output, on its last axis.
_ACTIVATED = ("Dense", "EinsumDense", "Activation")


def activation_name(fn: Any) -> str | None:
    """``softmax``, ``sigmoid``, ... for an activation function or layer; None if unknown."""
    if fn is None:
        return None
    if isinstance(fn, str):
        name = fn
    elif hasattr(fn, "__name__"):
        name = fn.__name__
    else:
        name = type(fn).__name__
    name = name.lower()
    name = {"logsoftmax": "log_softmax", "softmax_v2": "softmax"}.get(name, name)
    return name


def _inner(op: Any) -> Any:
    """The layer a ``TimeDistributed`` wraps (its activation acts on the same last axis)."""
    while type(op).__name__ == "TimeDistributed":
        op = op.layer
    return op


def _uses_activation(op: Any) -> bool:
    cls = type(op).__name__
    return cls in _ACTIVATED or ("Conv" in cls and "LSTM" not in cls)


def output_activation(call: LayerCall) -> tuple[str, Any] | None:
    """``(name, axis)`` of the activation a call applies to its output, if it is one."""
    op = _inner(call.op)
    cls = type(op).__name__
    if cls in ("Softmax", "LogSoftmax"):
        return activation_name(cls), getattr(op, "axis", -1)
    if cls in ("Sigmoid", "Relu", "Tanh"):
        return cls.lower(), -1
    if _uses_activation(op):
        name = activation_name(getattr(op, "activation", None))
        if name is not None:
            return name, -1
    return None


def _axes(axis: Any, rank: int) -> list[int] | None:
    """Normalised axes; None when ``axis`` is unusable (None, out of range)."""
    items = axis if isinstance(axis, (list, tuple)) else [axis]
    out = []
    for a in items:
        if not isinstance(a, int) or not -rank <= a < rank:
            return None
        out.append(a % rank)
    return out or None


# --- SC501 -------------------------------------------------------------------------


def _softmax_hint(call: LayerCall, shape: tuple, axes: list[int]) -> str:
    op = _inner(call.op)
    cls = type(op).__name__
    if cls in ("Dense", "EinsumDense"):
        return ('use `activation="sigmoid"` for one binary output, or `units=n_classes` '
                "for n classes")
    if "Conv" in cls:
        return ('use `activation="sigmoid"` for one binary map, or `filters=n_classes` '
                "for n classes")
    wider = [i for i in range(1, len(shape)) if i not in axes
             and (not dims.is_int(shape[i]) or shape[i] > 1)]
    if wider:
        return (f"normalise over the axis that holds the choices: "
                f"`layers.Softmax(axis={wider[0]})` over axis {wider[0]} of "
                f"{dims.fmt_shape(shape)} (attention weights over time), or use a sigmoid "
                "for one binary output")
    return ("give the layer before it `n_classes` units, or use a sigmoid for one "
            "binary output")


@model_check
def softmax_single_unit(ctx: ModelContext) -> Iterator[Any]:
    for call in ctx.calls:
        act = output_activation(call)
        if act is None or act[0] not in _SOFTMAX or call.internal:
            continue
        outs = ctx.out_shapes(call)
        shape = outs[0] if outs else None
        if not shape:
            continue
        axes = _axes(act[1], len(shape))
        if axes is None or any(shape[a] != 1 for a in axes):
            continue
        value = "0.0" if act[0] == "log_softmax" else "1.0"
        where = ", ".join(str(a) for a in act[1]) if isinstance(act[1], (list, tuple)) \
            else str(act[1])
        yield ctx.finding(
            SOFTMAX_SINGLE_UNIT, call,
            f"{call.cls} `{call.name}` takes a {act[0]} over axis {where} of "
            f"{dims.fmt_shape(shape)}, which has size 1: it always outputs {value}",
            shapes={"output": shape}, hint=_softmax_hint(call, shape, axes))


# --- SC502 -------------------------------------------------------------------------


def _head_end(ctx: ModelContext, call: LayerCall) -> LayerCall | None:
    """The call that ends a classifier head starting at Dense ``call``, or None."""
    act = output_activation(call)
    if act is not None and act[0] in _HEAD_ACTIVATIONS:
        return call
    if act is not None and act[0] != "linear":
        return None
    nxt = ctx.consumers(call)
    if len(nxt) == 1:
        act = output_activation(nxt[0])
        if act is not None and act[0] in _HEAD_ACTIVATIONS:
            return nxt[0]
    return None


def _reaches_output(ctx: ModelContext, call: LayerCall) -> bool:
    """Whether ``call``'s output is a model output, past shape-preserving layers."""
    seen = 0
    while not ctx.is_output(call):
        nxt = ctx.consumers(call)
        if len(nxt) != 1 or nxt[0].cls not in SHAPE_PRESERVING or seen > 20:
            return False
        call, seen = nxt[0], seen + 1
    return True


def _same_size(a: Any, b: Any) -> bool:
    """Whether two sizes agree, or agree at image sizes a U-Net accepts (256, 512)."""
    if dims.equal(a, b) is True:
        return True
    names = dims.free_names(a) | dims.free_names(b)
    if not names:
        return False
    for size in (256, 512):
        bind = {n: size for n in names}
        va, vb = dims.evaluate(a, bind), dims.evaluate(b, bind)
        if va is None or va != vb:
            return False
    return True


def _per_pixel(ctx: ModelContext, shape: tuple) -> bool:
    """Whether the spatial axes of ``shape`` are those of a model input."""
    spatial = shape[1:-1]
    for inp in ctx.model_inputs():
        outs = ctx.out_shapes(inp)
        ishape = outs[0] if outs else None
        if not ishape or len(ishape) < len(spatial) + 1:
            continue
        if all(_same_size(a, b) for a, b in zip(spatial, ishape[1:])):
            return True
    return False


_POOL = {4: "GlobalAveragePooling2D", 5: "GlobalAveragePooling3D"}


@model_check
def dense_over_spatial(ctx: ModelContext) -> Iterator[Any]:
    for call in ctx.calls:
        if call.cls != "Dense" or call.internal:
            continue
        ins = ctx.in_shapes(call)
        shape = ins[0] if ins else None
        if shape is None or len(shape) < 4:
            continue
        end = _head_end(ctx, call)
        if end is None or not _reaches_output(ctx, end):
            continue
        outs = ctx.out_shapes(end)
        out = outs[0] if outs else None
        if out is None or len(out) < 4 or _per_pixel(ctx, out):
            continue
        act = output_activation(end)
        pool = _POOL.get(len(shape), "a global pooling layer")
        yield ctx.finding(
            DENSE_OVER_SPATIAL, call,
            f"Dense `{call.name}` ({act[0] if act else 'classifier'}) acts on the last "
            f"axis of {dims.fmt_shape(shape)}, so the model outputs "
            f"{dims.fmt_shape(out)}: one prediction per position, not one per sample",
            shapes={"input": shape, "output": out},
            hint=f"add `layers.{pool}()` (or `layers.Flatten()`) before the Dense for "
                 "one prediction per sample")


# --- SC503 -------------------------------------------------------------------------

# Layers that pass ids on unchanged in value (besides the shape-preserving ones).
_KEEP_IDS = frozenset({"Reshape", "Flatten", "Permute", "RepeatVector", "Cast",
                       "Squeeze", "ExpandDims", "Cropping1D"})


def id_source(ctx: ModelContext, call: LayerCall) -> LayerCall | None:
    """The first call upstream of ``call``'s input that changes the ids' values."""
    src = ctx.producer(call.inputs[0]) if call.inputs else None
    for _ in range(50):
        src = ctx.through(src)
        if src is None or src.cls not in _KEEP_IDS or not src.inputs:
            return src
        src = ctx.producer(src.inputs[0])
    return src


def _lookup_bound(op: Any) -> tuple[int, str, str] | None:
    """``(n, how, fix)``: ids of an index lookup are below n; None when unbounded."""
    if getattr(op, "invert", False) or getattr(op, "output_mode", "int") != "int":
        return None
    try:
        has_vocab = bool(op._has_input_vocabulary) or int(op.lookup_table.size()) > 0
        size = int(op.vocabulary_size()) if has_vocab else None
    except Exception:  # a table that cannot be read eagerly
        size = None
    if size is not None:
        return (size, f"a vocabulary of {size} entries",
                "its `vocabulary_size()`, which counts the padding and OOV tokens")
    if op.max_tokens is not None:
        return (int(op.max_tokens), f"`max_tokens={op.max_tokens}`",
                "`max_tokens` already counts the padding and OOV tokens")
    return None


def id_bound(op: Any) -> tuple[int, str, str] | None:
    """``(n, how, fix)``: every id the layer outputs is below n; None if unknown."""
    cls = type(op).__name__
    if cls == "TextVectorization":
        if getattr(op, "_output_mode", "int") != "int":
            return None
        return _lookup_bound(op._lookup_layer)
    if cls in ("StringLookup", "IntegerLookup"):
        return _lookup_bound(op)
    if cls == "Hashing" and getattr(op, "output_mode", "int") == "int":
        return int(op.num_bins), f"`num_bins={op.num_bins}`", "its `num_bins`"
    return None


@model_check
def embedding_vocab(ctx: ModelContext) -> Iterator[Any]:
    for call in ctx.calls:
        if call.cls != "Embedding" or call.internal:
            continue
        src = id_source(ctx, call)
        bound = id_bound(src.op) if src is not None else None
        input_dim = getattr(call.op, "input_dim", None)
        if src is None or bound is None or not isinstance(input_dim, int) \
                or bound[0] <= input_dim:
            continue
        n, how, fix = bound
        yield ctx.finding(
            EMBEDDING_VOCAB, call,
            f"Embedding `{call.name}` has input_dim={input_dim} rows, but its ids come "
            f"from {src.cls} `{src.name}` with {how}: ids up to {n - 1}, "
            f"{n - input_dim} of them without a row",
            shapes={"input": (ctx.in_shapes(call) or [None])[0]},
            hint=f"use `input_dim={n}`: {fix}")


# --- SC504 -------------------------------------------------------------------------


def _next_calls(ctx: ModelContext, call: LayerCall) -> list[LayerCall]:
    """The consumers of ``call``, past shape-preserving layers."""
    out: list[LayerCall] = []
    todo = list(ctx.consumers(call))
    while todo and len(out) < 50:
        c = todo.pop()
        if c.cls in SHAPE_PRESERVING:
            todo.extend(ctx.consumers(c))
        else:
            out.append(c)
    return out


_COLLAPSING = ("Flatten", "Reshape", "Squeeze", "Lambda", "TimeDistributed")


def _collapses(ctx: ModelContext, call: LayerCall, rank: int) -> bool:
    """Whether ``call`` flattens or squeezes away axes of its rank-``rank`` input."""
    outs = ctx.out_shapes(call)
    return call.cls in _COLLAPSING and bool(outs) and len(outs[0]) < rank


@model_check
def embedding_trailing_axis(ctx: ModelContext) -> Iterator[Any]:
    for call in ctx.calls:
        if call.cls != "Embedding" or call.internal:
            continue
        ins = ctx.in_shapes(call)
        shape = ins[0] if ins else None
        if shape is None or len(shape) < 3 or shape[-1] != 1:
            continue
        outs = ctx.out_shapes(call)
        out = outs[0] if outs else None
        nxt = _next_calls(ctx, call)
        if out is None or (nxt and all(_collapses(ctx, c, len(out)) for c in nxt)):
            continue
        want = dims.fmt_shape(shape[:-1])
        yield ctx.finding(
            EMBEDDING_TRAILING_AXIS, call,
            f"Embedding `{call.name}` gets ids of shape {dims.fmt_shape(shape)}, ending "
            f"in an axis of size 1, so it outputs {dims.fmt_shape(out)} with an extra axis",
            shapes={"input": shape, "output": out},
            hint=f"feed {want} ids: declare the input without the last axis (or "
                 f"`layers.Reshape({_tup(shape[1:-1])})`), or squeeze the data")


def _tup(shape: tuple) -> str:
    items = [dims.fmt(d) for d in shape]
    return "(" + ", ".join(items) + ("," if len(items) == 1 else "") + ")"
