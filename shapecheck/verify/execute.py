"""Execute a model for real, one layer call at a time, and watch every shape.

Inputs are the sampled batches (arrays of their shapes, dtypes and value
ranges) or, without data, arrays synthesized at chosen sizes of the named
dims.  Each execution is a forward pass and, when the model is compiled and
targets are known, a training step: the compiled loss and its gradient.  No
optimizer is applied, and every variable (weights, normalization statistics,
seed states) is restored afterwards, so the user's model is left as it was.

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

from shapecheck.shapes import dims
from shapecheck.shapes.graph import LayerCall
from shapecheck.verify.backends import (StepFailed, backend, loss_and_gradient, on_device,
                                        pick_device)
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
                       "op": e.error.op}
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


def forward(ctx: Any, x: Any, training: bool, observed: dict[int, list[tuple]]) -> list[Any]:
    """Run the graph call by call; the model's flat outputs.  Raises :class:`_Failed`."""
    from keras import tree

    fn = functional(ctx.model)
    try:
        flat = fn._standardize_inputs(x)
    except Exception as err:
        raise _Failed(RunError("input", None, type(err).__name__, _clean(err),
                               [_shape(v) for v in tree.flatten(x)])) from err
    values: dict[int, Any] = dict(zip(ctx.graph.inputs, flat))
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
                                   _op(err))) from err
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
        if y is not None and getattr(model, "compiled", False):
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
            path = _op(err)
            raise _Failed(RunError("loss", call_for_path(ctx, path), type(err).__name__,
                                   _clean(err), [_shape(v) for v in outs], path)) from err

    try:
        result.stages += loss_and_gradient(model, loss_of, plan.train)
    except StepFailed as failed:
        path = _op(failed.error)
        stage = "gradient" if failed.stage == "gradient" else "loss"
        if stage == "gradient":
            result.stages.append("loss")
        raise _Failed(RunError(stage, call_for_path(ctx, path), type(failed.error).__name__,
                               _clean(failed.error), [], path)) from failed.error


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
