"""The dry run returns what Keras returns, and the script's callbacks see a run."""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import shapecheck

ROOT = Path(__file__).resolve().parent.parent
DRYRUN = ROOT / "fixtures" / "dryrun"


def structures(output: str) -> dict:
    """The ``STRUCT {...}`` lines a fixture printed, merged."""
    out: dict = {}
    for line in output.splitlines():
        if line.startswith("STRUCT "):
            out.update(json.loads(line[len("STRUCT "):]))
    return out


@pytest.fixture
def scratch(tmp_path: Path) -> Path:
    for script in DRYRUN.glob("*.py"):
        shutil.copy(script, tmp_path)
    return tmp_path


def test_results_have_the_structure_keras_gives(scratch: Path) -> None:
    """Under `python` (really trained) and under shapecheck, each result has the same
    type, keys, lengths, shapes and range: History keys per epoch, evaluate's scalar,
    list or dict, predictions per sample of arrays, PyDataset, generator and tf.data."""
    real = subprocess.run([sys.executable, "returns.py"], cwd=scratch, capture_output=True,
                          text=True, timeout=600)
    assert real.returncode == 0, real.stderr[-3000:]
    expected = structures(real.stdout)
    assert len(expected) == 21
    with contextlib.chdir(scratch):
        report = shapecheck.check_script("returns.py")
    [f] = report.files
    assert f.error is None, f.error
    got = structures(f.output)
    for name, value in expected.items():
        assert got.get(name) == value, name
    assert expected["predict"]["rows_sum_to_1"] and expected["predict"]["shape"] == [70, 4]


def test_callbacks_see_a_run_and_the_checkpoint_reloads(scratch: Path) -> None:
    with contextlib.chdir(scratch):
        report = shapecheck.check_script("callbacks.py")
    [f] = report.files
    assert f.error is None, f.error
    out = f.output
    assert "ALL OK" in out
    # made-up values improve for 3 epochs, then hold: EarlyStopping(patience=2) stops
    # as on a plateau, and ReduceLROnPlateau(patience=1) lowers the rate
    assert "train end after 6 epochs" in out
    assert "epoch 5: val_loss=0.5632" in out
    lr = float(out.split("lr ", 1)[1].split()[0])
    assert lr < 0.01
    assert "csv rows 7" in out  # a header and one row per epoch
