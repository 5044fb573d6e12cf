"""The inference engine on whole graphs: naming, sharing, nesting, depth, fallback."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import sys

import keras
import pytest
import sympy as sp
from keras import layers

import shapecheck
from shapecheck.shapes import dims
from shapecheck.shapes.infer import infer_model
from shapecheck.verify.oracle import check_against_keras


def shapes_by_name(model: keras.Model) -> dict[str, list[str]]:
    result = infer_model(model)
    return {r.call.name: [dims.fmt_shape(s) for s in r.shapes] for r in result.results}


def test_unknown_dims_are_named_by_input_and_share_one_batch() -> None:
    a = keras.Input((None, 8), name="enc")
    b = keras.Input((None, None, 3), name="img")
    model = keras.Model([a, b], [layers.Dense(4)(a), layers.Dense(4)(b)])
    got = shapes_by_name(model)
    assert got["enc"] == ["(batch, T_enc, 8)"]
    assert got["img"] == ["(batch, H_img, W_img, 3)"]


def test_shared_layer_called_twice_is_two_graph_nodes() -> None:
    shared = layers.Dense(3, name="shared")
    a = keras.Input((None, 5), name="a")
    b = keras.Input((5,), name="b")
    model = keras.Model([a, b], [shared(a), shared(b)])
    result = infer_model(model)
    calls = [r for r in result.results if r.call.name == "shared"]
    assert [dims.fmt_shape(r.shapes[0]) for r in calls] == ["(batch, T, 3)", "(batch, 3)"]
    assert result.graph.graph.number_of_nodes() == 4


def test_keras_ops_calls_are_graph_nodes() -> None:
    x = keras.Input((None, 6), name="x")
    y = keras.ops.expand_dims(x, 1)
    model = keras.Model(x, y)
    result = infer_model(model)
    assert [r.call.cls for r in result.results] == ["InputLayer", "ExpandDims"]
    assert dims.fmt_shape(result.results[1].shapes[0]) == "(batch, 1, T, 6)"


def test_nested_model_gets_the_callers_dims() -> None:
    inner_in = keras.Input((None, 4), name="inner_in")
    inner = keras.Model(inner_in, layers.Dense(2)(inner_in), name="inner")
    outer_in = keras.Input((None, 4), name="outer_in")
    model = keras.Model(outer_in, inner(outer_in))
    assert shapes_by_name(model)["inner"] == ["(batch, T, 2)"]
    assert not check_against_keras(model)


class Halve(layers.Layer):
    """A custom layer with no rule: shapecheck asks Keras at probe sizes."""

    def call(self, x):
        return x[:, ::2, :]


def test_custom_layer_output_stays_symbolic_through_the_probe() -> None:
    x = keras.Input((None, 3), name="x")
    y = Halve(name="halve")(x)
    z = layers.Lambda(lambda t: keras.ops.concatenate([t, t], axis=1), name="twice")(y)
    model = keras.Model(x, z)
    result = infer_model(model)
    assert not result.scope.notes
    halve = next(r for r in result.results if r.call.name == "halve").shapes[0]
    T = dims.symbol("T")
    assert dims.equal(halve[1], sp.ceiling(T / 2)) is True
    assert not check_against_keras(model, shapes=result)


def test_deep_chain_beyond_python_recursion_limit() -> None:
    depth = 3000
    limit = sys.getrecursionlimit()
    x = keras.Input((4,), name="x")
    y = x
    for _ in range(depth):
        y = layers.Activation("linear")(y)
    sys.setrecursionlimit(max(limit, 50_000))  # Keras's own graph walk recurses
    try:
        model = keras.Model(x, y)
    finally:
        sys.setrecursionlimit(limit)
    sys.setrecursionlimit(400)  # ours must not need it
    try:
        result = infer_model(model)
    finally:
        sys.setrecursionlimit(limit)
    assert len(result.results) == depth + 1
    assert dims.fmt_shape(result.results[-1].shapes[0]) == "(batch, 4)"


def test_check_model_report_and_bindings() -> None:
    x = keras.Input((None, 6), name="x")
    y = layers.Dense(2, name="head")(x)
    model = keras.Model(x, y, name="m")
    doc = shapecheck.check_model(model).to_dict()
    assert doc["schema"] == "shapecheck/1"
    [f] = doc["files"]
    assert f["path"] is None and f["status"] == "clean"
    [head] = [entry for entry in f["models"][0]["layers"] if entry["name"] == "head"]
    assert head["output_shapes"] == [["batch", "T", 2]]
    bound = shapecheck.check_model(model, dims={"T": 20}).to_dict()
    [head] = [e for e in bound["files"][0]["models"][0]["layers"] if e["name"] == "head"]
    assert head["output_shapes"] == [["batch", 20, 2]]


@pytest.fixture(autouse=True)
def _clear_session():
    keras.backend.clear_session()
    yield
