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
from shapecheck.verify import DEFAULT_RUN_TIMEOUT
from shapecheck.shapes.graph import LayerCall


@dataclass
class RunOptions:
    """What ``--run`` was asked for."""

    device: str = "auto"  # "cpu" | "gpu" | "auto"
    sizes: dict[str, int] = field(default_factory=dict)  # named dim -> size (``--dims``)
    count: int = 2  # synthesized executions, each with other sizes
    timeout: float = DEFAULT_RUN_TIMEOUT
    memory_limit: int | None = None  # bytes; None: half the memory available now

    def to_dict(self) -> dict:
        return {"device": self.device, "sizes": dict(self.sizes), "count": self.count,
                "timeout": self.timeout, "memory_limit": self.memory_limit}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "RunOptions":
        return cls(d.get("device", "auto"), dict(d.get("sizes", {})), int(d.get("count", 2)),
                   float(d.get("timeout", DEFAULT_RUN_TIMEOUT)), d.get("memory_limit"))


@dataclass
class Plan:
    """One execution to make: its inputs, and targets for a training step."""

    label: str  # "`fit` at model.py:62, batch 1 of 4" or "synthesized at batch=2, T=16"
    values: dict[str, int]  # named dim -> size
    x: Any  # numpy arrays in the structure `fit` would get
    y: Any = None  # targets; None: forward only
    train: bool = False  # a training step (gradient) after the loss
    from_data: bool = False
    site: tuple[str | None, int | None] = (None, None)  # the data call's path and line


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
        return {"device": self.device, "skipped": self.skipped, "notes": list(self.notes),
                "executions": out}


# --- devices ---------------------------------------------------------------------------


class DeviceError(Exception):
    """The device asked for is not there."""


def pick_device(choice: str) -> tuple[str, str]:
    """``(TensorFlow device name, description)`` for ``cpu``, ``gpu`` or ``auto``."""
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if choice == "gpu" and not gpus:
        raise DeviceError("--device gpu: TensorFlow sees no GPU on this machine "
                          "(use --device cpu or auto)")
    if choice in ("gpu", "auto") and gpus:
        try:
            name = tf.config.experimental.get_device_details(gpus[0]).get("device_name")
        except Exception:  # details are optional
            name = None
        return "/GPU:0", f"GPU:0 ({name})" if name else "GPU:0"
    return "/CPU:0", "CPU"


# --- planning ----------------------------------------------------------------------------


_POOL = (16, 24, 20, 28, 32, 12, 36, 40, 18, 44)
_BATCHES = (2, 3, 5)


def choose_sizes(names: Sequence[str], fixed: Mapping[str, int], minimums: Mapping[str, int],
                 constraints: Sequence[Any], count: int) -> list[dict[str, int]]:
    """``count`` assignments, each with other small sizes (so no equality hides a bug),
    above every window's minimum and keeping the model's recorded equalities."""
    rng = np.random.default_rng(0)
    out: list[dict[str, int]] = []
    names = sorted(names)

    def pool(name: str) -> list[int]:
        low = minimums.get(name, 1)
        if name == "batch":
            return [max(low, b) for b in _BATCHES]
        return [p for p in _POOL if p >= low] or [low + i for i in (0, 3, 5, 8)]

    for k in range(count):
        best: dict[str, int] | None = None
        for attempt in range(300):
            a = {}
            for i, n in enumerate(names):
                if n in fixed:
                    a[n] = fixed[n]
                elif attempt == 0:
                    choices = pool(n)
                    a[n] = choices[(k + 2 * i) % len(choices)]
                else:
                    a[n] = int(rng.choice(pool(n)))
            if all(_holds(c, a) for c in constraints):
                best = a
                break
            best = best or a
        if best is not None and best not in out:
            out.append(best)
    return out or [dict(fixed)]


def _holds(c: Any, a: dict[str, int]) -> bool:
    if c.holds is False:  # a broken equality is a static finding; do not chase it
        return True
    lhs, rhs = dims.evaluate(c.lhs, a), dims.evaluate(c.rhs, a)
    return lhs is None or rhs is None or lhs == rhs


def synthesize(shape: tuple, dtype: str, rng: np.random.Generator,
               *, high: int = 2) -> np.ndarray:
    """An array of ``shape`` and ``dtype`` (ints in ``[0, high)``)."""
    if "int" in dtype:
        return rng.integers(0, max(1, high), size=shape).astype(dtype)
    if dtype == "bool":
        return rng.integers(0, 2, size=shape).astype(bool)
    if dtype == "string":
        return np.full(shape, "the cat sat", dtype=object)
    return rng.standard_normal(shape).astype(dtype if dtype.startswith(("float", "bfloat"))
                                             else "float32")


def from_info(info: Any, rng: np.random.Generator) -> np.ndarray:
    """An array like a sampled one: its shape, dtype and value range."""
    shape = tuple(info.shape)
    if info.dtype in ("str", "object"):
        return np.full(shape, "the cat sat", dtype=object)
    if info.one_hot and shape:
        ids = rng.integers(0, shape[-1], size=shape[:-1])
        return np.eye(shape[-1], dtype=info.dtype)[ids]
    lo = info.min if info.min is not None else 0.0
    hi = info.max if info.max is not None else 1.0
    if info.integer:
        arr = rng.integers(int(lo), int(hi) + 1, size=shape)
        flat = arr.reshape(-1)
        if flat.size:  # both ends of the range, as the data had them
            flat[0], flat[-1] = int(lo), int(hi)
        return arr.astype(info.dtype)
    arr = rng.uniform(lo, hi if hi > lo else lo + 1.0, size=shape)
    return arr.astype(info.dtype if info.dtype.startswith("float") else "float32")


def _map_infos(struct: Any, fn: Any) -> Any:
    if struct is None:
        return None
    if isinstance(struct, dict):
        return {k: _map_infos(v, fn) for k, v in struct.items()}
    if isinstance(struct, (list, tuple)):
        items = [_map_infos(v, fn) for v in struct]
        return items if isinstance(struct, list) else tuple(items)
    return fn(struct)


def data_plans(ctx: Any, bindings: Sequence[Any], limit: int = 3) -> list[Plan]:
    """Plans from sampled batches: one per distinct set of shapes, at most ``limit``.

    Their arrays are made only when executed (:func:`materialize`), after the
    memory check.
    """
    out: list[Plan] = []
    seen: set[str] = set()
    for b in bindings:
        key = repr(_map_infos((b.batch.x, b.batch.y), lambda i: (tuple(i.shape), i.dtype)))
        if key in seen or b.batch.x is None:
            continue
        seen.add(key)
        feed = b.feed
        train = feed.method in ("fit", "train_on_batch") and b.batch.y is not None
        conflicted = {c.dim for c in b.conflicts}  # no one size: leave them unknown
        values = {n: v for n, v in b.values.items() if n not in conflicted}
        out.append(Plan(b.describe(ctx.show), values, b.batch.x, b.batch.y, train, True,
                        (feed.path, feed.line)))
        if len(out) >= limit:
            break
    return out


def materialize(plan: Plan) -> tuple[Any, Any]:
    """The plan's inputs and targets as arrays (sampled batches are described, not kept)."""
    rng = np.random.default_rng(0)

    def make(leaf: Any) -> Any:
        return leaf if isinstance(leaf, np.ndarray) else from_info(leaf, rng)

    return _map_infos(plan.x, make), _map_infos(plan.y, make)


def synthetic_plans(ctx: Any, options: RunOptions, minimums: Mapping[str, int],
                    notes: list[str] | None = None) -> list[Plan]:
    """Plans with inputs made up at a few sizes of the named dims."""
    in_shapes = [ctx.tensor_shape(k) or () for k in ctx.graph.inputs]
    out_shapes = [ctx.tensor_shape(k) or () for k in ctx.graph.outputs]
    names = set().union(*(dims.free_names(d) for s in in_shapes for d in s), set())
    unknown = sorted(set(options.sizes) - names)
    if unknown and notes is not None:  # another model of the script may have them
        notes.append(f"--dims names {', '.join(unknown)}, which this model does not have "
                     f"(its named dims: {', '.join(sorted(names)) or 'none'})")
    plans = []
    losses = output_losses(ctx)
    fixed = {n: v for n, v in options.sizes.items() if n in names}
    for values in choose_sizes(sorted(names), fixed, minimums,
                               ctx.scope.constraints, options.count):
        rng = np.random.default_rng(len(plans))
        flat_x = []
        for k, shape in zip(ctx.graph.inputs, in_shapes):
            concrete = tuple(dims.evaluate(d, values) for d in shape)
            if any(v is None for v in concrete):
                raise PlanError(f"input shape {dims.fmt_shape(shape)} has a size no --dims "
                                "value gives")
            t = ctx.graph.tensors[k]
            flat_x.append(synthesize(concrete, str(t.dtype), rng,
                                     high=_id_limit(ctx, k)))
        from keras import tree

        fn = functional(ctx.model)
        x = tree.pack_sequence_as(fn._inputs_struct, flat_x)
        y = None
        concrete_out = [tuple(dims.evaluate(d, values) for d in s) for s in out_shapes]
        if losses is not None and all(v is not None for s in concrete_out for v in s):
            ys = [labels_for(s, loss, rng) for s, loss in zip(concrete_out, losses)]
            y = ys[0] if len(ys) == 1 else ys
        label = "synthesized at " + (", ".join(f"{n}={v}" for n, v in sorted(values.items()))
                                     or "the model's fixed sizes")
        plans.append(Plan(label, values, x, y, y is not None))
    return plans


class PlanError(Exception):
    """The inputs cannot be made (a size no one gives, a dim that does not exist)."""


def _id_limit(ctx: Any, key: int) -> int:
    """The exclusive upper bound for integer ids fed to the input ``key``."""
    limit = 2
    for call in ctx.calls:
        if key in call.inputs and call.cls == "Embedding":
            limit = min(limit, int(getattr(call.op, "input_dim", 2)))
    return limit


def output_losses(ctx: Any) -> list[str] | None:
    """The compiled loss's name for each output, or None when not compiled."""
    model = ctx.model
    if not getattr(model, "compiled", False):
        return None
    loss = getattr(model, "loss", None)
    if loss is None:
        return None
    n = len(ctx.graph.outputs)
    names = _output_names(ctx)
    if isinstance(loss, dict):
        return [_loss_name(loss.get(name)) for name in names]
    if isinstance(loss, (list, tuple)):
        return [_loss_name(v) for v in loss] if len(loss) == n else None
    return [_loss_name(loss)] * n


def _output_names(ctx: Any) -> list[str]:
    from shapecheck.data.bind import output_names

    return output_names(ctx)


def _loss_name(loss: Any) -> str:
    if loss is None:
        return ""
    if isinstance(loss, str):
        return loss.lower()
    name = getattr(loss, "name", None) or getattr(loss, "__name__", None)
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name or type(loss).__name__).lower()


def labels_for(shape: tuple, loss: str, rng: np.random.Generator) -> np.ndarray:
    """Targets a loss accepts for an output of ``shape``."""
    units = shape[-1] if shape else 1
    if "sparse" in loss:
        return rng.integers(0, max(1, units), size=shape[:-1] if units != 1 else shape)
    if "categorical" in loss or "kl" in loss or loss == "kld":
        ids = rng.integers(0, units, size=shape[:-1])
        return np.eye(units, dtype="float32")[ids]
    if "binary" in loss or "hinge" in loss:
        return rng.integers(0, 2, size=shape).astype("float32")
    if "poisson" in loss or "log" in loss:
        return rng.uniform(0.1, 1.0, size=shape).astype("float32")
    return rng.standard_normal(shape).astype("float32")


# --- memory ----------------------------------------------------------------------------


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


# --- execution -----------------------------------------------------------------------------


def functional(model: Any) -> Any:
    """The Functional graph of a model (a Sequential's inner one)."""
    return getattr(model, "_functional", None) or model


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
    import keras

    result = Execution(plan)
    start = time.perf_counter()
    model = ctx.model
    x, y = materialize(plan)
    saved = [(v, np.array(v.numpy())) for v in getattr(model, "variables", [])]
    try:
        forward(ctx, x, False, result.observed)
        result.stages.append("forward")
        if y is not None and getattr(model, "compiled", False):
            _train_step(ctx, plan, x, y, result, keras)
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


def _train_step(ctx: Any, plan: Plan, x: Any, y: Any, result: Execution, keras: Any) -> None:
    model = ctx.model
    if keras.backend.backend() != "tensorflow":  # pragma: no cover - TF is the backend
        result.stages.append("loss skipped: the training step needs the TensorFlow backend")
        return
    import tensorflow as tf

    with tf.GradientTape() as tape:
        outs = forward(ctx, x, plan.train, {})
        try:
            loss = model._compute_loss(x=x, y=y, y_pred=_pack_outputs(ctx, outs),
                                       sample_weight=None, training=plan.train)
        except Exception as err:
            path = _op(err)
            raise _Failed(RunError("loss", call_for_path(ctx, path), type(err).__name__,
                                   _clean(err), [_shape(v) for v in outs], path)) from err
    result.stages.append("loss")
    if not plan.train:
        return
    try:
        tape.gradient(loss, model.trainable_variables)
    except Exception as err:
        path = _op(err)
        raise _Failed(RunError("gradient", call_for_path(ctx, path), type(err).__name__,
                               _clean(err), [], path)) from err
    result.stages.append("gradient")


def run_model(ctx: Any, plans: list[Plan], options: RunOptions,
              notes: Sequence[str] = ()) -> ModelRun:
    """Execute ``plans`` on the chosen device, within the time and memory limits."""
    import tensorflow as tf

    device, described = pick_device(options.device)
    run = ModelRun(described, notes=list(notes))
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
            with tf.device(device):
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
