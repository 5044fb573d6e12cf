"""The getting-started scripts run to their end under shapecheck, check clean, and
leave their folder byte-for-byte as it was (an old predictions file included)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TUTORIALS = ROOT / "fixtures" / "tutorials"
SCRIPTS = sorted(p.name for p in TUTORIALS.glob("*.py"))


def snapshot(folder: Path) -> dict[str, str]:
    """Every path under ``folder`` (folders too) with its content's hash."""
    out = {}
    for root, dirs, files in os.walk(folder):
        for d in dirs:
            out[os.path.relpath(os.path.join(root, d), folder) + "/"] = "dir"
        for f in files:
            path = os.path.join(root, f)
            out[os.path.relpath(path, folder)] = hashlib.sha256(Path(path).read_bytes()).hexdigest()
    return out


@pytest.fixture(scope="module")
def checked(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """All tutorials checked by one command, from their own folder (a copy)."""
    folder = tmp_path_factory.mktemp("tutorials")
    shutil.copytree(TUTORIALS, folder, dirs_exist_ok=True)
    for cache in folder.rglob("__pycache__"):
        shutil.rmtree(cache)
    before = snapshot(folder)
    proc = subprocess.run([sys.executable, "-m", "shapecheck", "--format", "json", "-j", "2",
                           "--timeout", "240", *SCRIPTS], cwd=folder, capture_output=True,
                          text=True, timeout=1500)
    doc = json.loads(proc.stdout)
    return {"proc": proc, "doc": doc, "before": before, "after": snapshot(folder),
            "files": {Path(f["path"]).name: f for f in doc["files"]}}


def test_there_are_enough_tutorials() -> None:
    assert len(SCRIPTS) >= 15
    assert (TUTORIALS / "predictions.npy").exists()


@pytest.mark.parametrize("script", SCRIPTS)
def test_tutorial_runs_to_its_end_and_checks_clean(checked: dict, script: str) -> None:
    f = checked["files"][script]
    assert f["error"] is None, f["error"]
    assert f["status"] == "clean", [d["message"] for d in f["diagnostics"]]
    assert f["models"] and all(m.get("checked", True) for m in f["models"])


def test_the_command_exits_0(checked: dict) -> None:
    proc = checked["proc"]
    assert proc.returncode == 0, proc.stderr[-3000:]


def test_the_folder_is_left_byte_for_byte_unchanged(checked: dict) -> None:
    assert checked["after"] == checked["before"]


def test_the_report_lists_what_the_scripts_wrote(checked: dict) -> None:
    """What was written in the scratch place is named, so the user knows it is gone."""
    f = checked["files"]["dense_sequential_no_input.py"]
    written = {Path(w["path"]).name for w in f["dry_run"]["writes"]}
    assert "predictions.npy" in written
    assert f["dry_run"]["made_up"]
