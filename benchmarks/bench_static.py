"""How long shapecheck's static pass takes, next to Keras building the same model.

    python benchmarks/bench_static.py            # every model, 1k..50k-layer graphs
    python benchmarks/bench_static.py --quick    # a few models, 1k..5k-layer graphs

Part 1: for ``keras.applications`` models (``weights=None``, unknown spatial
dims where the model accepts them), Keras's own construction time next to
the static pass on the built model — ``infer_model`` (symbolic shapes) plus
every diagnostic rule — measured in the same run.  Each run starts with the
probe fallback's cache empty, as a model's first check does.

Part 2: synthetic graphs of N layers: a chain of ``Dense`` layers, and a
residual tower (``x = Add()([x, Dense(x)])``, a Dense and an Add per block).
Keras's own recursive graph walk fails at the default recursion limit (shown
for a 10k-layer chain); to build deep graphs the limit is raised only while
building, and ``infer_model`` runs with the default limit restored.  The peak
memory of ``infer_model`` is measured with tracemalloc in a separate run.
The growth exponent is the slope of log(time) against log(N).

Times are wall-clock seconds (``time.perf_counter``); the static pass is the
best of a few runs when it is short.  Not a test: nothing is asserted.
"""

from __future__ import annotations

import argparse
import functools
import gc
import math
import os
import platform
import sys
import threading
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

FREE = (None, None, 3)

# (label, keras.applications name, extra kwargs)
APPS = [
    ("ResNet50", "ResNet50", {}),
    ("ResNet50V2", "ResNet50V2", {}),
    ("MobileNet", "MobileNet", {}),
    ("MobileNetV2", "MobileNetV2", {}),
    ("MobileNetV3Small", "MobileNetV3Small", {}),
    ("MobileNetV3Large", "MobileNetV3Large", {}),
    ("EfficientNetB0", "EfficientNetB0", {}),
    ("EfficientNetV2B0", "EfficientNetV2B0", {}),
    ("DenseNet121", "DenseNet121", {}),
    ("InceptionV3", "InceptionV3", {}),
    ("Xception", "Xception", {}),
    ("VGG16", "VGG16", {}),
    ("ConvNeXtTiny", "ConvNeXtTiny", {}),
    ("NASNetMobile", "NASNetMobile", {"input_shape": (224, 224, 3)}),
    ("RegNetX002", "RegNetX002", {}),
    ("InceptionResNetV2", "InceptionResNetV2", {}),
    ("ResNet152V2", "ResNet152V2", {}),
    ("EfficientNetV2L", "EfficientNetV2L", {}),
    ("ConvNeXtXLarge", "ConvNeXtXLarge", {}),
    ("NASNetLarge", "NASNetLarge", {"input_shape": (331, 331, 3)}),
    ("ResNet50-top", "ResNet50", {"include_top": True, "input_shape": (224, 224, 3)}),
    ("MobileNetV2-top", "MobileNetV2", {"include_top": True, "input_shape": (224, 224, 3)}),
]
QUICK_APPS = {"ResNet50", "MobileNetV2", "EfficientNetB0", "DenseNet121", "InceptionV3",
              "ConvNeXtTiny", "NASNetMobile"}

SIZES = [1000, 2000, 5000, 10000, 20000, 50000]
QUICK_SIZES = [1000, 2000, 5000]


def timed(fn):
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


def static_pass(model, budget: float = 4.0):
    """Best of up to 3 runs of ``infer_model`` (fewer when runs are long).

    Each run starts with the probe fallback's cache empty, as a model's first
    check does. A full garbage collection before each run keeps the
    collection of what building the model left behind out of the time.
    """
    from shapecheck.shapes import probe
    from shapecheck.shapes.infer import infer_model

    def fresh():
        probe._CACHE.clear()
        gc.collect()
        return timed(lambda: infer_model(model))

    shapes, best = fresh()
    runs = 1
    while runs < 3 and best * (runs + 1) < budget:
        _, t = fresh()
        best = min(best, t)
        runs += 1
    return shapes, best


def peak_memory(fn):
    """Peak bytes Python allocates while ``fn`` runs (tracemalloc; timed apart)."""
    import tracemalloc

    gc.collect()
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def diagnostic_rules(model, shapes) -> str:
    """Run every diagnostic rule on the inferred model; the findings by severity."""
    from collections import Counter

    from shapecheck.rules.context import ModelContext
    from shapecheck.rules.engine import model_findings
    from shapecheck.rules.minimum import minimum_sizes

    ctx = ModelContext(model, shapes, lambda p: p)
    found = model_findings(ctx)
    minimum_sizes(ctx)
    counts = Counter(d.severity[0] for d in found)
    return ",".join(f"{n}{s}" for s, n in sorted(counts.items())) or "0"


def summary(shapes) -> str:
    from collections import Counter

    notes = Counter(n.kind for n in shapes.scope.notes)
    unproven = sum(c.holds is None for c in shapes.scope.constraints)
    bits = [f"{k}={v}" for k, v in sorted(notes.items())]
    if unproven:
        bits.append(f"unproven={unproven}")
    return ",".join(bits) or "clean"


def slope(ns: list[int], ts: list[float]) -> float:
    """Least-squares slope of log(t) against log(n)."""
    xs = [math.log(n) for n in ns]
    ys = [math.log(max(t, 1e-9)) for t in ts]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sxx if sxx else float("nan")


# --- part 1: applications -------------------------------------------------------


def bench_apps(labels: set[str] | None) -> None:
    import keras

    print("\n== keras.applications (weights=None) ==")
    head = f"{'model':<20} {'calls':>6} {'keras build s':>14} {'infer s':>9} " \
           f"{'rules s':>8} {'static/build':>13} {'findings':>9}  notes"
    print(head)
    print("-" * len(head))
    tot_build = tot_infer = 0.0
    for label, ctor, extra in APPS:
        if labels is not None and label not in labels:
            continue
        fn = getattr(keras.applications, ctor, None)
        if fn is None:
            print(f"{label:<20} {'-':>6} {'(not in Keras ' + keras.__version__ + ')':>38}")
            continue
        keras.backend.clear_session()
        gc.collect()
        kwargs = {"weights": None, "include_top": False, "input_shape": FREE, **extra}
        model, t_build = timed(lambda: fn(**kwargs))
        shapes, t_infer = static_pass(model)
        found, t_rules = timed(functools.partial(diagnostic_rules, model, shapes))
        tot_build += t_build
        tot_infer += t_infer + t_rules
        ratio = (t_infer + t_rules) / t_build
        flag = "  OVER 5%" if ratio > 0.05 else ""
        print(f"{label:<20} {len(shapes.results):>6} {t_build:>14.2f} {t_infer:>9.3f} "
              f"{t_rules:>8.3f} {ratio:>13.3f} {found:>9}  {summary(shapes)}{flag}",
              flush=True)
        del model, shapes
    if tot_build:
        print(f"{'total':<20} {'':>6} {tot_build:>14.2f} {tot_infer:>9.3f} {'':>8} "
              f"{tot_infer / tot_build:>13.3f}")


# --- part 2: synthetic deep graphs ---------------------------------------------


def build_deep(kind: str, n: int):
    """An ``n``-layer functional model (Input not counted); Keras recurses per layer."""
    import keras

    inp = keras.Input(shape=(None, 8), name="x")
    x = inp
    if kind == "chain":
        for _ in range(n):
            x = keras.layers.Dense(8)(x)
    else:  # residual: one Dense and one Add per block
        for _ in range(n // 2):
            x = keras.layers.Add()([x, keras.layers.Dense(8)(x)])
    return keras.Model(inp, x)


def build_with_deep_recursion(kind: str, n: int):
    """Build in a thread with a large stack, the recursion limit raised meanwhile."""
    out: dict = {}

    def work() -> None:
        old = sys.getrecursionlimit()
        sys.setrecursionlimit(max(old, 50 * n + 10_000))
        try:
            out["model"], out["t"] = timed(lambda: build_deep(kind, n))
        except BaseException as err:  # noqa: BLE001 - reported below
            out["error"] = err
        finally:
            sys.setrecursionlimit(old)

    old_stack = threading.stack_size()
    threading.stack_size(1 << 30)  # 1 GiB of (virtual) stack for Keras's recursion
    try:
        th = threading.Thread(target=work)
        th.start()
        th.join()
    finally:
        threading.stack_size(old_stack)
    if "error" in out:
        raise out["error"]
    return out["model"], out["t"]


def keras_at_default_limit(n: int = 10_000) -> str:
    """What Keras does building (and walking) an ``n``-layer chain at the default limit."""
    import keras

    keras.backend.clear_session()
    try:
        model = build_deep("chain", n)
        model(keras.ops.zeros((1, 2, 8)))
    except RecursionError as err:
        return f"RecursionError ({str(err)[:60]})"
    return "built and ran"


def bench_deep(sizes: list[int]) -> None:
    import keras

    print(f"\nKeras, {10_000}-layer chain at the default recursion limit "
          f"{sys.getrecursionlimit()}: {keras_at_default_limit()}")

    limit = sys.getrecursionlimit()
    print(f"\n== synthetic graphs (Keras built with the recursion limit raised; "
          f"infer_model at the default limit {limit}) ==")
    head = f"{'graph':<10} {'layers':>7} {'calls':>7} {'keras build s':>14} {'infer s':>9} " \
           f"{'infer/build':>12} {'infer us/call':>14} {'infer peak MiB':>15}  notes"
    print(head)
    print("-" * len(head))
    fits = []
    for kind in ("chain", "residual"):
        ns, tb, ti = [], [], []
        for n in sizes:
            keras.backend.clear_session()
            gc.collect()
            model, t_build = build_with_deep_recursion(kind, n)
            assert sys.getrecursionlimit() == limit
            try:
                shapes, t_infer = static_pass(model)
            except RecursionError as err:
                print(f"{kind:<10} {n:>7} {'':>7} {t_build:>14.2f} RecursionError: {err}")
                continue
            calls = len(shapes.results)
            from shapecheck.shapes.infer import infer_model

            mib = peak_memory(functools.partial(infer_model, model)) / (1 << 20)
            print(f"{kind:<10} {n:>7} {calls:>7} {t_build:>14.2f} {t_infer:>9.3f} "
                  f"{t_infer / t_build:>12.4f} {1e6 * t_infer / calls:>14.1f} {mib:>15.1f}  "
                  f"{summary(shapes)}", flush=True)
            ns.append(n)
            tb.append(t_build)
            ti.append(t_infer)
            del model, shapes
        if len(ns) >= 2:
            fits.append((kind, ns, slope(ns, tb), slope(ns, ti)))
    print("\ngrowth exponent (slope of log time vs log layers; 1.0 = linear):")
    for kind, ns, sb, si in fits:
        print(f"  {kind:<10} layers {ns[0]}..{ns[-1]}:  keras build {sb:.2f}   "
              f"infer_model {si:.2f}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help=f"models {sorted(QUICK_APPS)} and graphs of {QUICK_SIZES} layers")
    parser.add_argument("--sizes", type=lambda s: [int(x) for x in s.split(",")],
                        help="comma-separated layer counts for the synthetic graphs")
    parser.add_argument("--models", type=lambda s: set(s.split(",")),
                        help="comma-separated labels of the keras.applications models to time")
    parser.add_argument("--skip-apps", action="store_true")
    parser.add_argument("--skip-deep", action="store_true")
    args = parser.parse_args(argv)

    import keras
    import tensorflow as tf

    print(f"shapecheck static-pass benchmark: Python {platform.python_version()}, "
          f"Keras {keras.__version__} ({keras.backend.backend()} {tf.__version__}), "
          f"{os.cpu_count()} CPUs, {platform.machine()}")

    # Warm up: TF start-up, rule loading, sympy caches for the common forms.
    from shapecheck.shapes.infer import infer_model

    keras.backend.clear_session()
    warm = keras.applications.MobileNet(weights=None, include_top=False, input_shape=FREE)
    diagnostic_rules(warm, infer_model(warm))

    if not args.skip_apps:
        bench_apps(args.models or (QUICK_APPS if args.quick else None))
    if not args.skip_deep:
        bench_deep(args.sizes or (QUICK_SIZES if args.quick else SIZES))


if __name__ == "__main__":
    main()
