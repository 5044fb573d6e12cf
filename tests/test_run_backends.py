"""``--run`` on every Keras backend: an error raised in the loss or in the gradient of the
training step is read back to the layer or the loss where it happened, and to the user's
line, from the frames of the error (and, for a gradient, by differentiating each layer
alone) -- not only from TensorFlow's op paths.

Run under each backend: ``python -m pytest -m backend tests/test_run_backends.py`` with
``KERAS_BACKEND=jax`` or ``torch`` in an environment that has that backend.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import textwrap
from pathlib import Path

import pytest

from shapecheck.script.runner import check_files_together
from shapecheck.verify.plans import RunOptions

pytestmark = pytest.mark.backend

CPU = RunOptions(device="cpu")

SCRIPTS = {
    # a loss function of the user's that assumes 5 outputs; the model gives 4
    "custom_loss.py": '''
        import numpy as np
        import keras
        from keras import layers, ops


        def weighted_loss(y_true, y_pred):
            weights = ops.ones((5, 1))
            return ops.mean(ops.matmul(y_pred, weights)) + ops.mean(y_true)


        inputs = keras.Input((8,))
        h = layers.Dense(16, activation="relu", name="hidden")(inputs)
        out = layers.Dense(4, name="head")(h)
        model = keras.Model(inputs, out)
        model.compile(optimizer="adam", loss=weighted_loss)
        model.fit(np.zeros((32, 8)), np.zeros((32, 4)), batch_size=8, epochs=1)
    ''',
    # targets of output "b" are 5 wide, the output 3: the loss of "b" raises
    "two_losses.py": '''
        import numpy as np
        import keras
        from keras import layers, ops


        def pair_loss(y_true, y_pred):
            return ops.mean(ops.square(y_true - y_pred), axis=-1)


        inputs = keras.Input((8,))
        h = layers.Dense(16, activation="relu", name="hidden")(inputs)
        a = layers.Dense(4, name="head_a")(h)
        b = layers.Dense(3, name="head_b")(h)
        model = keras.Model(inputs, {"a": a, "b": b})
        model.compile(optimizer="adam", loss={"a": "mse", "b": pair_loss})
        model.fit(np.zeros((32, 8)), {"a": np.zeros((32, 4)), "b": np.zeros((32, 5))},
                  batch_size=8, epochs=1)
    ''',
    # a custom gradient of another shape than its input: only the backward pass fails
    "custom_gradient.py": '''
        import numpy as np
        import keras
        from keras import layers, ops


        class Clip(layers.Layer):
            def call(self, x):
                @ops.custom_gradient
                def clip(t):
                    def grad(*args, upstream=None):
                        return ops.ones((3, 7))
                    return t, grad
                return clip(x)


        inputs = keras.Input((8,))
        h = layers.Dense(16, activation="relu", name="hidden")(inputs)
        h = Clip(name="clip")(h)
        out = layers.Dense(4, name="head")(h)
        model = keras.Model(inputs, out)
        model.compile(optimizer="adam", loss="mse")
        model.fit(np.zeros((32, 8)), np.zeros((32, 4)), batch_size=8, epochs=1)
    ''',
    # a weight regularizer that slices the kernel on the wrong axes: raised in the loss
    "regularizer.py": '''
        import numpy as np
        import keras
        from keras import layers, ops


        class Smooth(keras.regularizers.Regularizer):
            def __call__(self, w):
                return ops.sum(ops.square(w[1:] - w[:, :-1]))


        inputs = keras.Input((8,))
        h = layers.Dense(16, activation="relu", name="hidden",
                         kernel_regularizer=Smooth())(inputs)
        out = layers.Dense(4, name="head")(h)
        model = keras.Model(inputs, out)
        model.compile(optimizer="adam", loss="mse")
        model.fit(np.zeros((32, 8)), np.zeros((32, 4)), batch_size=8, epochs=1)
    ''',
}


@pytest.fixture(scope="module")
def checked(tmp_path_factory) -> dict[str, tuple[Path, object]]:
    folder = tmp_path_factory.mktemp("run_backends")
    paths = []
    for name, text in SCRIPTS.items():
        path = folder / name
        path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
        paths.append(path)
    reports = check_files_together([str(p) for p in paths], timeout=600, run=CPU)
    return {p.name: (p, r) for p, r in zip(paths, reports)}


def line_of(path: Path, needle: str) -> int:
    for number, text in enumerate(path.read_text().splitlines(), start=1):
        if needle in text:
            return number
    raise AssertionError(f"{needle!r} not in {path}")


def failed(report: object) -> dict:
    """The error of the report's first failed execution."""
    errors = [e["error"] for m in report.models for e in (m.run or {}).get("executions", [])
              if e["error"] is not None]
    assert errors, [m.run for m in report.models]
    return errors[0]


def test_an_error_in_the_user_s_loss_function_names_the_loss_and_its_line(checked):
    path, report = checked["custom_loss.py"]
    (d,) = [d for d in report.diagnostics if d.code == "SC801"]
    assert d.severity == "error" and d.confirmed is True
    # at the user's line that raised, in their loss function
    assert d.layer is None and d.line == line_of(path, "ops.matmul(y_pred, weights)")
    assert "the loss `weighted_loss`" in d.message
    assert "in the compiled loss" in d.message
    err = failed(report)
    assert err["stage"] == "loss" and err["loss"] == "weighted_loss"
    assert err["output"] == "head"
    assert err["raised_at"]["line"] == line_of(path, "ops.matmul(y_pred, weights)")
    assert Path(err["raised_at"]["path"]).name == "custom_loss.py"


def test_the_loss_of_one_output_is_told_from_the_others(checked):
    path, report = checked["two_losses.py"]
    # the static finding is at the output whose targets are wrong, and the run shows it
    (d,) = [d for d in report.diagnostics if d.code == "SC703"]
    assert (d.layer, d.line, d.confirmed) == ("head_b", line_of(path, 'name="head_b"'), True)
    assert not [d for d in report.diagnostics if d.code == "SC801"]
    err = failed(report)
    assert (err["stage"], err["loss"], err["output"]) == ("loss", "pair_loss", "b")
    assert err["raised_at"]["line"] == line_of(path, "y_true - y_pred")


def test_a_gradient_of_the_wrong_shape_is_found_at_its_layer(checked):
    path, report = checked["custom_gradient.py"]
    (d,) = [d for d in report.diagnostics if d.code == "SC801"]
    assert (d.layer, d.line) == ("clip", line_of(path, 'Clip(name="clip")'))
    assert d.severity == "error" and d.confirmed is True
    assert "in the gradient of the training step" in d.message
    err = failed(report)
    assert (err["stage"], err["layer"], err["line"]) == ("gradient", "clip", d.line)


def test_a_regularizer_that_raises_is_found_at_the_layer_of_its_weight(checked):
    path, report = checked["regularizer.py"]
    (d,) = [d for d in report.diagnostics if d.code == "SC801"]
    assert (d.layer, d.line) == ("hidden", line_of(path, 'name="hidden"'))
    assert d.severity == "error" and "in the compiled loss" in d.message
    err = failed(report)
    assert (err["stage"], err["layer"]) == ("loss", "hidden")
    assert err["raised_at"]["line"] == line_of(path, "w[1:] - w[:, :-1]")


# --- benchmarks/gpu_check.py: the comparison, and no GPU ---------------------------------------

ROOT = Path(__file__).resolve().parent.parent


def gpu_check():
    """``benchmarks/gpu_check.py``, imported (benchmarks are scripts, not a package)."""
    import importlib.util
    import sys

    if "gpu_check" not in sys.modules:
        spec = importlib.util.spec_from_file_location("gpu_check", ROOT / "benchmarks" /
                                                      "gpu_check.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules["gpu_check"] = module  # its dataclasses look their module up
        spec.loader.exec_module(module)
    return sys.modules["gpu_check"]


def _document(device: str) -> dict:
    """A ``--format json`` document of one script, as ``--run`` on ``device`` gives it."""
    error = {"stage": "forward", "layer": "fuse", "path": "m.py", "line": 15,
             "type": "InvalidArgumentError", "message": "Incompatible shapes: [16,50,16] vs. "
             "[16,40,16]", "input_shapes": [[16, 50, 16], [16, 40, 16]], "op": None}
    return {"schema": "shapecheck/1", "files": [{
        "path": "m.py", "status": "findings",
        "diagnostics": [
            {"code": "SC604", "model": "m", "layer": "fuse", "line": 15, "confirmed": True,
             "message": "..."},
            {"code": "SC402", "model": "m", "layer": "lstm", "line": 9, "confirmed": True},
            {"code": "SC402", "model": "m", "layer": "lstm", "line": 9, "confirmed": True},
            {"code": "SC607", "model": "m", "layer": "emb", "line": 7, "confirmed": True}],
        "models": [{"name": "m", "run": {
            "device": device, "backend": "tensorflow", "skipped": None, "notes": [],
            "executions": [{"data": "`fit` at m.py:20, batch 1 of 4", "dims": {"batch": 16},
                            "stages": [], "seconds": 0.5, "error": error}]}}]}]}


def test_gpu_check_tells_what_differs_between_two_runs():
    import copy

    check = gpu_check()
    cpu = _document("CPU")
    gpu = _document("GPU:0 (NVIDIA H100)")
    run = gpu["files"][0]["models"][0]["run"]["executions"][0]
    run["seconds"] = 0.1
    run["error"]["message"] = "Incompatible shapes: [16,50,16] vs. [16,40,16] on GPU"
    gpu["files"][0]["diagnostics"][3]["confirmed"] = None  # ids are not checked on a GPU
    (c,) = check.compare(cpu, gpu)
    assert c.same and c.seconds == (0.5, 0.1)
    assert c.expected == ["SC607 at line 7 (`emb`) in m confirmed True on cpu, None on gpu"]
    assert len(c.messages) == 1 and "on GPU" in c.messages[0]

    other = copy.deepcopy(gpu)
    other["files"][0]["models"][0]["run"]["executions"][0]["error"]["input_shapes"][1] = \
        [16, 48, 16]
    other["files"][0]["diagnostics"].pop(1)  # one SC402 of the two
    (c,) = check.compare(cpu, other)
    assert not c.same
    assert "SC402 at line 9 (`lstm`) in m: 2 on cpu, 1 on gpu" in c.differences
    (run_diff,) = [d for d in c.differences if d.startswith("model m")]
    assert "execution 1: error" in run_diff and "[16, 48, 16]" in run_diff

    table = check.markdown([check.BackendResult("tensorflow", "python", [
        check.Command("cpu", wall=3.0), check.Command("gpu", wall=2.0)], [c])],
        "NVIDIA H100 (nvidia-smi)", ("cpu", "gpu"), 2, False)
    assert "GPU: NVIDIA H100 (nvidia-smi)" in table
    assert "| TensorFlow | 1 | 0 | 1 | 0 | 3.0 | 2.0 | 0.5 | 0.1 |" in table
    assert "| TensorFlow | m.py | " in table


def _has_gpu() -> bool:
    from shapecheck.verify.backends import gpus

    return bool(gpu_check().nvidia_smi() or gpus())


def test_gpu_check_without_a_gpu_says_so_in_one_line():
    import subprocess
    import sys

    if _has_gpu():
        pytest.skip("this machine has a GPU")
    proc = subprocess.run([sys.executable, "benchmarks/gpu_check.py", "--only",
                           "fixtures/clean_unet.py"], cwd=ROOT, capture_output=True,
                          text=True, timeout=600)
    said = [line for line in (proc.stdout + proc.stderr).splitlines() if line.strip()]
    assert proc.returncode == 2
    assert len(said) == 1 and "no GPU on this machine" in said[0], said
    assert "Traceback" not in proc.stdout + proc.stderr


def test_gpu_check_compares_two_real_runs_on_the_cpu():
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "benchmarks/gpu_check.py", "--devices", "cpu",
                           "cpu", "--only", "fixtures/merge_time_lengths.py", "-j", "1"],
                          cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    import keras

    name = gpu_check().NAMES[keras.backend.backend()]
    assert f"| {name} | 1 | 1 | 0 | 0 |" in proc.stdout
    assert "Traceback" not in proc.stderr
