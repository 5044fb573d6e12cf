"""Does ``--run`` say the same on a GPU as on the CPU, on each Keras backend?

    python benchmarks/gpu_check.py                      # this interpreter, its KERAS_BACKEND
    python benchmarks/gpu_check.py --python tensorflow=.venv/bin/python \\
        --python jax=.venv-jax/bin/python --python torch=.venv-torch/bin/python
    python benchmarks/gpu_check.py --only 'fixtures/rules/*' -j 8 --per-script

For every fixture script (the list ``bench_subclassed.py`` uses: ``fixtures/**/*.py``
but ``fixtures/broken/``; ``--only GLOB`` narrows it) and for each backend (``--python
NAME=INTERPRETER``, repeatable; by default this interpreter and ``$KERAS_BACKEND``), runs
``shapecheck --run --device cpu --format json`` and then ``--device gpu`` on all the
scripts, ``-j N`` at once, and compares the two documents script by script: the status,
each finding's code, layer, line and ``confirmed``, and each model's ``run`` section
(what was executed, at which sizes, the stages that completed, and an error's stage,
layer, line and observed input shapes).  Error messages may be worded otherwise by
the device and are listed, not counted; out-of-range ids, which only a CPU checks
(SC503, SC607), are counted as expected.  The children get
``TF_FORCE_GPU_ALLOW_GROWTH=true`` and ``XLA_PYTHON_CLIENT_PREALLOCATE=false``, so that
``-j N`` processes share one GPU.

Prints Markdown for ``BENCHMARKS.md``: the GPU's name (``nvidia-smi``, or what the
backend calls it), one row per backend with the counts and the wall clock of each
command (and the seconds spent executing models), then each script that differs and
how.  Exit status: 0 when every script gives the same on both devices, 1 when some
differ, 2 when there is no GPU (one line says so) or a command could not be run.
Not a test; ``tests/test_run_backends.py`` checks the comparison on the CPU.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHILD_ENV = {"TF_CPP_MIN_LOG_LEVEL": "3", "TF_FORCE_GPU_ALLOW_GROWTH": "true",
             "XLA_PYTHON_CLIENT_PREALLOCATE": "false"}
CPU_ONLY = {"SC503", "SC607"}  # out-of-range ids raise only on a CPU (README, --run)
NAMES = {"tensorflow": "TensorFlow", "jax": "JAX", "torch": "PyTorch"}


def fixture_scripts(root: Path = ROOT) -> list[Path]:
    """Every fixture script, as ``bench_subclassed.py`` lists them."""
    return sorted(p for p in (root / "fixtures").rglob("*.py")
                  if "broken" not in p.parts and p.name != "__init__.py")


class Failure(Exception):
    """Something this check cannot go on from; its message is one line for the user."""


# --- the GPU ---------------------------------------------------------------------------------


def nvidia_smi() -> list[str]:
    """The GPUs ``nvidia-smi`` lists, by name (empty: no tool, or no GPU)."""
    tool = shutil.which("nvidia-smi")
    if tool is None:
        return []
    try:
        proc = subprocess.run([tool, "--query-gpu=name", "--format=csv,noheader"],
                              capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return []
    if proc.returncode != 0:
        return []
    return [line.strip() for line in proc.stdout.splitlines() if line.strip()]


_PROBE = ("import json; from shapecheck.verify.backends import backend, gpus; "
          "print(json.dumps([backend(), gpus()]))")


def backend_gpus(name: str, python: str) -> list[str]:
    """The GPUs the Keras backend ``name`` sees under ``python``."""
    proc = subprocess.run([python, "-c", _PROBE], cwd=ROOT, capture_output=True, text=True,
                          env=child_env(name), timeout=600)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("[")]
    if proc.returncode != 0 or not lines:
        raise Failure(f"{name} ({python}): cannot ask the backend for its GPUs: "
                      f"{last_line(proc.stderr) or f'exit status {proc.returncode}'}")
    got, found = json.loads(lines[-1])
    if got != name:
        raise Failure(f"{python} runs Keras on {got}, not {name} (is KERAS_BACKEND read?)")
    return list(found)


def child_env(backend: str) -> dict[str, str]:
    return dict(os.environ, **CHILD_ENV, KERAS_BACKEND=backend)


def last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1][:300] if lines else ""


# --- running shapecheck ----------------------------------------------------------------------


@dataclass
class Command:
    """One ``shapecheck --run`` over the scripts, on one device, with one backend."""

    device: str
    doc: dict | None = None
    wall: float = 0.0
    error: str | None = None


def run_shapecheck(backend: str, python: str, device: str, scripts: list[str], jobs: int,
                   timeout: float) -> Command:
    cmd = [python, "-m", "shapecheck", "--run", "--device", device, "--format", "json",
           "-j", str(jobs), "--timeout", f"{timeout:g}", *scripts]
    start = time.perf_counter()
    try:
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True,
                              env=child_env(backend), timeout=timeout * len(scripts) + 600)
    except subprocess.TimeoutExpired:
        return Command(device, wall=time.perf_counter() - start,
                       error=f"shapecheck --device {device} did not finish")
    wall = time.perf_counter() - start
    try:
        doc = json.loads(proc.stdout)
    except ValueError:
        why = last_line(proc.stdout) or last_line(proc.stderr) or f"exit {proc.returncode}"
        return Command(device, wall=wall, error=f"shapecheck --device {device}: {why}")
    return Command(device, doc=doc, wall=wall)


# --- comparing two documents -----------------------------------------------------------------


@dataclass
class Comparison:
    """How one script's two runs compare."""

    path: str
    differences: list[str] = field(default_factory=list)  # counted: the answers differ
    expected: list[str] = field(default_factory=list)  # known device differences
    messages: list[str] = field(default_factory=list)  # same error, other words
    seconds: tuple[float, float] = (0.0, 0.0)  # executing models, in each run

    @property
    def same(self) -> bool:
        return not self.differences


def _findings(f: dict) -> dict[tuple, list]:
    """``(code, model, layer, line) -> [confirmed, ...]`` (a line can hold several: SC402
    gives one per state); messages are left out, as SC801's quotes the framework's."""
    out: dict[tuple, list] = {}
    for d in f.get("diagnostics", []):
        out.setdefault((d["code"], d.get("model"), d.get("layer"), d.get("line")),
                       []).append(d.get("confirmed"))
    return {k: sorted(v, key=str) for k, v in out.items()}


def _error_view(err: dict | None) -> tuple | None:
    if err is None:
        return None
    return (err.get("stage"), err.get("layer"), err.get("line"),
            tuple(tuple(s) for s in err.get("input_shapes") or []), err.get("loss"),
            err.get("output"))


def _runs(f: dict) -> dict[str, dict]:
    out = {}
    for m in f.get("models", []):
        run = m.get("run")
        if run is None:
            continue
        out[m["name"]] = {
            "skipped": run.get("skipped") is not None,
            "executions": [(e.get("data"), tuple(sorted((e.get("dims") or {}).items())),
                            tuple(e.get("stages") or []), _error_view(e.get("error")))
                           for e in run.get("executions", [])],
            "messages": [(e["error"].get("type"), e["error"].get("message"))
                         for e in run.get("executions", []) if e.get("error")],
            "seconds": sum(e.get("seconds") or 0.0 for e in run.get("executions", [])),
        }
    return out


def _one(values: list) -> str:
    return str(values[0]) if len(set(map(str, values))) == 1 else str(values)


def _finding_text(key: tuple) -> str:
    code, model, layer, line = key
    return f"{code} at line {line}" + (f" (`{layer}`)" if layer else "") + \
        (f" in {model}" if model else "")


def compare_files(a: dict, b: dict, names: tuple[str, str] = ("cpu", "gpu")) -> Comparison:
    """Compare one file entry of two ``--format json`` documents."""
    out = Comparison(a.get("path") or b.get("path") or "?")
    if a.get("status") != b.get("status"):
        out.differences.append(f"status {a.get('status')} on {names[0]}, "
                               f"{b.get('status')} on {names[1]}")
    fa, fb = _findings(a), _findings(b)
    for key in sorted(set(fa) | set(fb), key=str):
        code, xs, ys = key[0], fa.get(key, []), fb.get(key, [])
        if len(xs) != len(ys):
            out.differences.append(f"{_finding_text(key)}: {len(xs)} on {names[0]}, "
                                   f"{len(ys)} on {names[1]}")
        elif xs != ys:
            text = (f"{_finding_text(key)} confirmed {_one(xs)} on {names[0]}, "
                    f"{_one(ys)} on {names[1]}")
            (out.expected if code in CPU_ONLY else out.differences).append(text)
    ra, rb = _runs(a), _runs(b)
    for model in sorted(set(ra) | set(rb)):
        if model not in ra or model not in rb:
            where = names[0] if model in ra else names[1]
            out.differences.append(f"model {model} ran only on {where}")
            continue
        x, y = ra[model], rb[model]
        if x["skipped"] != y["skipped"]:
            out.differences.append(f"model {model} skipped on "
                                   f"{names[0] if x['skipped'] else names[1]} only")
        if x["executions"] != y["executions"]:
            out.differences.append(f"model {model}: {_first_difference(x, y, names)}")
        elif x["messages"] != y["messages"]:
            out.messages += [f"{model}: {ma[0]}: {ma[1][:120]} / {mb[0]}: {mb[1][:120]}"
                             for ma, mb in zip(x["messages"], y["messages"]) if ma != mb]
    out.seconds = (sum(r["seconds"] for r in ra.values()),
                   sum(r["seconds"] for r in rb.values()))
    return out


def _first_difference(x: dict, y: dict, names: tuple[str, str]) -> str:
    ex, ey = x["executions"], y["executions"]
    if len(ex) != len(ey):
        return f"{len(ex)} executions on {names[0]}, {len(ey)} on {names[1]}"
    for i, (p, q) in enumerate(zip(ex, ey), start=1):
        for label, u, v in zip(("data", "sizes", "stages", "error"), p, q):
            if u != v:
                return f"execution {i}: {label} {_show(u)} on {names[0]}, {_show(v)} on {names[1]}"
    return "executions differ"


def _show(value: object) -> str:
    if isinstance(value, tuple) and len(value) == 6 and isinstance(value[0], str):
        stage, layer, line, shapes, loss, output = value
        where = f" at `{layer}` line {line}" if layer else (f" in loss `{loss}`" if loss else "")
        return f"{stage} error{where}, inputs {[list(s) for s in shapes]}"
    if value is None:
        return "no error"
    return str(value)


def compare(doc_a: dict, doc_b: dict, names: tuple[str, str] = ("cpu", "gpu")) -> list[Comparison]:
    """Each script of two ``shapecheck --format json`` documents, compared."""
    fa = {f["path"]: f for f in doc_a.get("files", [])}
    fb = {f["path"]: f for f in doc_b.get("files", [])}
    out = []
    for path in sorted(set(fa) | set(fb)):
        if path not in fa or path not in fb:
            c = Comparison(path)
            c.differences.append(f"checked only on {names[0] if path in fa else names[1]}")
            out.append(c)
        else:
            out.append(compare_files(fa[path], fb[path], names))
    return out


# --- the report ------------------------------------------------------------------------------


@dataclass
class BackendResult:
    backend: str
    python: str
    commands: list[Command] = field(default_factory=list)
    comparisons: list[Comparison] = field(default_factory=list)
    skipped: str | None = None


def markdown(results: list[BackendResult], gpu: str, devices: tuple[str, str], jobs: int,
             per_script: bool) -> str:
    a, b = devices
    if a == b:
        a, b = f"{a} (1)", f"{b} (2)"
    lines = [f"GPU: {gpu}. `shapecheck --run --format json -j {jobs}` over the fixture "
             f"scripts, `--device {devices[0]}` then `--device {devices[1]}`, per backend.",
             "",
             f"| backend | scripts | same | differ | expected only | {a} wall s | {b} wall s "
             f"| {a} executing s | {b} executing s |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in results:
        name = NAMES.get(r.backend, r.backend)
        if r.skipped:
            lines.append(f"| {name} | {r.skipped} | | | | | | | |")
            continue
        cs = r.comparisons
        same = sum(c.same for c in cs)
        expected = sum(c.same and bool(c.expected) for c in cs)
        ca, cb = r.commands
        lines.append(f"| {name} | {len(cs)} | {same} | {len(cs) - same} | {expected} "
                     f"| {ca.wall:.1f} | {cb.wall:.1f} | {sum(c.seconds[0] for c in cs):.1f} "
                     f"| {sum(c.seconds[1] for c in cs):.1f} |")
    differing = [(r, c) for r in results for c in r.comparisons if not c.same]
    if differing:
        lines += ["", "| backend | script | what differs |", "| --- | --- | --- |"]
        for r, c in differing:
            lines.append(f"| {NAMES.get(r.backend, r.backend)} | {c.path} | "
                         + "; ".join(c.differences).replace("|", "\\|") + " |")
    worded = [(r, c) for r in results for c in r.comparisons if c.messages]
    if worded:
        lines += ["", "Same errors, worded otherwise:", ""]
        lines += [f"- {NAMES.get(r.backend, r.backend)}, {c.path}: " + "; ".join(c.messages)
                  for r, c in worded]
    if per_script:
        lines += ["", f"| backend | script | same | {a} executing s | {b} executing s |",
                  "| --- | --- | --- | --- | --- |"]
        for r in results:
            for c in r.comparisons:
                lines.append(f"| {NAMES.get(r.backend, r.backend)} | {c.path} | "
                             f"{'yes' if c.same else 'no'} | {c.seconds[0]:.2f} | "
                             f"{c.seconds[1]:.2f} |")
    return "\n".join(lines)


def parse_pythons(specs: list[str]) -> list[tuple[str, str]]:
    if not specs:
        return [(os.environ.get("KERAS_BACKEND", "tensorflow"), sys.executable)]
    out = []
    for spec in specs:
        name, sep, python = spec.partition("=")
        if not sep or name not in NAMES or not python:
            raise Failure(f"--python {spec}: give BACKEND=INTERPRETER, BACKEND one of "
                          f"{', '.join(NAMES)}")
        if shutil.which(python) is None and not Path(python).is_file():
            raise Failure(f"--python {spec}: {python} is not an interpreter here")
        out.append((name, python))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--python", action="append", default=[], metavar="BACKEND=PYTHON",
                        help="a backend and the interpreter that has it (repeatable)")
    parser.add_argument("--only", action="append", default=[], metavar="GLOB",
                        help="only the fixture scripts matching GLOB (repeatable)")
    parser.add_argument("-j", type=int, default=max(1, min(8, (os.cpu_count() or 2) // 2)),
                        help="scripts checked at once")
    parser.add_argument("--timeout", type=float, default=300, help="seconds per script")
    parser.add_argument("--per-script", action="store_true", help="a row for every script")
    # the two devices compared; `cpu cpu` checks this script where there is no GPU
    parser.add_argument("--devices", nargs=2, default=["cpu", "gpu"],
                        choices=["cpu", "gpu", "auto"], help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    devices = (args.devices[0], args.devices[1])
    try:
        pythons = parse_pythons(args.python)
        scripts = [str(p.relative_to(ROOT)) for p in fixture_scripts()]
        if args.only:
            scripts = [s for s in scripts if any(fnmatch.fnmatch(s, g) for g in args.only)]
        if not scripts:
            raise Failure(f"no fixture script matches {' '.join(args.only)}")
        results = [BackendResult(name, python) for name, python in pythons]
        gpu = "none (no GPU device compared)"
        if "gpu" in devices:
            gpu = find_gpu(results)
    except Failure as err:
        print(f"gpu_check: {err}", file=sys.stderr)
        return 2
    failed = False
    for r in results:
        if r.skipped:
            continue
        for device in devices:
            print(f"{r.backend}: --device {device}, {len(scripts)} scripts ...",
                  file=sys.stderr, flush=True)
            r.commands.append(run_shapecheck(r.backend, r.python, device, scripts, args.j,
                                             args.timeout))
        broken = [c.error for c in r.commands if c.error]
        if broken:
            r.skipped = "; ".join(broken).replace("|", "\\|")
            failed = True
            continue
        r.comparisons = compare(r.commands[0].doc, r.commands[1].doc, devices)
    print(markdown(results, gpu, devices, args.j, args.per_script))
    if failed:
        return 2
    return 0 if all(c.same for r in results for c in r.comparisons) else 1


def find_gpu(results: list[BackendResult]) -> str:
    """The GPU's name; each backend that sees none is skipped with the reason.  Raises
    :class:`Failure` when no backend has a GPU to run on."""
    listed = nvidia_smi()
    seen = []
    for r in results:
        found = backend_gpus(r.backend, r.python)
        if not found:
            r.skipped = f"{NAMES.get(r.backend, r.backend)} sees no GPU"
        seen += found
    if not seen:
        what = (f"nvidia-smi lists {', '.join(listed)}, but no backend sees it"
                if listed else "no GPU on this machine (nvidia-smi finds none"
                + "".join(f", {NAMES.get(r.backend, r.backend)} sees none" for r in results)
                + ")")
        raise Failure(f"{what}: nothing to compare with the CPU")
    name = listed[0] if listed else seen[0]
    return name + (" (nvidia-smi)" if listed else " (as the backend names it)")


if __name__ == "__main__":
    sys.exit(main())
