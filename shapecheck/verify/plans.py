"""What ``--run`` executes a model on: the options asked for, and the plans (sampled
batches, or arrays made at chosen sizes of the named dims, with targets that fit the
compiled loss).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

from shapecheck.shapes import dims
from shapecheck.verify import DEFAULT_RUN_TIMEOUT


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


def functional(model: Any) -> Any:
    """The Functional graph of a model (a Sequential's inner one)."""
    return getattr(model, "_functional", None) or model
