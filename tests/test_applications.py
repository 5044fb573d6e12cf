"""Keras is the oracle, on real models: ``keras.applications`` end to end.

For each application (``weights=None``; unknown spatial dims where the model
accepts them):

* inference leaves no note of kind ``inference-defect``, ``rule-error``,
  ``shape-error`` or ``approximate``;
* every dim Keras leaves as ``None`` is an expression over the input's named
  dims (``batch``, ``H``, ``W``), never a fresh dim, and every dim Keras knows
  is that int;
* no equality constraint is known to be false;

and, for the models cheap enough to run on CPU, the model is run at three
assignments of ``batch``, ``H`` and ``W`` and every call's observed output
shape must equal its inferred expression (``check_against_keras``), and every
equality constraint inference recorded must hold at those sizes.

The heaviest models are checked statically only.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from dataclasses import dataclass, field
import keras
import numpy as np
import pytest

from shapecheck.shapes import dims
from shapecheck.shapes.infer import ModelShapes, infer_model
from shapecheck.verify.oracle import assignments, check_against_keras
from shapecheck.rules.context import ModelContext
from shapecheck.rules.engine import model_findings

pytestmark = pytest.mark.filterwarnings(
    "ignore:The structure of `inputs` doesn't match:UserWarning")

BAD_NOTES = ("inference-defect", "rule-error", "shape-error", "approximate")

# Sizes for the oracle: H and W differ from each other within an assignment
# and across assignments, mixing odd and even so that floor/ceil slips show.
SIZES = {"batch": [1, 2, 1], "H": [64, 75, 97], "W": [83, 90, 106]}
# InceptionV3 / InceptionResNetV2 need >= 75, Xception >= 71.
SIZES_75 = {"batch": [1, 2, 1], "H": [75, 86, 99], "W": [79, 93, 110]}
BATCH_ONLY = {"batch": [1, 2, 1]}

FREE = (None, None, 3)


@dataclass(frozen=True)
class App:
    id: str
    ctor: str  # name in keras.applications
    kwargs: dict = field(default_factory=dict)
    # Sizes for check_against_keras; None: too heavy to run here, static only.
    sizes: dict | None = None

    def build(self) -> keras.Model:
        fn = getattr(keras.applications, self.ctor, None)
        if fn is None:
            pytest.skip(f"keras.applications.{self.ctor} does not exist in Keras "
                        f"{keras.__version__}")
        kwargs = {"weights": None, "include_top": False, "input_shape": FREE, **self.kwargs}
        return fn(**kwargs)


APPS = [
    App("ResNet50", "ResNet50", sizes=SIZES),
    App("ResNet50V2", "ResNet50V2", sizes=SIZES),
    App("MobileNet", "MobileNet", sizes=SIZES),
    App("MobileNetV2", "MobileNetV2", sizes=SIZES),
    App("MobileNetV3Small", "MobileNetV3Small", sizes=SIZES),
    App("MobileNetV3Large", "MobileNetV3Large", sizes=SIZES),
    App("EfficientNetB0", "EfficientNetB0", sizes=SIZES),
    App("EfficientNetV2B0", "EfficientNetV2B0", sizes=SIZES),
    App("DenseNet121", "DenseNet121", sizes=SIZES),
    App("InceptionV3", "InceptionV3", sizes=SIZES_75),
    App("Xception", "Xception", sizes=SIZES_75),
    App("InceptionResNetV2", "InceptionResNetV2", sizes=SIZES_75),
    App("VGG16", "VGG16", sizes=SIZES),
    App("ConvNeXtTiny", "ConvNeXtTiny", sizes=SIZES),
    # NASNet picks its cell wiring from static sizes (None == None makes it
    # skip the reduction adjustment, and the model then fails at run time):
    # it needs its fixed size.
    App("NASNetMobile", "NASNetMobile", {"input_shape": (224, 224, 3)}, sizes=BATCH_ONLY),
    # RegNet is in tf.keras 2 but not in Keras 3: skipped where absent.
    App("RegNetX002", "RegNetX002", sizes=SIZES),
    # A global pooling head on unknown spatial dims.
    App("MobileNetV2-pooling-avg", "MobileNetV2", {"pooling": "avg"}, sizes=SIZES),
    # Static only: the largest models.
    App("ResNet152V2", "ResNet152V2"),
    App("EfficientNetV2L", "EfficientNetV2L"),
    App("ConvNeXtXLarge", "ConvNeXtXLarge"),
    App("NASNetLarge", "NASNetLarge", {"input_shape": (331, 331, 3)}),
    # Classification heads at the fixed 224 size.
    App("ResNet50-top", "ResNet50", {"include_top": True, "input_shape": (224, 224, 3)}),
    App("MobileNetV2-top", "MobileNetV2", {"include_top": True, "input_shape": (224, 224, 3)}),
]
RUNNABLE = [a for a in APPS if a.sizes is not None]

# Cheap models are built once and shared by the static and the oracle test.
_CACHE: dict[str, tuple[keras.Model, ModelShapes]] = {}


def _model_and_shapes(app: App) -> tuple[keras.Model, ModelShapes]:
    if app.id in _CACHE:
        return _CACHE[app.id]
    keras.backend.clear_session()
    model = app.build()
    shapes = infer_model(model)
    if app.sizes is not None:
        _CACHE[app.id] = (model, shapes)
    return model, shapes


@pytest.fixture(scope="module", autouse=True)
def _drop_models():
    yield
    _CACHE.clear()
    keras.backend.clear_session()


# --- describing a failure --------------------------------------------------------

_CONFIG_KEYS = ("kernel_size", "strides", "padding", "dilation_rate", "pool_size",
                "depth_multiplier", "filters", "units", "axis", "target_shape",
                "cropping", "size", "data_format", "keepdims", "interpolation")


def describe(shapes: ModelShapes, layer: str) -> str:
    """``Conv2D(kernel_size=(3, 3), strides=(2, 2), padding='valid')`` for a call name."""
    top = layer.split("/")[0]
    for r in shapes.results:
        if r.call.name == top:
            op = r.call.op
            try:
                config = op.get_config()
            except Exception:  # noqa: BLE001 - ops without a config
                config = {}
            bits = [f"{k}={config[k]!r}" for k in _CONFIG_KEYS if k in config]
            inputs = []
            for k in r.call.inputs:
                src = shapes.graph.producer.get(k)
                if src is not None:
                    call = next(c for c in shapes.graph.calls if c.id == src[0])
                    for res in shapes.results:
                        if res.call is call:
                            inputs.append(dims.fmt_shape(res.shapes[src[1]]))
            where = f" [in {layer}]" if top != layer else ""
            return f"{r.call.cls}({', '.join(bits)}) on {', '.join(inputs) or '?'}{where}"
    return f"? [{layer}]"


def mismatch_report(shapes: ModelShapes, mismatches: list) -> str:
    """The mismatches whose inputs were right (where a rule slipped), then a count."""
    by_id = {c.id: c for c in shapes.graph.calls}
    wrong = {(m.layer, tuple(sorted(m.bindings.items()))) for m in mismatches}
    calls = {c.name: c for c in shapes.graph.calls}
    roots, downstream = [], 0
    for m in mismatches:
        call = calls.get(m.layer.split("/")[0])
        at = tuple(sorted(m.bindings.items()))
        parents = set()
        if call is not None:
            for k in call.inputs:
                src = shapes.graph.producer.get(k)
                if src is not None:
                    parents.add(by_id[src[0]].name)
        if any((p, at) in wrong for p in parents):
            downstream += 1
        else:
            roots.append(f"  {m}\n      {describe(shapes, m.layer)}")
    return (f"{len(mismatches)} mismatch(es); {len(roots)} where the inputs were right:\n"
            + "\n".join(roots) + f"\n  (+ {downstream} that follow from those)")


def input_dim_names(shapes: ModelShapes) -> set[str]:
    return {n for r in shapes.results if r.call.is_input
            for s in r.shapes for d in s for n in dims.free_names(d)}


# --- the checks ------------------------------------------------------------------


@pytest.mark.parametrize("app", APPS, ids=[a.id for a in APPS])
def test_rules_raise_no_error_or_warning(app: App) -> None:
    """A false alarm on a real model is a bug as bad as a miss."""
    model, shapes = _model_and_shapes(app)
    ctx = ModelContext(model, shapes, lambda p: p)
    loud = [d for d in model_findings(ctx) if d.severity in ("error", "warning")]
    assert not loud, "\n".join(f"{d.code} at {d.layer}: {d.message}" for d in loud)


@pytest.mark.parametrize("app", APPS, ids=[a.id for a in APPS])
def test_static_inference_is_clean_and_symbolic(app: App) -> None:
    model, shapes = _model_and_shapes(app)

    bad = [n for n in shapes.scope.notes if n.kind in BAD_NOTES]
    assert not bad, f"{len(bad)} note(s):\n" + "\n".join(
        f"  {n.kind} at {n.layer}: {n.message}\n      {describe(shapes, n.layer)}" for n in bad)

    names = input_dim_names(shapes)
    spatial_unknown = model.input_shape[1] is None
    assert names == ({"batch", "H", "W"} if spatial_unknown else {"batch"}), names

    problems = []
    for r in shapes.results:
        if r.call.knode is not None:
            keras_shapes = [tuple(t.shape) for t in r.call.knode.outputs]
        else:
            keras_shapes = [tuple(model.input_shape)]
        for i, (ours, theirs) in enumerate(zip(r.shapes, keras_shapes)):
            where = f"{r.call.name}[{i}] ({r.call.cls})"
            if len(ours) != len(theirs):
                problems.append(f"{where}: rank {len(ours)}; Keras has {len(theirs)}")
            for axis, (d, k) in enumerate(zip(ours, theirs)):
                free = dims.free_names(d)
                if k is None and not free:
                    problems.append(f"{where} axis {axis}: Keras None, inferred "
                                    f"{dims.fmt(d)} (not symbolic)")
                elif k is None and not free <= names:
                    problems.append(f"{where} axis {axis}: {dims.fmt(d)} uses dims "
                                    f"{sorted(free - names)} not tied to the input")
                elif k is not None and d != k:
                    problems.append(f"{where} axis {axis}: Keras {k}, inferred {dims.fmt(d)}")
    assert not problems, "\n".join(problems)

    false = [c for c in shapes.scope.constraints if c.holds is False]
    assert not false, "constraints that never hold in a valid model:\n" + "\n".join(
        f"  {c.layer}: {dims.fmt(c.lhs)} == {dims.fmt(c.rhs)} ({c.reason})" for c in false)
    never = [q for q in shapes.scope.requirements if q.holds is False]
    assert not never, never


@pytest.mark.parametrize("app", RUNNABLE, ids=[a.id for a in RUNNABLE])
def test_matches_keras_at_runtime(app: App) -> None:
    model, shapes = _model_and_shapes(app)
    mismatches = check_against_keras(model, sizes=app.sizes, shapes=shapes)
    assert not mismatches, mismatch_report(shapes, mismatches)

    # Every equality that inference could not prove must hold where Keras ran.
    names = sorted(input_dim_names(shapes))
    broken = []
    for a in assignments(names, app.sizes):
        for c in shapes.scope.constraints:
            lhs, rhs = dims.evaluate(c.lhs, a), dims.evaluate(c.rhs, a)
            if lhs is not None and rhs is not None and lhs != rhs:
                broken.append(f"  {c.layer}: {dims.fmt(c.lhs)} = {lhs} != {dims.fmt(c.rhs)} "
                              f"= {rhs} at {a} ({c.reason})")
    assert not broken, "constraints false at sizes Keras accepts:\n" + "\n".join(broken)


@pytest.mark.parametrize("app", RUNNABLE, ids=[a.id for a in RUNNABLE])
def test_run_confirms_a_clean_model(app: App) -> None:
    """``--run`` (forward, loss, gradient at sizes it picks itself) raises nothing."""
    import shapecheck

    model, _ = _model_and_shapes(app)
    if not model.compiled:
        model.compile(optimizer="sgd", loss="mse")
    report = shapecheck.check_model(model, run=True, device="cpu", run_timeout=300)
    run = report.models[0].run
    assert run["skipped"] is None, run
    assert run["executions"] and all(e["error"] is None and "gradient" in e["stages"]
                                     for e in run["executions"]), run
    loud = [f"{d.code} {d.layer}: {d.message}" for d in report.diagnostics
            if d.severity != "info"]
    assert not loud


def test_nasnet_with_unknown_sizes_is_flagged() -> None:
    """NASNetMobile on ``(None, None, 3)`` builds but cannot run at any useful size.

    Its reduction cells compare ``None != None`` and skip the adjustment, so
    each reduction ``Add`` merges a map with one about twice its size.  Keras
    only fails when run; inference records the equality on those ``Add`` calls.
    """
    keras.backend.clear_session()
    model = keras.applications.NASNetMobile(weights=None, include_top=False,
                                            input_shape=FREE)
    shapes = infer_model(model)
    bad = [n for n in shapes.scope.notes if n.kind in BAD_NOTES]
    assert not bad, bad
    flagged = {c.layer for c in shapes.scope.constraints if c.holds is not True}
    assert any("reduction_add" in layer for layer in flagged), sorted(flagged)[:10]
    # ... and the recorded equalities are indeed false at a size Keras then rejects.
    a = {"batch": 1, "H": 224, "W": 224}
    assert any(dims.evaluate(c.lhs, a) != dims.evaluate(c.rhs, a)
               for c in shapes.scope.constraints)
    with pytest.raises(Exception, match="Incompatible shapes"):
        model(np.zeros((1, 224, 224, 3), "float32"))
