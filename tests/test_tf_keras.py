"""Scripts on legacy Keras 2 (tf_keras) are checked like Keras 3 ones, and nothing
they do trains or writes the user's files."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import shapecheck

pytest.importorskip("tf_keras", reason="tf_keras (legacy Keras 2) is not installed")

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fixtures" / "tf_keras"


def check(tmp_path: Path, name: str, **env: str) -> shapecheck.Report:
    if not (tmp_path / name).exists():
        shutil.copy(FIXTURES / name, tmp_path)
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        with contextlib.chdir(tmp_path):
            return shapecheck.check_script(name)
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def found(report: shapecheck.Report) -> set[tuple[str, int]]:
    [f] = report.files
    return {(d.code, d.line) for d in f.diagnostics}


def test_seed000_in_keras2_is_found_and_its_csv_logger_writes_nothing(tmp_path: Path) -> None:
    report = check(tmp_path, "seed000_captioning.py")
    [f] = report.files
    assert f.error is None, f.error
    assert ("SC601", 32) in found(report)  # 47 vs 4 rows meet at concat3
    [d] = [d for d in f.diagnostics if d.code == "SC601"]
    assert "concat3" in d.message and "47" in d.message and "4" in d.message
    [model] = f.models
    assert model.checked and any("tf_keras" in n.message for n in model.notes)
    # the fit was a dry run: its CSVLogger wrote only to the scratch folder
    assert sorted(p.name for p in tmp_path.iterdir()) == ["seed000_captioning.py"]


def test_seed001_through_legacy_tf_keras_finds_the_broadcast_add(tmp_path: Path) -> None:
    """The script sets TF_USE_LEGACY_KERAS itself and imports `tensorflow.keras`; it
    uses a Lambda and a TensorFlow op on Keras tensors."""
    report = check(tmp_path, "seed001_gru_add.py")
    [f] = report.files
    assert f.error is None, f.error
    codes = found(report)
    assert ("SC303", 22) in codes  # add() of (batch, 16) and (batch, 32, 16)
    assert ("SC405", 25) in codes  # go_backwards GRU merged step by step
    [model] = f.models
    assert [layer.output_shapes[0] for layer in model.layers][-1] == [
        "batch", 32, 32, 17]


def test_a_clean_keras2_script_checks_clean_and_runs_on(tmp_path: Path) -> None:
    report = check(tmp_path, "clean_classifier.py")
    [f] = report.files
    assert f.error is None, f.error
    assert f.status == "clean", [(d.code, d.line, d.message) for d in f.diagnostics]
    assert len(f.models) == 3 and all(m.checked for m in f.models)
    # the script saw tf_keras's own History, evaluate's scalars, predictions and a
    # checkpoint it reloads with tf_keras
    assert ("history tf_keras.src.callbacks ['accuracy', 'loss', 'val_accuracy', "
            "'val_loss'] 3") in f.output
    assert "evaluate float float" in f.output
    assert "predict (5, 3)" in f.output
    assert "reloaded tf_keras.src.engine.sequential" in f.output
    shapes = {layer.name: layer.output_shapes[0] for m in f.models for layer in m.layers}
    assert shapes["concatenate"] == ["batch", "T_left + T_right", 16]
    assert shapes["tf.concat"] == ["batch", 32]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clean_classifier.py"]


def test_tf_keras_through_the_environment_variable(tmp_path: Path) -> None:
    script = tmp_path / "legacy_env.py"
    script.write_text(
        "import numpy as np\n"
        "from tensorflow import keras\n"
        "inp = keras.Input(shape=(10,))\n"
        "out = keras.layers.Dense(3)(inp)\n"
        "model = keras.Model(inp, out)\n"
        "assert type(model).__module__.startswith('tf_keras'), type(model)\n"
        "model.compile(loss='mse')\n"
        "model.fit(np.zeros((8, 12)), np.zeros((8, 3)))\n")
    report = check(tmp_path, "legacy_env.py", TF_USE_LEGACY_KERAS="1")
    [f] = report.files
    assert f.error is None, f.error
    assert any(d.code.startswith("SC6") and d.line == 8 for d in f.diagnostics), \
        [(d.code, d.line) for d in f.diagnostics]


def test_a_subclassed_keras2_model_is_not_checked_and_says_why(tmp_path: Path) -> None:
    script = tmp_path / "subclassed.py"
    script.write_text(
        "import numpy as np\n"
        "import tf_keras as keras\n"
        "class Net(keras.Model):\n"
        "    def __init__(self):\n"
        "        super().__init__()\n"
        "        self.dense = keras.layers.Dense(2)\n"
        "    def call(self, x):\n"
        "        return self.dense(x)\n"
        "model = Net()\n"
        "model.compile(loss='mse')\n"
        "history = model.fit(np.zeros((8, 4)), np.zeros((8, 2)), epochs=2)\n"
        "print('epochs', len(history.history['loss']))\n")
    report = check(tmp_path, "subclassed.py")
    [f] = report.files
    assert f.error is None, f.error
    assert f.status == "unchecked" and not f.no_model
    [model] = f.models
    assert not model.checked
    assert model.reason.startswith("tf_keras model: not checked")
    assert "subclassed" in model.reason
    assert "epochs 2" in f.output  # still a dry run: nothing trained


def test_the_keras2_fixture_really_fails_under_python(tmp_path: Path) -> None:
    """What shapecheck reports is what Keras 2 itself raises when the script runs."""
    shutil.copy(FIXTURES / "seed000_captioning.py", tmp_path)
    script = (tmp_path / "seed000_captioning.py")
    script.write_text(script.read_text().replace("epochs=20, steps_per_epoch=10",
                                                 "epochs=1, steps_per_epoch=1"))
    real = subprocess.run([sys.executable, script.name], cwd=tmp_path, capture_output=True,
                          text=True, timeout=600)
    assert real.returncode != 0
    # the forward concat, or (as in the seed) its gradient's ConcatOffset
    assert re.search(r"\[47[ ,]500\]", real.stderr) and re.search(r"\[4[ ,]500\]", real.stderr), \
        real.stderr[-2000:]


def test_run_executes_the_keras2_models_and_confirms(tmp_path: Path) -> None:
    from shapecheck.script.runner import check_files_together
    from shapecheck.verify.plans import RunOptions

    names = ["seed000_captioning.py", "clean_classifier.py"]
    for name in names:
        shutil.copy(FIXTURES / name, tmp_path)
    with contextlib.chdir(tmp_path):
        seed, clean = check_files_together(names, timeout=600, run=RunOptions(device="cpu"))
    [d] = [d for d in seed.diagnostics if d.code == "SC601"]
    assert d.confirmed is True and "concat3" in d.run
    assert clean.status == "clean", [(d.code, d.line, d.run) for d in clean.diagnostics]
    assert all(m.run and m.run["executions"] for m in clean.models)


def test_keras2_applications_check_clean(tmp_path: Path) -> None:
    """Real Keras 2 models: unknown image sizes, "/" in layer names (DenseNet),
    separable convolutions; no finding, no note of a lost option."""
    (tmp_path / "apps.py").write_text(
        "import tf_keras as keras\n"
        "a = keras.applications.MobileNetV2(weights=None, include_top=False,\n"
        "                                   input_shape=(None, None, 3))\n"
        "b = keras.applications.DenseNet121(weights=None, include_top=False,\n"
        "                                   input_shape=(None, None, 3))\n"
        "c = keras.applications.Xception(weights=None)\n")
    report = check(tmp_path, "apps.py")
    [f] = report.files
    assert f.status == "clean", [(d.code, d.layer, d.message) for d in f.diagnostics] + [
        m.reason for m in f.models]
    assert [m.name for m in f.models] == ["mobilenetv2_1.00_None", "densenet121", "xception"]
    assert all(len(m.layers) > 100 for m in f.models)
    lost = [n.message for m in f.models for n in m.notes if "checked without it" in n.message]
    assert lost == []


def test_a_call_keras2_refuses_is_a_finding_at_its_line(tmp_path: Path) -> None:
    (tmp_path / "crash.py").write_text(
        "import tf_keras as keras\n"
        "from tf_keras import layers\n"
        "a = keras.Input((10, 4))\n"
        "b = keras.Input((12, 4))\n"
        "x = layers.Concatenate(axis=-1)([a, b])\n"
        "model = keras.Model([a, b], x)\n")
    report = check(tmp_path, "crash.py")
    [f] = report.files
    assert f.error is not None and f.error.kind == "script-error"  # Keras 2 stopped there
    [d] = f.diagnostics
    assert (d.code, d.line, d.layer) == ("SC301", 5, "concatenate")
    assert "10 vs 12" in d.message


def test_a_keras2_option_that_changes_shapes_leaves_the_model_unchecked(tmp_path: Path) -> None:
    (tmp_path / "time_major.py").write_text(
        "import tf_keras as keras\n"
        "inp = keras.Input((None, 4))\n"
        "out = keras.layers.LSTM(8, time_major=True, return_sequences=True)(inp)\n"
        "model = keras.Model(inp, out)\n")
    report = check(tmp_path, "time_major.py")
    [f] = report.files
    [model] = f.models
    assert not model.checked and "time_major=True" in model.reason
    assert f.diagnostics == []
