"""SC107 declared-output-shape: a user's layer whose ``compute_output_shape`` says
another shape than its ``call`` returns, found by tracing the call (no execution).

The child compares the two when the layer is called on symbolic tensors
(:mod:`shapecheck.script.trace`); this rule turns each disagreement into a finding
at the ``return`` of ``compute_output_shape``. It is the static twin of SC802.
"""

from __future__ import annotations

from typing import Any, Iterable

from shapecheck.report import Diagnostic, Location
from shapecheck.rules import define
from shapecheck.rules.context import ModelContext, source_line
from shapecheck.shapes import dims

DECLARED_OUTPUT = define("SC107", "declared-output-shape", "error",
                         "a custom layer's `compute_output_shape` disagrees with its `call`",
                         """
    ## What it does
    Traces the `call` of each layer you wrote that defines
    `compute_output_shape`, on the shapes it is given, and compares what it
    returns with what `compute_output_shape` declares.

    ## Why is this bad
    When a layer declares its output shape, Keras believes it: the layers
    after it are built for the declared shape and `summary()` shows it. The
    model fails when `fit` runs, at a later layer, or computes on the wrong
    axes without an error.

    ## Example
    ```python
    class Project(keras.layers.Layer):
        def call(self, x):                       # (batch, T, F) -> (batch, T, units)
            return ops.matmul(x, self.kernel)
        def compute_output_shape(self, shape):
            return (shape[0], self.units)        # declares (batch, units)
    ```

    ## Use instead
    ```python
        def compute_output_shape(self, shape):
            return (*shape[:-1], self.units)     # (batch, T, units), as `call` returns
    ```
    """, outcome="silent")


def declared_findings(ctx: ModelContext, records: Iterable[Any],
                      said: set[int]) -> list[Diagnostic]:
    """SC107 for the records about layers called in ``ctx``'s model (each once:
    ``said`` holds the ids already reported)."""
    out = []
    for r in records:
        if id(r) in said:
            continue
        call = next((c for c in ctx.calls if c.op is r.layer or
                     getattr(c.op, "_shapecheck_trace", None) is r.layer), None)
        if call is None:
            continue
        said.add(id(r))
        out.append(_finding(ctx, r, call))
    return out


def _finding(ctx: ModelContext, r: Any, call: Any) -> Diagnostic:
    name, cls = getattr(r.layer, "name", "?"), type(r.layer).__name__
    declared = " and ".join(_fmt(s) for s in r.declared)
    traced = " and ".join(_fmt(s) for s in r.traced)
    given = " and ".join(_fmt(s) for s in r.input_shapes)
    message = (f"{cls} `{name}` declares its output {declared} in `compute_output_shape`, "
               f"but its `call` returns {traced} for input {given}: Keras builds the "
               "layers after it for the declared shape")
    shapes = {"declared": _json(r.declared[0]), "returned": _json(r.traced[0])}
    if r.input_shapes:
        shapes["input"] = _json(r.input_shapes[0])
    path, line = r.path or call.path, r.line or call.line
    related = []
    if call.path and call.line:
        related.append(Location(path=ctx.show(call.path), line=call.line,
                                message="the layer is called here",
                                source=source_line(call.path, call.line)))
    return DECLARED_OUTPUT.finding(
        message, model=ctx.name, layer=call.name, path=ctx.show(path), line=line,
        source=source_line(path, line), shapes=shapes, related=related,
        hint=f"return {traced} from `compute_output_shape` (or remove it: Keras then "
             "traces `call` itself)")


def _json(shape: tuple) -> list:
    return ["batch" if i == 0 and d is None else dims.to_json(d)
            for i, d in enumerate(shape)]


def _fmt(shape: tuple) -> str:
    items = ["batch" if i == 0 and d is None else dims.fmt(d) for i, d in enumerate(shape)]
    return "(" + ", ".join(items) + ("," if len(items) == 1 else "") + ")"
