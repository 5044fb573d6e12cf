"""``@shapecheck.returns``: contracts on what functions return, checked in tests (this
session has the plugin loaded), by the command (SC904), and free anywhere else.

As in ``test_contracts.py``, Keras is the oracle: a contract said to hold is run
through Keras at several sizes, and a failure at its witness, where Keras must differ.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import keras
import numpy as np
import pytest

import shapecheck
from shapecheck.script.runner import check_file
from tests.test_contracts import fits, keras_shapes, seed003

L = keras.layers
ROOT = Path(__file__).resolve().parent.parent
pytest_plugins = ["pytester"]
pytestmark = pytest.mark.filterwarnings("ignore:The structure of `inputs`")


def test_outside_tests_and_the_command_the_function_is_given_back_unchanged():
    code = textwrap.dedent("""
        import shapecheck

        def build(units):
            return units * 2

        marked = shapecheck.returns("batch T 4")(build)
        print(marked is build, build.__shapecheck_returns__.text, marked(3))
        print(sorted(m for m in ("keras", "tensorflow", "sympy") if m in sys.modules))
    """)
    out = subprocess.run([sys.executable, "-c", "import sys\n" + code], capture_output=True,
                         text=True, check=True, cwd=ROOT)
    lines = out.stdout.splitlines()
    assert lines[0] == 'True @shapecheck.returns("batch T 4") 6'
    assert lines[1] == "[]"  # neither Keras nor sympy is imported for it


def test_in_tests_a_builder_breaking_its_contract_fails_where_it_is_called():
    @shapecheck.returns("batch T 100", inputs="batch T")
    def build_seq2seq():
        return seed003(variable=False)  # RepeatVector(9) freezes the decoder's length

    with pytest.raises(shapecheck.ShapeContractError) as err:
        build_seq2seq()
    text = str(err.value)
    assert text.startswith("`test_in_tests_a_builder_breaking_its_contract_fails_where_it_"
                           "is_called.<locals>.build_seq2seq` returns model `seed003`, "
                           "against @shapecheck.returns(\"batch T 100\", inputs=\"batch T\"):"
                           " 1 of 2 shape(s) do not match")
    assert "  expected: (batch, T, 100)\n  got:      (batch, 9, 100)\n" in text
    (failure,) = err.value.failures
    (shape,) = keras_shapes(seed003(variable=False), failure.witness)
    assert not fits("batch T 100", err.value.bindings, failure.witness, shape)


def test_in_tests_a_builder_keeping_its_contract_returns_its_model():
    made = []

    @shapecheck.returns("batch T 100", inputs=["batch S", "batch T"])
    def build_seq2seq():
        made.append(seed003(variable=True))
        return made[-1]

    model = build_seq2seq()
    assert model is made[0]
    bound = shapecheck.assert_shapes(model, inputs=["batch S", "batch T"],
                                     outputs="batch T 100")
    for s, t in ((1, 9), (7, 2)):
        sizes = dict(zip((str(bound["S"]), str(bound["T"])), (s, t)))
        assert fits("batch T 100", bound, {**sizes, "batch": 2}, keras_shapes(model, sizes)[0])


@shapecheck.returns("batch T//2 C", x="batch T C")
def pool_valid(x):
    return L.MaxPooling1D(2)(x)


@shapecheck.returns("batch T//2 C", x="batch T C")
def pool_same(x):
    return L.MaxPooling1D(2, padding="same")(x)


def test_a_tensor_function_is_checked_for_every_length_through_its_arguments():
    x = keras.Input((None, 6))
    y = pool_valid(x)  # holds: floor(T/2)
    model = keras.Model(x, y)
    for t in (4, 5, 7):
        assert keras_shapes(model, {"T": t}) == [(2, t // 2, 6)]

    with pytest.raises(shapecheck.ShapeContractError) as err:
        pool_same(keras.Input((None, 6)))
    text = str(err.value)
    assert "  expected: (batch, T//2,         C)\n" \
           "  got:      (batch, ceiling(T/2), 6)\n" in text
    assert "differ for odd T, e.g. T = 1" in text
    (failure,) = err.value.failures
    t = failure.witness["T"]
    x = keras.Input((None, 6))
    assert keras_shapes(keras.Model(x, L.MaxPooling1D(2, padding="same")(x)),
                        {"T": t}) == [(2, (t + 1) // 2, 6)] != [(2, t // 2, 6)]


def test_a_tensor_function_mid_model_binds_to_the_tensors_it_is_given():
    x = keras.Input((None, 8))
    h = L.Conv1D(6, 3, strides=2, padding="same")(x)  # the argument is (batch, ceil(T/2), 6)
    with pytest.raises(shapecheck.ShapeContractError) as err:
        pool_same(h)
    assert "T = ceiling(T/2) (argument `x` axis 1)" in str(err.value)
    assert pool_valid(h).shape == (None, None, 6)


def test_arrays_are_checked_at_the_call_with_names_bound_across_arguments():
    @shapecheck.returns("n m", a="n k", b="k m")
    def matmul(a, b):
        return a @ b

    @shapecheck.returns("n m", a="n k", b="k m")
    def wrong(a, b):
        return (a @ b).T

    assert matmul(np.ones((2, 3)), np.ones((3, 5))).shape == (2, 5)
    with pytest.raises(shapecheck.ShapeContractError) as err:
        wrong(np.ones((2, 3)), np.ones((3, 5)))
    assert "the returned value: \"n m\"\n  expected: (n, m)\n  got:      (5, 2)" in str(err.value)
    assert err.value.bindings == {"n": 2, "k": 3, "m": 5}


def test_a_spec_mistake_is_said_where_the_decorator_is_written():
    with pytest.raises(shapecheck.SpecError, match="is not an axis"):
        shapecheck.returns("batch T/2")
    with pytest.raises(shapecheck.SpecError, match="has no argument `y`"):
        @shapecheck.returns("batch", y="batch")
        def f(x):
            return x


def test_a_value_that_cannot_be_checked_is_an_error_not_a_pass():
    @shapecheck.returns("batch 4")
    def count():
        return 4

    with pytest.raises(ValueError, match="cannot be checked: it returned a `int`"):
        count()


def test_the_plugin_checks_contracts_and_without_it_they_are_free(pytester):
    pytester.makepyfile(test_tagger="""
        import keras
        from keras import layers
        import shapecheck

        @shapecheck.returns("batch T 5", inputs="batch T 40")
        def build_tagger():
            frames = keras.Input((None, 40), name="frames")
            h = layers.Conv1D(16, 3, strides=2, padding="same")(frames)
            return keras.Model(frames, layers.Dense(5)(h), name="tagger")

        def test_tagger():
            model = build_tagger()
            assert model.name == "tagger"
    """)
    failed = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    failed.assert_outcomes(failed=1)
    failed.stdout.fnmatch_lines([
        "*model = build_tagger()",
        "E*ShapeContractError: `build_tagger` returns model `tagger`, against "
        "@shapecheck.returns(\"batch T 5\", inputs=\"batch T 40\"): 1 of 2 shape(s) do "
        "not match",
        "E*output `dense`: \"batch T 5\"",
        "E*expected: (batch, T,            5)",
        "E*got:      (batch, ceiling(T/2), 5)"])
    free = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-p", "no:shapecheck")
    free.assert_outcomes(passed=1)


@pytest.fixture(scope="module")
def bad_report():
    return check_file(str(ROOT / "fixtures" / "rules" / "SC904_bad.py"), timeout=300)


def test_the_command_reports_each_broken_contract_and_the_script_goes_on(bad_report):
    found = {d.line: d for d in bad_report.diagnostics}
    assert sorted(found) == [12, 17, 24] and {d.code for d in found.values()} == {"SC904"}
    tagger = found[17]
    assert tagger.model == "tagger" and tagger.layer == "dense"
    assert tagger.shapes == {"expected": ["batch", "T", 5],
                             "got": ["batch", "ceiling(T/2)", 5]}
    assert [(r.line, r.message) for r in tagger.related] == [
        (21, "output `dense` is made here"), (31, "`build_tagger` called here")]
    assert "differ for T >= 2" in tagger.message
    assert "(4, 25, 5)" in bad_report.output  # predict ran on: the script went on
    assert found[24].dims == {"rows": "8"}
    doc = json.loads(json.dumps(bad_report.to_dict()))
    assert {d["code"] for d in doc["diagnostics"]} == {"SC904"}


def test_the_command_says_when_a_contract_could_not_be_checked(tmp_path):
    script = tmp_path / "builder.py"
    script.write_text(textwrap.dedent("""
        import keras
        import shapecheck

        @shapecheck.returns("batch 4")
        def build(n):
            return [keras.layers.Dense(4) for _ in range(n)]

        for _ in range(3):
            layers = build(2)
        model = keras.Sequential([keras.Input((3,)), *layers])
    """))
    report = check_file(str(script), timeout=300)
    (d,) = report.diagnostics  # called three times from one line: said once
    assert (d.code, d.severity, d.line) == ("SC904", "info", 5)
    assert "the contract of `build` was not checked: it returned a `list`" in d.message
