"""The pytest plugin, run in pytest sessions of their own (pytester)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fixtures"
BUGGY = "seed001_gru_add.py"  # SC303 at `add`, layer names gru1 / gru1_b
CLEAN = "clean_sequential_text.py"


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    models = pytester.mkdir("models")
    for name in (BUGGY, CLEAN):
        shutil.copy(FIXTURES / name, models / name)
    pytester.makepyprojecttoml('[tool.shapecheck]\npaths = ["models"]\n')
    return pytester


def test_fixture_fails_a_test_on_a_buggy_script_with_the_layer_name(project):
    project.makepyfile(test_models=f"""
        def test_buggy(shapecheck):
            shapecheck.check_script("models/{BUGGY}")

        def test_clean(shapecheck):
            report = shapecheck.check_script("models/{CLEAN}")
            assert report.models and not report.diagnostics
    """)
    result = project.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*shapecheck found shape errors in models/*",
                                 "*SC303 rank-broadcast*", "*gru1*"])
    assert "Traceback" not in result.stdout.str()


def test_fixture_checks_a_model_built_in_the_test(project):
    project.makepyfile(test_model="""
        import keras
        from keras import layers

        def test_broadcast(shapecheck):
            x = keras.Input((32, 8))
            a = layers.GRU(16, name="last_step")(x)
            b = layers.GRU(16, return_sequences=True)(x)
            shapecheck.check_model(keras.Model(x, layers.add([a, b])))

        def test_clean(shapecheck):
            x = keras.Input((32, 8))
            report = shapecheck.check_model(keras.Model(x, layers.GRU(4)(x)))
            assert report.diagnostics == []
    """)
    result = project.runpytest_subprocess()
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*SC303*last_step*"])


def test_shapecheck_option_collects_one_item_per_script(project):
    result = project.runpytest_subprocess("--shapecheck", "-v")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines([f"*models/{CLEAN}::shapecheck PASSED*",
                                 f"*models/{BUGGY}::shapecheck FAILED*"])
    # the failure is headed by its script, not by the item's name twice
    result.stdout.fnmatch_lines([f"*_ shapecheck models/{BUGGY} _*", "*SC303*"])
    assert "shapecheck shapecheck" not in result.stdout.str()


def test_items_spread_over_xdist_workers(project):
    result = project.runpytest_subprocess("--shapecheck", "-n", "2")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*SC303*"])


def test_options_reach_the_items(project):
    result = project.runpytest_subprocess("--shapecheck", "--shapecheck-ignore", "SC3")
    result.assert_outcomes(passed=2)


def test_strict_fails_the_item_of_a_model_not_checked(pytester):
    models = pytester.mkdir("models")
    (models / "scorer.py").write_text(
        "import keras\n\n\nclass Scorer(keras.Model):\n"
        "    def call(self, x):\n        return x\n\n\nmodel = Scorer()\n")
    pytester.makepyprojecttoml('[tool.shapecheck]\npaths = ["models"]\n')
    result = pytester.runpytest_subprocess("--shapecheck")
    result.assert_outcomes(passed=1)  # told, not failed, without strict
    result = pytester.runpytest_subprocess("--shapecheck", "--shapecheck-strict")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*model `scorer` (subclassed)*not checked*",
                                 "*unchecked: 1 file, 1 model; no findings, 1 model not "
                                 "checked*"])


def test_shapecheck_without_paths_is_a_usage_error(pytester):
    pytester.makepyprojecttoml("[tool.shapecheck]\nfail-on = \"warning\"\n")
    result = pytester.runpytest_subprocess("--shapecheck")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*no model scripts*paths*"])
