"""Many scripts at once: folders, parallel child processes, one summary."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

MODEL = """
import keras
from keras import layers
x = keras.Input(shape=(None, {width}))
y = layers.Dense(4)(layers.GRU(8)(x))
model = keras.Model(x, y)
"""
BROADCAST = """
import keras
from keras import layers
x = keras.Input(shape=(32, 8))
model = keras.Model(x, layers.add([layers.GRU(16)(x),
                                   layers.GRU(16, return_sequences=True)(x)]))
"""


def shapecheck(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "shapecheck", "--isolated", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=600)


def write(folder: Path, name: str, text: str) -> None:
    (folder / name).write_text(textwrap.dedent(text))


def test_a_folder_of_ten_scripts_with_a_hang_and_a_crash(tmp_path):
    models = tmp_path / "models"
    (models / "nested").mkdir(parents=True)
    (models / ".hidden").mkdir()
    for i in range(7):
        write(models if i % 2 else models / "nested", f"ok_{i}.py", MODEL.format(width=i + 1))
    write(models, "broadcast.py", BROADCAST)
    write(models, "hangs.py", "import time\nwhile True:\n    time.sleep(1)\n")
    write(models, "raises.py", "raise RuntimeError('the data folder is missing')\n")
    write(models / ".hidden", "ignored.py", "raise SystemExit(3)\n")
    start = time.monotonic()
    proc = shapecheck("models", "-j", "4", "--timeout", "30", "--format", "json", cwd=tmp_path)
    elapsed = time.monotonic() - start
    doc = json.loads(proc.stdout)
    status = {Path(f["path"]).name: f["status"] for f in doc["files"]}
    assert len(status) == 10 and "ignored.py" not in status
    assert status.pop("hangs.py") == "failed" and status.pop("raises.py") == "failed"
    assert status.pop("broadcast.py") == "findings"
    assert set(status.values()) == {"clean"}
    kinds = {Path(f["path"]).name: (f["error"] or {}).get("kind") for f in doc["files"]}
    assert kinds["hangs.py"] == "timeout" and kinds["raises.py"] == "script-error"
    assert proc.returncode == 2
    assert elapsed < 30 + 9 * 25  # the hang did not hold the others back


def test_the_console_ends_with_one_summary(tmp_path):
    models = tmp_path / "m"
    models.mkdir()
    write(models, "a.py", MODEL.format(width=3))
    write(models, "b.py", BROADCAST)
    write(models, "c.py", "raise ValueError('no data')\n")
    proc = shapecheck("m", "--no-tables", cwd=tmp_path)
    assert proc.returncode == 2
    last = proc.stdout.strip().splitlines()[-1]
    assert last == "failed: 3 files, 2 models; 1 error, 1 file could not be checked"


def test_an_empty_folder_is_reported(tmp_path):
    (tmp_path / "empty").mkdir()
    proc = shapecheck("empty", "--format", "json", cwd=tmp_path)
    doc = json.loads(proc.stdout)
    assert proc.returncode == 2
    assert "no Python scripts" in doc["files"][0]["error"]["message"]
