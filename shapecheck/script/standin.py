"""Stand-ins for layer calls that Keras refused while a script built its model.

When a layer or op call on symbolic tensors raises, capture records the
failure and returns the output this module makes instead: KerasTensors of the
best shape the shape rules can give, wired into the graph by a
:class:`StandIn` operation.  The script goes on, so later errors in the same
script are found too, and the model it builds can still be checked.
"""

from __future__ import annotations

from typing import Any

from shapecheck.shapes.refused import Failure, fit_rank


def _keras_tensors(obj: Any) -> list[Any]:
    from keras import KerasTensor

    from shapecheck.shapes.layers.registry import flatten

    return [t for t in flatten(obj) if isinstance(t, KerasTensor)]


def guess_outputs(op: Any, args: tuple, kwargs: dict) -> Any:
    """Nested shapes (tuples with None) for ``op``'s outputs, from the shape rules."""
    from shapecheck.shapes import dims
    from shapecheck.shapes.infer import Scope
    from shapecheck.shapes.layers.registry import Sym, find_rule

    scope = Scope()

    def to_sym(obj: Any) -> Any:
        if isinstance(obj, (list, tuple)):
            items = [to_sym(o) for o in obj]
            return items if isinstance(obj, list) else tuple(items)
        if isinstance(obj, dict):
            return {k: to_sym(v) for k, v in obj.items()}
        if _is_keras_tensor(obj):
            return Sym(tuple(scope.new_dim("d", "unknown") if d is None else int(d)
                             for d in obj.shape), str(obj.dtype))
        return obj

    def to_keras(result: Any) -> Any:
        if isinstance(result, tuple) and all(_dimlike(d) for d in result):
            # a size below 1 (a window larger than its axis) is unknown, not invalid
            return tuple(d if isinstance(d, int) and d >= 1 else None
                         for d in map(dims.norm, result))
        if isinstance(result, Sym):
            return to_keras(result.shape)
        if isinstance(result, (list, tuple)):
            return [to_keras(r) for r in result]
        if isinstance(result, dict):
            return {k: to_keras(v) for k, v in result.items()}
        raise TypeError(result)

    tensors = _keras_tensors((args, kwargs))
    if type(op).__name__ == "Reshape" and tensors:  # what the user asked for
        target = tuple(None if t == -1 else int(t) for t in op.target_shape)
        return (tensors[0].shape[0],) + target
    fn = find_rule(op)
    sym_args, sym_kwargs = to_sym(args), to_sym(kwargs)
    if fn is not None and tensors:
        from shapecheck.shapes.layers.registry import Call

        def attempt(a: tuple) -> Any:
            return to_keras(fn(Call(op=op, args=a, kwargs=sym_kwargs, scope=scope,
                                    layer=getattr(op, "name", "op"))))

        try:
            return attempt(sym_args)
        except Exception:  # ShapeError, or a rule that cannot cope
            pass
        fixed = fit_rank(op, sym_args)
        if fixed is not None:
            try:
                return attempt(fixed)
            except Exception:
                pass
    if not tensors:
        return (None,)
    return tuple(tensors[0].shape)


def _is_keras_tensor(obj: Any) -> bool:
    from keras import KerasTensor

    return isinstance(obj, KerasTensor)


def _dimlike(d: Any) -> bool:
    from shapecheck.shapes.layers.registry import is_dim

    return is_dim(d)


def make_standin(op: Any, args: tuple, kwargs: dict, failure: Failure) -> Any:
    """Outputs for a refused call, wired into the graph through a :class:`StandIn`."""
    from keras import KerasTensor

    try:
        guess = guess_outputs(op, args, kwargs)
    except Exception:
        guess = None
    tensors = _keras_tensors((args, kwargs))
    dtype = str(tensors[0].dtype) if tensors else "float32"
    if guess is None:
        guess = tuple(tensors[0].shape) if tensors else (None,)

    def build(g: Any) -> Any:
        if isinstance(g, tuple):
            return KerasTensor(g, dtype=dtype)
        if isinstance(g, dict):
            return {k: build(v) for k, v in g.items()}
        return [build(x) for x in g]

    try:
        specs = build(guess)
    except Exception:  # the guess is not a valid shape: pass the input through
        guess = tuple(tensors[0].shape) if tensors else (None,)
        specs = build(guess)
    from keras import tree

    failure.outputs = [tuple(t.shape) for t in tree.flatten(specs)]
    standin = _standin_class()(op, failure, specs)
    return standin.symbolic_call(*args, **kwargs)


_CLASS: Any = None


def _standin_class() -> Any:
    global _CLASS
    if _CLASS is not None:
        return _CLASS
    from keras.src.ops.operation import Operation

    class StandIn(Operation):
        """Takes the place of a call Keras refused; never run."""

        def __init__(self, op: Any, failure: Failure, specs: Any) -> None:
            super().__init__(name=f"{getattr(op, 'name', 'op')}_refused")
            self.failed_op = op
            self.failure = failure
            self._specs = specs

        def compute_output_spec(self, *args: Any, **kwargs: Any) -> Any:
            return self._specs

        def call(self, *args: Any, **kwargs: Any) -> Any:
            raise RuntimeError(
                f"`{getattr(self.failed_op, 'name', '?')}` could not be built: "
                f"{self.failure.message}")

    _CLASS = StandIn
    return StandIn


def is_standin(op: Any) -> bool:
    return _CLASS is not None and isinstance(op, _CLASS)
