"""Record what a user's script builds and calls, by patching Keras in place.

- every Keras graph ``Node`` (a layer or op call on symbolic tensors) gets the
  user's call site (file, line) and a creation number;
- every model built (functional, Sequential, subclassed) is remembered with the
  line that built it;
- ``fit``/``evaluate``/``predict``/``*_on_batch`` become dry runs: recorded,
  nothing trained, a value shaped as Keras's returned (:mod:`shapecheck.script.dryrun`).

Only the child process that runs the user's script installs these patches.
"""

from __future__ import annotations

import collections
import itertools
import sys
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Iterator

from shapecheck.script import frames
from shapecheck.script.frames import Position, user_position, user_site

_SEQ = itertools.count(1)
_ACTIVE: list[Any] = []  # operations whose __call__ is running, innermost last
_TRACING: list[Any] = []  # subclassed models whose `call` is being traced
_TRIAL: list[Any] = []  # non-empty while a trial trace runs: a refused call raises
_NESTED: list[Any] = []  # (layer, Functional) traced inside the current trace
_CONVERTING: list[bool] = []  # non-empty while a tf_keras model's twin is made
_SITES: list[Any] = []  # the user's line for the calls being made, innermost last


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
    feeds: list[Any] = field(default_factory=list)  # shapecheck.data.feeds.Feed, sampled


@dataclass
class Capture:
    models: list[ModelRecord] = field(default_factory=list)
    data_calls: list[DataCall] = field(default_factory=list)
    compiled: dict[int, dict] = field(default_factory=dict)
    failures: list[Any] = field(default_factory=list)  # shapecheck.script.standin.Failure
    recent: Any = field(default_factory=lambda: collections.deque(maxlen=256))  # CallSite
    made_up: DataCall | None = None  # the first dry-run call whose value was made up
    traces: dict[int, Any] = field(default_factory=dict)  # id(model) -> trace.Trace
    steps: list[Any] = field(default_factory=list)  # steps.StepTrace, one per model and step
    declared: list[Any] = field(default_factory=list)  # trace.Declared: compute_output_shape lies
    contracts: list[Any] = field(default_factory=list)  # contracts.Promise: @shapecheck.returns


@dataclass
class CallSite:
    """A user's layer call, kept to explain an error on its line."""

    op: Any
    path: str | None
    line: int | None
    n_outputs: int


CAPTURE = Capture()
INSTALLED = False


def reset() -> Capture:
    """A fresh record (one per script)."""
    global CAPTURE
    from shapecheck.script import broadcasts, datacalls, loops, operands

    CAPTURE = Capture()
    broadcasts.reset()
    loops.reset()
    operands.reset()
    datacalls.reset()
    return CAPTURE


def install() -> Capture:
    """Patch Keras so the script's models and calls are recorded."""
    global INSTALLED
    INSTALLED = True
    import keras  # noqa: F401  (loads keras.src)
    from keras.src.models.functional import Functional
    from keras.src.models.model import Model
    from keras.src.models.sequential import Sequential
    from keras.src.ops.node import Node
    from keras.src.layers.layer import Layer
    from keras.src.ops.operation import Operation

    frames.skip_libraries()

    node_init = Node.__init__

    def init_node(self: Any, *args: Any, **kwargs: Any) -> None:
        node_init(self, *args, **kwargs)
        self._shapecheck_site = _call_site(self.operation, 2)
        if _TRACING:  # sizes read from shapes in a traced `call` are None here
            from shapecheck.script import trace

            trace.make_runnable(self.operation)
        self._shapecheck_seq = next(_SEQ)
        # Made inside another op's call (a mask, a wrapper's inner call): not the user's.
        # A Sequential model building itself on its first call makes its own graph.
        self._shapecheck_internal = any(op is not self.operation
                                        and not isinstance(op, Sequential) for op in _ACTIVE)
        if not self._shapecheck_internal:
            op = getattr(self.operation, "failed_op", self.operation)
            CAPTURE.recent.append(CallSite(op, self._shapecheck_site[0],
                                           self._shapecheck_site[1], len(self.outputs)))

    Node.__init__ = init_node

    def track(cls: type, method: str = "__call__") -> None:
        original = getattr(cls, method)

        def call(self: Any, *args: Any, **kwargs: Any) -> Any:
            outermost = not _ACTIVE
            on_data = False
            if outermost and method == "__call__":
                if not _TRACING:
                    on_data = record_data_call(self, args, kwargs)
                    trace_from_call(self, args, kwargs)
                else:
                    nested = trace_nested(self, args, kwargs)
                    if nested is not None:
                        if _own_step_call(self):
                            _note(self, nested)
                        return nested
            _ACTIVE.append(self)
            failure = None
            try:
                out = original(self, *args, **kwargs)
            except Exception as err:
                failure = (_refused(self, args, kwargs, err) if outermost and not _TRIAL
                           else None)
                if failure is None:
                    if outermost and on_data and not hasattr(err, "_shapecheck_call"):
                        try:  # which call on data raised it, for the script's error
                            err._shapecheck_call = self.name
                        except Exception:
                            pass
                    raise
            finally:
                _ACTIVE.pop()
            if failure is not None:
                from shapecheck.script.standin import make_standin

                return make_standin(self, args, kwargs, failure)
            if outermost and method == "__call__" and not _TRACING:
                check_declared(self, args, kwargs)
            if on_data or method == "__call__" and _own_step_call(self):
                _note(self, out)
            return out

        call.__name__ = method
        setattr(cls, method, call)

    track(Operation)
    track(Operation, "symbolic_call")  # keras.ops functions call it directly
    track(Layer)

    def record_model(cls: type) -> None:
        original = cls.__init__

        def init(self: Any, *args: Any, **kwargs: Any) -> None:
            original(self, *args, **kwargs)
            if getattr(self, "_shapecheck_recorded", False) or _TRACING or _CONVERTING:
                return
            self._shapecheck_recorded = True
            path, line = frames.construction_site(self, 2)
            internal = _inside_sequential_build()
            CAPTURE.models.append(ModelRecord(self, path, line, internal))
            _trace_on_build(self)

        cls.__init__ = init

    record_model(Functional)
    record_model(Sequential)
    record_model(Model)

    layer_init = Layer.__init__

    def init_layer(self: Any, *args: Any, **kwargs: Any) -> None:
        layer_init(self, *args, **kwargs)
        if not _ACTIVE:  # made by the user, not inside another layer
            self._shapecheck_created = user_position(2, outside=self)

    Layer.__init__ = init_layer

    add_loss = Layer.add_loss

    def add_loss_traced(self: Any, loss: Any) -> Any:
        """A loss a traced `call` adds is symbolic: it is not kept (Keras takes only
        tensors with values); its shape was checked as the trace made it."""
        from keras import KerasTensor, tree

        if _TRACING and any(isinstance(t, KerasTensor) for t in tree.flatten(loss)):
            return None
        return add_loss(self, loss)

    Layer.add_loss = add_loss_traced

    from shapecheck.script import datasets, layerweights

    # weights refused while a layer is made or built
    layerweights.install(Layer, lambda failure: CAPTURE.failures.append(failure))
    datasets.install()  # which Keras utility made each dataset, for the hints
    from shapecheck.script import broadcasts, loops

    loops.install()
    broadcasts.install()
    return CAPTURE


def _note(model: Any, out: Any) -> None:
    """Remember ``out`` as ``model``'s output, called on the user's line."""
    from shapecheck.script import operands

    traced = CAPTURE.traces.get(id(model))  # a subclassed model: its graph
    operands.note_outputs(model, out, user_site(3), getattr(traced, "functional", None))


def _own_step_call(layer: Any) -> bool:
    """A model called by the user's own step while the dry run traces it (its output
    meets the targets in the user's code)."""
    from keras import Model

    from shapecheck.script import datacalls

    return bool(datacalls.OWN) and isinstance(layer, Model) and frames.called_by_user(2)


def _refused(op: Any, args: tuple, kwargs: dict, err: Exception) -> Any:
    """Record a user's call on symbolic tensors that Keras refused; None to re-raise."""
    if isinstance(err, (RecursionError, MemoryError)):
        return None
    if isinstance(err, NotImplementedError) and _inside_sequential_build():
        return None  # Sequential.build expects it and leaves the model unbuilt
    from keras import KerasTensor

    from shapecheck.shapes.layers.registry import flatten
    from shapecheck.shapes.refused import Failure, clean_message

    tensors = [t for t in flatten((args, kwargs)) if isinstance(t, KerasTensor)]
    if not tensors:
        return None
    path, line, col, end_col = _call_site(op, 3)
    if path is None:
        return None
    shapes = [tuple(t.shape) for t in tensors]
    for old in CAPTURE.failures:  # Sequential rebuilds itself on every add()
        if old.op is op and old.input_shapes == shapes and old.line == line:
            return old
    failure = Failure(op=op, error_type=type(err).__name__, message=clean_message(err),
                      path=path, line=line, col=col, end_col=end_col,
                      input_shapes=[tuple(t.shape) for t in tensors], inputs=tensors)
    CAPTURE.failures.append(failure)
    return failure


def _call_site(op: Any, skip: int) -> Position:
    """Where the user called ``op``; for a layer that a Sequential model calls
    itself, where the user made the layer (its line in the list or ``add``)."""
    if _SITES and _SITES[-1] is not None:
        return _SITES[-1]
    created = getattr(getattr(op, "failed_op", op), "_shapecheck_created", None)
    if created is not None and created[0] is not None and _inside_sequential_build():
        return created
    return user_position(skip + 1)


def _inside_sequential_build() -> bool:
    frame = sys._getframe(2)
    while frame is not None:
        code = frame.f_code
        if code.co_name == "build" and "sequential" in code.co_filename:
            return True
        frame = frame.f_back
    return False


@contextmanager
def converting() -> Iterator[None]:
    """A model of another Keras being rebuilt in Keras 3: its twin is recorded by
    whoever makes it."""
    _CONVERTING.append(True)
    try:
        yield
    finally:
        _CONVERTING.pop()


@contextmanager
def site(position: Any) -> Iterator[None]:
    """The calls made inside are the user's call at ``position`` (path, line, col, end)."""
    if position is not None and len(position) == 2:
        position = (position[0], position[1], None, None)
    _SITES.append(position)
    try:
        yield
    finally:
        _SITES.pop()


def build_from_data(model: Any, feeds: list[Any]) -> None:
    """Build a Sequential model that has no input shape from the first batch, as
    `fit` does, keeping as named dims the axes no layer needs: Keras builds it at the
    data's sizes but runs it on other sizes of such axes (sequence lengths).

    Tried in turn, the first that every layer accepts: every axis but the batch
    unknown; only the last axis at the data's size; every axis at the data's size
    (what Keras refuses then is recorded as a finding), at once after a first
    `Reshape`."""
    from keras import Sequential

    from shapecheck.script import trace

    if not isinstance(model, Sequential) or getattr(model, "_functional", None) is not None:
        return
    first = next((b.x for f in feeds for b in f.batches if b.x is not None), None)
    shape = getattr(first, "shape", None)
    if shape is None:
        return
    sizes = tuple(shape[1:])
    trials = [(None,) * len(sizes), (None,) * (len(sizes) - 1) + sizes[-1:]]
    if model.layers and type(model.layers[0]).__name__ == "Reshape":
        trials = []  # its target fixes the element count: it needs every size
    for trial in dict.fromkeys(t for t in trials if t != sizes):
        _ACTIVE.append(model)  # a refused call raises, recording nothing
        try:
            model.build((None,) + trial)
        except Exception:
            pass
        finally:
            _ACTIVE.pop()
        if getattr(model, "_functional", None) is not None:
            return
        trace.unbuild(model)
    try:
        model.build((None,) + sizes)
    except Exception:  # what Keras refuses was recorded as a finding
        pass


def _trace_on_build(model: Any) -> None:
    """``model.build(shape)`` by the user traces a subclassed model, after Keras's build."""
    import functools

    from shapecheck.script import trace

    if not trace.is_subclassed(model):
        return
    inner = model.build

    @functools.wraps(inner)
    def build(*args: Any, **kwargs: Any) -> Any:
        out = inner(*args, **kwargs)
        shape = args[0] if args else next(iter(kwargs.values()), None)
        if not _ACTIVE and not _TRACING and shape is not None:
            trace_model(model, trace.spec_of_shapes(shape))
        return out

    try:
        object.__setattr__(model, "build", build)
    except Exception:  # a model that refuses new attributes keeps Keras's build
        pass


def trace_from_call(model: Any, args: tuple, kwargs: dict) -> None:
    """A user's call of a subclassed model on data (``model(x)``) traces it first."""
    from shapecheck.script import trace

    if not trace.is_subclassed(model):
        return
    x = args[0] if args else kwargs.get("inputs", kwargs.get("x"))
    if x is None or not trace.concrete(x):
        return
    spec = trace.spec_of(x)
    if spec is not None:
        trace_model(model, spec)


def record_data_call(layer: Any, args: tuple, kwargs: dict) -> bool:
    """A user's call of a layer or model on data, outside ``fit``: a model's inputs
    become a feed of their own (:mod:`shapecheck.script.datacalls`). Whether it was a
    call on data."""
    from shapecheck.script import datacalls

    seen = datacalls.on_data(layer, args, kwargs)
    if seen is None:
        return False
    if seen.feed is not None:
        CAPTURE.data_calls.append(DataCall(layer, "call", seen.path, seen.line, (), {},
                                           [seen.feed]))
    return True


def trace_step(model: Any, call: DataCall) -> None:
    """Trace the model's own step for ``call`` (once per model and step)."""
    from shapecheck.script import steps

    step = steps.step_to_trace(model, call.method)
    if step is None or any(s.model is model and s.step == step for s in CAPTURE.steps):
        return
    fed = next(((f, b) for f in call.feeds for b in f.batches if b.x is not None), None)
    if fed is None:
        return
    _TRACING.append(model)
    try:
        with quiet():
            done = steps.trace_step(model, call.method, fed[1], (call.path, call.line),
                                    arrays=fed[0].kind == "arrays")
    except Exception:  # our own limits: the step stays unchecked, the script goes on
        done = None
    finally:
        _TRACING.pop()
    if done is not None:
        CAPTURE.steps.append(done)


def _trace_apart(layer: Any, args: tuple, kwargs: dict) -> tuple[tuple, Any] | None:
    """A user's layer called on symbolic tensors, its ``call`` traced on Inputs of its
    own: ``(the call's (args, tensor kwargs, other kwargs), the Functional)``; None
    when its tensors cannot be given as Inputs. A ``compute_output_shape`` that
    disagrees is recorded. Raises what the call raises."""
    from shapecheck.script import trace

    split = trace.split_call(layer, args, kwargs)
    spec = trace.spec_exact((split[0], split[1])) if split is not None else None
    if spec is None:
        return None
    _TRACING.append(layer)
    try:
        functional = trace.trace_call(layer, spec[0], spec[1], split[2], nested=True)
    finally:
        _TRACING.pop()
    declared = trace.declared_mismatch(layer, spec, functional)
    if declared is not None:
        CAPTURE.declared.append(declared)
    return split, functional


def check_declared(layer: Any, args: tuple, kwargs: dict) -> None:
    """A user's layer with its own ``compute_output_shape``, called on symbolic
    tensors: Keras took the declared shape on trust; trace its ``call`` apart (the
    user's graph is left as it is) and record a disagreement."""
    from keras.src import utils

    from shapecheck.script import trace

    if not trace.is_user_layer(layer) or utils.is_default(layer.compute_output_shape):
        return
    try:
        with quiet():
            _trace_apart(layer, args, kwargs)
    except Exception:  # its call cannot be traced apart: Keras's trust stands
        pass


def trace_nested(layer: Any, args: tuple, kwargs: dict) -> Any:
    """Inside a trace, a user's own layer (or subclassed model) is traced too: its
    ``call`` becomes a nested graph whose calls keep their lines. Its outputs; None to
    call the layer as Keras does (its ``call`` cannot be traced on its own)."""
    from keras import tree

    from shapecheck.script import trace

    if not trace.is_user_layer(layer) or any(t is layer for t in _TRACING):
        return None
    before = len(CAPTURE.failures)
    try:
        traced = _trace_apart(layer, args, kwargs)
    except trace.UnknownSize:
        raise  # the trial cannot know what the code computes: the next one may
    except Exception:
        del CAPTURE.failures[before:]
        return None
    if traced is None:
        return None
    (targs, tkwargs, _), functional = traced
    leaves = tree.flatten((targs, tkwargs))
    functional._shapecheck_failures = CAPTURE.failures[before:]
    functional._shapecheck_after = trace.upstream_failure(leaves)
    _NESTED.append((layer, functional))
    return functional(leaves)


def trace_from_data(model: Any, call: DataCall) -> None:
    """Trace a subclassed model on the inputs of every batch sampled for ``call``."""
    from shapecheck.script import trace

    if not trace.is_subclassed(model):
        return
    spec = None
    for feed in call.feeds:
        for batch in feed.batches:
            one = trace.spec_of(batch.x) if batch.x is not None else None
            if one is not None:
                spec = one if spec is None else (trace.merge(spec, one) or spec)
    if spec is not None:
        trace_model(model, spec)


def trace_model(model: Any, spec: Any) -> None:
    """Trace ``model.call`` on inputs of ``spec`` (once; again when later inputs differ
    in a size the first trace fixed). Calls Keras refuses during the trace are recorded
    as the script's own are, at their line inside ``call``."""
    from shapecheck.script import trace

    if spec is None:
        return
    old = CAPTURE.traces.get(id(model))
    if old is not None:
        merged = trace.merge(old.spec, spec)
        if merged is None or merged == old.spec:
            return
        spec = merged
        for f in old.failures:  # the new trace records its own
            if f in CAPTURE.failures:
                CAPTURE.failures.remove(f)
    result = trace.Trace(model, spec, has_call=trace.has_call(model))
    CAPTURE.traces[id(model)] = result
    if not result.has_call:
        return
    candidates = trace.trials(spec)
    for i, trial in enumerate(candidates):
        final = i == len(candidates) - 1
        if not final:
            _TRIAL.append(model)  # a refused call raises: the next trial follows
        _TRACING.append(model)
        _NESTED.clear()
        before = len(CAPTURE.failures)
        try:
            if final:
                result.functional = trace.trace_call(model, (trial,))
            else:
                with trace.watch_sizes():
                    result.functional = trace.trace_call(model, (trial,))
            result.failures = CAPTURE.failures[before:]
            result.nested = list(_NESTED)
            return
        except Exception as err:
            if final:
                result.reason = trace.reason_for(err)
                result.where = trace.where_raised(err)
                del CAPTURE.failures[before:]
        finally:
            _TRACING.pop()
            if not final:
                _TRIAL.pop()
        trace.unbuild_parts(model)


@contextmanager
def quiet() -> Iterator[None]:
    """Analysis while the script's frames are live (a checkpoint, ``os._exit``): the
    ops it makes are not the user's calls, and a call it makes that fails is not a
    finding at the user's line."""
    marker = object()
    _ACTIVE.append(marker)
    try:
        yield
    finally:
        _ACTIVE[:] = [op for op in _ACTIVE if op is not marker]
