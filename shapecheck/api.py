"""The Python API: check a script (in a child process) or a model built in this process."""

from __future__ import annotations

from typing import Any, Sequence

from shapecheck.report import Report


def check_script(path: str, *, timeout: float | None = None,
                 args: Sequence[str] = (), steps: int | None = None) -> Report:
    """Run ``path`` under capture in a child process and check every model it builds
    (a hand-written training loop is stopped after ``steps`` steps, default 2)."""
    from shapecheck.script.protocol import DEFAULT_STEPS
    from shapecheck.script.runner import DEFAULT_TIMEOUT, check_file

    return Report([check_file(path, timeout=timeout or DEFAULT_TIMEOUT, args=list(args),
                              steps=steps or DEFAULT_STEPS)])


_NO_DATA = object()


def check_model(model: Any, dims: dict[str, int] | None = None, *,
                data: Any = _NO_DATA, targets: Any = None, loss: Any = None,
                batch_size: int | None = None,
                select: Sequence[str] | None = None,
                ignore: Sequence[str] | None = None,
                run: bool = False, device: str = "auto",
                run_timeout: float | None = None) -> Report:
    """Check a Keras model built in this process (no script, no child process).

    ``data`` (and ``targets``) take any form ``fit`` takes — arrays, lists or
    dicts of them, a generator, a ``PyDataset``, a ``tf.data.Dataset`` — and
    are sampled and checked against the model as a dry-run ``fit`` would be;
    ``loss`` stands for the compiled loss (the model's own when compiled).
    ``dims`` binds named dims to sizes (``{"T": 20}``): shapes are reported
    with those sizes substituted.  ``select``/``ignore`` filter findings by
    code or prefix, as the command's options do.

    ``run=True`` then executes the model, as ``--run`` does: on the data when
    given, else on inputs made at a few sizes (``dims`` fixes some); each
    finding gets ``confirmed``.  The model's weights are restored afterwards
    and no optimizer step is taken.  ``device`` is "cpu", "gpu" or "auto".
    """
    from shapecheck.graph.model import analyze
    from shapecheck.report import FileReport

    data_calls = []
    compiled: dict[int, dict] = {}
    if data is not _NO_DATA:
        from shapecheck.script.capture import DataCall
        from shapecheck.data.feeds import sample

        kwargs: dict[str, Any] = {"batch_size": batch_size} if batch_size else {}
        call = DataCall(model, "fit" if targets is not None else "predict", None, None,
                        (data,) if targets is None else (data, targets), kwargs)
        call.feeds = sample(call)
        data_calls.append(call)
        from shapecheck.script.capture import build_from_data

        build_from_data(model, call.feeds)  # an unbuilt Sequential, as fit would
    if loss is not None:
        compiled[id(model)] = {"args": (), "kwargs": {"loss": loss}}
    elif getattr(model, "compiled", False) and getattr(model, "loss", None) is not None:
        compiled[id(model)] = {"args": (), "kwargs": {"loss": model.loss}}
    options = None
    if run:
        from shapecheck.verify import DEFAULT_RUN_TIMEOUT
        from shapecheck.verify.plans import RunOptions

        options = RunOptions(device=device, sizes=dict(dims or {}),
                             timeout=run_timeout or DEFAULT_RUN_TIMEOUT)
    traces, steps = _trace_subclassed(model, data_calls)
    # the functional and Sequential models nested in it are checked as models of their own,
    # as the command checks every model a script builds
    models, found = analyze([(m, None, None) for m in [model, *_nested_models(model)]],
                            bindings=dims, data_calls=data_calls, compiled=compiled,
                            run=options, traces=traces, steps=steps)
    report = Report([FileReport(path=None, models=models, diagnostics=found).finish()])
    if select or ignore:
        report.filter(list(select or ()) or None, list(ignore or ()) or None)
    return report


def _trace_subclassed(model: Any, data_calls: list[Any]) -> tuple[dict, list]:
    """A subclassed model's ``call`` traced on the data given, else on the shapes it
    was built with (and its own step, with data); the traces and steps by model."""
    from shapecheck.script import capture, frames, trace

    if not trace.is_subclassed(model):
        return {}, []
    if not frames.SKIP_PREFIXES:
        frames.skip_libraries()
    capture.CAPTURE.traces.pop(id(model), None)  # this check's shapes, not an earlier one's
    if data_calls:
        capture.trace_from_data(model, data_calls[0])
        capture.trace_step(model, data_calls[0])
    traced = capture.CAPTURE.traces.get(id(model))
    if traced is None or traced.functional is None and model.built:
        # as built: the data is then checked against that graph
        capture.CAPTURE.traces.pop(id(model), None)
        capture.trace_model(model, trace.spec_of_built(model))
    traced = capture.CAPTURE.traces.get(id(model))
    steps = [s for s in capture.CAPTURE.steps if s.model is model]
    return ({id(model): traced} if traced is not None else {}), steps


def _nested_models(model: Any) -> list[Any]:
    """The functional and Sequential models used as layers inside ``model``, at any depth."""
    from keras import Model

    from shapecheck.graph.model import model_kind

    out: list[Any] = []
    seen = {id(model)}
    queue = list(getattr(model, "layers", []))
    while queue:
        layer = queue.pop(0)
        if not isinstance(layer, Model) or id(layer) in seen:
            continue
        seen.add(id(layer))
        if model_kind(layer) in ("functional", "sequential"):
            out.append(layer)
        queue.extend(getattr(layer, "layers", []))
    return out



def assert_shapes(model: Any, specs: dict[str, str] | None = None, *,
                  inputs: Any = None, outputs: Any = None) -> dict[str, Any]:
    """Assert a shape contract on ``model`` for every size of its named dims.

    ``specs`` maps layer names to specs of their output (``{"enc": "batch 64"}``);
    ``inputs`` and ``outputs`` take a spec for a model with one input (output), or a
    list (in order) or dict (by key or layer name) of specs.  A spec is jaxtyping's
    dimension syntax: ``"batch T 400"``, ``"*batch 64"``, ``"_ T//2 ..."``; names
    bind across the whole assertion.  ``model`` is a Keras model (or a layer called
    once), or a report of one from :func:`check_model` / :func:`check_script`.

    Returns the bindings (spec name -> symbolic dim); raises
    :class:`shapecheck.ShapeContractError` (an ``AssertionError``) showing the axes
    that differ and a size where they do::

        shapecheck.assert_shapes(model, inputs="batch T 80", outputs="batch T//2 64")
    """
    from shapecheck.shapes.contracts import check_shapes, pair_specs

    table = shape_table(model)
    return check_shapes(
        table, specs,
        pair_specs(table.inputs, inputs, "input", table.keyed_inputs) if inputs is not None else (),
        pair_specs(table.outputs, outputs, "output", table.keyed_outputs)
        if outputs is not None else ())


def assert_compatible(producer: Any, consumer: Any,
                      dims: dict[str, int] | None = None) -> dict[str, Any]:
    """Assert that ``producer``'s outputs can be fed to ``consumer``'s inputs: as
    many, matched by key when both are dicts (else in order), each shape accepted,
    and what the consumer's layers need of the sizes (equal lengths, windows that
    fit), for every size of the producer's named dims, or at the sizes ``dims``
    gives some of them (``{"T": 12}``; the consumer's dims are bound to what is fed).

    Each is a Keras model, a layer called once, or a report of one.  Returns the
    consumer's input dims as bound to the producer's; raises
    :class:`shapecheck.ShapeContractError` saying which output, which input, which
    axis and for which sizes."""
    from shapecheck.shapes.contracts import check_compatible

    return check_compatible(shape_table(producer), shape_table(consumer), dims)


def shape_table(obj: Any) -> Any:
    """The symbolic shapes of a Keras model (or a layer called once), a
    :class:`Report` of one model, or a report's model entry, as a
    :class:`shapecheck.shapes.contracts.ShapeTable`."""
    from shapecheck.report import ModelEntry
    from shapecheck.shapes.contracts import ShapeTable, table_from_entry

    if isinstance(obj, ShapeTable):
        return obj
    if isinstance(obj, Report):
        obj = the_model(obj)
    if isinstance(obj, ModelEntry):
        return table_from_entry(obj)
    import keras

    if not isinstance(obj, keras.Model) and isinstance(obj, keras.layers.Layer):
        obj = keras.Model(obj.input, obj.output, name=obj.name)  # its one call
    report = check_model(obj)
    entry = next((m for m in report.models if m.name == obj.name and m.kind != "layer"),
                 None)
    if entry is None or not entry.checked:
        why = entry.reason if entry is not None else "no report of it"
        raise ValueError(f"shapecheck could not read model `{obj.name}`: {why}")
    from shapecheck.graph.returned import model_ios

    ins, keyed_in = model_ios(obj, "inputs")
    outs, keyed_out = model_ios(obj, "outputs")
    table = table_from_entry(entry, ins, outs)
    table.keyed_inputs, table.keyed_outputs = keyed_in, keyed_out
    return table


def shape_snapshot(model: Any) -> str:
    """The symbolic shape table of a Keras model (or a layer called once), a
    :class:`Report` of one model, or a report's model entry, as the text the pytest
    fixture's ``snapshot`` keeps: one line per layer (name, class, output shapes) and
    per named dim (its origin); unnamed layers numbered within the model."""
    from shapecheck.report import ModelEntry
    from shapecheck.shapes.snapshots import snapshot_text

    entry = model
    if isinstance(model, Report):
        entry = the_model(model)
    elif not isinstance(model, ModelEntry):
        import keras

        if not isinstance(model, keras.Model) and isinstance(model, keras.layers.Layer):
            model = keras.Model(model.input, model.output, name=model.name)
        entry = next((m for m in check_model(model).models
                      if m.name == model.name and m.kind != "layer"), None)
        if entry is None:
            raise ValueError(f"shapecheck could not read model `{model.name}`: no report "
                             "of it")
    if not entry.checked:
        raise ValueError(f"shapecheck could not read model `{entry.name}`: {entry.reason}")
    return snapshot_text(entry)


def the_model(report: Report) -> Any:
    """The one model entry of ``report`` (a user's layer traced on its own aside)."""
    entries = [m for m in report.models if m.kind != "layer"]
    if len(entries) != 1:
        raise ValueError(f"the report has {len(entries)} models: pass one of "
                         "`report.models` (or `report.model(name)`)")
    return entries[0]
