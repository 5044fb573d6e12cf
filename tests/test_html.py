"""The picture of a model: the report's wiring, the layout, the SVG and HTML pages, and
the pages opened in headless Chromium."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402

import shapecheck  # noqa: E402
from shapecheck.report import Report  # noqa: E402


def nested_model() -> keras.Model:
    """A block model called twice, then a Sequential head and a skip connection."""
    i = keras.Input((None, 32))
    block = keras.Model(i, keras.layers.LayerNormalization()(keras.layers.Dense(32)(i)),
                        name="block")
    tokens = keras.Input((None, 16), name="tokens")
    h = keras.layers.Dense(32, name="embed")(tokens)
    h1 = block(h)
    h2 = block(h1)
    head = keras.Sequential([keras.layers.Dense(32, name="proj")], name="head")
    out = keras.layers.Add(name="skip")([head(h2), h1])
    return keras.Model(tokens, out, name="outer")


def test_layers_carry_their_sources_and_nested_models() -> None:
    doc = shapecheck.check_model(nested_model()).to_dict()
    layers = doc["files"][0]["models"][0]["layers"]
    names = [layer["name"] for layer in layers]
    assert names == ["tokens", "embed", "block", "block", "head", "skip"]
    # the block is called twice: each call is its own entry, wired to the right one
    assert layers[2]["sources"] == [[1, 0]] and layers[3]["sources"] == [[2, 0]]
    assert layers[5]["sources"] == [[4, 0], [2, 0]]  # head's output, the first block call
    assert [layer["model"] for layer in layers] == [None, None, "block", "block", "head",
                                                    None]
    again = Report.from_dict(doc).to_dict()
    assert again == doc


def test_reports_without_sources_still_load() -> None:
    doc = shapecheck.check_model(nested_model()).to_dict()
    for layer in doc["files"][0]["models"][0]["layers"]:
        del layer["sources"], layer["model"]
    report = Report.from_dict(doc)
    assert report.models[0].layers[5].sources == [] and report.models[0].layers[2].model is None
