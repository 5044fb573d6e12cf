"""Reshaping rules against Keras (Reshape, Flatten, Permute, RepeatVector,
UpSampling, ZeroPadding, Cropping)."""

from __future__ import annotations

import keras
import pytest
import sympy as sp

from shapecheck.shapes import dims
from shapecheck.shapes.infer import Scope
from shapecheck.shapes.layers.registry import ShapeError, Sym

from .conftest import check, model, out_shape, result

pytestmark = pytest.mark.filterwarnings("ignore:The structure of `inputs`")

L = keras.layers
T, F, H, W, C, D = (dims.symbol(n) for n in "TFHWCD")
B = dims.symbol("batch")


def same_expr(d, want):
    got, want = sp.sympify(d), sp.sympify(want)
    if sp.simplify(got - want) == 0:
        return True
    free = sorted(got.free_symbols | want.free_symbols, key=str)
    return all(got.subs({s: v + 5 * i for i, s in enumerate(free)})
               == want.subs({s: v + 5 * i for i, s in enumerate(free)})
               for v in range(1, 60))


# --- Reshape ------------------------------------------------------------------------

RESHAPE = [
    # (input shape, target_shape, sizes, expected non-batch output)
    ((None, 64), (-1, 32), None, (2 * T, 32)),
    ((3, 4), (4, 3), None, (4, 3)),
    ((3, 4), (-1,), None, (12,)),
    ((None, 4), (2, -1), None, (2, 2 * T)),
    ((None, None), (-1,), None, (T * F,)),
    ((None, 8), (8, -1), None, (8, T)),
    ((None, 6), (-1, 2, 3), None, (T, 2, 3)),
    ((None, None, 3), (-1, 3), None, (H * W, 3)),
    ((2, None, 2), (-1, 4), None, (W, 4)),
    ((None, 4, 6), (-1, 12), None, (2 * H, 12)),
    ((None, 12), (3, -1, 2), None, (3, 2 * T, 2)),
    ((None, 4), (8, 4), {"T": [8]}, (8, 4)),
    ((None, None), (1, -1, 1), None, (1, T * F, 1)),
]


@pytest.mark.parametrize("shape,target,sizes,want", RESHAPE)
def test_reshape(shape, target, sizes, want):
    shapes = check(model(L.Reshape(target, name="r"), shape), sizes=sizes)
    out = result(shapes, "r")
    assert out[0] == B
    assert len(out) == len(want) + 1
    for got, exp in zip(out[1:], want):
        assert same_expr(got, exp), (out, want)


def test_reshape_example_from_brief():
    shapes = check(model(L.Reshape((-1, 32), name="r"), (None, 64)))
    assert out_shape(shapes, "r") == "(batch, 2*T, 32)"
    assert not shapes.scope.constraints


def test_reshape_fixed_target_records_element_count():
    shapes = check(model(L.Reshape((8, 4), name="r"), (None, 4)), sizes={"T": [8]})
    [c] = shapes.scope.constraints
    assert c.layer == "r" and c.holds is None
    assert same_expr(c.lhs - c.rhs, 4 * T - 32) or same_expr(c.rhs - c.lhs, 4 * T - 32)


def test_reshape_not_divisible_for_every_size():
    # (batch, T, 6) -> (-1, 4): 6*T/4 is whole only for even T.
    shapes = check(model(L.Reshape((-1, 4), name="r"), (None, 6)),
                   sizes={"T": [4, 10, 16]})
    out = result(shapes, "r")
    assert same_expr(out[1], sp.floor(sp.Rational(3, 2) * T))
    [c] = shapes.scope.constraints
    assert c.holds is None and c.layer == "r"
    assert dims.evaluate(c.lhs, {"T": 4}) == dims.evaluate(c.rhs, {"T": 4})
    assert dims.evaluate(c.lhs, {"T": 5}) != dims.evaluate(c.rhs, {"T": 5})


def test_reshape_after_strided_conv():
    inp = keras.Input((None, 4))
    x = L.Conv1D(8, 3, strides=2, name="c")(inp)
    x = L.Reshape((-1, 16), name="r")(x)
    x = L.Flatten(name="f")(x)
    shapes = check(keras.Model(inp, x), sizes={"T": [17, 21, 29]})
    want = sp.floor((sp.floor((T - 3) / 2) + 1) / 2)
    assert same_expr(result(shapes, "r")[1], want)
    assert same_expr(result(shapes, "f")[1], 16 * want)


def test_reshape_chain_keeps_symbols():
    inp = keras.Input((None, None, 3))
    x = L.Reshape((-1, 3), name="r1")(inp)
    x = L.Permute((2, 1), name="p")(x)
    x = L.Reshape((3, -1, 1), name="r2")(x)
    shapes = check(keras.Model(inp, x), sizes={"H": [4, 5, 7], "W": [6, 3, 2]})
    assert out_shape(shapes, "r2") == "(batch, 3, H*W, 1)"


def test_reshape_impossible_raises():
    scope = Scope()
    layer = L.Reshape((5, -1))
    with pytest.raises(ShapeError):
        scope.apply(layer, (Sym((B, 3, 4)),), {}, layer="r")
    with pytest.raises(ShapeError):
        scope.apply(L.Reshape((5, 2)), (Sym((B, 3, 4)),), {}, layer="r")


# --- Flatten ------------------------------------------------------------------------

FLATTEN = [
    ((None, 4), 4 * T),
    ((None, None), T * F),
    ((3, None, 5), 15 * W),
    ((None, None, 2), 2 * H * W),
    ((None, 2, 3, 4), 24 * D),
    ((5,), 5),
    ((None,), dims.symbol("L")),
    ((), 1),
]


@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
@pytest.mark.parametrize("shape,want", FLATTEN)
def test_flatten(shape, want, data_format):
    shapes = check(model(L.Flatten(data_format=data_format, name="f"), shape),
                   sizes={"D": [3, 4, 5], "H": [3, 5, 6], "W": [4, 7, 8]})
    out = result(shapes, "f")
    assert out[0] == B and same_expr(out[1], want)


# --- Permute / RepeatVector ------------------------------------------------------------

PERMUTE = [
    ((None, 4), (2, 1), (4, T)),
    ((None, None), (2, 1), (F, T)),
    ((None, None, 3), (3, 1, 2), (3, H, W)),
    ((None, None, 3), (1, 3, 2), (H, 3, W)),
    ((2, None, None, 3), (4, 2, 1, 3), (3, H, 2, W)),
]


@pytest.mark.parametrize("shape,order,want", PERMUTE)
def test_permute(shape, order, want):
    shapes = check(model(L.Permute(order, name="p"), shape),
                   sizes={"H": [3, 5, 6], "W": [4, 7, 8]})
    assert result(shapes, "p")[1:] == want


@pytest.mark.parametrize("shape,n", [((None,), 3), ((4,), 1), ((None,), 5)])
def test_repeat_vector(shape, n):
    shapes = check(model(L.RepeatVector(n, name="r"), shape))
    out = result(shapes, "r")
    assert out[1] == n and out[2] == (shape[0] or dims.symbol("L"))


# --- UpSampling ---------------------------------------------------------------------------


@pytest.mark.parametrize("shape,size", [((None, 3), 2), ((None, None), 3), ((5, 2), 1)])
def test_up_sampling1d(shape, size):
    shapes = check(model(L.UpSampling1D(size, name="u"), shape))
    out = result(shapes, "u")
    n = shape[0] if shape[0] is not None else T
    assert same_expr(out[1], size * n) and out[2] == (shape[1] or F)


UP2D = [
    ((2, 2), "channels_last", "nearest"),
    ((2, 3), "channels_last", "bilinear"),
    (3, "channels_first", "nearest"),
    ((1, 2), "channels_first", "bilinear"),
]


@pytest.mark.parametrize("size,data_format,interpolation", UP2D)
def test_up_sampling2d(size, data_format, interpolation):
    cf = data_format == "channels_first"
    shape = (3, None, None) if cf else (None, None, 3)
    layer = L.UpSampling2D(size, data_format=data_format, interpolation=interpolation,
                           name="u")
    shapes = check(model(layer, shape), sizes={"H": [3, 5, 6], "W": [4, 7, 8],
                                               "C": [4, 5, 9]})
    out = result(shapes, "u")
    sh, sw = (size, size) if isinstance(size, int) else size
    axes = (2, 3) if cf else (1, 2)
    names = (W, C) if cf else (H, W)  # inputs are named by axis position
    assert same_expr(out[axes[0]], sh * names[0])
    assert same_expr(out[axes[1]], sw * names[1])


@pytest.mark.parametrize("size,data_format", [((2, 2, 2), "channels_last"),
                                              ((1, 2, 3), "channels_first")])
def test_up_sampling3d(size, data_format):
    cf = data_format == "channels_first"
    shape = (2, None, None, 3) if cf else (None, None, 3, 2)
    check(model(L.UpSampling3D(size, data_format=data_format), shape),
          sizes={"D": [2, 3, 4], "H": [3, 5, 2], "W": [2, 4, 3]})


# --- ZeroPadding ---------------------------------------------------------------------------

ZP1D = [(1, "channels_last"), ((2, 3), "channels_last"), ((0, 4), "channels_first")]


@pytest.mark.parametrize("padding,data_format", ZP1D)
def test_zero_padding1d(padding, data_format):
    cf = data_format == "channels_first"
    shape = (3, None) if cf else (None, 3)
    shapes = check(model(L.ZeroPadding1D(padding, data_format=data_format, name="z"),
                         shape))
    p = (padding, padding) if isinstance(padding, int) else padding
    out = result(shapes, "z")
    assert same_expr(out[2] if cf else out[1], (F if cf else T) + sum(p))


ZP2D = [
    (1, "channels_last"), ((2, 3), "channels_last"), (((1, 2), (0, 3)), "channels_last"),
    (((1, 2), (3, 4)), "channels_first"), (2, "channels_first"),
]


@pytest.mark.parametrize("padding,data_format", ZP2D)
@pytest.mark.parametrize("hw", [(None, None), (None, 5)])
def test_zero_padding2d(padding, data_format, hw):
    cf = data_format == "channels_first"
    shape = (3, *hw) if cf else (*hw, 3)
    check(model(L.ZeroPadding2D(padding, data_format=data_format), shape),
          sizes={"H": [3, 5, 6], "W": [4, 7, 8], "C": [2, 3, 5]})


@pytest.mark.parametrize("padding,data_format", [
    (1, "channels_last"), ((1, 0, 2), "channels_last"),
    (((1, 2), (0, 3), (2, 2)), "channels_first")])
def test_zero_padding3d(padding, data_format):
    cf = data_format == "channels_first"
    shape = (2, None, None, 3) if cf else (None, None, 3, 2)
    check(model(L.ZeroPadding3D(padding, data_format=data_format), shape),
          sizes={"D": [2, 3, 4], "H": [3, 5, 2], "W": [2, 4, 3], "C": [3, 2, 4]})


def test_zero_padding_symbolic():
    shapes = check(model(L.ZeroPadding2D(((1, 2), (3, 4)), name="z"), (None, None, 3)))
    assert out_shape(shapes, "z") == "(batch, H + 3, W + 7, 3)"


# --- Cropping -------------------------------------------------------------------------------


@pytest.mark.parametrize("cropping", [(1, 1), (2, 3), (0, 4), 2])
@pytest.mark.parametrize("shape", [(None, 3), (None, None), (12, 3)])
def test_cropping1d(cropping, shape):
    shapes = check(model(L.Cropping1D(cropping, name="c"), shape))
    out = result(shapes, "c")
    p = (cropping, cropping) if isinstance(cropping, int) else cropping
    n = shape[0] if shape[0] is not None else T
    assert same_expr(out[1], n - sum(p))
    reqs = [r for r in shapes.scope.requirements if r.layer == "c"]
    if shape[0] is None:
        assert len(reqs) == 1 and same_expr(reqs[0].dim, T - sum(p))
    else:
        assert not reqs


CROP2D = [
    (((0, 0), (0, 0)), "channels_last"), (2, "channels_last"), ((1, 2), "channels_last"),
    (((1, 2), (0, 3)), "channels_last"), (((1, 0), (2, 3)), "channels_first"),
    (3, "channels_first"),
]


@pytest.mark.parametrize("cropping,data_format", CROP2D)
@pytest.mark.parametrize("hw", [(None, None), (None, 9)])
def test_cropping2d(cropping, data_format, hw):
    cf = data_format == "channels_first"
    shape = (3, *hw) if cf else (*hw, 3)
    check(model(L.Cropping2D(cropping, data_format=data_format), shape),
          sizes={"H": [8, 9, 11], "W": [8, 10, 12], "C": [7, 9, 13]})


@pytest.mark.parametrize("cropping,data_format", [
    (1, "channels_last"), ((1, 0, 2), "channels_last"),
    (((1, 2), (0, 3), (2, 2)), "channels_first"), (((0, 0), (1, 0), (0, 1)), "channels_first")])
def test_cropping3d(cropping, data_format):
    cf = data_format == "channels_first"
    shape = (2, None, None, 9) if cf else (None, None, 9, 2)
    check(model(L.Cropping3D(cropping, data_format=data_format), shape),
          sizes={"D": [6, 7, 9], "H": [8, 9, 11], "W": [7, 10, 12], "C": [6, 8, 9]})


def test_cropping_symbolic_and_requirements():
    shapes = check(model(L.Cropping2D(((1, 2), (3, 0)), name="c"), (None, 9, 3)),
                   sizes={"H": [5, 8, 9]})
    assert out_shape(shapes, "c") == "(batch, H - 3, 6, 3)"
    [req] = shapes.scope.requirements
    assert req.layer == "c" and req.dim == H - 3 and req.holds is None


def test_cropping_too_much_fixed_is_recorded_false():
    scope = Scope()
    scope.apply(L.Cropping1D((2, 2)), (Sym((B, 4, 3)),), {}, layer="c")
    assert [r.holds for r in scope.requirements] == [False]


# --- Wrong ranks ------------------------------------------------------------------------------


@pytest.mark.parametrize("layer,shape", [
    (L.RepeatVector(2), (B, T, 3)), (L.UpSampling1D(), (B, 3)),
    (L.UpSampling2D(), (B, T, 3)), (L.UpSampling3D(), (B, H, W, 3)),
    (L.ZeroPadding1D(), (B, H, W, 3)), (L.ZeroPadding2D(), (B, T, 3)),
    (L.ZeroPadding3D(), (B, T, 3)), (L.Cropping1D(), (B, T)),
    (L.Cropping2D(), (B, D, H, W, 3)), (L.Cropping3D(), (B, H, W, 3)),
    (L.Permute((2, 1, 3)), (B, T, 3))])
def test_wrong_rank_is_shape_error(layer, shape):
    with pytest.raises(ShapeError):
        Scope().apply(layer, (Sym(shape),), {}, layer="x")
