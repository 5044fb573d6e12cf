"""Hand-written training loops (``fixtures/custom_loops/``): checked as dry runs.

Each buggy script is found at its ``# finding`` line with the shapes, exit 1 and no
"could not be checked"; each clean one is clean; a loop that trains stops after its
dry-run steps and says where; the weights are as they were.
"""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest

from shapecheck.report import Report
from shapecheck.script.runner import check_file, check_files_together

ROOT = Path(__file__).resolve().parent.parent
LOOPS = ROOT / "fixtures" / "custom_loops"
SCRIPTS = sorted(LOOPS.glob("*.py"))
BUGGY = [p for p in SCRIPTS if "# finding" in p.read_text()]
CLEAN = [p for p in SCRIPTS if p not in BUGGY]


def finding_line(path: Path) -> int:
    return next(n for n, text in enumerate(path.read_text().splitlines(), start=1)
                if text.rstrip().endswith("# finding"))


@pytest.fixture(scope="module")
def reports() -> dict[str, object]:
    found = check_files_together([str(p) for p in SCRIPTS], timeout=900)
    return {p.name: r for p, r in zip(SCRIPTS, found)}


def _describe(report: object) -> str:
    lines = [f"{d.code} line {d.line}: {d.message}" for d in report.diagnostics]
    if report.error is not None:
        lines.append(f"script error: {report.error.message}")
    return "\n".join(lines) or "(nothing)"


@pytest.mark.parametrize("path", BUGGY, ids=lambda p: p.name)
def test_buggy_loop_is_found_at_its_line(path, reports):
    report = reports[path.name]
    line = finding_line(path)
    assert report.status == "findings", _describe(report)
    errors = [d for d in report.diagnostics if d.severity == "error"]
    assert {d.line for d in errors} == {line}, _describe(report)
    assert Report([report]).exit_code == 1
    for d in errors:  # the shapes on both sides, in the finding
        assert len(d.shapes) >= 2 or len(re.findall(r"\(\d+(?:, \d+)*\)", d.message)) >= 2, \
            _describe(report)


@pytest.mark.parametrize("path", CLEAN, ids=lambda p: p.name)
def test_clean_loop_is_clean_and_stops_after_two_steps(path, reports):
    report = reports[path.name]
    assert report.error is None, report.error.message
    assert report.diagnostics == [], _describe(report)
    assert report.status == "clean"
    stopped = (report.dry_run or {}).get("stopped") or ""
    assert re.match(r"stopped after 2 steps of the loop at .*custom_loops/\w+\.py:\d+$",
                    stopped), report.dry_run


def test_operands_are_named_with_shapes_and_origins(reports):
    d = next(d for d in reports["seed002_target_width.py"].diagnostics if d.code == "SC903")
    assert d.shapes == {"pred": [4, 3, 4, 4], "y": [4, 3, 4, 3]}
    assert "`pred` (4, 3, 4, 4)" in d.message and "`y` (4, 3, 4, 3), NumPy array" in d.message
    assert "axis 3: 4 vs 3" in d.hint


def test_tf_function_error_is_at_the_line_inside_the_function(reports):
    path = LOOPS / "tf_function_step_labels.py"
    d = next(d for d in reports[path.name].diagnostics if d.code == "SC903")
    assert d.line == finding_line(path)  # not the call of the tf.function
    assert d.shapes["y"] == [16]
    assert d.shapes["probs"] == ["batch", 3]  # a model's output, in named dims
    assert d.dims == {"batch": 16}
    assert "`sequential`" in d.message


def test_tensorarray_element_shape_and_loop_axis(reports):
    d = next(d for d in reports["seed002_tensorarray_element_shape.py"].diagnostics)
    assert d.code == "SC903"
    assert d.shapes == {"output_ta element": [4, 4, 4], "out_t": [5, 4, 4]}
    assert "one element per step of `A_STEPS`" in d.message
    assert "(4, 4, 4)" in d.hint


def test_loop_output_axis_is_named_after_the_loop(reports):
    stacked = reports["seed002_loop.py"].dry_run["stacked"]
    assert [(s["shape"], s["dims"]) for s in stacked] == [(["A_STEPS", 4, 4, 4],
                                                          {"A_STEPS": 3})]


def test_model_call_on_data_is_a_feed(reports):
    d = next(d for d in reports["gan_loop_latent.py"].diagnostics if d.severity == "error")
    assert d.code == "SC603"
    assert "the model called on data at" in (d.data or "")


def _script(tmp_path: Path, text: str) -> str:
    path = tmp_path / "train.py"
    path.write_text(textwrap.dedent(text))
    return str(path)


LOOP = """
    import numpy as np
    import tensorflow as tf
    import keras
    from keras import layers

    model = keras.Sequential([keras.Input((12, 3)), layers.Conv1D(8, 3),
                              layers.BatchNormalization(), layers.GlobalAveragePooling1D(),
                              layers.Dense(2)])
    optimizer = keras.optimizers.SGD(0.5)
    x = np.random.rand(64, 12, 3).astype("float32")
    y = np.random.rand(64, 2).astype("float32")
    before = [w.numpy().copy() for w in model.weights]
    try:
        for epoch in range(1000):
            for i in range(0, 64, 16):
                with tf.GradientTape() as tape:
                    loss = tf.reduce_mean(tf.square(model(x[i:i + 16], training=True)
                                                    - y[i:i + 16]))
                grads = tape.gradient(loss, model.trainable_variables)
                optimizer.apply_gradients(zip(grads, model.trainable_variables))
    finally:
        same = all(np.array_equal(a, w.numpy()) for a, w in zip(before, model.weights))
        print("WEIGHTS", "unchanged" if same else "changed", int(optimizer.iterations))
"""


def test_weights_after_the_run_equal_weights_before(tmp_path):
    report = check_file(_script(tmp_path, LOOP), timeout=300)
    assert report.status == "clean", _describe(report)
    assert "WEIGHTS unchanged 2" in report.output  # two steps, counted, nothing applied
    assert report.dry_run["stopped"].startswith("stopped after 2 steps of the loop at ")
    assert report.dry_run["stopped"].endswith("train.py:16")  # the inner loop, that trains


def test_steps_option_sets_the_steps(tmp_path):
    report = check_file(_script(tmp_path, LOOP), timeout=300, steps=5)
    assert "WEIGHTS unchanged 5" in report.output
    assert report.dry_run["stopped"].startswith("stopped after 5 steps")


def test_a_loop_that_does_not_train_runs_to_its_end(tmp_path):
    script = _script(tmp_path, """
        import numpy as np
        import keras

        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
        total = 0
        for i in range(5):
            total += int(model(np.ones((3, 4), "float32")).shape[0])
        print("TOTAL", total)
    """)
    report = check_file(script, timeout=300)
    assert report.status == "clean", _describe(report)
    assert "TOTAL 15" in report.output
    assert not (report.dry_run or {}).get("stopped")


def test_stack_of_unequal_steps_is_found_at_the_stack(tmp_path):
    script = _script(tmp_path, """
        import numpy as np
        import tensorflow as tf
        import keras
        from keras import layers

        decoder = keras.Sequential([keras.Input((None, 6)), layers.GRU(4, return_sequences=True)])
        x = np.random.rand(2, 10, 6).astype("float32")
        outs = []
        for length in (3, 5, 2):
            outs.append(decoder(x[:, :length]))
        stacked = tf.stack(outs)
    """)
    report = check_file(script, timeout=300)
    d = next(d for d in report.diagnostics if d.code == "SC903")
    assert d.line == 12
    assert d.shapes == {"outs[0]": [2, 3, 4], "outs[1]": [2, 5, 4], "outs[2]": [2, 2, 4]}
    assert "pad them" in d.hint
    assert Report([report]).exit_code == 1


def test_console_says_where_the_script_stopped_without_the_traceback(reports):
    import io

    from rich.console import Console

    from shapecheck.render.console import render

    buf = io.StringIO()
    render(Report([reports["seed002_target_width.py"]]),
           Console(file=buf, width=300, color_system=None), tables=False)
    out = buf.getvalue()
    assert "seed002_target_width.py:79 (InvalidArgumentError); a finding below says why" in out
    assert "Traceback (most recent call last)" not in out
    assert "error[SC903 op-shape-error]" in out


def test_a_sliced_operand_shows_the_slice_it_takes(tmp_path):
    script = _script(tmp_path, """
        import numpy as np
        import tensorflow as tf
        import keras

        model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(3)])
        x = np.random.rand(64, 8).astype("float32")
        y = np.random.rand(64, 4).astype("float32")
        for i in range(0, 64, 16):
            out = model(x[i:i + 16])
            loss = keras.losses.mean_squared_error(y[i:i + 16], out)
    """)
    d = next(d for d in check_file(script, timeout=300).diagnostics if d.code == "SC903")
    assert d.line == 11
    assert d.shapes == {"y[i:i + 16]": [16, 4], "out": ["batch", 3]}
    assert "axis 1: 4 vs 3" in d.hint and "axis 0" not in d.hint


def test_a_subclassed_models_output_is_shown_in_named_dims(tmp_path):
    script = _script(tmp_path, """
        import numpy as np
        import keras
        from keras import layers

        class Net(keras.Model):
            def __init__(self):
                super().__init__()
                self.body = layers.Dense(16)
                self.head = layers.Dense(3)

            def call(self, x):
                return self.head(self.body(x))

        model = Net()
        x = np.random.rand(32, 8).astype("float32")
        y = np.random.rand(32, 4).astype("float32")
        out = model(x)
        loss = keras.ops.mean(keras.ops.square(out - y))
    """)
    d = next(d for d in check_file(script, timeout=300).diagnostics if d.code == "SC903")
    assert d.line == 19
    assert d.shapes == {"out": ["batch", 3], "y": [32, 4]}
    assert d.dims == {"batch": 32}
    assert "the output of model `net`" in d.message


def test_crossed_broadcasts_are_those_that_stretch_both_sides():
    from shapecheck.script.broadcasts import crossed

    assert crossed((16,), (16, 1)) == (16, 16)
    assert crossed((16, 1), (16,)) == (16, 16)
    assert crossed((4, 16, 1), (16,)) == (4, 16, 16)
    assert crossed((16, 3), (3,)) is None  # a bias over the rows: one side stretched
    assert crossed((16, 1), (1, 16)) is None  # same rank: written on purpose
    assert crossed((16, 3), (16,)) is None  # does not broadcast: it raises (SC903)
    assert crossed((1, 1), (1,)) is None
    import numpy as np

    for a, b in (((16,), (16, 1)), ((4, 16, 1), (16,))):  # what broadcasting really gives
        assert crossed(a, b) == np.broadcast_shapes(a, b)
