"""Convolution rules against Keras (Conv, ConvTranspose, SeparableConv, DepthwiseConv)."""

from __future__ import annotations

import keras
import pytest
import sympy as sp

from shapecheck.shapes import dims
from shapecheck.shapes.infer import Scope, infer_model
from shapecheck.shapes.layers.registry import ShapeError, Sym

from .conftest import check, model, out_shape, result

pytestmark = pytest.mark.filterwarnings("ignore:The structure of `inputs`")

L = keras.layers


def same_expr(d, text, names=("T", "H", "W", "D", "C")):
    """``d`` equals the expression ``text`` for every size of the named dims."""
    want = sp.sympify(text, locals={n: dims.symbol(n) for n in names})
    if sp.simplify(sp.sympify(d) - want) == 0:
        return True
    free = sorted(sp.sympify(d).free_symbols | want.free_symbols, key=str)
    for v in range(1, 60):
        subs = {s: v + 7 * i for i, s in enumerate(free)}
        if sp.sympify(d).subs(subs) != want.subs(subs):
            return False
    return True


SIZES_1D = {"T": [16, 21, 27]}
SIZES_2D = {"H": [12, 15, 17], "W": [13, 10, 19]}
SIZES_3D = {"D": [6, 7, 9], "H": [8, 9, 11], "W": [7, 10, 12]}

# --- Conv1D/2D/3D -------------------------------------------------------------------

CONV1D = [
    dict(filters=5, kernel_size=2),
    dict(filters=6, kernel_size=2, padding="same", dilation_rate=2, groups=2),
    dict(filters=6, kernel_size=2, padding="causal", dilation_rate=2, groups=2),
    dict(filters=6, kernel_size=2, strides=2, groups=2),
    dict(filters=3, kernel_size=3, strides=2),
    dict(filters=3, kernel_size=4, strides=3, padding="same"),
    dict(filters=3, kernel_size=5, strides=3, padding="causal"),
    dict(filters=3, kernel_size=3, dilation_rate=3),
    dict(filters=4, kernel_size=3, strides=2, data_format="channels_first"),
    dict(filters=4, kernel_size=3, padding="causal", dilation_rate=2,
         data_format="channels_first"),
]


@pytest.mark.parametrize("kwargs", CONV1D)
@pytest.mark.parametrize("length", [None, 19])
def test_conv1d(kwargs, length):
    cf = kwargs.get("data_format") == "channels_first"
    shape = (4, length) if cf else (length, 4)
    check(model(L.Conv1D(**kwargs), shape), sizes=SIZES_1D)


CONV2D = [
    dict(filters=5, kernel_size=2),
    dict(filters=6, kernel_size=2, padding="same", dilation_rate=(2, 2), groups=2),
    dict(filters=6, kernel_size=(2, 2), strides=(2, 1), groups=2),
    dict(filters=3, kernel_size=(3, 5), strides=(3, 2), padding="same"),
    dict(filters=3, kernel_size=(3, 1), dilation_rate=(2, 1)),
    dict(filters=4, kernel_size=3, strides=2, data_format="channels_first"),
    dict(filters=4, kernel_size=(2, 3), padding="same", strides=(2, 3),
         data_format="channels_first"),
]


@pytest.mark.parametrize("kwargs", CONV2D)
@pytest.mark.parametrize("hw", [(None, None), (None, 14)])
def test_conv2d(kwargs, hw):
    cf = kwargs.get("data_format") == "channels_first"
    shape = (4, *hw) if cf else (*hw, 4)
    check(model(L.Conv2D(**kwargs), shape), sizes=SIZES_2D)


CONV3D = [
    dict(filters=5, kernel_size=2),
    dict(filters=6, kernel_size=2, padding="same", dilation_rate=(2, 2, 2), groups=2),
    dict(filters=6, kernel_size=(2, 2, 3), strides=(2, 1, 2), groups=2),
    dict(filters=3, kernel_size=3, strides=2, data_format="channels_first"),
]


@pytest.mark.parametrize("kwargs", CONV3D)
def test_conv3d(kwargs):
    cf = kwargs.get("data_format") == "channels_first"
    shape = (4, None, None, 8) if cf else (None, None, 8, 4)
    check(model(L.Conv3D(**kwargs), shape), sizes=SIZES_3D)


def test_conv1d_symbolic_valid_stride():
    shapes = check(model(L.Conv1D(8, 3, strides=2, name="c"), (None, 4)),
                   sizes=SIZES_1D)
    out = result(shapes, "c")
    assert out[0] == dims.symbol("batch") and out[2] == 8
    assert same_expr(out[1], "floor((T - 3)/2) + 1")
    reqs = [r for r in shapes.scope.requirements if r.layer == "c"]
    assert len(reqs) == 1 and same_expr(reqs[0].dim, "floor((T - 3)/2) + 1")


def test_conv1d_symbolic_forms():
    inp = keras.Input((None, 4))
    a = L.Conv1D(8, 5, name="valid")(inp)
    b = L.Conv1D(8, 5, strides=3, padding="causal", name="causal")(inp)
    c = L.Conv1D(8, 3, dilation_rate=4, name="dilated")(inp)
    d = L.Conv1D(8, 3, strides=2, padding="same", name="same")(inp)
    shapes = check(keras.Model(inp, [a, b, c, d]), sizes=SIZES_1D)
    assert out_shape(shapes, "valid") == "(batch, T - 4, 8)"
    assert same_expr(result(shapes, "causal")[1], "ceiling(T/3)")
    assert same_expr(result(shapes, "dilated")[1], "T - 8")
    assert same_expr(result(shapes, "same")[1], "ceiling(T/2)")
    # Only windows that shrink an axis need it to fit.
    assert {r.layer for r in shapes.scope.requirements} == {"valid", "dilated"}


def test_conv2d_channels_first_symbolic():
    shapes = check(model(L.Conv2D(7, (3, 2), strides=(2, 1), name="c",
                                  data_format="channels_first"), (4, None, None)),
                   sizes=SIZES_2D)
    out = result(shapes, "c")
    assert out[1] == 7
    # Inputs are named by axis position: (4, None, None) gives (batch, 4, W, C).
    assert same_expr(out[2], "floor((W - 3)/2) + 1")
    assert same_expr(out[3], "C - 1")


def test_conv_chain_with_fixed_dims():
    inp = keras.Input((None, 20, 3))
    x = L.Conv2D(8, 3, strides=2, padding="same", name="a")(inp)
    x = L.Conv2D(8, 3, name="b")(x)
    x = L.SeparableConv2D(4, 3, strides=2, name="c")(x)
    shapes = check(keras.Model(inp, x), sizes={"H": [16, 21, 30]})
    out = result(shapes, "c")
    assert out[2] == 3  # ((20 / 2) - 2 - 3) // 2 + 1
    assert same_expr(out[1], "floor((ceiling(H/2) - 5)/2) + 1")


# --- Transposed convolutions ----------------------------------------------------------

TRANSPOSE1D = [
    dict(filters=5, kernel_size=2),
    dict(filters=5, kernel_size=3, strides=2),
    dict(filters=5, kernel_size=2, strides=3),
    dict(filters=5, kernel_size=3, strides=2, padding="same"),
    dict(filters=5, kernel_size=4, strides=3, output_padding=2),
    dict(filters=5, kernel_size=3, strides=2, padding="same", output_padding=1),
    dict(filters=5, kernel_size=4, strides=3, padding="same", output_padding=1),
    dict(filters=5, kernel_size=3, dilation_rate=2),
    dict(filters=5, kernel_size=3, dilation_rate=2, padding="same"),
    dict(filters=3, kernel_size=3, strides=2, data_format="channels_first"),
]


@pytest.mark.parametrize("kwargs", TRANSPOSE1D)
def test_conv1d_transpose(kwargs):
    cf = kwargs.get("data_format") == "channels_first"
    shape = (4, None) if cf else (None, 4)
    check(model(L.Conv1DTranspose(**kwargs), shape), sizes=SIZES_1D)


TRANSPOSE2D = [
    dict(filters=5, kernel_size=2),
    dict(filters=6, kernel_size=(3, 2), strides=(2, 3), padding="same"),
    dict(filters=6, kernel_size=3, strides=2, output_padding=1),
    dict(filters=6, kernel_size=(3, 5), strides=(2, 3), padding="same",
         output_padding=(1, 2)),
    dict(filters=4, kernel_size=3, strides=2, padding="same",
         data_format="channels_first"),
    dict(filters=4, kernel_size=3, dilation_rate=(2, 1), data_format="channels_first"),
]


@pytest.mark.parametrize("kwargs", TRANSPOSE2D)
@pytest.mark.parametrize("hw", [(None, None), (9, None)])
def test_conv2d_transpose(kwargs, hw):
    cf = kwargs.get("data_format") == "channels_first"
    shape = (3, *hw) if cf else (*hw, 3)
    check(model(L.Conv2DTranspose(**kwargs), shape), sizes=SIZES_2D)


TRANSPOSE3D = [
    dict(filters=5, kernel_size=2),
    dict(filters=4, kernel_size=(2, 3, 2), strides=(2, 1, 3), padding="same"),
    dict(filters=4, kernel_size=3, strides=2, output_padding=1,
         data_format="channels_first"),
]


@pytest.mark.parametrize("kwargs", TRANSPOSE3D)
def test_conv3d_transpose(kwargs):
    cf = kwargs.get("data_format") == "channels_first"
    shape = (2, None, None, 5) if cf else (None, None, 5, 2)
    check(model(L.Conv3DTranspose(**kwargs), shape),
          sizes={"D": [3, 4, 5], "H": [4, 6, 5]})


def test_transpose_symbolic_forms():
    inp = keras.Input((None, 4))
    a = L.Conv1DTranspose(8, 3, strides=2, name="valid")(inp)
    b = L.Conv1DTranspose(8, 3, strides=2, padding="same", name="same")(inp)
    c = L.Conv1DTranspose(8, 2, strides=3, name="wide_stride")(inp)
    d = L.Conv1DTranspose(8, 4, strides=3, padding="same", output_padding=2,
                          name="outpad")(inp)
    shapes = check(keras.Model(inp, [a, b, c, d]), sizes=SIZES_1D)
    assert same_expr(result(shapes, "valid")[1], "2*T + 1")
    assert same_expr(result(shapes, "same")[1], "2*T")
    assert same_expr(result(shapes, "wide_stride")[1], "3*T")
    assert same_expr(result(shapes, "outpad")[1], "3*(T - 1) + 2")
    assert not shapes.scope.requirements


# --- Separable and depthwise ----------------------------------------------------------

SEPARABLE1D = [
    dict(filters=5, kernel_size=2, depth_multiplier=1),
    dict(filters=6, kernel_size=2, strides=2, depth_multiplier=2),
    dict(filters=6, kernel_size=3, padding="same", dilation_rate=2, depth_multiplier=3),
    dict(filters=6, kernel_size=3, strides=2, data_format="channels_first"),
]


@pytest.mark.parametrize("kwargs", SEPARABLE1D)
def test_separable_conv1d(kwargs):
    cf = kwargs.get("data_format") == "channels_first"
    shape = (4, None) if cf else (None, 4)
    check(model(L.SeparableConv1D(**kwargs), shape), sizes=SIZES_1D)


SEPARABLE2D = [
    dict(filters=5, kernel_size=2, depth_multiplier=1),
    dict(filters=6, kernel_size=(3, 2), strides=(2, 1), depth_multiplier=2),
    dict(filters=6, kernel_size=3, padding="same", strides=2),
    dict(filters=6, kernel_size=3, dilation_rate=(2, 2), data_format="channels_first"),
]


@pytest.mark.parametrize("kwargs", SEPARABLE2D)
def test_separable_conv2d(kwargs):
    cf = kwargs.get("data_format") == "channels_first"
    shape = (4, None, None) if cf else (None, None, 4)
    check(model(L.SeparableConv2D(**kwargs), shape), sizes=SIZES_2D)


DEPTHWISE1D = [
    dict(kernel_size=2, depth_multiplier=1),
    dict(kernel_size=3, strides=2, depth_multiplier=2),
    dict(kernel_size=3, padding="same", dilation_rate=2, depth_multiplier=3),
    dict(kernel_size=3, strides=2, padding="same", data_format="channels_first"),
]


@pytest.mark.parametrize("kwargs", DEPTHWISE1D)
def test_depthwise_conv1d(kwargs):
    cf = kwargs.get("data_format") == "channels_first"
    shape = (4, None) if cf else (None, 4)
    check(model(L.DepthwiseConv1D(**kwargs), shape), sizes=SIZES_1D)


DEPTHWISE2D = [
    dict(kernel_size=2, depth_multiplier=1),
    dict(kernel_size=(3, 2), strides=(2, 1), depth_multiplier=2),
    dict(kernel_size=3, padding="same", strides=2, depth_multiplier=3),
    dict(kernel_size=3, dilation_rate=(2, 2), data_format="channels_first",
         depth_multiplier=2),
]


@pytest.mark.parametrize("kwargs", DEPTHWISE2D)
def test_depthwise_conv2d(kwargs):
    cf = kwargs.get("data_format") == "channels_first"
    shape = (3, None, None) if cf else (None, None, 3)
    check(model(L.DepthwiseConv2D(**kwargs), shape), sizes=SIZES_2D)


def test_depthwise_channels_symbolic():
    shapes = check(model(L.DepthwiseConv2D(3, depth_multiplier=4, name="d"),
                         (None, None, 3)), sizes=SIZES_2D)
    out = result(shapes, "d")
    assert out[3] == 12
    assert out_shape(shapes, "d") == "(batch, H - 2, W - 2, 12)"


# --- Direct rule calls (nested-model situations) ---------------------------------------


def _apply(layer, shape):
    scope = Scope()
    return scope, scope.apply(layer, (Sym(shape),), {}, layer="probe")


def _built(layer, shape):
    layer.build((None, *shape))
    return layer


def test_wrong_rank_is_shape_error():
    layer = _built(L.Conv2D(4, 3), (10, 10, 3))
    T = dims.symbol("T")
    with pytest.raises(ShapeError):
        _apply(layer, (dims.symbol("batch"), T, 3))


def test_channel_mismatch_is_recorded():
    layer = _built(L.Conv1D(4, 3), (10, 3))
    T, C = dims.symbol("T"), dims.symbol("C")
    scope, out = _apply(layer, (dims.symbol("batch"), T, C))
    assert out[2] == 4 and same_expr(out[1], "T - 2")
    [c] = scope.constraints
    assert c.lhs == C and c.rhs == 3 and c.holds is None
    scope, out = _apply(layer, (dims.symbol("batch"), T, 5))
    assert [c.holds for c in scope.constraints] == [False]


def test_channels_first_checks_axis_1():
    layer = _built(L.Conv2D(4, 3, data_format="channels_first"), (3, 10, 10))
    H, W, C = dims.symbol("H"), dims.symbol("W"), dims.symbol("C")
    scope, out = _apply(layer, (dims.symbol("batch"), C, H, W))
    assert out[1] == 4 and same_expr(out[2], "H - 2") and same_expr(out[3], "W - 2")
    [c] = scope.constraints
    assert c.lhs == C and c.rhs == 3


def test_depthwise_uses_built_channels():
    layer = _built(L.DepthwiseConv1D(3, depth_multiplier=2), (10, 3))
    scope, out = _apply(layer, (dims.symbol("batch"), dims.symbol("T"), dims.symbol("C")))
    assert out[2] == 6
    assert len(scope.constraints) == 1


def test_keras_subclass_without_override_inherits_rule():
    class MyConv(L.Conv2D):
        pass

    inp = keras.Input((None, None, 3))
    m = keras.Model(inp, MyConv(4, 3, strides=2, name="m")(inp))
    shapes = check(m, sizes=SIZES_2D)
    assert same_expr(result(shapes, "m")[1], "floor((H - 3)/2) + 1")


def test_infer_only_all_unknown_spatial():
    inp = keras.Input((None, None, None, 2))
    x = L.Conv3D(4, 3, strides=(1, 2, 3), name="c")(inp)
    shapes = infer_model(keras.Model(inp, x))
    assert not shapes.scope.notes
    out = result(shapes, "c")
    assert same_expr(out[1], "D - 2")
    assert same_expr(out[2], "floor((H - 3)/2) + 1")
    assert same_expr(out[3], "floor((W - 3)/3) + 1")
