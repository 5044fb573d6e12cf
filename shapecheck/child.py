"""The child process: run one user script under capture, write its report.

Usage: ``python -m shapecheck.child RESULT.json SCRIPT [ARG...]``.  The script
runs as ``python SCRIPT ARG...`` would (its folder first on ``sys.path``,
``__name__ == "__main__"``, its own ``sys.argv``); the report goes to
RESULT.json whatever the script does.
"""

from __future__ import annotations

import json
import os
import runpy
import sys
import traceback
from dataclasses import dataclass
from typing import Any


def user_traceback(err: BaseException, skip: tuple[str, ...]) -> str:
    """The exception with the user's frames only."""
    frames = [f for f in traceback.extract_tb(err.__traceback__)
              if not f.filename.startswith(skip) and not f.filename.startswith("<")]
    lines = ["Traceback (most recent call last):\n"] if frames else []
    lines += traceback.format_list(frames)
    lines += traceback.format_exception_only(type(err), err)
    return "".join(lines).rstrip()


@dataclass
class ScriptErrorInfo:
    """Where and how the script stopped, for rules that explain it."""

    error_type: str
    message: str
    path: str | None
    line: int | None
    source: str | None
    calls_at_line: list[Any]  # capture.CallSite made on that line


def _error_info(err: BaseException, skip: tuple[str, ...], cap: Any) -> ScriptErrorInfo:
    import linecache

    frames = [f for f in traceback.extract_tb(err.__traceback__)
              if not f.filename.startswith(skip) and not f.filename.startswith("<")]
    path = os.path.abspath(frames[-1].filename) if frames else None
    line = frames[-1].lineno if frames else None
    calls = [c for c in cap.recent if c.path == path and c.line == line]
    source = linecache.getline(path, line).rstrip("\n") if path and line else None
    return ScriptErrorInfo(type(err).__name__, str(err), path, line, source, calls)


def run(result_path: str, script: str, argv: list[str]) -> int:
    from shapecheck import capture
    from shapecheck.analyze import display_path
    from shapecheck.report import FileReport, ScriptError

    report = FileReport(path=display_path(script))
    stopped = None
    run_options = _run_options()
    report.error = device_error(run_options)
    if report.error is not None:
        _write(result_path, report.finish())
        return 0
    if not capture.INSTALLED:
        capture.install()
    cap = capture.reset()
    sys.argv = [script, *argv]
    sys.path.insert(0, os.path.dirname(os.path.abspath(script)))
    try:
        runpy.run_path(script, run_name="__main__")
    except SyntaxError as err:
        where = f"{display_path(err.filename)}:{err.lineno}" if err.filename else script
        text = (err.text or "").rstrip()
        report.error = ScriptError("syntax-error", f"{where}: SyntaxError: {err.msg}"
                                   + (f"\n    {text.strip()}" if text else ""))
    except SystemExit as err:
        if err.code not in (None, 0):
            report.error = ScriptError("exit", f"the script exited with status {err.code!r}")
    except BaseException as err:  # the user's own exception, whatever it is
        skip = capture._SKIP_PREFIXES + (os.path.abspath(__file__),
                                        os.path.dirname(runpy.__file__) + os.sep)
        stopped = _error_info(err, skip, cap)
        report.error = ScriptError(
            "script-error", user_traceback(err, skip),
            exception="".join(traceback.format_exception_only(type(err), err)).strip(),
            path=display_path(stopped.path), line=stopped.line, source=stopped.source)

    from shapecheck.analyze import analyze

    report.models, found = analyze(
        [(r.model, r.path, r.line) for r in cap.models if not r.internal],
        failures=cap.failures, compiled=cap.compiled, data_calls=cap.data_calls,
        run=run_options)
    if stopped is not None:
        from shapecheck.rules.engine import script_error_findings

        for d in script_error_findings(stopped):
            d.path = display_path(d.path)
            found.append(d)
    report.diagnostics.extend(found)
    _write(result_path, report.finish())
    return 0


def _write(result_path: str, report: Any) -> None:
    with open(result_path, "w", encoding="utf-8") as fh:
        json.dump(report.to_dict(), fh)


def device_error(run_options: Any) -> Any:
    """A ``device`` ScriptError when ``--run`` asks for a device that is not there."""
    if run_options is None:
        return None
    from shapecheck.execute import DeviceError, pick_device
    from shapecheck.report import ScriptError

    try:
        pick_device(run_options.device)
    except DeviceError as err:
        return ScriptError("device", str(err))
    return None


def _run_options() -> Any:
    """The ``--run`` options the parent passed, or None."""
    from shapecheck.runner import RUN_ENV

    raw = os.environ.get(RUN_ENV)
    if not raw:
        return None
    from shapecheck.execute import RunOptions

    return RunOptions.from_dict(json.loads(raw))


def _reset_keras() -> None:
    try:
        import keras

        keras.backend.clear_session()
    except Exception:  # pragma: no cover - nothing to reset
        pass


def main() -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if sys.argv[1] == "--saved":  # RESULT FILE: a saved .keras/.h5 model, not a script
        from shapecheck.saved import run_saved

        code = run_saved(sys.argv[2], sys.argv[3])
    elif sys.argv[1] == "--many":  # RESULT_DIR SCRIPT...: one after another, less isolated
        result_dir, scripts = sys.argv[2], sys.argv[3:]
        saved_path = list(sys.path)
        code = 0
        for i, script in enumerate(scripts):
            sys.path[:] = saved_path
            _reset_keras()
            code |= run(os.path.join(result_dir, f"{i}.json"), script, [])
    else:
        result_path, script, *argv = sys.argv[1:]
        code = run(result_path, script, argv)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)  # skip interpreter teardown: TF's can hang or crash


if __name__ == "__main__":
    main()
