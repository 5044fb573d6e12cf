"""Pooling rules against Keras (windowed, global and adaptive pooling)."""

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


def same_expr(d, text, names=("T", "F", "H", "W", "D", "C")):
    want = sp.sympify(text, locals={n: dims.symbol(n) for n in names})
    got = sp.sympify(d)
    if sp.simplify(got - want) == 0:
        return True
    free = sorted(got.free_symbols | want.free_symbols, key=str)
    return all(got.subs({s: v + 5 * i for i, s in enumerate(free)})
               == want.subs({s: v + 5 * i for i, s in enumerate(free)})
               for v in range(1, 60))


SIZES_1D = {"T": [16, 21, 27]}
SIZES_2D = {"H": [12, 15, 17], "W": [13, 10, 19]}
SIZES_3D = {"D": [6, 7, 9], "H": [8, 9, 11], "W": [7, 10, 12]}

POOL1D = [
    dict(pool_size=2),
    dict(pool_size=2, strides=1),
    dict(pool_size=3, strides=2),
    dict(pool_size=2, strides=3),
    dict(pool_size=3, padding="same"),
    dict(pool_size=3, strides=2, padding="same"),
    dict(pool_size=2, strides=1, padding="same"),
    dict(pool_size=3, strides=2, data_format="channels_first"),
    dict(pool_size=4, padding="same", data_format="channels_first"),
]


@pytest.mark.parametrize("cls", [L.MaxPooling1D, L.AveragePooling1D])
@pytest.mark.parametrize("kwargs", POOL1D)
def test_pooling1d(cls, kwargs):
    cf = kwargs.get("data_format") == "channels_first"
    check(model(cls(**kwargs), (3, None) if cf else (None, 3)), sizes=SIZES_1D)


POOL2D = [
    dict(pool_size=2),
    dict(pool_size=(3, 2), strides=(2, 1)),
    dict(pool_size=3, strides=2, padding="same"),
    dict(pool_size=(2, 3), strides=(3, 1), padding="same"),
    dict(pool_size=2, strides=2, data_format="channels_first"),
    dict(pool_size=(3, 3), strides=(2, 2), padding="same", data_format="channels_first"),
]


@pytest.mark.parametrize("cls", [L.MaxPooling2D, L.AveragePooling2D])
@pytest.mark.parametrize("kwargs", POOL2D)
def test_pooling2d(cls, kwargs):
    cf = kwargs.get("data_format") == "channels_first"
    check(model(cls(**kwargs), (3, None, None) if cf else (None, None, 3)),
          sizes=SIZES_2D)


POOL3D = [
    dict(pool_size=2),
    dict(pool_size=(3, 2, 2), strides=(2, 1, 3), padding="same"),
    dict(pool_size=2, strides=(1, 2, 2), data_format="channels_first"),
]


@pytest.mark.parametrize("cls", [L.MaxPooling3D, L.AveragePooling3D])
@pytest.mark.parametrize("kwargs", POOL3D)
def test_pooling3d(cls, kwargs):
    cf = kwargs.get("data_format") == "channels_first"
    shape = (2, None, None, 7) if cf else (None, None, 7, 2)
    check(model(cls(**kwargs), shape), sizes=SIZES_3D)


def test_pooling_fixed_and_symbolic_dims():
    inp = keras.Input((None, 20, 3))
    x = L.MaxPooling2D(3, strides=2, name="p")(inp)
    x = L.AveragePooling2D(2, padding="same", name="q")(x)
    shapes = check(keras.Model(inp, x), sizes={"H": [9, 14, 21]})
    p = result(shapes, "p")
    assert p[2] == 9 and same_expr(p[1], "floor((H - 3)/2) + 1")
    q = result(shapes, "q")
    assert q[2] == 5 and same_expr(q[1], "ceiling((floor((H - 3)/2) + 1)/2)")
    assert {r.layer for r in shapes.scope.requirements} == {"p"}


def test_pooling_symbolic_forms():
    inp = keras.Input((None, 4))
    a = L.MaxPooling1D(name="default")(inp)
    b = L.AveragePooling1D(3, strides=1, name="stride1")(inp)
    c = L.MaxPooling1D(3, strides=2, padding="same", name="same")(inp)
    shapes = check(keras.Model(inp, [a, b, c]), sizes=SIZES_1D)
    assert same_expr(result(shapes, "default")[1], "floor(T/2)")
    assert out_shape(shapes, "stride1") == "(batch, T - 2, 4)"
    assert same_expr(result(shapes, "same")[1], "ceiling(T/2)")


# --- Global pooling -------------------------------------------------------------------

GLOBAL = [
    (L.GlobalMaxPooling1D, (None, 5)), (L.GlobalAveragePooling1D, (None, 5)),
    (L.GlobalMaxPooling2D, (None, None, 5)), (L.GlobalAveragePooling2D, (None, 7, 5)),
    (L.GlobalMaxPooling3D, (None, None, 4, 5)), (L.GlobalAveragePooling3D, (3, None, 4, 5)),
]


@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
@pytest.mark.parametrize("cls,shape", GLOBAL)
def test_global_pooling(cls, shape, data_format, keepdims):
    layer = cls(data_format=data_format, keepdims=keepdims, name="g")
    if data_format == "channels_first":
        shape = (shape[-1], *shape[:-1])
    shapes = check(model(layer, shape), sizes={"D": [3, 4, 5], "H": [3, 6, 4]})
    out = result(shapes, "g")
    rank = len(shape) - 1
    c = shape[0] if data_format == "channels_first" else shape[-1]
    if keepdims:
        want = (c, *([1] * rank)) if data_format == "channels_first" else (*([1] * rank), c)
    else:
        want = (c,)
    assert out[0] == dims.symbol("batch") and tuple(out[1:]) == want


def test_global_pooling_symbolic_channels():
    # Channels come from the input; an unknown channel axis stays symbolic.
    inp = keras.Input((None, None))
    x = L.GlobalAveragePooling1D(name="g")(inp)
    y = L.GlobalMaxPooling1D(data_format="channels_first", keepdims=True, name="h")(inp)
    shapes = check(keras.Model(inp, [x, y]), sizes={"T": [4, 5, 7], "F": [3, 6, 2]})
    assert out_shape(shapes, "g") == "(batch, F)"
    assert out_shape(shapes, "h") == "(batch, T, 1)"


def test_global_average_pooling_with_mask():
    inp = keras.Input((None,), dtype="int32")
    x = L.Embedding(10, 6, mask_zero=True)(inp)
    x = L.GlobalAveragePooling1D(name="g")(x)
    shapes = check(keras.Model(inp, x), sizes={"L": [4, 5, 7]})
    assert out_shape(shapes, "g") == "(batch, 6)"


# --- Adaptive pooling -------------------------------------------------------------------

ADAPTIVE = [
    (L.AdaptiveAveragePooling1D, 4, (None, 3)),
    (L.AdaptiveMaxPooling1D, (5,), (None, 3)),
    (L.AdaptiveAveragePooling2D, 3, (None, None, 3)),
    (L.AdaptiveMaxPooling2D, (2, 4), (None, 9, 3)),
    (L.AdaptiveAveragePooling3D, (2, 3, 2), (None, None, 6, 2)),
    (L.AdaptiveMaxPooling3D, 2, (None, None, 6, 2)),
]


@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
@pytest.mark.parametrize("cls,size,shape", ADAPTIVE)
def test_adaptive_pooling(cls, size, shape, data_format):
    if data_format == "channels_first":
        shape = (shape[-1], *shape[:-1])
    shapes = check(model(cls(size, data_format=data_format, name="a"), shape),
                   sizes={"T": [7, 9, 12], "D": [5, 7, 9], "H": [8, 11, 12],
                          "W": [6, 9, 13], "C": [7, 8, 10]})
    out = result(shapes, "a")
    rank = len(shape) - 1
    want = (size,) * rank if isinstance(size, int) else tuple(size)
    c = shape[0] if data_format == "channels_first" else shape[-1]
    got = out[2:] if data_format == "channels_first" else out[1:-1]
    assert tuple(got) == want
    assert (out[1] if data_format == "channels_first" else out[-1]) == c


# --- Direct rule calls ------------------------------------------------------------------


def test_wrong_rank_is_shape_error():
    scope = Scope()
    b, t = dims.symbol("batch"), dims.symbol("T")
    with pytest.raises(ShapeError):
        scope.apply(L.MaxPooling2D(), (Sym((b, t, 3)),), {}, layer="p")
    with pytest.raises(ShapeError):
        scope.apply(L.GlobalAveragePooling1D(), (Sym((b, t, t, 3)),), {}, layer="p")


def test_valid_window_records_requirement():
    scope = Scope()
    b, t = dims.symbol("batch"), dims.symbol("T")
    out = scope.apply(L.MaxPooling1D(4, strides=1), (Sym((b, t, 3)),), {}, layer="p")
    assert out[1] == t - 3
    [req] = scope.requirements
    assert req.dim == t - 3 and req.holds is None
    scope.apply(L.MaxPooling1D(4, strides=1), (Sym((b, 3, 3)),), {}, layer="q")
    assert [r.holds for r in scope.requirements if r.layer == "q"] == [False]
