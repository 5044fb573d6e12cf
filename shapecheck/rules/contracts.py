"""SC904 shape-contract: a function marked ``@shapecheck.returns(spec)`` returned a
shape its spec does not allow (for some size of the model's named dims), or its
contract could not be checked.

The check itself is :mod:`shapecheck.graph.returned` (run by the script's child as the
function returns, or at the end for the models); this module turns its outcome into
findings at the decorator's line.
"""

from __future__ import annotations

from typing import Any

from shapecheck.report import Diagnostic, Location
from shapecheck.rules import define
from shapecheck.rules.context import source_line
from shapecheck.shapes import dims
from shapecheck.shapes.contracts import Entry, failure_details

SHAPE_CONTRACT = define("SC904", "shape-contract", "error",
                        "a function returns a shape its `@shapecheck.returns` spec rules out",
                        """
    ## What it does
    Checks every function marked `@shapecheck.returns(spec)` when the script
    calls it: the model it returns (its outputs; its inputs too with
    `inputs=`), or the Keras tensors it returns (with the specs of its tensor
    arguments: `x="batch T C"`), for **every** size of the named dims, in
    jaxtyping's dimension syntax (`batch T 4`, `*batch 64`, `_`, `T//2`).
    Concrete arrays are checked at the sizes of that call. Outside
    `shapecheck` and pytest the decorator returns the function unchanged.

    ## Why is this bad
    The spec is what the code around the function relies on: the loss, the
    targets, the next model. A refactor that changes the returned shape (a
    stride, a `Flatten`, a wrong `units`) breaks it silently, or far from the
    cause, at some sizes only (`T//2` and `(T+1)//2` differ for odd `T`).

    ## Example
    ```python
    @shapecheck.returns("batch T 4", inputs="batch T 8")
    def build_tagger():
        x = keras.Input((None, 8))
        h = layers.Conv1D(16, 3, strides=2, padding="same")(x)   # halves T
        return keras.Model(x, layers.Dense(4)(h))
    ```

    ## Use instead
    ```python
        h = layers.Conv1D(16, 3, padding="same")(x)              # keeps T
    ```
    """, outcome="none")


def contract_findings(contract: Any, error: Exception, called: Any = None,
                      model: str | None = None,
                      layers: dict[str, Any] | None = None) -> list[Diagnostic]:
    """SC904 for a :class:`~shapecheck.shapes.contracts.ShapeContractError` (one
    finding per shape that does not match) or a ``SpecError`` (a warning).
    ``contract`` is a :class:`shapecheck.graph.returned.Contract`; ``called`` the
    ``(path, line)`` of the call; ``layers`` maps each failure's label to the
    ``(layer name, path, line)`` that made the shape."""
    failures: list[Entry] = list(getattr(error, "failures", []) or [])
    if not failures:
        head = str(error).splitlines()[0] if str(error) else type(error).__name__
        kind = "warning" if type(error).__name__ == "SpecError" else "error"
        return [_finding(contract, called, model, None, severity=kind,
                         message=f"the contract of `{contract.function}` cannot be checked: "
                                 f"{head}",
                         hint="write the spec as jaxtyping does: names, sizes, `_`, "
                              "`*name`, `...`, and expressions like `T//2`, each name "
                              "alone on some axis")]
    bindings = getattr(error, "bindings", {}) or {}
    out = []
    for f in failures:
        made = (layers or {}).get(f.label)
        out.append(_failure(contract, called, model, f, made, bindings))
    return out


def unchecked_finding(contract: Any, why: str, called: Any = None) -> Diagnostic:
    """An info: the contract of ``contract`` was not checked, and why."""
    return _finding(contract, called, None, None, severity="info",
                    message=f"the contract of `{contract.function}` was not checked: {why}",
                    hint="`@shapecheck.returns` checks a Keras model, Keras tensors made "
                         "from `keras.Input`, or arrays, returned by the function")


def _failure(contract: Any, called: Any, model: str | None, f: Entry, made: Any,
             bindings: dict[str, Any]) -> Diagnostic:
    got = dims.fmt_shape(f.got) if f.got is not None else "?"
    detail = failure_details(f)
    message = (f"`{contract.function}` breaks its contract: {f.label} is {got}, not "
               f"\"{f.spec}\"" + (": " + "; ".join(detail) if detail else ""))
    shapes: dict[str, Any] = {"got": [dims.to_json(d) for d in f.got or ()]}
    if f.columns is not None:
        shapes = {"expected": [dims.to_json(d) for c in f.columns
                               for d in (c.expected or c.got)], **shapes}
    layer = made[0] if made else None
    related = []
    if made and made[2]:
        related.append(Location(path=made[1], line=made[2], layer=layer,
                                source=source_line(made[1], made[2]),
                                message=f"{f.label} is made here"))
    d = _finding(contract, called, model, layer, message=message,
                 hint=_hint(contract, f, layer), shapes=shapes)
    d.related = related + d.related
    d.dims = {n: dims.fmt_shape(v) if isinstance(v, tuple) else dims.fmt(v)
              for n, v in bindings.items() if dims.fmt(v) != n}
    return d


def _hint(contract: Any, f: Entry, layer: str | None) -> str:
    want = f"({', '.join(f.spec.split())})"
    bad = [c for c in f.columns or () if c.bad]
    if layer and bad:
        axes = ", ".join(f"axis {c.start} {', '.join(dims.fmt(d) for d in c.got)}"
                         for c in bad)
        return (f"{f.label} must be {want}: find what makes its {axes} in "
                f"`{contract.function}`, at or before `{layer}` (a stride, a pool, a "
                "crop, a reshape, `units`), or correct the spec if that shape is what you "
                "meant")
    return (f"`{contract.function}` must give {want} for {f.label}, or correct the spec "
            f"if {dims.fmt_shape(f.got) if f.got is not None else 'that shape'} is what "
            "you meant")


def _finding(contract: Any, called: Any, model: str | None, layer: str | None,
             **fields: Any) -> Diagnostic:
    d = SHAPE_CONTRACT.finding(model=model, layer=layer, path=contract.path,
                               line=contract.line,
                               source=source_line(contract.path, contract.line), **fields)
    if called and called[1]:
        d.related.append(Location(path=called[0], line=called[1],
                                  source=source_line(called[0], called[1]),
                                  message=f"`{contract.function}` called here"))
    return d
