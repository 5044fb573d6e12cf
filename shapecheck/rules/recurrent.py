"""SC4xx recurrent: states, sequences and directions of RNN layers."""

from __future__ import annotations

import re
from typing import Any, Iterator

from shapecheck.shapes import dims
from shapecheck.shapes.layers.registry import flatten
from shapecheck.rules import define, failure_check, model_check, script_error_check
from shapecheck.rules.construction import CLAIMED_BY_FAMILIES
from shapecheck.rules.context import MERGES, ModelContext, failure_finding, failure_shapes
from shapecheck.shapes.refused import expectation

STATE_COUNT = define("SC401", "initial-state-count", "error",
                     "initial_state has another number of tensors than the cell carries", """
    ## What it does
    Counts the tensors passed as `initial_state` against the states the layer
    carries: LSTM 2 (h, c), GRU 1, SimpleRNN 1, ConvLSTM 2, a stacked or
    custom cell its `state_size`, and `Bidirectional` twice its layer's count
    (the first half for the forward layer, the second for the backward one).

    ## Why is this bad
    Keras 3 builds the model; the first batch fails deep inside the recurrent
    loop (`list index out of range`, `Too few leaves for PyTreeSpec`).

    ## Example
    ```python
    out, fh, fc, bh, bc = layers.Bidirectional(
        layers.LSTM(64, return_state=True))(enc)
    dec = layers.Bidirectional(layers.LSTM(64, return_sequences=True))(
        dec_in, initial_state=[fh, fc])                 # 2 of the 4 states
    ```

    ## Use instead
    ```python
    dec = layers.Bidirectional(layers.LSTM(64, return_sequences=True))(
        dec_in, initial_state=[fh, fc, bh, bc])
    ```
    """)

STATE_WIDTH = define("SC402", "state-width", "error",
                     "an initial state's width differs from the layer's units", """
    ## What it does
    Compares each `initial_state` tensor with the state the cell carries:
    `(batch, units)` for LSTM, GRU and SimpleRNN. Concatenated forward and
    backward states of a `Bidirectional` encoder are twice as wide as a
    decoder with the encoder's units.

    ## Why is this bad
    Keras 3 builds the model; the first batch fails in the recurrent kernel's
    matrix product.

    ## Example
    ```python
    _, fh, fc, bh, bc = layers.Bidirectional(layers.LSTM(64, return_state=True))(enc)
    h = layers.Concatenate()([fh, bh]); c = layers.Concatenate()([fc, bc])   # 128 wide
    dec = layers.LSTM(64, return_sequences=True)(dec_in, initial_state=[h, c])
    ```

    ## Use instead
    ```python
    dec = layers.LSTM(128, return_sequences=True)(dec_in, initial_state=[h, c])
    ```
    """)

NEEDS_SEQUENCE = define("SC403", "needs-sequence", "error",
                        "an RNN's last step feeds a layer that wants the whole sequence", """
    ## What it does
    Finds a recurrent layer without `return_sequences=True` (output
    `(batch, units)`) feeding a layer that needs `(batch, time, features)`:
    another RNN, Conv1D, 1D pooling, attention.

    ## Why is this bad
    Keras refuses the call with `expected ndim=3, found ndim=2`, which does
    not say that the earlier layer dropped the time axis.

    ## Example
    ```python
    x = layers.LSTM(64)(seq)
    y = layers.LSTM(32)(x)
    ```

    ## Use instead
    ```python
    x = layers.LSTM(64, return_sequences=True)(seq)
    y = layers.LSTM(32)(x)
    ```
    """)

NO_TIME_AXIS = define("SC404", "time-distributed-without-time", "error",
                      "TimeDistributed applied to a tensor without a time axis", """
    ## What it does
    Finds `TimeDistributed(layer)` called on a tensor of rank 2, which has no
    time axis to distribute over.

    ## Why is this bad
    Keras refuses it; usually an earlier layer dropped the time axis
    (`return_sequences=False`, Flatten, global pooling) or the wrapper is not
    needed.

    ## Example
    ```python
    x = layers.LSTM(64)(seq)                               # (batch, 64)
    y = layers.TimeDistributed(layers.Dense(10))(x)
    ```

    ## Use instead
    ```python
    x = layers.LSTM(64, return_sequences=True)(seq)        # (batch, T, 64)
    y = layers.TimeDistributed(layers.Dense(10))(x)
    ```
    """)

NOT_REVERSED = define("SC405", "backward-not-reversed", "warning",
                      "a go_backwards sequence is merged with a forward one unreversed", """
    ## What it does
    Finds the output sequence of a recurrent layer with `go_backwards=True`
    and `return_sequences=True` merged (added, concatenated, ...) with a
    forward sequence without being reversed back.

    ## Why is this bad
    Step t of the backward output belongs to input step T-1-t: the merge
    combines the wrong time steps. `Bidirectional` reverses it for you.

    ## Example
    ```python
    fw = layers.GRU(16, return_sequences=True)(seq)
    bw = layers.GRU(16, return_sequences=True, go_backwards=True)(seq)
    y = layers.add([fw, bw])
    ```

    ## Use instead
    ```python
    y = layers.Bidirectional(layers.GRU(16, return_sequences=True), merge_mode="sum")(seq)
    ```
    """)

UNPACK = define("SC406", "return-state-unpack", "error",
                "the outputs of an RNN with return_state are unpacked to the wrong count", """
    ## What it does
    Explains a `too many values to unpack` / `not enough values to unpack`
    error on the line that calls a recurrent layer with `return_state=True`:
    LSTM returns 3 tensors (output, h, c), GRU and SimpleRNN 2, and
    `Bidirectional` 1 + twice its layer's states (5 for an LSTM).

    ## Why is this bad
    The script stops with a Python error that does not mention the layer.

    ## Example
    ```python
    out, h, c = layers.Bidirectional(layers.LSTM(64, return_state=True))(x)
    ```

    ## Use instead
    ```python
    out, fh, fc, bh, bc = layers.Bidirectional(layers.LSTM(64, return_state=True))(x)
    ```
    """)


# --- helpers ---------------------------------------------------------------------------


def _is_rnn(op: Any) -> bool:
    from keras import layers

    return isinstance(op, (layers.RNN, layers.Bidirectional))


def state_count(op: Any) -> int | None:
    """How many state tensors ``op`` carries (None when unknown)."""
    from keras import layers

    if isinstance(op, layers.Bidirectional):
        one = state_count(op.forward_layer)
        return None if one is None else 2 * one
    cell = getattr(op, "cell", None)
    size = getattr(cell, "state_size", None)
    if size is None:
        return None
    if isinstance(size, int):
        return 1 if size >= 0 or "ConvLSTM" not in type(op).__name__ else 2
    return len(flatten(list(size)))


def _cell_name(op: Any) -> str:
    from keras import layers

    if isinstance(op, layers.Bidirectional):
        return f"Bidirectional({type(op.forward_layer).__name__})"
    return type(op).__name__


def _state_names(op: Any) -> list[str]:
    from keras import layers

    if isinstance(op, layers.Bidirectional):
        one = _state_names(op.forward_layer)
        return [f"{n} forward" for n in one] + [f"{n} backward" for n in one]
    n = state_count(op) or 0
    if n == 2:
        return ["h", "c"]
    return ["h"] if n == 1 else [f"state {i}" for i in range(n)]


def sequence_source(ctx: ModelContext, call: Any) -> Any:
    """The RNN behind ``call`` (past shape-preserving layers) if it drops the time axis."""
    src = ctx.through(call)
    if src is None or not _is_rnn(src.op):
        return None
    return src if not getattr(src.op, "return_sequences", False) else None


def _initial_state_keys(call: Any) -> list[Any] | None:
    """The KerasTensors passed as ``initial_state`` (None when not given)."""
    knode = call.knode
    if knode is None:
        return None
    a = knode.arguments
    init = a.kwargs.get("initial_state")
    if init is None and len(a.args) > 1:
        init = a.args[1]
    if init is None:
        return None
    if not isinstance(init, (list, tuple, dict)):
        init = [init]
    return flatten(init)


# --- SC401 / SC402 --------------------------------------------------------------------


@model_check
def initial_state_count(ctx: ModelContext) -> Iterator[Any]:
    for call in ctx.calls:
        if not _is_rnn(call.op) or call.failure:
            continue
        given = _initial_state_keys(call)
        want = state_count(call.op)
        if given is None or want is None or len(given) == want:
            continue
        names = _state_names(call.op)
        shapes = {f"initial_state[{i}]": ctx.tensor_shape(id(t)) for i, t in enumerate(given)}
        message = (f"{_cell_name(call.op)} `{call.name}` carries {want} state tensor(s) "
                   f"({', '.join(names)}); initial_state has {len(given)}")
        yield ctx.finding(STATE_COUNT, call, message, shapes=shapes,
                          hint=_count_hint(ctx, call, given, want))


def _count_hint(ctx: ModelContext, call: Any, given: list[Any], want: int) -> str:
    from keras import layers

    sources = {ctx.producer(id(t)).name for t in given if ctx.producer(id(t)) is not None}
    src_calls = [ctx.by_name[n] for n in sources if n in ctx.by_name]
    bidi_src = [c for c in src_calls if isinstance(c.op, layers.Bidirectional)]
    if isinstance(call.op, layers.Bidirectional):
        half = want // 2
        if bidi_src:
            one = ", ".join(_state_names(call.op.forward_layer))
            return (f"pass all {want} states returned by `{bidi_src[0].name}`, in its order "
                    f"(forward {one}, then backward {one}): the first half goes to the "
                    "forward layer, the second to the backward one")
        return (f"pass {want} tensors, forward states then backward states, or use a "
                f"unidirectional decoder that takes {half}")
    if bidi_src and len(given) > want:
        return ("a Bidirectional encoder returns forward and backward states: pass one "
                f"direction's {want} (or concatenate them and double the decoder's units)")
    return f"pass exactly {want} tensor(s): {', '.join(_state_names(call.op))}"


def _state_constraint(ctx: ModelContext, call: Any, c: Any) -> bool:
    return _is_rnn(call.op) and c.reason.startswith("initial state")


CLAIMED_BY_FAMILIES.append(_state_constraint)
_STATE_INDEX = re.compile(r"initial state (\d+)")


@model_check
def state_width(ctx: ModelContext) -> Iterator[Any]:
    """One finding per call and kind of mismatch, naming every state it concerns."""
    groups: dict[tuple[int, str, str, str], list[tuple[int, Any]]] = {}
    for c in ctx.scope.constraints:
        call = ctx.by_name.get(c.layer)
        if call is None or c.holds is not False or not _state_constraint(ctx, call, c):
            continue
        m = _STATE_INDEX.match(c.reason)
        what = "batch size" if "its batch size" in c.reason else "width"
        key = (call.id, what, dims.fmt(c.lhs), dims.fmt(c.rhs))
        groups.setdefault(key, []).append((int(m.group(1)) if m else 0, c))
    for (call_id, what, got, want), states in groups.items():
        yield _state_finding(ctx, ctx.by_id[call_id], what, got, want,
                             sorted({i for i, _ in states}))


def _state_finding(ctx: ModelContext, call: Any, what: str, got: str, want: str,
                   indices: list[int]) -> Any:
    from keras import layers

    given = _initial_state_keys(call) or []
    tensors = {i: given[i] for i in indices if i < len(given)}
    shapes = {f"initial_state[{i}]": ctx.tensor_shape(id(t)) for i, t in tensors.items()}
    srcs = [ctx.producer(id(t)) for t in tensors.values()]
    inner = call.op.forward_layer if isinstance(call.op, layers.Bidirectional) else call.op
    units = getattr(inner, "units", None) or getattr(inner, "filters", None)
    which = (f"initial state {indices[0]}" if len(indices) == 1 else
             "initial states " + ", ".join(map(str, indices[:-1])) + f" and {indices[-1]}")
    verb = "has" if len(indices) == 1 else "have"
    message = (f"{which} of {_cell_name(call.op)} `{call.name}` {verb} {what} {got}; the "
               f"layer carries {want}" + (f" ({units} units)" if units and what == "width" else ""))
    concat = next((s for s in srcs if s is not None and s.cls == "Concatenate"), None)
    if concat is not None and what == "width":
        hint = (f"`{concat.name}` concatenates forward and backward states: give "
                f"`{call.name}` units={got}, or project the state to {want} with a Dense layer")
    else:
        hint = f"give the state {want} features (a Dense projection) or the layer units={got}"
    return ctx.finding(STATE_WIDTH, call, message, shapes=shapes, hint=hint)


# --- SC403 / SC404: refused calls caused by a missing time axis ----------------------


def _upstream_rnn(tensor: Any) -> Any:
    """The RNN that made ``tensor``, past shape-preserving layers, if it dropped time."""
    from shapecheck.rules.context import SHAPE_PRESERVING

    while tensor is not None:
        hist = getattr(tensor, "_keras_history", None)
        op = getattr(hist, "operation", None)
        if op is None:
            return None
        op = getattr(op, "failed_op", op)
        if _is_rnn(op):
            return op if not getattr(op, "return_sequences", False) else None
        if type(op).__name__ not in SHAPE_PRESERVING:
            return None
        ins = op._inbound_nodes[hist.node_index].arguments.keras_tensors
        tensor = ins[0] if ins else None
    return None


@failure_check(priority=30)
def time_axis_missing(failure: Any, ctx: ModelContext | None, call: Any) -> Any:
    op = failure.op
    shapes = failure_shapes(failure, ctx, call)
    if not shapes or shapes[0] is None or len(shapes[0]) != 2:
        return None
    got = shapes[0]
    rnn = _upstream_rnn(failure.inputs[0]) if failure.inputs else None
    if type(op).__name__ == "TimeDistributed":
        message = (f"TimeDistributed `{op.name}` applies its layer to each step of axis 1; "
                   f"its input {dims.fmt_shape(got)} has no time axis")
        hint = (f"set `return_sequences=True` on `{rnn.name}`" if rnn is not None else
                "keep the time axis upstream, or apply the inner layer without "
                "TimeDistributed")
        return failure_finding(NO_TIME_AXIS, failure, ctx, call, message,
                               shapes={"input": got}, hint=hint)
    want = expectation(op)
    if rnn is None or want is None or "time" not in want and "steps" not in want:
        return None
    message = (f"{type(op).__name__} `{op.name}` wants {want}; `{rnn.name}` returns only "
               f"its last step {dims.fmt_shape(got)}")
    return failure_finding(NEEDS_SEQUENCE, failure, ctx, call, message,
                           shapes={rnn.name: got},
                           hint=f"set `return_sequences=True` on `{rnn.name}`")


# --- SC405 ------------------------------------------------------------------------------


def _backward_source(ctx: ModelContext, call: Any) -> Any:
    src = ctx.through(call)
    if src is None or not _is_rnn(src.op):
        return None
    from keras import layers

    if isinstance(src.op, layers.Bidirectional):
        return None
    if getattr(src.op, "go_backwards", False) and getattr(src.op, "return_sequences", False):
        return src
    return None


@model_check
def backward_not_reversed(ctx: ModelContext) -> Iterator[Any]:
    for call in ctx.calls:
        if call.cls not in MERGES or call.failure:
            continue
        producers = ctx.producers(call)
        shapes = ctx.in_shapes(call)
        backward = [p for p in producers if p is not None and _backward_source(ctx, p)]
        forward = [p for p, s in zip(producers, shapes)
                   if p is not None and not _backward_source(ctx, p) and s is not None
                   and len(s) == 3]
        if not backward or not forward:
            continue
        bw = _backward_source(ctx, backward[0])
        yield ctx.finding(
            NOT_REVERSED, call,
            f"{call.cls} `{call.name}` merges `{bw.name}` (go_backwards=True: its step t "
            f"is input step T-1-t) with the forward sequence `{forward[0].name}` step by step",
            shapes={p.name: s for p, s in zip(producers, shapes) if p is not None},
            hint=f"reverse `{bw.name}`'s output back along time "
                 "(`layers.Lambda(lambda t: keras.ops.flip(t, axis=1))`) or use "
                 "`layers.Bidirectional`")


# --- SC406 ------------------------------------------------------------------------------

_UNPACK = re.compile(r"(too many values to unpack|not enough values to unpack)"
                     r" \(expected (\d+)(?:, got (\d+))?\)")


@script_error_check
def return_state_unpack(info: Any) -> Any:
    m = _UNPACK.search(info.message)
    if m is None or info.error_type != "ValueError":
        return None
    calls = [c for c in info.calls_at_line if _is_rnn(c.op)
             and getattr(c.op, "return_state", False)]
    if not calls:
        return None
    c = calls[-1]
    n = c.n_outputs
    expected = int(m.group(2))
    names = ["output"] + _state_names(c.op)
    message = (f"{_cell_name(c.op)} `{c.op.name}` with return_state=True returns {n} "
               f"tensors ({', '.join(names)}); the line unpacks {expected}")
    return UNPACK.finding(message, layer=c.op.name, path=info.path, line=info.line,
                          col=None, source=info.source,
                          hint=f"unpack {n} names, e.g. `{', '.join(_var_names(names))} = ...`")


def _var_names(names: list[str]) -> list[str]:
    out = []
    for n in names:
        parts = n.split()
        out.append(parts[0] if len(parts) == 1 else f"{parts[1][0]}{parts[0]}")
    return out
