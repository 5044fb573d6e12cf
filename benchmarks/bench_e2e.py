"""End to end: ``shapecheck script.py`` next to ``python script.py`` with training removed.

    python benchmarks/bench_e2e.py             # the model scripts in fixtures/
    python benchmarks/bench_e2e.py --repeat 3  # best of 3 per script

For each fixture script, wall clock of:

- ``python script.py`` with ``fit``/``evaluate``/``predict``/``*_on_batch``
  replaced by no-ops (what running the script costs without training: the
  interpreter, importing Keras, building the models);
- ``shapecheck --isolated --format json script.py`` (the same, plus capture,
  data sampling, the static pass, the rules and the report).

Then shapecheck's own start-up beyond importing Keras: importing Keras alone,
next to importing Keras and everything the checking process imports, with
capture installed and the rules loaded (best of ``--repeat`` each, in fresh
interpreters).  Not a test: nothing is asserted.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
NO_TRAINING = """
import runpy, sys, keras
def _none(self, *a, **k):
    return None
for _m in ("fit", "evaluate", "predict", "train_on_batch", "test_on_batch",
           "predict_on_batch"):
    setattr(keras.Model, _m, _none)
sys.argv = [sys.argv[1]]
sys.path.insert(0, __import__("os").path.dirname(sys.argv[0]))
runpy.run_path(sys.argv[0], run_name="__main__")
"""
IMPORT_KERAS = "import keras"
IMPORT_CAPTURE = """
import keras
from shapecheck import capture
capture.install()
"""
IMPORT_ALL = IMPORT_CAPTURE + """
from shapecheck import analyze, feeds, bind
from shapecheck.rules import load
load()
"""


def wall(cmd: list[str], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        subprocess.run(cmd, env=ENV, cwd=ROOT, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, check=False)
        best = min(best, time.perf_counter() - t)
    return best


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeat", type=int, default=1)
    opts = p.parse_args()
    import keras

    print(f"# Python {platform.python_version()}, Keras {keras.__version__}, "
          f"{os.cpu_count()} CPUs; best of {opts.repeat}")
    scripts = sorted(p for p in (ROOT / "fixtures").glob("*.py")
                     if p.name != "argv_model.py")
    print("| script | python, no training s | shapecheck s | ratio |")
    print("|---|---|---|---|")
    ratios = []
    for script in scripts:
        rel = str(script.relative_to(ROOT))
        base = wall([sys.executable, "-c", NO_TRAINING, rel], opts.repeat)
        ours = wall([sys.executable, "-m", "shapecheck", "--isolated", "--format", "json",
                     rel], opts.repeat)
        ratios.append(ours / base)
        print(f"| {rel} | {base:.2f} | {ours:.2f} | {ours / base:.2f} |", flush=True)
    ratios.sort()
    print(f"\nmedian ratio {ratios[len(ratios) // 2]:.2f}, range "
          f"{ratios[0]:.2f}-{ratios[-1]:.2f}")
    n = max(5, opts.repeat)
    keras_s = wall([sys.executable, "-c", IMPORT_KERAS], n)
    capture_s = wall([sys.executable, "-c", IMPORT_CAPTURE], n)
    all_s = wall([sys.executable, "-c", IMPORT_ALL], n)
    sympy_s = wall([sys.executable, "-c", "import sympy, networkx"], n)
    cli_s = wall([sys.executable, "-c", "import shapecheck.cli"], n)
    bare = wall([sys.executable, "-c", "pass"], n)
    print(f"\nstart-up (best of {n}): import keras {keras_s:.2f} s; with capture installed "
          f"{capture_s:.2f} s (+{capture_s - keras_s:.2f}); with everything the check "
          f"imports and the rules loaded {all_s:.2f} s (+{all_s - keras_s:.2f}; sympy and "
          f"networkx alone take {sympy_s - bare:.2f}). The command's parent process: "
          f"{cli_s - bare:.2f} s beyond a bare interpreter.")


if __name__ == "__main__":
    main()
