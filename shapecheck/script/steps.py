"""Trace a model's own ``train_step`` / ``test_step`` / ``predict_step`` (and the
``compute_loss`` they call) once, on the shapes of the data it is given.

A custom step replaces the compiled loss: predictions meet targets in code the
user wrote. The step is traced as ``fit`` would compile it, with ``tf.function``
(AutoGraph off, so tracebacks keep the user's lines), on tensors of the first
sampled batch's shapes; nothing runs, and no optimizer applies anything. A shape
error raised while tracing is recorded with the line inside the step.
"""

from __future__ import annotations

import inspect
import re
import sys
from dataclasses import dataclass, field
from typing import Any

STEP_OF = {"fit": "train_step", "train_on_batch": "train_step",
           "evaluate": "test_step", "test_on_batch": "test_step",
           "predict": "predict_step", "predict_on_batch": "predict_step"}
OVERRIDABLE = ("train_step", "test_step", "predict_step", "compute_loss")
# Words of the errors TensorFlow and Keras raise when shapes do not fit.
_SHAPE_WORDS = re.compile(
    r"dimensions must be equal|incompatible shapes|are incompatible|shapes? must|"
    r"cannot reshape|cannot be reshaped|input to reshape|must have the same|"
    r"must match|rank|ndim|expected .*shape|shape .* expected|"
    r"broadcast|inner dimensions|dimension \d+ in both shapes|concat", re.I)


@dataclass
class StepError:
    """A shape error raised while a step was traced."""

    error_type: str
    message: str
    path: str | None
    line: int | None
    function: str  # the user's function the error was raised in
    shapes: list[tuple] = field(default_factory=list)  # the operands' shapes, if named
    layer: str | None = None  # the layer that refused its input, when one did


@dataclass
class StepTrace:
    """One custom step traced for one data call."""

    model: Any
    step: str  # "train_step", ...
    method: str  # the call that runs it: "fit", ...
    site: tuple  # (path, line) of that call
    batch_shapes: list[tuple] = field(default_factory=list)
    error: StepError | None = None  # a shape error the trace raised
    reason: str | None = None  # why the step could not be traced (not checked)
    where: tuple | None = None  # (path, line) where tracing stopped
    uses_compiled_loss: bool = True


def custom(model: Any) -> set[str]:
    """The step methods ``model``'s class defines itself (outside Keras)."""
    out = set()
    for name in OVERRIDABLE:
        fn = getattr(type(model), name, None)
        module = getattr(fn, "__module__", "") or ""
        if fn is not None and not module.startswith("keras"):
            out.add(name)
    return out


def uses_compiled_loss(model: Any) -> bool:
    """Whether the custom ``train_step`` still uses the loss given to ``compile``."""
    fn = getattr(type(model), "train_step", None)
    try:
        source = inspect.getsource(fn)
    except (OSError, TypeError):
        return True
    return any(w in source for w in ("compute_loss", "compiled_loss", "self.loss",
                                     "_compute_loss"))


def step_to_trace(model: Any, method: str) -> str | None:
    """The step a ``method`` call runs, when the model's class defines it (or the
    ``compute_loss`` it calls)."""
    own = custom(model)
    step = STEP_OF.get(method)
    if step is None or not own:
        return None
    if step in own or (step in ("train_step", "test_step") and "compute_loss" in own):
        return step
    return None


def trace_step(model: Any, method: str, batch: Any, site: tuple,
               arrays: bool = False) -> StepTrace | None:
    """Trace the step ``method`` runs on data of ``batch``'s shapes (a sampled
    :class:`shapecheck.data.batches.Batch`; ``arrays``: given as arrays, whose floats
    Keras casts to its float type); None when the model has no custom step."""
    step = step_to_trace(model, method)
    if step is None:
        return None
    result = StepTrace(model, step, method, site)
    if step == "train_step":
        result.uses_compiled_loss = uses_compiled_loss(model)
    import keras

    if keras.backend.backend() != "tensorflow":
        result.reason = (f"a custom `{step}` is traced under the TensorFlow backend "
                         f"only (this run uses {keras.backend.backend()})")
        return result
    import tensorflow as tf
    from keras import tree
    from keras.src.trainers.data_adapters.data_adapter_utils import pack_x_y_sample_weight

    def spec(info: Any) -> Any:
        dtype = _tf_dtype(info.dtype)
        if arrays and dtype.is_floating:
            dtype = tf.as_dtype(keras.backend.floatx())
        return tf.TensorSpec(tuple(info.shape), dtype)

    try:
        x = tree.map_structure(spec, batch.x)
        y = tree.map_structure(spec, batch.y) if batch.y is not None else None
        sw = (tree.map_structure(spec, batch.sample_weight)
              if batch.sample_weight is not None else None)
    except Exception as err:
        result.reason = f"its data could not be described to TensorFlow ({err})"
        return result
    data = x if step == "predict_step" else pack_x_y_sample_weight(x, y, sw)
    result.batch_shapes = [tuple(s.shape) for s in tree.flatten(data)]
    fn = getattr(model, step)
    with _optimizers_apply_nothing():
        try:
            tf.function(fn, autograph=False).get_concrete_function(data)
        except Exception as err:
            _explain(result, err)
    return result


def _explain(result: StepTrace, err: BaseException) -> None:
    from shapecheck.shapes.refused import clean_message

    frame = _innermost_user_frame(err)
    where = (frame[0], frame[1]) if frame else None
    message = " ".join(clean_message(err).split())
    if frame is not None and frame[3]:  # raised inside a layer's own `call`
        return  # the model's trace finds it at its line inside `call`
    if _SHAPE_WORDS.search(message) and isinstance(err, (ValueError, TypeError)) or \
            type(err).__name__ == "InvalidArgumentError":
        result.error = StepError(type(err).__name__, _short(message), where and where[0],
                                 where and where[1], frame[2] if frame else result.step,
                                 operand_shapes(message),
                                 _refusing_layer(message, frame[4] if frame else None))
        return
    result.reason = (f"`{result.step}` could not be traced on symbolic data "
                     f"({type(err).__name__}: {_short(message)})")
    result.where = where


def _innermost_user_frame(err: BaseException) -> tuple | None:
    """(path, line, function, inside a layer's call, the layer it called) of the
    innermost user frame ``err`` passed through."""
    import os

    from shapecheck.script import frames

    tb = frames.raised_in_user_code(err)
    if tb is None:
        return None
    code = tb.tb_frame.f_code
    in_layer = code.co_name == "call" and _is_layer(tb.tb_frame.f_locals.get("self"))
    callee = None
    below = tb.tb_next
    while below is not None and callee is None:
        owner = below.tb_frame.f_locals.get("self")
        callee = owner.name if _is_layer(owner) else None
        below = below.tb_next
    return (os.path.abspath(code.co_filename), tb.tb_lineno, code.co_name, in_layer, callee)


def _refusing_layer(message: str, callee: str | None) -> str | None:
    """The layer the step called that raised (and the inner layer Keras names)."""
    m = re.search(r"of layer '([^']+)'", message)
    if callee is not None:
        return callee if m is None or m.group(1) == callee else f"{callee}` (its layer `{m.group(1)}"
    return m.group(1) if m else None


def _is_layer(obj: Any) -> bool:
    layers = sys.modules.get("keras.src.layers.layer")
    return layers is not None and isinstance(obj, layers.Layer)


_SHAPE_LIST = re.compile(r"\[((?:\?|-?\d+)(?:\s*,\s*(?:\?|-?\d+))*)?\]")


def operand_shapes(message: str) -> list[tuple]:
    """The operands' shapes TensorFlow names in ``message`` (``[?,28,28,1], [?,784]``
    after "input shapes:", or "Incompatible shapes: [32,4] vs. [32,3]")."""
    m = re.search(r"input shapes: (.*?)(?:\.$|\.\s|$)", message) or re.search(
        r"[Ii]ncompatible shapes:? (.*?)(?:\s\[Op|$)", message) or re.search(
        r"[Ss]hapes (\(.*?\)) and (\(.*?\))", message)
    if m is None:
        return []
    text = m.group(0)
    out = []
    for inner in _SHAPE_LIST.findall(text):
        out.append(tuple(None if d.strip() in ("?", "-1") else int(d)
                         for d in inner.split(",") if d.strip()))
    if not out:
        for inner in re.findall(r"\(([^()]*)\)", text):
            out.append(tuple(None if d.strip() == "None" else int(d)
                             for d in inner.split(",") if d.strip()))
    return out


def _short(text: str, limit: int = 400) -> str:
    text = re.sub(r"\{\{node [^}]*\}\}\s*=\s*\S+\[[^\]]*\]\([^)]*\)", "", text)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _tf_dtype(name: str) -> Any:
    import tensorflow as tf

    if name in ("str", "object", "string"):
        return tf.string
    try:
        return tf.as_dtype(name)
    except TypeError:
        return tf.float32


class _optimizers_apply_nothing:
    """While a step is traced, optimizers apply nothing (and make no variables)."""

    def __enter__(self) -> None:
        from keras.src.optimizers import base_optimizer

        cls = base_optimizer.BaseOptimizer
        self.saved = {name: cls.__dict__[name] for name in ("apply", "apply_gradients")}

        def nothing(self: Any, *args: Any, **kwargs: Any) -> None:
            return None

        for name in self.saved:
            setattr(cls, name, nothing)

    def __exit__(self, *exc: Any) -> None:
        from keras.src.optimizers import base_optimizer

        for name, fn in self.saved.items():
            setattr(base_optimizer.BaseOptimizer, name, fn)
