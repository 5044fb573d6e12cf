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
    has_call: bool = True  # False: the class defines no `call` (a GAN defines its step)
    failures: list[Any] = field(default_factory=list)  # calls Keras refused in the trace
    nested: list[tuple] = field(default_factory=list)  # (user layer, its traced Functional)


def is_subclassed(model: Any) -> bool:
    """A ``keras.Model`` whose graph exists only in its ``call``."""
    from keras import Model, Sequential

    if not isinstance(model, Model) or isinstance(model, Sequential):
        return False
    return not (hasattr(model, "_inputs_struct") and hasattr(model, "_operations"))


def has_call(model: Any) -> bool:
    """Whether the model's class defines ``call`` (a GAN may define only its step)."""
    fn = getattr(type(model), "call", None)
    return not (getattr(fn, "__module__", "") or "").startswith("keras")


def is_user_layer(layer: Any) -> bool:
    """A layer or subclassed model whose ``call`` the user wrote (outside Keras)."""
    from keras import Model
    from keras.layers import Layer

    if not isinstance(layer, Layer):
        return False
    if isinstance(layer, Model) and not is_subclassed(layer):
        return False
    call = getattr(type(layer), "call", None)
    module = getattr(call, "__module__", "") or ""
    return not module.startswith("keras")


def split_call(layer: Any, args: tuple, kwargs: dict) -> tuple[tuple, dict, dict] | None:
    """``(args, tensor kwargs, other kwargs)`` of a call on KerasTensors; None when
    a tensor sits inside a kwarg next to other values, or no tensor is given."""
    from keras import KerasTensor, tree

    tensors, static = {}, {}
    for k, v in kwargs.items():
        leaves = tree.flatten(v)
        if leaves and all(isinstance(t, KerasTensor) for t in leaves):
            tensors[k] = v
        elif any(isinstance(t, KerasTensor) for t in leaves):
            return None
        else:
            static[k] = v
    for a in args:
        leaves = tree.flatten(a)
        if not leaves or not all(isinstance(t, KerasTensor) for t in leaves):
            return None
    if not args and not tensors:
        return None
    return tuple(args), tensors, static


def spec_exact(x: Any) -> Spec | None:
    """The spec of KerasTensors ``x`` as they are (the batch kept as given)."""
    from keras import tree

    try:
        return tree.map_structure(
            lambda t: Leaf(tuple(t.shape), _dtype_name(t.dtype)), x)
    except Exception:
        return None


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


def spec_of_built(model: Any) -> Spec | None:
    """The input spec a built model was built with (Keras records its build shapes),
    the batch unknown; None when it was never built."""
    shapes = getattr(model, "_build_shapes_dict", None)
    if not shapes or len(shapes) != 1:
        return None
    spec = spec_of_shapes(next(iter(shapes.values())))
    if spec is None:
        return None
    from keras import tree

    return tree.map_structure(lambda leaf: Leaf((None,) + leaf.shape[1:], leaf.dtype), spec)


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


def input_names(layer: Any, args: tuple, kwargs: dict) -> list[str]:
    """A name per input leaf of ``(args, kwargs)``: the dict key, or the ``call``
    argument's name (numbered within a list)."""
    from keras import tree

    try:
        params = [p.name for p in inspect.signature(layer.call).parameters.values()
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    except (TypeError, ValueError):
        params = []
    names = []
    for path, _ in tree.flatten_with_path((args, kwargs)):
        keys = [str(k) for k in path[2:] if isinstance(k, str)]
        if path[0] == 0:
            arg = params[path[1]] if path[1] < len(params) else f"arg{path[1]}"
        else:
            arg = str(path[1])
        rest = [str(k) for k in path[2:]]
        names.append(keys[-1] if keys else "_".join([arg] + rest))
    return names


def trace_call(layer: Any, args: tuple, kwargs: dict | None = None,
               static: dict | None = None, *, nested: bool = False) -> Any:
    """``layer.call(*args, **kwargs, **static)`` on Inputs in place of the Leaf specs
    in ``args`` and ``kwargs``, as a Functional named after the layer: its inputs
    have the structure of ``args[0]`` (a model's data), or are a flat list when
    ``nested`` (a layer inside a trace, called again on the outer tensors).

    Raises what the call raises."""
    import keras
    from keras import tree

    kwargs = kwargs or {}
    leaves = tree.flatten((args, kwargs))
    names = input_names(layer, args, kwargs)
    seen: set[str] = set()
    tensors = []
    for leaf, name in zip(leaves, names):
        while name in seen:
            name += "_"
        seen.add(name)
        tensor = keras.Input(batch_shape=leaf.shape, dtype=leaf.dtype, name=name)
        tensor._keras_history.operation._shapecheck_traced = not nested
        tensors.append(tensor)
    targs, tkwargs = tree.pack_sequence_as((args, kwargs), tensors)
    _build_own(layer, targs, {**tkwargs, **(static or {})})
    outputs = layer.call(*targs, **tkwargs, **(static or {}))
    from keras.src.models.functional import Functional

    functional = Functional(tensors if nested else targs[0], outputs, name=layer.name)
    setattr(functional, TRACE_NAME, layer)
    return functional


def _build_own(layer: Any, args: tuple, kwargs: dict) -> None:
    """Run the layer's own ``build(input_shape)`` first when it defines one (weights
    made from the input's shape), as Keras does before the first call."""
    from keras.src import utils
    from keras.src.layers.layer import CallSpec

    if layer.built or utils.is_default(layer.build):
        return
    layer._maybe_build(CallSpec(layer._call_signature, layer._call_context_args,
                                args, kwargs))


def upstream_failure(tensors: list[Any]) -> Any:
    """The first call Keras refused upstream of ``tensors`` in the graph being traced
    (a stand-in, or a user's layer traced with a refused call inside)."""
    stack, seen = list(tensors), set()
    while stack:
        t = stack.pop()
        if id(t) in seen:
            continue
        seen.add(id(t))
        hist = getattr(t, "_keras_history", None)
        if hist is None:
            continue
        op = hist.operation
        failure = getattr(op, "failure", None) if hasattr(op, "failed_op") else None
        failure = failure or (getattr(op, "_shapecheck_failures", None) or [None])[0]
        if failure is not None:
            return failure
        node = op._inbound_nodes[hist.node_index]
        stack.extend(node.arguments.keras_tensors)
    return None


@dataclass
class Declared:
    """A user's layer whose ``compute_output_shape`` says another shape than its
    traced ``call`` returns."""

    layer: Any
    input_shapes: list[tuple]
    declared: list[tuple]
    traced: list[tuple]
    path: str | None  # where ``compute_output_shape`` is written
    line: int | None


def declared_mismatch(layer: Any, spec: Spec, functional: Any) -> Declared | None:
    """Compare the shape a user's layer declares with the one its call returns."""
    from keras import tree
    from keras.src import utils

    args, kwargs = spec
    if utils.is_default(layer.compute_output_shape) or len(args) != 1 or kwargs:
        return None
    shapes = tree.map_structure(lambda leaf: leaf.shape, args[0])
    try:
        declared = layer.compute_output_shape(shapes)
    except Exception:
        return None
    traced = [tuple(t.shape) for t in tree.flatten(functional.outputs)]
    flat = _shape_list(declared)
    if flat is None or len(flat) != len(traced):
        return None
    if all(len(a) == len(b) and all(p is None or q is None or p == q for p, q in zip(a, b))
           for a, b in zip(flat, traced)):
        return None
    path, line = None, None
    try:
        fn = type(layer).compute_output_shape
        path = os.path.abspath(inspect.getsourcefile(fn) or "")
        lines, line = inspect.getsourcelines(fn)
        returns = [i for i, text in enumerate(lines) if text.strip().startswith("return")]
        line += returns[-1] if returns else 0  # the shape it returns, else its `def`
    except (OSError, TypeError):
        pass
    return Declared(layer, [leaf.shape for leaf in tree.flatten(args)], flat, traced,
                    path or None, line)


def _shape_list(declared: Any) -> list[tuple] | None:
    if isinstance(declared, (tuple, list)) and all(d is None or isinstance(d, int)
                                                   for d in declared):
        return [tuple(declared)]
    if isinstance(declared, (tuple, list)):
        out = []
        for d in declared:
            one = _shape_list(d)
            if one is None:
                return None
            out += one
        return out
    if isinstance(declared, dict):
        return _shape_list(list(declared.values()))
    return None


def make_runnable(op: Any) -> None:
    """A traced ``ops.reshape`` whose target holds sizes the code read from a shape
    (``ops.shape(x)[0]``, None while traced) keeps that target for the shape rule; with
    one such size it runs with -1 there, as the real call runs with the real size."""
    if type(op).__name__ != "Reshape" or not type(op).__module__.startswith("keras"):
        return
    target = getattr(op, "newshape", None)
    if not isinstance(target, (tuple, list)) or None not in target:
        return
    op._shapecheck_target = tuple(target)
    if sum(d is None for d in target) == 1 and -1 not in target:
        op.newshape = tuple(-1 if d is None else d for d in target)


class UnknownSize(TypeError):
    """The user's code read a size this trial left unknown."""


class _Watched(tuple):
    """A KerasTensor's shape during a trial: the user's code may not read a size the
    trial left unknown (past the batch), as it would compute with ``None``."""

    def __getitem__(self, index: Any) -> Any:
        value = tuple.__getitem__(self, index)
        if _by_user() and (value is None if not isinstance(index, slice)
                           else None in tuple.__getitem__(self, index)):
            if isinstance(index, slice) or index not in (0, -len(self)):
                raise UnknownSize("the code reads a size this trial leaves unknown")
        return value

    def __iter__(self) -> Any:
        if _by_user() and None in tuple.__getitem__(self, slice(1, None)):
            raise UnknownSize("the code reads a size this trial leaves unknown")
        return tuple.__iter__(self)


def _by_user() -> bool:
    from shapecheck.script import frames

    name = sys._getframe(2).f_code.co_filename
    return not name.startswith("<") and not name.startswith(frames.SKIP_PREFIXES)


class watch_sizes:
    """While a trial traces with unknown sizes, reading one of them in the user's code
    abandons the trial (the next one knows more sizes)."""

    def __enter__(self) -> None:
        from keras.src.backend.common.keras_tensor import KerasTensor

        self.saved = KerasTensor.__dict__["shape"]
        prop = self.saved

        def getter(t: Any) -> Any:
            shape = prop.fget(t)
            return _Watched(shape) if isinstance(shape, tuple) else shape

        KerasTensor.shape = property(getter, prop.fset)

    def __exit__(self, *exc: Any) -> None:
        from keras.src.backend.common.keras_tensor import KerasTensor

        KerasTensor.shape = self.saved


def where_raised(err: BaseException) -> tuple | None:
    """(path, line) of the innermost frame of ``err``'s traceback in user code."""
    from shapecheck.script import frames

    tb = frames.raised_in_user_code(err)
    if tb is None:
        return None
    return os.path.abspath(tb.tb_frame.f_code.co_filename), tb.tb_lineno


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


def unbuild(model: Any) -> None:
    """Undo a Sequential build that failed: its prepended input layer goes. Layers
    built before the failing one keep their weights, which did not depend on the
    unknown axes (or they would have refused)."""
    from keras.layers import InputLayer

    layers = model._layers
    if layers and isinstance(layers[0], InputLayer):
        model._layers = layers[1:]
    model._functional = None
    model.built = False
    for layer in model._layers:
        if not layer.built:
            unbuild_parts(layer)


def unbuild_parts(layer: Any) -> None:
    """A layer whose build failed may have marked a part built before that part made
    its weights (an RNN cell's `build` calls `Layer.build` first): such a part,
    built but holding no weights, is built again with the layer. A Sequential part
    without an input shape whose build failed forgets the shape it was tried with."""
    from keras import Sequential

    for part in layer._flatten_layers(include_self=False, recursive=True):
        if isinstance(part, Sequential) and getattr(part, "_functional", None) is None:
            unbuild(part)
        elif part.built and not part.weights:
            part.built = False
