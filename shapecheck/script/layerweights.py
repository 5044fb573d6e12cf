"""Weights Keras refuses while a layer is made or built, kept for the findings.

Two places raise on a weight of the wrong shape:

- ``Layer.set_weights`` — called by the user, or by a constructor given
  ``weights=[matrix]`` (``Embedding``): the error stops the script at that
  line.  Under shapecheck a refusal from the user's code is recorded as a
  :class:`~shapecheck.script.standin.Failure` (no tensor inputs) and the call
  returns without setting the weights, so the rest of the script is checked.
- ``Layer.add_weight`` while a layer builds on its first call — an
  initializer that holds an array (``Constant(matrix)``) of another shape:
  the call is refused as any other (a stand-in output), and the layer keeps
  what it was building, for the rule to say which weight and which shapes.

Only the child process that runs the user's script installs these patches.
"""

from __future__ import annotations

import os
import sys
from typing import Any, Callable

from shapecheck.shapes.refused import ERRORS_ATTR, WeightError


def _record(layer: Any, err: WeightError) -> None:
    found = list(getattr(layer, ERRORS_ATTR, None) or [])
    found.append(err)
    object.__setattr__(layer, ERRORS_ATTR, found)  # not tracked by Keras


def _shape(value: Any) -> tuple | None:
    shape = getattr(value, "shape", None)
    if shape is None:
        try:
            import numpy as np

            shape = np.shape(value)
        except Exception:  # not array-like
            return None
    try:
        return tuple(None if d is None else int(d) for d in shape)
    except (TypeError, ValueError):
        return None


def _library_dirs() -> tuple[str, ...]:
    import keras

    from shapecheck import version  # lies in the package's folder

    dirs = [os.path.dirname(os.path.abspath(keras.__file__)),
            os.path.dirname(os.path.abspath(version.__file__))]
    for name in ("tensorflow", "jax", "torch", "tf_keras"):
        mod = sys.modules.get(name)
        file = getattr(mod, "__file__", None)
        if file:
            dirs.append(os.path.dirname(os.path.abspath(file)))
    return tuple(os.path.join(d, "") for d in dirs)


def _caller_kind(frame: Any, library: tuple[str, ...]) -> str | None:
    """Who called ``set_weights``: "set_weights" (the user's code), "weights=" (a Keras
    layer's constructor called by the user), or None (Keras itself)."""
    from keras.layers import Layer

    if frame is None:
        return None
    path = os.path.abspath(frame.f_code.co_filename)
    if not path.startswith(library) and not frame.f_code.co_filename.startswith("<"):
        return "set_weights"
    seen_init = False
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(library):
        if frame.f_code.co_name != "__init__" or \
                not isinstance(frame.f_locals.get("self"), Layer):
            return None
        seen_init = True
        frame = frame.f_back
    return "weights=" if seen_init and frame is not None else None


def install(layer_cls: type, record: Callable[[Any], None]) -> None:
    """Patch ``Layer.set_weights`` and ``Layer.add_weight`` (see the module doc);
    ``record`` keeps each refused ``set_weights`` as a :class:`Failure`."""
    library = _library_dirs()
    set_weights = layer_cls.set_weights
    add_weight = layer_cls.add_weight

    def checked_set_weights(self: Any, weights: Any) -> Any:
        try:
            return set_weights(self, weights)
        except ValueError as err:
            try:
                kind = _caller_kind(sys._getframe(1), library)
                recorded = kind is not None and _refused(self, weights, err, kind, record)
            except Exception:  # describing the error must never replace it
                recorded = False
            if not recorded:
                raise
            return None

    def checked_add_weight(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return add_weight(self, *args, **kwargs)
        except Exception as err:
            _initializer_refused(self, args, kwargs, err)
            raise

    checked_set_weights.__doc__ = set_weights.__doc__
    checked_add_weight.__doc__ = add_weight.__doc__
    layer_cls.set_weights = checked_set_weights
    layer_cls.add_weight = checked_add_weight


def _refused(layer: Any, weights: Any, err: ValueError, kind: str,
             record: Callable[[Any], None]) -> bool:
    """Record a ``set_weights`` the user's code made that Keras refused; False when it
    is no shape error (the script sees it as Keras raised it)."""
    from shapecheck.script.frames import user_position
    from shapecheck.shapes.refused import Failure, clean_message

    message = clean_message(err)
    if "weight shape" not in message and "weight list of length" not in message:
        return False
    try:
        given = [_shape(w) for w in weights]
    except TypeError:  # not a list: Keras's own error says what it needs
        return False
    declared = [(getattr(v, "path", None) or getattr(v, "name", "?"), _shape(v) or ())
                for v in layer.weights]
    _record(layer, WeightError(kind, message, declared, given))
    path, line, col, end = user_position(2)
    record(Failure(
        op=layer, error_type=type(err).__name__, message=message, path=path, line=line,
        col=col, end_col=end, input_shapes=[], inputs=[]))
    return True


def _initializer_refused(layer: Any, args: tuple, kwargs: dict, err: Exception) -> None:
    """Keep what ``add_weight`` was making when an array-valued initializer of another
    shape made it fail (its value broadcast against the weight's shape)."""
    from shapecheck.shapes.refused import clean_message

    try:
        import keras

        shape = kwargs.get("shape", args[0] if args else None)
        init = kwargs.get("initializer", args[1] if len(args) > 1 else None)
        init = keras.initializers.get(init) if init is not None else None
        value = getattr(init, "value", None)
        given = _shape(value) if value is not None else None
        if shape is None or not given or tuple(given) == tuple(shape):
            return
        name = kwargs.get("name")
        attr = next((a for a, v in vars(layer).items()
                     if a.endswith("_initializer") and v is init), None)
        label = f"{attr}={type(init).__name__}" if attr else type(init).__name__
        _record(layer, WeightError("initializer", clean_message(err),
                                   [(name or "?", tuple(int(d) for d in shape))], [given],
                                   weight=name, initializer=label))
    except Exception:  # describing the error must never replace it
        return
