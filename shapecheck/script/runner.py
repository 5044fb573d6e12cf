"""Run a user's script in a child process and collect its report.

A crash, an exit or a hang in the script cannot take shapecheck down: the
child is its own process group, stopped whole at the time limit or when the
command is interrupted.  The child streams what it records as it goes (an
event line per model built, a checkpoint of the analysis after each dry run),
so a child that ends abruptly still leaves its models and findings behind.

The child imports shapecheck and Keras from where this process has them, never
from the working directory (``python -P``); the script sees ``sys.path`` as
``python SCRIPT`` gives it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import tempfile
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

from shapecheck.report import display_path
from shapecheck.report import FileReport, ModelEntry, ScriptError
from shapecheck.script.protocol import (CHECKPOINT_SUFFIX, DEFAULT_STEPS, DEFAULT_TIMEOUT,
                                        EVENTS_SUFFIX,
                                        child_command, child_env, timeout_message)
from shapecheck.script import notebook
from shapecheck.script.saved import is_saved_model


STARTUP_TIMEOUT = 300.0  # Python, shapecheck, Keras and its backend imported, capture on
BACKSTOP = 15.0  # the parent's hard limit beyond the child's own (a child that is stuck)
STOP_GRACE = 3.0  # SIGTERM to the child's group, then this long, then SIGKILL
POLL = 0.1  # seconds between looks at the child


def _failed(path: str, kind: str, message: str, output: str = "") -> FileReport:
    return FileReport(path=display_path(path), error=ScriptError(kind, message),
                      output=output).finish()


# -- stopping on SIGINT / SIGTERM -------------------------------------------------------


@dataclass
class StopRequest:
    """A request to stop every check: the signal that asked, how many times."""

    signum: int | None = None
    count: int = 0
    procs: set = field(default_factory=set)  # the children running now
    lock: Any = field(default_factory=threading.RLock)

    def request(self, signum: int) -> None:
        """Stop the checks; a second request kills every child at once."""
        with self.lock:
            if self.signum is None:
                self.signum = signum
            self.count += 1
            procs = list(self.procs) if self.count >= 2 else []
        for proc in procs:
            _signal_group(proc, signal.SIGKILL)

    def clear(self) -> None:
        with self.lock:
            self.signum, self.count = None, 0

    @property
    def exit_code(self) -> int | None:
        """128 + the signal (130 for SIGINT, 143 for SIGTERM), or None."""
        return None if self.signum is None else 128 + self.signum


STOP = StopRequest()


def _on_stop_signal(signum: int, frame: Any) -> None:
    STOP.request(signum)
    if STOP.count >= 3:  # asked three times: leave now, whatever is left
        raise SystemExit(128 + signum)


@contextmanager
def stop_on_signals() -> Iterator[StopRequest]:
    """While inside, SIGINT and SIGTERM stop the checks: each child's process group
    gets SIGTERM, a short grace, then SIGKILL, and each check returns what its
    child recorded, marked ``interrupted``.  A second signal kills the children at
    once.  Yields :data:`STOP` (its ``exit_code`` after the block).  Outside the
    main thread nothing is installed, nor for a signal this process ignores."""
    STOP.clear()
    if threading.current_thread() is not threading.main_thread():
        yield STOP
        return
    old = {s: signal.signal(s, _on_stop_signal) for s in (signal.SIGINT, signal.SIGTERM)
           if signal.getsignal(s) is not signal.SIG_IGN}  # ignored (nohup, &): left so
    try:
        yield STOP
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)


def _signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def _interrupted_message(path: str, started: bool) -> str:
    name = _signal_name(STOP.signum or signal.SIGINT)
    if not started:
        return f"{path}: not checked: interrupted by {name} before it started"
    return f"{path}: interrupted by {name}; reported: what was recorded until then"


# -- the child's process group ---------------------------------------------------------


def _signal_group(proc: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        pass
    except PermissionError:
        if proc.poll() is None:
            proc.send_signal(sig)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def _stop_group(proc: subprocess.Popen, grace: float = STOP_GRACE) -> None:
    """SIGTERM to the child's whole group, up to ``grace`` s for the child to write
    its report and end (less after a second stop request), then SIGKILL to all."""
    _signal_group(proc, signal.SIGTERM)
    end = time.monotonic() + grace
    while proc.poll() is None and time.monotonic() < end and STOP.count < 2:
        time.sleep(0.05)
    _signal_group(proc, signal.SIGKILL)
    proc.wait()


def _end_group(proc: subprocess.Popen, grace: float = 1.0) -> None:
    """After the child ended: stop what the script left running in its group."""
    if not _group_alive(proc.pid):
        return
    _signal_group(proc, signal.SIGTERM)
    end = time.monotonic() + grace
    while _group_alive(proc.pid) and time.monotonic() < end:
        time.sleep(0.05)
    _signal_group(proc, signal.SIGKILL)


class _Output:
    """The child's stdout and stderr, read by a thread as they come."""

    def __init__(self, stream: Any) -> None:
        self._chunks: list[bytes] = []
        self._stream = stream
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        fd = self._stream.fileno()
        while True:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                return
            if not chunk:
                return
            self._chunks.append(chunk)

    def text(self, wait: float = 2.0) -> str:
        """What was printed; waits up to ``wait`` s for the pipe to close (a process
        that left the group may hold it open)."""
        self._thread.join(wait)
        return b"".join(self._chunks).decode(errors="replace")


# -- what the child streams ------------------------------------------------------------


class Events:
    """The child's event lines, read as they are written (``ready``, ``model``,
    ``analysing``, ``timeout``), with the parent's clock when each was seen."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._offset = 0
        self._tail = b""
        self.ready_at: float | None = None
        self.watchdog = False
        self.analysing_at: float | None = None
        self.limit = 0.0
        self.timed_out = False
        self.models: list[dict] = []

    def poll(self) -> None:
        try:
            with open(self.path, "rb") as fh:
                fh.seek(self._offset)
                data = fh.read()
        except OSError:
            return
        self._offset += len(data)
        *lines, self._tail = (self._tail + data).split(b"\n")
        now = time.monotonic()
        for line in lines:
            try:
                event = json.loads(line)
            except ValueError:
                continue
            kind = event.get("event")
            if kind == "ready":
                self.ready_at, self.watchdog = now, bool(event.get("watchdog"))
            elif kind == "model":
                self.models.append(event)
            elif kind == "analysing":
                self.analysing_at, self.limit = now, float(event.get("limit", 300.0))
            elif kind == "timeout":
                self.timed_out = True

    @property
    def phase(self) -> str:
        if self.analysing_at is not None:
            return "analysis"
        return "script" if self.ready_at is not None else "startup"

    def overdue(self, now: float, start: float, timeout: float,
                startup_timeout: float) -> str | None:
        """The phase whose limit has passed: ``startup``, ``timeout`` (the script)
        or ``analysis``; None while within limits."""
        if self.analysing_at is not None:
            return "analysis" if now > self.analysing_at + self.limit + BACKSTOP else None
        if self.ready_at is not None:
            extra = BACKSTOP if self.watchdog else 0.0
            return "timeout" if now > self.ready_at + timeout + extra else None
        return "startup" if now > start + startup_timeout else None


def partial_report(path: str, result: str, events: Events, error: ScriptError,
                   why: str) -> FileReport:
    """What a child that ended without its report recorded: its last checkpoint,
    plus the models it built after that (``checked: false``, ``reason``: ``why``)."""
    report: FileReport | None = None
    recorded = 0
    try:
        with open(result + CHECKPOINT_SUFFIX, encoding="utf-8") as fh:
            point = json.load(fh)
        report = FileReport.from_dict(point["report"])
        recorded = int(point.get("recorded", 0))
    except (OSError, ValueError, KeyError, TypeError):
        report = None
    if report is None:
        report = FileReport(path=display_path(path))
    for m in events.models:
        if m.get("index", 0) < recorded or m.get("internal"):
            continue
        entry = ModelEntry(name=m.get("name", "?"), kind=m.get("kind", "functional"),
                           path=m.get("path"), line=m.get("line"))
        entry.checked = False
        entry.reason = f"recorded when the script built it, not analysed: {why}"
        report.models.append(entry)
    report.error = error
    return report.finish()


def _recorded(report: FileReport) -> str:
    n = len(report.models)
    unchecked = sum(not getattr(m, "checked", True) for m in report.models)
    if not n:
        return "no model was recorded before that"
    return (f"reported: the {n} model(s) recorded until then"
            + (f" ({unchecked} not analysed)" if unchecked else ""))


_CRASHES = {signal.SIGSEGV: "segmentation fault", signal.SIGABRT: "aborted, SIGABRT",
            signal.SIGBUS: "bus error, SIGBUS", signal.SIGFPE: "arithmetic error, SIGFPE",
            signal.SIGILL: "illegal instruction, SIGILL"}
_PHASES = {"startup": "during start-up, before the script ran",
           "script": "while the script ran",
           "analysis": "while shapecheck analysed the models"}


def ended_by(returncode: int | None) -> str:
    """What ended a child that wrote no report, in words."""
    if returncode is None:
        return "ended abruptly"
    if returncode < 0:
        sig = -returncode
        if sig == signal.SIGKILL:
            return "was killed by SIGKILL (out of memory?)"
        if sig in _CRASHES:
            return f"crashed ({_CRASHES[sig]})"
        return f"was killed by {_signal_name(sig)}"
    return f"ended abruptly with status {returncode} before writing its report"


@dataclass
class _Ending:
    how: str  # "exited" | "startup" | "timeout" | "analysis" | "interrupted"
    returncode: int | None


def _supervise(proc: subprocess.Popen,
               overdue: Callable[[float], str | None], events: Events) -> _Ending:
    """Wait for the child; stop it when a limit passes or a stop is requested."""
    while True:
        try:
            proc.wait(timeout=POLL)
            events.poll()
            return _Ending("exited", proc.returncode)
        except subprocess.TimeoutExpired:
            pass
        events.poll()
        how = "interrupted" if STOP.signum is not None else overdue(time.monotonic())
        if how is None:
            continue
        _stop_group(proc)
        events.poll()
        return _Ending(how, proc.returncode)


def _read_report(result: str) -> FileReport | None:
    try:
        with open(result, encoding="utf-8") as fh:
            raw = fh.read()
        return FileReport.from_dict(json.loads(raw)) if raw else None
    except (OSError, ValueError):
        return None


def _tail(text: str, lines: int) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def check_file(path: str, *, timeout: float = DEFAULT_TIMEOUT,
               args: list[str] | tuple[str, ...] = (), run: Any = None,
               startup_timeout: float = STARTUP_TIMEOUT,
               steps: int = DEFAULT_STEPS) -> FileReport:
    """Check one script: run it under capture in a child process (a saved
    ``.keras``/``.h5`` model is loaded there instead: :mod:`shapecheck.script.saved`).

    ``run`` (:class:`shapecheck.verify.execute.RunOptions`) executes each model too.
    ``steps``: a hand-written training loop is stopped after that many steps.
    ``timeout`` counts the script's own time (loading, for a saved model), from
    the end of the child's start-up, which has ``startup_timeout``.  Whatever
    ends the child (a limit, a crash, a signal, :data:`STOP`), the report has
    what it recorded until then.
    """
    if not os.path.exists(path):
        return _failed(path, "not-found", f"{path}: no such file")
    if os.path.isdir(path):
        return _failed(path, "not-a-script", f"{path}: is a directory, not a Python script")
    saved = is_saved_model(path)  # a saved model: loaded (safe mode), not run
    if not path.endswith((".py", ".ipynb")) and not saved:
        return _failed(path, "not-a-script", f"{path}: not a Python script (expected a .py "
                       "file, a .ipynb notebook, or a saved model: .keras, .h5)")
    if notebook.is_notebook(path):
        try:
            notebook.read(path)
        except notebook.NotebookError as err:
            return _failed(path, "not-a-script", str(err))
    if STOP.signum is not None:
        return _failed(path, "interrupted", _interrupted_message(path, started=False))
    with tempfile.TemporaryDirectory(prefix="shapecheck-") as tmp:
        result = os.path.join(tmp, "result.json")
        if saved:
            cmd = child_command("--stream", "--saved", result, path)
        else:
            cmd = child_command("--stream", "--timeout", repr(float(timeout)), result,
                                path, *args)
        events = Events(result + EVENTS_SUFFIX)
        start = time.monotonic()
        ending, text = _run_child(cmd, run, lambda now: events.overdue(
            now, start, timeout, startup_timeout), events, steps)
        return notebook.locate(
            _file_report(path, result, events, ending, text, timeout=timeout,
                         startup_timeout=startup_timeout, saved=saved), path)


def _file_report(path: str, result: str, events: Events, ending: _Ending, text: str, *,
                 timeout: float, startup_timeout: float, saved: bool) -> FileReport:
    """The report of one child: its own, or the partial one, with what ended it."""
    report = _read_report(result)
    if ending.how == "interrupted":
        error = ScriptError("interrupted", _interrupted_message(path, started=True))
        why = "the check was interrupted"
    elif ending.how == "startup":
        error = ScriptError("timeout", f"{path}: not checked: shapecheck's start-up (Python, "
                            f"Keras and its backend's imports) took longer than "
                            f"{startup_timeout:g} s, before the script ran; the machine may "
                            "be too busy (fewer -j jobs?)")
        why = "start-up took too long"
    elif ending.how == "timeout" or (report is None and events.timed_out):
        error = ScriptError("timeout", timeout_message(path, timeout, saved))
        why = "the script timed out"
    elif ending.how == "analysis":
        error = ScriptError("timeout", f"{path}: shapecheck's analysis of the models did not "
                            f"finish within {events.limit:g} s after the script ended")
        why = "the analysis timed out"
    else:
        error = None
        why = f"the checking process {ended_by(ending.returncode)}"
    if report is not None:  # the child wrote its report: the parent's reason wins
        report.output = text
        if error is not None:
            report.error = error
            report.finish()
        if report.error is not None and report.error.kind == "exit" and text.strip():
            report.error.message += f"; it printed:\n{_tail(text, 5)}"
        return report
    if error is None:
        tail = _tail(text, 15)
        error = ScriptError("crash", f"{path}: the checking process "
                            f"{ended_by(ending.returncode)} {_PHASES[events.phase]}")
        report = partial_report(path, result, events, error, why)
        error.message += f"; {_recorded(report)}" + (f":\n{tail}" if tail else "")
    else:
        report = partial_report(path, result, events, error, why)
        if ending.how != "startup":
            error.message += f"; {_recorded(report)}"
    report.output = text
    return report


def _run_child(cmd: list[str], run: Any, overdue: Any, events: "Events",
               steps: int = DEFAULT_STEPS) -> tuple[Any, str]:
    """Start the child in a session of its own, supervise it until it ends (a limit
    from ``overdue``, a signal to us), leave no process of it; its ending and output."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, env=child_env(run, steps),
                            start_new_session=True)
    with STOP.lock:
        STOP.procs.add(proc)
    output = _Output(proc.stdout)
    try:
        ending = _supervise(proc, overdue, events)
    except BaseException:  # interrupted here (the Python API): no child left behind
        _signal_group(proc, signal.SIGKILL)
        proc.wait()
        raise
    finally:
        with STOP.lock:
            STOP.procs.discard(proc)
        _end_group(proc)
    text = output.text()
    proc.stdout.close()
    return ending, text


def check_files_together(paths: list[str], *, timeout: float = DEFAULT_TIMEOUT,
                         run: Any = None, steps: int = DEFAULT_STEPS) -> list[FileReport]:
    """Check several scripts one after another in one child process.

    Faster than :func:`check_file` per script (Keras is imported once) but the
    scripts share a process: for trusted scripts such as a test suite's fixtures.
    ``timeout`` is for them all; a child that ends early leaves the script it was
    running reported with what it recorded, and the later ones as not checked.
    """
    with tempfile.TemporaryDirectory(prefix="shapecheck-") as tmp:
        cmd = child_command("--stream", "--many", tmp, *paths)
        start = time.monotonic()
        ending, text = _run_child(cmd, run, lambda now: "timeout" if now > start + timeout
                                  else None, Events(os.devnull), steps)
        out: list[FileReport] = []
        ended: str | None = None  # the script during which the child ended
        for i, path in enumerate(paths):
            result = os.path.join(tmp, f"{i}.json")
            report = _read_report(result)
            if report is not None:
                out.append(notebook.locate(report, path))
                continue
            if ended is not None:
                out.append(_failed(path, "crash", f"{path}: not checked: the checking "
                                   f"process ended during {ended}"))
                continue
            ended = path
            events = Events(result + EVENTS_SUFFIX)
            events.poll()
            if ending.how == "timeout":
                error = ScriptError("timeout", f"{path}: the scripts did not finish within "
                                    f"{timeout:g} s together")
                why = "the scripts timed out"
            elif ending.how == "interrupted":
                error = ScriptError("interrupted", _interrupted_message(path, started=True))
                why = "the check was interrupted"
            else:
                error = ScriptError("crash", f"{path}: the checking process "
                                    f"{ended_by(ending.returncode)} (no report)")
                why = f"the checking process {ended_by(ending.returncode)}"
            report = partial_report(path, result, events, error, why)
            error.message += f"; {_recorded(report)}:\n{text[-2000:]}"
            out.append(report)
        return out


_SKIP_DIRS = {"__pycache__", "site-packages", "node_modules", "build", "dist"}


def expand(paths: list[str]) -> list[str]:
    """Scripts to check: each path as given, each folder's ``*.py`` and ``*.ipynb``
    files (recursively, sorted, leaving out hidden folders such as
    ``.ipynb_checkpoints``, virtual environments and build output)."""
    out: list[str] = []
    for path in paths:
        if not os.path.isdir(path):
            out.append(path)
            continue
        found = []
        for root, dirs, files in os.walk(path):
            dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d not in _SKIP_DIRS
                             and not os.path.exists(os.path.join(root, d, "pyvenv.cfg")))
            found += [os.path.join(root, f) for f in sorted(files)
                      if f.endswith((".py", ".ipynb"))]
        out += found or [path]  # an empty folder is reported as such
    return out


def check_paths(paths: list[str], settings: Any = None,
                args: list[str] | tuple[str, ...] = ()) -> list[FileReport]:
    """Check every script under ``paths``, each in its own process, ``settings.jobs``
    at a time (default: the number of cores); reports in the order of the paths.

    Inside :func:`stop_on_signals`, SIGINT/SIGTERM make it return early with each
    file's partial report (``interrupted``); an exception here (Ctrl-C without
    that) stops every child before it propagates."""
    from concurrent.futures import ThreadPoolExecutor

    scripts = expand(paths)
    timeout = getattr(settings, "timeout", DEFAULT_TIMEOUT)
    run = settings.run_options() if settings is not None else None
    steps = getattr(settings, "steps", DEFAULT_STEPS)
    jobs = getattr(settings, "jobs", None) or os.cpu_count() or 1

    def one(path: str) -> FileReport:
        if os.path.isdir(path):
            return _failed(path, "not-a-script", f"{path}: a folder with no Python scripts")
        return check_file(path, timeout=timeout, args=args, run=run, steps=steps)

    if len(scripts) == 1 or jobs == 1:
        return [one(p) for p in scripts]
    pool = ThreadPoolExecutor(max_workers=min(jobs, len(scripts)))
    futures = [pool.submit(one, p) for p in scripts]
    try:
        return [f.result() for f in futures]
    except BaseException:
        ours = STOP.signum is None  # no stop_on_signals around: clear it afterwards
        STOP.request(signal.SIGINT)
        STOP.request(signal.SIGINT)  # twice: every child killed now
        pool.shutdown(wait=True, cancel_futures=True)
        if ours:
            STOP.clear()
        raise
    finally:
        pool.shutdown(wait=True)
