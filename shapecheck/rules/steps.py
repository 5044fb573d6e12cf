"""SC9xx code around the model: a custom ``train_step`` / ``test_step`` /
``compute_loss``, where predictions meet targets in code the user wrote.

The child traces each custom step once on the data's shapes
(:mod:`shapecheck.script.steps`); these rules turn what the trace raised into
findings at the line inside the step. They read plain records and never trace.
"""

from __future__ import annotations

import re
from typing import Any, Iterable

from shapecheck.report import Diagnostic
from shapecheck.rules import define
from shapecheck.rules.context import ModelContext, source_line
from shapecheck.shapes import dims

STEP_SHAPE = define("SC901", "step-shape-error", "error",
                    "a custom train/test step combines tensors whose shapes do not fit", """
    ## What it does
    Traces the model's own `train_step`, `test_step`, `predict_step` or
    `compute_loss` once, as `fit` compiles it, on tensors of the shapes of
    the first batch it is given, and reports a shape error raised in that
    code at its line: a loss written by hand, targets against predictions,
    a reshape, a concatenation.

    ## Why is this bad
    A custom step replaces the loss given to `compile`, so no check of the
    targets against the outputs applies. The error appears when `fit` starts,
    as a graph error naming TensorFlow nodes (`{{node sub}}`), not your line.

    ## Example
    ```python
    def train_step(self, data):
        with tf.GradientTape() as tape:
            reconstruction = self.decoder(self.encoder(data))   # (batch, 784)
            loss = ops.mean(ops.square(data - reconstruction))  # data: (batch, 28, 28, 1)
    ```

    ## Use instead
    ```python
            reconstruction = ops.reshape(reconstruction, ops.shape(data))
            loss = ops.mean(ops.square(data - reconstruction))
    ```
    """, outcome="none")  # `--run` executes the model, not the step

STEP_NOT_TRACED = define("SC902", "step-not-traced", "info",
                         "a custom step could not be traced, so it is not checked", """
    ## What it does
    Says that the model's own `train_step` (or `test_step`, `predict_step`,
    `compute_loss`) could not be traced on symbolic data, and why: Python
    control flow on a tensor's value, a NumPy conversion, a backend other than
    TensorFlow. The model's layers are still checked; the code of the step is not.

    ## Why is this bad
    Nothing is wrong yet, but no shape error inside the step can be found
    before `fit` runs it.

    ## Example
    ```python
    def train_step(self, data):
        if float(ops.mean(data)) > 0.5:     # needs the data's values
            ...
    ```

    ## Use instead
    ```python
    def train_step(self, data):
        data = ops.where(ops.mean(data) > 0.5, data, 1.0 - data)
    ```
    """, outcome="none")


def step_findings(ctx: ModelContext | None, steps: Iterable[Any], name: str,
                  show: Any) -> list[Diagnostic]:
    """SC901/SC902 for the traced steps of the model ``name`` (``ctx`` when its
    graph was analysed: the hint names its outputs)."""
    out: list[Diagnostic] = []
    for s in steps:
        ran_by = f"`{s.method}` at {show(s.site[0])}:{s.site[1]}"
        if s.error is not None:
            out.append(_shape_error(ctx, s, ran_by, name, show))
        elif s.reason is not None:
            path, line = s.where or s.site
            out.append(STEP_NOT_TRACED.finding(
                f"`{s.step}` (run by {ran_by}) is not checked: {s.reason}",
                model=name, path=show(path), line=line,
                source=source_line(path, line),
                hint="write the step with `keras.ops` on tensors, without Python "
                     "decisions on their values, so it can be traced"))
    return out


def _shape_error(ctx: ModelContext | None, s: Any, ran_by: str, name: str,
                 show: Any) -> Diagnostic:
    e = s.error
    batch = s.batch_shapes[0][0] if s.batch_shapes and s.batch_shapes[0] else None
    named = [_named(shape, batch) for shape in e.shapes]
    shapes = {f"operand {i}": shape for i, shape in enumerate(named)}
    where = f"`{s.step}`" if e.function == s.step else f"`{e.function}` (in `{s.step}`)"
    said = " and ".join(_fmt(shape) for shape in named)
    reason = _tf_words(e.message)
    if e.layer is not None:
        message = (f"{where}, run by {ran_by}: `{e.layer}`) refuses what the step gives it: "
                   if "(" in e.layer else
                   f"{where}, run by {ran_by}: `{e.layer}` refuses what the step gives it: ")
        message += reason
    elif said:
        message = f"{where}, run by {ran_by}: {said} cannot be combined ({reason})"
    else:
        message = f"{where}, run by {ran_by}: {reason}"
    outs = [ctx.tensor_shape(k) for k in ctx.graph.outputs] if ctx is not None else []
    outputs = ", ".join(_fmt(tuple(dims.to_json(d) for d in shape))
                        for shape in outs if shape is not None)
    data = ", ".join(_fmt(_named(shape, batch)) for shape in s.batch_shapes)
    if e.layer is not None:
        hint = (f"the step was given data {data}: give `{e.layer.split('`')[0]}` the shape it "
                "was built for (check the sizes the step makes its inputs with)")
    else:
        hint = (f"the step was given data {data}"
                + (f" and the model returns {outputs}" if outputs else "")
                + ": make both sides the same shape (reshape one, or reduce each over "
                  "its own axes) before combining them")
    dims_ = {"batch": str(batch)} if batch is not None else {}
    return STEP_SHAPE.finding(message, model=name, path=show(e.path), line=e.line,
                              source=source_line(e.path, e.line), hint=hint, shapes=shapes,
                              dims=dims_)


def _named(shape: tuple, batch: int | None) -> list:
    """A traced shape with its first axis called ``batch`` when it is the batch size."""
    out: list = [d for d in shape]
    if out and (out[0] is None or (batch is not None and out[0] == batch)):
        out[0] = "batch"
    return out


def _tf_words(message: str) -> str:
    """TensorFlow's reason, without its node names and shapes we already show."""
    text = re.split(r" for '| with input shapes| \[Op:", message)[0].strip()
    return text.rstrip(".:, ") or message


def _fmt(shape: tuple) -> str:
    items = ["?" if d is None else str(d) for d in shape]
    return "(" + ", ".join(items) + ("," if len(items) == 1 else "") + ")"
