"""SC702-SC705 targets: the sampled targets against each output and its loss."""

from __future__ import annotations

from typing import Any, Iterator

from shapecheck.shapes import dims
from shapecheck.data.bind import Binding, Match, evaluate, unbatched
from shapecheck.rules import batch_check, define
from shapecheck.rules.context import ModelContext, data_finding
from shapecheck.rules.losses import (BINARY, CATEGORICAL, SPARSE, compile_argument,
                                     loss_name, losses_per_output, model_outputs)

TARGET_STRUCTURE = define("SC702", "target-structure", "error",
                          "the targets do not match the model's outputs in number or name", """
    ## What it does
    Matches the targets a batch carries to the model's outputs as Keras does
    (one array, a list in output order, a dict by output name) and reports a
    wrong count, unknown names, or data with no targets at all for a model
    compiled with a loss (training, validation or evaluation data).

    ## Why is this bad
    `fit` fails with a structure error from inside Keras's loss code.

    ## Example
    ```python
    model = keras.Model(x, [label, box])
    model.fit(x_data, {"labels": y1, "box": y2})    # no output is called "labels"
    ```

    ## Use instead
    ```python
    model.fit(x_data, {"label": y1, "box": y2})
    ```
    """)

TARGET_SHAPE = define("SC703", "target-shape", "error",
                      "the targets' shape cannot meet the output's", """
    ## What it does
    Compares each target array with the output it trains, at the sizes the
    batch binds: the number of rows, and every axis the output fixes (a
    decoder of `RepeatVector(9)` steps against targets of 7).

    ## Why is this bad
    The loss fails with "Incompatible shapes" on the first batch.

    ## Example
    ```python
    model.add(layers.RepeatVector(9))
    ...
    model.train_on_batch(x, y)         # y: (1, 7, 100)
    ```

    ## Use instead
    ```python
    model.train_on_batch(x, y_padded)  # y_padded: (1, 9, 100)
    ```
    """)

TARGET_BROADCAST = define("SC704", "target-broadcast", "error",
                          "targets and predictions broadcast silently inside the loss", """
    ## What it does
    Applies Keras's own rank adjustment (`squeeze_or_expand_to_same_rank`) to
    targets and predictions and finds shapes that then differ but broadcast:
    `(N, 1)` targets against `(N, T, 1)` predictions, `(N,)` against
    `(N, 10, 1)`.

    ## Why is this bad
    Nothing fails: the loss compares every target with every prediction of
    the broadcast axes, and the model learns the wrong thing.

    ## Example
    ```python
    outputs = layers.Dense(1)(layers.LSTM(8, return_sequences=True)(inputs))
    model.compile(loss="mse"); model.fit(x, y)      # y: (N, 1)
    ```

    ## Use instead
    ```python
    outputs = layers.Dense(1)(layers.LSTM(8)(inputs))  # one value per sample
    ```
    """, outcome="silent")

LABEL_ENCODING = define("SC705", "label-encoding", "error",
                        "the labels' encoding does not match the loss", """
    ## What it does
    Reads the labels of each batch: one-hot labels with a sparse loss,
    integer labels with a categorical loss, class ids at or above the number
    of units, binary labels outside 0..1.

    ## Why is this bad
    Keras fails with a shape error or, for ids out of range, trains silently
    on garbage (on GPU) or fails deep in the loss (on CPU).

    ## Example
    ```python
    model.compile(loss="categorical_crossentropy")
    model.fit(x, np.array([3, 1, 4]))       # integer class ids
    ```

    ## Use instead
    ```python
    model.compile(loss="sparse_categorical_crossentropy")
    ```
    """, outcome="none")


def _fmt(shape: tuple) -> str:
    return dims.fmt_shape(tuple(shape))


def output_losses(ctx: ModelContext) -> dict[int, Any]:
    """``output tensor key -> loss`` from the compile call (by tensor: one layer may give
    several outputs, a shared layer's calls share its name)."""
    if not ctx.compiled:
        return {}
    loss = compile_argument(ctx.compiled, "loss", 1)
    outs, _ = model_outputs(ctx)
    return {o.key: item for o, item in losses_per_output(loss, outs)}


def same_rank(y: tuple, p: tuple) -> tuple[tuple, tuple]:
    """Keras's ``squeeze_or_expand_to_same_rank(y, p)`` on shapes (a trailing axis of 1
    dropped or added when the ranks differ by one)."""
    if len(y) == len(p) + 1 and y[-1] == 1:
        return (y, p + (1,)) if len(p) == 1 else (y[:-1], p)
    if len(p) == len(y) + 1 and p[-1] == 1:
        return (y + (1,), p) if len(y) == 1 else (y, p[:-1])
    return y, p


def broadcast(a: tuple, b: tuple) -> tuple | None:
    """NumPy broadcasting of two shapes (None: unknown size); None if impossible."""
    n = max(len(a), len(b))
    a2, b2 = (1,) * (n - len(a)) + tuple(a), (1,) * (n - len(b)) + tuple(b)
    out = []
    for x, y in zip(a2, b2):
        if x is None or y is None:
            out.append(x if y in (None, 1) else y)
        elif x == y or y == 1:
            out.append(x)
        elif x == 1:
            out.append(y)
        else:
            return None
    return tuple(out)


def agree(a: tuple, b: tuple) -> bool:
    """Same rank, and equal sizes wherever both are known."""
    return len(a) == len(b) and all(x is None or y is None or x == y for x, y in zip(a, b))


def _fixed_by(ctx: ModelContext, out_call: Any, size: int) -> str:
    """Which layer fixed an output axis to ``size``: " (fixed by RepeatVector(9) ...)"."""
    for cid in sorted(ctx.ancestors(out_call) | {out_call.id}, reverse=True):
        call = ctx.by_id[cid]
        n = getattr(call.op, "n", None) if call.cls == "RepeatVector" else None
        target = getattr(call.op, "target_shape", None) if call.cls == "Reshape" else None
        if n == size or (target and size in tuple(target)):
            what = f"RepeatVector({n})" if n is not None else f"Reshape({tuple(target)})"
            line = f" at line {call.line}" if call.line else ""
            return f" (fixed by {what} `{call.name}`{line})"
    return ""


def _rows(b: Binding) -> int | None:
    return b.values.get("batch") if "batch" in b.values else None


@batch_check
def target_structure(ctx: ModelContext, b: Binding) -> Iterator[Any]:
    for p in b.problems:
        if "output" in p:
            yield data_finding(TARGET_STRUCTURE, ctx, b, f"targets: {p}",
                               hint="give one target per output, in output order or in a "
                                    "dict by output name")
    if (b.batch.y is None and b.feed.role in _NO_TARGETS and ctx.compiled
            and output_losses(ctx)):
        words, hint = _NO_TARGETS[b.feed.role]
        yield data_finding(TARGET_STRUCTURE, ctx, b,
                           f"the {words} data carries no targets, but the model is "
                           "compiled with a loss", hint=hint)


# Data without targets fails the compiled loss ('None values not supported'): its words
# and fix, by the feed's role.
_NO_TARGETS = {
    "train": ("training", "yield `(x, y)` tuples, or pass `y=` with arrays"),
    "validation": ("validation", "pass `validation_data=(x_val, y_val)`, or a generator or "
                                 "dataset of `(x, y)` items"),
    "evaluate": ("evaluation", "pass `y=` with arrays, or yield `(x, y)` tuples"),
}


@batch_check
def target_checks(ctx: ModelContext, b: Binding) -> Iterator[Any]:
    if b.conflicts or b.rank_mismatches:  # the batch itself is wrong: said once, there
        return
    if any(axis == 0 or unbatched(tuple(m.info.shape), m.shape)
           for m, axis, *_ in b.size_mismatches):
        return  # a batch of another size than the model fixes, or one sample: said at x
    if any(p.kind == "rows" for p in b.feed.problems):  # x and y differ in length (SC606)
        return
    losses = output_losses(ctx)
    for m in b.targets:
        call = ctx.producer(m.key)
        if call is None:
            continue
        yield from _one_target(ctx, b, m, call, loss_name(losses.get(m.key)))


def _one_target(ctx: ModelContext, b: Binding, m: Match, call: Any,
                loss: str | None) -> Iterator[Any]:
    pred = evaluate(m.shape, b.values)
    y = tuple(m.info.shape)
    shapes = {f"output `{call.name}`": m.shape, m.label: y}
    rows = _rows(b)
    if rows is not None and y and y[0] != rows:
        yield data_finding(TARGET_SHAPE, ctx, b,
                           f"{m.label} has {y[0]} rows; the inputs of the batch have {rows}",
                           call=call, shapes=shapes,
                           hint="give targets one row per input sample")
        return
    units = pred[-1] if pred else None
    if loss in SPARSE:
        yield from _sparse(ctx, b, m, call, pred, y, units, shapes)
    elif loss in CATEGORICAL:
        yield from _categorical(ctx, b, m, call, pred, y, units, shapes)
    else:
        yield from _elementwise(ctx, b, m, call, pred, y, loss, shapes)


def _mismatch(ctx: ModelContext, b: Binding, m: Match, call: Any, pred: tuple, y: tuple,
              shapes: dict, full: tuple | None = None) -> Any:
    """SC703: ``pred`` is the shape the targets must have (``full``: the output's, when
    the loss drops its class axis)."""
    axis = next((i for i, (p, t) in enumerate(zip(pred, y))
                 if p is not None and p != t), None)
    fixed = _fixed_by(ctx, call, pred[axis]) if axis is not None else ""
    detail = (f": axis {axis} is {y[axis]}, the output has {pred[axis]}{fixed}"
              if axis is not None else "")
    gives = (f"gives {_fmt(full)}, so sparse class ids must be {_fmt(pred)}"
             if full is not None else f"gives {_fmt(pred)}")
    return data_finding(
        TARGET_SHAPE, ctx, b,
        f"{m.label} is {_fmt(y)}; output `{call.name}` {gives}{detail}",
        call=call, shapes=shapes,
        hint=("make the output's fixed length follow the data (or pad/crop the targets "
              "to it)" if fixed else "reshape the targets to the output's shape, or "
                                       "change the output"))


def _label_mode(b: Binding, want: str) -> str:
    """Words naming the `label_mode` to give the utility that made the dataset, if one
    did and gave other labels ("" otherwise)."""
    source = getattr(b.feed, "source", None)
    given = source.arguments.get("label_mode") if source is not None else None
    if given is None or given == want:
        return ""
    return f"pass `label_mode={want!r}` to {source.call()} (it gives {given!r} labels); or "


def _sparse(ctx: ModelContext, b: Binding, m: Match, call: Any, pred: tuple, y: tuple,
            units: Any, shapes: dict) -> Iterator[Any]:
    if len(y) == len(pred) and agree(y, pred) and units not in (None, 1) and m.info.one_hot:
        yield data_finding(
            LABEL_ENCODING, ctx, b,
            f"{m.label} is one-hot {_fmt(y)} but the loss is sparse categorical "
            "crossentropy, which wants class ids", call=call, shapes=shapes,
            hint=_label_mode(b, "int") + 'use `loss="categorical_crossentropy"`, or feed '
                 "`np.argmax(y, -1)`")
        return
    want = pred[:-1]
    if not (agree(y, want) or agree(y, want + (1,))):
        yield _mismatch(ctx, b, m, call, want, y, shapes, full=pred)
        return
    hi = m.info.max
    if isinstance(units, int) and hi is not None and hi >= units:
        yield data_finding(
            LABEL_ENCODING, ctx, b,
            f"{m.label} holds class ids up to {int(hi)}; output `{call.name}` has {units} "
            "units (ids 0.." f"{units - 1})", call=call, shapes=shapes,
            hint=f"give the output {int(hi) + 1} units, or map the labels to 0..{units - 1}")


def _categorical(ctx: ModelContext, b: Binding, m: Match, call: Any, pred: tuple,
                 y: tuple, units: Any, shapes: dict) -> Iterator[Any]:
    if units not in (None, 1) and (agree(y, pred[:-1]) or agree(y, pred[:-1] + (1,))) \
            and len(y) < len(pred) + 1 and (y[-1] == 1 or len(y) == len(pred) - 1):
        yield data_finding(
            LABEL_ENCODING, ctx, b,
            f"{m.label} {_fmt(y)} holds class ids but the loss is categorical "
            f"crossentropy, which wants one-hot rows of {units}", call=call, shapes=shapes,
            hint=_label_mode(b, "categorical") + 'use `loss="sparse_categorical_crossentropy"`, '
                 f"or feed `keras.utils.to_categorical(y, {units})`")
        return
    if not agree(y, pred):
        yield _mismatch(ctx, b, m, call, pred, y, shapes)


def _elementwise(ctx: ModelContext, b: Binding, m: Match, call: Any, pred: tuple,
                 y: tuple, loss: str | None, shapes: dict) -> Iterator[Any]:
    if loss is None:
        return
    ya, pa = same_rank(y, pred)
    if agree(ya, pa):
        if loss in BINARY and m.info.min is not None and (m.info.min < 0 or m.info.max > 1):
            yield data_finding(
                LABEL_ENCODING, ctx, b,
                f"{m.label} holds values from {m.info.min:g} to {m.info.max:g}; binary "
                "crossentropy wants labels in 0..1", call=call, shapes=shapes,
                severity="warning", hint="map the labels to 0/1")
        return
    joint = broadcast(ya, pa)
    if joint is None or loss in BINARY:  # binary crossentropy wants one shape: Keras raises
        yield _mismatch(ctx, b, m, call, pred, y, shapes)
        return
    yield data_finding(
        TARGET_BROADCAST, ctx, b,
        f"{m.label} {_fmt(y)} and output `{call.name}` {_fmt(pred)} broadcast to "
        f"{_fmt(joint)} inside the loss: every target is compared with every prediction "
        "along the broadcast axes", call=call, shapes=shapes,
        hint="give the targets the output's shape, or make the output match the targets "
             "(e.g. `return_sequences=False` for one value per sample)")
