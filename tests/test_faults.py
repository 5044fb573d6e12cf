"""The child process under faults: a hostile working directory, a script killed,
crashed, hung or ending with os._exit, and the command itself interrupted."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from shapecheck.script.runner import check_file, check_files_together

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fixtures"
BROKEN = FIXTURES / "broken"


def command() -> list[str]:
    """The installed ``shapecheck`` command, as a user runs it (never ``python -m``
    from the working directory, which would import the folder there)."""
    script = Path(sys.executable).parent / "shapecheck"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-P", "-m", "shapecheck"]


def shapecheck(*args: str, cwd: Path = ROOT, env: dict | None = None,
               timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([*command(), "--isolated", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


def only_file(proc: subprocess.CompletedProcess) -> dict:
    [f] = json.loads(proc.stdout)["files"]
    return f


def models(f: dict) -> dict[str, dict]:
    return {m["name"]: m for m in f["models"]}


def codes(f: dict) -> list[str]:
    return [d["code"] for d in f["diagnostics"]]


@pytest.fixture()
def hostile(tmp_path: Path) -> Path:
    """A working directory whose ``shapecheck``, ``numpy``, ``tensorflow`` and
    ``keras`` raise when imported."""
    for name in ("shapecheck", "numpy", "tensorflow", "jax"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "__init__.py").write_text(
            f"raise ImportError('the working directory\\'s {name} was imported')\n")
    (tmp_path / "keras.py").write_text("raise ImportError('the working directory\\'s keras "
                                       "was imported')\n")
    return tmp_path


def test_a_hostile_working_directory_changes_nothing(hostile: Path) -> None:
    extra = hostile / "extra"
    extra.mkdir()
    env = {**os.environ, "PYTHONPATH": str(extra)}
    proc = shapecheck("--format", "json", str(FIXTURES / "seed001_gru_add.py"), cwd=hostile,
                      env=env)
    f = only_file(proc)
    assert f["error"] is None, f["error"]
    assert "SC303" in codes(f) and proc.returncode == 1

    # The script sees sys.path exactly as `python script.py` gives it.
    probe = str(BROKEN / "syspath_probe.py")
    proc = shapecheck("--format", "json", probe, "--", str(hostile / "ours.json"),
                      cwd=hostile, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    plain = subprocess.run([sys.executable, probe, str(hostile / "python.json"),
                            str(hostile / "probe.keras")],
                           cwd=hostile, env=env, capture_output=True, text=True, timeout=300)
    assert plain.returncode == 0, plain.stderr
    ours = json.loads((hostile / "ours.json").read_text())
    python = json.loads((hostile / "python.json").read_text())
    assert ours == python
    assert python[:2] == [str(BROKEN), str(extra)]
    assert str(hostile) not in ours

    # A saved model is loaded by the installed Keras too.
    proc = shapecheck("--format", "json", "probe.keras", cwd=hostile, env=env)
    f = only_file(proc)
    assert f["error"] is None and list(models(f)) == ["probe"], proc.stdout + proc.stderr


def test_scripts_together_a_hostile_directory_and_a_kill(hostile: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(hostile)
    monkeypatch.setenv("SYSPATH_PROBE_OUT", str(hostile / "ours.json"))
    monkeypatch.delenv("PYTHONPATH", raising=False)
    paths = [str(BROKEN / "syspath_probe.py"), str(FIXTURES / "seed001_gru_add.py"),
             str(BROKEN / "killed.py"), str(FIXTURES / "seed001_gru_add.py")]
    probe, gru, killed, after = check_files_together(paths, timeout=600)
    assert probe.error is None and [m.name for m in probe.models] == ["probe"]
    base = subprocess.run([sys.executable, "-P", "-c", "import json, sys; print(json.dumps("
                           "sys.path))"], capture_output=True, text=True, check=True)
    ours = json.loads((hostile / "ours.json").read_text())
    assert ours == [str(BROKEN), *json.loads(base.stdout)]
    assert gru.error is None and "SC303" in [d.code for d in gru.diagnostics]
    assert killed.error.kind == "crash" and "SIGKILL" in killed.error.message
    assert "SC303" in [d.code for d in killed.diagnostics]
    assert {m.name: m.checked for m in killed.models} == {"broadcast": True, "late": False}
    assert after.error.kind == "crash" and "not checked" in after.error.message


def test_killed_by_sigkill_keeps_its_models_and_findings() -> None:
    proc = shapecheck("--format", "json", "fixtures/broken/killed.py")
    f = only_file(proc)
    assert f["error"]["kind"] == "crash"
    assert "killed by SIGKILL (out of memory?)" in f["error"]["message"]
    assert "while the script ran" in f["error"]["message"]
    # the checkpoint after the dry-run fit: the model, analysed, and its finding
    assert codes(f) == ["SC303"]
    broadcast, late = models(f)["broadcast"], models(f)["late"]
    assert broadcast["checked"] is True and broadcast["layers"]
    assert broadcast["line"] == 17
    # built after the checkpoint: recorded, not analysed
    assert late["checked"] is False and "SIGKILL" in late["reason"]
    assert (late["path"], late["line"]) == ("fixtures/broken/killed.py", 20)
    assert f["status"] == "findings" and proc.returncode == 1


def test_a_segmentation_fault_is_named() -> None:
    f = only_file(shapecheck("--format", "json", "fixtures/broken/segfault.py"))
    assert f["error"]["kind"] == "crash" and f["status"] == "failed"
    assert "crashed (segmentation fault)" in f["error"]["message"]
    assert models(f)["before_crash"]["checked"] is False


def test_a_hang_past_the_timeout_keeps_its_model_analysed() -> None:
    start = time.monotonic()
    proc = shapecheck("--format", "json", "--timeout", "5", "fixtures/broken/hangs.py")
    f = only_file(proc)
    assert f["error"]["kind"] == "timeout"
    assert "did not finish within 5 s" in f["error"]["message"]
    [model] = f["models"]
    assert model["checked"] is True and [x["class"] for x in model["layers"]] == [
        "InputLayer", "Dense"]
    assert proc.returncode == 2 and time.monotonic() - start < 120


def test_a_script_that_swallows_the_timeout_is_ended_with_its_model() -> None:
    proc = shapecheck("--format", "json", "--timeout", "3", "fixtures/broken/ignores_timeout.py")
    f = only_file(proc)
    assert f["error"]["kind"] == "timeout" and "within 3 s" in f["error"]["message"]
    stubborn = models(f)["stubborn"]
    assert stubborn["checked"] is False and "timed out" in stubborn["reason"]


def test_start_up_has_its_own_limit_and_message() -> None:
    report = check_file(str(FIXTURES / "seed001_gru_add.py"), startup_timeout=0.3)
    assert report.error.kind == "timeout"
    assert "start-up" in report.error.message and "before the script ran" in report.error.message
    assert "did not finish within" not in report.error.message


@pytest.mark.parametrize("status", [0, 3])
def test_os_exit_writes_the_report_first(status: int) -> None:
    proc = shapecheck("--format", "json", "fixtures/broken/os_exit.py", "--", str(status))
    f = only_file(proc)
    assert list(models(f)) == ["before_exit"] and models(f)["before_exit"]["checked"]
    if status == 0:  # the script's normal end
        assert f["error"] is None and f["status"] == "clean" and proc.returncode == 0
    else:  # as sys.exit(3)
        assert f["error"]["kind"] == "exit" and "status 3" in f["error"]["message"]
        assert "leaving" in f["error"]["message"] and proc.returncode == 2


def _processes() -> dict[int, tuple[int, int, str]]:
    """pid -> (parent pid, session id, state), from /proc."""
    out = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path("/proc", entry, "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        out[int(entry)] = (int(fields[1]), int(fields[3]), fields[0])
    return out


def _descendants(pid: int) -> set[int]:
    procs = _processes()
    found, todo = set(), [pid]
    while todo:
        parent = todo.pop()
        for child, (ppid, _, _) in procs.items():
            if ppid == parent and child not in found:
                found.add(child)
                todo.append(child)
    return found


def _as_in_a_terminal() -> None:
    """SIGINT and SIGTERM as a shell in a terminal leaves them (a test run in the
    background may have SIGINT ignored, which the command respects)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")
@pytest.mark.parametrize("sig, code, scripts", [(signal.SIGINT, 130, 2),
                                                (signal.SIGTERM, 143, 1)])
def test_a_signal_to_the_command_stops_every_child(tmp_path: Path, sig: int, code: int,
                                                   scripts: int) -> None:
    names = [f"hang_{i}.py" for i in range(scripts)]
    for name in names:
        shutil.copy(BROKEN / "hangs_with_helper.py", tmp_path / name)
    marks = tmp_path / "marks"
    marks.mkdir()
    proc = subprocess.Popen([*command(), "--isolated", "--format", "json", "-j", "2",
                             *names, "--", str(marks)], cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True,
                            preexec_fn=_as_in_a_terminal)
    try:
        deadline = time.monotonic() + 240
        while len(list(marks.glob("*.pid"))) < scripts:
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the scripts did not start"
            time.sleep(0.2)
        helpers = [int(p.read_text()) for p in marks.glob("*.pid")]
        ours = _descendants(proc.pid)
        sessions = {proc.pid} | {_processes()[p][1] for p in ours if p in _processes()}
        assert len(sessions) >= 1 + scripts  # each child in a session of its own
        sent = time.monotonic()
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert time.monotonic() - sent < 30, "the command did not stop promptly"
    assert proc.returncode == code, err
    files = json.loads(out)["files"]
    assert [Path(f["path"]).name for f in files] == names
    for f in files:
        assert f["error"]["kind"] == "interrupted", f["error"]
        assert signal.Signals(sig).name in f["error"]["message"]
        assert list(models(f)) == ["waiting"]
    deadline = time.monotonic() + 10
    while True:  # nothing of the command is left: children, scripts, their helpers
        left = {pid: info for pid, info in _processes().items()
                if (info[1] in sessions or pid in helpers) and info[2] != "Z"}
        if not left or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert not left
