"""Differential checks of generated graphs: Keras is the oracle.

For a valid graph (:func:`check_valid`): inferred shapes equal Keras's at
2-3 assignments of the variable input dims (the generator's probe sizes,
which every window fits), inference leaves no ``inference-defect`` or
``rule-error`` note, the smallest sizes shapecheck claims the windows need
are no larger than sizes Keras runs, and ``check_model`` reports nothing at
warning or error level.

For a graph with an injected bug (:func:`check_injected`): an error-level
finding, from ``check_model`` when Keras builds the model, else from the
generated script run under capture (:func:`check_scripts`).
"""

from __future__ import annotations

import os
import tempfile
import traceback
from dataclasses import dataclass, field
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

from tests.fuzz.gen import GraphSpec  # noqa: E402

BAD_NOTES = ("inference-defect", "rule-error", "shape-error")


@dataclass
class ValidResult:
    assignments: int = 0
    mismatches: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # inference-defect / rule-error / shape-error
    approximate: list[str] = field(default_factory=list)
    false_alarms: list[str] = field(default_factory=list)  # findings at warning/error level
    minimums: list[str] = field(default_factory=list)  # minimum sizes above sizes Keras runs
    tight: str | None = None  # Keras failed at shapecheck's minimum sizes (to look at)
    keras_error: str | None = None  # Keras refused or failed the "valid" graph (generator bug)
    internal: str | None = None  # shapecheck raised
    subclassed: int = 0  # 1 when the graph was also checked as a subclassed model

    @property
    def ok(self) -> bool:
        return not (self.mismatches or self.notes or self.false_alarms or self.minimums
                    or self.keras_error or self.internal)

    def problems(self) -> list[str]:
        out = [f"mismatch: {m}" for m in self.mismatches]
        out += [f"note: {n}" for n in self.notes]
        out += [f"false alarm: {f}" for f in self.false_alarms]
        out += [f"minimum: {m}" for m in self.minimums]
        if self.keras_error:
            out.append(f"keras: {self.keras_error}")
        if self.internal:
            out.append(f"internal: {self.internal}")
        return out


def build(spec: GraphSpec | str) -> Any:
    """Run the graph's script in this process; its ``model``."""
    source = spec if isinstance(spec, str) else spec.source()
    ns: dict[str, Any] = {"__name__": "fuzz_graph"}
    exec(compile(source, "<fuzz graph>", "exec"), ns)
    return ns["model"]


def _input_name(t: Any) -> str:
    hist = getattr(t, "_keras_history", None)
    return hist[0].name if hist is not None else getattr(t, "name", "")


def check_valid(spec: GraphSpec | str, sizes: dict[str, list[int]] | None = None,
                count: int = 3, with_data: bool = True, subclassed: bool = True
                ) -> ValidResult:
    """The property on one valid graph (its script, or the spec)."""
    import keras

    from shapecheck import check_model
    from shapecheck.shapes import dims
    from shapecheck.shapes.infer import infer_model
    from shapecheck.verify.oracle import check_against_keras
    from shapecheck.rules.context import ModelContext
    from shapecheck.rules.minimum import minimum_sizes

    res = ValidResult()
    keras.backend.clear_session()
    if sizes is None:
        sizes = spec.sizes() if isinstance(spec, GraphSpec) else _sizes_of(spec)
    try:
        model = build(spec)
    except Exception as err:
        res.keras_error = f"build: {type(err).__name__}: {str(err)[:300]}"
        return res
    try:
        shapes = infer_model(model)
    except Exception:
        res.internal = "infer_model: " + traceback.format_exc(limit=3)[-600:]
        return res
    for n in shapes.scope.notes:
        if n.kind in BAD_NOTES:
            res.notes.append(f"{n.kind}: {n.layer}: {n.message}")
        elif n.kind == "approximate":
            res.approximate.append(f"{n.layer}: {n.message}")
    named = _named_sizes(shapes, model, sizes, count)
    least: dict[str, int] = {}
    try:
        ctx = ModelContext(model, shapes, lambda p: p)
        for name, (size, layer) in minimum_sizes(ctx).items():
            least[name] = size
            if name in named and size > min(named[name]):
                res.minimums.append(f"{name} >= {size} (from {layer}); Keras runs "
                                    f"{name} = {min(named[name])}")
    except Exception:
        res.internal = "minimum_sizes: " + traceback.format_exc(limit=3)[-600:]
    try:
        found = check_against_keras(model, sizes=named, count=count, shapes=shapes)
        res.assignments = count
        res.mismatches = [str(m) for m in found]
    except Exception as err:
        res.keras_error = f"run: {type(err).__name__}: {str(err)[:300]}"
    # once more at the smallest sizes shapecheck says the windows need (dims no equality
    # ties): Keras must run there, with the inferred shapes
    tied = {n for c in shapes.scope.constraints for n in dims.free_names(c.lhs)
            | dims.free_names(c.rhs)}
    tight = {n: v for n, v in least.items() if n in named and n not in tied
             and v < min(named[n])}
    at = {n: [tight.get(n, values[0])] for n, values in named.items()}
    if tight and res.keras_error is None and _sane_at(shapes, model, at):
        try:
            found = check_against_keras(model, sizes=at, count=1, shapes=shapes)
            res.assignments += 1
            res.mismatches += [f"at the minimum sizes: {m}" for m in found]
        except Exception as err:
            res.tight = f"{tight}: {type(err).__name__}: {str(err)[:300]}"
    try:
        report = check_model(model)
        _alarms(res, report, "")
    except Exception:
        res.internal = "check_model: " + traceback.format_exc(limit=3)[-600:]
    if with_data and res.keras_error is None and not res.internal:
        # the same model with data at the first probe sizes, and targets each output's
        # loss takes (a loss picked per output, checked by computing it in Keras): the
        # data, loss and target rules must stay quiet too
        try:
            x = _data(sizes, _input_specs(model), 6)
            preds = model(x, training=False)
            preds = list(preds) if isinstance(preds, (list, tuple)) else [preds]
            rng = np.random.default_rng(len(preds))
            pairs = [_target(p, rng) for p in preds]
            y, losses = [t for t, _ in pairs], [loss for _, loss in pairs]
            report = check_model(model, data=x, targets=y, loss=losses, batch_size=3)
            _alarms(res, report, "with data: ")
        except Exception:
            res.internal = "check_model with data: " + traceback.format_exc(limit=3)[-600:]
        if subclassed and not res.internal:
            axes = [{axis: list(sizes.get(f"{name}:{axis}", [x[i].shape[axis]])[:count])
                     for axis in range(1, len(shape) + 1)}
                    for i, (name, shape, _) in enumerate(_input_specs(model))]
            _check_subclassed(res, model, x, y, losses, axes)
    return res


def replayed(model: Any) -> Any:
    """A subclassed model whose `call` calls every layer and op of ``model`` again, as
    a hand-written `call` would: checking it goes through the trace of `call`."""
    import keras

    class Replay(keras.Model):
        def __init__(self, inner: Any) -> None:
            super().__init__(name="replay")
            self.inner = inner

        def call(self, inputs: Any) -> Any:
            return self.inner.call(inputs)

    return Replay(model)


def _check_subclassed(res: ValidResult, model: Any, x: Any, y: Any, losses: Any,
                      axes: list[dict[int, list[int]]]) -> None:
    """The graph as a subclassed model: its trace must check clean with the same data,
    and Keras must agree with the traced shapes, layer by layer and at the outputs of
    the model's own `call`, at the generator's sizes of each input axis (``axes``)."""
    from shapecheck import check_model
    from shapecheck.oracle import check_trace
    from shapecheck.script import capture

    wrapped = replayed(model)
    try:
        report = check_model(wrapped, data=x, targets=y, loss=losses, batch_size=3)
        _alarms(res, report, "subclassed: ")
        if any(not m.checked for m in report.models):
            res.notes += [f"subclassed: not checked: {m.reason}" for m in report.models
                          if not m.checked]
            return
        found = check_trace(capture.CAPTURE.traces[id(wrapped)], axes)
        res.mismatches += [f"subclassed: {m}" for m in found.get("mismatches", [])]
        res.notes += [f"subclassed: {n}" for n in found.get("notes", [])
                      if n.split(":")[0] in BAD_NOTES]
        res.assignments += 3
        res.subclassed = 1
    except Exception:
        res.internal = "subclassed: " + traceback.format_exc(limit=3)[-600:]
    finally:
        capture.CAPTURE.traces.pop(id(wrapped), None)


def _target(pred: Any, rng: Any) -> tuple[np.ndarray, str]:
    """Targets for one output and a loss that takes them (computed once, to be sure)."""
    import keras

    shape = tuple(np.shape(pred))
    k = shape[-1] if len(shape) > 1 else 1
    options = ["mse", "mae"]
    if k >= 2:
        options += ["categorical_crossentropy", "sparse_categorical_crossentropy",
                    "sparse_categorical_crossentropy_1"]
    elif len(shape) > 1:
        options += ["binary_crossentropy"]
    name = options[int(rng.integers(len(options)))]
    if name.startswith("sparse"):
        lead = shape[:-1] + ((1,) if name.endswith("_1") else ())
        y = rng.integers(0, k, size=lead).astype("int32")
        name = "sparse_categorical_crossentropy"
    elif name == "categorical_crossentropy":
        y = np.eye(k, dtype="float32")[rng.integers(0, k, size=shape[:-1])]
    elif name == "binary_crossentropy":
        y = rng.integers(0, 2, size=shape).astype("float32")
    else:
        y = np.zeros(shape, dtype="float32")
    try:
        probs = keras.ops.softmax(pred) if "categorical" in name else keras.ops.sigmoid(pred)
        keras.losses.get(name)(y, probs)
    except Exception:
        return np.zeros(shape, dtype="float32"), "mse"
    return y, name


def _alarms(res: ValidResult, report: Any, prefix: str) -> None:
    res.false_alarms += [f"{prefix}{d.code} {d.severity} {d.layer}: {d.message[:300]}"
                         for d in report.diagnostics if d.severity in ("error", "warning")]
    for m in report.models:
        for n in m.notes:
            if n.kind == "internal-error":
                res.internal = n.message


def _input_specs(model: Any) -> list[tuple[str, tuple, str]]:
    return [(_input_name(t), tuple(t.shape)[1:], str(t.dtype)) for t in model.inputs]


def _sane_at(shapes: Any, model: Any, at: dict[str, list[int]]) -> bool:
    """Whether Keras is worth running at the sizes ``at``: no tensor with an empty axis
    (TensorFlow's convolutions return made-up shapes for one), no adaptive max pooling
    (TensorFlow kills the process on an axis of size 1)."""
    from shapecheck.shapes import dims

    values = {n: v[0] for n, v in at.items()}
    if any(type(layer).__name__.startswith("AdaptiveMaxPooling")
           for layer in model._flatten_layers()):
        return False
    for r in shapes.results:
        for shape in r.shapes:
            for d in shape[1:]:
                v = dims.evaluate(d, values) if d is not None else None
                if v is not None and v < 1:
                    return False
    return True


def _named_sizes(shapes: Any, model: Any, sizes: dict[str, list[int]],
                 count: int) -> dict[str, list[int]]:
    from shapecheck.shapes import dims

    graph = shapes.graph
    by_key = {}
    for r in shapes.results:
        if r.call.is_input:
            for k, s in zip(r.call.outputs, r.shapes):
                by_key[k] = s
    out: dict[str, list[int]] = {}
    for k in graph.inputs:
        t = graph.tensors[k]
        name = _input_name(t)
        for axis, d in enumerate(by_key[k]):
            values = sizes.get(f"{name}:{axis}")
            free = dims.free_names(d) if d is not None else set()
            if values is not None and len(free) == 1:
                out[next(iter(free))] = list(values[:count])
    return out


def _sizes_of(source: str) -> dict[str, list[int]]:
    import ast

    for line in source.splitlines():
        if line.startswith("SIZES = "):
            return ast.literal_eval(line[len("SIZES = "):])
    return {}


# --- injected bugs ------------------------------------------------------------------------------


@dataclass
class InjectedResult:
    kind: str
    path: str = ""  # "built" (check_model) or "refused" (script under capture)
    detected: bool = False
    codes: list[str] = field(default_factory=list)  # error-level codes
    other: list[str] = field(default_factory=list)  # lower-level codes
    error: str | None = None


def _data(sizes: dict[str, list[int]], inputs: list[tuple[str, tuple, str]],
          n: int = 4) -> list[np.ndarray]:
    """Inputs of ``n`` samples at the first probe sizes (``inputs``: name, shape, dtype)."""
    out = []
    rng = np.random.default_rng(0)
    for name, shape, dtype in inputs:
        full = [n] + [sizes[f"{name}:{axis + 1}"][0] if d is None else d
                      for axis, d in enumerate(shape)]
        if "int" in dtype:
            out.append(rng.integers(0, 2, size=full).astype(dtype))
        else:
            out.append(rng.standard_normal(full).astype("float32"))
    return out


def check_injected(spec: GraphSpec) -> InjectedResult | None:
    """The injected bug found by ``check_model`` (Keras builds it), or None when Keras
    refuses the build: check the script with :func:`check_scripts` then."""
    import keras

    from shapecheck import check_model

    keras.backend.clear_session()
    res = InjectedResult(spec.bug or "?")
    try:
        model = build(spec)
    except Exception:
        return None
    res.path = "built"
    try:
        if spec.bug == "missing-flatten" and "head" in spec.refs:
            x = _data(spec.sizes(), [(i.name, i.shape, i.dtype) for i in spec.inputs])
            preds = model(x)
            preds = preds if isinstance(preds, (list, tuple)) else [preds]
            targets, losses = [], []
            for name, p in zip(spec.outputs, preds):
                if name == spec.refs["head"]:
                    k = spec.refs["classes"]
                    targets.append(np.eye(k, dtype="float32")[np.arange(len(x[0])) % k])
                    losses.append("categorical_crossentropy")
                else:
                    targets.append(np.zeros(np.shape(p), dtype="float32"))
                    losses.append("mse")
            report = check_model(model, data=x, targets=targets, loss=losses,
                                 batch_size=len(x[0]))
        else:
            report = check_model(model)
    except Exception:
        res.error = traceback.format_exc(limit=4)[-800:]
        return res
    _score(res, report.diagnostics)
    return res


def _score(res: InjectedResult, diagnostics: list[Any]) -> None:
    res.codes = sorted({d.code for d in diagnostics if d.severity == "error"})
    res.other = sorted({d.code for d in diagnostics if d.severity != "error"})
    res.detected = bool(res.codes)


def check_scripts(specs: list[GraphSpec], timeout: float = 600) -> list[InjectedResult]:
    """Each graph's script run under capture in one child process; the findings."""
    from shapecheck.script.runner import check_files_together

    with tempfile.TemporaryDirectory(prefix="fuzz-") as tmp:
        paths = []
        for i, spec in enumerate(specs):
            path = os.path.join(tmp, f"graph_{i:04d}.py")
            with open(path, "w", encoding="utf-8") as fh:
                fh.write(spec.source())
            paths.append(path)
        reports = check_files_together(paths, timeout=timeout)
    out = []
    for spec, rep in zip(specs, reports):
        res = InjectedResult(spec.bug or "?", "refused")
        if rep.error is not None and not rep.diagnostics:
            res.error = f"{rep.error.kind}: {rep.error.message[:500]}"
        _score(res, rep.diagnostics)
        out.append(res)
    return out


def replay(path: str, count: int = 3) -> ValidResult:
    """The property on a saved reproducer script (a valid graph)."""
    with open(path, encoding="utf-8") as fh:
        return check_valid(fh.read(), count=count)
