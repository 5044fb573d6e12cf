"""``--run``: executing the model confirms findings and maps run-time errors to lines."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
from keras import layers, ops

import shapecheck
from shapecheck.verify.plans import RunOptions
from shapecheck.script.runner import check_files_together

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fixtures"
CPU = RunOptions(device="cpu")
RUN_CODES = ("SC801", "SC802", "SC803")


def line_of(path: Path, needle: str) -> int:
    for number, text in enumerate(path.read_text().splitlines(), start=1):
        if needle in text:
            return number
    raise AssertionError(f"{needle!r} not in {path}")


@pytest.fixture(scope="module")
def reports() -> dict[str, object]:
    names = ["seed000_captioning.py", "merge_time_lengths.py", "clean_unet.py",
             "clean_seq2seq.py", "rules/SC402_bad.py"]
    got = check_files_together([str(FIXTURES / n) for n in names], timeout=900, run=CPU)
    return dict(zip(names, got))


def executions(report: object) -> list[dict]:
    return [e for m in report.models for e in (m.run or {}).get("executions", [])]


def test_unequal_time_lengths_are_confirmed_at_the_merge(reports):
    r = reports["merge_time_lengths.py"]
    line = line_of(FIXTURES / "merge_time_lengths.py", "layers.add(")
    (d,) = [d for d in r.diagnostics if d.code == "SC604"]
    assert (d.layer, d.line, d.confirmed) == ("fuse", line, True)
    assert "(16, 50, 16)" in d.run and "(16, 40, 16)" in d.run and "axis 1" in d.run
    (e, *_) = executions(r)
    assert e["error"]["layer"] == "fuse" and e["error"]["line"] == line
    assert e["error"]["input_shapes"] == [[16, 50, 16], [16, 40, 16]]


def test_batch_mismatch_of_seed000_is_seen_where_the_branches_meet(reports):
    r = reports["seed000_captioning.py"]
    (d,) = [d for d in r.diagnostics if d.code == "SC601"]
    assert d.confirmed is True and d.layer == "concat3"
    assert "(47, 500) and (4, 500) disagree on axis 0 (batch)" in d.run
    assert not [d for d in r.diagnostics if d.code in RUN_CODES]


@pytest.mark.parametrize("name", ["clean_unet.py", "clean_seq2seq.py"])
def test_correct_models_run_clean_with_a_training_step(reports, name):
    r = reports[name]
    loud = [d for d in r.diagnostics if d.severity != "info" or d.code in RUN_CODES]
    assert loud == [], [d.message for d in loud]
    runs = executions(r)
    assert len(runs) >= 2 and len({tuple(sorted(e["dims"].items())) for e in runs}) == len(runs)
    for e in runs:
        assert e["error"] is None
        assert e["stages"] == ["forward", "loss", "gradient"]


def test_lstm_state_width_fails_at_its_layer_and_line(reports):
    r = reports["rules/SC402_bad.py"]
    path = FIXTURES / "rules" / "SC402_bad.py"
    line = line_of(path, "initial_state=[h, c]")
    found = [d for d in r.diagnostics if d.code == "SC402"]  # one per state, h and c
    assert found and all(d.confirmed is True and d.line == line for d in found)
    (e, *_) = executions(r)
    assert e["error"]["stage"] == "forward" and e["error"]["line"] == line
    assert "128" in e["error"]["message"] and "64" in e["error"]["message"]
    assert all(f"SC402_bad.py:{line}" in d.run for d in found)


@pytest.mark.backend
def test_every_fixture_runs_without_an_inference_defect():
    paths = sorted(str(p) for p in FIXTURES.glob("*.py")) + sorted(
        str(p) for p in (FIXTURES / "rules").glob("*.py"))
    # SC802/SC107 bad: a layer whose declared shape lies, which running it shows
    paths = [p for p in paths if not p.endswith(("argv_model.py", "SC802_bad.py",
                                                 "SC107_bad.py"))]
    bad = []
    seen: dict[str, list] = {}
    for path, r in zip(paths, check_files_together(paths, timeout=1500, run=CPU)):
        for d in r.diagnostics:
            if d.code in ("SC802", "SC803"):
                bad.append(f"{path}: {d.code} {d.message}")
        expected_bad = path.endswith("_bad.py")
        for d in r.diagnostics:  # a bad fixture's findings are never refuted by running it
            if expected_bad and d.confirmed is False:
                bad.append(f"{path}: {d.code} not confirmed: {d.run}")
        if r.error is None:
            seen[Path(path).relative_to(ROOT).as_posix()] = sorted(
                ([d.code, d.layer, d.line, d.confirmed] for d in r.diagnostics),
                key=lambda row: [(v is not None, v) for v in row])  # None first
    assert bad == []
    same_on_every_backend(seen)


# The findings of each fixture under --run (code, layer, line, confirmed) on TensorFlow;
# every other backend must give the same, but for the differences listed below.
# After a rule changes: SHAPECHECK_UPDATE_FINDINGS=1 python -m pytest -k every_fixture_runs
RUN_FINDINGS = ROOT / "tests" / "run_findings.json"
_OTHERS = ("jax", "torch")
# (backend, fixture) -> what differs there, and why (an entry that no longer differs fails)
# TensorFlow's CPU kernels without oneDNN (a CPU without AVX-512) run no channels_first
# Conv2D: there --run's SC801 on these fixtures is TensorFlow's own failure, elsewhere the
# model runs. Their SC801s are left out of the comparison.
MACHINE_DEPENDENT = {"fixtures/rules/SC610_bad.py", "fixtures/rules/SC610_good.py"}
BACKEND_DIFFERENCES: dict[tuple[str, str], str] = {
    **{(b, "fixtures/keras2_data_forms.py"): "SC606 at line 24: only TensorFlow's fit "
       "fixes a generator's sequence length from its first two batches" for b in _OTHERS},
    ("jax", "fixtures/rules/SC607_bad.py"): "out-of-range ids: XLA's gather does not "
    "raise, so --run cannot confirm SC607 (confirmed null)",
    **{(b, "fixtures/rules/SC702_good.py"): "SC902 (info): a custom train_step is not "
       "traced off TensorFlow" for b in _OTHERS},
    **{("torch", f): "PyTorch 2.13 CPU: Keras's own train_on_batch raises 'grad_input must "
       "be contiguous' in the backward pass of this model (MaxPooling2D, or the loss over "
       "rank-4 outputs): --run's SC801 warning is that real failure"
       for f in ("fixtures/clean_unet.py", "fixtures/rules/SC502_bad.py",
                 "fixtures/rules/SC502_good.py", "fixtures/rules/SC504_bad.py")},
    ("torch", "fixtures/clean_transformer.py"): "PyTorch: positional embeddings computed "
    "eagerly when the model is built keep a graph that the first backward pass frees; "
    "Keras's own second train_on_batch raises it too (SC801 warning)",
    **{(b, "fixtures/rules/SC801_bad.py"): "a hard-coded batch size is refused when the "
       "model is built (SC101) on JAX and PyTorch, found only by --run (SC801) on "
       "TensorFlow" for b in _OTHERS},
}


def same_on_every_backend(seen: dict[str, list]) -> None:
    import json

    backend = keras.backend.backend()
    if backend == "tensorflow" and os.environ.get("SHAPECHECK_UPDATE_FINDINGS"):
        RUN_FINDINGS.write_text(json.dumps(seen, indent=1, sort_keys=True) + "\n")
    expected = json.loads(RUN_FINDINGS.read_text())
    for found in (seen, expected):
        for name in MACHINE_DEPENDENT & set(found):
            found[name] = [f for f in found[name] if f[0] != "SC801"]
    differ = {name: (expected.get(name), got) for name, got in seen.items()
              if expected.get(name) != got and (backend, name) not in BACKEND_DIFFERENCES}
    assert not differ, "\n".join(f"{k}: TensorFlow {a}, {backend} {b}"
                                  for k, (a, b) in differ.items())
    stale = [name for (b, name) in BACKEND_DIFFERENCES
             if b == backend and name in seen and seen[name] == expected.get(name)]
    assert not stale, f"the same on {backend} now: drop from BACKEND_DIFFERENCES: {stale}"


# --- the Python API ----------------------------------------------------------------------


def _bn_model() -> keras.Model:
    x = keras.Input((None, 6))
    h = layers.BatchNormalization()(layers.Conv1D(8, 3, padding="same")(x))
    y = layers.Dense(2, name="head")(layers.Dropout(0.5)(layers.GlobalMaxPooling1D()(h)))
    model = keras.Model(x, y)
    model.compile(optimizer="adam", loss="mse")
    return model


def test_run_leaves_weights_statistics_and_optimizer_unchanged():
    model = _bn_model()
    before = [np.array(v.numpy()) for v in model.variables]
    report = shapecheck.check_model(model, run=True, device="cpu")
    (e, *_) = report.models[0].run["executions"]
    assert e["stages"] == ["forward", "loss", "gradient"]
    after = [np.array(v.numpy()) for v in model.variables]
    assert all(np.array_equal(a, b) for a, b in zip(before, after))
    assert int(model.optimizer.iterations.numpy()) == 0


def test_dims_fix_the_sizes_of_made_up_inputs():
    report = shapecheck.check_model(_bn_model(), {"batch": 3, "T": 7}, run=True, device="cpu")
    runs = report.models[0].run["executions"]
    assert runs and all(e["dims"] == {"batch": 3, "T": 7} for e in runs)


def folded_loss(y, p):
    return ops.mean(ops.reshape(p - y, (7, -1)))  # fits only sizes with 7 | batch * T * 2


def test_one_failure_at_every_size_is_one_finding():
    inp = keras.Input((None, 3))
    model = keras.Model(inp, layers.Dense(2)(inp))
    model.compile(optimizer="adam", loss=folded_loss)
    report = shapecheck.check_model(model, run=True, device="cpu")
    failed = [e for e in report.models[0].run["executions"] if e.get("error")]
    assert len(failed) >= 2  # the loss fails at each size tried
    (d,) = report.diagnostics
    assert (d.code, d.line) == ("SC801", folded_loss.__code__.co_firstlineno + 1)
    assert "the loss `folded_loss`" in d.message


class OwnStep(keras.Model):
    def train_step(self, data):  # computes its loss itself: compile() is given none
        x, y = data
        return {"loss": ops.mean(ops.abs(self(x) - ops.reshape(y, (-1, 1))))}


def test_a_step_of_the_models_own_without_a_compiled_loss_is_not_a_run_failure():
    inp = keras.Input((4,))
    own = OwnStep(inp, layers.Dense(1)(inp))
    own.compile(optimizer="adam")
    x, y = np.zeros((8, 4), "float32"), np.zeros((8,), "float32")
    own.fit(x, y, epochs=1, verbose=0)  # Keras trains it
    report = shapecheck.check_model(own, data=x, targets=y, run=True, device="cpu")
    assert report.diagnostics == []
    plain = keras.Model(inp, layers.Dense(1)(inp))
    plain.compile(optimizer="adam")
    with pytest.raises(ValueError, match="No loss to compute"):
        plain.fit(x, y, epochs=1, verbose=0)
    (d,) = shapecheck.check_model(plain, data=x, targets=y, run=True,
                                  device="cpu").diagnostics
    assert d.code == "SC801" and "No loss to compute" in d.message


def test_unknown_dim_name_says_which_dims_exist():
    report = shapecheck.check_model(_bn_model(), {"Q": 3}, run=True, device="cpu")
    (note,) = report.models[0].run["notes"]
    assert "Q" in note and "batch" in note and "T" in note
    assert report.models[0].run["executions"]  # the other sizes are still chosen


def test_a_model_too_large_for_the_memory_limit_is_skipped_with_a_note():
    from shapecheck.graph.model import analyze

    options = RunOptions(device="cpu", memory_limit=1000)
    (entry,), found = analyze([(_bn_model(), None, None)], run=options)
    assert entry.run["executions"] == []
    assert "needs about" in entry.run["skipped"] and "limit" in entry.run["skipped"]
    assert found == []


class Slow(layers.Layer):
    def call(self, x):
        import time

        time.sleep(3)
        return x


def test_the_run_time_limit_stops_a_slow_model():
    x = keras.Input((4,))
    model = keras.Model(x, layers.Dense(1)(Slow()(x)))
    report = shapecheck.check_model(model, run=True, device="cpu", run_timeout=0.5)
    run = report.models[0].run
    assert run["executions"] == []
    assert "time limit" in run["skipped"]


def test_custom_layer_declaring_a_wrong_shape_is_reported():
    class TimePool(layers.Layer):
        def call(self, x):
            return ops.mean(x, axis=1)

        def compute_output_shape(self, shape):
            return shape

    x = keras.Input((None, 5))
    model = keras.Model(x, layers.Dense(2)(TimePool(name="pool")(x)))
    report = shapecheck.check_model(model, run=True, device="cpu")
    (d,) = report.diagnostics
    assert (d.code, d.layer) == ("SC802", "pool")
    assert "declares (?, ?, 5)" in d.message


def test_a_wrong_inferred_shape_is_reported_as_shapecheck_s_own_defect():
    from shapecheck.verify.execute import run_model
    from shapecheck.verify.plans import synthetic_plans
    from shapecheck.shapes.infer import infer_model
    from shapecheck.rules.context import ModelContext
    from shapecheck.rules.runtime import defects

    model = _bn_model()
    ctx = ModelContext(model, infer_model(model), lambda p: p)
    run = run_model(ctx, synthetic_plans(ctx, CPU, {}), CPU)
    assert defects(ctx, run) == []
    dense = ctx.by_name["head"]
    ctx._out[dense.id] = [(ctx._out[dense.id][0][0], 3)]  # as if inference said 3 units
    (d,) = defects(ctx, run)
    assert (d.code, d.layer) == ("SC803", "head")
    assert "defect in shapecheck" in d.message


def test_a_finding_the_run_does_not_show_is_marked_not_confirmed():
    from shapecheck.verify.execute import run_model
    from shapecheck.verify.plans import synthetic_plans
    from shapecheck.shapes.infer import infer_model
    from shapecheck.rules.context import ModelContext
    from shapecheck.rules.merge import MERGE_MISMATCH
    from shapecheck.rules.runtime import confirm

    model = _bn_model()
    ctx = ModelContext(model, infer_model(model), lambda p: p)
    claim = ctx.finding(MERGE_MISMATCH, ctx.by_name["head"], "a claim that is wrong")
    run = run_model(ctx, synthetic_plans(ctx, CPU, {}), CPU)
    assert confirm(ctx, run, [claim]) == []
    assert claim.confirmed is False
    assert "ran (forward, loss, gradient)" in claim.run and "without an error" in claim.run


# --- the command ---------------------------------------------------------------------------


def shapecheck_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "shapecheck", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)


def test_console_marks_confirmed_findings_and_the_run():
    proc = shapecheck_cli("fixtures/merge_time_lengths.py", "--run", "--device", "cpu")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    text = " ".join(proc.stdout.split())
    assert "✓ confirmed" in text and "run on CPU" in text and "failed in the forward stage" \
        in text


def test_dims_without_run_is_a_usage_error():
    proc = shapecheck_cli("fixtures/clean_unet.py", "--dims", "T=3")
    assert proc.returncode == 2 and "--run" in proc.stderr


def test_static_findings_stand_when_execution_cannot_start(monkeypatch):
    from shapecheck.verify import execute

    def broken(choice):
        raise RuntimeError("the backend's runtime is missing")

    monkeypatch.setattr(execute, "pick_device", broken)
    a, b = keras.Input((32, 16)), keras.Input((16,))
    model = keras.Model([a, b], layers.Add(name="merge")([b, a]))
    report = shapecheck.check_model(model, run=True, device="cpu")
    [d] = report.diagnostics
    assert d.code == "SC303" and d.confirmed is None  # found statically, not run
    run = report.models[0].run
    assert run["executions"] == []
    assert "RuntimeError: the backend's runtime is missing" in run["skipped"]


def test_the_run_names_its_backend():
    a = keras.Input((4,))
    model = keras.Model(a, layers.Dense(2)(a))
    run = shapecheck.check_model(model, run=True, device="cpu").models[0].run
    assert run["backend"] == keras.backend.backend() and run["device"] == "CPU"


def test_device_gpu_without_a_gpu_is_a_clear_error():
    import tensorflow as tf

    if tf.config.list_physical_devices("GPU"):
        pytest.skip("this machine has a GPU")
    proc = shapecheck_cli("fixtures/clean_unet.py", "--run", "--device", "gpu")
    assert proc.returncode == 2
    assert "TensorFlow (the Keras backend) sees no GPU" in " ".join(proc.stdout.split())
    assert "Traceback" not in proc.stdout + proc.stderr


def test_an_op_path_in_a_framework_error_is_read_back_to_its_layer():
    from shapecheck.verify.execute import call_for_path, op_path
    from shapecheck.shapes.infer import infer_model
    from shapecheck.rules.context import ModelContext

    a, b = keras.Input((500,)), keras.Input((500,))
    model = keras.Model([a, b], layers.Concatenate(name="concat3")([a, b]))
    ctx = ModelContext(model, infer_model(model), lambda p: p)
    message = ("ConcatOffset: dimension 0 mismatch [4 500] vs [47 500] [[{{node "
               "gradient_tape/functional_1/concat3_1/ConcatOffset}}]]")
    path = op_path(message)
    assert path == "gradient_tape/functional_1/concat3_1/ConcatOffset"
    assert call_for_path(ctx, path).name == "concat3"
    assert call_for_path(ctx, "gradient_tape/functional_1/Mean/Sum") is None
