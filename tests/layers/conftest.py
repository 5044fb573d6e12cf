"""Shared helpers for single-layer oracle tests."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from typing import Any, Mapping, Sequence

import keras
import pytest

from shapecheck.shapes import dims
from shapecheck.shapes.infer import ModelShapes, infer_model
from shapecheck.verify.oracle import check_against_keras


def check(model: keras.Model, sizes: Mapping[str, Sequence[int]] | None = None,
          **kwargs: Any) -> ModelShapes:
    """Infer ``model``'s shapes; fail on any note or any disagreement with Keras."""
    shapes = infer_model(model)
    notes = [n for n in shapes.scope.notes]
    assert not notes, notes
    mismatches = check_against_keras(model, sizes=sizes, shapes=shapes, **kwargs)
    assert not mismatches, "\n".join(map(str, mismatches))
    return shapes


def model(layer: Any, shape: tuple, dtype: str = "float32") -> keras.Model:
    """``layer`` applied to one ``keras.Input(shape=shape)``."""
    inp = keras.Input(shape=shape, dtype=dtype)
    return keras.Model(inp, layer(inp))


def result(shapes: ModelShapes, layer: str) -> tuple:
    """The inferred (symbolic) first output shape of ``layer``."""
    for r in shapes.results:
        if r.call.name == layer:
            return r.shapes[0]
    raise KeyError(layer)


def outs(shapes: ModelShapes, layer: str) -> list[str]:
    """Every inferred output shape of ``layer`` as text."""
    for r in shapes.results:
        if r.call.name == layer:
            return [dims.fmt_shape(s) for s in r.shapes]
    raise KeyError(layer)


def out_shape(shapes: ModelShapes, layer: str, index: int = 0) -> str:
    """The inferred output shape of ``layer`` as text, e.g. ``(batch, T - 2, 8)``."""
    return outs(shapes, layer)[index]


def constraints(shapes: ModelShapes) -> list[tuple[str, str, bool | None]]:
    """The recorded constraints as ``(lhs, rhs, holds)`` text triples."""
    return [(dims.fmt(c.lhs), dims.fmt(c.rhs), c.holds) for c in shapes.scope.constraints]


@pytest.fixture(autouse=True)
def _clear_session():
    keras.backend.clear_session()
    yield
