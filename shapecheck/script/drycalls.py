"""Keras's training and inference entry points (``fit``, ``evaluate``, ``predict``,
``*_on_batch``) as recorded dry runs: the data is sampled and kept for the rules,
the model is built or traced from it, and the script gets a value shaped as Keras's
(:mod:`shapecheck.script.dryrun`); nothing is trained."""

from __future__ import annotations

from typing import Any

from shapecheck.script import capture
from shapecheck.script.capture import DataCall, build_from_data, trace_from_data, trace_step
from shapecheck.script.frames import user_site

SAMPLE_TIMEOUT = 10.0  # seconds to wait for one batch of a generator or dataset

DRY_METHODS = ("fit", "evaluate", "predict", "train_on_batch", "test_on_batch",
                "predict_on_batch")


def install() -> None:
    """Turn Keras's training and inference entry points into recorded dry runs (after
    :func:`shapecheck.script.capture.install`)."""
    from keras.src.models.model import Model

    # Patched where Keras defines it, so that `load_model` still sees a model whose
    # `compile` is not custom and compiles it from its saved config.
    owner = next(c for c in Model.__mro__ if "compile" in c.__dict__)
    compile_original = owner.compile

    def compile(self: Any, *args: Any, **kwargs: Any) -> Any:
        path, line = user_site(2)
        capture.CAPTURE.compiled[id(self)] = {"args": args, "kwargs": kwargs, "path": path,
                                      "line": line}
        return compile_original(self, *args, **kwargs)

    owner.compile = compile

    for method in DRY_METHODS:
        setattr(Model, method, dry(method, getattr(Model, method)))


def dry(method: str, original: Any, twin: Any = None) -> Any:
    """``method`` as a recorded dry run. ``twin``: for a model of another Keras (tf_keras),
    its Keras 3 twin, which the data is checked against; the script's callbacks and
    the value returned stay the original model's."""

    def dry_run(self: Any, *args: Any, **kwargs: Any) -> Any:
        path, line = user_site(2)
        host, model = self, (twin(self) if twin is not None else self)
        if getattr(model, "_shapecheck_unreadable", False):
            from shapecheck.script.dryrun import bind, result

            return result(host, method, bind(original, host, args, kwargs), [], host=host)
        self = model
        call = DataCall(self, method, path, line, args, kwargs)
        capture.CAPTURE.data_calls.append(call)
        try:
            from shapecheck.data.feeds import sample

            call.feeds = sample(call, timeout=SAMPLE_TIMEOUT)
        except Exception:  # sampling never stops the script; its problems are findings
            call.feeds = []
        from shapecheck.script.datacalls import own_calls
        from shapecheck.script.dryrun import bind, result

        with own_calls():
            build_from_data(self, call.feeds)
            trace_from_data(self, call)
            if capture.CAPTURE.made_up is None:
                capture.CAPTURE.made_up = call
            value = result(self, method, bind(original, host, args, kwargs), call.feeds,
                           host=host)
            trace_step(self, call)
        return value

    dry_run.__name__ = method
    dry_run.__doc__ = getattr(original, "__doc__", None)
    return dry_run
