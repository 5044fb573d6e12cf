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

