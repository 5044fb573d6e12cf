"""``python -m shapecheck.oracle SCRIPT``: every model a script builds, run by Keras and
compared with the inferred shapes (:mod:`shapecheck.verify.oracle`)."""

from __future__ import annotations

from shapecheck.shapes.infer import infer_model
from shapecheck.verify.oracle import check_against_keras


def main(argv: list[str] | None = None) -> int:
    """``python -m shapecheck.oracle SCRIPT``: run SCRIPT under capture, then
    check every model it built against Keras; print one JSON line per model."""
    import json
    import os
    import runpy
    import sys

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from shapecheck.script import capture, drycalls

    script, *script_args = argv or sys.argv[1:]
    cap = capture.install()
    drycalls.install()
    sys.argv = [script, *script_args]
    sys.path.insert(0, os.path.dirname(os.path.abspath(script)))
    runpy.run_path(script, run_name="__main__")
    for record in list(cap.models):  # the oracle's own probe models come later
        model = record.model
        if record.internal or not (hasattr(model, "_inputs_struct")
                                   or getattr(model, "_functional", None) is not None):
            continue
        shapes = infer_model(model)
        refused = [c.name for c in shapes.graph.calls if c.failure is not None]
        if refused:  # stand-ins for calls Keras refused cannot run
            print(json.dumps({"model": model.name, "skipped": "refused calls: "
                              + ", ".join(refused)}))
            continue
        try:
            found = check_against_keras(model, shapes=shapes)
        except Exception as err:  # the model fails when run: did a finding predict it?
            from shapecheck.rules.context import ModelContext
            from shapecheck.rules.engine import model_findings

            ctx = ModelContext(model, shapes, lambda p: p)
            errors = sorted({d.code for d in model_findings(ctx) if d.severity == "error"})
            print(json.dumps({"model": model.name, "run_error": f"{type(err).__name__}: "
                              f"{str(err)[:300]}", "findings": errors}))
            continue
        print(json.dumps({"model": model.name,
                          "notes": [f"{n.kind}: {n.layer}: {n.message}"
                                    for n in shapes.scope.notes],
                          "mismatches": [str(m) for m in found]}))
    for traced in list(cap.traces.values()):  # subclassed models, through their trace
        print(json.dumps(check_trace(traced)))
    return 0


def check_trace(traced: object, axis_sizes: list[dict[int, list[int]]] | None = None) -> dict:
    """A subclassed model's traced graph against Keras running it, and the outputs of
    the model's own ``call`` against the traced ones, at the same sizes (``axis_sizes``:
    for each input, the sizes to try on some of its axes)."""
    from keras import tree

    from shapecheck.shapes import dims
    from shapecheck.verify.oracle import assignments, default_input

    model, functional = traced.model, traced.functional
    if functional is None:
        why = traced.reason if traced.has_call else "no call"
        return {"model": model.name, "traced": True, "skipped": f"not traced: {why}"}
    shapes = infer_model(functional)
    refused = [c.name for c in shapes.graph.calls if c.failure is not None]
    if refused or traced.failures:
        return {"model": model.name, "traced": True,
                "skipped": "refused calls: " + ", ".join(refused or ["inside its layers"])}
    by_key = {k: s for r in shapes.results if r.call.is_input
              for k, s in zip(r.call.outputs, r.shapes)}
    outputs = [shapes.graph.tensors[k] for k in shapes.graph.outputs]
    inferred = {k: s for r in shapes.results for k, s in zip(r.call.outputs, r.shapes)}
    names = sorted(set().union(*(dims.free_names(d) for r in shapes.results
                                 for s in r.shapes for d in s)) or set())
    inputs = tree.flatten(functional._inputs_struct)
    # A size the traced graph ties to a constant (a built layer's weights) stays the
    # data's: the trial left it unknown, the model does not let it vary.
    data = {}
    for t, leaf in zip(inputs, tree.flatten(traced.spec)):
        for d, n in zip(by_key[id(t)], leaf.shape):
            if n is not None and dims.is_symbolic(d) and len(dims.free_names(d)) == 1:
                data[next(iter(dims.free_names(d)))] = n
    pinned = {n for c in shapes.scope.constraints
              if not dims.free_names(c.lhs) or not dims.free_names(c.rhs)
              for n in dims.free_names(c.lhs) | dims.free_names(c.rhs)}
    sizes = {}
    for t, given in zip(inputs, axis_sizes or ()):
        for axis, values in given.items():
            free = dims.free_names(by_key[id(t)][axis])
            if len(free) == 1:
                sizes[next(iter(free))] = list(values)
    sizes.update({n: [data[n]] for n in pinned if n in data})
    for a in assignments(names, sizes, 3, shapes.scope.constraints):
        for c in shapes.scope.constraints:  # none found that holds: the data's sizes
            if dims.evaluate(c.lhs, a) != dims.evaluate(c.rhs, a):
                for n in dims.free_names(c.lhs) | dims.free_names(c.rhs):
                    if n in data:
                        sizes[n] = [data[n]]
    found = [str(m) for m in check_against_keras(functional, shapes=shapes, sizes=sizes)]
    for a in assignments(names, sizes, 3, shapes.scope.constraints):
        feed = [default_input(tuple(dims.evaluate(d, a) for d in by_key[id(t)]),
                              str(t.dtype), j) for j, t in enumerate(inputs)]
        got = tree.flatten(model(tree.pack_sequence_as(functional._inputs_struct, feed),
                                 training=False))
        for t, value in zip(outputs, got):
            want = tuple(dims.evaluate(d, a) for d in inferred[id(t)])
            if tuple(value.shape) != want:
                found.append(f"{model.name} (its own call): inferred {want}, "
                             f"observed {tuple(value.shape)} at {a}")
    return {"model": model.name, "traced": True, "mismatches": found,
            "notes": [f"{n.kind}: {n.layer}: {n.message}" for n in shapes.scope.notes]}


if __name__ == "__main__":
    raise SystemExit(main())
