"""`shapecheck model.keras` / `model.h5`: saved models, loaded in safe mode in a child.

The saved files are written at test time, by a script run in its own process
(so that the custom layer it registers is unknown where shapecheck loads it).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from shapecheck.script.runner import check_file

BUILD = textwrap.dedent('''
    import keras
    from keras import layers


    @keras.saving.register_keras_serializable(package="mypkg")
    class Doubler(layers.Layer):
        def call(self, x):
            return x * 2


    def buggy():  # a GRU's last step added to a GRU's sequence: SC303 at `add`
        inp = keras.Input(shape=(32, 8), name="frames")
        a = layers.GRU(16, return_sequences=False, name="gru1")(inp)
        b = layers.GRU(16, return_sequences=True, name="gru1_b")(inp)
        model = keras.Model(inp, layers.add([a, b], name="merge"), name="buggy")
        model.compile(optimizer="adam", loss="mse")
        return model


    def clean():
        model = keras.Sequential([keras.Input(shape=(8,)), layers.Dense(4, name="hidden"),
                                  layers.Dense(3, activation="softmax", name="out")],
                                 name="clean")
        model.compile(optimizer="adam", loss="categorical_crossentropy")
        return model


    def churn():  # categorical crossentropy on one unit: SC701, from the saved compile
        inp = keras.Input(shape=(20,))
        out = layers.Dense(1, activation="sigmoid", name="churn")(inp)
        model = keras.Model(inp, out, name="churn_model")
        model.compile(optimizer="adam", loss="categorical_crossentropy")
        return model


    def lam():
        inp = keras.Input(shape=(4,))
        return keras.Model(inp, layers.Lambda(lambda x: x + 1, name="plus_one")(inp))


    def activation():  # a lambda activation: bytecode Keras cannot load back at all
        inp = keras.Input(shape=(4,))
        return keras.Model(inp, layers.Dense(3, activation=lambda t: t * 2, name="scaled")(inp))


    def custom():
        inp = keras.Input(shape=(4,))
        return keras.Model(inp, layers.Dense(2)(Doubler(name="twice")(inp)))


    for name, build in [("buggy", buggy), ("clean", clean), ("churn", churn),
                        ("lambda", lam), ("activation", activation), ("custom", custom)]:
        model = build()
        model.save(name + ".keras")
        model.save(name + ".h5")
    clean().save_weights("clean.weights.h5")
''')


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("saved")
    (folder / "build.py").write_text(BUILD)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    proc = subprocess.run([sys.executable, "build.py"], cwd=folder, env=env,
                          capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    data = (folder / "buggy.keras").read_bytes()
    (folder / "truncated.keras").write_bytes(data[: len(data) // 2])
    data = (folder / "buggy.h5").read_bytes()
    (folder / "truncated.h5").write_bytes(data[: len(data) // 2])
    (folder / "empty.keras").write_bytes(b"")
    (folder / "renamed.keras").write_bytes((folder / "clean.h5").read_bytes())
    return folder


def shapecheck(folder: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "shapecheck", *args], cwd=folder,
                          capture_output=True, text=True, timeout=300)


def by_path(doc: dict) -> dict[str, dict]:
    return {f["path"]: f for f in doc["files"]}


@pytest.fixture(scope="module")
def doc(saved: Path) -> dict:
    """One JSON run over every file (checked in parallel, each in its own process)."""
    names = ["buggy.keras", "buggy.h5", "clean.keras", "clean.h5", "churn.keras",
             "churn.h5", "lambda.keras", "lambda.h5", "activation.keras", "activation.h5",
             "custom.keras", "custom.h5",
             "truncated.keras", "truncated.h5", "empty.keras", "renamed.keras",
             "clean.weights.h5"]
    proc = shapecheck(saved, "--format", "json", *names)
    assert proc.returncode == 2, proc.stdout + proc.stderr  # some cannot be checked
    assert "Traceback" not in proc.stdout + proc.stderr
    out = by_path(json.loads(proc.stdout))
    assert sorted(out) == sorted(names)
    return out


@pytest.mark.parametrize("name", ["buggy.keras", "buggy.h5"])
def test_saved_model_finding_names_the_layer_and_the_file(doc: dict, name: str) -> None:
    f = doc[name]
    assert f["status"] == "findings" and f["error"] is None
    [d] = [d for d in f["diagnostics"] if d["code"] == "SC303"]
    assert d["layer"] == "merge" and d["model"] == "buggy"
    assert "`gru1`" in d["message"]
    assert d["path"] == name and d["line"] is None and d["source"] is None
    [model] = f["models"]
    assert model["path"] == name and model["line"] is None
    layers = {entry["name"]: entry for entry in model["layers"]}
    assert layers["gru1"]["output_shapes"] == [["batch", 16]]
    assert layers["merge"]["output_shapes"] == [["batch", 32, 16]]


@pytest.mark.parametrize("name", ["clean.keras", "clean.h5"])
def test_clean_saved_model_is_clean(doc: dict, name: str) -> None:
    f = doc[name]
    assert f["status"] == "clean" and f["error"] is None and f["diagnostics"] == []
    [model] = f["models"]
    assert model["kind"] == "sequential" and model["path"] == name
    assert [entry["name"] for entry in model["layers"]][-2:] == ["hidden", "out"]


@pytest.mark.parametrize("name", ["churn.keras", "churn.h5"])
def test_saved_compile_loss_is_checked(doc: dict, name: str) -> None:
    [d] = doc[name]["diagnostics"]
    assert d["code"] == "SC701" and d["layer"] == "churn" and d["path"] == name


@pytest.mark.parametrize("name", ["lambda.keras", "lambda.h5"])
def test_lambda_is_refused_by_safe_mode(doc: dict, name: str) -> None:
    f = doc[name]
    assert f["status"] == "failed" and f["models"] == [] and f["diagnostics"] == []
    assert f["error"]["kind"] == "safe-mode"
    message = f["error"]["message"]
    assert message.startswith(f"{name}: ")
    assert "safe mode" in message and "`plus_one`" in message
    assert "script that builds the model" in message
    assert "Traceback" not in message


@pytest.mark.parametrize("name", ["activation.keras", "activation.h5"])
def test_lambda_activation_is_named_without_its_bytecode(doc: dict, name: str) -> None:
    f = doc[name]
    assert f["status"] == "failed" and f["error"]["kind"] == "load-error"
    message = f["error"]["message"]
    assert "`scaled`" in message and "<Python bytecode>" in message
    assert "'value'" not in message and "Traceback" not in message


@pytest.mark.parametrize("name", ["custom.keras", "custom.h5"])
def test_unregistered_custom_layer_is_named(doc: dict, name: str) -> None:
    f = doc[name]
    assert f["status"] == "failed" and f["error"]["kind"] == "custom-object"
    message = f["error"]["message"]
    assert "`Doubler` (registered as `mypkg>Doubler`)" in message
    assert "register_keras_serializable" in message
    assert "Traceback" not in message and "Full object config" not in message


@pytest.mark.parametrize("name, why", [
    ("truncated.keras", "not a zip archive"),
    ("truncated.h5", "truncated"),
    ("empty.keras", "empty"),
    ("renamed.keras", "rename it to .h5"),
    ("clean.weights.h5", "weights only"),
])
def test_unreadable_file_is_reported(doc: dict, name: str, why: str) -> None:
    f = doc[name]
    assert f["status"] == "failed" and f["error"]["kind"] == "bad-file"
    assert why in f["error"]["message"] and "Traceback" not in f["error"]["message"]


def test_check_file_loads_in_a_child_and_leaves_the_file_alone(saved: Path) -> None:
    names = ["buggy.keras", "buggy.h5", "truncated.h5", "lambda.keras", "custom.h5"]
    before = {}
    for name in names:
        path = saved / name
        before[name] = (hashlib.sha256(path.read_bytes()).hexdigest(),
                        path.stat().st_mtime_ns, path.stat().st_size)
    listing = sorted(p.name for p in saved.iterdir())
    reports = {name: check_file(str(saved / name)) for name in names}
    assert sorted(p.name for p in saved.iterdir()) == listing  # nothing written beside
    for name in names:
        path = saved / name
        after = (hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_mtime_ns,
                 path.stat().st_size)
        assert after == before[name], name
    assert [d.code for d in reports["buggy.keras"].diagnostics] == ["SC303"]
    assert [d.code for d in reports["buggy.h5"].diagnostics] == ["SC303"]
    assert reports["truncated.h5"].error.kind == "bad-file"
    assert reports["lambda.keras"].error.kind == "safe-mode"
    assert reports["custom.h5"].error.kind == "custom-object"


def test_exit_codes_and_console_output(saved: Path) -> None:
    proc = shapecheck(saved, "buggy.keras")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    out = proc.stdout
    assert "loaded from" in out and "SC303" in out
    assert "--> buggy.keras\n" in out and "None" not in out
    proc = shapecheck(saved, "clean.h5")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    proc = shapecheck(saved, "lambda.h5")
    assert proc.returncode == 2 and "safe mode" in proc.stdout
    assert "Traceback" not in proc.stdout + proc.stderr
    proc = shapecheck(saved, "truncated.keras")
    assert proc.returncode == 2 and "could not be checked (bad-file)" in proc.stdout
    assert "Traceback" not in proc.stdout + proc.stderr


def test_a_script_that_registers_the_layer_can_load_it(saved: Path) -> None:
    """The fix the custom-object message gives: load it where the class is defined."""
    script = saved / "load_custom.py"
    script.write_text(BUILD.split("def buggy")[0]
                      + 'model = keras.saving.load_model("custom.keras")\n')
    proc = shapecheck(saved, "--format", "json", "load_custom.py")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    [model] = json.loads(proc.stdout)["files"][0]["models"]
    assert "twice" in [entry["name"] for entry in model["layers"]]


def test_h5_loss_saved_by_alias_is_read_from_the_file(saved: Path) -> None:
    """Keras 3.15 cannot compile an .h5 whose loss is "mse" ("Could not deserialize
    'keras.metrics.mse' because it is not a KerasSaveable subclass"): the model is
    loaded without its compile config and the loss is read from the file."""
    from shapecheck.script import saved as saved_mod
    from shapecheck.rules.losses import loss_name

    model, loss, notes = saved_mod.load(str(saved / "buggy.h5"))
    assert model.name == "buggy" and notes == []
    assert loss_name(loss) == "mean_squared_error"


def test_compile_config_keras_cannot_restore(saved: Path, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """When Keras fails on the compile config alone, the model is loaded without it and
    the loss is read from the file; if that fails too, a note says the loss is unchecked."""
    import keras

    from shapecheck.script import saved as saved_mod
    from shapecheck.rules.losses import loss_name

    real = keras.saving.load_model
    calls = []

    def failing_compile(path, compile=True, safe_mode=True, **kwargs):
        calls.append((compile, safe_mode))
        if compile:
            raise ValueError("compile config not understood")
        return real(path, compile=False, safe_mode=safe_mode)

    monkeypatch.setattr(keras.saving, "load_model", failing_compile)
    model, loss, notes = saved_mod.load(str(saved / "churn.keras"))
    assert calls == [(True, True), (False, True)]
    assert model.name == "churn_model" and notes == []
    assert loss_name(loss) == "categorical_crossentropy"

    monkeypatch.setattr(saved_mod, "_loss_from_config", lambda config: (None, []))
    result = tmp_path / "result.json"
    assert saved_mod.run_saved(str(result), str(saved / "churn.keras")) == 0
    [f] = [json.loads(result.read_text())]
    assert f["status"] == "clean"  # no loss, so no SC701
    [note] = [n for n in f["models"][0]["notes"] if n["kind"] == "compile-config"]
    assert "compile config not understood" in note["message"]
    assert "loss is not checked" in note["message"]
