"""What the dry-run `fit`/`evaluate`/`predict`/`*_on_batch` return, and the run the
callbacks see.

A dry run trains nothing, but the rest of the script goes on with what it returns,
so each result has the structure Keras's own would have:

- ``fit``: the ``History`` Keras fills (``loss``, each compiled metric, ``val_`` keys
  with validation data; one value per epoch; ``epoch`` and ``params``), after the
  script's callbacks saw every call a real run makes (``on_train_begin``,
  ``on_epoch_end`` with the epoch's logs, ``on_train_end``, ...);
- ``evaluate`` / ``train_on_batch`` / ``test_on_batch``: a scalar, the list of loss
  and metrics in Keras's order, or a dict with ``return_dict=True``;
- ``predict`` / ``predict_on_batch``: one row per sample the data yields, in the
  structure of the model's outputs, each in its output's range (softmax rows sum to
  1, sigmoids lie in (0, 1), ids within the vocabulary).

The values are made up (deterministic): losses fall and accuracies rise over the
first :data:`IMPROVING` epochs, then hold, as a run that reached its plateau.
"""

from __future__ import annotations

import inspect
from typing import Any

import numpy as np

IMPROVING = 3  # epochs over which the made-up values improve, then hold
_RISING = ("acc", "auc", "precision", "recall", "f1", "fbeta", "iou", "io_u", "r2",
           "cosine_similarity", "top_k", "true_positives", "true_negatives")


# --- logs ------------------------------------------------------------------------------


def made_up(name: str, epoch: int = 0) -> float:
    """A plausible value of the log ``name`` at ``epoch``: a loss falls, an accuracy
    rises, validation values are a little worse; both hold after :data:`IMPROVING`."""
    base = name[4:] if name.startswith("val_") else name
    step = min(max(epoch, 0), IMPROVING)
    if any(word in base.lower() for word in _RISING) and "loss" not in base:
        value = 0.5 + 0.1 * step - (0.05 if base != name else 0.0)
    else:
        value = 0.8 ** step * (1.1 if base != name else 1.0)
    return round(float(value), 6)


def log_names(model: Any, batch: Any) -> list[str]:
    """The keys of Keras's logs for ``model`` (``loss``, per-output losses, metrics),
    after building its compiled loss and metrics as ``fit`` would, symbolically, on
    ``batch`` (``(x, y, sample_weight)`` of KerasTensors, or None)."""
    if not getattr(model, "compiled", getattr(model, "_is_compiled", False)):
        return []
    build = getattr(model, "_symbolic_build", None)
    if batch is not None and build is not None:
        try:
            build(data_batch=batch)
        except Exception:  # a model Keras cannot build on this data: the rules say why
            pass
    try:
        names = list(model.get_metrics_result().keys())
    except Exception:
        names = []
    return names or ["loss"] + _compiled_metric_names(model)


def _compiled_metric_names(model: Any) -> list[str]:
    """Metric names from ``compile(metrics=...)`` when Keras could not build them."""
    metrics = getattr(getattr(model, "_compile_config", None), "config", {}).get("metrics")
    out: list[str] = []

    def walk(m: Any) -> None:
        if isinstance(m, dict):
            for v in m.values():
                walk(v)
        elif isinstance(m, (list, tuple)):
            for v in m:
                walk(v)
        elif isinstance(m, str):
            out.append(m)
        elif m is not None:
            out.append(getattr(m, "name", None) or getattr(m, "__name__", "metric"))

    walk(metrics)
    return out


def logs_at(names: list[str], epoch: int = 0, prefix: str = "") -> dict[str, float]:
    return {prefix + n: made_up(prefix + n, epoch) for n in names}


def scores(model: Any, logs: dict[str, float], return_dict: bool) -> Any:
    """``evaluate``'s return value for ``logs``: Keras's own flattening when it has it."""
    if return_dict:
        return dict(logs)
    flatten = getattr(model, "_flatten_metrics_in_order", None)
    if flatten is not None:
        try:
            return flatten(logs)
        except Exception:
            pass
    values = list(logs.values())
    return values[0] if len(values) == 1 else values


# --- arguments and data ---------------------------------------------------------------------


def bind(original: Any, model: Any, args: tuple, kwargs: dict) -> dict[str, Any]:
    """The call's arguments by name, with Keras's defaults."""
    try:
        bound = inspect.signature(original).bind(model, *args, **kwargs)
    except TypeError:
        return dict(kwargs)
    bound.apply_defaults()
    out = dict(bound.arguments)
    out.pop("self", None)
    out.update(out.pop("kwargs", None) or {})
    return out


def symbolic_batch(feeds: list[Any], role: str | None = None) -> Any:
    """``(x, y, sample_weight)`` as KerasTensors shaped as the first sampled batch."""
    from keras import KerasTensor

    batch = next((b for f in feeds if role is None or f.role == role
                  for b in f.batches if b.x is not None), None)
    if batch is None:
        return None

    def sym(info: Any) -> Any:
        if info is None:
            return None
        if isinstance(info, dict):
            return {k: sym(v) for k, v in info.items()}
        if isinstance(info, (list, tuple)):
            return type(info)(sym(v) for v in info)
        dtype = info.dtype if info.dtype not in ("str", "object") else "string"
        return KerasTensor(tuple(info.shape), dtype=dtype)

    try:
        return sym(batch.x), sym(batch.y), sym(batch.sample_weight)
    except Exception:
        return None


def _rows(info: Any) -> int | None:
    if isinstance(info, dict):
        info = next(iter(info.values()), None)
    if isinstance(info, (list, tuple)):
        info = info[0] if info else None
    shape = getattr(info, "shape", None)
    return int(shape[0]) if shape else None


def sample_count(feed: Any) -> int | None:
    """Samples the fed data yields in one pass: arrays, generators with ``steps``,
    a PyDataset or a tf.data.Dataset of known cardinality."""
    batches = [b for b in feed.batches if b.x is not None]
    if not batches:
        return None
    first = _rows(batches[0].x)
    if first is None:
        return None
    last = batches[-1]
    steps = feed.steps
    if steps is None or len(batches) >= steps:  # every batch was sampled
        return sum(_rows(b.x) or 0 for b in batches[:steps])
    ends = feed.kind == "arrays" or "(the last)" in last.label
    if ends and len(batches) > 1 and steps >= 1:
        return first * (steps - 1) + (_rows(last.x) or first)
    if ends and steps == 1:
        return first
    return first * steps


def steps_of(feed: Any) -> int | None:
    return getattr(feed, "steps", None)


# --- fit ---------------------------------------------------------------------------------


def _callback_list_type(host: Any) -> type:
    """The ``CallbackList`` of the Keras that made ``host`` (Keras 3, or tf_keras)."""
    if type(host).__module__.startswith("tf_keras."):
        from tf_keras.callbacks import CallbackList
    else:
        from keras.callbacks import CallbackList
    return CallbackList


def fit(model: Any, params: dict[str, Any], feeds: list[Any], host: Any = None) -> Any:
    """Run the callbacks through a made-up training run; return the ``History``.
    ``host``: the model the script holds, when ``model`` is its Keras 3 twin."""
    host = model if host is None else host
    CallbackList = _callback_list_type(host)
    epochs = int(params.get("epochs") or 1)
    initial = int(params.get("initial_epoch") or 0)
    train = next((f for f in feeds if f.role == "train"), None)
    steps = steps_of(train) if train is not None else None
    names = log_names(model, symbolic_batch(feeds, "train") or symbolic_batch(feeds))
    validate = (params.get("validation_data") is not None
                or bool(params.get("validation_split")))
    freq = params.get("validation_freq", 1) or 1
    callbacks = params.get("callbacks")
    if not isinstance(callbacks, CallbackList):
        callbacks = CallbackList(callbacks, add_history=True, add_progbar=False,
                                 verbose=_verbose(params.get("verbose")), epochs=epochs,
                                 steps=steps, model=host)
    host.stop_training = False
    callbacks.on_train_begin()
    last_step = max((steps or 1) - 1, 0)
    training_logs = None
    for epoch in range(initial, epochs):
        callbacks.on_epoch_begin(epoch)
        logs = logs_at(names, epoch)
        callbacks.on_train_batch_begin(0)
        callbacks.on_train_batch_end(last_step, logs)
        epoch_logs = dict(logs)
        if validate and _should_eval(epoch, freq):
            val = logs_at(names, epoch, "val_")
            plain = {k[4:]: v for k, v in val.items()}
            _test_calls(callbacks, plain)
            epoch_logs.update(val)
        callbacks.on_epoch_end(epoch, epoch_logs)
        training_logs = epoch_logs
        if host.stop_training:
            break
    callbacks.on_train_end(logs=training_logs)
    history = getattr(callbacks, "_history", None) or getattr(host, "history", None)
    return history


def _should_eval(epoch: int, freq: Any) -> bool:
    if isinstance(freq, int):
        return (epoch + 1) % freq == 0
    if isinstance(freq, (list, tuple, set)):
        return (epoch + 1) in freq
    return True


def _verbose(value: Any) -> int:
    return 1 if value == "auto" else int(value or 0)


def _test_calls(callbacks: Any, logs: dict[str, float]) -> None:
    callbacks.on_test_begin()
    callbacks.on_test_batch_begin(0)
    callbacks.on_test_batch_end(0, logs)
    callbacks.on_test_end(logs)


def _callback_list(model: Any, params: dict[str, Any], steps: int | None) -> Any:
    CallbackList = _callback_list_type(model)
    callbacks = params.get("callbacks")
    if isinstance(callbacks, CallbackList):
        return callbacks
    return CallbackList(callbacks, add_progbar=False, verbose=_verbose(params.get("verbose")),
                        epochs=1, steps=steps, model=model)


def evaluate(model: Any, params: dict[str, Any], feeds: list[Any],
             callbacks: bool = True, host: Any = None) -> Any:
    """``evaluate``/``*_on_batch``'s value, after the test callbacks saw a run."""
    names = log_names(model, symbolic_batch(feeds))
    logs = logs_at(names, IMPROVING)
    if callbacks:
        feed = feeds[0] if feeds else None
        _test_calls(_callback_list(host or model, params, steps_of(feed)), logs)
    return scores(model, logs, bool(params.get("return_dict")))


# --- predict -------------------------------------------------------------------------------


def predict(model: Any, params: dict[str, Any], feeds: list[Any],
            callbacks: bool = True, host: Any = None) -> Any:
    """One made-up prediction per sample, in the structure and range of the outputs."""
    feed = feeds[0] if feeds else None
    n = sample_count(feed) if feed is not None else None
    if n is None:
        n = _direct_rows(params.get("x"))
    specs = output_specs(model, symbolic_batch(feeds), n)
    rng = np.random.default_rng(0)
    from keras import tree

    flat = tree.flatten(specs) if specs is not None else []
    ops = _output_ops(model, len(flat))
    values = [_values(rng, tuple(s.shape), str(s.dtype), op) for s, op in zip(flat, ops)]
    if callbacks:
        cbs = _callback_list(host or model, params, steps_of(feed))
        cbs.on_predict_begin()
        cbs.on_predict_batch_begin(0)
        cbs.on_predict_batch_end(0, {"outputs": values[0] if len(values) == 1 else values})
        cbs.on_predict_end()
    if not values:
        return np.full((n, 1), 0.5, dtype="float32")
    return tree.pack_sequence_as(specs, values)


def _direct_rows(x: Any) -> int:
    if isinstance(x, dict):
        x = next(iter(x.values()), None)
    if isinstance(x, (list, tuple)) and x and hasattr(x[0], "shape"):
        x = x[0]
    shape = getattr(x, "shape", None)
    try:
        return int(shape[0]) if shape else (len(x) if isinstance(x, (list, tuple)) else 1)
    except (TypeError, ValueError):
        return 1


def output_specs(model: Any, batch: Any, n: int) -> Any:
    """The model's outputs (KerasTensors) for ``n`` samples shaped as the sampled batch;
    Keras's symbolic outputs with unknown sizes at 1 when that cannot be traced."""
    from keras import KerasTensor, tree

    if batch is not None:
        x = tree.map_structure(
            lambda t: None if t is None else KerasTensor((n,) + tuple(t.shape[1:]), t.dtype),
            batch[0])
        try:
            return model.compute_output_spec(x)
        except Exception:
            pass
    try:  # tf_keras keeps the structure in _nested_outputs
        outputs = next((getattr(model, a) for a in ("_outputs_struct", "_nested_outputs")
                        if getattr(model, a, None) is not None), None)
        if outputs is None:
            outputs = model.outputs
    except (AttributeError, ValueError):
        return None
    return tree.map_structure(
        lambda t: KerasTensor((n,) + tuple(1 if d is None else d for d in t.shape[1:]),
                              t.dtype), outputs)


def _output_ops(model: Any, count: int) -> list[Any]:
    """The operation that makes each flat output (None when unknown)."""
    try:
        outs = list(model.outputs)
        ops = [getattr(getattr(t, "_keras_history", None), "operation", None) for t in outs]
    except (AttributeError, ValueError, TypeError):
        ops = []
    if len(ops) != count:
        layers = getattr(model, "layers", None) or []
        ops = [layers[-1] if layers and count == 1 else None] * count
    return ops


def _activation(op: Any) -> str:
    """``softmax``/``sigmoid``/``relu``/``tanh``/``linear``/... of the op that makes an
    output; ``unknown`` when it cannot be told."""
    if op is None:
        return "unknown"
    name = type(op).__name__
    if name == "Softmax":
        return "softmax"
    if name in ("ReLU", "Sigmoid", "Tanh"):
        return name.lower()
    if name == "Sequential" and getattr(op, "layers", None):
        return _activation(op.layers[-1])
    act = getattr(op, "activation", None)
    if act is None:
        return "linear" if name in ("Dense", "EinsumDense") or name.startswith("Conv") \
            else "unknown"
    fn_name = getattr(act, "__name__", str(act)).lower()
    for known in ("softmax", "sigmoid", "hard_sigmoid", "relu", "tanh", "softplus",
                  "exponential", "elu", "selu", "gelu", "swish", "silu", "linear"):
        if known in fn_name:
            return known
    return "unknown"


def _int_bound(op: Any) -> int:
    """One past the largest id an integer output can hold."""
    for attr in ("vocabulary_size", "num_tokens"):
        value = getattr(op, attr, None)
        try:
            value = value() if callable(value) else value
        except Exception:
            value = None
        if isinstance(value, int) and value > 0:
            return value
    return 2


def _values(rng: np.random.Generator, shape: tuple, dtype: str, op: Any) -> np.ndarray:
    """Made-up values of one output in its range."""
    shape = tuple(1 if d is None else int(d) for d in shape)
    if dtype in ("string", "str", "object"):
        return np.full(shape, b"", dtype=object)
    if dtype == "bool":
        return rng.random(shape) < 0.5
    if "int" in dtype:
        return rng.integers(0, _int_bound(op), size=shape).astype(dtype)
    act = _activation(op)
    out: np.ndarray
    if act == "softmax" or (act == "unknown" and len(shape) >= 2 and shape[-1] > 1):
        raw = rng.random(shape) + 0.05
        out = raw / raw.sum(axis=-1, keepdims=True)
    elif act in ("sigmoid", "hard_sigmoid", "unknown"):
        out = rng.uniform(0.05, 0.95, size=shape)
    elif act in ("relu", "softplus", "exponential"):
        out = rng.uniform(0.01, 1.0, size=shape)
    elif act == "tanh":
        out = rng.uniform(-0.9, 0.9, size=shape)
    else:
        out = rng.normal(0.0, 1.0, size=shape)
    try:
        return out.astype(dtype)
    except TypeError:
        return out.astype("float32")


def result(model: Any, method: str, params: dict[str, Any], feeds: list[Any],
           host: Any = None) -> Any:
    """What the dry-run ``method`` returns to the script; Keras's own error where
    Keras raises before any step (training or evaluating a model never compiled).
    ``host``: the model the script holds, when ``model`` is its Keras 3 twin."""
    if not method.startswith("predict") and not getattr(model, "compiled", True):
        check = getattr(model, "_assert_compile_called", None)
        if check is not None:
            check(method)
    if method == "fit":
        return fit(model, params, feeds, host)
    if method == "evaluate":
        return evaluate(model, params, feeds, host=host)
    if method in ("train_on_batch", "test_on_batch"):
        return evaluate(model, params, feeds, callbacks=False)
    if method == "predict":
        return predict(model, params, feeds, host=host)
    return predict(model, params, feeds, callbacks=False)
