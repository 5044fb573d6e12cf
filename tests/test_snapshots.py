"""Shape snapshots (``shapecheck.snapshot(model)``) and failed shape contracts as the
pytest plugin shows them, in pytest sessions of their own."""

from __future__ import annotations

import pytest

from shapecheck.shapes.snapshots import canonical_names, compare, file_name

pytest_plugins = ["pytester"]

SNAPSHOT = "__snapshots__/test_encoder/test_encoder_shapes.txt"


def encoder_test(stride: int, before: str = "") -> str:
    """A test module snapshotting an encoder whose Conv1D has ``stride``; ``before``
    runs first (layers built there shift Keras's automatic names)."""
    return f"""
        import keras
        from keras import layers

        {before}

        def build():
            x = keras.Input((None, 80), name="frames")
            h = layers.Conv1D(64, 3, strides={stride}, padding="same", name="conv")(x)
            return keras.Model(x, layers.Dense(10)(h), name="encoder")

        def test_encoder_shapes(shapecheck):
            shapecheck.snapshot(build())
    """


@pytest.fixture
def project(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    monkeypatch.delenv("CI", raising=False)  # a run in CI is tested on its own
    return pytester


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest_subprocess("-p", "no:cacheprovider", *args)


def test_snapshot_written_kept_failed_on_a_change_and_updated(project):
    project.makepyfile(test_encoder=encoder_test(stride=1))
    first = run(project)
    first.assert_outcomes(passed=1)
    first.stdout.fnmatch_lines(["*= shapecheck snapshots =*", f"written {SNAPSHOT}"])
    assert (project.path / SNAPSHOT).read_text().splitlines()[2:] == [
        "frames: InputLayer -> (batch, T, 80)",
        "conv: Conv1D -> (batch, T, 64)",
        "dense: Dense -> (batch, T, 10)",
        "dim batch: the batch size, shared by all inputs",
        "dim T: axis 1 of input `frames`"]

    # the same model, after other unnamed layers were made: Keras names its Dense
    # `dense_3` now, and the snapshot still holds
    project.makepyfile(test_encoder=encoder_test(
        stride=1, before="unused = [layers.Dense(1) for _ in range(3)]"))
    second = run(project)
    second.assert_outcomes(passed=1)
    assert "shapecheck snapshots" not in second.stdout.str()

    # a refactor halves the time axis: the test fails, naming each layer that changed
    project.makepyfile(test_encoder=encoder_test(stride=2))
    changed = run(project)
    changed.assert_outcomes(failed=1)
    changed.stdout.fnmatch_lines([
        f"*shapecheck: the shapes of model `encoder` changed from the snapshot {SNAPSHOT}:",
        "  layer `conv` (Conv1D):",
        "    was (batch, T,            64)",
        "    now (batch, ceiling(T/2), 64)",
        "                ^^^^^^^^^^^^",
        "  layer `dense` (Dense):",
        "    was (batch, T,            10)",
        "    now (batch, ceiling(T/2), 10)",
        "                ^^^^^^^^^^^^",
        "If the change is meant, rewrite it: pytest --shapecheck-update"])
    assert "Traceback" not in changed.stdout.str()
    assert "(batch, T, 64)" in (project.path / SNAPSHOT).read_text()  # kept as it was

    updated = run(project, "--shapecheck-update")
    updated.assert_outcomes(passed=1)
    updated.stdout.fnmatch_lines(["*= shapecheck snapshots =*", f"updated {SNAPSHOT}"])
    assert "conv: Conv1D -> (batch, ceiling(T/2), 64)" in \
        (project.path / SNAPSHOT).read_text()
    run(project).assert_outcomes(passed=1)


def test_a_snapshot_first_written_in_ci_fails_the_test(project, monkeypatch):
    monkeypatch.setenv("CI", "true")
    project.makepyfile(test_encoder=encoder_test(stride=1))
    result = run(project)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([
        "*shapecheck: no shape snapshot was committed for this test; written now to "
        f"{SNAPSHOT} (CI is set, so the test fails). Run the test locally and commit "
        "the file.",
        "*= shapecheck snapshots =*", f"written {SNAPSHOT}"])
    assert (project.path / SNAPSHOT).exists()


def test_a_failed_contract_is_shown_at_the_tests_line(project):
    project.makepyfile(test_contract="""
        import keras
        from keras import layers

        import shapecheck

        def test_encoder_keeps_the_time_axis():
            x = keras.Input((None, 80), name="frames")
            h = layers.Conv1D(64, 3, strides=2, padding="same", name="conv")(x)
            encoder = keras.Model(x, h, name="encoder")
            shapecheck.assert_shapes(encoder, inputs="batch T 80", outputs="batch T 64")
    """)
    result = run(project)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([
        '>       shapecheck.assert_shapes(encoder, inputs="batch T 80", outputs="batch T 64")',
        "E       shapecheck.shapes.contracts.ShapeContractError: shape contract of model "
        "`encoder`: 1 of 2 shape(s) do not match",
        'E       output `conv`: "batch T 64"',
        "E         expected: (batch, T,            64)",
        "E         got:      (batch, ceiling(T/2), 64)",
        "test_contract.py:10: ShapeContractError"])
    assert "contracts.py" not in result.stdout.str()  # none of shapecheck's own frames
    assert "raise_failures" not in result.stdout.str()


# --- the text, without a test session -----------------------------------------------


def test_unnamed_layers_are_numbered_within_the_model():
    layers = [("input_layer_4", "InputLayer"), ("dense_7", "Dense"), ("dense", "Conv1D"),
              ("dense_9", "Dense"), ("head", "Dense"), ("conv1d", "Conv1D")]
    # Keras's names in a fresh process, in order; names of the user's stay, and are
    # never given twice (a Conv1D the user called `dense`)
    assert canonical_names(layers) == {"input_layer_4": "input_layer", "dense_7": "dense_1",
                                       "dense_9": "dense_2"}


def test_a_new_or_gone_layer_and_a_changed_dim_are_named():
    old = "x: InputLayer -> (batch, T, 8)\nrnn: GRU -> (batch, 16)\ndim T: axis 1 of input `x`\n"
    new = ("x: InputLayer -> (batch, T, 8)\nrnn: GRU -> (batch, T, 16), (batch, 16)\n"
           "pool: GlobalAveragePooling1D -> (batch, 16)\n"
           "dim T: axis 1 of input `x`; needs T >= 3 (`conv`)\n")
    assert compare(old, new) == [
        "  layer `rnn` (GRU):", "    was (batch, 16)", "    now (batch, T, 16), (batch, 16)",
        "  layer `pool` (GlobalAveragePooling1D): new, (batch, 16)",
        "  dim T:", "    was axis 1 of input `x`",
        "    now axis 1 of input `x`; needs T >= 3 (`conv`)"]
    assert compare(new, new) == []


def test_snapshot_files_are_named_after_the_test():
    assert file_name("test_x", 0, None) == "test_x.txt"
    assert file_name("test_x", 1, None) == "test_x.1.txt"
    assert file_name("TestA.test_x[a/b]", 0, "decoder") == "TestA.test_x[a_b].decoder.txt"
