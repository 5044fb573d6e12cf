"""SC903: a shape error raised by the user's own code between models (``pred - y``,
``tf.concat``, ``tf.reshape``, a ``TensorArray`` write, a loss written by hand), in a
hand-written loop or a ``tf.function``: a finding at that line with each operand's
shape and where it came from. Reads :class:`shapecheck.script.child.ScriptErrorInfo`.
"""

from __future__ import annotations

import re
from typing import Any

from shapecheck.report import Diagnostic, Location
from shapecheck.rules import define, script_error_check
from shapecheck.rules.context import source_line

OP_SHAPE = define("SC903", "op-shape-error", "error",
                  "code between the models combines tensors whose shapes do not fit", """
    ## What it does
    Runs a hand-written training loop as a dry run (a few steps, no weight
    changed) and, when an operation written around the models raises a
    shape error, reports it at that line: an arithmetic op (`pred - y`),
    `tf.concat`, `tf.stack`, `tf.reshape`, `tf.einsum`, a `keras.ops`
    function, a `TensorArray` write, or the call of a model on data. Each
    operand is shown with its shape and where it came from (the output of a
    model, an array assigned on some line), and model outputs in named dims.

    ## Why is this bad
    The error stops training at its first step with TensorFlow's words
    (`Incompatible shapes: [32,20,4] vs. [32,20,3] [Op:Sub]`, or a graph
    node inside a `tf.function`) and no hint of which tensor is wrong.

    ## Example
    ```python
    for x, y in batches:
        with tf.GradientTape() as tape:
            pred = model(x, training=True)              # (32, 20, 4)
            loss = tf.reduce_mean(tf.square(pred - y))  # y: (32, 20, 3)
    ```

    ## Use instead
    ```python
    model = keras.Sequential([..., layers.Dense(3)])    # as wide as the targets
    ```
    """, outcome="none")

CROSS_BROADCAST = define("SC905", "cross-broadcast", "error",
                         "code between the models broadcasts a model's output against "
                         "targets of another rank", """
    ## What it does
    Watches the arithmetic written around the models while a hand-written loop
    runs as a dry run, and in a model's own `train_step` as it is traced (`-`,
    `+`, `*`, `/` on TensorFlow tensors,
    `tf.math.squared_difference`), and reports an operation between a model's
    output and a tensor of another rank where each is stretched along an axis
    the other gives: `y - pred` with targets `(32,)` and predictions
    `(32, 1)` is `(32, 32)`.

    ## Why is this bad
    Nothing raises. The loss compares every target with every prediction and
    averages over them: the model trains on the wrong objective, its loss
    stalls near the targets' variance, and nothing says why. Keras's own
    losses (`keras.losses.MeanSquaredError`) line the two up first; the
    arithmetic written by hand does not.

    ## Example
    ```python
    pred = model(x, training=True)                     # (32, 1)
    loss = tf.reduce_mean(tf.square(y - pred))         # y: (32,) -> (32, 32)
    ```

    ## Use instead
    ```python
    loss = tf.reduce_mean(tf.square(y - tf.squeeze(pred, -1)))   # (32,)
    ```
    """, outcome="none")


def cross_broadcasts(records: list[Any], show: Any) -> list[Diagnostic]:
    """SC905 for each line where a model's output was broadcast against a tensor of
    another rank (:class:`shapecheck.script.broadcasts.CrossBroadcast`)."""
    out = []
    for r in records:
        layer = f" (layer `{r.layer}`)" if r.layer else ""
        out_t, other_t, res_t = _tuple(r.output), _tuple(r.other), _tuple(r.result)
        fix = (f"`tf.squeeze(pred, -1)` makes the output {_tuple(r.output[:-1])}"
               if len(r.output) == len(r.other) + 1 and r.output[-1] == 1 else
               f"`tf.reshape(y, {_tuple([-1, *r.output[1:]])})` makes the other side "
               f"{out_t}")
        d = CROSS_BROADCAST.finding(
            f"`{r.op}` broadcasts the output of model `{r.model}`{layer}, {out_t}, against "
            f"a tensor of another rank, {other_t}: each is stretched along the other's "
            f"axis and the result is {res_t}, every row of one against every row of the "
            "other; nothing raises", path=show(r.path), line=r.line,
            source=source_line(r.path, r.line), model=r.model, layer=r.layer,
            shapes={"model output": r.output, "other operand": r.other, "result": r.result},
            hint=f"give both sides one shape before `{r.op}`: {fix}")
        d.col, d.end_col = r.col, r.end_col
        if r.made_at[1]:
            d.related = [Location(path=show(r.made_at[0]), line=r.made_at[1],
                                  source=source_line(r.made_at[0], r.made_at[1]),
                                  message=f"the output of `{r.model}` is made here")]
        out.append(d)
    return out


_SHAPE_ERROR = re.compile(
    r"incompatible shape|dimensions must be equal|must be equal|must match|"
    r"could not be broadcast|broadcast|size-incompatible|requested shape|"
    r"input to reshape|cannot reshape|expected dimension|shape mismatch|"
    r"size of tensor|shapes cannot be multiplied|contracting dimensions|"
    r"rank|expected axis|expected shape|received input with shape|"
    r"element_shape|values\[\d+\]\.shape", re.I)
_ERRORS = ("InvalidArgumentError", "ValueError", "TypeError", "RuntimeError",
           "IndexError")


def core_message(message: str) -> str:
    """The words that say what failed, without TensorFlow's node and device decoration."""
    message = re.sub(r"\x1b\[[0-9;]*m", "", message)
    lines = [s.strip() for s in message.splitlines() if s.strip()]
    if "in user code:" in message:
        raised = [s for s in lines if re.match(r"^\w+(Error|Exception): ", s)]
        if raised:
            lines = [raised[-1].split(": ", 1)[1]]
    lines = [s for s in lines if not s.startswith(("Exception encountered when calling",
                                                   "Arguments received by", "•", "File "))]
    text = lines[0] if lines else message.strip()
    text = re.sub(r"\{\{function_node [^}]*\}\}\s*", "", text)
    op = re.search(r"\[Op:(\w+)\]", text)
    text = re.sub(r"\s*\[Op:\w+\].*$", "", text)
    text = re.sub(r"for '\{\{node [^}]*\}\} = (\w+)\[[^']*'", r"for op `\1`", text)
    text = text.rstrip(" .:")
    if op is not None:
        text += f" (op `{op.group(1)}`)"
    return text


def _tuple(shape: list[Any]) -> str:
    return "(" + ", ".join("?" if d is None else str(d) for d in shape) + \
        ("," if len(shape) == 1 else "") + ")"


def _words(op: Any) -> str:
    """"`pred` (4, 3, 4, 4) = (batch, A, 4, 4), the output of model ..."."""
    if op.element is not None:
        shape = f"element shape {_tuple(op.element)}"
        if op.loop:
            shape += f", one element per step of `{op.loop}`"
    elif op.items:
        shape = ", ".join(_tuple(s) for s in op.items[:6]) + (" ..." if len(op.items) > 6
                                                               else "")
    else:
        shape = _tuple(op.shape)
        if op.axes and len(op.shape) >= len(op.axes):
            shape += " = " + _tuple([*op.axes, *op.shape[len(op.axes):]])
        elif op.named and any(isinstance(d, str) for d in op.named):
            shape += f" = {_tuple(op.named)}"
    return f"`{op.text}` {shape}, {op.kind}, {op.origin}"


def differing_axes(a: list[Any], b: list[Any]) -> list[tuple[int, Any, Any]]:
    """Axes (counted from the left of the longer) where two shapes neither match nor
    broadcast: ``(axis, size in a, size in b)``."""
    out = []
    n = max(len(a), len(b))
    pa, pb = [1] * (n - len(a)) + list(a), [1] * (n - len(b)) + list(b)
    for i, (x, y) in enumerate(zip(pa, pb)):
        if x is not None and y is not None and x != y and 1 not in (x, y):
            out.append((i, x, y))
    return out


def _hint(message: str, ops: list[Any]) -> str:
    low = message.lower()
    array = next((o for o in ops if o.element is not None), None)
    if array is not None or "incompatible shape for value" in low:
        el = _tuple(array.element) if array is not None and array.element else "its element_shape"
        return (f"every value written to a TensorArray must have its element shape {el}: "
                "pad or cut the value to it, or give `element_shape` None on the axis "
                "that varies")
    if "values[" in low or "pack" in low or "stack" in low:
        return ("tensors stacked together must have one shape: pad them to the longest "
                "first (`tf.pad`), or keep them in a ragged tensor")
    if "concat" in low:
        return "tensors concatenated must agree on every axis but the one they are joined on"
    if "reshape" in low:
        return ("the new shape must hold as many values as the tensor: compute it from "
                "the tensor (`tf.shape(x)`) or put -1 on the axis that varies")
    if "matmul" in low or "size-incompatible" in low or "multiplied" in low or \
            "contracting" in low:
        return "the last axis of the left operand must equal the first (or second-to-last) " \
               "axis of the right one"
    shaped = [o for o in ops if o.shape]
    if len(shaped) >= 2:
        a, b = shaped[0], shaped[1]
        axes = differing_axes(a.shape, b.shape)
        if axes:
            where = "; ".join(f"axis {i}: {x} vs {y}" for i, x, y in axes)
            made = [o for o in (a, b) if o.model is not None]
            if len(made) == 1:
                m = made[0]
                other = b if m is a else a
                layer = f" (its layer `{m.layer}`)" if m.layer else ""
                return (f"`{a.text}` and `{b.text}` differ on {where}: make model "
                        f"`{m.model}`{layer} give `{other.text}`'s sizes there, or fix how "
                        f"`{other.text}` is made")
            return (f"`{a.text}` and `{b.text}` differ on {where}: make them equal "
                    "(or 1, to broadcast) there")
    return "make the operands' shapes agree on the axes the message names"


def name_operand_dims(info: Any, models: list[Any]) -> None:
    """Give each operand that is a model's output the model's symbolic shape."""
    for op in info.operands:
        if op.model is None or op.layer is None:
            continue
        entry = next((m for m in models if m.name == op.model), None)
        row = next((r for r in entry.layers if r.name == op.layer), None) if entry else None
        if row is not None and row.output_shapes:
            shapes = row.output_shapes
            op.named = list(shapes[min(op.index, len(shapes) - 1)])


@script_error_check
def op_shape_error(info: Any) -> Diagnostic | None:
    if info.error_type not in _ERRORS or not info.path or not info.line:
        return None
    text = core_message(info.message)
    if not _SHAPE_ERROR.search(text):
        return None
    ops = list(getattr(info, "operands", []) or [])
    in_call = getattr(info, "in_call", None)
    if in_call:
        head = f"the call of `{in_call}` on this line fails on its inputs' shapes: {text}"
    else:
        head = f"this line fails on its operands' shapes: {text}"
    if ops:
        head += ". " + "; ".join(_words(o) for o in ops)
    shapes: dict[str, Any] = {}
    bound: dict[str, Any] = {}
    for o in ops:
        if o.element is not None:
            shapes[f"{o.text} element"] = o.element
        elif o.items:
            for i, s in enumerate(o.items):
                shapes[f"{o.text}[{i}]"] = s
        else:
            shapes[o.text] = o.named if o.named and len(o.named) == len(o.shape) else o.shape
            for sym, size in zip(o.named or (), o.shape):
                if isinstance(sym, str) and size is not None:
                    bound.setdefault(sym, size)
    related = [Location(path=info.path, line=int(m.group(1)), message=f"`{o.text}`")
               for o in ops for m in [re.search(r"at line (\d+)", o.origin)] if m]
    d = OP_SHAPE.finding(head, path=info.path, line=info.line, source=info.source,
                         hint=_hint(info.message, ops), shapes=shapes)
    d.dims = bound
    d.related = related
    return d
