"""SC7xx targets and losses: what ``compile`` asks of the model's outputs."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from shapecheck.shapes import dims
from shapecheck.shapes.graph import LayerCall
from shapecheck.rules import define, model_check
from shapecheck.rules.context import SHAPE_PRESERVING, ModelContext, source_line
from shapecheck.rules.layer_config import output_activation

LOSS_OUTPUT_MISMATCH = define("SC701", "loss-output-mismatch", "error",
                              "the compiled loss does not fit the output it applies to", """
    ## What it does
    Checks the `loss` (a name, a `keras.losses` function or `Loss` object, a
    list per output or a dict by output name) and `loss_weights` given to
    `compile` against the model's outputs:

    - `categorical_crossentropy` on an output with one unit (the loss is
      always 0);
    - `sparse_categorical_crossentropy` on an output with one unit (only
      class 0 exists);
    - `binary_crossentropy` on a softmax output of more than 2 units
      (a warning);
    - a list of losses or loss weights whose length is not the number of
      outputs, a single loss with several weights, a dict whose keys are not
      the output names.

    ## Why is this bad
    Categorical crossentropy normalises over the last axis: over one unit
    the prediction is always 1 and the loss always 0, so nothing is learned.
    Sparse categorical crossentropy with one unit rejects every label but 0.
    Binary crossentropy on a softmax scores each class as an independent
    yes/no against outputs that must sum to 1. A list or dict that does not
    match the outputs fails in the first `fit` (`KeyError`, "Expected keys
    ... in loss dict"), or, for a single output, silently uses only the
    first loss.

    ## Example
    ```python
    y = layers.Dense(1, activation="sigmoid")(x)
    model = keras.Model(inputs, y)
    model.compile(optimizer="adam", loss="categorical_crossentropy")
    ```

    ## Use instead
    ```python
    model.compile(optimizer="adam", loss="binary_crossentropy")
    # or, for n classes:
    y = layers.Dense(n_classes, activation="softmax")(x)
    ```
    """, outcome="none")

CATEGORICAL = frozenset({"categorical_crossentropy", "categorical_focal_crossentropy"})
SPARSE = frozenset({"sparse_categorical_crossentropy"})
BINARY = frozenset({"binary_crossentropy", "binary_focal_crossentropy"})


@dataclass
class Output:
    """One model output as compile sees it."""

    name: str
    call: LayerCall
    shape: tuple | None
    key: int | None = None  # the output tensor's key (a layer may give several outputs)


@dataclass
class Problem:
    """A mismatch between what compile says and the outputs, in words."""

    message: str
    hint: str
    output: Output
    severity: str | None = None


# --- reading compile ------------------------------------------------------------------


def compile_argument(compiled: dict, name: str, position: int) -> Any:
    """``compile``'s argument ``name`` (given by keyword or at ``position``)."""
    kwargs = compiled.get("kwargs") or {}
    if name in kwargs:
        return kwargs[name]
    args = compiled.get("args") or ()
    return args[position] if len(args) > position else None


def _snake(name: str) -> str:
    out = "".join("_" + ch.lower() if ch.isupper() else ch for ch in name).lstrip("_")
    return out.replace("cross_entropy", "crossentropy")


def loss_name(loss: Any) -> str | None:
    """The canonical function name of a loss (``categorical_crossentropy``), or None."""
    import keras

    try:
        obj = keras.losses.get(loss)
    except (ValueError, TypeError):  # an unknown name: compile reports it
        return None
    fn = getattr(obj, "fn", None)
    if fn is not None and hasattr(fn, "__name__"):
        return fn.__name__
    if isinstance(obj, keras.losses.Loss):
        return _snake(type(obj).__name__)
    return getattr(obj, "__name__", None)


def loss_label(loss: Any) -> str:
    """How the user wrote the loss, for messages."""
    if isinstance(loss, str):
        return f'"{loss}"'
    if hasattr(loss, "fn") or not hasattr(loss, "__name__"):
        return f"{type(loss).__name__}()"
    return loss.__name__


def model_outputs(ctx: ModelContext) -> tuple[list[Output], bool]:
    """The model's outputs in Keras's order, and whether they form a dict."""
    struct = getattr(ctx.model, "_outputs_struct", None)
    by_tensor = ({id(t): str(k) for k, t in struct.items()} if isinstance(struct, dict)
                 else {})
    names = getattr(ctx.model, "output_names", None) or []
    outs = []
    for i, key in enumerate(ctx.graph.outputs):
        call = ctx.producer(key)
        if call is None:
            continue
        name = by_tensor.get(key) or (names[i] if i < len(names) else call.name)
        outs.append(Output(name, call, ctx.tensor_shape(key), key))
    return outs, bool(by_tensor)


def final_activation(ctx: ModelContext, call: LayerCall) -> str | None:
    """The last activation applied to ``call``'s output (past Dropout and the like)."""
    for _ in range(20):
        act = output_activation(call)
        if act is not None and act[0] != "linear":
            return act[0]
        if call.cls not in SHAPE_PRESERVING or not call.inputs:
            return act[0] if act else None
        up = ctx.producer(call.inputs[0])
        if up is None:
            return None
        call = up
    return None


# --- structure: one loss per output ---------------------------------------------------


def _names(items: list[str]) -> str:
    return ", ".join(f'"{n}"' for n in items)


def _dict_problem(what: str, value: dict, outs: list[Output],
                  dict_outputs: bool) -> Problem | None:
    names = [o.name for o in outs]
    extra = [str(k) for k in value if k not in names]
    missing = [] if dict_outputs else [n for n in names if n not in value]
    if not extra and not missing:
        return None
    parts = []
    if extra:
        parts.append(f"{_names(extra)} {'is' if len(extra) == 1 else 'are'} not an output")
    if missing:
        parts.append(f"{_names(missing)} {'has' if len(missing) == 1 else 'have'} no entry")
    return Problem(f"compile's `{what}` dict does not match the model's outputs: "
                   f"{'; '.join(parts)} (outputs: {_names(names)})",
                   f"key `{what}` by the output names: {_names(names)}", outs[0])


def _list_problem(what: str, value: list | tuple, outs: list[Output]) -> Problem | None:
    n = len(outs)
    if len(value) in (0, n):
        return None
    names = _names([o.name for o in outs])
    if n == 1 and what == "loss":
        return Problem(f"compile gives {len(value)} losses for the model's single output "
                       f"{names}: Keras uses only the first one",
                       "give one loss (or combine them in a custom loss function)",
                       outs[0], severity="warning")
    noun = "loss" if what == "loss" else "loss weight"
    if len(value) != 1:
        noun += "es" if what == "loss" else "s"
    return Problem(f"compile gives {len(value)} {noun} for {n} output"
                   f"{'s' if n != 1 else ''} ({names})",
                   f"give one entry per output, in the order {names}, or a dict by "
                   "output name", outs[0])


def _container_problem(what: str, value: Any, outs: list[Output],
                       dict_outputs: bool) -> Problem | None:
    if isinstance(value, dict):
        return _dict_problem(what, value, outs, dict_outputs)
    if isinstance(value, (list, tuple)):
        return _list_problem(what, value, outs)
    return None


def structure_problems(loss: Any, weights: Any, outs: list[Output],
                       dict_outputs: bool) -> list[Problem]:
    """Lists and dicts in ``loss`` / ``loss_weights`` that do not match the outputs."""
    found = [p for p in [_container_problem("loss", loss, outs, dict_outputs)] if p]
    nested = isinstance(weights, (list, tuple, dict))
    if loss is not None and not isinstance(loss, (list, tuple, dict)):
        if nested and len(weights) > 1:  # Keras 3 pairs weights with losses, not outputs
            found.append(Problem(
                f"compile gives one loss and {len(weights)} loss weights: Keras 3 wants "
                "as many losses as weights",
                "give one loss per output, e.g. `loss=[" + ", ".join(
                    [loss_label(loss)] * len(outs)) + "]`", outs[0]))
    elif isinstance(loss, (list, tuple)) and isinstance(weights, (list, tuple)):
        if len(weights) != len(loss) and not found:
            found.append(Problem(
                f"compile gives {len(loss)} losses and {len(weights)} loss weights",
                f"give one weight per loss, in the order {_names([o.name for o in outs])}",
                outs[0]))
    elif nested:
        found += [p for p in [_container_problem("loss_weights", weights, outs,
                                                 dict_outputs)] if p]
    return found


def losses_per_output(loss: Any, outs: list[Output]) -> list[tuple[Output, Any]]:
    """``(output, loss)`` pairs, where the structure of ``loss`` is readable."""
    if loss is None:
        return []
    if isinstance(loss, dict):
        return [(o, loss[o.name]) for o in outs if loss.get(o.name) is not None]
    if isinstance(loss, (list, tuple)):
        if len(loss) == len(outs):
            return [(o, item) for o, item in zip(outs, loss) if item is not None]
        return [(outs[0], loss[0])] if len(outs) == 1 and loss else []
    return [(o, loss) for o in outs]


# --- one loss against one output -------------------------------------------------------


def loss_problem(ctx: ModelContext, out: Output, loss: Any) -> Problem | None:
    """What is wrong with ``loss`` on ``out``, or None."""
    name = loss_name(loss)
    shape = out.shape
    if name is None or not shape or len(shape) < 2:
        return None
    last = shape[-1]
    where = f"output `{out.name}` {dims.fmt_shape(shape)}"
    label = loss_label(loss)
    if name in CATEGORICAL and last == 1:
        return Problem(
            f"compile uses {label} on {where}, which has one unit: categorical "
            "crossentropy normalises over the last axis, so the prediction is always 1 "
            "and the loss always 0",
            'for one binary target use `activation="sigmoid"` with '
            '`loss="binary_crossentropy"`; for n classes give the output n units', out)
    if name in SPARSE and last == 1:
        return Problem(
            f"compile uses {label} on {where}, which has one unit: there is only class "
            "0, so every other label is out of range",
            'give the output `n_classes` units with a softmax, or use '
            '`activation="sigmoid"` with `loss="binary_crossentropy"` for 0/1 labels', out)
    if name in BINARY and dims.is_int(last) and last > 2 and \
            final_activation(ctx, out.call) == "softmax":
        return Problem(
            f"compile uses {label} on {where}, a softmax over {last} classes: binary "
            "crossentropy scores each class as its own yes/no while the softmax makes "
            "them compete",
            'one class per sample: `loss="categorical_crossentropy"` (one-hot labels) or '
            '`"sparse_categorical_crossentropy"` (integer labels); several labels per '
            'sample: `activation="sigmoid"`', out, severity="warning")
    return None


def _finding(ctx: ModelContext, p: Problem) -> Any:
    d = ctx.finding(LOSS_OUTPUT_MISMATCH, p.output.call, p.message,
                    shapes={"output": p.output.shape}, hint=p.hint, severity=p.severity)
    path, line = (ctx.compiled or {}).get("path"), (ctx.compiled or {}).get("line")
    if line:
        d.path, d.line, d.col, d.end_col = ctx.show(path), line, None, None
        d.source = source_line(path, line)
    return d


@model_check
def loss_output_mismatch(ctx: ModelContext) -> Iterator[Any]:
    if not ctx.compiled:
        return
    outs, dict_outputs = model_outputs(ctx)
    if not outs:
        return
    loss = compile_argument(ctx.compiled, "loss", 1)
    weights = compile_argument(ctx.compiled, "loss_weights", 2)
    problems = structure_problems(loss, weights, outs, dict_outputs)
    for out, item in losses_per_output(loss, outs):
        p = loss_problem(ctx, out, item)
        if p is not None:
            problems.append(p)
    for p in problems:
        yield _finding(ctx, p)
