"""Run a user's script in a child process and collect its report.

A crash, an exit or a hang in the script cannot take shapecheck down: the
child is its own process group, killed whole at the time limit.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
from typing import Any

from shapecheck.analyze import display_path
from shapecheck.options import DEFAULT_TIMEOUT
from shapecheck.report import FileReport, ScriptError
from shapecheck.saved import is_saved_model

RUN_ENV = "SHAPECHECK_RUN"  # the --run options, as JSON, for the child


def _failed(path: str, kind: str, message: str, output: str = "") -> FileReport:
    return FileReport(path=display_path(path), error=ScriptError(kind, message),
                      output=output).finish()


def child_env(run: Any = None) -> dict[str, str]:
    """The child's environment: quiet TensorFlow, the ``--run`` options."""
    env = dict(os.environ)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    env["PYTHONUNBUFFERED"] = "1"
    env.pop(RUN_ENV, None)
    if run is not None:
        env[RUN_ENV] = json.dumps(run.to_dict())
        if run.device == "cpu":
            env["CUDA_VISIBLE_DEVICES"] = "-1"
    return env


def check_file(path: str, *, timeout: float = DEFAULT_TIMEOUT,
               args: list[str] | tuple[str, ...] = (), run: Any = None) -> FileReport:
    """Check one script: run it under capture in a child process (a saved
    ``.keras``/``.h5`` model is loaded there instead: :mod:`shapecheck.saved`).

    ``run`` (:class:`shapecheck.execute.RunOptions`) executes each model too.
    """
    if not os.path.exists(path):
        return _failed(path, "not-found", f"{path}: no such file")
    if os.path.isdir(path):
        return _failed(path, "not-a-script", f"{path}: is a directory, not a Python script")
    saved = is_saved_model(path)  # a saved model: loaded (safe mode), not run
    if not path.endswith(".py") and not saved:
        return _failed(path, "not-a-script", f"{path}: not a Python script (expected a .py "
                       "file, or a saved model: .keras, .h5)")
    fd, result = tempfile.mkstemp(prefix="shapecheck-", suffix=".json")
    os.close(fd)
    env = child_env(run)
    cmd = [sys.executable, "-m", "shapecheck.child", result, path, *args]
    if saved:
        cmd = [sys.executable, "-m", "shapecheck.child", "--saved", result, path]
    try:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, env=env, start_new_session=True)
        try:
            out, _ = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            out, _ = proc.communicate()
            what = ("loading the model did not finish" if saved
                    else "the script did not finish")
            return _failed(path, "timeout",
                           f"{path}: {what} within {timeout:g} s "
                           "(a hanging generator or a long computation?); raise "
                           "--timeout if it needs longer",
                           out.decode(errors="replace"))
        text = out.decode(errors="replace")
        try:
            with open(result, encoding="utf-8") as fh:
                raw = fh.read()
            report = FileReport.from_dict(json.loads(raw)) if raw else None
        except (OSError, ValueError):
            report = None
        if report is None:
            tail = "\n".join(text.strip().splitlines()[-15:])
            return _failed(path, "crash",
                           f"{path}: the checking process ended abruptly "
                           f"(status {proc.returncode})" + (f":\n{tail}" if tail else ""),
                           text)
        report.output = text
        if report.error is not None and report.error.kind == "exit" and text.strip():
            tail = "\n".join(text.strip().splitlines()[-5:])
            report.error.message += f"; it printed:\n{tail}"
        return report
    finally:
        try:
            os.unlink(result)
        except OSError:
            pass


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        proc.kill()


def check_files_together(paths: list[str], *, timeout: float = DEFAULT_TIMEOUT,
                         run: Any = None) -> list[FileReport]:
    """Check several scripts one after another in one child process.

    Faster than :func:`check_file` per script (Keras is imported once) but the
    scripts share a process: for trusted scripts such as a test suite's fixtures.
    """
    with tempfile.TemporaryDirectory(prefix="shapecheck-") as tmp:
        env = child_env(run)
        cmd = [sys.executable, "-m", "shapecheck.child", "--many", tmp, *paths]
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              stdin=subprocess.DEVNULL, env=env, timeout=timeout)
        out = []
        for i, path in enumerate(paths):
            try:
                with open(os.path.join(tmp, f"{i}.json"), encoding="utf-8") as fh:
                    out.append(FileReport.from_dict(json.load(fh)))
            except (OSError, ValueError):
                out.append(_failed(path, "crash", f"{path}: no report "
                                   f"(status {proc.returncode}):\n"
                                   + proc.stdout.decode(errors="replace")[-2000:]))
        return out


_SKIP_DIRS = {"__pycache__", "site-packages", "node_modules", "build", "dist"}


def expand(paths: list[str]) -> list[str]:
    """Scripts to check: each path as given, each folder's ``*.py`` files (recursively,
    sorted, leaving out hidden folders, virtual environments and build output)."""
    out: list[str] = []
    for path in paths:
        if not os.path.isdir(path):
            out.append(path)
            continue
        found = []
        for root, dirs, files in os.walk(path):
            dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d not in _SKIP_DIRS
                             and not os.path.exists(os.path.join(root, d, "pyvenv.cfg")))
            found += [os.path.join(root, f) for f in sorted(files) if f.endswith(".py")]
        out += found or [path]  # an empty folder is reported as such
    return out


def check_paths(paths: list[str], settings: Any = None,
                args: list[str] | tuple[str, ...] = ()) -> list[FileReport]:
    """Check every script under ``paths``, each in its own process, ``settings.jobs``
    at a time (default: the number of cores); reports in the order of the paths."""
    from concurrent.futures import ThreadPoolExecutor

    scripts = expand(paths)
    timeout = getattr(settings, "timeout", DEFAULT_TIMEOUT)
    run = settings.run_options() if settings is not None else None
    jobs = getattr(settings, "jobs", None) or os.cpu_count() or 1

    def one(path: str) -> FileReport:
        if os.path.isdir(path):
            return _failed(path, "not-a-script", f"{path}: a folder with no Python scripts")
        return check_file(path, timeout=timeout, args=args, run=run)

    if len(scripts) == 1 or jobs == 1:
        return [one(p) for p in scripts]
    with ThreadPoolExecutor(max_workers=min(jobs, len(scripts))) as pool:
        return list(pool.map(one, scripts))
