"""SC706 sample-weight-shape and SC707 class-weight, each case verified against real Keras.

One script holds every case, a call per line: shapecheck checks it once (its dry run
records each call), and plain Keras runs each call on fresh models, in a separate process,
to show that the cases called errors raise and the accepted ones train.  Cases where
Keras trains without raising but uses other weights than the ones given are shown by
the weights Keras derives, in the tests below.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import shapecheck

PRELUDE = textwrap.dedent("""\
    import numpy as np
    import tensorflow as tf
    import keras
    from keras import layers

    rng = np.random.default_rng(0)
    x = rng.random((16, 6, 4)).astype("float32")
    y = np.arange(96).reshape(16, 6) % 3
    inputs = keras.Input(shape=(6, 4))
    steps = layers.LSTM(8, return_sequences=True)(inputs)
    seq = keras.Model(inputs, layers.Dense(3, activation="softmax")(steps))
    seq.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    reg = keras.Model(inputs, layers.Dense(1)(steps))
    reg.compile(optimizer="sgd", loss="mse")
    cw = {0: 1.0, 1: 2.0, 2: 3.0}
    xs = rng.random((16, 5)).astype("float32")
    ids = np.arange(16) % 3
    inp = keras.Input(shape=(5,))
    two = keras.Model(inp, [layers.Dense(1, name="price")(inp),
                            layers.Dense(3, activation="softmax", name="kind")(inp)])
    two.compile(optimizer="sgd", loss=["mse", "sparse_categorical_crossentropy"])
    ys = [rng.random((16, 1)), ids]
    clf = keras.Model(inp, layers.Dense(3, activation="softmax")(inp))
    clf.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    onehot = keras.Model(inp, layers.Dense(3, activation="softmax")(inp))
    onehot.compile(optimizer="sgd", loss="categorical_crossentropy")
    tags = keras.Model(inp, layers.Dense(3, activation="sigmoid")(inp))
    tags.compile(optimizer="sgd", loss="binary_crossentropy")
    multi_hot = (rng.random((16, 3)) > 0.4).astype("float32")
    multi_hot[:, 0] = 1.0
    ds = tf.data.Dataset.from_tensor_slices((xs, ids)).batch(8)

    def batches():
        while True:
            yield xs[:8], ids[:8], np.ones(5)

""")

# (call, rule it breaks or None, what plain Keras does: "raises", "trains" or "silent")
CASES = [
    ("seq.fit(x, y, sample_weight=np.ones(16), batch_size=8, verbose=0)", "SC706", "raises"),
    ("seq.fit(x, y, sample_weight=np.ones((16, 1)), batch_size=8, verbose=0)", None, "trains"),
    ("seq.fit(x, y, sample_weight=np.ones((16, 6)), batch_size=8, verbose=0)", None, "trains"),
    ("seq.fit(x, y, sample_weight=np.ones((16, 7)), batch_size=8, verbose=0)", "SC706",
     "raises"),
    ("seq.train_on_batch(x, y, sample_weight=np.ones(16))", "SC706", "raises"),
    ("seq.fit(x, y, class_weight=cw, batch_size=8, verbose=0)", "SC707", "raises"),
    ("seq.fit(x, y[..., None], sample_weight=np.ones((16, 6)), batch_size=8, verbose=0)",
     None, "trains"),
    ("seq.fit(tf.data.Dataset.from_tensor_slices((x, y[..., None])).batch(8), class_weight=cw, "
     "verbose=0)", None, "trains"),
    ("reg.fit(x, rng.random((16, 6)), sample_weight=np.ones((16, 6)), batch_size=8, "
     "verbose=0)", "SC706", "raises"),
    ("reg.fit(x, rng.random((16, 6, 1)), sample_weight=np.ones((16, 6)), batch_size=8, "
     "verbose=0)", None, "trains"),
    ("reg.fit(x, rng.random((16, 6)), sample_weight=np.ones(16), batch_size=8, verbose=0)",
     None, "trains"),
    ("two.fit(xs, ys, sample_weight=np.ones(16), batch_size=8, verbose=0)", None, "trains"),
    ("two.fit(xs, ys, sample_weight=np.ones((16, 3)), batch_size=8, verbose=0)", "SC706",
     "raises"),
    ("two.fit(xs, ys, sample_weight=[np.ones(16), np.ones(16)], batch_size=8, verbose=0)",
     None, "trains"),
    ("two.fit(xs, ys, sample_weight=[np.ones(16)] * 3, batch_size=8, verbose=0)", "SC706",
     "raises"),
    ("two.fit(xs, ys, sample_weight={'price': np.ones(16), 'kind': np.ones(16)}, "
     "batch_size=8, verbose=0)", "SC706", "raises"),
    ("two.fit(xs, {'price': ys[0], 'kind': ids}, sample_weight={'price': np.ones(16), "
     "'kind': np.ones(16)}, batch_size=8, verbose=0)", "SC706", "raises"),
    ("two.fit(xs, ys, sample_weight=[np.ones(16), np.ones((16, 4))], batch_size=8, verbose=0)",
     "SC706", "raises"),
    ("two.fit(xs, ys, class_weight=cw, batch_size=8, verbose=0)", "SC707", "raises"),
    ("clf.fit(xs, ids, class_weight=cw, batch_size=8, verbose=0)", None, "trains"),
    ("onehot.fit(xs, keras.utils.to_categorical(ids, 3), class_weight=cw, batch_size=8, "
     "verbose=0)", None, "trains"),
    ("clf.fit(xs, ids[:, None], class_weight=cw, batch_size=8, verbose=0)", None, "trains"),
    ("clf.fit(xs, ids, class_weight={1: 1.0, 2: 4.0, 3: 2.0}, batch_size=8, verbose=0)",
     "SC707", "silent"),
    ("clf.fit(xs, ids, class_weight={'0': 1.0, '1': 4.0, '2': 2.0}, batch_size=8, verbose=0)",
     "SC707", "silent"),
    ("clf.fit(xs, ids, class_weight=cw, sample_weight=np.ones(16), batch_size=8, verbose=0)",
     "SC707", "raises"),
    ("clf.fit(xs, ids, class_weight=[1.0, 2.0, 3.0], batch_size=8, verbose=0)", "SC707",
     "raises"),
    ("clf.fit(ds, class_weight=cw, verbose=0)", None, "trains"),
    ("clf.fit(ds, class_weight={0: 1.0, 1: 2.0}, verbose=0)", "SC707", "raises"),
    ("clf.fit(ds, class_weight={'0': 1.0, '1': 2.0, '2': 1.0}, verbose=0)", "SC707", "raises"),
    ("clf.fit(ds, class_weight={0.0: 1.0, 1: 2.0, 2: 1.0}, verbose=0)", None, "trains"),
    ("clf.fit(batches(), steps_per_epoch=1, verbose=0)", "SC706", "raises"),
    ("clf.fit(tf.data.Dataset.from_tensor_slices((xs, ids, np.ones((16, 2)))).batch(8), "
     "verbose=0)", "SC706", "raises"),
    ("clf.fit(xs, ids, validation_data=(xs, ids, np.ones((16, 2))), verbose=0)", "SC706",
     "raises"),
    ("clf.evaluate(xs, ids, sample_weight=np.ones((16, 2)), batch_size=8, verbose=0)", "SC706",
     "raises"),
    ("clf.fit(xs, ids, sample_weight=np.ones((16, 1, 1)), batch_size=8, verbose=0)", "SC706",
     "silent"),
    ("tags.fit(xs, multi_hot, class_weight=cw, batch_size=8, verbose=0)", "SC707", "silent"),
]

KERAS_RUNNER = textwrap.dedent("""\
    import json, os, sys
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    text = open(sys.argv[1]).read()
    prelude, calls = text.split("# --- calls\\n")
    code = compile(prelude, sys.argv[1], "exec")
    for call in calls.splitlines():
        space = {}  # fresh models: a failed call leaves its traced step behind
        exec(code, space)
        try:
            exec(call, space)
            print(json.dumps({"call": call, "raised": None}))
        except Exception as err:
            print(json.dumps({"call": call, "raised": type(err).__name__}))
""")


def _script(tmp_path: Path) -> tuple[Path, int]:
    path = tmp_path / "weights.py"
    text = PRELUDE + "# --- calls\n" + "\n".join(call for call, _, _ in CASES) + "\n"
    path.write_text(text)
    first = text[:text.index("# --- calls\n")].count("\n") + 2  # line of the first call
    return path, first


@pytest.fixture(scope="module")
def checked(tmp_path_factory: pytest.TempPathFactory) -> dict[int, list]:
    path, first = _script(tmp_path_factory.mktemp("weights"))
    [f] = shapecheck.check_script(str(path)).files
    assert f.error is None, f.error
    by_line: dict[int, list] = {}
    for d in f.diagnostics:
        by_line.setdefault(d.line, []).append(d)
    return {i: by_line.get(first + i, []) for i in range(len(CASES))}


@pytest.fixture(scope="module")
def keras_outcomes(tmp_path_factory: pytest.TempPathFactory) -> list[str | None]:
    tmp = tmp_path_factory.mktemp("keras")
    path, _ = _script(tmp)
    runner = tmp / "run_keras.py"
    runner.write_text(KERAS_RUNNER)
    proc = subprocess.run([sys.executable, str(runner), str(path)], capture_output=True,
                          text=True, timeout=900, cwd=tmp)
    rows = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    assert len(rows) == len(CASES), proc.stdout[-2000:] + proc.stderr[-3000:]
    return [r["raised"] for r in rows]


@pytest.mark.parametrize("i", range(len(CASES)), ids=[c for c, _, _ in CASES])
def test_each_case_as_keras_does_it(i: int, checked: dict[int, list],
                                    keras_outcomes: list[str | None]) -> None:
    call, code, keras_does = CASES[i]
    codes = [d.code for d in checked[i]]
    raised = keras_outcomes[i]
    if keras_does == "raises":
        assert raised is not None, f"Keras trained on {call}"
    else:
        assert raised is None, f"Keras raised {raised} on {call}"
    if code is None:
        assert [c for c in codes if c in ("SC706", "SC707")] == [], checked[i]
    else:
        assert code in codes, f"{call}: {[(d.code, d.message) for d in checked[i]]}"


def test_findings_name_shapes_and_a_fix(checked: dict[int, list]) -> None:
    [d] = [d for d in checked[0] if d.code == "SC706"]
    assert d.shapes["sample_weight"] == [8] and d.shapes["loss values"] == [8, 6]
    assert "(N, 1)" in d.hint and "(N, 6)" in d.hint
    [d] = [d for d in checked[5] if d.code == "SC707"]
    assert "argmax" in d.message and "np.vectorize(class_weight.get)(y)" in d.hint
    one_based = next(i for i, c in enumerate(CASES) if "{1: 1.0, 2: 4.0, 3: 2.0}" in c[0])
    [d] = checked[one_based]
    assert "key 3" in d.message and "class 0" in d.message and "1-based" in d.hint
    multi_hot = next(i for i, c in enumerate(CASES) if c[0].startswith("tags."))
    assert [d.severity for d in checked[multi_hot]] == ["warning"]


def test_silent_class_weights_are_not_the_ones_given() -> None:
    # What Keras derives from class_weight for arrays: keys 1..3 leave class 0 at 1.0 and
    # never use the weight of "class 3"; string keys are never found; a multi-hot row is
    # weighted by its first positive label only.
    from keras.src.trainers.data_adapters.data_adapter_utils import \
        class_weight_to_sample_weights as derive

    ids = np.arange(6) % 3
    assert derive(ids, {1: 1.0, 2: 4.0, 3: 2.0}).tolist() == [1.0, 1.0, 4.0] * 2
    assert derive(ids, {"0": 1.0, "1": 4.0, "2": 2.0}).tolist() == [1.0] * 6
    rows = np.array([[1, 1, 0], [1, 0, 1]], "float32")
    assert derive(rows, {0: 1.0, 1: 2.0, 2: 3.0}).tolist() == [1.0, 1.0]


def test_sample_weights_of_another_rank_give_another_loss() -> None:
    # (N, 1, 1) weights broadcast against the (N,) loss values into (N, 1, N): the loss
    # Keras reports is not the weighted mean the same weights give as (N,).
    import keras
    from keras import layers

    rng = np.random.default_rng(0)
    inp = keras.Input(shape=(3,))
    model = keras.Model(inp, layers.Dense(1)(inp))
    twin = keras.models.clone_model(model)  # its own traced step: weights of another rank
    twin.set_weights(model.get_weights())
    model.compile(loss="mse")
    twin.compile(loss="mse")
    x, y = rng.random((8, 3)), rng.random((8, 1))
    w = np.linspace(0.1, 2.0, 8)
    right = model.evaluate(x, y, sample_weight=w, batch_size=8, verbose=0)
    wrong = twin.evaluate(x, y, sample_weight=w[:, None, None], batch_size=8, verbose=0)
    assert not np.isclose(right, wrong)
