"""Scripts on legacy Keras 2: ``import tf_keras``, or ``tf.keras`` with
``TF_USE_LEGACY_KERAS=1``.

Each functional or Sequential tf_keras model is rebuilt as its Keras 3 twin from
tf_keras's own node structure: every layer made again from its config (a TensorFlow
op, a ``Lambda`` or a user's own layer class runs as it is, inside a Keras 3 layer),
then called in the graph's order on the same arguments, each call keeping the
user's line. The twin goes through the same rules as any Keras 3 model.

``fit``/``evaluate``/``predict``/``*_on_batch`` become dry runs as for Keras 3: the
data is sampled and checked against the twin, nothing trains, and the script's
callbacks see tf_keras's own run and ``History``. A model that cannot be rebuilt
(a subclassed tf_keras model, a layer Keras 3 refuses) is reported "not checked"
with the reason, never as "no model".
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import inspect
import itertools
import os
import re
import sys
from dataclasses import dataclass, field
from typing import Any

from shapecheck.script import capture, drycalls, frames, keras2_configs

PATCHED = False
_SEQ = itertools.count(1)
_PENDING: list["_Built"] = []  # the tf_keras models the script built, in order
# os.environ["TF_USE_LEGACY_KERAS"] = "1", setdefault(..., "True"), %env ...=1 (in a
# notebook's JSON, quotes are escaped)
_LEGACY_SET = re.compile(
    r"""TF_USE_LEGACY_KERAS\\?['"]?\s*\]?\s*[=,:]\s*\\?['"]?(1|true|True)\b""")


@dataclass
class _Built:
    model: Any  # the tf_keras model
    path: str | None
    line: int | None
    twin: Any = None  # its Keras 3 twin, or an Unreadable
    size: int = -1  # how many layers it had when the twin was made


@dataclass
class _Conversion:
    """One model's rebuild: the Keras 3 layer made for each tf_keras layer."""

    layers: dict[int, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


class Unsupported(Exception):
    """A tf_keras model or layer with no Keras 3 twin."""


# --- set-up ------------------------------------------------------------------------------


def prepare(source: str) -> None:
    """Before TensorFlow is imported: a script that sets ``TF_USE_LEGACY_KERAS`` itself
    (before its own ``import tensorflow``) gets legacy ``tf.keras`` here too."""
    if _LEGACY_SET.search(source) and "TF_USE_LEGACY_KERAS" not in os.environ:
        os.environ["TF_USE_LEGACY_KERAS"] = "1"


def watch() -> None:
    """Patch tf_keras as soon as the script imports it."""
    if "tf_keras" in sys.modules:
        patch()
    elif not any(isinstance(f, _Finder) for f in sys.meta_path):
        sys.meta_path.insert(0, _Finder())


class _Finder(importlib.abc.MetaPathFinder):
    """Patches tf_keras once its package has been imported."""

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> Any:
        if name != "tf_keras" or PATCHED:
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is None or spec.loader is None:
            return None
        exec_module = spec.loader.exec_module

        def run(module: Any) -> None:
            exec_module(module)
            patch()

        spec.loader.exec_module = run  # type: ignore[method-assign]
        return spec


def patch() -> None:
    """Record tf_keras's models, calls and compiles; make its training dry runs."""
    global PATCHED
    if PATCHED:
        return
    PATCHED = True
    from tf_keras.src.engine import base_layer, training

    frames.skip_libraries()  # tf_keras's own frames are not the user's
    Layer, Model = base_layer.Layer, training.Model

    call_original = Layer.__call__

    def call(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            out = call_original(self, *args, **kwargs)
        except Exception:
            _explain_refusal(self, args, kwargs)
            raise  # Keras 2 stops the script here, as it would without shapecheck
        _note_site(self, out)
        return out

    Layer.__call__ = call

    layer_init = Layer.__init__

    def init_layer(self: Any, *args: Any, **kwargs: Any) -> None:
        layer_init(self, *args, **kwargs)
        if "_shapecheck_created" not in self.__dict__:
            object.__setattr__(self, "_shapecheck_created",
                               frames.user_position(2, outside=self))

    Layer.__init__ = init_layer

    model_init = Model.__init__

    def init_model(self: Any, *args: Any, **kwargs: Any) -> None:
        model_init(self, *args, **kwargs)
        if self.__dict__.get("_shapecheck_built") is None:
            path, line = frames.construction_site(self, 2)
            built = _Built(self, path, line)
            object.__setattr__(self, "_shapecheck_built", built)
            _PENDING.append(built)

    Model.__init__ = init_model

    compile_original = Model.compile

    def compile(self: Any, *args: Any, **kwargs: Any) -> Any:
        out = compile_original(self, *args, **kwargs)
        path, line = frames.user_site(2)
        try:
            bound = inspect.signature(compile_original).bind(self, *args, **kwargs)
            given = {k: v for k, v in bound.arguments.items() if k != "self"}
            given.update(given.pop("kwargs", None) or {})
        except TypeError:
            given = dict(kwargs)
        object.__setattr__(self, "_shapecheck_compile", (given, path, line))
        built = self.__dict__.get("_shapecheck_built")
        if built is not None and built.twin is not None and not getattr(
                built.twin, "_shapecheck_unreadable", False):
            _compile_twin(self, built.twin)
        return out

    Model.compile = compile
    for method in drycalls.DRY_METHODS:
        setattr(Model, method, drycalls.dry(method, getattr(Model, method), twin_of))


def _explain_refusal(layer: Any, args: tuple, kwargs: dict) -> None:
    """A layer tf_keras refused on symbolic tensors: the same call made on its Keras 3
    twin, so that what Keras 3 refuses too is a finding at the user's line."""
    try:
        import keras
        import tensorflow as tf

        from tf_keras.src.engine.keras_tensor import KerasTensor

        if not any(isinstance(t, KerasTensor) for t in tf.nest.flatten((args, kwargs))):
            return
        twin = _new_layer(layer, _Conversion())

        def to_keras3(t: Any) -> Any:
            if isinstance(t, KerasTensor):
                return keras.KerasTensor(tuple(t.shape), dtype=t.dtype.name)
            return t

        args, kwargs = tf.nest.map_structure(to_keras3, (args, kwargs))
        with capture.site(frames.user_position(3)):
            twin(*args, **kwargs)
    except Exception:  # no finding then: the script's own error tells it
        pass


def _note_site(layer: Any, out: Any) -> None:
    """Keep the user's line on the node a symbolic call made."""
    try:
        import tensorflow as tf

        for t in tf.nest.flatten(out):
            history = getattr(t, "_keras_history", None)
            if history is None or history.layer is not layer:
                continue
            node = layer._inbound_nodes[history.node_index]
            if "_shapecheck_site" not in node.__dict__:
                node._shapecheck_site = frames.user_position(3)
                node._shapecheck_seq = next(_SEQ)
            return
    except Exception:  # a site is a help, never the script's problem
        pass


# --- the twins ----------------------------------------------------------------------------


def twin_of(model: Any) -> Any:
    """The Keras 3 twin of a tf_keras model (made once, again if layers were added);
    an :class:`Unreadable` when it has none."""
    from shapecheck.graph.model import Unreadable

    built = model.__dict__.get("_shapecheck_built")
    if built is None:
        built = _Built(model, None, None)
        object.__setattr__(model, "_shapecheck_built", built)
        _PENDING.append(built)
    size = len(getattr(model, "layers", []) or [])
    if built.twin is None or (built.size != size and not isinstance(built.twin, Unreadable)):
        built.size = size
        built.twin = _make_twin(built)
    return built.twin


def finish() -> None:
    """After the script: the twins of the models no data call reached."""
    for built in list(_PENDING):
        if built.twin is None:
            try:
                twin_of(built.model)
            except Exception:  # the model's own failure is in its entry
                pass


def prepare_file(script: str) -> None:
    """:func:`prepare` on a script's text."""
    try:
        with open(script, encoding="utf-8", errors="replace") as f:
            prepare(f.read())
    except OSError:
        pass


def reset() -> None:
    _PENDING.clear()


def _make_twin(built: _Built) -> Any:
    from shapecheck.graph.model import Unreadable

    model = built.model
    try:
        with capture.converting():
            twin, notes = convert(model)
    except Unsupported as err:
        twin, notes = Unreadable(model.name, "tf_keras", f"tf_keras model: not checked: {err}"), []
    except Exception as err:  # a model this conversion does not know
        twin, notes = Unreadable(
            model.name, "tf_keras",
            f"tf_keras model: not checked: it could not be rebuilt in Keras 3 "
            f"({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''})"), []
    twin._shapecheck_origin = ["tf_keras (Keras 2) model, checked as its Keras 3 twin"] + notes
    if not isinstance(twin, Unreadable) and "_shapecheck_compile" in model.__dict__:
        _compile_twin(model, twin)
    capture.CAPTURE.models.append(capture.ModelRecord(twin, built.path, built.line))
    return twin


def convert(model: Any) -> tuple[Any, list[str]]:
    """A Keras 3 model with ``model``'s graph; notes on what changed on the way."""
    conv = _Conversion()
    twin = _convert_model(model, conv)
    return twin, conv.notes


def _is_tf_keras_model(obj: Any) -> bool:
    from tf_keras.src.engine.training import Model

    return isinstance(obj, Model)


def _convert_model(model: Any, conv: _Conversion) -> Any:
    import keras

    cls = type(model).__name__
    graph = getattr(model, "_is_graph_network", False)
    if cls == "Sequential" and not graph:
        layers = [_twin_layer(layer, conv) for layer in model.layers]
        return keras.Sequential(layers, name=model.name)
    if not graph:
        raise Unsupported(
            f"`{cls}` is a subclassed tf_keras model, whose `call` shapecheck does not "
            "trace under Keras 2; write it as a functional model, or port it to Keras 3")
    import tensorflow as tf

    made: dict[tuple, Any] = {}  # (id(layer), node index, tensor index) -> Keras 3 tensor

    def key(t: Any) -> tuple | None:
        history = getattr(t, "_keras_history", None)
        if history is None:
            return None
        return id(history.layer), history.node_index, history.tensor_index

    def twin_tensor(t: Any) -> Any:
        k = key(t)
        return made[k] if k is not None and k in made else t

    for node in _in_order(model):
        layer = node.layer
        if node.is_input:
            t = tf.nest.flatten(node.outputs)[0]
            with capture.site(getattr(layer, "_shapecheck_created", None)):
                made[key(t)] = keras.Input(
                    batch_shape=tuple(t.shape), dtype=t.dtype.name, name=layer.name,
                    sparse=bool(getattr(layer, "sparse", False)))
            continue
        twin = _twin_layer(layer, conv)
        args = tf.nest.map_structure(twin_tensor, node.call_args)
        kwargs = tf.nest.map_structure(twin_tensor, node.call_kwargs)
        site = node.__dict__.get("_shapecheck_site")
        if site is None or type(model).__name__ == "Sequential":  # the layer's line in it
            site = getattr(layer, "_shapecheck_created", None) or site
        with capture.site(site):
            if getattr(twin, "_shapecheck_op_call", False):
                tensors: list[Any] = []

                def slot(v: Any) -> Any:
                    if isinstance(v, keras.KerasTensor):
                        tensors.append(v)
                        return _Slot(len(tensors) - 1)
                    return v

                twin.template = tf.nest.map_structure(slot, (args, kwargs))
                out = twin(tensors)
            else:
                out = twin(*args, **kwargs)
        for original, new in zip(tf.nest.flatten(node.outputs), tf.nest.flatten(out)):
            made[key(original)] = new
    inputs = tf.nest.map_structure(twin_tensor, model._nested_inputs)
    outputs = tf.nest.map_structure(twin_tensor, model._nested_outputs)
    return keras.Model(inputs=inputs, outputs=outputs, name=model.name)


def _in_order(model: Any) -> list[Any]:
    """The model's nodes in the order the script made them (a topological order, as each
    node is made after its inputs); by depth where that order is not known."""
    by_depth = model._nodes_by_depth
    nodes = [n for d in sorted(by_depth, reverse=True) for n in by_depth[d]]
    if all("_shapecheck_seq" in n.__dict__ or n.is_input for n in nodes):
        order = {id(layer): i for i, layer in enumerate(getattr(model, "_input_layers", []))}
        inputs = sorted((n for n in nodes if n.is_input),
                        key=lambda n: order.get(id(n.layer), len(order)))
        return inputs + sorted((n for n in nodes if not n.is_input),
                               key=lambda n: n.__dict__["_shapecheck_seq"])
    return nodes


def _twin_layer(layer: Any, conv: _Conversion) -> Any:
    if id(layer) in conv.layers:
        return conv.layers[id(layer)]
    twin = _new_layer(layer, conv)
    created = getattr(layer, "_shapecheck_created", None)
    if created is not None:
        twin._shapecheck_created = created
    conv.layers[id(layer)] = twin
    return twin


def _new_layer(layer: Any, conv: _Conversion) -> Any:
    import keras

    cls = type(layer).__name__
    if _is_tf_keras_model(layer):
        return _convert_model(layer, conv)
    if cls in ("TFOpLambda", "SlicingOpLambda"):
        return _op_layer(layer)
    if cls == "Lambda":
        return keras.layers.Lambda(layer.function, output_shape=layer._output_shape,
                                   arguments=dict(layer.arguments or {}), name=layer.name)
    own = type(layer).__module__.startswith("tf_keras.")
    k3 = getattr(keras.layers, cls, None)
    if own and isinstance(k3, type):
        return keras2_configs.from_config(k3, layer.get_config(), conv.notes, layer.name)
    return _foreign_layer(layer)


# --- layers that run as they are -----------------------------------------------------------


class _Slot:
    """Where a tensor goes back in an op's arguments."""

    def __init__(self, index: int) -> None:
        self.index = index


def _op_layer(layer: Any) -> Any:
    """A TensorFlow op (``tf.tile(x, ...)``, ``x[:, 0]``, ``x + y``) on Keras tensors."""
    import keras

    class TFOp(keras.layers.Layer):
        _shapecheck_op_call = True

        def __init__(self, function: Any, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.function = function
            self.template: Any = None

        def call(self, tensors: list[Any]) -> Any:
            import tensorflow as tf

            args, kwargs = tf.nest.map_structure(
                lambda v: tensors[v.index] if isinstance(v, _Slot) else v, self.template)
            return self.function(*args, **kwargs)

    # the layer's own call: it turns the slices tf_keras keeps as dicts back
    return TFOp(layer.call, name=keras2_configs.keras3_name(layer.name))


def _foreign_layer(layer: Any) -> Any:
    """A user's own tf_keras layer class: called as it is on TensorFlow tensors."""
    import keras

    class Keras2Layer(keras.layers.Layer):
        def __init__(self, inner: Any, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self._inner = [inner]  # in a list: not tracked as a Keras 3 layer

        def call(self, *args: Any, **kwargs: Any) -> Any:
            return self._inner[0](*args, **kwargs)

    Keras2Layer.__name__ = type(layer).__name__
    return Keras2Layer(layer, name=keras2_configs.keras3_name(layer.name))


# --- compile --------------------------------------------------------------------------------


def _compile_twin(model: Any, twin: Any) -> None:
    """Compile the twin with the script's losses and metrics, for the target rules and
    the names of the logs a real run gives."""
    given, path, line = model.__dict__["_shapecheck_compile"]
    kwargs = {k: _keras3(given[k], "loss" if k == "loss" else "metrics")
              for k in ("loss", "metrics", "weighted_metrics") if given.get(k) is not None}
    if given.get("loss_weights") is not None:
        kwargs["loss_weights"] = given["loss_weights"]
    try:
        twin.compile(optimizer="sgd", **kwargs)
    except Exception:  # the rules read the loss from the arguments all the same
        pass
    capture.CAPTURE.compiled[id(twin)] = {"args": (), "kwargs": kwargs, "path": path,
                                         "line": line}


def _keras3(value: Any, role: str) -> Any:
    """A tf_keras loss or metric (name, function or object) as its Keras 3 equal."""
    import keras

    module = keras.losses if role == "loss" else keras.metrics
    if isinstance(value, dict):
        return {k: _keras3(v, role) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_keras3(v, role) for v in value)
    if value is None or isinstance(value, (str, int, float)):
        return value
    if not getattr(type(value), "__module__", "").startswith("tf_keras."):
        if inspect.isfunction(value) and value.__module__.startswith("tf_keras."):
            return getattr(module, value.__name__, value.__name__)
        return value  # the user's own function: it runs on TensorFlow tensors
    k3 = getattr(module, type(value).__name__, None)
    if isinstance(k3, type):
        try:
            config = value.get_config()
            return k3(**{k: v for k, v in config.items() if k in _accepted_any(k3)})
        except Exception:
            pass
    return getattr(value, "name", None) or type(value).__name__


def _accepted_any(cls: type) -> set[str]:
    names: set[str] = set()
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is not None:
            names |= {p.name for p in inspect.signature(init).parameters.values()}
    return names
