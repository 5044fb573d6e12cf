"""Helpers of the SC5xx (layer configuration) and SC7xx (losses) rules, on real Keras objects."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras
import pytest
from keras import layers

from shapecheck.shapes.graph import LayerCall
from shapecheck.rules.layer_config import _axes, activation_name, id_bound, output_activation
from shapecheck.rules.losses import (Output, loss_name, losses_per_output,
                                     structure_problems)


def _call(op: object) -> LayerCall:
    return LayerCall(id=0, op=op, knode=None, name="c", cls=type(op).__name__,
                     inputs=[], outputs=[])


def _outs(*names: str) -> list[Output]:
    return [Output(n, _call(layers.Dense(1)), ("batch", 1)) for n in names]


@pytest.mark.parametrize("fn, want", [
    (keras.activations.softmax, "softmax"), ("softmax", "softmax"),
    (keras.activations.sigmoid, "sigmoid"), (keras.activations.log_softmax, "log_softmax"),
    (None, None),
])
def test_activation_name(fn, want):
    assert activation_name(fn) == want


@pytest.mark.parametrize("op, want", [
    (layers.Dense(1, activation="softmax"), ("softmax", -1)),
    (layers.TimeDistributed(layers.Dense(1, activation="softmax")), ("softmax", -1)),
    (layers.Conv2D(1, 1, activation="sigmoid"), ("sigmoid", -1)),
    (layers.Activation("softmax"), ("softmax", -1)),
    (layers.Softmax(axis=1), ("softmax", 1)),
    (layers.Dense(4), ("linear", -1)),
    (layers.LSTM(4), None),
    (layers.Flatten(), None),
])
def test_output_activation(op, want):
    assert output_activation(_call(op)) == want


def test_axes():
    assert _axes(-1, 3) == [2]
    assert _axes((1, 2), 4) == [1, 2]
    assert _axes(None, 3) is None
    assert _axes(5, 3) is None


def test_id_bound_of_lookups():
    assert id_bound(layers.TextVectorization(max_tokens=100))[0] == 100
    assert id_bound(layers.TextVectorization()) is None  # no vocabulary, no max_tokens
    assert id_bound(layers.TextVectorization(max_tokens=10, output_mode="multi_hot")) is None
    assert id_bound(layers.StringLookup(vocabulary=["a", "b", "c"]))[0] == 4  # + OOV
    assert id_bound(layers.StringLookup(vocabulary=["a", "b"], invert=True)) is None
    assert id_bound(layers.IntegerLookup(max_tokens=50))[0] == 50
    assert id_bound(layers.Hashing(num_bins=8))[0] == 8
    assert id_bound(layers.Hashing(num_bins=8, output_mode="one_hot")) is None
    adapted = layers.TextVectorization(max_tokens=1000)
    adapted.adapt(["a b c", "b c d"])
    assert id_bound(adapted)[0] == adapted.vocabulary_size() == 6  # 4 words, pad, OOV


@pytest.mark.parametrize("loss, want", [
    ("categorical_crossentropy", "categorical_crossentropy"),
    ("CategoricalCrossentropy", "categorical_crossentropy"),
    (keras.losses.SparseCategoricalCrossentropy(from_logits=True),
     "sparse_categorical_crossentropy"),
    (keras.losses.BinaryCrossentropy, "binary_crossentropy"),
    (keras.losses.binary_crossentropy, "binary_crossentropy"),
    ("no_such_loss", None),
])
def test_loss_name(loss, want):
    assert loss_name(loss) == want


def test_structure_problems():
    two = _outs("a", "b")
    assert structure_problems(["mse", "mse"], None, two, False) == []
    assert structure_problems({"a": "mse", "b": "mse"}, {"a": 1.0, "b": 2.0}, two, False) == []
    assert structure_problems("mse", [1.0], two, False) == []
    assert structure_problems({"a": "mse"}, None, two, True) == []  # dict outputs: a subset
    (p,) = structure_problems(["mse"] * 3, None, two, False)
    assert "3 losses for 2 outputs" in p.message and p.severity is None
    (p,) = structure_problems({"a": "mse", "c": "mse"}, None, two, False)
    assert '"c" is not an output' in p.message and '"b" has no entry' in p.message
    (p,) = structure_problems("mse", [1.0, 0.5], two, False)
    assert "one loss and 2 loss weights" in p.message
    (p,) = structure_problems(["mse", "mae"], None, _outs("a"), False)
    assert p.severity == "warning" and "only the first" in p.message


def test_losses_per_output():
    two = _outs("a", "b")
    assert [(o.name, x) for o, x in losses_per_output("mse", two)] == [("a", "mse"),
                                                                       ("b", "mse")]
    assert [(o.name, x) for o, x in losses_per_output({"b": "mae"}, two)] == [("b", "mae")]
    assert [(o.name, x) for o, x in losses_per_output(["mse", None], two)] == [("a", "mse")]
    assert losses_per_output(["mse"] * 3, two) == []


def test_weights_pair_with_losses():
    two = _outs("a", "b")
    assert structure_problems(["mse", "mae"], [1.0, 0.5], _outs("a"), False)[0].severity \
        == "warning"  # only the list of losses is reported
    (p,) = structure_problems(["mse", "mse"], [1.0], two, False)
    assert "2 losses and 1 loss weights" in p.message
    (p,) = structure_problems({"a": "mse", "b": "mse"}, {"a": 1.0, "x": 1.0}, two, False)
    assert p.message.startswith("compile's `loss_weights` dict")
