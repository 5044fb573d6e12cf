"""One shape contract checked two ways: jaxtyping at run time, shapecheck for every size.

    python benchmarks/bench_contracts.py              # T = 50, batch 8, 7 runs each
    python benchmarks/bench_contracts.py --T 64 --runs 11

The contract: "the decoder's output is (batch, T, vocab)" for a speech model whose
input is (batch, T, 80) frames.  jaxtyping (with ``jaxtyped`` and beartype, else
typeguard) annotates a function that runs the model and returns its output: the check
holds for the one T (and batch) that forward pass used.  ``shapecheck.assert_shapes``
proves it on the model's symbolic shapes for every T and batch, without running it.
A builder marked ``@shapecheck.returns`` is timed as it is called outside tests and
the command (the function itself) and as the pytest plugin checks it (each call).

Two models: one that keeps the time axis (Conv1D "same", LSTM, Dense), and one whose
encoder halves it and upsamples it back (Conv1D stride 2, then UpSampling1D(2)): the
output has 2*ceiling(T/2) steps, T only when T is even.  A forward pass at an even T
passes the annotation; shapecheck names the odd lengths.

The annotations are read at run time, so this module does not use
``from __future__ import annotations``.  Times are wall-clock seconds (``time.perf_counter``), the median of ``--runs`` runs
after one warm-up run (the first run's time is printed too).  jaxtyping is not a
dependency of shapecheck: ``pip install jaxtyping beartype`` for its rows.  Not a
test: nothing is asserted.
"""

import argparse
import os
import statistics
import time
from typing import Any, Callable

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

VOCAB = 1000


def build(halve: bool) -> Any:
    """The speech model; ``halve``: its encoder halves the time axis and upsamples."""
    import keras
    from keras import layers

    x = keras.Input((None, 80), name="frames")
    if halve:
        h = layers.Conv1D(64, 3, strides=2, padding="same", name="conv")(x)
        h = layers.UpSampling1D(2, name="up")(h)
    else:
        h = layers.Conv1D(64, 3, padding="same", name="conv")(x)
    h = layers.LSTM(128, return_sequences=True, name="decoder")(h)
    return keras.Model(x, layers.Dense(VOCAB, name="logits")(h), name="speech")


def timed(fn: Callable[[], Any], runs: int) -> tuple[float, float, str]:
    """(first run, median of ``runs`` more) seconds, and "holds" or the error's first
    line."""
    def once() -> tuple[float, str]:
        start = time.perf_counter()
        try:
            fn()
            verdict = "holds"
        except Exception as err:  # the contract's failure is the result
            lines = str(err).splitlines()
            said = next((line.strip() for line in lines if "differ" in line), lines[0])
            verdict = f"fails ({type(err).__name__}): " + " ".join(said.split())[:100]
        return time.perf_counter() - start, verdict

    first, verdict = once()
    rest = [once()[0] for _ in range(runs)]
    return first, statistics.median(rest), verdict


def jaxtyping_checker(model: Any) -> tuple[Callable[[Any], Any], str] | None:
    """``model`` run in a function annotated with jaxtyping, and the type checker's
    name; None without jaxtyping."""
    try:
        import jaxtyping
        import tensorflow as tf
    except ImportError:
        return None
    try:
        from beartype import beartype as typechecker
        name = "beartype"
    except ImportError:
        try:
            from typeguard import typechecked as typechecker
            name = "typeguard"
        except ImportError:
            return None
    Float = jaxtyping.Float

    @jaxtyping.jaxtyped(typechecker=typechecker)
    def decode(x: Float[tf.Tensor, "batch T 80"]) -> Float[tf.Tensor, f"batch T {VOCAB}"]:
        return model(x)

    return decode, f"jaxtyping {jaxtyping.__version__} + {name}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--T", type=int, default=50, help="the length a forward pass uses")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()

    import keras

    import shapecheck

    from shapecheck.decorators import enable_in_tests

    spec = dict(inputs="batch T 80")
    free = {h: shapecheck.returns(f"batch T {VOCAB}", **spec)(lambda h=h: build(h))
            for h in (False, True)}  # outside tests and the command: the function itself
    enable_in_tests()  # as the pytest plugin does
    checked_builds = {h: shapecheck.returns(f"batch T {VOCAB}", **spec)(lambda h=h: build(h))
                      for h in (False, True)}
    rows = []
    for label, halve in (("keeps T", False), ("halves, then doubles T", True)):
        model = build(halve)
        for how, fn in (("outside tests and the command", free[halve]),
                        ("checked, as under the pytest plugin", checked_builds[halve])):
            first, med, verdict = timed(fn, args.runs)
            rows.append((label, f"`@shapecheck.returns` builder, {how}", first, med,
                         verdict if "checked" in how else "-",
                         "nothing (the function is returned unchanged)"
                         if "outside" in how else
                         f"(batch, T, {VOCAB}) for every T and batch, at each call"))
        checked = jaxtyping_checker(model)
        lengths = [args.T] + ([args.T + 1] if args.T % 2 == 0 else [args.T - 1])
        for t in lengths if halve else lengths[:1]:
            x = keras.ops.zeros((args.batch, t, 80))  # a tf.Tensor on TensorFlow
            first, med, verdict = timed(lambda: model(x), args.runs)
            rows.append((label, f"forward pass alone, T = {t}", first, med, "-",
                         "nothing about shapes"))
            if checked is not None:
                decode, name = checked
                first, med, verdict = timed(lambda: decode(x), args.runs)
                rows.append((label, f"{name}, T = {t}", first, med, verdict,
                             f"(batch, T, {VOCAB}) for T = {t}, batch = {args.batch} "
                             "(the one call)"))
        first, med, verdict = timed(lambda: shapecheck.assert_shapes(
            model, inputs="batch T 80", outputs=f"batch T {VOCAB}"), args.runs)
        rows.append((label, "shapecheck.assert_shapes", first, med, verdict,
                     f"(batch, T, {VOCAB}) for every T and batch the model runs at "
                     "(no forward pass)"))
    if jaxtyping_checker(build(False)) is None:
        print("(jaxtyping, or beartype and typeguard, not installed: its rows are left "
              "out; pip install jaxtyping beartype)\n")
    print(f"| model | check | first run (s) | median of {args.runs} (s) | result | "
          "what it proves |")
    print("|---|---|---:|---:|---|---|")
    for label, check, first, med, verdict, proves in rows:
        print(f"| {label} | {check} | {first:.4f} | {med:.4f} | {verdict} | {proves} |")


if __name__ == "__main__":
    main()
