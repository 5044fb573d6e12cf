"""The child process: run one user script under capture, write its report.

Usage: ``python -m shapecheck.child [--stream] [--timeout S] RESULT.json SCRIPT [ARG...]``
(``--saved RESULT.json FILE`` for a saved model, ``--many RESULT_DIR SCRIPT...``
for several scripts in turn).  The runner starts it with ``python -P`` so that
nothing in the working directory shadows shapecheck or Keras
(:func:`shapecheck.script.runner.child_command`).  The script runs as ``python SCRIPT
ARG...`` would: ``sys.path`` as that command gives it (the script's real folder
first, then the interpreter's own path), ``__name__ == "__main__"``, its own
``sys.argv``.  The report goes to RESULT.json whatever the script does.

With ``--stream`` the child also tells the parent what it records as it goes,
next to RESULT.json: an event line when start-up is done (``ready``), one per
model built (``model``), one when the script ended (``analysing``), and a
checkpoint of the analysis after each dry-run call returns.  With ``--timeout``
a watchdog ends the script at its limit and the report is written all the same;
``os._exit`` in the script and SIGTERM from the parent end it with the report
written too.  Our own files are written with :data:`REAL_IO`, the functions
captured when this module was imported.
"""

from __future__ import annotations

import functools
import json
import os
import runpy
import signal
import sys
import threading
import time
import traceback
from dataclasses import dataclass, field
from typing import Any, Callable

from shapecheck.script.protocol import (REAL_IO, device_error, run_options, write_json,
                                        write_result)

_REAL_EXIT = os._exit  # the script's os._exit is patched while it runs


def _user_entries(err: BaseException, skip: tuple[str, ...]) -> list[Any]:
    """The traceback's entries in the user's code; a line of a file AutoGraph wrote for
    a ``tf.function`` becomes the user's line it came from."""
    import linecache

    from shapecheck.script.frames import original

    out = []
    for f in traceback.extract_tb(err.__traceback__):
        path, line = original(os.path.abspath(f.filename), f.lineno or 0)
        if path != os.path.abspath(f.filename):
            f = traceback.FrameSummary(path, line, f.name,
                                       line=linecache.getline(path, line).strip())
        elif f.filename.startswith(skip) or f.filename.startswith("<") or \
                "__autograph_generated_file" in f.filename:
            continue
        out.append(f)
    return out


def user_traceback(err: BaseException, skip: tuple[str, ...]) -> str:
    """The exception with the user's frames only."""
    frames = _user_entries(err, skip)
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
    operands: list[Any] = field(default_factory=list)  # operands.Operand read on that line
    in_call: str | None = None  # the Keras layer or model whose call raised it, if one did


def _error_info(err: BaseException, skip: tuple[str, ...], cap: Any) -> ScriptErrorInfo:
    import linecache

    from shapecheck.script import operands

    frames = _user_entries(err, skip)
    path = os.path.abspath(frames[-1].filename) if frames else None
    line = frames[-1].lineno if frames else None
    calls = [c for c in cap.recent if c.path == path and c.line == line]
    source = linecache.getline(path, line).rstrip("\n") if path and line else None
    info = ScriptErrorInfo(type(err).__name__, str(err), path, line, source, calls)
    try:
        where, at, info.operands = operands.operands_at(err)
        if (where, at) != (path, line):
            info.operands = []
        info.in_call = _raised_in_call(err)
    except Exception:  # the error is reported as it is
        pass
    return info


def _raised_in_call(err: BaseException) -> str | None:
    """The name of the Keras layer (or model) whose call on data raised ``err``."""
    name = getattr(err, "_shapecheck_call", None)
    return str(name) if name is not None else None


class Stream:
    """What this child tells the parent as it goes, next to the result file: event
    lines (``RESULT.events``) and the last checkpoint (``RESULT.checkpoint``)."""

    def __init__(self, result_path: str) -> None:
        from shapecheck.script.protocol import CHECKPOINT_SUFFIX, EVENTS_SUFFIX

        self.pid = os.getpid()
        self.checkpoint_path = result_path + CHECKPOINT_SUFFIX
        self._fh = REAL_IO.open(result_path + EVENTS_SUFFIX, "ab", buffering=0)

    def event(self, kind: str, /, **fields: Any) -> None:
        """One JSON line, in one write (it survives the process being killed)."""
        if os.getpid() != self.pid:  # a process the script forked: not ours to tell
            return
        line = json.dumps({"event": kind, "time": time.time(), **fields}) + "\n"
        try:
            self._fh.write(line.encode())
        except (OSError, ValueError):
            pass

    def checkpoint(self, data: dict) -> None:
        if os.getpid() == self.pid:
            write_json(self.checkpoint_path, data)

    def close(self) -> None:
        self._fh.close()


class _Stopped(BaseException):
    """Raised in the script's main thread: its time is up (``timeout``), or the
    parent asked the child to stop (``interrupted``)."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


class _Recorded(list):
    """``Capture.models`` that tells the parent of each model as it is recorded."""

    def __init__(self, on_append: Callable[[int, Any], None]) -> None:
        super().__init__()
        self._on_append = on_append

    def append(self, record: Any) -> None:
        super().append(record)
        try:
            self._on_append(len(self) - 1, record)
        except Exception:  # telling the parent never breaks the script
            pass


CHECKPOINT_SHARE = 0.1  # checkpoints take at most this share of the script's time


@dataclass
class _Job:
    """One script being checked in this process: its report so far, what capture
    records, and how the script ends (watchdog, signals, ``os._exit``)."""

    result_path: str
    script: str
    report: Any  # FileReport
    cap: Any  # capture.Capture
    run_options: Any
    stream: Stream | None
    timeout: float | None
    pid: int = field(default_factory=os.getpid)
    main_ident: int = field(default_factory=threading.get_ident)
    phase: str = "startup"  # "startup" | "script" | "analysing"
    timed_out: bool = False
    script_over: threading.Event = field(default_factory=threading.Event)
    finishing: Any = field(default_factory=threading.Lock)  # held by whoever writes the result
    last_checkpoint: float = 0.0
    checkpoint_cost: float = 0.0
    sandbox: Any = None  # shapecheck.script.sandbox.Sandbox while the script and analysis run

    # -- streaming ---------------------------------------------------------------------

    def on_model(self, index: int, record: Any) -> None:
        from shapecheck.graph.model import model_kind
        from shapecheck.report import display_path

        if self.stream is not None:
            self.stream.event("model", index=index, name=getattr(record.model, "name", "?"),
                              kind=model_kind(record.model), cls=type(record.model).__name__,
                              path=display_path(record.path), line=record.line,
                              internal=bool(record.internal))

    def after_dry_run(self) -> None:
        """A checkpoint, unless checkpoints would take more than their share of time."""
        if self.stream is None or self.phase != "script" or os.getpid() != self.pid:
            return
        since = time.monotonic() - self.last_checkpoint
        if self.checkpoint_cost and since * CHECKPOINT_SHARE < self.checkpoint_cost:
            return
        self.checkpoint()

    def checkpoint(self) -> None:
        """The static analysis of what was recorded so far, for the parent to report
        if this process ends before its report is written."""
        if self.stream is None:
            return
        from shapecheck.graph.model import analyze
        from shapecheck.report import FileReport
        from shapecheck.script import capture

        start = time.monotonic()
        recorded = len(self.cap.models)
        try:
            with capture.quiet():
                models, found = analyze(
                    [(r.model, r.path, r.line) for r in list(self.cap.models)[:recorded]
                     if not r.internal],
                    failures=list(self.cap.failures), compiled=dict(self.cap.compiled),
                    data_calls=list(self.cap.data_calls), traces=dict(self.cap.traces),
                    steps=list(self.cap.steps), declared=list(self.cap.declared))
            point = FileReport(path=self.report.path, models=models, diagnostics=found)
            self.stream.checkpoint({"report": point.finish().to_dict(), "recorded": recorded})
        except Exception:  # a checkpoint is a precaution: never the script's problem
            pass
        self.last_checkpoint = time.monotonic()
        self.checkpoint_cost = self.last_checkpoint - start

    # -- the script's time -------------------------------------------------------------

    def begin_script(self) -> None:
        """Signal handlers, ``os._exit`` and the watchdog, for the script's run."""
        global _JOB
        _JOB = self
        self.phase = "script"
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGALRM):
                signal.signal(sig, _on_signal)
        os._exit = _script_exit
        if self.timeout is not None:
            threading.Thread(target=self._watchdog, name="shapecheck-watchdog",
                             daemon=True).start()

    def end_script(self) -> None:
        """The script is over (it may be called twice)."""
        from shapecheck.script import loops

        if self.phase == "script":
            loops.restore()  # the weights the script's forward passes moved
        self.phase = "analysing"
        self.script_over.set()
        if os._exit is _script_exit:
            os._exit = _REAL_EXIT

    def _watchdog(self) -> None:
        """At the script's limit: stop it in its main thread; when it does not stop
        within the grace, tell the parent and end this process (the parent reports
        the last checkpoint)."""
        from shapecheck.script.protocol import TIMEOUT_GRACE

        assert self.timeout is not None
        if self.script_over.wait(self.timeout) or self.phase != "script":
            return
        self.timed_out = True
        if signal.getsignal(signal.SIGALRM) is _on_signal:
            try:
                signal.pthread_kill(self.main_ident, signal.SIGALRM)
            except (OSError, ValueError):
                pass
        if self.script_over.wait(TIMEOUT_GRACE):
            return
        if self.stream is not None:
            self.stream.event("timeout")
        _REAL_EXIT(3)

    def timeout_error(self) -> _Stopped:
        from shapecheck.report import display_path
        from shapecheck.script.protocol import timeout_message

        assert self.timeout is not None
        return _Stopped("timeout", timeout_message(display_path(self.script) or self.script,
                                                   self.timeout))

    # -- the end -----------------------------------------------------------------------

    def finish(self, stopped: Any = None) -> int:
        """Analyse every model recorded and write the report (once)."""
        from shapecheck.graph.model import analyze
        from shapecheck.report import display_path
        from shapecheck.rules.ops import cross_broadcasts
        from shapecheck.script import broadcasts
        from shapecheck.script.contracts import findings as contract_findings
        from shapecheck.script.protocol import analysis_limit

        self.end_script()
        if not self.finishing.acquire(blocking=False):
            return 0  # another thread is writing it already
        legacy = sys.modules.get("shapecheck.script.legacy")
        if legacy is not None:
            legacy.finish()  # the tf_keras models no data call reached
        report, cap = self.report, self.cap
        records = [r for r in cap.models if not r.internal]
        if self.stream is not None:
            self.stream.event("analysing", limit=analysis_limit(len(records), self.run_options))
            if self.run_options is not None:
                self.checkpoint()  # the static pass, before --run executes the models
        report.models, found = analyze(
            [(r.model, r.path, r.line) for r in records],
            failures=cap.failures, compiled=cap.compiled, data_calls=cap.data_calls,
            run=self.run_options, traces=cap.traces, steps=cap.steps,
            declared=cap.declared)
        found += contract_findings(cap.contracts, report.models,  # @shapecheck.returns
                                   [(r.model, r.path, r.line) for r in records], display_path)
        found += cross_broadcasts(broadcasts.FOUND, display_path)  # y - pred, (n,) vs (n, 1)
        if stopped is not None:
            from shapecheck.rules.engine import script_error_findings
            from shapecheck.rules.ops import name_operand_dims

            name_operand_dims(stopped, report.models)
            for d in script_error_findings(stopped):
                if d.code == "SC903" and any(
                        o.severity == "error" and o.line == d.line
                        and o.path == display_path(d.path) for o in found):
                    continue  # the data rules found it at that call already
                d.path = display_path(d.path)
                for r in d.related:
                    r.path = display_path(r.path)
                found.append(d)
        report.diagnostics.extend(found)
        self.close_sandbox()
        write_result(self.result_path, report.finish())
        if self.stream is not None:
            self.stream.close()
        return 0

    def open_sandbox(self) -> None:
        """Send the script's writes to a scratch folder beside the result file (the
        parent removes it whatever happens to this process)."""
        from shapecheck.script import sandbox
        from shapecheck.script.protocol import SCRATCH_SUFFIX

        self.sandbox = sandbox.activate(self.result_path + SCRATCH_SUFFIX)

    def close_sandbox(self) -> None:
        """Drop the scratch folder; the report says what was written there and which
        dry-run call's values were made up."""
        from shapecheck.report import display_path

        from shapecheck.script import loops

        sb, self.sandbox = self.sandbox, None
        made_up = self.cap.made_up
        stopped = loops.stopped_text(display_path)
        stacks = loops.stacks_report(display_path)
        writes = []
        if sb is not None:
            sb.close()
            writes = [{"path": c.path, "kind": c.kind} for c in sb.changes()]
        if made_up is not None or writes or stopped or stacks:
            where = (f"`{made_up.method}` at {display_path(made_up.path)}:{made_up.line}"
                     if made_up is not None else None)
            self.report.dry_run = {"made_up": where, "writes": writes}
            if stacks:
                self.report.dry_run["stacked"] = stacks
            if stopped:
                self.report.dry_run["stopped"] = stopped
                self.report.dry_run["steps"] = [
                    {"path": display_path(p), "line": line, "steps": n}
                    for (p, line, *_), n in loops.STATE.counts.items() if p]


_JOB: _Job | None = None  # the script running in this process


def _on_signal(signum: int, frame: Any) -> None:
    """SIGTERM from the parent, SIGALRM from the watchdog: stop the script."""
    job = _JOB
    if job is None or os.getpid() != job.pid:  # a process the script forked
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)
        return
    if job.phase != "script":
        return  # the analysis is running: the parent's grace decides
    if signum == signal.SIGALRM:
        if job.timed_out:
            raise job.timeout_error()
        return
    raise _Stopped("interrupted", "the check was interrupted")


def _script_exit(code: int) -> None:
    """``os._exit`` while the script runs: the report is written first.  Status 0 is
    the script's normal end; another status is reported as ``sys.exit`` would be."""
    job = _JOB
    if job is None or os.getpid() != job.pid or job.phase != "script":
        _REAL_EXIT(code)
    from shapecheck.report import ScriptError
    from shapecheck.script import capture

    if code != 0:
        job.report.error = ScriptError("exit", f"the script exited with status {code!r} "
                                       "(os._exit)")
    try:
        with capture.quiet():
            job.finish()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        _REAL_EXIT(code)


_DRY_WRAPPED = False


def _checkpoint_after_dry_runs() -> None:
    """Wrap capture's dry-run ``fit``/``evaluate``/``predict``/... so that each call,
    once returned, writes a checkpoint (once per process)."""
    global _DRY_WRAPPED
    if _DRY_WRAPPED:
        return
    _DRY_WRAPPED = True
    from keras.src.models.model import Model

    from shapecheck.script.drycalls import DRY_METHODS

    for name in DRY_METHODS:
        dry = getattr(Model, name)

        @functools.wraps(dry)
        def call(self: Any, *args: Any, _dry: Any = dry, **kwargs: Any) -> Any:
            try:
                return _dry(self, *args, **kwargs)
            finally:
                if _JOB is not None:
                    _JOB.after_dry_run()

        setattr(Model, name, call)


def script_path(script: str, base: list[str]) -> list[str]:
    """``sys.path`` as ``python SCRIPT`` has it: the script's real folder, then the
    interpreter's path (no folder at all under ``PYTHONSAFEPATH``)."""
    if os.environ.get("PYTHONSAFEPATH"):
        return list(base)
    return [os.path.dirname(os.path.realpath(script)), *base]


def run(result_path: str, script: str, argv: list[str], *, base_path: list[str] | None = None,
        stream: bool = False, timeout: float | None = None) -> int:
    """Run ``script`` under capture and write its report to ``result_path``.

    ``base_path``: the interpreter's own ``sys.path`` (the script's folder goes
    first); ``stream``: tell the parent as things are recorded; ``timeout``: the
    script's limit in seconds, kept by a watchdog thread.
    """
    from shapecheck import report as reports
    from shapecheck.report import FileReport, ScriptError, display_path
    from shapecheck.script import capture, drycalls, frames, legacy, loops, notebook

    reports.BASE_DIR = os.getcwd()  # paths shown as from here, wherever the script goes

    report = FileReport(path=display_path(script))
    stopped = None
    run = run_options()
    report.error = device_error(run)
    if report.error is not None:
        write_result(result_path, report.finish())
        return 0
    if not capture.INSTALLED:
        capture.install()
        drycalls.install()
    cap = capture.reset()
    legacy.reset()
    legacy.watch()  # tf_keras, when the script imports it
    job = _Job(result_path, script, report, cap, run,
               Stream(result_path) if stream else None, timeout)
    if job.stream is not None:
        import shapecheck.rules.engine  # noqa: F401  (start-up, not the script's time)

        cap.models = _Recorded(job.on_model)
        _checkpoint_after_dry_runs()
        job.stream.event("ready", watchdog=timeout is not None)
    sys.argv = [script, *argv]
    sys.path[:] = script_path(script, sys.path if base_path is None else base_path)
    job.begin_script()
    try:
        try:
            # The write sandbox, last thing before the script runs; our own writes
            # go through REAL_IO (write_json, Stream).
            job.open_sandbox()
            notebook.run_path(script)  # a .py file with runpy, or a notebook's cells
        finally:
            job.end_script()
    except _Stopped as err:
        report.error = ScriptError(err.kind, err.message)
    except loops.LoopStopped:
        pass  # its training loop ran the dry run's steps: the script is done
    except SyntaxError as err:
        where = f"{display_path(err.filename)}:{err.lineno}" if err.filename else script
        text = (err.text or "").rstrip()
        report.error = ScriptError("syntax-error", f"{where}: SyntaxError: {err.msg}"
                                   + (f"\n    {text.strip()}" if text else ""))
    except SystemExit as err:
        if err.code not in (None, 0):
            report.error = ScriptError("exit", f"the script exited with status {err.code!r}")
    except BaseException as err:  # the user's own exception, whatever it is
        skip = frames.SKIP_PREFIXES + (os.path.abspath(__file__),
                                       os.path.dirname(runpy.__file__) + os.sep)
        stopped = _error_info(err, skip, cap)
        report.error = ScriptError(
            "script-error", user_traceback(err, skip),
            exception="".join(traceback.format_exception_only(type(err), err)).strip(),
            path=display_path(stopped.path), line=stopped.line, source=stopped.source)
    return job.finish(stopped)


def _reset_keras() -> None:
    try:
        import keras

        keras.backend.clear_session()
    except Exception:  # pragma: no cover - nothing to reset
        pass


def _die_with_parent(ppid: int) -> None:
    """On Linux, have this process killed when the process that started it dies
    (a parent killed by SIGKILL leaves no child running)."""
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, int(signal.SIGKILL), 0, 0, 0)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() != ppid:  # it died before we asked
        _REAL_EXIT(1)


def main() -> None:
    """The child's command line (see the module's docstring)."""
    base = list(sys.path)  # the interpreter's own path, before any import changes it
    if __name__ == "__main__" and not sys.flags.safe_path:
        base = base[1:]  # `python -m shapecheck.child` put the working directory first
        sys.path[:] = base
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    args = sys.argv[1:]
    stream, timeout = False, None
    while args and args[0] in ("--parent", "--stream", "--timeout"):
        if args[0] == "--stream":
            stream, args = True, args[1:]
            continue
        if args[0] == "--timeout":
            timeout = float(args[1])
        else:
            _die_with_parent(int(args[1]))
        args = args[2:]
    if args[0] == "--saved":  # RESULT FILE: a saved .keras/.h5 model, not a script
        from shapecheck.script.saved import run_saved

        if stream:
            import keras  # noqa: F401  (start-up: loading is what --timeout counts)

            Stream(args[1]).event("ready", watchdog=False)
        code = run_saved(args[1], args[2])
    elif args[0] == "--many":  # RESULT_DIR SCRIPT...: one after another, less isolated
        result_dir, scripts = args[1], args[2:]
        code = 0
        for i, script in enumerate(scripts):
            _reset_keras()
            code |= run(os.path.join(result_dir, f"{i}.json"), script, [], base_path=base,
                        stream=stream)
    else:
        result_path, script, *argv = args
        from shapecheck.script import legacy
        legacy.prepare_file(script)  # legacy tf.keras, if the script asks for it
        code = run(result_path, script, argv, base_path=base, stream=stream, timeout=timeout)
    sys.stdout.flush()
    sys.stderr.flush()
    _REAL_EXIT(code)  # skip interpreter teardown: TF's can hang or crash


if __name__ == "__main__":
    main()
