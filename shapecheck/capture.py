"""Record what a user's script builds and calls, by patching Keras in place.

- every Keras graph ``Node`` (a layer or op call on symbolic tensors) gets the
  user's call site (file, line) and a creation number;
- every model built (functional, Sequential, subclassed) is remembered with the
  line that built it;
- ``fit``/``evaluate``/``predict``/``*_on_batch`` become dry runs: recorded,
  nothing trained, a harmless value returned.

Only the child process that runs the user's script installs these patches.
"""

from __future__ import annotations

import itertools
import os
import sys
from dataclasses import dataclass, field
from typing import Any

_SKIP_PREFIXES: tuple[str, ...] = ()
_SEQ = itertools.count(1)
_ACTIVE: list[Any] = []  # operations whose __call__ is running, innermost last


@dataclass
class ModelRecord:
    model: Any
    path: str | None
    line: int | None
    internal: bool = False  # built by Keras itself (Sequential's inner graph)


@dataclass
class DataCall:
    """A dry-run ``fit``/``evaluate``/``predict``/... call."""

    model: Any
    method: str
    path: str | None
    line: int | None
    args: tuple
    kwargs: dict


@dataclass
class Capture:
    models: list[ModelRecord] = field(default_factory=list)
    data_calls: list[DataCall] = field(default_factory=list)
    compiled: dict[int, dict] = field(default_factory=dict)


CAPTURE = Capture()


def _package_dirs(*names: str) -> tuple[str, ...]:
    dirs = []
    for name in names:
        mod = sys.modules.get(name)
        file = getattr(mod, "__file__", None)
        if file:
            dirs.append(os.path.dirname(os.path.abspath(file)) + os.sep)
    return tuple(dirs)


def user_site(skip: int = 1) -> tuple[str | None, int | None]:
    """The innermost stack frame in user code (not Keras, TF or shapecheck)."""
    frame = sys._getframe(skip)
    while frame is not None:
        filename = frame.f_code.co_filename
        if not filename.startswith("<") and not filename.startswith(_SKIP_PREFIXES):
            return os.path.abspath(filename), frame.f_lineno
        frame = frame.f_back
    return None, None


def install() -> Capture:
    """Patch Keras so the script's models and calls are recorded."""
    global _SKIP_PREFIXES
    import keras  # noqa: F401  (loads keras.src)
    from keras.src.models.functional import Functional
    from keras.src.models.model import Model
    from keras.src.models.sequential import Sequential
    from keras.src.ops.node import Node
    from keras.src.layers.layer import Layer
    from keras.src.ops.operation import Operation

    import shapecheck

    _SKIP_PREFIXES = _package_dirs(
        "keras", "tensorflow", "tf_keras", "optree", "absl", "jax", "torch",
        "numpy", "shapecheck") + (os.path.dirname(os.__file__) + os.sep,)
    _SKIP_PREFIXES += (os.path.dirname(os.path.abspath(shapecheck.__file__)) + os.sep,)

    node_init = Node.__init__

    def init_node(self: Any, *args: Any, **kwargs: Any) -> None:
        node_init(self, *args, **kwargs)
        self._shapecheck_site = user_site(2)
        self._shapecheck_seq = next(_SEQ)
        # Made inside another op's call (a mask, a wrapper's inner call): not the user's.
        self._shapecheck_internal = any(op is not self.operation for op in _ACTIVE)

    Node.__init__ = init_node

    def track(cls: type) -> None:
        original = cls.__call__

        def call(self: Any, *args: Any, **kwargs: Any) -> Any:
            _ACTIVE.append(self)
            try:
                return original(self, *args, **kwargs)
            finally:
                _ACTIVE.pop()

        cls.__call__ = call

    track(Operation)
    track(Layer)

    def record_model(cls: type) -> None:
        original = cls.__init__

        def init(self: Any, *args: Any, **kwargs: Any) -> None:
            original(self, *args, **kwargs)
            if getattr(self, "_shapecheck_recorded", False):
                return
            self._shapecheck_recorded = True
            path, line = user_site(2)
            internal = _inside_sequential_build()
            CAPTURE.models.append(ModelRecord(self, path, line, internal))

        cls.__init__ = init

    record_model(Functional)
    record_model(Sequential)
    record_model(Model)

    _patch_training(Model)
    return CAPTURE


def _inside_sequential_build() -> bool:
    frame = sys._getframe(2)
    while frame is not None:
        code = frame.f_code
        if code.co_name == "build" and "sequential" in code.co_filename:
            return True
        frame = frame.f_back
    return False


_DRY_METHODS = ("fit", "evaluate", "predict", "train_on_batch", "test_on_batch",
                "predict_on_batch")


def _patch_training(Model: type) -> None:
    """Turn training and inference entry points into recorded dry runs."""
    compile_original = Model.compile

    def compile(self: Any, *args: Any, **kwargs: Any) -> Any:
        CAPTURE.compiled[id(self)] = {"args": args, "kwargs": kwargs}
        return compile_original(self, *args, **kwargs)

    Model.compile = compile

    for method in _DRY_METHODS:
        setattr(Model, method, _dry(method))


def _dry(method: str) -> Any:
    def dry_run(self: Any, *args: Any, **kwargs: Any) -> Any:
        path, line = user_site(2)
        CAPTURE.data_calls.append(DataCall(self, method, path, line, args, kwargs))
        return _neutral_result(self, method, args, kwargs)

    dry_run.__name__ = method
    return dry_run


def _neutral_result(model: Any, method: str, args: tuple, kwargs: dict) -> Any:
    import numpy as np
    from keras.callbacks import History

    if method == "fit":
        history = History()
        history.set_model(model)
        history.history = {}
        history.epoch = []
        return history
    if method in ("evaluate", "train_on_batch", "test_on_batch"):
        return 0.0
    # predict / predict_on_batch: zeros shaped like the model's outputs.
    x = args[0] if args else kwargs.get("x")
    n = _num_samples(x)
    try:
        outputs = model.outputs
    except (AttributeError, ValueError):
        return np.zeros((n, 1), dtype="float32")
    arrays = [np.zeros((n,) + tuple(1 if d is None else d for d in o.shape[1:]),
                       dtype="float32") for o in outputs]
    return arrays[0] if len(arrays) == 1 else arrays


def _num_samples(x: Any) -> int:
    if isinstance(x, dict):
        x = next(iter(x.values()), None)
    if isinstance(x, (list, tuple)) and x:
        x = x[0]
    shape = getattr(x, "shape", None)
    if shape and shape[0] is not None:
        return int(shape[0])
    return 1
