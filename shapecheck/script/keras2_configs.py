"""tf_keras layer configs as Keras 3 layers: each option Keras 3 takes, nested configs
(wrapped layers, initializers, regularizers, constraints) made into objects, and a
note for each Keras 2 option that could matter and has no Keras 3 equivalent."""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from typing import Any


def keras3_name(name: str) -> str:
    """A layer name Keras 3 takes (no "/", as in DenseNet's "conv1/conv")."""
    return name.replace("/", "_")


# what Keras 3's Layer itself takes (its __init__ may be wrapped, here or by a plugin)
_BASE_KWARGS = {"input_dim", "input_shape", "name", "trainable", "dtype", "autocast",
                "activity_regularizer"}
# Keras 2 options with no Keras 3 equivalent that change no shape
_NO_MATTER = {"input_length", "implementation"}
# Keras 2 options with no Keras 3 equivalent that change shapes: such a model is not checked
_CHANGES_SHAPES = {"time_major"}
# weights' initializers, regularizers and constraints change no shape
_NO_SHAPE = ("_initializer", "_regularizer", "_constraint")
_MODULES = {"initializer": "initializers", "regularizer": "regularizers",
            "constraint": "constraints"}


def accepted_of(cls: type) -> set[str]:
    """The keyword arguments ``cls`` and its bases up to Keras's ``Layer`` take."""
    import keras

    names = set(_BASE_KWARGS)
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is not None:
            for p in inspect.signature(init).parameters.values():
                if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name != "self":
                    names.add(p.name)
        if klass is keras.layers.Layer:
            break
    return names


def _plain(value: Any) -> Any:
    """tf_keras's tracked lists and dicts (``ListWrapper``) as plain ones."""
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return tuple(_plain(v) for v in value)
    if isinstance(value, Sequence) and not isinstance(value, (str, bytes)):
        return [_plain(v) for v in value]
    return value


def from_config(cls: type, config: dict, notes: list[str], name: str | None) -> Any:
    """A Keras 3 ``cls`` from a tf_keras layer's config; ``notes`` gets each Keras 2 option
    that could matter and has no Keras 3 equivalent."""
    config = _plain(config)
    accepted = accepted_kwargs = accepted_of(cls)
    kwargs: dict[str, Any] = {}
    for k, v in config.items():
        if k == "batch_input_shape":
            if v is not None:
                kwargs["input_shape"] = tuple(v[1:])
            continue
        if k == "name" and isinstance(v, str):
            v = keras3_name(v)  # Keras 3 names have no "/" (DenseNet's "conv1/conv")
        if k not in accepted and k in _CHANGES_SHAPES and v:
            raise ValueError(f"`{name}`: Keras 2's `{k}={v!r}` changes its shapes and has no "
                             "Keras 3 equivalent")
        if k not in accepted:
            if v not in (None, False, 0, "", [], {}) and k not in _NO_MATTER \
                    and not k.endswith(_NO_SHAPE) and v != _keras2_default(cls.__name__, k):
                notes.append(f"`{name or cls.__name__}`: Keras 2's `{k}={v!r}` has "
                                  f"no Keras 3 equivalent; checked without it")
            continue
        if k == "axis" and isinstance(v, list) and len(v) == 1:
            v = v[0]  # a built tf_keras BatchNormalization keeps [axis]
        kwargs[k] = _value(k, v, notes)
    if "input_shape" in kwargs and "input_shape" not in accepted_kwargs - _BASE_KWARGS:
        shape = kwargs.pop("input_shape")
        layer = cls(**kwargs)
        layer._input_shape_arg = shape  # as Keras 3 keeps it (Sequential reads it)
        return layer
    return cls(**kwargs)


def _keras2_default(class_name: str, key: str) -> Any:
    """The default of ``key`` in tf_keras's ``class_name`` (a sentinel when it has none)."""
    import tf_keras

    cls = getattr(tf_keras.layers, class_name, None)
    for klass in getattr(cls, "__mro__", ()):
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        p = inspect.signature(init).parameters.get(key)
        if p is not None and p.default is not p.empty:
            return p.default
    return _NONE


_NONE = object()


def _value(key: str, value: Any, notes: list[str]) -> Any:
    """A config value as Keras 3 takes it: nested configs made into objects."""
    import keras

    if isinstance(value, list) and value and all(_is_config(v) for v in value):
        return [_value(key, v, notes) for v in value]
    if not _is_config(value):
        return value
    name, inner = value["class_name"], value.get("config") or {}
    if key == "dtype":
        return inner.get("name", "float32")
    k3 = getattr(keras.layers, name, None)
    if isinstance(k3, type) and issubclass(k3, keras.layers.Layer):
        return from_config(k3, inner, notes, inner.get("name"))
    from keras.src.legacy.saving import serialization

    suffix = next((s for s in _MODULES if key.endswith(s)), None)
    modules = [_MODULES[suffix]] if suffix else list(_MODULES.values())
    for module in modules:
        try:
            return serialization.deserialize_keras_object(
                value, module_objects=vars(getattr(keras, module)),
                printable_module_name=module)
        except Exception:
            continue
    if key.endswith(_NO_SHAPE):
        return None  # a custom initializer, regularizer or constraint: no shape in it
    raise ValueError(f"its `{key}` ({name}) has no Keras 3 equivalent")


def _is_config(value: Any) -> bool:
    return isinstance(value, dict) and "class_name" in value and "config" in value
