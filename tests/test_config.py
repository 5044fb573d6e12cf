"""``[tool.shapecheck]`` in pyproject.toml, inline ignores, --fail-on."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from shapecheck.options import OptionError, Settings, read_config, settings

ROOT = Path(__file__).resolve().parent.parent
BROADCAST = """
import keras
from keras import layers
x = keras.Input(shape=(32, 8))
a = layers.GRU(16)(x)
b = layers.GRU(16, return_sequences=True, go_backwards=True)(x)
c = layers.GRU(16, return_sequences=True)(x)
merged = layers.add([a, c]){marker}
both = layers.concatenate([c, b])
model = keras.Model(x, [merged, both])
"""


def shapecheck(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "shapecheck", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=600)


def project(tmp_path: Path, config: str, marker: str = "") -> Path:
    (tmp_path / "pyproject.toml").write_text(textwrap.dedent(config))
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "net.py").write_text(BROADCAST.format(marker=marker))
    return tmp_path


def codes(proc: subprocess.CompletedProcess) -> list[str]:
    return [d["code"] for f in json.loads(proc.stdout)["files"] for d in f["diagnostics"]]


def test_paths_and_select_come_from_pyproject(tmp_path):
    root = project(tmp_path, """
        [tool.shapecheck]
        paths = ["models"]
        select = ["SC3"]
    """)
    proc = shapecheck("--format", "json", cwd=root / "models")  # found upwards
    assert codes(proc) == ["SC303"] and proc.returncode == 1


def test_command_line_wins_over_the_config(tmp_path):
    root = project(tmp_path, """
        [tool.shapecheck]
        paths = ["models"]
        ignore = ["SC303"]
        fail-on = "never"
    """)
    proc = shapecheck("--format", "json", cwd=root)
    assert codes(proc) == ["SC405"] and proc.returncode == 0
    proc = shapecheck("--format", "json", "--fail-on", "warning", cwd=root)
    assert proc.returncode == 1
    proc = shapecheck("--format", "json", "--isolated", "models", cwd=root)
    assert sorted(codes(proc)) == ["SC303", "SC405"]


def test_per_file_ignores(tmp_path):
    root = project(tmp_path, """
        [tool.shapecheck]
        paths = ["models"]
        [tool.shapecheck.per-file-ignores]
        "models/*.py" = ["SC4"]
    """)
    assert codes(shapecheck("--format", "json", cwd=root)) == ["SC303"]


def test_inline_ignore_on_the_line(tmp_path):
    root = project(tmp_path, "[tool.shapecheck]\npaths = [\"models\"]\n",
                   marker="  # shapecheck: ignore[SC303]")
    proc = shapecheck("--format", "json", cwd=root)
    assert codes(proc) == ["SC405"] and proc.returncode == 0


def test_a_wrong_setting_is_a_clear_usage_error(tmp_path):
    root = project(tmp_path, "[tool.shapecheck]\nfail_on = \"sometimes\"\n")
    proc = shapecheck("models", cwd=root)
    assert proc.returncode == 2 and "no setting 'fail_on'" in proc.stderr
    assert "fail-on" in proc.stderr and "Traceback" not in proc.stderr


def test_settings_merge_defaults_config_and_command_line(tmp_path):
    path = tmp_path / "pyproject.toml"
    path.write_text('[tool.shapecheck]\ntimeout = 20\ndims = {T = 7}\nselect = "SC1,SC3"\n')
    s = settings({"timeout": "5", "select": None}, config=str(path))
    assert isinstance(s, Settings) and s.timeout == 5.0
    assert s.dims == {"T": 7} and s.select == ["SC1", "SC3"]
    with pytest.raises(OptionError, match="positive"):
        settings({"dims": ["T=0"]}, use_config=False)
    path.write_text("[tool.shapecheck]\ndevice = \"tpu\"\n")
    with pytest.raises(OptionError, match="device"):
        read_config(str(path))
