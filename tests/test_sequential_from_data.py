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
