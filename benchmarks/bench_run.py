"""``--run`` on real models: its time next to one plain training step, and its verdict.

    python benchmarks/bench_run.py            # every keras.applications model below
    python benchmarks/bench_run.py --quick    # four of them
    python benchmarks/bench_run.py --device gpu

For each model (``weights=None``, compiled with an MSE loss; the classification
heads with categorical crossentropy), one batch of ``--batch`` images at
``--size`` pixels (the model's fixed size where it has one) is given as data:

- ``run``: ``check_model(model, data=x, targets=y, run=True)`` — the static
  pass, then the forward pass, loss and gradient, call by call, with every
  variable restored afterwards (wall clock, end to end);
- ``fit step``: ``model.train_on_batch(x, y)`` on the same batch, timed after
  one warm-up step (so Keras's tracing is not counted) — what one step of
  training costs;
- the findings ``--run`` raised: any SC801/SC802/SC803 on these correct
  models is a false alarm or a defect of shapecheck.

Not a test: nothing is asserted.  Times are seconds of wall clock.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

FREE = (None, None, 3)
# Every model of the static benchmark but the heaviest, and RegNet (not in Keras 3).
HEAVY = {"ResNet152V2", "EfficientNetV2L", "ConvNeXtXLarge", "NASNetLarge", "RegNetX002"}
QUICK = {"ResNet50", "MobileNetV2", "InceptionV3", "ResNet50-top"}


def bench(label: str, ctor: str, extra: dict, batch: int, size: int, device: str) -> dict:
    import keras
    import numpy as np

    import shapecheck

    keras.backend.clear_session()
    fn = getattr(keras.applications, ctor, None)
    if fn is None:
        return {"model": label, "skipped": f"not in Keras {keras.__version__}"}
    kwargs = {"weights": None, "include_top": False, "input_shape": FREE, **extra}
    model = fn(**kwargs)
    fixed = model.inputs[0].shape[1]
    side = fixed if fixed is not None else max(size, 75 if ctor.startswith(("Inception",
                                                                            "Xception")) else 0)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch, side, side, 3)).astype("float32")
    out = model.compute_output_shape(x.shape)
    if kwargs.get("include_top"):
        y = np.eye(out[-1], dtype="float32")[rng.integers(0, out[-1], batch)]
        model.compile(optimizer="adam", loss="categorical_crossentropy")
    else:
        y = rng.standard_normal(out).astype("float32")
        model.compile(optimizer="adam", loss="mse")
    start = time.perf_counter()
    report = shapecheck.check_model(model, data=x, targets=y, batch_size=batch, run=True,
                                    device=device, run_timeout=600)
    run_s = time.perf_counter() - start
    entry = report.models[0]
    executions = (entry.run or {}).get("executions", [])
    model.train_on_batch(x, y)  # warm-up: Keras traces the step
    start = time.perf_counter()
    model.train_on_batch(x, y)
    step_s = time.perf_counter() - start
    found = [f"{d.code} {d.layer}" for d in report.diagnostics]
    return {"model": label, "layers": len(model.layers), "input": f"{batch}x{side}x{side}x3",
            "run": run_s, "executed": sum(e.get("seconds", 0) for e in executions),
            "stages": "+".join(executions[0]["stages"]) if executions else "-",
            "device": (entry.run or {}).get("device", "?"), "step": step_s,
            "findings": found}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--size", type=int, default=96)
    p.add_argument("--device", default="cpu", choices=("cpu", "gpu", "auto"))
    opts = p.parse_args()
    import keras
    import tensorflow as tf

    print(f"# Keras {keras.__version__}, TensorFlow {tf.__version__}, Python "
          f"{platform.python_version()}, {os.cpu_count()} CPUs, --device {opts.device}")
    print("| model | layers | batch | `--run` s (executing s) | stages | fit step s | ratio | "
          "run findings |")
    print("|---|---|---|---|---|---|---|---|")
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from bench_static import APPS

    for label, ctor, extra in APPS:
        if label in HEAVY or opts.quick and label not in QUICK:
            continue
        r = bench(label, ctor, extra, opts.batch, opts.size, opts.device)
        if "skipped" in r:
            print(f"| {label} | skipped: {r['skipped']} |")
            continue
        print(f"| {label} | {r['layers']} | {r['input']} | {r['run']:.2f} ({r['executed']:.2f})"
              f" | {r['stages']} | {r['step']:.3f} | {r['run'] / r['step']:.1f}x | "
              f"{', '.join(r['findings']) or 'none'} |", flush=True)


if __name__ == "__main__":
    main()
