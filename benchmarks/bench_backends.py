"""The check and ``--run`` per Keras backend, on the same fixtures, one run.

    python benchmarks/bench_backends.py                       # the three venvs, if present
    python benchmarks/bench_backends.py --python tensorflow=.venv/bin/python \\
        --python jax=.venv-jax/bin/python fixtures/seed001_gru_add.py
    python benchmarks/bench_backends.py --json rows.json      # the rows as well

``--python NAME=INTERPRETER`` once per backend: NAME is what ``KERAS_BACKEND`` is set
to (``tensorflow``, ``jax``, ``torch``), INTERPRETER a Python with shapecheck, Keras and
that backend installed.  Without it: ``.venv`` (tensorflow), ``.venv-jax`` (jax) and
``.venv-torch`` (torch) at the project's root, those that exist.

Fixtures (default: the top-level ``fixtures/*.py`` model scripts, as
``bench_e2e.py`` takes them, and three of ``fixtures/tutorials/``) are checked one at a time with

    shapecheck --format json FIXTURE           (the static pass: "check")
    shapecheck --run --format json FIXTURE     (and the model executed: "--run")

from the project's root, with ``KERAS_BACKEND`` set.  The runs are interleaved: for
each fixture and each of the two commands, every backend in turn, the order rotated
from fixture to fixture, so that load from other work on the machine hits each
backend alike.  Each run's wall clock, exit code and findings (code, layer, line)
are recorded.  Before the fixtures, the fixed cost of each backend: ``python -c
"import keras"`` and ``shapecheck --version`` (best of ``--repeat``).

Prints a Markdown table: per fixture and backend the check and ``--run`` seconds,
totals, the ratio of each backend's static total to TensorFlow's (over every
fixture, and over those that ran to their end on every backend), and whether the
findings agree across backends.  Differences that are expected are named: a
fixture that imports TensorFlow cannot run without it, and a custom ``train_step``
is traced under TensorFlow only (SC902 elsewhere).  Not a test: nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_VENVS = [("tensorflow", ".venv"), ("jax", ".venv-jax"), ("torch", ".venv-torch")]
TUTORIALS = ["mnist_convnet.py", "bidirectional_lstm_imdb.py", "timeseries_classification.py"]
IMPORTS_TF = re.compile(r"^\s*(import tensorflow|from tensorflow)", re.MULTILINE)
# Findings a backend other than TensorFlow gives where TensorFlow does not, by design:
# a custom train_step is traced under TensorFlow only (SC902, an info, off it).
OFF_TENSORFLOW = {"SC902"}
MODES = (("check", []), ("run", ["--run"]))


def default_fixtures() -> list[str]:
    top = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "fixtures").glob("*.py")
                 if p.name != "argv_model.py")  # it needs its own arguments
    tut = [f"fixtures/tutorials/{n}" for n in TUTORIALS if (ROOT / "fixtures/tutorials" / n).exists()]
    return top + tut


def default_pythons() -> list[tuple[str, str]]:
    out = []
    for name, venv in DEFAULT_VENVS:
        py = ROOT / venv / "bin" / "python"
        if py.exists():
            out.append((name, str(py)))
    return out


def env_for(backend: str) -> dict[str, str]:
    env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3")
    env.pop("PYTHONPATH", None)
    return env


def shapecheck_cmd(python: str) -> list[str]:
    script = Path(python).parent / "shapecheck"
    return [str(script)] if script.exists() else [python, "-m", "shapecheck"]


def timed(cmd: list[str], env: dict, timeout: float) -> tuple[float, int, str, str]:
    start = time.perf_counter()
    try:
        proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True,
                              timeout=timeout, stdin=subprocess.DEVNULL)
        rc, out, err = proc.returncode, proc.stdout, proc.stderr
    except subprocess.TimeoutExpired as exc:
        rc = -9
        out = exc.stdout.decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        err = "timed out"
    return time.perf_counter() - start, rc, out, err


def versions(python: str, backend: str) -> str:
    code = ("import importlib.metadata as m, platform\n"
            "def v(n):\n"
            "    try: return m.version(n)\n"
            "    except Exception: return None\n"
            f"b = {{'tensorflow': 'tensorflow', 'jax': 'jax', 'torch': 'torch'}}.get({backend!r})\n"
            "print(f'Python {platform.python_version()}, Keras {v(\"keras\")}, "
            "{b} {v(b) if b else \"?\"}')")
    proc = subprocess.run([python, "-c", code], capture_output=True, text=True,
                          env=env_for(backend), cwd=ROOT)
    return proc.stdout.strip() or proc.stderr.strip()[-200:]


def startup(pythons: list[tuple[str, str]], repeat: int) -> dict:
    """Best of ``repeat``: ``python -c "import keras"`` and ``shapecheck --version``."""
    best: dict = {name: {"import keras": float("inf"), "shapecheck --version": float("inf")}
                  for name, _ in pythons}
    for _ in range(repeat):
        for name, py in pythons:
            for label, cmd in (("import keras", [py, "-c", "import keras"]),
                               ("shapecheck --version", shapecheck_cmd(py) + ["--version"])):
                s, rc, _, err = timed(cmd, env_for(name), 300)
                if rc != 0:
                    print(f"# {name}: {label} exited {rc}: {err.strip()[-300:]}", file=sys.stderr)
                best[name][label] = min(best[name][label], s)
    return best


def findings(stdout: str) -> tuple[str, str | None, list[tuple]]:
    """The status, the error's first line and the findings of a one-file JSON report."""
    try:
        doc = json.loads(stdout)
    except ValueError:
        return "no report", (stdout.strip().splitlines() or ["(nothing on stdout)"])[-1], []
    f = doc["files"][0]
    error = f.get("error")
    msg = None
    if error:  # the exception's line where there is one, else the message's last line
        if isinstance(error, dict):
            msg = error.get("exception") or error.get("message") or ""
        else:
            msg = str(error)
        msg = msg.strip().splitlines()[-1] if msg.strip() else ""
    found = sorted({(d["code"], d.get("layer") or "", d.get("line") or 0)
                    for d in f.get("diagnostics", [])})
    return f.get("status", "?"), msg, found


def agreement(fixture: str, runs: dict, names: list[str]) -> str:
    """Whether each backend's findings equal TensorFlow's (or the first backend's)."""
    ref_name = "tensorflow" if "tensorflow" in runs else names[0]
    ref = set(map(tuple, runs[ref_name]["findings"]))
    imports_tf = bool(IMPORTS_TF.search((ROOT / fixture).read_text(encoding="utf-8")))
    notes = []
    for name in names:
        if name == ref_name:
            continue
        mine = set(map(tuple, runs[name]["findings"]))
        failed = runs[name]["status"] == "failed" and runs[ref_name]["status"] != "failed"
        if mine == ref and not failed:
            continue
        extra, missing = mine - ref, ref - mine
        if imports_tf and name != "tensorflow":
            notes.append(f"{name}: expected (imports tensorflow)")
            continue
        if failed:
            notes.append(f"{name}: **failed** ({runs[name]['error']})")
            continue
        if ref_name == "tensorflow" and not missing and {c for c, _, _ in extra} <= OFF_TENSORFLOW:
            notes.append(f"{name}: expected (+{', '.join(sorted({c for c, _, _ in extra}))}, "
                         "TensorFlow-only tracing)")
            continue
        diff = [f"+{c} {layer or '-'}:{line}" for c, layer, line in sorted(extra)]
        diff += [f"-{c} {layer or '-'}:{line}" for c, layer, line in sorted(missing)]
        notes.append(f"{name}: **differs** {' '.join(diff)}")
    return "; ".join(notes) or "same"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("fixtures", nargs="*", help="scripts (default: see the module's docstring)")
    p.add_argument("--python", action="append", default=[], metavar="NAME=INTERPRETER")
    p.add_argument("--repeat", type=int, default=3, help="start-up timings: best of N")
    p.add_argument("--no-run", action="store_true", help="the check only, not --run")
    p.add_argument("--timeout", type=float, default=900, help="per command, seconds")
    p.add_argument("--json", metavar="FILE", help="write the rows here")
    p.add_argument("--table", metavar="FILE", help="print the tables of an earlier --json")
    opts = p.parse_args()
    if opts.table:
        with open(opts.table, encoding="utf-8") as fh:
            doc = json.load(fh)
        names = [n for n, _ in doc["pythons"]]
        render(doc["rows"], names, MODES if "run" in doc["rows"][0] and doc["rows"][0]["run"]
               else MODES[:1])
        return

    pythons = []
    for item in opts.python:
        name, sep, py = item.partition("=")
        if not sep:
            p.error(f"--python {item}: NAME=INTERPRETER")
        pythons.append((name, py))
    pythons = pythons or default_pythons()
    names = [n for n, _ in pythons]
    fixtures = opts.fixtures or default_fixtures()
    modes = MODES[:1] if opts.no_run else MODES
    started = time.perf_counter()

    print(f"# {os.cpu_count()} CPUs, {platform.machine()}, {platform.system()}")
    for name, py in pythons:
        print(f"# {name}: {versions(py, name)}")
    print(f"# {len(fixtures)} fixtures, {len(pythons)} backends, modes: "
          f"{', '.join(m for m, _ in modes)}", flush=True)

    boot = startup(pythons, opts.repeat)
    print(f"\nFixed cost, best of {opts.repeat} (s):\n")
    print("| backend | `python -c \"import keras\"` | `shapecheck --version` |")
    print("| --- | ---: | ---: |")
    for name in names:
        print(f"| {name} | {boot[name]['import keras']:.2f} | "
              f"{boot[name]['shapecheck --version']:.2f} |", flush=True)

    rows = []
    for i, fixture in enumerate(fixtures):
        order = pythons[i % len(pythons):] + pythons[:i % len(pythons)]
        row = {"fixture": fixture, "check": {}, "run": {}}
        for mode, extra in modes:
            for name, py in order:
                cmd = shapecheck_cmd(py) + extra + ["--format", "json", fixture]
                s, rc, out, err = timed(cmd, env_for(name), opts.timeout)
                status, error, found = findings(out)
                row[mode][name] = {"seconds": round(s, 3), "exit": rc, "status": status,
                                   "error": error, "findings": found}
                if status == "no report":
                    row[mode][name]["stderr"] = err.strip()[-500:]
                print(f"# {fixture} {mode} {name}: {s:.2f} s, exit {rc}, {status}, "
                      f"{len(found)} findings{', error: ' + error[:100] if error else ''}",
                      file=sys.stderr, flush=True)
        rows.append(row)
    render(rows, names, modes)
    print(f"\n# wall clock of the whole benchmark: {time.perf_counter() - started:.0f} s")
    if opts.json:
        with open(opts.json, "w", encoding="utf-8") as fh:
            json.dump({"pythons": pythons, "startup": boot, "rows": rows}, fh, indent=1)


def render(rows: list[dict], names: list[str], modes: tuple) -> None:
    """The per-fixture table and the totals."""
    for row in rows:
        row["agree"] = {m: agreement(row["fixture"], row[m], names) for m, _ in modes}

    def cell(r: dict) -> str:
        mark = "" if r["exit"] in (0, 1) else f" (exit {r['exit']})"
        if r["status"] == "failed":
            mark += " failed"
        return f"{r['seconds']:.1f}{mark}"

    print("\nPer fixture, seconds of wall clock (exit 0 clean, 1 findings; "
          "`failed`: the script did not run to its end):\n")
    head = "| fixture | " + " | ".join(f"{n} check | {n} --run" if len(modes) > 1
                                      else f"{n} check" for n in names) + " | findings |"
    print(head)
    print("| --- | " + " | ".join("---: | ---:" if len(modes) > 1 else "---:"
                                  for _ in names) + " | --- |")
    for row in rows:
        cells = []
        for n in names:
            cells.append(cell(row["check"][n]))
            if len(modes) > 1:
                cells.append(cell(row["run"][n]))
        agree = row["agree"]["check"]
        if len(modes) > 1 and row["agree"]["run"] != agree:
            agree = f"check: {agree}; --run: {row['agree']['run']}"
        print(f"| {row['fixture'].removeprefix('fixtures/')} | {' | '.join(cells)} | {agree} |")

    def ok_everywhere(row: dict, mode: str) -> bool:
        return all(row[mode][n]["status"] not in ("failed", "no report") for n in names)

    print("\nTotals (s) and ratio to TensorFlow's:\n")
    print("| backend | fixtures | check total | check / tf | --run total | --run / tf |")
    print("| --- | --- | ---: | ---: | ---: | ---: |")
    ref = "tensorflow" if "tensorflow" in names else names[0]
    for subset, keep in (("all", lambda r: True),
                         ("ran everywhere", lambda r: ok_everywhere(r, "check"))):
        chosen = [r for r in rows if keep(r)]
        tot = {m: {n: sum(r[m][n]["seconds"] for r in chosen) for n in names} for m, _ in modes}
        for n in names:
            run_t = tot["run"][n] if "run" in tot else float("nan")
            run_r = run_t / tot["run"][ref] if "run" in tot and tot["run"][ref] else float("nan")
            print(f"| {n} | {subset} ({len(chosen)}) | {tot['check'][n]:.1f} | "
                  f"{tot['check'][n] / tot['check'][ref]:.2f} | {run_t:.1f} | {run_r:.2f} |")


if __name__ == "__main__":
    main()
