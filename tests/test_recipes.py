"""The CI recipes of the README and the pre-commit hook, exercised."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def yaml_blocks() -> list[object]:
    return [yaml.safe_load(b) for b in re.findall(r"```yaml\n(.*?)```", README, re.S)]


def env() -> dict[str, str]:
    """PATH with this interpreter's scripts first (where `shapecheck` is installed)."""
    e = dict(os.environ)
    e["PATH"] = os.path.dirname(sys.executable) + os.pathsep + e.get("PATH", "")
    e.pop("PRE_COMMIT_HOME", None)
    return e


def test_hook_manifest_is_valid_and_the_readme_hook_matches_it():
    subprocess.run([sys.executable, "-m", "pre_commit", "validate-manifest",
                    str(ROOT / ".pre-commit-hooks.yaml")], check=True, env=env())
    (hook,) = yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())
    local = [b for b in yaml_blocks() if isinstance(b, dict) and "repos" in b]
    (readme_hook,) = local[0]["repos"][0]["hooks"]
    for key in ("id", "entry", "language", "types", "pass_filenames"):
        assert readme_hook[key] == hook[key], key


def test_readme_workflow_steps_run_shapecheck_with_real_options():
    steps = next(b for b in yaml_blocks() if isinstance(b, list))
    commands = [s["run"] for s in steps if "run" in s and "shapecheck " in s["run"]
                and s["run"].startswith("shapecheck")]
    assert len(commands) == 2
    for command in commands:
        args = command.split(">")[0].split()[1:-1]  # the options, without the folder
        proc = subprocess.run([sys.executable, "-m", "shapecheck", *args, "--isolated",
                               str(ROOT / "fixtures" / "seed001_gru_add.py")],
                              capture_output=True, text=True, timeout=300, cwd=ROOT)
        assert proc.returncode in (0, 1), proc.stderr
        assert "SC303" in proc.stdout


def git(*args: str, cwd: Path) -> None:
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, env=env())


@pytest.mark.skipif(shutil.which("git") is None or not (ROOT / ".git").exists(),
                    reason="needs git and this project as a git checkout")
def test_pre_commit_hook_fails_a_commit_of_a_buggy_model(tmp_path):
    repo = tmp_path / "user"
    (repo / "models").mkdir(parents=True)
    shutil.copy(ROOT / "fixtures" / "seed001_gru_add.py", repo / "models" / "net.py")
    (repo / "pyproject.toml").write_text('[tool.shapecheck]\npaths = ["models"]\n')
    git("init", "-q", cwd=repo)
    git("add", ".", cwd=repo)
    proc = subprocess.run([sys.executable, "-m", "pre_commit", "try-repo", str(ROOT),
                           "shapecheck", "--all-files"], cwd=repo, capture_output=True,
                          text=True, timeout=600, env=env() | {
                              "PRE_COMMIT_HOME": str(tmp_path / "cache")})
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "SC303" in proc.stdout and "gru1" in proc.stdout
