"""SC610 channels-first-data: data laid out for the other data format, and no false alarms."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from types import SimpleNamespace
from typing import Any

import keras
import numpy as np
import pytest
from keras import layers

import shapecheck
from shapecheck.shapes.graph import LayerCall
from shapecheck.rules.layout import Layout, misread_axes, spatial_layout

pytestmark = pytest.mark.filterwarnings(
    "ignore:The structure of `inputs` doesn't match:UserWarning")


def _findings(model: Any, data: Any = None, targets: Any = None) -> list[Any]:
    report = (shapecheck.check_model(model) if data is None
              else shapecheck.check_model(model, data=data, targets=targets))
    [f] = report.files
    return f.diagnostics


def _codes(model: Any, data: Any = None, targets: Any = None) -> list[str]:
    return sorted(d.code for d in _findings(model, data, targets))


def _conv2d_model(shape: tuple, **conv: Any) -> keras.Model:
    inputs = keras.Input(shape=shape)
    x = layers.Conv2D(8, 3, padding="same", activation="relu", **conv)(inputs)
    x = layers.GlobalAveragePooling2D(data_format=conv.get("data_format"))(x)
    return keras.Model(inputs, layers.Dense(10, activation="softmax")(x))


def _call(cls: str, **op: Any) -> LayerCall:
    return LayerCall(id=1, op=SimpleNamespace(**op), knode=object(), name=cls.lower(),
                     cls=cls, inputs=[0], outputs=[2])


# --- the shapes the rule judges --------------------------------------------------------------


LAST_2D = _call("Conv2D", data_format="channels_last", kernel_size=(3, 3))
FIRST_2D = _call("Conv2D", data_format="channels_first", kernel_size=(3, 3))
LAST_1D = _call("Conv1D", data_format="channels_last", kernel_size=(5,), dilation_rate=(1,))


@pytest.mark.parametrize("call, shape, axes", [
    (LAST_2D, (None, 3, 64, 64), (1, 3)),
    (LAST_2D, (None, 1, 28, 28), (1, 3)),
    (LAST_2D, (None, 4, 32, 48), (1, 3)),
    (FIRST_2D, (None, 64, 64, 3), (3, 1)),
    (LAST_1D, (None, 3, 128), (1, 2)),
])
def test_channels_first_looking_shapes_are_recognised(call, shape, axes):
    layout = spatial_layout(call)
    assert layout is not None
    assert misread_axes(shape, layout) == axes


@pytest.mark.parametrize("call, shape", [
    (LAST_2D, (None, 64, 64, 3)),  # channels-last images
    (LAST_2D, (None, 4, 4, 512)),  # a backbone's feature maps: 4 x 4 is small on both sides
    (LAST_2D, (None, 3, 64, 8)),  # the last axis is not several times axis 1
    (LAST_2D, (None, 3, 5, 64)),  # one side too small for an image
    (LAST_2D, (None, 2, 64, 64)),  # 2 is no usual channel count
    (FIRST_2D, (None, 3, 64, 64)),  # channels-first images into a channels-first layer
    (LAST_2D, (None, None, 64, 64)),  # an unknown size cannot be judged
    (LAST_1D, (None, 3, 24)),  # a short sequence of a few wide steps
    (LAST_1D, (None, 128, 3)),
])
def test_shapes_that_read_as_the_layer_says_are_left_alone(call, shape):
    layout = spatial_layout(call)
    assert layout is not None and misread_axes(shape, layout) is None


def test_a_pointwise_conv1d_over_one_step_is_a_dense_and_left_alone():
    pointwise = spatial_layout(_call("Conv1D", data_format="channels_last", kernel_size=(1,),
                                     dilation_rate=(1,)))
    assert pointwise is not None and misread_axes((None, 1, 64), pointwise) is None
    assert misread_axes((None, 1, 64), spatial_layout(LAST_1D)) == (1, 2)


@pytest.mark.parametrize("cls", ["GlobalAveragePooling1D", "UpSampling1D", "LSTM", "Dense",
                                 "ConvLSTM2D", "Permute"])
def test_layers_that_do_not_decide_an_image_layout(cls):
    assert spatial_layout(_call(cls, data_format="channels_last", kernel_size=(3,))) is None


def test_layout_of_a_3d_conv():
    layout = spatial_layout(_call("Conv3D", data_format="channels_last",
                                  kernel_size=(3, 3, 3)))
    assert layout == Layout(layout.call, "channels_last", 3)
    assert misread_axes((None, 1, 16, 32, 32), layout) == (1, 4)


# --- declared by the model's input -------------------------------------------------------------


def test_declared_channels_first_input_is_reported_at_the_input_with_axis_names():
    [d] = _findings(_conv2d_model((3, 64, 64)))
    assert (d.code, d.severity) == ("SC610", "warning")
    assert (d.layer or "").startswith("input_layer")  # Keras numbers names per process
    assert "axis 1 (height) is 3, axis 3 (channels) is 64" in d.message
    assert "channels-first data" in d.message
    assert "keras.Input(shape=(64, 64, 3))" in d.hint
    assert "np.transpose(x, (0, 2, 3, 1))" in d.hint
    assert "tf.transpose(x, (1, 2, 0))" in d.hint and "Dataset.map" in d.hint
    assert 'data_format="channels_first"' in d.hint


def test_channels_last_images_into_a_channels_first_layer_are_reported():
    [d] = _findings(_conv2d_model((64, 64, 3), data_format="channels_first"))
    assert d.code == "SC610"
    assert "axis 3 (width) is 3, axis 1 (channels) is 64" in d.message
    assert "channels-last data" in d.message
    assert "keras.Input(shape=(3, 64, 64))" in d.hint
    assert 'data_format="channels_last"' in d.hint


def test_sensors_first_into_a_conv1d_are_reported_in_steps():
    inputs = keras.Input(shape=(3, 128))
    x = layers.Conv1D(16, 5, padding="same")(inputs)
    [d] = _findings(keras.Model(inputs, layers.GlobalAveragePooling1D()(x)))
    assert d.code == "SC610" and "axis 1 (steps) is 3, axis 2 (channels) is 128" in d.message


def test_the_first_spatial_layer_is_found_past_rescaling_and_arithmetic():
    inputs = keras.Input(shape=(1, 28, 28))
    x = layers.Rescaling(1 / 255)(inputs / 2.0)
    x = layers.BatchNormalization()(x)
    x = layers.MaxPooling2D((1, 2))(x)
    x = layers.Conv2D(4, 3, padding="same")(x)
    assert _codes(keras.Model(inputs, x)) == ["SC610"]


# --- fed by the data --------------------------------------------------------------------------


def _unbuilt_cnn(**conv: Any) -> keras.Sequential:
    return keras.Sequential([layers.Conv2D(8, 3, padding="same", **conv),
                             layers.GlobalAveragePooling2D(data_format=conv.get("data_format")),
                             layers.Dense(10, activation="softmax")])


def test_channels_first_arrays_into_a_sequential_built_from_them():
    images, labels = np.zeros((16, 3, 64, 64), "float32"), np.zeros(16, "int32")
    [d] = _findings(_unbuilt_cnn(), images, labels)
    assert d.code == "SC610" and d.data is not None
    assert "x is (16, 3, 64, 64)" in d.message
    assert "axis 1 (height) is 3, axis 3 (channels) is 64" in d.message
    assert "gives (16, 64, 64, 3)" in d.hint


def test_channels_first_batches_from_tf_data():
    import tensorflow as tf

    ds = tf.data.Dataset.from_tensor_slices(
        (np.zeros((16, 1, 28, 28), "float32"), np.zeros(16, "int32"))).batch(8)
    [d] = _findings(_unbuilt_cnn(), ds)
    assert d.code == "SC610" and "axis 1 (height) is 1, axis 3 (channels) is 28" in d.message


def test_a_declared_shape_is_reported_once_not_again_for_its_data():
    images, labels = np.zeros((16, 3, 64, 64), "float32"), np.zeros(16, "int32")
    model = _conv2d_model((3, 64, 64))
    found = _findings(model, images, labels)
    assert [(d.code, d.data is None) for d in found] == [("SC610", True)]


# --- no false alarms -------------------------------------------------------------------------


def test_sequence_data_into_an_lstm_or_dense_is_left_alone():
    seq = np.zeros((16, 3, 128), "float32")
    inputs = keras.Input(shape=(3, 128))
    lstm = keras.Model(inputs, layers.Dense(1)(layers.LSTM(8)(inputs)))
    assert _codes(lstm, seq, np.zeros((16, 1))) == []
    unbuilt = keras.Sequential([layers.LSTM(8), layers.Dense(1)])
    assert _codes(unbuilt, seq, np.zeros((16, 1))) == []
    inputs = keras.Input(shape=(3, 128))
    dense = keras.Model(inputs, layers.Dense(4)(inputs))
    assert _codes(dense, seq, np.zeros((16, 3, 4))) == []


def test_channels_first_data_into_channels_first_layers_is_left_alone():
    images, labels = np.zeros((16, 3, 64, 64), "float32"), np.zeros(16, "int32")
    assert _codes(_conv2d_model((3, 64, 64), data_format="channels_first"),
                  images, labels) == []
    assert _codes(_unbuilt_cnn(data_format="channels_first"), images, labels) == []


def test_axes_moved_inside_the_model_are_left_alone():
    inputs = keras.Input(shape=(3, 64, 64))
    x = layers.Permute((2, 3, 1))(inputs)
    x = layers.Conv2D(8, 3, padding="same")(x)
    assert _codes(keras.Model(inputs, x)) == []


def test_feature_maps_and_a_pointwise_conv1d_are_left_alone():
    features = keras.Input(shape=(4, 4, 512))
    x = layers.Conv2D(64, 1)(features)
    assert _codes(keras.Model(features, x)) == []
    rows = keras.Input(shape=(1, 64))
    y = layers.Conv1D(16, 1)(rows)
    assert _codes(keras.Model(rows, y)) == []


def test_mobilenet_v2_fed_channels_last_images_is_clean():
    model = keras.applications.MobileNetV2(weights=None, input_shape=(96, 96, 3), classes=5)
    images, labels = np.zeros((4, 96, 96, 3), "float32"), np.zeros(4, "int32")
    assert [d for d in _findings(model, images, labels) if d.code == "SC610"] == []


# --- what other rules already say ------------------------------------------------------------


def test_a_fixed_channel_count_the_data_breaks_is_sc603_alone():
    images, labels = np.zeros((16, 3, 64, 64), "float32"), np.zeros(16, "int32")
    assert _codes(_conv2d_model((64, 64, 3)), images, labels) == ["SC603"]


def test_a_window_that_does_not_fit_is_sc201_alone_with_axes_named(tmp_path):
    # Keras refuses the layers: SC201 explains it (its hint says channels-first), not SC610.
    script = tmp_path / "short.py"
    script.write_text(
        "import keras\n"
        "from keras import layers\n"
        "x = keras.Input((3, 64, 64))\n"
        "y = layers.Conv2D(4, 5)(x)\n"
        "s = keras.Input((3, 100))\n"
        "t = layers.Conv1D(4, 5)(s)\n")
    [f] = shapecheck.check_script(str(script)).files
    found = {d.line: d for d in f.diagnostics}
    assert sorted((d.code, d.line) for d in f.diagnostics) == [("SC201", 4), ("SC201", 6)]
    assert "along axis 1 (height) of (batch, 3, 64, 64)" in found[4].message
    assert "along axis 1 (steps) of (batch, 3, 100)" in found[6].message
