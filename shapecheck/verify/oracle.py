"""Keras as the oracle: run a model and compare observed with inferred shapes.

For each assignment of sizes to the named dims, inputs of those sizes are fed
to a model whose outputs are *every* tensor of the graph; each observed shape
must equal the inferred expression evaluated at the assignment.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from shapecheck.shapes import dims
from shapecheck.shapes.infer import ModelShapes, infer_model

InputMaker = Callable[[tuple, str, int], np.ndarray]


@dataclass
class Mismatch:
    layer: str
    output: int
    inferred: tuple
    observed: tuple
    bindings: dict[str, int]

    def __str__(self) -> str:
        return (f"{self.layer}[{self.output}]: inferred {dims.fmt_shape(self.inferred)} "
                f"-> {self.expected}, observed {self.observed} at {self.bindings}")

    @property
    def expected(self) -> tuple:
        return tuple(dims.evaluate(d, self.bindings) for d in self.inferred)


def default_input(shape: tuple, dtype: str, index: int) -> np.ndarray:
    rng = np.random.default_rng(index)
    if "int" in dtype:
        return rng.integers(0, 2, size=shape).astype(dtype)
    if dtype == "bool":
        return np.ones(shape, dtype=bool)
    return rng.standard_normal(shape).astype(dtype if dtype != "string" else "float32")


_POOL = (16, 24, 32, 20, 28, 36, 40, 48, 64, 21, 27, 33, 17, 19, 25, 30, 44, 56)


def assignments(names: Sequence[str], sizes: Mapping[str, Sequence[int]] | None = None,
                count: int = 3, constraints: Sequence[Any] = ()) -> list[dict[str, int]]:
    """``count`` assignments with distinct sizes per dim (so no equality hides a bug).

    Sizes not given in ``sizes`` are searched so that every recorded constraint
    holds (a U-Net needs H divisible by 4; merged time axes must be equal).
    """
    sizes = dict(sizes or {})
    names = sorted(names)
    out: list[dict[str, int]] = []
    rng = np.random.default_rng(0)
    for k in range(count):
        best = None
        for attempt in range(400):
            a = {}
            for i, name in enumerate(names):
                if name in sizes:
                    a[name] = sizes[name][k % len(sizes[name])]
                elif name == "batch":
                    a[name] = (2, 3, 5)[k % 3]
                elif attempt == 0:
                    a[name] = _POOL[(3 * k + 2 * i) % len(_POOL)]
                else:
                    a[name] = int(rng.choice(_POOL))
            if all(_holds(c, a) for c in constraints):
                best = a
                break
            best = best or a
        out.append(best)
    return out


def _holds(c: Any, a: dict[str, int]) -> bool:
    lhs, rhs = dims.evaluate(c.lhs, a), dims.evaluate(c.rhs, a)
    return lhs is None or rhs is None or lhs == rhs


def check_against_keras(model: Any, *, sizes: Mapping[str, Sequence[int]] | None = None,
                        make_input: InputMaker = default_input, count: int = 3,
                        shapes: ModelShapes | None = None) -> list[Mismatch]:
    """Every call whose observed output shape differs from the inferred one."""
    import keras

    shapes = shapes or infer_model(model)
    graph = shapes.graph
    tensors = []
    where: list[tuple[str, int, tuple]] = []
    for result in shapes.results:
        if result.call.is_input:
            continue
        for i, (k, shape) in enumerate(zip(result.call.outputs, result.shapes)):
            tensors.append(graph.tensors[k])
            where.append((result.call.name, i, shape))
    input_tensors = [graph.tensors[k] for k in graph.inputs]
    probe = keras.Model(input_tensors, tensors) if tensors else None
    input_shapes = {}
    for r in shapes.results:
        if r.call.is_input:
            for k, s in zip(r.call.outputs, r.shapes):
                input_shapes[k] = s
    names = sorted(set().union(*(dims.free_names(d) for r in shapes.results
                                 for s in r.shapes for d in s)) or set())
    mismatches: list[Mismatch] = []
    for a in assignments(names, sizes, count, shapes.scope.constraints):
        feed = []
        for j, k in enumerate(graph.inputs):
            concrete = tuple(dims.evaluate(d, a) for d in input_shapes[k])
            t = graph.tensors[k]
            feed.append(make_input(concrete, str(t.dtype), j))
        if probe is None:
            continue
        try:
            observed = probe(feed, training=False)
        except Exception as err:
            if not _missing_kernel(err):
                raise
            # This CPU's kernels lack the layout (TensorFlow without oneDNN runs no
            # channels_first convolution): Keras's own shapes at these sizes instead.
            observed = probe.compute_output_spec(
                [keras.KerasTensor(np.shape(f), str(f.dtype)) for f in feed])
        if not isinstance(observed, (list, tuple)):
            observed = [observed]
        for (layer, i, inferred), value in zip(where, observed):
            shape = tuple(getattr(value, "shape", None) or np.shape(value))
            if any(x is None for x in shape):
                continue  # Keras's own shape (no kernel to run) leaves this axis open
            got = tuple(int(x) for x in shape)
            want = tuple(dims.evaluate(d, a) for d in inferred)
            if got != want:
                mismatches.append(Mismatch(layer, i, inferred, got, dict(a)))
    return mismatches


def _missing_kernel(err: BaseException) -> bool:
    """An error of a backend with no kernel for this op here, not about shapes."""
    text = str(err)
    return type(err).__name__ == "UnimplementedError" or bool(_NO_KERNEL.search(text))


# TensorFlow's CPU kernels without oneDNN: layouts and options they do not implement
_NO_KERNEL = re.compile(r"only supports (NHWC|NDHWC|the NHWC)|NHWC tensor format|"
                        r"Current (CPU )?implementations? (only supports|do not yet support)")
