"""Trace a subclassed model's ``call`` on symbolic inputs into a functional graph.

A subclassed model has no graph until it runs. Called on KerasTensors, each layer
and ``keras.ops`` call inside ``call`` records a Keras node (with the user's line,
through capture), so the outputs lead back to the inputs as in a functional model:
:func:`trace_call` wraps them in one, which the rest of shapecheck checks as it
checks any functional model.

The inputs' shapes come from what the model was given (data, ``build(shape)``, a
call): the batch is unknown, and so is every axis the layers let stay unknown, tried
in turn (:func:`trials`) as Keras builds a Sequential model from data.
"""

from __future__ import annotations

import inspect
import os
import sys
from dataclasses import dataclass, field
from typing import Any

Spec = Any  # a structure (dict / list / tuple) of Leaf
TRACE_NAME = "_shapecheck_trace"


@dataclass(frozen=True)
class Leaf:
    """One input tensor: its shape (``None`` for an unknown size) and dtype."""

    shape: tuple
    dtype: str


@dataclass
class Trace:
    """A subclassed model's ``call``, traced (or why it could not be)."""

    model: Any
    spec: Spec
    functional: Any = None  # a keras Functional of the traced call; None when it failed
    reason: str | None = None  # why the call could not be traced
    where: tuple | None = None  # (path, line) inside the user's code where it stopped
    given: str = ""  # what gave the shapes: "fit at train.py:12"
    site: tuple = (None, None)  # (path, line) of the call that gave the shapes
    used: Spec = None  # the spec the trace succeeded with
    failures: list[Any] = field(default_factory=list)  # calls Keras refused in the trace


def is_subclassed(model: Any) -> bool:
    """A ``keras.Model`` whose graph exists only in its ``call``."""
    from keras import Model, Sequential

    if not isinstance(model, Model) or isinstance(model, Sequential):
        return False
    return not (hasattr(model, "_inputs_struct") and hasattr(model, "_operations"))


def spec_of(x: Any) -> Spec | None:
    """The input spec of a batch ``x`` (arrays, tensors, KerasTensors, or shapes):
    its structure, each leaf's shape with the batch unknown, and dtype."""
    from keras import tree

    def leaf(v: Any) -> Leaf:
        shape = getattr(v, "shape", None)
        if shape is None:
            raise TypeError(type(v).__name__)
        shape = tuple(None if d is None else int(d) for d in shape)
        if not shape:
            raise TypeError("a scalar input")
        dtype = getattr(v, "dtype", "float32")
        return Leaf((None,) + shape[1:], _dtype_name(dtype))

    try:
        return tree.map_structure(leaf, x)
    except Exception:
        return None


def concrete(x: Any) -> bool:
    """Whether ``x`` holds values (arrays, eager tensors), not symbolic tensors of a
    graph being traced (KerasTensors, ``tf.function`` or JAX tracers)."""
    from keras import KerasTensor, tree

    leaves = tree.flatten(x)
    if not leaves:
        return False
    for v in leaves:
        if isinstance(v, KerasTensor) or "Tracer" in type(v).__name__:
            return False
        if not hasattr(v, "shape"):
            return False
    tf = sys.modules.get("tensorflow")
    if tf is not None and any(type(v).__module__.startswith("tensorflow") for v in leaves):
        return bool(tf.executing_eagerly())
    return True


def spec_of_shapes(shape: Any) -> Spec | None:
    """The input spec of ``build(input_shape)``'s argument (tuples, dicts, lists)."""
    def is_shape(s: Any) -> bool:
        return isinstance(s, (tuple, list)) and all(d is None or isinstance(d, int)
                                                    for d in s)

    def walk(s: Any) -> Any:
        if is_shape(s):
            return Leaf(tuple(None if d is None else int(d) for d in s), "float32")
        if isinstance(s, dict):
            return {k: walk(v) for k, v in s.items()}
        if isinstance(s, (list, tuple)):
            items = [walk(v) for v in s]
            return items if isinstance(s, list) else tuple(items)
        raise TypeError(type(s).__name__)

    try:
        return walk(shape)
    except TypeError:
        return None


def _dtype_name(dtype: Any) -> str:
    name = getattr(dtype, "name", None) or str(dtype)
    return name.replace("torch.", "")


def merge(old: Spec, new: Spec) -> Spec | None:
    """One spec for both: sizes that differ become unknown; None when the structures
    or ranks differ (a model given two kinds of input)."""
    from keras import tree

    try:
        tree.assert_same_structure(old, new)
    except Exception:
        return None
    a, b = tree.flatten(old), tree.flatten(new)
    if any(len(x.shape) != len(y.shape) for x, y in zip(a, b)):
        return None
    merged = [Leaf(tuple(p if p == q else None for p, q in zip(x.shape, y.shape)), x.dtype)
              for x, y in zip(a, b)]
    return tree.pack_sequence_as(old, merged)


def trials(spec: Spec) -> list[Spec]:
    """Specs to trace with, most symbolic first: every axis but the batch and the
    features unknown (for integer ids, the last axis too: it is their time axis);
    then only the last axis known; then every size as given."""
    from keras import tree

    leaves = tree.flatten(spec)

    def known(leaf: Leaf, last: bool) -> Leaf:
        rank = len(leaf.shape)
        if rank <= 1:
            return leaf
        tail = leaf.shape[-1:] if last else (None,)
        return Leaf((None,) * (rank - 1) + tail, leaf.dtype)

    def ids(leaf: Leaf) -> bool:
        return leaf.dtype.startswith(("int", "uint", "bool")) or leaf.dtype == "string"

    first = [known(x, last=not ids(x)) for x in leaves]
    second = [known(x, last=True) for x in leaves]
    out: list[list[Leaf]] = []
    for candidate in (first, second, list(leaves)):
        if candidate not in out:
            out.append(candidate)
    return [tree.pack_sequence_as(spec, c) for c in out]


def input_names(model: Any, spec: Spec) -> Any:
    """A name per input leaf: the dict key, or the ``call`` argument's name."""
    from keras import tree

    try:
        params = [p for p in inspect.signature(model.call).parameters.values()
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
        arg = params[0].name if params else "inputs"
    except (TypeError, ValueError):
        arg = "inputs"
    paths = tree.flatten_with_path(spec) if hasattr(tree, "flatten_with_path") else None
    if paths is None:
        return None
    names = []
    for path, _ in paths:
        keys = [str(k) for k in path if isinstance(k, str)]
        names.append(keys[-1] if keys else (f"{arg}_{path[-1]}" if path else arg))
    return names


def trace_call(model: Any, spec: Spec) -> Any:
    """``model.call`` on Inputs of ``spec``, as a Functional named after the model.

    Raises what the call raises."""
    import keras
    from keras import tree

    leaves = tree.flatten(spec)
    names = input_names(model, spec) or [None] * len(leaves)
    seen: set[str] = set()
    tensors = []
    for leaf, name in zip(leaves, names):
        while name is not None and name in seen:
            name += "_"
        if name is not None:
            seen.add(name)
        tensor = keras.Input(batch_shape=leaf.shape, dtype=leaf.dtype, name=name)
        tensor._keras_history.operation._shapecheck_traced = True
        tensors.append(tensor)
    inputs = tree.pack_sequence_as(spec, tensors)
    _build_own(model, spec)
    outputs = model.call(inputs)
    from keras.src.models.functional import Functional

    functional = Functional(inputs, outputs, name=model.name)
    setattr(functional, TRACE_NAME, model)
    return functional


def _build_own(model: Any, spec: Spec) -> None:
    """Run the model's own ``build(input_shape)`` first when it defines one (weights
    made from the input's shape), as Keras does before the first call."""
    from keras import tree
    from keras.src import utils

    if model.built or utils.is_default(model.build):
        return
    shape = tree.map_structure(lambda leaf: leaf.shape, spec)
    model.build(shape)


def where_raised(err: BaseException, skip: tuple[str, ...]) -> tuple | None:
    """(path, line) of the innermost frame of ``err``'s traceback in user code."""
    tb = err.__traceback__
    found = None
    while tb is not None:
        name = tb.tb_frame.f_code.co_filename
        if not name.startswith("<") and not name.startswith(skip):
            found = (os.path.abspath(name), tb.tb_lineno)
        tb = tb.tb_next
    return found


def reason_for(err: BaseException) -> str:
    """Why a call could not be traced, in the user's terms."""
    text = " ".join(str(err).split())
    if len(text) > 300:
        text = text[:297] + "..."
    low = text.lower()
    if "kerastensor cannot be used as input to a tensorflow function" in low or (
            "kerastensor" in low and "tensorflow" in low):
        return ("`call` uses a TensorFlow function on a Keras tensor: write it with "
                "`keras.ops` (or wrap it in a Layer) so it can be traced")
    if isinstance(err, TypeError) and "nonetype" in low:
        return (f"`call` computes with a size that is unknown until it runs "
                f"({type(err).__name__}: {text})")
    if "numpy" in low or "bool" in low or "concrete" in low or "symbolic" in low:
        return (f"`call` needs the values of its inputs, which tracing does not have "
                f"({type(err).__name__}: {text})")
    return f"`call` raised {type(err).__name__} while traced: {text}"


def seen_modules() -> tuple[str, ...]:
    """Prefixes of the files whose frames are not the user's (for :func:`where_raised`)."""
    from shapecheck.script import frames

    return frames.SKIP_PREFIXES or (os.path.dirname(os.__file__) + os.sep,
                                    os.path.dirname(sys.modules["keras"].__file__))
