"""Findings as a user meets them: seeds at the right line, all errors in one pass,
the catalog commands, --select/--ignore, and correct models left alone."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from shapecheck.report import Report
from shapecheck.script.runner import check_files_together
from tests.test_cli import FIXTURES, line_of, shapecheck

CLEAN = ["clean_unet.py", "clean_seq2seq.py", "clean_sequential_text.py",
         "clean_transformer.py", "clean_seq2seq_bidirectional.py", "clean_data_forms.py"]


def findings(proc) -> list[dict]:
    doc = json.loads(proc.stdout)
    return [d for f in doc["files"] for d in f["diagnostics"]]


@pytest.fixture(scope="module")
def seed001():
    return shapecheck("--format", "json", "fixtures/seed001_gru_add.py")


@pytest.fixture(scope="module")
def seed004():
    return shapecheck("--format", "json", "fixtures/seed004_bidirectional_states.py")


def test_seed001_gru_add_is_found_at_the_add_line_with_a_fix(seed001) -> None:
    assert seed001.returncode == 1, seed001.stdout + seed001.stderr
    found = findings(seed001)
    add = [d for d in found if d["code"] == "SC303"]
    assert len(add) == 1, found
    d = add[0]
    path = FIXTURES / "seed001_gru_add.py"
    assert d["line"] == line_of(path, "gru1_merged = add(")
    assert d["layer"] == "add" and d["name"] == "rank-broadcast"
    assert d["shapes"] == {"gru1": ["batch", 16], "gru1_b": ["batch", 32, 16]}
    assert "return_sequences=True" in d["hint"] and "gru1" in d["hint"]
    assert d["source"].strip().startswith("gru1_merged = add(")


def test_seed004_bidirectional_decoder_states_found_at_the_decoder(seed004) -> None:
    assert seed004.returncode == 1, seed004.stdout + seed004.stderr
    found = findings(seed004)
    assert [d["code"] for d in found] == ["SC401"], found
    d = found[0]
    path = FIXTURES / "seed004_bidirectional_states.py"
    assert d["line"] == line_of(path, "x = Bidirectional(LSTM(lstm_units, return_sequences")
    assert d["layer"] == "Dec_Bi1"
    assert "4" in d["message"] and "2" in d["message"]
    assert "Enc_Bi1" in d["hint"]


def test_every_error_in_one_pass_and_consequences_are_marked() -> None:
    proc = shapecheck("--format", "json", "fixtures/multiple_errors.py")
    assert proc.returncode == 1, proc.stdout + proc.stderr  # findings, not a failed script
    path = FIXTURES / "multiple_errors.py"
    found = {(d["code"], d["line"]): d for d in findings(proc)}
    assert set(found) == {
        ("SC102", line_of(path, 'layers.LSTM(32, name="encoder")')),
        ("SC103", line_of(path, 'layers.Dense(16, name="scores")')),
        ("SC301", line_of(path, 'layers.Concatenate(name="joined")')),
        ("SC104", line_of(path, "out = head(encoded)")),
    }
    rank = found[("SC102", line_of(path, 'layers.LSTM(32, name="encoder")'))]
    assert rank["shapes"]["input"] == ["batch", 64, 12, 20]
    assert "shape=(12, 20)" in rank["hint"]
    follows = [d for d in found.values() if d["follows"]]
    assert [d["code"] for d in follows] == ["SC104"]
    assert follows[0]["follows"].startswith("SC102 at fixtures/multiple_errors.py:11")


def test_console_shows_code_place_source_shapes_and_help() -> None:
    proc = shapecheck("--no-tables", "fixtures/multiple_errors.py")
    out = proc.stdout
    assert "error[SC102 input-rank]" in out
    assert "--> fixtures/multiple_errors.py:11:11" in out
    assert 'encoded = layers.LSTM(32, name="encoder")(series)' in out
    assert "input: (batch, 64, 12, 20)" in out
    assert "help:" in out
    assert "follow from the ones above" in out
    assert "4 errors" in out


def test_select_and_ignore_filter_findings_and_exit_code() -> None:
    only = shapecheck("--format", "json", "--select", "SC3", "fixtures/multiple_errors.py")
    assert {d["code"] for d in findings(only)} == {"SC301"}
    assert only.returncode == 1
    none = shapecheck("--format", "json", "--ignore", "SC1,SC3", "fixtures/multiple_errors.py")
    assert findings(none) == [] and none.returncode == 0
    # The longer prefix wins: select the family, ignore one rule of it.
    some = shapecheck("--format", "json", "--select", "SC1", "--ignore", "SC104",
                      "fixtures/multiple_errors.py")
    assert {d["code"] for d in findings(some)} == {"SC102", "SC103"}


def test_rules_command_lists_the_catalog_and_rule_explains_one() -> None:
    listing = shapecheck("rules", "--format", "json")
    assert listing.returncode == 0
    rules = json.loads(listing.stdout)
    codes = {r["code"] for r in rules}
    assert {"SC101", "SC303", "SC401"} <= codes
    assert all(r["severity"] in ("error", "warning", "info") for r in rules)
    one = shapecheck("rule", "SC401")
    assert one.returncode == 0
    assert "initial-state-count" in one.stdout and "Use instead" in one.stdout
    by_name = shapecheck("rule", "rank-broadcast")
    assert "SC303" in by_name.stdout
    missing = shapecheck("rule", "SC999")
    assert missing.returncode == 2 and "no rule" in missing.stdout


def test_correct_models_raise_no_error_or_warning() -> None:
    reports = check_files_together([str(FIXTURES / name) for name in CLEAN], timeout=600)
    for name, report in zip(CLEAN, reports):
        assert report.error is None, (name, report.error)
        assert report.models, name
        loud = [d for d in report.diagnostics if d.severity in ("error", "warning")]
        assert not loud, (name, [f"{d.code} line {d.line}: {d.message}" for d in loud])


def test_report_round_trips_findings_through_json(tmp_path: Path) -> None:
    proc = shapecheck("--format", "json", "fixtures/multiple_errors.py")
    report = Report.from_dict(json.loads(proc.stdout))
    assert report.to_dict() == json.loads(proc.stdout)
    assert report.exit_code == 1


def test_check_model_api_reports_findings_on_a_model_built_here() -> None:
    import keras
    from keras import layers

    import shapecheck

    seq = keras.Input(shape=(32, 8))
    last = layers.GRU(4, name="last")(seq)
    steps = layers.GRU(4, return_sequences=True, name="steps")(seq)
    model = keras.Model(seq, layers.Add(name="mix")([last, steps]))
    report = shapecheck.check_model(model)
    assert [(d.code, d.layer) for d in report.diagnostics] == [("SC303", "mix")]
    assert report.exit_code == 1
    assert shapecheck.check_model(model, ignore=["SC303"]).exit_code == 0


def test_sequential_errors_point_at_each_layer_once() -> None:
    proc = shapecheck("--format", "json", "fixtures/sequential_errors.py")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    path = FIXTURES / "sequential_errors.py"
    got = [(d["code"], d["layer"], d["line"]) for d in findings(proc)]
    assert got == [("SC102", "lstm", line_of(path, "layers.LSTM(8)")),
                   ("SC102", "conv2d", line_of(path, "layers.Conv2D(4, 3)"))]


def test_tied_sizes_read_as_divisibility_where_that_is_what_they_mean() -> None:
    from shapecheck.shapes import dims
    from shapecheck.rules.merge import condition

    H = dims.symbol("H")
    half = dims.floordiv(H, 2)
    quarter = dims.floordiv(half, 2)
    assert condition(dims.mul(4, quarter), H) == "H is a multiple of 4"
    assert condition(dims.mul(2, quarter), half) == "H % 4 is 0 or 1"
    assert condition(dims.symbol("T_a"), dims.symbol("T_b")) == "T_a == T_b"
    assert condition(dims.mul(3, H), 48) == "H == 16"


def test_readme_table_counts_the_rules_of_each_family() -> None:
    import re
    from collections import Counter

    from shapecheck.rules import all_rules

    text = (FIXTURES.parent / "README.md").read_text()
    rows = re.findall(r"^\| (SC\d)xx [^|]+\| (\d+) \| ([^|]+) \|$", text, re.M)
    assert {p: int(n) for p, n, _ in rows} == dict(Counter(r.code[:3] for r in all_rules()))
    listed = {c for _, _, codes in rows for c in re.findall(r"`(SC\d+)`", codes)}
    assert listed == {r.code for r in all_rules()}


def test_seed000_generator_batches_disagree_at_concat3_before_training() -> None:
    proc = shapecheck("--format", "json", "fixtures/seed000_captioning.py")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    path = FIXTURES / "seed000_captioning.py"
    [d] = [d for d in findings(proc) if d["code"] == "SC601"]
    assert d["layer"] == "concat3" and d["line"] == line_of(path, 'name="concat3"')
    assert "47" in d["message"] and "4" in d["message"]
    assert d["data"].startswith("`fit` at fixtures/seed000_captioning.py:")
    doc = json.loads(proc.stdout)
    [model] = doc["files"][0]["models"]
    assert any(b["dims"].get("batch") == 47 for b in model["data"]), model["data"]


def test_seed003_targets_of_other_lengths_than_repeatvector() -> None:
    proc = shapecheck("--format", "json", "fixtures/seed003_repeatvector.py")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    path = FIXTURES / "seed003_repeatvector.py"
    shape = [d for d in findings(proc) if d["code"] == "SC703"]
    assert shape, findings(proc)
    assert all("RepeatVector(9)" in d["message"] for d in shape)
    # at the cause, RepeatVector's n; the output where the targets meet it is related
    assert {d["line"] for d in shape} == {line_of(path, "model.add(RepeatVector")}
    assert {d["argument"] for d in shape} == {"n=9"}
    assert {r["line"] for d in shape for r in d["related"]} == \
        {line_of(path, "TimeDistributed(Dense")}
    frozen = [d for d in findings(proc) if d["code"] == "SC203"]
    assert [d["line"] for d in frozen] == [line_of(path, "model.add(RepeatVector")]


def test_check_model_api_checks_data_targets_and_loss() -> None:
    import keras
    import numpy as np
    from keras import layers

    import shapecheck

    tokens = keras.Input(shape=(None,))
    x = layers.Embedding(100, 8)(tokens)
    out = layers.Dense(3, activation="softmax")(layers.LSTM(4)(x))
    model = keras.Model(tokens, out)
    ids = np.random.default_rng(0).integers(0, 150, (16, 9))
    report = shapecheck.check_model(model, data=ids, targets=np.zeros((16,), "int64"),
                                    loss="categorical_crossentropy")
    codes = sorted(d.code for d in report.diagnostics)
    assert codes == ["SC607", "SC705"], [d.message for d in report.diagnostics]
    [entry] = report.models
    assert entry.data and entry.data[0]["dims"] == {"batch": 16, "L": 9}
    clean = shapecheck.check_model(model, data=np.ones((16, 9), "int64"),
                                   targets=np.zeros((16,), "int64"),
                                   loss="sparse_categorical_crossentropy")
    assert clean.diagnostics == [] and clean.exit_code == 0
