"""Registry of per-layer shape rules.

A rule is a function ``rule(call: Call) -> tuple | list`` that returns the
symbolic output shape of one layer or op call: a tuple of dims for a single
output, a list of outputs (each a tuple or a nested list) for several, in the
order Keras flattens them.  Rules read the layer's attributes and never call
Keras; when a call would fail in Keras they raise :class:`ShapeError`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from shapecheck.shapes import dims
from shapecheck.shapes.dims import Dim



class ShapeError(Exception):
    """The call is invalid for every size of the named dims (Keras would raise)."""

    def __init__(self, message: str, *, expected: str | None = None,
                 got: str | None = None) -> None:
        super().__init__(message)
        self.expected = expected
        self.got = got


@dataclass(frozen=True)
class Sym:
    """A symbolic tensor as rules see it: shape and dtype."""

    shape: tuple
    dtype: str = "float32"

    @property
    def rank(self) -> int:
        return len(self.shape)


@dataclass
class Call:
    """One call of a layer or op, with tensors replaced by :class:`Sym`."""

    op: Any
    args: tuple
    kwargs: dict
    scope: Any
    layer: str  # the name findings and constraints are attributed to
    _tensors: list[Sym] | None = field(default=None, repr=False)

    @property
    def tensors(self) -> list[Sym]:
        """Every tensor among the positional arguments, flattened, in order."""
        if self._tensors is None:
            self._tensors = [s for s in flatten(self.args) if isinstance(s, Sym)]
        return self._tensors

    @property
    def x(self) -> tuple:
        """Shape of the first tensor argument."""
        return self.tensors[0].shape

    @property
    def inputs(self) -> list[tuple]:
        """Shapes of all positional tensor arguments (merge layers' list)."""
        return [t.shape for t in self.tensors]

    def arg(self, index: int, name: str, default: Any = None) -> Any:
        """A call argument by position or keyword."""
        if len(self.args) > index:
            return self.args[index]
        return self.kwargs.get(name, default)

    def require_equal(self, a: Dim, b: Dim, reason: str) -> Dim:
        """Record that the call needs ``a == b``; returns the dim to use."""
        return self.scope.require_equal(a, b, self.layer, reason)

    def require_positive(self, d: Dim, reason: str) -> Dim:
        """Record that ``d >= 1`` is needed (an axis shrunk by a window)."""
        return self.scope.require_positive(d, self.layer, reason)

    def runtime_output(self, index: int, why: str) -> None:
        """Output ``index`` as returned is the run-time shape, where Keras declares another
        at build time (its own inconsistency): the declaration must not replace it."""
        self.scope.runtime_outputs.setdefault(self.layer, {})[index] = why

    def fresh(self, hint: str, origin: str) -> Dim:
        """A new named dim (a size the layer decides at run time)."""
        return self.scope.new_dim(hint, origin)

    def infer(self, op: Any, *args: Any, **kwargs: Any) -> Any:
        """Output shapes of an inner layer (wrappers, cells, nested models)."""
        return self.scope.apply(op, args, kwargs, layer=self.layer)


def shape_of(obj: Any) -> tuple | None:
    """The shape of a tensor argument: a :class:`Sym`, or a concrete array-like."""
    if isinstance(obj, Sym):
        return obj.shape
    shape = getattr(obj, "shape", None)
    if shape is None:
        return None
    try:
        return tuple(dims.norm(d) for d in tuple(shape))
    except TypeError:
        return None


def first_parameter(op: Any) -> str | None:
    """The name of the first positional parameter of ``op.call``."""
    import inspect

    try:
        params = list(inspect.signature(op.call).parameters.values())
    except (TypeError, ValueError, AttributeError):
        return None
    for p in params:
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD):
            return p.name
    return None


def require_rank(call: Call, rank: int) -> tuple:
    """The first input's shape; ShapeError unless its rank is ``rank``."""
    x = call.x
    if len(x) != rank:
        raise ShapeError(
            f"{type(call.op).__name__} expects a rank-{rank} input; got rank "
            f"{len(x)} {dims.fmt_shape(x)}",
            expected=f"rank {rank}", got=f"rank {len(x)}")
    return x


Rule = Callable[[Call], Any]
_RULES: dict[str, Rule] = {}
# Methods whose override in a subclass means the base rule no longer holds.
_SHAPE_METHODS = ("call", "compute_output_shape", "compute_output_spec")


def rule(*keys: str) -> Callable[[Rule], Rule]:
    """Register a rule for ``layers.Name`` or ``ops.Name`` (Keras class names)."""

    def deco(fn: Rule) -> Rule:
        for key in keys:
            if key in _RULES:
                raise ValueError(f"duplicate shape rule for {key}")
            _RULES[key] = fn
        return fn

    return deco


def family(cls: type) -> str:
    module = cls.__module__
    if ".ops." in module:
        return "ops"
    if ".models." in module:
        return "models"
    return "layers"


def _overrides(cls: type, base: type) -> bool:
    for attr in _SHAPE_METHODS:
        for klass in cls.__mro__:
            if klass is base:
                break
            if attr in vars(klass):
                return True
    return False


def find_rule(op: Any) -> Rule | None:
    """The rule for ``op``'s class, or for a Keras base class it does not reshape."""
    _load_rules()
    cls = type(op)
    for klass in cls.__mro__:
        if not klass.__module__.startswith("keras."):
            continue
        fn = _RULES.get(f"{family(klass)}.{klass.__name__}")
        if fn is not None:
            if klass is not cls and _overrides(cls, klass):
                return None
            return fn
    return None


def known_keys() -> list[str]:
    _load_rules()
    return sorted(_RULES)


_LOADED = False


def _load_rules() -> None:
    global _LOADED
    if _LOADED:
        return
    _LOADED = True
    import importlib
    import pkgutil

    import shapecheck.shapes.layers as pkg

    for info in pkgutil.iter_modules(pkg.__path__):
        if info.name != "registry" and not info.name.startswith("_"):
            importlib.import_module(f"shapecheck.shapes.layers.{info.name}")


def flatten(obj: Any) -> list[Any]:
    """Flatten lists, tuples and dicts (dicts by sorted key, as Keras does)."""
    out: list[Any] = []
    stack = [obj]
    while stack:
        item = stack.pop()
        if isinstance(item, Sym):
            out.append(item)
        elif isinstance(item, dict):
            stack.extend(item[k] for k in reversed(sorted(item)))
        elif isinstance(item, (list, tuple)):
            stack.extend(reversed(item))
        else:
            out.append(item)
    return out


def flatten_shapes(result: Any) -> list[tuple]:
    """Flatten a rule's result into a list of output shapes."""
    if isinstance(result, tuple) and all(is_dim(d) for d in result):
        return [tuple(dims.norm(d) for d in result)]
    if isinstance(result, Sym):
        return [result.shape]
    if isinstance(result, dict):
        return [s for k in sorted(result) for s in flatten_shapes(result[k])]
    if isinstance(result, (list, tuple)):
        return [s for item in result for s in flatten_shapes(item)]
    raise TypeError(f"shape rule returned {result!r}")


def is_dim(d: Any) -> bool:
    """Whether ``d`` is a dim: an int, a named dim or expression, or None."""
    try:
        dims.norm(d)
    except TypeError:
        return False
    return True
