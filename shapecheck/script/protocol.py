"""What the parent and the child process exchange: how the child is started (command,
environment, the ``--run`` options), the files it writes next to its result (events,
checkpoints, the scratch folder) and how, and the time limits both keep.
"""

from __future__ import annotations

import builtins
import json
import os
import sys
from dataclasses import dataclass
from typing import Any, Callable

DEFAULT_TIMEOUT = 300.0  # seconds a script may run
RUN_ENV = "SHAPECHECK_RUN"  # the --run options, as JSON, for the child
STEPS_ENV = "SHAPECHECK_LOOP_STEPS"  # --steps: a training loop's dry-run steps
DEFAULT_STEPS = 2

# The child's stream, next to its result file: one JSON line per event, and the
# last checkpoint of the analysis ({"report": FileReport, "recorded": n}).
EVENTS_SUFFIX = ".events"
SCRATCH_SUFFIX = ".scratch"  # the child's write sandbox, removed with the result's folder
CHECKPOINT_SUFFIX = ".checkpoint"
TIMEOUT_GRACE = 5.0  # the child's watchdog: time for the script to unwind at its limit


def timeout_message(path: str, timeout: float, saved: bool = False) -> str:
    """The script (or the loading of a saved model) took longer than ``--timeout``."""
    what = "loading the model did not finish" if saved else "the script did not finish"
    return (f"{path}: {what} within {timeout:g} s (a hanging generator or a long "
            "computation?); raise --timeout if it needs longer")


def analysis_limit(n_models: int, run: Any = None) -> float:
    """Seconds the child may take to analyse ``n_models`` models after the script
    (with ``--run``, each model's executions have their own limit)."""
    per_model = 60.0 + (2 * float(getattr(run, "timeout", 0)) if run is not None else 0.0)
    return 300.0 + n_models * per_model


def child_env(run: Any = None, steps: int = DEFAULT_STEPS) -> dict[str, str]:
    """The child's environment: quiet TensorFlow, the ``--run`` options, the steps a
    hand-written training loop runs."""
    env = dict(os.environ)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    env["PYTHONUNBUFFERED"] = "1"
    env[STEPS_ENV] = str(int(steps))
    env.pop(RUN_ENV, None)
    if run is not None:
        env[RUN_ENV] = json.dumps(run.to_dict())
        if run.device == "cpu":
            env["CUDA_VISIBLE_DEVICES"] = "-1"
    return env


def child_command(*args: str) -> list[str]:
    """``python -P`` running :func:`shapecheck.script.child.main` with ``args``.

    The child loads this very shapecheck package by its location and puts
    nothing on ``sys.path``: a ``shapecheck``, ``keras`` or ``numpy`` folder in
    the working directory cannot shadow the installed ones.
    """
    pkg = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # shapecheck/
    boot = ("import importlib.util as u, sys\n"
            f"s = u.spec_from_file_location('shapecheck', {os.path.join(pkg, '__init__.py')!r},"
            f" submodule_search_locations=[{pkg!r}])\n"
            "m = u.module_from_spec(s); sys.modules['shapecheck'] = m; s.loader.exec_module(m)\n"
            "from shapecheck.script.child import main\n"
            "main()\n")
    return [sys.executable, "-P", "-c", boot, "--parent", str(os.getpid()), *args]


@dataclass
class RealIO:
    """The file functions behind our own writes (result, checkpoints, events),
    captured at import, before the script or a write sandbox can replace them.
    A sandbox that wraps ``open``/``os.replace`` leaves these as they are (or
    sets them to the originals it saved)."""

    open: Callable[..., Any] = builtins.open
    replace: Callable[[str, str], None] = os.replace


REAL_IO = RealIO()


def write_json(path: str, data: Any) -> None:
    """Write ``data`` as JSON to ``path`` atomically (a temporary file, then a rename):
    a reader sees the old file or the new one, never half of one."""
    tmp = f"{path}.{os.getpid()}.tmp"
    with REAL_IO.open(tmp, "w", encoding="utf-8") as fh:
        json.dump(data, fh)
    REAL_IO.replace(tmp, path)


def write_result(result_path: str, report: Any) -> None:
    """Write the child's FileReport where the parent reads it."""
    write_json(result_path, report.to_dict())


def run_options() -> Any:
    """The ``--run`` options the parent passed, or None."""
    raw = os.environ.get(RUN_ENV)
    if not raw:
        return None
    from shapecheck.verify.plans import RunOptions

    return RunOptions.from_dict(json.loads(raw))


def device_error(run_options: Any) -> Any:
    """A ``device`` ScriptError when ``--run`` asks for a device that is not there."""
    if run_options is None:
        return None
    from shapecheck.verify.backends import DeviceError, pick_device
    from shapecheck.report import ScriptError

    try:
        pick_device(run_options.device)
    except DeviceError as err:
        return ScriptError("device", str(err))
    return None
