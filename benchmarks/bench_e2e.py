"""End to end: ``shapecheck script.py`` next to ``python script.py`` with training removed.

    python benchmarks/bench_e2e.py             # the model scripts in fixtures/
    python benchmarks/bench_e2e.py --repeat 3  # best of 3 per script

For each fixture script, wall clock of:

- ``python script.py`` with ``fit``/``evaluate``/``predict``/``*_on_batch``
  replaced by no-ops (what running the script costs without training: the
  interpreter, importing Keras, building the models);
- ``shapecheck --isolated --format json script.py`` (the same, plus capture,
  data sampling, the static pass, the rules and the report).

Then shapecheck's own start-up beyond importing Keras, on two small models
checked the way the command checks a script (``python -m shapecheck.child``,
the process that runs the script under capture, analyses every model, loads
the rules and writes the report) next to ``python script.py``: a CNN whose one
unknown dim is the batch (no dim algebra: sympy is not imported) and a Conv1D
with strides over a variable length (``floor((T - 3)/2) + 1``: sympy is
imported).  Best of ``--repeat`` (at least 5) each, in fresh interpreters.
``--startup`` measures only that.  Not a test: nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
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
# ``python script.py`` without the interpreter's teardown (shapecheck's child skips it
# too: with TensorFlow loaded it takes seconds)
RUN_ONLY = """
import os, runpy, sys
sys.argv = [sys.argv[1]]
sys.path.insert(0, os.path.dirname(os.path.abspath(sys.argv[0])))
try:
    runpy.run_path(sys.argv[0], run_name="__main__")
finally:
    sys.stdout.flush()
    os._exit(0)
"""
IMPORT_KERAS = "import keras"
IMPORT_ALL = """
import keras
from shapecheck.script import capture
capture.install()
from shapecheck.graph import model as analyze
from shapecheck.data import bind, feeds
from shapecheck.rules import load
load()
"""
# (name, what it shows, script): small models for the start-up figure
STARTUP_MODELS = [
    ("cnn", "batch only", """
import keras
from keras import layers

model = keras.Sequential([
    keras.Input((32, 32, 3)),
    layers.Conv2D(16, 3, activation="relu"),
    layers.MaxPooling2D(),
    layers.Conv2D(32, 3, activation="relu"),
    layers.BatchNormalization(),
    layers.GlobalAveragePooling2D(),
    layers.Dropout(0.2),
    layers.Dense(10, activation="softmax"),
])
model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
"""),
    ("conv1d", "variable length T", """
import keras
from keras import layers

inputs = keras.Input((None, 8))
x = layers.Conv1D(16, 3, strides=2, activation="relu")(inputs)
x = layers.MaxPooling1D(2)(x)
x = layers.Conv1D(16, 3, padding="same")(x)
x = layers.GlobalMaxPooling1D()(x)
model = keras.Model(inputs, layers.Dense(1)(x))
model.compile(optimizer="adam", loss="mse")
"""),
]


def wall(cmd: list[str], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        subprocess.run(cmd, env=ENV, cwd=ROOT, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, check=False)
        best = min(best, time.perf_counter() - t)
    return best


def startup(repeat: int) -> None:
    """Checking a small model, next to running it: best of ``repeat``, fresh interpreters."""
    n = max(5, repeat)
    print(f"\nstart-up, best of {n}: `python -m shapecheck.child RESULT script.py` (run "
          "under capture, analyse, rules, report) next to `python script.py` (both "
          "without the interpreter's teardown)")
    print("| model | unknown dims | python s | checked s | shapecheck's part s |")
    print("|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for name, what, text in STARTUP_MODELS:
            script = os.path.join(tmp, f"{name}.py")
            with open(script, "w", encoding="utf-8") as fh:
                fh.write(text)
            result = os.path.join(tmp, f"{name}.json")
            base = wall([sys.executable, "-c", RUN_ONLY, script], n)
            ours = wall([sys.executable, "-m", "shapecheck.child", result, script], n)
            with open(result, encoding="utf-8") as fh:
                report = json.load(fh)
            if report["status"] != "clean" or len(report["models"]) != 1:
                print(f"(not checked as expected: {report['status']}, {report['error']})")
            print(f"| {name} | {what} | {base:.2f} | {ours:.2f} | {ours - base:+.2f} |",
                  flush=True)
    keras_s = wall([sys.executable, "-c", IMPORT_KERAS], n)
    all_s = wall([sys.executable, "-c", IMPORT_ALL], n)
    sympy_s = wall([sys.executable, "-c", "import sympy"], n)
    cli_s = wall([sys.executable, "-c", "import shapecheck.cli"], n)
    bare = wall([sys.executable, "-c", "pass"], n)
    print(f"\nimports alone: import keras {keras_s:.2f} s; with capture installed and "
          f"what the check imports before it needs dim algebra, rules loaded {all_s:.2f} s "
          f"({all_s - keras_s:+.2f}); sympy, imported on first dim algebra, takes "
          f"{sympy_s - bare:.2f}. The command's parent process: {cli_s - bare:.2f} s beyond "
          "a bare interpreter.")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeat", type=int, default=1)
    p.add_argument("--startup", action="store_true", help="only the start-up figures")
    opts = p.parse_args()
    import keras

    print(f"# Python {platform.python_version()}, Keras {keras.__version__}, "
          f"{os.cpu_count()} CPUs; best of {opts.repeat}")
    if not opts.startup:
        end_to_end(opts.repeat)
    startup(opts.repeat)


def end_to_end(repeat: int) -> None:
    scripts = sorted(p for p in (ROOT / "fixtures").glob("*.py")
                     if p.name != "argv_model.py")
    print("| script | python, no training s | shapecheck s | ratio |")
    print("|---|---|---|---|")
    ratios = []
    for script in scripts:
        rel = str(script.relative_to(ROOT))
        base = wall([sys.executable, "-c", NO_TRAINING, rel], repeat)
        ours = wall([sys.executable, "-m", "shapecheck", "--isolated", "--format", "json",
                     rel], repeat)
        ratios.append(ours / base)
        print(f"| {rel} | {base:.2f} | {ours:.2f} | {ours / base:.2f} |", flush=True)
    ratios.sort()
    print(f"\nmedian ratio {ratios[len(ratios) // 2]:.2f}, range "
          f"{ratios[0]:.2f}-{ratios[-1]:.2f}")


if __name__ == "__main__":
    main()
