"""Merge layers: elementwise merges (broadcasting), Concatenate, Dot."""

from __future__ import annotations

import keras
import pytest

from shapecheck.shapes import dims
from shapecheck.shapes.infer import Scope, infer_model
from shapecheck.shapes.layers.registry import Call, ShapeError, Sym, find_rule
from tests.layers.conftest import check, out_shape

L = keras.layers
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

ELEMWISE = [L.Add, L.Subtract, L.Multiply, L.Average, L.Maximum, L.Minimum]
SAME = {"T_a": [5, 7, 9], "T_b": [5, 7, 9]}


def _cons(shapes_or_scope):
    scope = getattr(shapes_or_scope, "scope", shapes_or_scope)
    return {(str(c.lhs), str(c.rhs)) for c in scope.constraints}


def _two(shape_a, shape_b, layer):
    a = keras.Input(shape_a, name="a")
    b = keras.Input(shape_b, name="b")
    return keras.Model([a, b], layer([a, b]))


def _rule(layer, *shapes):
    """Apply ``layer``'s rule to symbolic shapes directly (cases Keras rejects)."""
    scope = Scope()
    syms = [Sym(tuple(s)) for s in shapes]
    fn = find_rule(layer)
    assert fn is not None
    out = fn(Call(op=layer, args=(syms,), kwargs={}, scope=scope, layer="m"))
    return out, scope


B, T, U = dims.symbol("batch"), dims.symbol("T"), dims.symbol("U")


# --- elementwise merges ------------------------------------------------------------


@pytest.mark.parametrize("cls", ELEMWISE)
def test_elementwise_same_shape_known(cls):
    shapes = check(_two((4, 5), (4, 5), cls(name="m")))
    assert out_shape(shapes, "m") == "(batch, 4, 5)"
    assert not shapes.scope.constraints


@pytest.mark.parametrize("cls", ELEMWISE)
def test_elementwise_unknown_time_axes_record_constraint(cls):
    m = _two((None, 8), (None, 8), cls(name="m"))
    shapes = infer_model(m)
    assert not shapes.scope.notes
    assert out_shape(shapes, "m") == "(batch, T_a, 8)"
    assert _cons(shapes) == {("T_a", "T_b")}
    check(m, sizes=SAME)


@pytest.mark.parametrize("cls", ELEMWISE)
def test_elementwise_shared_symbol_no_constraint(cls):
    x = keras.Input((None, 8), name="x")
    h1 = L.Dense(8)(x)
    h2 = L.Dense(8)(x)
    m = keras.Model(x, cls(name="m")([h1, h2]))
    shapes = check(m)
    assert out_shape(shapes, "m") == "(batch, T, 8)"
    assert not shapes.scope.constraints


@pytest.mark.parametrize("cls", [L.Add, L.Multiply, L.Maximum, L.Minimum, L.Average])
def test_elementwise_rank2_and_rank3_broadcast(cls):
    shapes = check(_two((16,), (32, 16), cls(name="m")))
    assert out_shape(shapes, "m") == "(batch, 32, 16)"


def test_add_rank2_and_rank3_reversed_order():
    shapes = check(_two((32, 16), (16,), L.Add(name="m")))
    assert out_shape(shapes, "m") == "(batch, 32, 16)"


def test_add_rank2_unknown_time_rank3_broadcast():
    shapes = check(_two((None, 16), (16,), L.Add(name="m")))
    assert out_shape(shapes, "m") == "(batch, T, 16)"
    assert not shapes.scope.constraints


def test_add_size_one_broadcast():
    shapes = check(_two((1, 8), (None, 8), L.Add(name="m")))
    assert out_shape(shapes, "m") == "(batch, T, 8)"
    assert not shapes.scope.constraints
    shapes = check(_two((None, 1), (None, 8), L.Multiply(name="m")),
                   sizes=SAME)
    assert out_shape(shapes, "m") == "(batch, T_a, 8)"
    assert _cons(shapes) == {("T_a", "T_b")}


def test_add_rank4_and_rank2():
    shapes = check(_two((None, None, 3), (3,), L.Add(name="m")))
    assert out_shape(shapes, "m") == "(batch, H, W, 3)"


def test_add_rank4_and_rank3_broadcast():
    shapes = check(_two((4, 5, 6), (1, 6), L.Add(name="m")))
    assert out_shape(shapes, "m") == "(batch, 4, 5, 6)"


def test_add_unknown_against_known_records_constraint():
    m = _two((None, 8), (6, 8), L.Add(name="m"))
    shapes = infer_model(m)
    assert not shapes.scope.notes
    assert out_shape(shapes, "m") == "(batch, 6, 8)"
    assert _cons(shapes) == {("T", "6")}
    check(m, sizes={"T": [6]})


def test_add_three_inputs():
    a = keras.Input((None, 8), name="a")
    b = keras.Input((None, 8), name="b")
    c = keras.Input((8,), name="c")
    m = keras.Model([a, b, c], L.Add(name="m")([a, b, c]))
    shapes = infer_model(m)
    assert out_shape(shapes, "m") == "(batch, T_a, 8)"
    assert _cons(shapes) == {("T_a", "T_b")}
    check(m, sizes=SAME)


def test_average_single_input():
    x = keras.Input((None, 3), name="x")
    m = keras.Model(x, L.Average(name="m")([x]))
    shapes = check(m)
    assert out_shape(shapes, "m") == "(batch, T, 3)"


def test_residual_block():
    x = keras.Input((None, 16), name="x")
    h = L.Dense(32, activation="relu")(x)
    h = L.Dense(16)(h)
    y = L.Add(name="res")([x, h])
    shapes = check(keras.Model(x, y))
    assert out_shape(shapes, "res") == "(batch, T, 16)"
    assert not shapes.scope.constraints


def test_elementwise_known_mismatch_is_shape_error():
    with pytest.raises(ValueError):
        _two((32,), (32, 16), L.Add())  # Keras rejects it too
    with pytest.raises(ShapeError):
        _rule(L.Add(), (B, 32), (B, 32, 16))
    with pytest.raises(ShapeError):
        _rule(L.Multiply(), (B, 4, 5), (B, 4, 6))


def test_elementwise_rule_direct_forms():
    out, scope = _rule(L.Add(), (B, T, 8), (B, 1, 8))
    assert dims.fmt_shape(out) == "(batch, T, 8)" and not scope.constraints
    out, scope = _rule(L.Add(), (B, T, 8), (B, U, 8))
    assert dims.fmt_shape(out) == "(batch, T, 8)"
    assert _cons(scope) == {("T", "U")}
    out, scope = _rule(L.Add(), (B, T, 8), (B, T, 8))
    assert dims.fmt_shape(out) == "(batch, T, 8)" and not scope.constraints
    out, scope = _rule(L.Add(), (B, 2 * T, 8), (B, T + T, 8))
    assert not scope.constraints
    out, scope = _rule(L.Add(), (B, None, 8), (B, T, 8))
    assert dims.fmt_shape(out) == "(batch, T, 8)"
    out, scope = _rule(L.Add(), (B, 8), (B, T, 1))
    assert dims.fmt_shape(out) == "(batch, T, 8)"


def test_subtract_needs_two_inputs():
    with pytest.raises(ShapeError):
        _rule(L.Subtract(), (B, 4), (B, 4), (B, 4))
    with pytest.raises(ValueError):
        a = keras.Input((4,))
        L.Subtract()([a, a, a])


# --- Concatenate -------------------------------------------------------------------


def test_concatenate_time_axis_symbolic_sum():
    m = _two((None, 8), (None, 8), L.Concatenate(axis=1, name="m"))
    shapes = check(m)
    assert out_shape(shapes, "m") == "(batch, T_a + T_b, 8)"
    assert not shapes.scope.constraints


def test_concatenate_features_unknown_time_constraint():
    m = _two((None, 3), (None, 5), L.Concatenate(name="m"))
    shapes = infer_model(m)
    assert not shapes.scope.notes
    assert out_shape(shapes, "m") == "(batch, T_a, 8)"
    assert _cons(shapes) == {("T_a", "T_b")}
    check(m, sizes=SAME)


def test_concatenate_unknown_feature_axes():
    m = _two((4, None), (4, None), L.Concatenate(axis=-1, name="m"))
    shapes = check(m)
    assert out_shape(shapes, "m") == "(batch, 4, F_a + F_b)"


@pytest.mark.parametrize("axis, want", [
    (-1, "(batch, H_a, W_a, 48)"),
    (3, "(batch, H_a, W_a, 48)"),
])
def test_concatenate_unet_skip(axis, want):
    m = _two((None, None, 16), (None, None, 32), L.Concatenate(axis=axis, name="m"))
    shapes = infer_model(m)
    assert out_shape(shapes, "m") == want
    assert _cons(shapes) == {("H_a", "H_b"), ("W_a", "W_b")}
    check(m, sizes={"H_a": [6, 8], "H_b": [6, 8], "W_a": [5, 7], "W_b": [5, 7]})


def test_concatenate_rank4_height_axis():
    m = _two((None, 4, 3), (2, 4, 3), L.Concatenate(axis=1, name="m"))
    shapes = check(m)
    assert out_shape(shapes, "m") == "(batch, H + 2, 4, 3)"


def test_concatenate_three_inputs_and_known():
    a = keras.Input((None, 4), name="a")
    b = keras.Input((None, 4), name="b")
    c = keras.Input((3, 4), name="c")
    m = keras.Model([a, b, c], L.Concatenate(axis=-2, name="m")([a, b, c]))
    shapes = check(m)
    assert out_shape(shapes, "m") == "(batch, T_a + T_b + 3, 4)"


def test_concatenate_unknown_against_known_non_axis():
    m = _two((None, 3), (7, 5), L.Concatenate(name="m"))
    shapes = infer_model(m)
    assert not shapes.scope.notes
    assert out_shape(shapes, "m") == "(batch, 7, 8)"
    assert _cons(shapes) == {("T", "7")}
    check(m, sizes={"T": [7]})


def test_concatenate_batch_axis():
    x = keras.Input((5,), name="x")
    m = keras.Model(x, L.Concatenate(axis=0, name="m")([x, x]))
    shapes = check(m)
    assert out_shape(shapes, "m") == "(2*batch, 5)"


def test_concatenate_same_tensor_twice():
    x = keras.Input((None, 6), name="x")
    m = keras.Model(x, L.Concatenate(axis=1, name="m")([x, x]))
    shapes = check(m)
    assert out_shape(shapes, "m") == "(batch, 2*T, 6)"


def test_concatenate_known_mismatch():
    with pytest.raises(ValueError):
        _two((2, 1, 2, 1), (1, 1, 3, 1), L.Concatenate(axis=1))
    with pytest.raises(ShapeError):
        _rule(L.Concatenate(axis=1), (B, 2, 1, 2, 1), (B, 1, 1, 3, 1))
    with pytest.raises(ShapeError):
        _rule(L.Concatenate(), (B, T, 4), (B, 4))
    with pytest.raises(ShapeError):
        _rule(L.Concatenate(axis=3), (B, T, 4), (B, T, 4))
    out, _ = _rule(L.Concatenate(axis=-1), (1, 1, 1, 1, 5), (1, 1, 1, 1, 4))
    assert out == (1, 1, 1, 1, 9)


# --- Dot ---------------------------------------------------------------------------


def test_dot_2d():
    shapes = check(_two((4,), (4,), L.Dot(axes=-1, name="m")))
    assert out_shape(shapes, "m") == "(batch, 1)"


def test_dot_attention_scores():
    m = _two((None, 8), (None, 8), L.Dot(axes=(2, 2), name="m"))
    shapes = check(m)
    assert out_shape(shapes, "m") == "(batch, T_a, T_b)"
    assert not shapes.scope.constraints


def test_dot_attention_apply():
    q = keras.Input((None, 8), name="q")
    k = keras.Input((None, 8), name="k")
    scores = L.Dot(axes=-1, name="s")([q, k])
    probs = L.Softmax(name="p")(scores)
    ctx = L.Dot(axes=(2, 1), name="ctx")([probs, k])
    m = keras.Model([q, k], ctx)
    shapes = check(m)
    assert out_shape(shapes, "s") == "(batch, T_q, T_k)"
    assert out_shape(shapes, "ctx") == "(batch, T_q, 8)"
    assert not shapes.scope.constraints


def test_dot_over_unknown_axes_records_constraint():
    m = _two((None, 8), (None, 6), L.Dot(axes=1, normalize=True, name="m"))
    shapes = infer_model(m)
    assert not shapes.scope.notes
    assert out_shape(shapes, "m") == "(batch, 8, 6)"
    assert _cons(shapes) == {("T_a", "T_b")}
    check(m, sizes=SAME)


def test_dot_rank2_rank3():
    shapes = check(_two((8,), (None, 8), L.Dot(axes=(1, 2), name="m")))
    assert out_shape(shapes, "m") == "(batch, T)"
    shapes = check(_two((None, 8), (8,), L.Dot(axes=(2, 1), name="m")))
    assert out_shape(shapes, "m") == "(batch, T)"


def test_dot_higher_dim():
    shapes = check(_two((3, 2), (1, 2, 3), L.Dot(axes=(-2, -1), name="m")))
    assert out_shape(shapes, "m") == "(batch, 2, 1, 2)"


def test_dot_rank4_unknown():
    shapes = check(_two((None, 5, 4), (4, 7), L.Dot(axes=(3, 1), name="m")))
    assert out_shape(shapes, "m") == "(batch, H, 5, 7)"


def test_dot_errors():
    with pytest.raises(ShapeError):
        _rule(L.Dot(axes=1), (B, 4, 5), (B, 3, 5))
    with pytest.raises(ShapeError):
        _rule(L.Dot(axes=0), (B, 4), (B, 4))
    with pytest.raises(ShapeError):
        _rule(L.Dot(axes=1), (B, 4), (B, 4), (B, 4))
    with pytest.raises(ShapeError):
        _rule(L.Dot(axes=1), (B,), (B, 4))
