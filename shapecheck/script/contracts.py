"""The ``@shapecheck.returns`` contracts of a script's functions, in the command's child.

Each call of a marked function is kept as it returns (arrays are checked at once: their
sizes are the call's); the models and Keras tensors are checked at the end, against the
shapes the analysis gave the models, so the names in a finding are the report's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from shapecheck.graph.returned import Contract, Subject, check, model_ios, subject_of
from shapecheck.report import Diagnostic, ModelEntry
from shapecheck.rules.contracts import contract_findings, unchecked_finding
from shapecheck.shapes.contracts import (ShapeContractError, ShapeTable, SpecError,
                                         table_from_entry)


@dataclass
class Promise:
    """One call of a marked function: what it returned, or what its check found."""

    contract: Contract
    called: tuple[str | None, int | None]  # the call's line
    subject: Subject | None = None  # a model, or a model made over tensors: checked at the end
    error: Exception | None = None  # arrays: the contract failed at the call
    why: str = ""  # it could not be checked


def keep(promises: list[Promise], contract: Contract, called: tuple[str | None, int | None],
         value: Any, arguments: dict[str, Any]) -> None:
    """Record one call's value (the arrays' check done now)."""
    from shapecheck.script import capture

    try:
        with capture.converting():  # the model made over returned tensors is not the script's
            subject = subject_of(contract, value, arguments)
    except SpecError as err:
        promises.append(Promise(contract, called, error=err))
        return
    except Exception as err:  # noqa: BLE001  (whatever the value is, the script goes on)
        promises.append(Promise(contract, called, why=f"{type(err).__name__}: {err}"))
        return
    if subject.kind == "unchecked":
        promises.append(Promise(contract, called, why=subject.why))
    elif subject.kind == "values":
        try:
            check(contract, subject, subject.table)
        except (ShapeContractError, SpecError) as err:
            promises.append(Promise(contract, called, error=err))
        except Exception as err:  # noqa: BLE001
            promises.append(Promise(contract, called, why=f"{type(err).__name__}: {err}"))
    else:
        promises.append(Promise(contract, called, subject=subject))


def findings(promises: list[Promise], entries: list[ModelEntry],
             records: list[tuple[Any, str | None, int | None]],
             show: Callable[[str | None], str | None]) -> list[Diagnostic]:
    """SC904 for every call whose contract failed or could not be checked (once per
    line and message).  ``entries`` are the report's models, made from ``records``
    ``(model, path, line)``; ``show`` writes a path as the report does."""
    out: list[Diagnostic] = []
    seen: set[tuple] = set()
    for p in promises:
        try:
            made = _one(p, entries, records)
        except Exception as err:  # noqa: BLE001  (a model shapecheck cannot read)
            made = [unchecked_finding(p.contract, f"{type(err).__name__}: {err}", p.called)]
        for d in made:
            d.path = show(d.path)
            for r in d.related:
                r.path = show(r.path)
            key = (d.path, d.line, d.message)
            if key not in seen:
                seen.add(key)
                out.append(d)
    return out


def _one(p: Promise, entries: list[ModelEntry],
         records: list[tuple[Any, str | None, int | None]]) -> list[Diagnostic]:
    if p.why:
        return [unchecked_finding(p.contract, p.why, p.called)]
    if p.error is not None:
        return contract_findings(p.contract, p.error, p.called)
    subject = p.subject
    entry = _entry(subject, entries, records)
    if entry is None or not entry.checked:
        why = entry.reason if entry is not None else "shapecheck has no shapes for it"
        return [unchecked_finding(p.contract, f"model `{subject.model.name}`: {why}",
                                  p.called)]
    table = _table(subject, entry)
    try:
        check(p.contract, subject, table)
    except (ShapeContractError, SpecError) as err:
        made = {e.name: (e.name, e.path, e.line) for e in entry.layers}
        labels = _labels(subject, table)
        layers = {label: made[layer] for label, layer in labels.items() if layer in made}
        return contract_findings(p.contract, err, p.called,
                                 model=entry.name if subject.kind == "model" else None,
                                 layers=layers)
    return []


def _entry(subject: Subject, entries: list[ModelEntry],
           records: list[tuple[Any, str | None, int | None]]) -> ModelEntry | None:
    """The report's entry for a returned model (analysed here when the script's
    records do not hold it, and always for a model made over returned tensors)."""
    model = subject.model
    if subject.kind == "model":
        named = [e for e in entries if e.name == model.name and e.kind != "layer"]
        lines = {line for m, _, line in records if m is model}
        same = [e for e in named if e.line in lines] or named
        if len(same) == 1:
            return same[0]
    from shapecheck.graph.model import analyze

    made, _ = analyze([(model, None, None)])
    return next((e for e in made if e.name == model.name and e.kind != "layer"), None)


def _table(subject: Subject, entry: ModelEntry) -> ShapeTable:
    if subject.kind != "model":
        return table_from_entry(entry)
    ins, keyed_in = model_ios(subject.model, "inputs")
    outs, keyed_out = model_ios(subject.model, "outputs")
    table = table_from_entry(entry, ins, outs)
    table.keyed_inputs, table.keyed_outputs = keyed_in, keyed_out
    return table


def _labels(subject: Subject, table: ShapeTable) -> dict[str, str]:
    """Each failure label a check may give, with the layer that made the shape."""
    from shapecheck.shapes.contracts import io_label

    if subject.kind == "model":
        return {io_label(what, io, table): io[1]
                for what, ios in (("input", table.inputs), ("output", table.outputs))
                for io in ios}
    return {label: layer for label, layer, _, _ in subject.args} | {
        label: layer for label, layer, _ in subject.parts}
