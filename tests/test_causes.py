"""Findings sit at the layer argument that caused them, with the place it broke."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

import shapecheck
from shapecheck.render import github, jsondoc, sarif, text
from shapecheck.rules import all_rules

HEAD = "import numpy as np\nimport keras\nfrom keras import layers\n"

CASES = {
    # name: (body, the cause line's marker, argument, the line where it broke)
    "time-axis-kept": ("""
        inp = keras.Input((20, 3))
        x = layers.LSTM(16, return_sequences=True)(inp)
        x = layers.LSTM(8, return_sequences=True)(x)  # cause
        out = layers.Dense(1)(x)  # breaks
        model = keras.Model(inp, out)
        model.compile("adam", "mse")
        model.fit(np.random.rand(64, 20, 3), np.random.rand(64, 1))
        """, "return_sequences=True"),
    "valid-padding": ("""
        inp = keras.Input((None, 8))
        x = layers.Conv1D(8, 3, padding="same")(inp)
        y = layers.Conv1D(8, 3)(x)  # cause
        z = layers.Add()([x, y])  # breaks
        model = keras.Model(inp, layers.Dense(1)(layers.GlobalAveragePooling1D()(z)))
        """, "padding='valid'"),
    "odd-stride": ("""
        inp = keras.Input((290, 1))
        x = layers.Conv1D(32, 7, padding="same", strides=2)(inp)
        x = layers.Conv1D(16, 7, padding="same", strides=2)(x)  # cause
        x = layers.Conv1DTranspose(16, 7, padding="same", strides=2)(x)
        x = layers.Conv1DTranspose(32, 7, padding="same", strides=2)(x)
        out = layers.Conv1DTranspose(1, 7, padding="same")(x)  # breaks
        model = keras.Model(inp, out)
        model.compile("adam", "mse")
        data = np.random.rand(64, 290, 1)
        model.fit(data, data)
        """, "strides=2"),
    "unet-pool": ("""
        inp = keras.Input((25, 25, 3))
        c1 = layers.Conv2D(8, 3, padding="same")(inp)
        p1 = layers.MaxPooling2D()(c1)  # cause
        c2 = layers.Conv2D(8, 3, padding="same")(p1)
        u1 = layers.UpSampling2D()(c2)
        m = layers.Concatenate()([u1, c1])  # breaks
        model = keras.Model(inp, layers.Conv2D(1, 1)(m))
        """, "pool_size=2"),
    "repeat-vector": ("""
        inp = keras.Input((30, 4))
        x = layers.LSTM(16)(inp)
        x = layers.RepeatVector(10)(x)  # cause
        x = layers.LSTM(16, return_sequences=True)(x)
        out = layers.TimeDistributed(layers.Dense(4))(x)  # breaks
        model = keras.Model(inp, out)
        model.compile("adam", "mse")
        model.fit(np.random.rand(32, 30, 4), np.random.rand(32, 12, 4))
        """, "n=10"),
    "time-axis-dropped": ("""
        inp = keras.Input((20, 3))
        x = layers.LSTM(16)(inp)  # cause
        x = layers.Dropout(0.2)(x)
        x = layers.LSTM(8)(x)  # breaks
        model = keras.Model(inp, layers.Dense(1)(x))
        """, "return_sequences=False"),
}


def _script(tmp_path: Path, body: str) -> tuple[Path, int, int]:
    text = HEAD + textwrap.dedent(body)
    path = tmp_path / "model.py"
    path.write_text(text)
    lines = text.splitlines()
    cause = next(i for i, t in enumerate(lines, 1) if "# cause" in t)
    breaks = next(i for i, t in enumerate(lines, 1) if "# breaks" in t)
    return path, cause, breaks


@pytest.mark.parametrize("name", sorted(CASES))
def test_the_finding_sits_at_its_cause(tmp_path: Path, name: str) -> None:
    body, argument = CASES[name]
    path, cause, breaks = _script(tmp_path, body)
    [f] = shapecheck.check_script(str(path)).files
    roots = [d for d in f.diagnostics if d.severity == "error" and d.follows is None]
    assert len(roots) == 1, [(d.code, d.line, d.message) for d in f.diagnostics]
    d = roots[0]
    assert (d.line, d.argument) == (cause, argument), d
    assert [r.line for r in d.related] == [breaks]
    assert d.related[0].message == "the shape breaks here"
    assert argument in d.message


def test_arithmetic_of_the_strides_in_the_hint(tmp_path: Path) -> None:
    path, _, _ = _script(tmp_path, CASES["odd-stride"][0])
    [d] = shapecheck.check_script(str(path)).files[0].diagnostics
    assert "290 → 145 → 73 → 146 → 292 ≠ 290" in (d.hint or "")
    assert "multiple of 4" in (d.hint or "")


def test_a_symptom_with_no_argument_at_fault_stays_where_it_broke(tmp_path: Path) -> None:
    # Two branches from two inputs of different fixed lengths: nothing upstream
    # changed a length, so there is no argument to blame.
    path, _, _ = _script(tmp_path, """
        a = keras.Input((10, 4))
        b = keras.Input((12, 4))
        m = layers.Add()([a, b])  # cause # breaks
        model = keras.Model([a, b], m)
        """)
    [d] = shapecheck.check_script(str(path)).files[0].diagnostics
    assert d.code == "SC301" and d.related == [] and d.argument is None


def test_shared_layers_report_once_naming_the_other_model(tmp_path: Path) -> None:
    path, cause, _ = _script(tmp_path, """
        enc_in = keras.Input((None, 8))
        enc = layers.LSTM(32, return_state=True)
        _, h, c = enc(enc_in)
        dec_in = keras.Input((None, 8))
        dec = layers.LSTM(16, return_sequences=True)  # cause # breaks
        seq = dec(dec_in, initial_state=[h, c])
        out = layers.Dense(8, activation="softmax")(seq)
        train = keras.Model([enc_in, dec_in], out, name="train")
        h_in, c_in = keras.Input((32,)), keras.Input((32,))
        seq2 = dec(dec_in, initial_state=[h_in, c_in])
        infer = keras.Model([dec_in, h_in, c_in], layers.Dense(8)(seq2), name="infer")
        """)
    [f] = shapecheck.check_script(str(path)).files
    state = [d for d in f.diagnostics if d.code == "SC402"]
    assert len(state) == 1, [(d.code, d.model, d.line) for d in f.diagnostics]
    assert state[0].model == "train" and state[0].also_in == ["infer"]


def test_errors_downstream_of_another_follow_from_it(tmp_path: Path) -> None:
    path, cause, _ = _script(tmp_path, """
        a = keras.Input((10, 4))
        b = keras.Input((10, 6))
        m = layers.Add()([a, b])  # cause # breaks
        c = keras.Input((10, 5))
        n = layers.Add()([m, c])
        model = keras.Model([a, b, c], n)
        """)
    [f] = shapecheck.check_script(str(path)).files
    errors = [d for d in f.diagnostics if d.severity == "error"]
    [root] = [d for d in errors if d.follows is None]
    assert root.line == cause
    later = [d for d in errors if d.follows is not None]
    assert later and all(d.follows == f"SC301 at {root.where} (`add`)" for d in later)


def test_every_format_carries_the_place_it_broke(tmp_path: Path) -> None:
    path, cause, breaks = _script(tmp_path, CASES["valid-padding"][0])
    report = shapecheck.check_script(str(path))
    data = json.loads(jsondoc.render(report))
    [d] = data["files"][0]["diagnostics"]
    assert d["argument"] == "padding='valid'" and d["related"][0]["line"] == breaks
    doc = json.loads(sarif.render(report, all_rules()))
    [r] = doc["runs"][0]["results"]
    related = r["relatedLocations"][0]
    assert related["physicalLocation"]["region"]["startLine"] == breaks
    assert related["message"]["text"] == "the shape breaks here"
    where = f"{path}:{breaks}"
    assert f"note: the shape breaks here: `add` at {where}" in \
        github.render(report).replace("%0A", "\n")
    assert f"(the shape breaks here: {where})" in text.render(report)
