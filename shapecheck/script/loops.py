"""Hand-written training loops as dry runs.

- ``optimizer.apply`` / ``apply_gradients`` are recorded and change no weight
  (the optimizer is built and counts its iterations, as Keras's would);
- each place that trains (an ``apply`` outside ``tf.function``, or a call of a
  ``tf.function`` whose trace applied gradients) counts its steps; the first
  time one would run its step ``limit + 1``, the script stops as finished
  (:class:`LoopStopped`), and the report says after how many steps of which loop;
- the variables of every model called on data are put back as they were when the
  script stops or ends (a forward pass in training mode moves a BatchNormalization's
  statistics, a stateful RNN's states);
- a ``tf.TensorArray`` written in a loop is stacked with its new axis named after
  that loop (``range(A_STEPS)`` gives ``A_STEPS``), for the findings' words.
"""

from __future__ import annotations

import ast
import functools
import os
import sys
import weakref
from dataclasses import dataclass, field
from typing import Any

from shapecheck.script import frames

from shapecheck.script.protocol import DEFAULT_STEPS, STEPS_ENV


class LoopStopped(BaseException):
    """Raised in the script where its training loop has run its dry-run steps."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class Loop:
    """A ``for`` or ``while`` statement of the user's code."""

    path: str
    line: int
    count: str | None  # what it iterates over, in the user's words: "A_STEPS", "epochs"


@dataclass
class State:
    limit: int = DEFAULT_STEPS
    counts: dict[tuple, int] = field(default_factory=dict)  # training place -> steps run
    saved: dict[int, tuple[Any, Any]] = field(default_factory=dict)  # id(var) -> (var, value)
    layers: set[int] = field(default_factory=set)  # id of each layer whose variables are saved
    functions: list[Any] = field(default_factory=list)  # tf.functions running, innermost last
    stopped: tuple | None = None  # (steps run, path, line, "loop" | "training step")
    stacked: Any = field(default_factory=weakref.WeakValueDictionary)  # id -> tensor
    axis_names: dict[int, list[str]] = field(default_factory=dict)  # id -> leading names
    stacks: dict[tuple, dict] = field(default_factory=dict)  # (path, line) -> its record


STATE = State()


def reset(limit: int | None = None) -> State:
    """A fresh record for one script; ``limit`` from the environment by default."""
    global STATE
    if limit is None:
        try:
            limit = max(1, int(os.environ.get(STEPS_ENV, DEFAULT_STEPS)))
        except ValueError:
            limit = DEFAULT_STEPS
    STATE = State(limit=limit)
    return STATE


# --- where the loop is -----------------------------------------------------------------

@functools.lru_cache(maxsize=64)
def _loops_in(path: str) -> tuple[tuple[int, int, str | None], ...]:
    """``(first line, last line, count)`` of every loop statement in ``path``."""
    tree = parsed(path)
    if tree is None:
        return ()
    out = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.For, ast.AsyncFor)):
            out.append((node.lineno, node.end_lineno or node.lineno, _count(node.iter)))
        elif isinstance(node, ast.While):
            out.append((node.lineno, node.end_lineno or node.lineno, None))
    return tuple(out)


def _count(it: ast.expr) -> str | None:
    """The number of steps a ``for`` makes, in the user's words, when it reads simply:
    ``range(N)`` gives ``N``; ``range(0, N)`` too; ``enumerate(data)`` and ``data``
    give ``len(data)``."""
    if isinstance(it, ast.Call) and isinstance(it.func, ast.Name):
        if it.func.id == "range" and len(it.args) == 1 and not it.keywords:
            return ast.unparse(it.args[0])
        if it.func.id == "range" and len(it.args) == 2 and \
                isinstance(it.args[0], ast.Constant) and it.args[0].value == 0:
            return ast.unparse(it.args[1])
        if it.func.id in ("enumerate", "zip") and it.args:
            return f"len({ast.unparse(it.args[0])})"
        return None
    if isinstance(it, (ast.Name, ast.Attribute)):
        return f"len({ast.unparse(it)})"
    return None


def loop_at(path: str, line: int) -> Loop | None:
    """The innermost loop of ``path`` whose body holds ``line``."""
    best = None
    for first, last, count in _loops_in(path):
        if first < line <= last and (best is None or first > best[0]):
            best = (first, count)
    return Loop(path, best[0], best[1]) if best is not None else None


def enclosing_loop(skip: int = 1) -> Loop | None:
    """The innermost loop around the current call, in the user's frames from the
    innermost out (a step function called from a loop: that loop)."""
    for frame in frames.user_frames(skip + 1):
        loop = loop_at(*frames.original(os.path.abspath(frame.f_code.co_filename),
                                        frame.f_lineno))
        if loop is not None:
            return loop
    return None


# --- counting the steps ----------------------------------------------------------------

def _place(skip: int) -> tuple[str | None, int | None]:
    return frames.user_site(skip + 1)


def _before_step(place: tuple) -> None:
    """Stop the script when ``place`` has run its steps."""
    done = STATE.counts.get(place, 0)
    if done >= STATE.limit:
        loop = enclosing_loop(1)
        STATE.stopped = ((done, loop.path, loop.line, "loop") if loop is not None
                         else (done, place[0], place[1], "training step"))
        restore()
        raise LoopStopped(stopped_text(lambda p: p) or "")


def _count_step(place: tuple) -> None:
    STATE.counts[place] = STATE.counts.get(place, 0) + 1


def stopped_text(show: Any) -> str | None:
    """"stopped after 2 steps of the loop at train.py:41", paths as ``show`` gives them."""
    if STATE.stopped is None:
        return None
    done, path, line, what = STATE.stopped
    where = f" at {show(path)}:{line}" if path else ""
    return f"stopped after {done} step{'s' if done != 1 else ''} of the {what}{where}"


# --- weights ---------------------------------------------------------------------------

def remember(layer: Any) -> None:
    """Keep the values of ``layer``'s variables (once) to put back at the end."""
    if id(layer) in STATE.layers:
        return
    STATE.layers.add(id(layer))
    try:
        variables = list(layer.variables)
    except Exception:  # a layer that cannot list its variables keeps them as they go
        return
    for v in variables:
        if id(v) in STATE.saved:
            continue
        try:
            STATE.saved[id(v)] = (v, _value(v))
        except Exception:
            continue


def _value(v: Any) -> Any:
    import numpy as np

    return np.array(v.numpy() if hasattr(v, "numpy") else v, copy=True)


def restore() -> None:
    """Put every remembered variable back as it was."""
    for v, value in list(STATE.saved.values()):
        try:
            v.assign(value)
        except Exception:
            continue


# --- patches ---------------------------------------------------------------------------

def install() -> None:
    """Patch Keras's optimizers (and TensorFlow's functions and TensorArrays when
    TensorFlow is loaded)."""
    from keras.src.optimizers import base_optimizer

    cls = base_optimizer.BaseOptimizer
    if getattr(cls.apply, "_shapecheck", False):
        return
    cls.apply = _dry_apply(cls.apply)
    if "tensorflow" in sys.modules:
        _patch_tensorflow()


def _inside_tf_function() -> bool:
    tf = sys.modules.get("tensorflow")
    try:
        return tf is not None and bool(tf.inside_function())
    except Exception:
        return False


def _dry_apply(original: Any) -> Any:
    def apply(self: Any, grads: Any, trainable_variables: Any = None) -> Any:
        """Record the step; build the optimizer and count its iteration; update nothing."""
        if _inside_tf_function():
            if STATE.functions:  # the step runs when the function is called
                STATE.functions[0]._shapecheck_trains = True
        else:
            place = _place(1)
            _before_step(place)
            _count_step(place)
        grads = list(grads)
        if not grads:
            return None
        if trainable_variables is not None and not self.built:
            from keras.src import backend

            with backend.name_scope(self.name, caller=self):
                self.build(list(trainable_variables))
            self.built = True
        try:
            self._iterations.assign_add(1)
        except Exception:  # an optimizer without a counter: nothing to count
            pass
        return None

    apply._shapecheck = True
    apply.__doc__ = original.__doc__
    return apply


def _patch_tensorflow() -> None:
    from tensorflow.python.eager.polymorphic_function import polymorphic_function as pf
    from tensorflow.python.ops import tensor_array_ops

    call = pf.Function.__call__

    def function_call(self: Any, *args: Any, **kwargs: Any) -> Any:
        if STATE.functions or _inside_tf_function():
            return call(self, *args, **kwargs)
        place = (*_place(1), id(self))
        if getattr(self, "_shapecheck_trains", False):
            _before_step(place)
        STATE.functions.append(self)
        try:
            out = call(self, *args, **kwargs)
        finally:
            STATE.functions.pop()
        if getattr(self, "_shapecheck_trains", False):
            _count_step(place)
        return out

    pf.Function.__call__ = function_call

    _map_autograph()
    ta = tensor_array_ops.TensorArray
    write, stack = ta.write, ta.stack

    def ta_write(self: Any, index: Any, value: Any, name: Any = None) -> Any:
        out = write(self, index, value, name=name)
        loop = enclosing_loop(1) if frames.called_by_user(1) else None
        if loop is not None and loop.count:
            for arr in (self, out):
                try:
                    arr._shapecheck_loop = loop
                    arr._shapecheck_inner = axis_names(value)
                except Exception:
                    pass
        return out

    def ta_stack(self: Any, name: Any = None) -> Any:
        out = stack(self, name=name)
        loop = getattr(self, "_shapecheck_loop", None)
        if loop is not None and frames.called_by_user(1):
            stacked(out, [loop.count, *getattr(self, "_shapecheck_inner", [])])
        return out

    import tensorflow as tf

    keep = tf.autograph.experimental.do_not_convert  # AutoGraph runs them as they are
    ta.write, ta.stack = keep(ta_write), keep(ta_stack)

    tf_stack = tf.stack

    @functools.wraps(tf_stack)
    def stack_list(values: Any, axis: int = 0, name: str = "stack") -> Any:
        out = tf_stack(values, axis=axis, name=name)
        if axis == 0 and isinstance(values, list) and values and frames.called_by_user(1):
            path, line = _place(1)
            count = list_loop(path, line) if path else None
            if count:
                stacked(out, [count, *axis_names(values[0])])
        return out

    tf.stack = keep(stack_list)


def _map_autograph() -> None:
    """Each file AutoGraph writes for a ``tf.function`` gets its lines mapped to the
    user's, so a call inside the function is placed at the user's line."""
    from tensorflow.python.autograph.pyct import transpiler

    transform = transpiler.PyToPy.transform_function

    def transform_function(self: Any, fn: Any, user_context: Any) -> Any:
        out = transform(self, fn, user_context)
        try:
            module, source_map = out[1], out[2]
            filename = os.path.abspath(module.__file__)
            frames.note_generated(filename, {
                loc.lineno: (os.path.abspath(origin.loc.filename), origin.loc.lineno)
                for loc, origin in source_map.items()
                if os.path.abspath(loc.filename) == filename})
        except Exception:  # lines left as AutoGraph wrote them
            pass
        return out

    transpiler.PyToPy.transform_function = transform_function


def stacked(tensor: Any, names: list[str]) -> None:
    """``tensor`` stacks a loop's steps: its leading axes count the steps of the loops
    ``names`` (outer first). Recorded for the report at the user's line."""
    try:
        STATE.stacked[id(tensor)] = tensor
    except TypeError:  # no weak reference to it: not named
        return
    STATE.axis_names[id(tensor)] = list(names)
    path, line = _place(2)
    shape = getattr(tensor, "shape", None)
    if path is None or shape is None or (path, line) in STATE.stacks:
        return
    try:
        sizes = [None if d is None else int(d) for d in shape]
    except (TypeError, ValueError):
        return
    named: list[Any] = list(names) + sizes[len(names):]
    STATE.stacks[(path, line)] = {"path": path, "line": line, "shape": named,
                                  "dims": {n: s for n, s in zip(names, sizes)
                                           if s is not None}}


def axis_names(tensor: Any) -> list[str]:
    """The loop names of the leading axes of a stacked ``tensor`` (outer first)."""
    if STATE.stacked.get(id(tensor)) is tensor:
        return list(STATE.axis_names.get(id(tensor), []))
    return []


def axis_name(tensor: Any) -> str | None:
    """The loop name of axis 0 of a stacked ``tensor``, if it is one."""
    names = axis_names(tensor)
    return names[0] if names else None


def list_loop(path: str, line: int) -> str | None:
    """For ``tf.stack(outs)`` on ``line``: the count of the loop (in the same function)
    whose body appends to ``outs``."""
    tree = parsed(path)
    if tree is None:
        return None
    call = next((n for n in ast.walk(tree) if isinstance(n, ast.Call) and n.lineno == line
                 and n.args and isinstance(n.args[0], ast.Name)
                 and ast.unparse(n.func).endswith("stack")), None)
    if call is None:
        return None
    name = call.args[0].id
    best = None
    for node in ast.walk(tree):
        if not isinstance(node, (ast.For, ast.AsyncFor)) or node.lineno > line:
            continue
        appends = any(isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)
                      and n.func.attr in ("append", "extend")
                      and isinstance(n.func.value, ast.Name) and n.func.value.id == name
                      for n in ast.walk(node))
        if appends and (best is None or node.lineno > best.lineno):
            best = node
    return _count(best.iter) if best is not None else None


@functools.lru_cache(maxsize=64)
def parsed(path: str) -> ast.Module | None:
    """The user's file ``path`` parsed (once); None when it cannot be read."""
    import linecache

    try:  # through linecache: a notebook's lines are registered there
        lines = linecache.getlines(path)
        return ast.parse("".join(lines)) if lines else None
    except (OSError, SyntaxError, ValueError, UnicodeDecodeError):
        return None


def stacks_report(show: Any) -> list[dict]:
    """The tensors stacked over loops, for the report: path, line, shape, dims."""
    return [{**r, "path": show(r["path"])} for r in STATE.stacks.values()]
