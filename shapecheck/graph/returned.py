"""What a function marked ``@shapecheck.returns`` gave back, as shapes to check.

A returned model is checked as a whole: its outputs, and its inputs where the
contract names them.  Returned Keras tensors are checked through a model made over
them, from the ``keras.Input`` tensors they come from (the function's tensor
arguments are outputs of it too, so their specs bind names first).  Concrete arrays
are checked by their sizes, names bound within the one call, as jaxtyping does.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass, field
from typing import Any

from shapecheck.shapes.contracts import (Domain, ShapeTable, SpecError, check_pairs,
                                         io_label, pair_specs, parse_spec)


@dataclass(frozen=True)
class Contract:
    """One ``@shapecheck.returns(spec, inputs=..., **params)`` and where it is written."""

    spec: Any  # a spec string, or a list (in order) or dict (by key) of them
    inputs: Any = None  # a returned model's inputs, as ``assert_shapes`` takes them
    params: dict[str, str] = field(default_factory=dict)  # tensor arguments by name
    function: str = ""  # the function's qualified name
    path: str | None = None  # the decorator's line
    line: int | None = None

    @property
    def text(self) -> str:
        """``@shapecheck.returns("batch T 4")``, as written (near enough)."""
        args = [_literal(self.spec)]
        if self.inputs is not None:
            args.append(f"inputs={_literal(self.inputs)}")
        args += [f"{k}={_literal(v)}" for k, v in self.params.items()]
        return f"@shapecheck.returns({', '.join(args)})"

    def validate(self) -> None:
        """Parse every spec now: a typo is a :class:`SpecError` where it is written."""
        for spec in (self.spec, self.inputs, *self.params.values()):
            for text in _specs(spec):
                parse_spec(text)


def _specs(spec: Any) -> list[Any]:
    if spec is None:
        return []
    if isinstance(spec, dict):
        return list(spec.values())
    if isinstance(spec, (list, tuple)):
        return list(spec)
    return [spec]


def _literal(spec: Any) -> str:
    if isinstance(spec, str):
        return f'"{spec}"'
    return repr(spec)


@dataclass
class Subject:
    """The returned value as shapes: ``kind`` is "model", "tensors", "values", or
    "unchecked" (``why`` says why)."""

    kind: str
    model: Any = None  # "model": the model returned; "tensors": a model made over them
    parts: list[tuple[str, str, int]] = field(default_factory=list)  # (label, layer, index)
    keyed: bool = False  # the value is a dict (labels are its keys)
    args: list[tuple[str, str, int, str]] = field(default_factory=list)  # params' pairs
    table: ShapeTable | None = None  # "values": their sizes
    why: str = ""


def subject_of(contract: Contract, value: Any, arguments: dict[str, Any]) -> Subject:
    """What to check of ``value``, returned by a call with ``arguments`` (by parameter
    name).  A "tensors" subject's model is made here: make it where no model the
    script builds is recorded."""
    import keras

    if isinstance(value, keras.Model):
        if contract.params:
            raise SpecError(f"{contract.text}: argument specs ("
                            f"{', '.join(contract.params)}) are for a function that returns "
                            "tensors; this one returns a model (give its `inputs=`)")
        return Subject("model", model=value)
    items, keyed = _items(value)
    if not items:
        return Subject("unchecked", why=f"it returned {_what(value)}, not a Keras model "
                                        "or tensors")
    params = dict(contract.params)
    if contract.inputs is not None:  # a model's inputs, or the argument called `inputs`
        if "inputs" not in arguments or not isinstance(contract.inputs, str):
            raise SpecError(f"{contract.text}: `inputs=` is for a function that returns a "
                            "model; name the function's tensor arguments instead "
                            "(x=\"...\")")
        params = {"inputs": contract.inputs, **params}
    args = []
    for name in params:
        if name not in arguments:
            raise SpecError(f"{contract.text}: `{contract.function}` has no argument "
                            f"`{name}`")
        args.append((name, arguments[name], params[name]))
    symbolic = [isinstance(v, keras.KerasTensor) for v in [v for _, v in items]
                + [v for _, v, _ in args]]
    if all(symbolic):
        return _tensors(contract, items, keyed, args)
    if any(symbolic):
        return Subject("unchecked", why="it mixes Keras tensors and arrays")
    return _values(contract, items, keyed, args)


def _items(value: Any) -> tuple[list[tuple[str, Any]], bool]:
    """The returned value's tensors (or arrays), labelled; [] when it is not made of them."""
    if isinstance(value, dict):
        items = [(str(k), v) for k, v in value.items()]
        return (items if items and all(_tensor_like(v) for _, v in items) else []), True
    if isinstance(value, (list, tuple)):
        items = [(f"the returned value [{i}]", v) for i, v in enumerate(value)]
        return (items if items and all(_tensor_like(v) for _, v in items) else []), False
    return ([("the returned value", value)] if _tensor_like(value) else []), False


def _tensor_like(v: Any) -> bool:
    return hasattr(v, "shape") and hasattr(v, "dtype") and not isinstance(v, type)


def _what(value: Any) -> str:
    return "None" if value is None else f"a `{type(value).__name__}`"


def _tensors(contract: Contract, items: list[tuple[str, Any]], keyed: bool,
             args: list[tuple[str, Any, str]]) -> Subject:
    import keras

    outs = [t for _, t in items] + [t for _, t, _ in args]
    try:
        ins = ancestors(outs)
    except ValueError as err:
        return Subject("unchecked", why=str(err))
    name = re.sub(r"\W", "_", contract.function) or "returned"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = keras.Model(ins if len(ins) > 1 else ins[0],
                            outs if len(outs) > 1 else outs[0], name=name)
    parts = [(label, *_made_by(t)) for label, t in items]
    pairs = [(f"argument `{n}`", *_made_by(t), spec) for n, t, spec in args]
    return Subject("tensors", model=model, parts=parts, keyed=keyed, args=pairs)


def _made_by(t: Any) -> tuple[str, int]:
    hist = t._keras_history
    return hist.operation.name, hist.tensor_index


def ancestors(tensors: list[Any]) -> list[Any]:
    """The ``keras.Input`` tensors that ``tensors`` are computed from, first met first."""
    out: list[Any] = []
    seen: set[int] = set()
    stack = list(reversed(tensors))
    while stack:
        t = stack.pop()
        if id(t) in seen:
            continue
        seen.add(id(t))
        hist = getattr(t, "_keras_history", None)
        if hist is None:
            raise ValueError("a Keras tensor that does not come from a `keras.Input`")
        node = hist.operation._inbound_nodes[hist.node_index]
        if node.is_input:
            out.append(t)
        else:
            stack.extend(reversed(node.input_tensors))
    return out


def _values(contract: Contract, items: list[tuple[str, Any]], keyed: bool,
            args: list[tuple[str, Any, str]]) -> Subject:
    layers: dict[str, list[tuple]] = {}
    for label, v in [*[(f"argument `{n}`", v) for n, v, _ in args], *items]:
        if not _tensor_like(v):
            return Subject("unchecked", why=f"{label} is {_what(v)}, not a tensor")
        shape = tuple(v.shape)
        if any(not isinstance(d, int) for d in shape):
            return Subject("unchecked", why=f"{label} has unknown sizes {shape}")
        layers[label] = [shape]
    parts = [(label, label, 0) for label, _ in items]
    pairs = [(f"argument `{n}`", f"argument `{n}`", 0, spec) for n, _, spec in args]
    table = ShapeTable(contract.function, layers, [], parts, Domain())
    return Subject("values", parts=parts, keyed=keyed, args=pairs, table=table)


def check(contract: Contract, subject: Subject, table: ShapeTable) -> dict[str, Any]:
    """Match the contract against ``table``, the shapes of ``subject``.  Returns the
    bindings; raises :class:`~shapecheck.shapes.contracts.ShapeContractError`."""
    if subject.kind == "model":
        pairs = []
        if contract.inputs is not None:
            pairs += [(io_label("input", io, table), io[1], io[2], s) for io, s in
                      pair_specs(table.inputs, contract.inputs, "input", table.keyed_inputs)]
        pairs += [(io_label("output", io, table), io[1], io[2], s) for io, s in
                  pair_specs(table.outputs, contract.spec, "output", table.keyed_outputs)]
        head = f"`{contract.function}` returns model `{table.name}`, against {contract.text}"
    else:
        pairs = list(subject.args) + [
            (io[0], io[1], io[2], s)
            for io, s in pair_specs(subject.parts, contract.spec, "returned tensor",
                                    subject.keyed)]
        head = f"`{contract.function}`, against {contract.text}"
    return check_pairs(table, pairs, head)


def model_ios(model: Any, which: str) -> tuple[list[tuple[str, str, int]] | None, bool]:
    """A functional or Sequential model's inputs (outputs): ``(label, layer, index)``
    each, labelled by dict key or layer name; None for a subclassed model."""
    inner = getattr(model, "_functional", None) or model
    struct = getattr(inner, f"_{which}_struct", None)
    if struct is None:
        struct = getattr(model, which, None) if model.built else None
    if struct is None or not hasattr(inner, "_operations"):
        return None, False
    keyed = isinstance(struct, dict)
    items = list(struct.items()) if keyed else [
        (None, t) for t in (struct if isinstance(struct, (list, tuple)) else [struct])]
    out = []
    for key, t in items:
        hist = t._keras_history
        layer, index = hist.operation.name, hist.tensor_index
        several = len(getattr(hist.operation, "_inbound_nodes", [None])[0].outputs) > 1 \
            if getattr(hist.operation, "_inbound_nodes", None) else False
        label = str(key) if keyed else f"{layer}[{index}]" if several else layer
        out.append((label, layer, index))
    return out, keyed
