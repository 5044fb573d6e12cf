"""SC3xx merge and broadcast: inputs that cannot meet, or meet the wrong way."""

from __future__ import annotations

from typing import Any, Iterator

from shapecheck.shapes import dims
from shapecheck.rules import define, failure_check, model_check
from shapecheck.rules.construction import CLAIMED_BY_FAMILIES
from shapecheck.rules.context import MERGES, ModelContext, dot_axes, failure_finding, failure_shapes

MERGE_MISMATCH = define("SC301", "merge-mismatch", "error",
                        "merged tensors disagree on an axis they must share", """
    ## What it does
    Finds `Concatenate`, `Add`, `Multiply`, `Average`, `Maximum`, `Minimum`,
    `Subtract` and `Dot` calls whose inputs differ in rank or on an axis they
    must share, and names the axis and both sizes.

    ## Why is this bad
    Keras refuses the call with the whole list of shapes, and leaves you to
    find the axis; where sizes are unknown the model builds and the first
    batch fails (`ConcatOffset`, `Incompatible shapes`).

    ## Example
    ```python
    a = keras.Input(shape=(32, 32, 16))
    b = keras.Input(shape=(16, 16, 8))
    y = layers.Concatenate()([a, b])        # 32 vs 16 on height and width
    ```

    ## Use instead
    ```python
    y = layers.Concatenate()([a, layers.UpSampling2D()(b)])
    ```
    """)

DIMS_MUST_AGREE = define("SC302", "dims-must-agree", "info",
                         "a merge ties two sizes the model leaves free", """
    ## What it does
    Notes a merge that works only when two sizes the model leaves unknown are
    equal: the lengths of two variable-length inputs, or an input length and a
    fixed length set elsewhere (`RepeatVector(34)` against a caption of
    `T` words).

    ## Why is this bad
    Keras treats every `None` as unrelated, so the model builds; data whose
    sizes differ fails inside `fit`, often in the gradient. shapecheck checks
    the sizes against the data when it sees `fit`.

    ## Example
    ```python
    a = keras.Input(shape=(None, 8)); b = keras.Input(shape=(None, 8))
    y = layers.Add()([a, b])                  # needs T_a == T_b
    ```

    ## Use instead
    ```python
    a = keras.Input(shape=(20, 8)); b = keras.Input(shape=(20, 8))
    y = layers.Add()([a, b])
    ```
    """)

RANK_BROADCAST = define("SC303", "rank-broadcast", "error",
                        "a merge repeats a lower-rank tensor over the axes it lacks", """
    ## What it does
    Finds `Add`, `Subtract`, `Multiply`, `Average`, `Maximum` and `Minimum` of
    tensors of different rank where the smaller one has a batch axis, e.g.
    `(batch, 16)` and `(batch, 32, 16)`. Keras inserts axes after the batch and
    silently repeats the smaller tensor over them; when a recurrent layer
    without `return_sequences=True` meets a sequence, or when two equal-size
    axes line up by accident (`(batch, T)` weights times `(batch, T, H)` with
    T == H), that is never what was meant.

    ## Why is this bad
    Nothing fails: the model trains on the wrong numbers, or fails only for
    other sizes. An error when the smaller tensor is the last step of a
    recurrent layer or lines up by accident; a warning when one vector per
    sample is repeated over the other axes (say so with `RepeatVector`).

    ## Example
    ```python
    last = layers.GRU(16)(seq)                          # (batch, 16)
    steps = layers.GRU(16, return_sequences=True)(seq)  # (batch, 32, 16)
    y = layers.add([last, steps])
    ```

    ## Use instead
    ```python
    last = layers.GRU(16, return_sequences=True)(seq)
    y = layers.add([last, steps])
    ```
    """, outcome="silent")

BATCH_MISALIGNED = define("SC304", "batch-misaligned", "error",
                          "arithmetic lines a tensor's batch axis up with another axis", """
    ## What it does
    Finds `+`, `-`, `*`, `/` and other broadcasting `keras.ops` between a
    tensor that has a batch axis and a tensor of higher rank: NumPy-style
    broadcasting aligns shapes from the right, so the batch axis of the
    smaller tensor meets a non-batch axis of the larger one.

    ## Why is this bad
    The model builds; the first batch fails with "Incompatible shapes" unless
    the batch size happens to equal that axis (or is 1), and then the result
    is silently wrong.

    ## Example
    ```python
    pooled = layers.GlobalAveragePooling1D()(seq)      # (batch, 64)
    y = seq + pooled                                   # (batch, T, 64) + (batch, 64)
    ```

    ## Use instead
    ```python
    y = seq + ops.expand_dims(pooled, 1)               # (batch, 1, 64)
    ```
    """, outcome="none")

_ELEMWISEMERGES = MERGES - {"Concatenate", "Dot"}
_BROADCAST_OPS = {"Add", "Subtract", "Multiply", "Divide", "DivideNoNan", "TrueDivide",
                  "FloorDivide", "Power", "Mod", "Maximum", "Minimum", "Where"}


def _is_batch(d: Any) -> bool:
    return d is not None and not isinstance(d, int) and dims.free_names(d) == {"batch"} \
        and d == dims.named("batch")


def _is_merge(call: Any) -> bool:
    return call.cls in MERGES and ".layers." in type(call.op).__module__


def _labelled(ctx: ModelContext, call: Any) -> dict[str, tuple | None]:
    out: dict[str, tuple | None] = {}
    for p, s in zip(ctx.producers(call), ctx.in_shapes(call)):
        label = p.name if p is not None else "input"
        while label in out:
            label += "'"
        out[label] = s
    return out


# --- SC301: refused or impossible merges -------------------------------------------


def _first_difference(shapes: list[tuple], skip_axis: int | None) -> str | None:
    ranks = {len(s) for s in shapes}
    if len(ranks) > 1:
        return "their ranks differ (" + ", ".join(str(len(s)) for s in shapes) + ")"
    rank = ranks.pop()
    for k in range(rank):
        if skip_axis is not None and k == skip_axis % rank:
            continue
        values = [s[k] for s in shapes]
        known = [v for v in values if v is not None]
        if any(dims.equal(known[0], v) is False for v in known[1:]):
            return f"axis {k} is " + " vs ".join(dims.fmt(v) for v in values)
    return None


def _dot_difference(op: Any, shapes: list[tuple]) -> str | None:
    """The contracted axes of a Dot that differ: ``axis 2 is 128 vs 64``."""
    axes = dot_axes(op, shapes)
    if axes is None:
        return None
    a, b = axes
    x, y = shapes[0][a], shapes[1][b]
    if x is None or y is None or dims.equal(x, y) is not False:
        return None
    where = f"axis {a}" if a == b else f"axis {a} of the first and axis {b} of the second"
    return f"the contracted {where} is {dims.fmt(x)} vs {dims.fmt(y)}"


@failure_check(priority=30)
def refused_merge(failure: Any, ctx: ModelContext | None, call: Any) -> Any:
    op = failure.op
    if type(op).__name__ not in MERGES or ".layers." not in type(op).__module__:
        return None
    shapes = [s for s in failure_shapes(failure, ctx, call) if s is not None]
    if len(shapes) < 2:
        return None
    axis = getattr(op, "axis", None) if type(op).__name__ == "Concatenate" else None
    diff = _first_difference(shapes, axis)
    if type(op).__name__ == "Dot" and len(shapes) == 2:
        diff = _dot_difference(op, shapes) or diff
    if diff is None:
        return None
    labels = (_labelled(ctx, call) if ctx is not None and call is not None
              else {f"input {i}": s for i, s in enumerate(shapes)})
    what = (f"along axis {axis} needs the other axes equal" if axis is not None
            else "needs inputs of one shape (or broadcastable)")
    message = f"{type(op).__name__} `{op.name}` {what}; {diff}"
    return failure_finding(MERGE_MISMATCH, failure, ctx, call, message, shapes=labels,
                           hint=_merge_hint(shapes, axis))


def _merge_hint(shapes: list[tuple], axis: int | None) -> str:
    ranks = {len(s) for s in shapes}
    if len(ranks) > 1:
        return ("bring the inputs to one rank first (Reshape, RepeatVector, "
                "`return_sequences=True`, or a global pooling on the larger one)")
    if axis is not None:
        return ("resize one branch so the other axes agree (UpSampling/pooling/Cropping "
                "for spatial axes, Dense for features), or concatenate along the axis "
                "that differs")
    return "make the branches produce the same shape (a Dense or Conv to match channels)"


def _claims_merge(ctx: ModelContext, call: Any, c: Any) -> bool:
    return _is_merge(call)


CLAIMED_BY_FAMILIES.append(_claims_merge)


@model_check
def impossible_merge(ctx: ModelContext) -> Iterator[Any]:
    for c in ctx.scope.constraints:
        call = ctx.by_name.get(c.layer)
        if call is None or not _is_merge(call) or c.holds is not False:
            continue
        yield ctx.finding(
            MERGE_MISMATCH, call,
            f"{call.cls} `{call.name}` needs {dims.fmt(c.lhs)} == {dims.fmt(c.rhs)} "
            f"({c.reason}); they are never equal",
            shapes=_labelled(ctx, call), hint=_merge_hint(ctx.in_shapes(call), None))


# --- SC302: sizes a merge ties together ---------------------------------------------


def _has_free(d: Any) -> bool:
    return d is not None and not isinstance(d, int) and bool(dims.free_names(d) - {"batch"})


_SCAN = range(1, 1025)


def condition(lhs: Any, rhs: Any) -> str:
    """``lhs == rhs`` in words: ``H is a multiple of 4`` where that is what it means."""
    free = (dims.free_names(lhs) | dims.free_names(rhs)) - {"batch"}
    text = f"{dims.fmt(lhs)} == {dims.fmt(rhs)}"
    if len(free) != 1:
        return text
    name = next(iter(free))
    try:
        ok = [n for n in _SCAN if dims.evaluate(lhs, {name: n}) == dims.evaluate(rhs, {name: n})]
    except Exception:  # an expression the evaluator cannot take: say it as it is
        return text
    if len(ok) == 1:
        return f"{name} == {ok[0]}"
    holds = [n in set(ok) for n in _SCAN]
    for period in range(2, 65):  # a pattern that repeats: a divisibility condition
        if all(holds[i] == holds[i + period] for i in range(len(holds) - period)):
            residues = sorted({n % period for n in ok})
            if residues == [0]:
                return f"{name} is a multiple of {period}"
            if residues:
                return f"{name} % {period} is {' or '.join(map(str, residues))}"
    return text


@model_check
def tied_dims(ctx: ModelContext) -> Iterator[Any]:
    if ctx.traced:  # no variable size was declared; the data binds them (SC604)
        return
    by_call: dict[int, list[str]] = {}
    for c in ctx.scope.constraints:
        if c.holds is not None:
            continue
        call = ctx.by_name.get(c.layer)
        if call is None or not _is_merge(call):
            continue
        if not (_has_free(c.lhs) or _has_free(c.rhs)):
            continue
        text = condition(c.lhs, c.rhs)
        if text not in by_call.setdefault(call.id, []):
            by_call[call.id].append(text)
    for cid, conditions in by_call.items():
        call = ctx.by_id[cid]
        multiples = all("multiple of" in t for t in conditions)
        yield ctx.finding(
            DIMS_MUST_AGREE, call,
            f"{call.cls} `{call.name}` works only when {' and '.join(conditions)}",
            shapes=_labelled(ctx, call),
            hint=("pad or resize the data to such sizes, or declare them in the "
                  "model's inputs" if multiples else
                  "make sure the data gives these axes the same size, or fix both sizes "
                  "in the model's inputs"))


# --- SC303: Merge layers repeating a lower-rank tensor ---------------------------------


def _aligned_by_accident(small: tuple, big: tuple) -> int | None:
    """An axis of ``big`` (not the last ones) that holds ``small``'s last dim."""
    last = small[-1]
    if last is None or len(big) - len(small) < 1:
        return None
    for k in range(1, len(big) - len(small) + 1):
        if big[k] is not None and dims.equal(big[k], last) is True:
            return k
    return None


@model_check
def rank_broadcast(ctx: ModelContext) -> Iterator[Any]:
    from shapecheck.rules.recurrent import sequence_source

    for call in ctx.calls:
        if call.cls not in _ELEMWISEMERGES or not _is_merge(call) or call.failure:
            continue
        shapes = ctx.in_shapes(call)
        if any(s is None for s in shapes) or len({len(s) for s in shapes}) < 2:
            continue
        big = max(shapes, key=len)
        producers = ctx.producers(call)
        for p, small in zip(producers, shapes):
            if len(small) == len(big) or not small or not _is_batch(small[0]):
                continue
            name = p.name if p is not None else "input"
            missing = len(big) - len(small)
            expanded = small[:1] + (1,) * missing + small[1:]
            message = (f"{call.cls} `{call.name}` repeats `{name}` {dims.fmt_shape(small)} "
                       f"as {dims.fmt_shape(expanded)} over "
                       f"{dims.fmt_shape(big)}")
            rnn = sequence_source(ctx, p)
            severity = "error"
            if rnn is not None:
                hint = (f"`{rnn.name}` returns only its last step; set "
                        "`return_sequences=True` on it to merge step by step, or use "
                        "`RepeatVector` if one vector per sample is meant")
            else:
                k = _aligned_by_accident(small, big)
                if k is not None:
                    hint = (f"`{name}`'s last axis {dims.fmt(small[-1])} is aligned with the "
                            f"last axis of the other input, not with its axis {k}: add the "
                            f"missing axis where it belongs, e.g. "
                            f"`layers.Reshape(({dims.fmt(small[-1])}, 1))`")
                else:  # one vector per sample repeated over steps: maybe meant
                    severity = "warning"
                    hint = ("make the repetition explicit (`RepeatVector`, "
                            "`ops.expand_dims`) or give both inputs the same rank")
            yield ctx.finding(RANK_BROADCAST, call, message, severity=severity,
                              shapes=_labelled(ctx, call), hint=hint)


# --- SC304: NumPy broadcasting that aligns a batch axis with another axis -------------


@model_check
def batch_misaligned(ctx: ModelContext) -> Iterator[Any]:
    for call in ctx.calls:
        if call.cls not in _BROADCAST_OPS or ".ops." not in type(call.op).__module__:
            continue
        shapes = [s for s in ctx.in_shapes(call) if s is not None]
        if len(shapes) < 2:
            continue
        n = max(len(s) for s in shapes)
        big = max(shapes, key=len)
        for p, small in zip(ctx.producers(call), ctx.in_shapes(call)):
            if small is None or len(small) >= n or not small or not _is_batch(small[0]):
                continue
            lands = big[n - len(small)]
            if lands == 1 or _is_batch(lands):
                continue
            name = p.name if p is not None else "input"
            yield ctx.finding(
                BATCH_MISALIGNED, call,
                f"`{call.name}` broadcasts `{name}` {dims.fmt_shape(small)} against "
                f"{dims.fmt_shape(big)}: its batch axis lines up with axis "
                f"{n - len(small)} ({dims.fmt(lands)}), so the call fails unless the batch "
                f"size is {dims.fmt(lands)} or 1",
                shapes=_labelled(ctx, call),
                hint=f"insert the missing axes after the batch: "
                     f"`ops.expand_dims({name}, 1)` (or `layers.Reshape`) before the "
                     "operation")

