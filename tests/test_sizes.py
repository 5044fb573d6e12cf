"""SC2xx helpers: minimum input sizes, windows, element counts, fitting targets."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras
import numpy as np
import pytest
from keras import layers

from shapecheck.shapes import dims
from shapecheck.shapes.infer import Requirement, infer_model
from shapecheck.rules.context import ModelContext
from shapecheck.rules.sizes import (element_count, fitting_target, frozen_reshape,
                                    reshape_never_fits, window_never_fits)
from shapecheck.rules.minimum import exact_fn, first_fit, minimum_sizes
from shapecheck.rules.windows import from_keras_text, too_short, window_axes


def ctx_of(model: keras.Model) -> ModelContext:
    return ModelContext(model, infer_model(model), lambda p: p)


def runs(model: keras.Model, shape: tuple) -> bool:
    """Whether ``model`` runs on zeros of ``shape`` and gives no empty axis."""
    try:
        out = model.predict(np.zeros(shape, "float32"), verbose=0)
    except Exception:  # noqa: BLE001 - Keras/TF raise various types
        return False
    return all(d > 0 for d in out.shape)


# --- minimum_sizes ----------------------------------------------------------------


def test_conv1d_stack_with_strides_pooling_and_dilation():
    x = keras.Input(shape=(None, 4))
    y = layers.Conv1D(8, 5, strides=2)(x)
    y = layers.MaxPooling1D(3)(y)
    y = layers.Conv1D(8, 3, dilation_rate=2)(y)
    model = keras.Model(x, y)
    last = model.layers[-1].name
    # T -> floor((T-5)/2)+1 >= 15 -> pooled >= 5 -> 5 - 4 >= 1: T >= 33.
    # (floats would round floor((1/3)*14 - 2/3) down to 3 and say 35.)
    assert minimum_sizes(ctx_of(model)) == {"T": (33, last)}
    assert not runs(model, (1, 32, 4))
    assert runs(model, (1, 33, 4))


def test_pooling_and_cropping_bound_separate_dims():
    x = keras.Input(shape=(None, None, 3))
    y = layers.Cropping2D(((2, 3), (0, 0)))(x)
    pool = layers.AveragePooling2D((2, 4))
    model = keras.Model(x, pool(y))
    # H: cropping leaves H - 5 >= 2 for the pool; W: the pool of 4.
    assert minimum_sizes(ctx_of(model)) == {"H": (7, pool.name),
                                            "W": (4, pool.name)}


def test_same_padding_sets_no_minimum():
    x = keras.Input(shape=(None, 8))
    y = layers.Conv1D(8, 7, padding="same", strides=4)(x)
    y = layers.MaxPooling1D(2, padding="same")(y)
    assert minimum_sizes(ctx_of(keras.Model(x, y))) == {}


def test_dims_of_two_inputs_together_are_left_out():
    a = keras.Input(shape=(None, 4))
    b = keras.Input(shape=(None, 4))
    y = layers.Conv1D(8, 9)(layers.Concatenate(axis=1)([a, b]))
    assert minimum_sizes(ctx_of(keras.Model([a, b], y))) == {}


def test_minimum_beyond_the_scan_is_found_by_bisection():
    x = keras.Input(shape=(None, 2))
    crop = layers.Cropping1D((3000, 2000))
    assert minimum_sizes(ctx_of(keras.Model(x, crop(x)))) == {"T": (5001, crop.name)}


def test_vgg16_needs_32():
    keras.backend.clear_session()
    model = keras.applications.VGG16(weights=None, include_top=False,
                                     input_shape=(None, None, 3))
    assert minimum_sizes(ctx_of(model)) == {"H": (32, "block5_pool"),
                                            "W": (32, "block5_pool")}


def test_inception_v3_needs_75_as_documented():
    keras.backend.clear_session()
    model = keras.applications.InceptionV3(weights=None, include_top=False,
                                           input_shape=(None, None, 3))
    found = minimum_sizes(ctx_of(model))
    assert found["H"][0] == 75 and found["W"][0] == 75
    assert not runs(model, (1, 74, 80, 3))
    assert runs(model, (1, 75, 80, 3))


def test_resnet50_fits_every_size():
    keras.backend.clear_session()
    model = keras.applications.ResNet50(weights=None, include_top=False,
                                        input_shape=(None, None, 3))
    assert minimum_sizes(ctx_of(model)) == {}


# --- exact evaluation and search ------------------------------------------------------


def test_exact_fn_does_not_round_like_floats():
    t = dims.symbol("T")
    expr = dims.floordiv(dims.sub(dims.floordiv(dims.sub(t, 5), 2), 2), 3)
    assert exact_fn(expr)({"T": 33}) == 4
    assert dims.evaluate(expr, {"T": 33}) == 4


def test_first_fit_scans_then_bisects():
    assert first_fit(lambda v: v >= 1) == 1
    assert first_fit(lambda v: v >= 17) == 17
    assert first_fit(lambda v: v >= 123_457) == 123_457
    assert first_fit(lambda v: False) is None


# --- windows --------------------------------------------------------------------------


def test_window_axes_of_a_dilated_conv():
    layer = layers.Conv2D(4, (3, 2), dilation_rate=(2, 1))
    (h, w) = window_axes(layer, (None, 4, 9, 3))
    assert (h.axis, h.span, h.out) == (1, 5, 0)
    assert (w.axis, w.span, w.out) == (2, 2, 8)
    (s,) = window_axes(layers.Conv1D(4, 3, strides=3), (None, 10, 2))
    assert (s.span, s.out) == (3, 3)
    assert too_short([h, w]) == [h]


def test_window_axes_channels_first_pooling_and_cropping():
    pool = layers.MaxPooling1D(4, data_format="channels_first")
    (p,) = window_axes(pool, (None, 100, 3))
    assert (p.axis, p.span, p.out) == (2, 4, 0)
    crop = layers.Cropping2D(((1, 1), (2, 2)))
    assert [(c.axis, c.span, c.out) for c in window_axes(crop, (None, 2, 9, 3))] == \
        [(1, 2, 0), (2, 4, 5)]
    assert window_axes(layers.Conv1D(4, 5, padding="same"), (None, 3, 8)) == []


def test_requirement_never_held_is_reported_where_keras_let_it_through():
    x = keras.Input(shape=(None, 4))
    conv = layers.Conv1D(8, 5)
    ctx = ctx_of(keras.Model(x, conv(x)))
    ctx.scope.requirements.append(Requirement(-3, conv.name, "the kernel must fit", False))
    (finding,) = list(window_never_fits(ctx))
    assert finding.code == "SC201" and finding.layer == conv.name


# --- reshapes -------------------------------------------------------------------------


def test_element_count_shows_the_product():
    assert element_count((None, 32, 32, 16)) == "32*32*16 = 16384"
    assert element_count((None, 784)) == "784"
    h = dims.symbol("H")
    assert element_count((None, h, 16)) == "H*16 = 16*H"


@pytest.mark.parametrize("total, target, fit", [
    (16384, (32, 500), (32, 512)),
    (784, (28, 28, 3), (28, 28, 1)),
    (16384, (-1, 500), (-1, 512)),
    (30, (4, 4), None),
    (12, (5, -1), (6, -1)),
])
def test_fitting_target(total, target, fit):
    got = fitting_target(total, target)
    assert got == fit
    if got is not None:
        known = int(np.prod([d for d in got if d != -1]))
        assert total % known == 0


def test_window_read_back_from_keras_text():
    conv = ("Computed output size would be zero or negative. Received `inputs shape=(None, 5, "
            "8)`, `kernel shape=(7, 8, 4)`, `dilation_rate=[1]`, `strides=(1,)`, "
            "`padding=valid`.")
    window, x, kernel = from_keras_text(conv)
    assert x == (None, 5, 8) and kernel == (7, 8, 4)
    (w,) = window_axes(window, (dims.symbol("batch"),) + x[1:], kernel)
    assert (w.axis, w.span, w.out) == (1, 7, -1)
    pool = ("Computed output size would be zero or negative. Received: `inputs.shape=[None 3 30 "
            "3]`, `pool_size=[4 4]`, `strides=(4, 4)`, `padding=valid`.")
    window, x, _ = from_keras_text(pool)
    assert x == (None, 3, 30, 3)
    assert [w.out for w in window_axes(window, x)] == [0, 7]
    assert from_keras_text("something else") is None


def test_literal_reshape_of_variable_input_is_frozen_or_never_fits():
    x = keras.Input(shape=(None, None, 16))
    fits_some = ctx_of(keras.Model(x, layers.Reshape((32, 512))(x)))
    assert [d.code for d in frozen_reshape(fits_some)] == ["SC203"]
    assert list(reshape_never_fits(fits_some)) == []
    y = keras.Input(shape=(None, None, 16))
    fits_none = ctx_of(keras.Model(y, layers.Reshape((10, 100))(y)))  # 16*H*W != 1000
    assert list(frozen_reshape(fits_none)) == []
    (finding,) = reshape_never_fits(fits_none)
    assert finding.code == "SC202" and "Reshape((-1, 16))" in finding.hint


# --- targets read from a symbolic shape -----------------------------------------------


@pytest.mark.parametrize("op", ["reshape", "broadcast_to"])
def test_a_target_read_from_a_symbolic_shape_is_found_and_keras_fails_on_it(op):
    from shapecheck.rules.sizes import shape_from_unknown_sizes

    x = keras.Input((None, 4, 8))
    size = keras.ops.shape(x)
    if op == "reshape":
        y = keras.ops.reshape(x, (size[0], size[1], 32))
        fixed = layers.Reshape((-1, 32))(x)
    else:
        y = keras.ops.broadcast_to(x[:, :1], (size[0], size[1], 4, 8))
        fixed = x[:, :1] + keras.ops.zeros_like(x)
    (d,) = shape_from_unknown_sizes(ctx_of(keras.Model(x, y)))
    assert d.code == "SC202" and "(None, None, " in d.message
    assert not runs(keras.Model(x, y), (2, 5, 4, 8))  # Keras fails on the first batch
    assert list(shape_from_unknown_sizes(ctx_of(keras.Model(x, fixed)))) == []
    assert runs(keras.Model(x, fixed), (2, 5, 4, 8))
