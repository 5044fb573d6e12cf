"""Hand-written training loops: ``shapecheck script.py`` next to ``python script.py`` as epochs grow.

    python benchmarks/bench_custom_loop.py                      # epochs 1, 10, 100
    python benchmarks/bench_custom_loop.py --epochs 1,10 --repeat 3
    python benchmarks/bench_custom_loop.py --no-fixtures        # part 1 only

Part 1 writes, into a temporary directory, a training script with its own loop:
a Conv1D + LSTM + Dense classifier (Keras 3) on 4,096 random sequences of 40
steps, batches of 32 from a ``tf.data.Dataset``, a ``@tf.function`` step with a
``tf.GradientTape`` and ``optimizer.apply_gradients``, a
``SparseCategoricalAccuracy`` metric and one printed line per epoch (128 steps an
epoch). For each number of epochs, wall clock of

- ``python script.py`` (the whole training, the interpreter's teardown included);
- ``shapecheck --isolated --format json script.py`` (a dry run: the optimizer
  applies nothing and the script is stopped as finished after the first steps
  of the loop that trains, 2 by default).

Both are run in the same run, in fresh processes, median of ``--repeat``. The
report must say the script is clean and that the dry run was stopped
(``files[0].dry_run.stopped``); a row where it does not is marked. Training
grows with the epochs; shapecheck's time should not.

Part 2 (unless ``--no-fixtures``) does the same once for each script in
``fixtures/custom_loops/``: ``python`` time and exit status next to
shapecheck's time, file status, exit status and whether the dry run stopped.

Not a test: nothing is asserted, a row that is not as expected is marked.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")

SCRIPT = '''"""Sequence classifier trained with a hand-written loop (benchmark script)."""

import numpy as np
import tensorflow as tf
import keras
from keras import layers

EPOCHS = {epochs}
ROWS = 4096
STEPS = 40
FEATURES = 8
CLASSES = 5
BATCH = 32

rng = np.random.default_rng(0)
x_train = rng.normal(size=(ROWS, STEPS, FEATURES)).astype("float32")
y_train = rng.integers(0, CLASSES, size=(ROWS,))
dataset = tf.data.Dataset.from_tensor_slices((x_train, y_train)).shuffle(ROWS).batch(BATCH)

inputs = keras.Input(shape=(STEPS, FEATURES))
x = layers.Conv1D(32, 5, padding="same", activation="relu")(inputs)
x = layers.MaxPooling1D(2)(x)
x = layers.LSTM(32)(x)
x = layers.Dense(32, activation="relu")(x)
outputs = layers.Dense(CLASSES)(x)
model = keras.Model(inputs, outputs)

loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
optimizer = keras.optimizers.Adam(learning_rate=1e-3)
train_acc = keras.metrics.SparseCategoricalAccuracy()


@tf.function
def train_step(x, y):
    with tf.GradientTape() as tape:
        logits = model(x, training=True)
        loss = loss_fn(y, logits)
    grads = tape.gradient(loss, model.trainable_variables)
    optimizer.apply_gradients(zip(grads, model.trainable_variables))
    train_acc.update_state(y, logits)
    return loss


for epoch in range(EPOCHS):
    train_acc.reset_state()
    losses = []
    for x_batch, y_batch in dataset:
        losses.append(float(train_step(x_batch, y_batch)))
    print(f"epoch {{epoch + 1}}/{{EPOCHS}} - loss: {{np.mean(losses):.4f}} "
          f"- acc: {{float(train_acc.result()):.4f}}")
'''


def installed(*names: str) -> str:
    """The version of the first of these distributions that is installed."""
    for name in names:
        try:
            return version(name)
        except PackageNotFoundError:
            continue
    return "?"


def shapecheck_command() -> list[str]:
    """The ``shapecheck`` executable next to this interpreter, else ``python -m shapecheck``."""
    exe = Path(sys.executable).with_name("shapecheck")
    if exe.exists():
        return [str(exe)]
    found = shutil.which("shapecheck")
    return [found] if found else [sys.executable, "-m", "shapecheck"]


def timed(cmd: list[str], cwd: Path) -> tuple[float, subprocess.CompletedProcess]:
    start = time.perf_counter()
    proc = subprocess.run(cmd, env=ENV, cwd=cwd, capture_output=True, text=True,
                          check=False)
    return time.perf_counter() - start, proc


def python_run(script: Path, cwd: Path, repeat: int) -> tuple[float, int]:
    times, rc = [], 0
    for _ in range(repeat):
        seconds, proc = timed([sys.executable, str(script)], cwd)
        times.append(seconds)
        rc = proc.returncode
    return statistics.median(times), rc


def shapecheck_run(script: Path, cwd: Path, repeat: int) -> tuple[float, int, dict]:
    """Median seconds, the last exit status and the last report's file entry."""
    times, rc, entry = [], 0, {}
    for _ in range(repeat):
        seconds, proc = timed(shapecheck_command() + ["--isolated", "--format", "json",
                                                      str(script)], cwd)
        times.append(seconds)
        rc = proc.returncode
        try:
            entry = json.loads(proc.stdout)["files"][0]
        except (ValueError, KeyError, IndexError):
            entry = {"status": "no report", "error": (proc.stderr or proc.stdout)[-300:]}
    return statistics.median(times), rc, entry


def stopped(entry: dict) -> str | None:
    return (entry.get("dry_run") or {}).get("stopped")


def epochs_table(epochs: list[int], repeat: int) -> list[dict]:
    print(f"\n## The generated loop, median of {repeat}\n")
    print("| epochs | python s | shapecheck s | ratio |")
    print("| ---: | ---: | ---: | ---: |")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in epochs:
            script = Path(tmp) / f"train_{n}_epochs.py"
            script.write_text(SCRIPT.format(epochs=n), encoding="utf-8")
            base, base_rc = python_run(script, Path(tmp), repeat)
            ours, rc, entry = shapecheck_run(script, Path(tmp), repeat)
            notes = []
            if base_rc != 0:
                notes.append(f"python exit {base_rc}")
            if entry.get("status") != "clean":
                notes.append(f"status {entry.get('status')}: {entry.get('error')}")
            if not stopped(entry):
                notes.append("dry run not stopped")
            mark = f" ({'; '.join(notes)})" if notes else ""
            print(f"| {n} | {base:.2f} | {ours:.2f} | {ours / base:.2f}{mark} |", flush=True)
            rows.append({"epochs": n, "python_s": base, "shapecheck_s": ours,
                         "status": entry.get("status"), "exit": rc,
                         "stopped": stopped(entry)})
    if rows:
        print(f"\nstopped: {rows[-1]['stopped']}")
    if len(rows) > 1:
        lo, hi = rows[0], rows[-1]
        print(f"shapecheck at {hi['epochs']} epochs / at {lo['epochs']}: "
              f"{hi['shapecheck_s']:.2f} / {lo['shapecheck_s']:.2f} s = "
              f"{hi['shapecheck_s'] / lo['shapecheck_s']:.2f}x; python: "
              f"{hi['python_s'] / lo['python_s']:.2f}x")
    return rows


def fixtures_table(repeat: int) -> list[dict]:
    scripts = sorted((ROOT / "fixtures" / "custom_loops").glob("*.py"))
    print(f"\n## fixtures/custom_loops, median of {repeat}\n")
    print("| script | python s (exit) | shapecheck s (exit) | ratio | status | stopped |")
    print("| --- | ---: | ---: | ---: | --- | --- |")
    rows = []
    for script in scripts:
        rel = script.relative_to(ROOT)
        base, base_rc = python_run(rel, ROOT, repeat)
        ours, rc, entry = shapecheck_run(rel, ROOT, repeat)
        print(f"| {script.name} | {base:.2f} ({base_rc}) | {ours:.2f} ({rc}) | "
              f"{ours / base:.2f} | {entry.get('status')} | "
              f"{'yes' if stopped(entry) else 'no'} |", flush=True)
        rows.append({"script": str(rel), "python_s": base, "python_exit": base_rc,
                     "shapecheck_s": ours, "exit": rc, "status": entry.get("status"),
                     "stopped": stopped(entry)})
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", default="1,10,100",
                    help="comma-separated numbers of epochs (default 1,10,100)")
    ap.add_argument("--repeat", type=int, default=1, help="runs of each, median taken")
    ap.add_argument("--no-fixtures", action="store_true",
                    help="skip part 2 (fixtures/custom_loops)")
    ap.add_argument("--json", help="write the rows here")
    args = ap.parse_args()
    epochs = [int(e) for e in args.epochs.split(",") if e.strip()]
    print(f"# Python {platform.python_version()}, Keras {installed('keras')}, "
          f"TensorFlow {installed('tensorflow', 'tensorflow-cpu')}, {os.cpu_count()} CPUs; "
          f"shapecheck: {' '.join(shapecheck_command())}")
    start = time.perf_counter()
    result = {"epochs": epochs_table(epochs, max(1, args.repeat))}
    if not args.no_fixtures:
        result["fixtures"] = fixtures_table(max(1, args.repeat))
    print(f"\ntotal {time.perf_counter() - start:.0f} s")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
