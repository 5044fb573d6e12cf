"""Execute a model for real, one layer call at a time, and watch every shape.

Inputs are the sampled batches (arrays of their shapes, dtypes and value
ranges) or, without data, arrays synthesized at chosen sizes of the named
dims.  Each execution is a forward pass and, when the model is compiled and
targets are known, a training step: the compiled loss and its gradient.  No
optimizer is applied, and every variable (weights, normalization statistics,
seed states) is restored afterwards, so the user's model is left as it was.

An error is located on every backend: in the forward pass by the call that raised;
in the loss or the gradient by TensorFlow's op path when the error names one, else by
the error's frames (the layer whose method ran, the layer whose weight a regularizer
was given, the compiled loss and output, the user's innermost line), and for a
gradient by differentiating each call alone, last first.

Nothing here decides what is a finding: the SC8 rules read the results.
"""

from __future__ import annotations

import math
import os
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Iterator, Mapping, Sequence

import numpy as np

from shapecheck.data.generators import user_code
from shapecheck.shapes import dims
from shapecheck.shapes.graph import LayerCall
from shapecheck.verify.backends import (StepFailed, backend, input_gradients, loss_and_gradient,
                                        on_device, pick_device)
from shapecheck.verify.plans import Plan, RunOptions, functional, materialize


@dataclass
class RunError:
    """Where and how an execution failed."""

    stage: str  # "input" | "forward" | "loss" | "gradient"
    call: LayerCall | None  # the call that raised, when known
    error_type: str
    message: str
    input_shapes: list[tuple] = field(default_factory=list)  # observed, at ``call``
    op: str | None = None  # the framework's op path, when the error names one
    loss: str | None = None  # the loss that raised (Keras's name for it), loss stage
    output: str | None = None  # the model output whose loss raised
    raised_at: tuple[str, int] | None = None  # the user's innermost line that raised


@dataclass
class Execution:
    """What one execution showed."""

    plan: Plan
    observed: dict[int, list[tuple]] = field(default_factory=dict)  # call id -> output shapes
    error: RunError | None = None
    stages: list[str] = field(default_factory=list)  # stages that completed
    seconds: float = 0.0


@dataclass
class ModelRun:
    """Every execution of one model, or why there was none."""

    device: str
    executions: list[Execution] = field(default_factory=list)
    skipped: str | None = None
    notes: list[str] = field(default_factory=list)
    backend: str = "tensorflow"  # the Keras backend it ran on

    def to_dict(self, show: Any = None) -> dict:
        show = show or (lambda p: p)
        out = []
        for e in self.executions:
            err = None
            if e.error is not None:
                c = e.error.call
                err = {"stage": e.error.stage, "layer": c.name if c else None,
                       "path": show(c.path) if c else None, "line": c.line if c else None,
                       "type": e.error.error_type, "message": e.error.message,
                       "input_shapes": [list(s) for s in e.error.input_shapes],
                       "op": e.error.op, "loss": e.error.loss, "output": e.error.output,
                       "raised_at": None}
                if e.error.raised_at is not None:
                    err["raised_at"] = {"path": show(e.error.raised_at[0]),
                                        "line": e.error.raised_at[1]}
            out.append({"data": e.plan.label, "dims": dict(e.plan.values),
                        "stages": list(e.stages), "seconds": round(e.seconds, 3),
                        "error": err})
        return {"device": self.device, "backend": self.backend, "skipped": self.skipped,
                "notes": list(self.notes), "executions": out}


def footprint(ctx: Any, values: Mapping[str, int]) -> int:
    """Bytes one training step needs, roughly: weights three times, activations twice."""
    params = sum(int(np.prod(v.shape)) for v in getattr(ctx.model, "variables", []))
    acts = 0
    for call in ctx.calls:
        for s in ctx.out_shapes(call):
            sizes = [dims.evaluate(d, values) for d in s]
            if all(isinstance(v, int) for v in sizes):
                acts += math.prod(sizes)
    return 4 * (3 * params + 2 * acts)


def available_memory() -> int:
    """Half the memory the system says is available now (4 GiB when it cannot say)."""
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024 // 2
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // 2
    except (ValueError, OSError, AttributeError):
        return 4 << 30


def _shape(value: Any) -> tuple:
    return tuple(int(d) if d is not None else None for d in getattr(value, "shape", ()))


def _tensors(args: Any, kwargs: Any) -> list[Any]:
    from keras import tree

    return [v for v in tree.flatten((args, kwargs)) if hasattr(v, "shape")
            and hasattr(v, "dtype")]


class _Failed(Exception):
    def __init__(self, error: RunError) -> None:
        super().__init__(error.message)
        self.error = error


_FUNCTION_NODE = re.compile(r"\{\{function_node [^}]*\}\}\s*")
_OP_TAIL = re.compile(r"\s*\[Op:\w+\](?: name:[ \t]*\S*)?\s*$")


def _clean(err: BaseException) -> str:
    """The error's message without Keras's call banner and TensorFlow's op decorations."""
    from shapecheck.shapes.refused import clean_message

    text = _FUNCTION_NODE.sub("", clean_message(err))
    return "\n".join(_OP_TAIL.sub("", line) for line in text.splitlines()).strip()


def _op(err: BaseException) -> str | None:
    from shapecheck.shapes.refused import clean_message

    return op_path(clean_message(err))


def forward(ctx: Any, x: Any, training: bool, observed: dict[int, list[tuple]],
            keep: dict[int, Any] | None = None) -> list[Any]:
    """Run the graph call by call; the model's flat outputs (every tensor's value, by
    key, into ``keep`` when given).  Raises :class:`_Failed`."""
    from keras import tree

    fn = functional(ctx.model)
    try:
        flat = fn._standardize_inputs(x)
    except Exception as err:
        raise _Failed(RunError("input", None, type(err).__name__, _clean(err),
                               [_shape(v) for v in tree.flatten(x)])) from err
    values: dict[int, Any] = {} if keep is None else keep
    values.update(zip(ctx.graph.inputs, flat))
    for call in ctx.calls:
        if call.knode is None or not call.inputs:
            continue
        args, kwargs = call.knode.arguments.fill_in(values)
        op = call.op
        if "training" in getattr(op, "_call_context_args", ()):
            kwargs["training"] = training
        try:
            out = op(*args, **kwargs)
        except Exception as err:
            raise _Failed(RunError("forward", call, type(err).__name__, _clean(err),
                                   [_shape(v) for v in _tensors(args, kwargs)],
                                   _op(err), raised_at=user_line(err))) from err
        flat_out = tree.flatten(out)
        observed[call.id] = [_shape(v) for v in flat_out]
        for k, v in zip(call.outputs, flat_out):
            values[k] = v
    return [values[k] for k in ctx.graph.outputs]


_NODE = re.compile(r"\{\{node ([^}]+)\}\}")


def op_path(message: str) -> str | None:
    """The op path an error names (``gradient_tape/model/concat3_1/ConcatOffset``)."""
    m = _NODE.search(message)
    if m is None:
        return None
    return next(g for g in m.groups() if g)


def call_for_path(ctx: Any, path: str | None) -> LayerCall | None:
    """The layer call an op path points into: its deepest part naming a layer."""
    if not path:
        return None
    for part in reversed(path.split("/")):
        for name in (part, re.sub(r"_\d+$", "", part)):
            call = ctx.by_name.get(name)
            if call is not None and not call.is_input:
                return call
    return None


def _pack_outputs(ctx: Any, outs: list[Any]) -> Any:
    from keras import tree

    packed = tree.pack_sequence_as(functional(ctx.model)._outputs_struct, outs)
    if isinstance(packed, (list, tuple)) and len(packed) == 1:
        return packed[0]
    return packed


def execute(ctx: Any, plan: Plan) -> Execution:
    """One forward pass, then the loss and its gradient when ``plan.train``."""
    result = Execution(plan)
    start = time.perf_counter()
    model = ctx.model
    x, y = materialize(plan)
    saved = [(v, np.array(v.numpy())) for v in getattr(model, "variables", [])]
    try:
        forward(ctx, x, False, result.observed)
        result.stages.append("forward")
        if y is not None and getattr(model, "compiled", False) and has_loss_to_run(model):
            _train_step(ctx, plan, x, y, result)
    except _Failed as failed:
        result.error = failed.error
    finally:
        for v, value in saved:
            try:
                v.assign(value)
            except Exception:  # a variable that cannot be assigned was not changed
                pass
        result.seconds = time.perf_counter() - start
    return result


def has_loss_to_run(model: Any) -> bool:
    """Whether ``fit`` computes the compiled loss: a loss given to ``compile``, or a
    ``compute_loss`` of the model's own; not a model whose own ``train_step`` computes
    its loss without one (Keras raises "No loss to compute" only when that step asks)."""
    from keras import Model

    if getattr(model, "loss", None) is not None:
        return True
    own_loss = type(model).compute_loss is not Model.compute_loss
    own_step = type(model).train_step is not Model.train_step
    return own_loss or not own_step


def _train_step(ctx: Any, plan: Plan, x: Any, y: Any, result: Execution) -> None:
    """The compiled loss and, when ``plan.train``, its gradient, with the backend's
    tools (:func:`shapecheck.verify.backends.loss_and_gradient`)."""
    model = ctx.model

    def loss_of() -> Any:
        outs = forward(ctx, x, plan.train, {})
        try:
            return model._compute_loss(x=x, y=y, y_pred=_pack_outputs(ctx, outs),
                                       sample_weight=None, training=plan.train)
        except Exception as err:
            raise _Failed(located(ctx, "loss", err, [_shape(v) for v in outs])) from err

    try:
        result.stages += loss_and_gradient(model, loss_of, plan.train)
    except StepFailed as failed:
        stage = "gradient" if failed.stage == "gradient" else "loss"
        if stage == "gradient":
            result.stages.append("loss")
        error = located(ctx, stage, failed.error, [])
        if stage == "gradient" and error.call is None:
            error.call = gradient_culprit(ctx, x, plan.train)
        raise _Failed(error) from failed.error


# --- where a loss or gradient error was raised ---------------------------------------------


@dataclass
class Where:
    """What the frames of an error show: the layer whose code ran, the loss, the user's line."""

    call: LayerCall | None = None
    loss: str | None = None
    output: str | None = None
    line: tuple[str, int] | None = None


def located(ctx: Any, stage: str, err: BaseException, shapes: list[tuple]) -> RunError:
    """A :class:`RunError` for ``err``, raised in ``stage``, at the layer the framework's
    op path names (TensorFlow's graphs) or else the one its frames show."""
    path = _op(err)
    where = locate(ctx, err)
    call = call_for_path(ctx, path) or where.call
    if call is not None and stage == "loss":
        shapes = []  # a layer's own loss (a regularizer): the outputs are not its inputs
    return RunError(stage, call, type(err).__name__, _clean(err), shapes, path,
                    loss=where.loss, output=where.output, raised_at=where.line)


def locate(ctx: Any, err: BaseException) -> Where:
    """Read ``err``'s traceback, innermost frame first (then the errors it came from, such
    as JAX's stack where a primitive was traced): the layer of ``ctx`` whose method ran
    (``self``), the layer whose weight a regularizer was given, the compiled loss and
    output it was computing, and the innermost line of the user's code."""
    where = Where()
    ops = {id(c.op): c for c in ctx.calls if not c.is_input}
    for e in _chain(err):
        for frame, line in _frames(e):
            if where.line is None and user_code(frame.f_code.co_filename):
                where.line = (os.path.abspath(frame.f_code.co_filename), line)
            try:
                local = frame.f_locals
            except Exception:  # a frame that cannot show its locals
                continue
            me = local.get("self")
            name = frame.f_code.co_name
            if where.call is None:
                if me is not None and id(me) in ops:
                    where.call = ops[id(me)]
                elif name == "_get_regularization_losses" and "variable" in local:
                    where.call = _owner(ctx, local["variable"])
            if where.loss is None and name == "call" and type(me).__name__ == "CompileLoss":
                where.loss, where.output = _which_loss(me, local.get("loss_fn"))
    return where


def _chain(err: BaseException) -> list[BaseException]:
    out: list[BaseException] = []
    e: BaseException | None = err
    while e is not None and len(out) < 8 and all(e is not o for o in out):
        out.append(e)
        e = e.__cause__ or e.__context__
    return out


def _frames(err: BaseException) -> list[tuple[Any, int]]:
    out = []
    tb = err.__traceback__
    while tb is not None:
        out.append((tb.tb_frame, tb.tb_lineno))
        tb = tb.tb_next
    return out[::-1]


def user_line(err: BaseException) -> tuple[str, int] | None:
    """The innermost line of the user's code in ``err``'s traceback (or its causes')."""
    for e in _chain(err):
        for frame, line in _frames(e):
            if user_code(frame.f_code.co_filename):
                return os.path.abspath(frame.f_code.co_filename), line
    return None


def _owner(ctx: Any, variable: Any) -> LayerCall | None:
    """The innermost layer call of ``ctx`` whose layer holds ``variable``."""
    best, count = None, 0
    for c in ctx.calls:
        weights = getattr(c.op, "weights", None) or []
        if not c.is_input and any(w is variable for w in weights) and (
                best is None or len(weights) < count):
            best, count = c, len(weights)
    return best


def _which_loss(compiled: Any, loss_fn: Any) -> tuple[str | None, str | None]:
    """``(loss name, output name)`` of ``loss_fn`` among a ``CompileLoss``'s losses."""
    if loss_fn is None:
        return None, None
    name = getattr(loss_fn, "name", None) or type(loss_fn).__name__
    for entry in getattr(compiled, "_flat_losses", None) or []:
        if len(entry) > 3 and entry[1] is loss_fn:
            return name, str(entry[3])
    return name, None


def _is_float(value: Any) -> bool:
    from keras import backend as K

    if not (hasattr(value, "shape") and hasattr(value, "dtype")):
        return False
    try:
        return K.is_float_dtype(K.standardize_dtype(value.dtype))
    except (ValueError, TypeError):
        return False


class _NotProbed(Exception):
    """A call's forward pass, alone under the gradient tools, did not run."""


def gradient_culprit(ctx: Any, x: Any, training: bool) -> LayerCall | None:
    """The call whose own gradient fails, last call first (the order of the backward
    pass): each call is differentiated alone, at the values a forward pass gave it, with
    respect to its floating inputs; it fails when that raises or gives an input a gradient
    of another shape (a custom gradient that returns the wrong shape)."""
    from keras import ops, tree

    values: dict[int, Any] = {}
    try:
        forward(ctx, x, training, {}, keep=values)
    except Exception:  # the forward pass ran before; it should not fail now
        return None
    for call in reversed(ctx.calls):
        if call.knode is None or not call.inputs or not any(
                _is_float(values.get(k)) for k in call.outputs):
            continue
        args, kwargs = call.knode.arguments.fill_in(values)
        if "training" in getattr(call.op, "_call_context_args", ()):
            kwargs["training"] = training
        leaves = tree.flatten((args, kwargs))
        slots = [i for i, v in enumerate(leaves) if _is_float(v)]
        if not slots:
            continue
        try:  # the model's inputs may still be NumPy arrays
            leaves = [ops.convert_to_tensor(v) if i in slots else v
                      for i, v in enumerate(leaves)]
        except Exception:
            continue

        def summed(inputs: list[Any], call: LayerCall = call, args: Any = args,
                   kwargs: Any = kwargs, leaves: list = leaves, slots: list = slots) -> Any:
            flat = list(leaves)
            for i, t in zip(slots, inputs):
                flat[i] = t
            a, k = tree.pack_sequence_as((args, kwargs), flat)
            try:
                outs = [o for o in tree.flatten(call.op(*a, **k)) if _is_float(o)]
            except Exception as err:  # not the gradient: this call cannot be probed alone
                raise _NotProbed() from err
            if not outs:
                raise _NotProbed()
            total = ops.sum(ops.cast(outs[0], "float32"))
            for o in outs[1:]:
                total = total + ops.sum(ops.cast(o, "float32"))
            return total

        try:
            shapes = input_gradients(summed, [leaves[i] for i in slots])
        except _NotProbed:
            continue
        except Exception:
            return call
        if any(g is not None and tuple(g) != _shape(leaves[i]) for g, i in zip(shapes, slots)):
            return call
    return None


def run_model(ctx: Any, plans: list[Plan], options: RunOptions,
              notes: Sequence[str] = ()) -> ModelRun:
    """Execute ``plans`` on the chosen device, within the time and memory limits."""
    device, described = pick_device(options.device)
    run = ModelRun(described, notes=list(notes), backend=backend())
    limit = options.memory_limit or available_memory()
    deadline = time.monotonic() + options.timeout
    for plan in plans:
        need = footprint(ctx, plan.values)
        if need > limit:
            run.notes.append(f"{plan.label}: not executed, it needs about "
                             f"{_gib(need)} and the limit is {_gib(limit)}")
            continue
        left = deadline - time.monotonic()
        if left <= 0:
            run.notes.append(f"{plan.label}: not executed, the run's time limit "
                             f"({options.timeout:g} s) was spent")
            continue
        box: list[Execution] = []

        def work(plan: Plan = plan) -> None:
            with on_device(device):
                box.append(execute(ctx, plan))

        worker = threading.Thread(target=work, daemon=True, name="shapecheck-run")
        worker.start()
        worker.join(left)
        if not box:
            run.notes.append(f"{plan.label}: stopped after {options.timeout:g} s "
                             "(the run's time limit)")
            break
        run.executions.append(box[0])
    if not run.executions and run.skipped is None:
        run.skipped = "; ".join(run.notes[len(notes):]) or "nothing to execute"
    return run


def _gib(n: int) -> str:
    return f"{n / (1 << 30):.1f} GiB"


def iter_mismatches(ctx: Any, execution: Execution) -> Iterator[tuple[LayerCall, int, tuple,
                                                                       tuple, tuple]]:
    """``(call, output index, inferred, expected sizes, observed)`` where they differ."""
    values = execution.plan.values
    for call in ctx.calls:
        got = execution.observed.get(call.id)
        if got is None:
            continue
        for i, (inferred, seen) in enumerate(zip(ctx.out_shapes(call), got)):
            want = tuple(dims.evaluate(d, values) for d in inferred)
            if len(want) != len(seen) or any(w is not None and w != s
                                             for w, s in zip(want, seen)):
                yield call, i, inferred, want, seen
