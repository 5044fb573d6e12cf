"""A Sequential model without an input shape is checked as Keras builds it in `fit`."""

from __future__ import annotations

from pathlib import Path

import shapecheck

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"


def test_tutorial_models_without_input_check_clean() -> None:
    [f] = shapecheck.check_script(str(FIXTURES / "sequential_no_input.py")).files
    assert f.error is None, f.error
    assert len(f.models) == 5
    assert [d.code for d in f.diagnostics] == []


def test_models_without_input_keras_fails_on_are_found() -> None:
    [f] = shapecheck.check_script(str(FIXTURES / "sequential_no_input_errors.py")).files
    codes = sorted((d.code, d.line) for d in f.diagnostics if d.severity == "error")
    assert codes == [("SC102", 6), ("SC703", 11)]  # at the LSTM; at the Dense(10)


def test_model_built_from_data_still_runs_for_the_script(tmp_path: Path) -> None:
    # The trial builds (time axis unknown first) must leave every layer whole: an
    # LSTM cell marked built by a refused trial would lose its kernel for good.
    script = tmp_path / "rnn.py"
    script.write_text(
        "import numpy as np, keras\n"
        "m = keras.Sequential([keras.layers.LSTM(8), keras.layers.Dense(1)])\n"
        "m.compile('adam', 'mse')\n"
        "m.fit(np.random.rand(32, 10, 3), np.random.rand(32, 1))\n"
        "out = m(np.random.rand(4, 12, 3).astype('float32'))\n"
        "assert tuple(out.shape) == (4, 1), out.shape\n")
    [f] = shapecheck.check_script(str(script)).files
    assert f.error is None, f.error
    assert len(f.models) == 1 and f.diagnostics == []


def test_run_confirms_nothing_on_a_model_that_ran() -> None:
    from shapecheck.verify.plans import RunOptions
    from shapecheck.script.runner import check_files_together

    names = ["sequential_no_input.py", "sequential_no_input_errors.py"]
    clean, errors = check_files_together([str(FIXTURES / n) for n in names], timeout=900,
                                         run=RunOptions(device="cpu"))
    assert clean.diagnostics == []
    runs = [e for m in clean.models for e in (m.run or {}).get("executions", [])]
    assert runs and all(e.get("error") is None for e in runs)  # Keras runs each as checked
    for d in errors.diagnostics:
        model = next(m for m in errors.models if m.name == d.model)
        # the data the finding names (a call of the model on data runs forward only)
        ran = [e for e in (model.run or {}).get("executions", []) if e.get("error") is None
               and set(e.get("stages", [])) >= {"forward", "loss"}]
        if d.confirmed:
            assert not ran, (d.code, d.line, d.run)  # seen only where the model failed
