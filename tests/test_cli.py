"""The `shapecheck` command on real scripts: output, JSON schema, exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fixtures"


def shapecheck(*args: str, cwd: Path = ROOT, timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "shapecheck", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=timeout)


def line_of(path: Path, needle: str) -> int:
    for number, text in enumerate(path.read_text().splitlines(), start=1):
        if needle in text:
            return number
    raise AssertionError(f"{needle!r} not in {path}")


def layer(doc: dict, name: str) -> dict:
    for f in doc["files"]:
        for m in f["models"]:
            for entry in m["layers"]:
                if entry["name"] == name:
                    return entry
    raise KeyError(name)


@pytest.fixture(scope="module")
def captioning() -> dict:
    proc = shapecheck("--format", "json", "fixtures/seed000_captioning.py")
    assert proc.returncode == 1, proc.stdout + proc.stderr  # its data has a finding
    return json.loads(proc.stdout)


def test_json_document_lists_layers_with_user_lines(captioning: dict) -> None:
    assert captioning["schema"] == "shapecheck/1"
    [f] = captioning["files"]
    assert f["path"] == "fixtures/seed000_captioning.py"
    assert f["status"] == "findings" and f["error"] is None
    concat3 = layer(captioning, "concat3")
    assert concat3["class"] == "Concatenate"
    assert concat3["inputs"] == ["lstm", "lstm_1"]
    assert concat3["output_shapes"] == [["batch", 1000]]
    assert concat3["path"] == "fixtures/seed000_captioning.py"
    src = FIXTURES / "seed000_captioning.py"
    assert concat3["line"] == line_of(src, 'name="concat3"')
    assert layer(captioning, "repeat_vector")["output_shapes"] == [["batch", 34, 256]]


def test_input_layers_are_listed_and_mask_ops_are_not(captioning: dict) -> None:
    [model] = captioning["files"][0]["models"]
    classes = [entry["class"] for entry in model["layers"]]
    assert classes.count("InputLayer") == 4
    assert "NotEqual" not in classes  # Embedding(mask_zero=True)'s own mask op


def test_fit_is_a_dry_run_and_script_argv_is_passed(tmp_path: Path) -> None:
    script = tmp_path / "argv_model.py"
    script.write_text((FIXTURES / "argv_model.py").read_text())
    proc = shapecheck("--format", "json", str(script), "--", "--units", "5", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    doc = json.loads(proc.stdout)
    assert layer(doc, "head")["output_shapes"] == [["batch", 5]]
    conv = layer(doc, "conv")["output_shapes"][0]
    assert conv[0] == "batch" and conv[2] == 8
    assert conv[1] == "floor((T - 3)/2) + 1"
    assert not (tmp_path / "argv_model_checkpoint.keras").exists()  # nothing trained


def test_console_output_shows_symbolic_shapes() -> None:
    proc = shapecheck("fixtures/clean_seq2seq.py")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "(batch, L_dec, 1000)" in proc.stdout
    assert "L_enc = axis 1 of input `enc`" in " ".join(proc.stdout.split())


@pytest.mark.parametrize("script, kind, needles", [
    ("raises.py", "script-error",
     ['raises.py", line 12', "FileNotFoundError: no data at train.npz"]),
    ("syntax_error.py", "syntax-error", ["syntax_error.py:3", "SyntaxError"]),
    ("exits.py", "exit", ["status 3", "no GPU found"]),
])
def test_failing_scripts_exit_2_with_one_clear_message(script: str, kind: str,
                                                       needles: list[str]) -> None:
    proc = shapecheck("--format", "json", f"fixtures/broken/{script}")
    assert proc.returncode == 2, proc.stdout + proc.stderr
    [f] = json.loads(proc.stdout)["files"]
    assert f["status"] == "failed"
    assert f["error"]["kind"] == kind
    for needle in needles:
        assert needle in f["error"]["message"]
    # The user's frames only: no frame of shapecheck, Keras or runpy.
    assert "shapecheck/" not in f["error"]["message"]
    assert "runpy" not in f["error"]["message"]


def test_models_built_before_a_script_error_are_still_reported() -> None:
    proc = shapecheck("--format", "json", "fixtures/broken/raises.py")
    [f] = json.loads(proc.stdout)["files"]
    assert [m["name"] for m in f["models"]] == ["before_error"]


def test_missing_file_and_non_script_and_hang() -> None:
    proc = shapecheck("--timeout", "15", "nothere.py", "pyproject.toml",
                      "fixtures/broken/hangs.py")
    assert proc.returncode == 2
    out = proc.stdout.replace("\n", " ")
    assert "nothere.py: no such file" in out
    assert "not a Python script" in out
    assert "did not finish within 15 s" in out
    assert "Traceback" not in proc.stdout + proc.stderr


def test_a_script_error_gives_its_exception_and_line_in_every_format() -> None:
    raises = FIXTURES / "broken" / "raises.py"
    line = line_of(raises, "raise FileNotFoundError")
    proc = shapecheck("--format", "json", "--isolated", "fixtures/broken/raises.py")
    [f] = json.loads(proc.stdout)["files"]
    assert f["error"]["exception"] == "FileNotFoundError: no data at train.npz"
    assert (f["error"]["path"], f["error"]["line"]) == ("fixtures/broken/raises.py", line)
    assert f["error"]["source"].strip() == 'raise FileNotFoundError(f"no data at {path}")'
    proc = shapecheck("--format", "text", "--isolated", "fixtures/broken/raises.py")
    assert proc.returncode == 2
    assert proc.stdout.splitlines() == [
        "fixtures/broken/raises.py: [failed:script-error] FileNotFoundError: no data at "
        f"train.npz (at fixtures/broken/raises.py:{line}: "
        '`raise FileNotFoundError(f"no data at {path}")`)']


def test_script_without_a_model_is_told_not_clean() -> None:
    proc = shapecheck("--isolated", "fixtures/broken/no_model.py")
    assert proc.returncode == 0, proc.stdout + proc.stderr  # told, not failed
    assert "built no Keras model" in proc.stdout
    assert proc.stdout.strip().splitlines()[-1] == (
        "unchecked: 1 file, 0 models; no findings, 1 script built no model")
    strict = shapecheck("--isolated", "--strict", "--format", "text",
                        "fixtures/broken/no_model.py")
    assert strict.returncode == 2
    assert strict.stdout.strip() == ("fixtures/broken/no_model.py: [no-model] the script "
                                     "built no Keras model: nothing was checked")


SUBCLASSED = """import keras
from keras import layers


class Scorer(keras.Model):
    def __init__(self):
        super().__init__(name="scorer")
        self.head = layers.Dense(1)

    def call(self, x):
        return self.head(x)


model = Scorer()
"""


def test_a_model_not_checked_is_counted_and_fails_only_with_strict(tmp_path: Path) -> None:
    (tmp_path / "scorer.py").write_text(SUBCLASSED)
    proc = shapecheck("--format", "json", "--isolated", "scorer.py", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    doc = json.loads(proc.stdout)
    [f] = doc["files"]
    [m] = f["models"]
    assert (f["status"], f["worst"]) == ("unchecked", None)
    assert m["checked"] is False and "never built, called or given data" in m["reason"]
    assert doc["summary"]["status"] == "unchecked"
    assert doc["summary"]["unchecked_models"] == 1
    proc = shapecheck("--no-tables", "--isolated", "scorer.py", cwd=tmp_path)
    assert "○ model `scorer` (subclassed)" in proc.stdout and "not checked" in proc.stdout
    assert proc.stdout.strip().splitlines()[-1] == (
        "unchecked: 1 file, 1 model; no findings, 1 model not checked")
    (tmp_path / "pyproject.toml").write_text('[tool.shapecheck]\nstrict = true\n')
    proc = shapecheck("--format", "text", "scorer.py", cwd=tmp_path)  # strict from config
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert proc.stdout.startswith("scorer.py:") and "[not-checked] model `scorer`" in proc.stdout


def test_version_comes_from_the_package_metadata() -> None:
    from importlib.metadata import version

    proc = shapecheck("--version")
    assert proc.returncode == 0
    assert proc.stdout.strip() == f"shapecheck {version('keras-shapecheck')}"


def test_check_script_api_matches_cli(captioning: dict) -> None:
    import shapecheck as sc

    report = sc.check_script(str(FIXTURES / "seed000_captioning.py"))
    doc = report.to_dict()
    assert report.exit_code == 1
    assert layer(doc, "concat3")["output_shapes"] == layer(captioning, "concat3")["output_shapes"]


def test_columns_count_characters_not_bytes(tmp_path):
    script = tmp_path / "accents.py"
    script.write_text("import keras\nfrom keras import layers\n"
                      "x = keras.Input(shape=(32, 8))\n"
                      "a, b = layers.GRU(16)(x), layers.GRU(16, return_sequences=True)(x)\n"
                      "é = 'ééé'; y = layers.add([a, b])\n"
                      "model = keras.Model(x, y)\n", encoding="utf-8")
    proc = shapecheck("--format", "json", "--isolated", str(script))
    (d,) = json.loads(proc.stdout)["files"][0]["diagnostics"]
    line = "é = 'ééé'; y = layers.add([a, b])"
    assert (d["line"], d["col"]) == (5, line.index("layers.add") + 1)
    assert d["end_col"] == len(line)


def test_a_sequential_built_by_its_first_call_lists_its_layers(tmp_path):
    script = tmp_path / "nested.py"
    script.write_text("import keras\nfrom keras import layers\n"
                      "head = keras.Sequential([layers.Dense(8), layers.Dense(2)], "
                      "name='head')\n"
                      "x = keras.Input((16,))\n"
                      "model = keras.Model(x, head(layers.Dense(4)(x)))\n")
    proc = shapecheck("--format", "json", "--isolated", str(script))
    models = {m["name"]: m for m in json.loads(proc.stdout)["files"][0]["models"]}
    inner = [entry["name"] for entry in models["head"]["layers"]]
    assert len(inner) == 3 and inner[1:] == ["dense", "dense_1"]
    assert [entry["line"] for entry in models["head"]["layers"]][1:] == [3, 3]
