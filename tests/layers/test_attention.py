"""Attention layers against Keras (symbolic sequence lengths)."""

from __future__ import annotations

import keras
import pytest
from keras import layers

from shapecheck.shapes import dims
from shapecheck.shapes.infer import Scope, infer_model
from shapecheck.shapes.layers import attention as attention_rules
from shapecheck.shapes.layers.registry import ShapeError, Sym, find_rule
from tests.layers.conftest import check, constraints, out_shape, outs

B = dims.symbol("batch")
T = dims.symbol("T")
S = dims.symbol("S")


def test_rules_are_registered():
    assert find_rule(layers.Attention()) is attention_rules.attention
    assert find_rule(layers.AdditiveAttention()) is attention_rules.attention
    assert find_rule(layers.MultiHeadAttention(2, 2)) is attention_rules.multi_head_attention
    assert find_rule(layers.GroupQueryAttention(2, 2, 1)) is \
        attention_rules.grouped_query_attention


# --- Attention / AdditiveAttention --------------------------------------------------

DOT_CASES = [
    # (layer, with key, return scores, expected)
    (lambda: layers.Attention(), False, False, ["(batch, T_q, 6)"]),
    (lambda: layers.Attention(use_scale=True), True, False, ["(batch, T_q, 6)"]),
    (lambda: layers.Attention(score_mode="concat"), False, True,
     ["(batch, T_q, 6)", "(batch, T_q, T_v)"]),
    (lambda: layers.Attention(dropout=0.1), True, True,
     ["(batch, T_q, 6)", "(batch, T_q, T_k)"]),
    (lambda: layers.AdditiveAttention(), False, False, ["(batch, T_q, 6)"]),
    (lambda: layers.AdditiveAttention(use_scale=False), True, True,
     ["(batch, T_q, 6)", "(batch, T_q, T_k)"]),
]


@pytest.mark.parametrize("make,with_key,scores,expected", DOT_CASES)
def test_attention(make, with_key, scores, expected):
    q = keras.Input((None, 6), name="q")
    v = keras.Input((None, 6), name="v")
    inputs = [q, v]
    if with_key:
        k = keras.Input((None, 6), name="k")
        inputs.append(k)
    layer = make()
    y = layer(inputs, return_attention_scores=scores)
    m = keras.Model(inputs, list(y) if scores else y)
    sizes = {"T_k": [11, 12, 13], "T_v": [11, 12, 13]} if with_key else None
    shapes = check(m, sizes=sizes)
    assert outs(shapes, layer.name) == expected
    if with_key:
        assert ("T_v", "T_k", None) in constraints(shapes)


def test_attention_value_width_differs_from_query():
    q = keras.Input((None, 4), name="q")
    v = keras.Input((None, 7), name="v")
    k = keras.Input((None, 4), name="k")
    layer = layers.Attention(name="att")
    m = keras.Model([q, v, k], layer([q, v, k], use_causal_mask=True))
    shapes = check(m, sizes={"T_k": [5, 6, 7], "T_v": [5, 6, 7]})
    assert out_shape(shapes, "att") == "(batch, T_q, 7)"


def test_attention_masks_from_embedding():
    q = keras.Input((None,), dtype="int32", name="q")
    v = keras.Input((None,), dtype="int32", name="v")
    emb = layers.Embedding(10, 4, mask_zero=True)
    layer = layers.AdditiveAttention(name="att")
    y = layer([emb(q), emb(v)])
    shapes = check(keras.Model([q, v], y))
    assert out_shape(shapes, "att") == "(batch, L_q, 4)"


def test_attention_self_attention_rank_4():
    x = keras.Input((3, None, 4))
    layer = layers.Attention(name="att")
    y = layer([x, x], return_attention_scores=True)
    shapes = check(keras.Model(x, list(y)))
    assert outs(shapes, "att") == ["(batch, 3, W, 4)", "(batch, 3, W, W)"]


def test_attention_mismatched_key_feature_is_a_constraint():
    q = keras.Input((None, 4))
    v = keras.Input((None, 5))
    layer = layers.Attention(name="att")
    shapes = infer_model(keras.Model([q, v], layer([q, v])))
    assert ("4", "5", False) in constraints(shapes)


@pytest.mark.parametrize("inputs", [1, 4])
def test_attention_needs_two_or_three_inputs(inputs):
    with pytest.raises(ShapeError):
        Scope().apply(layers.Attention(), ([Sym((B, T, 4))] * inputs,), {}, layer="att")


# --- MultiHeadAttention ---------------------------------------------------------------------


def test_mha_self_attention():
    x = keras.Input((None, 8))
    layer = layers.MultiHeadAttention(2, 4, name="mha")
    y = layer(x, x, return_attention_scores=True)
    shapes = check(keras.Model(x, list(y)))
    assert outs(shapes, "mha") == ["(batch, T, 8)", "(batch, 2, T, T)"]


MHA_CASES = [
    # (kwargs, call kwargs, with key, expected)
    (dict(num_heads=2, key_dim=3), {}, False, ["(batch, T_q, 8)"]),
    (dict(num_heads=2, key_dim=3, value_dim=5), {}, True, ["(batch, T_q, 8)"]),
    (dict(num_heads=2, key_dim=3, output_shape=7), {}, False, ["(batch, T_q, 7)"]),
    (dict(num_heads=2, key_dim=3, output_shape=(2, 3)), {}, False, ["(batch, T_q, 2, 3)"]),
    (dict(num_heads=3, key_dim=2), {"return_attention_scores": True}, False,
     ["(batch, T_q, 8)", "(batch, 3, T_q, T_v)"]),
    (dict(num_heads=2, key_dim=2, use_bias=False, dropout=0.1),
     {"return_attention_scores": True}, True,
     ["(batch, T_q, 8)", "(batch, 2, T_q, T_k)"]),
    (dict(num_heads=2, key_dim=2), {"use_causal_mask": True}, False, ["(batch, T_q, 8)"]),
    (dict(num_heads=2, key_dim=2, use_gate=True), {}, False, ["(batch, T_q, 8)"]),
]


@pytest.mark.parametrize("kwargs,call_kwargs,with_key,expected", MHA_CASES)
def test_mha_cross_attention(kwargs, call_kwargs, with_key, expected):
    q = keras.Input((None, 8), name="q")
    v = keras.Input((None, 6), name="v")
    inputs = [q, v]
    layer = layers.MultiHeadAttention(name="mha", **kwargs)
    if with_key:
        k = keras.Input((None, 5), name="k")
        inputs.append(k)
        y = layer(q, v, key=k, **call_kwargs)
    else:
        y = layer(q, v, **call_kwargs)
    m = keras.Model(inputs, list(y) if isinstance(y, tuple) else y)
    sizes = {"T_k": [11, 12, 13], "T_v": [11, 12, 13]} if with_key else None
    shapes = check(m, sizes=sizes)
    assert outs(shapes, "mha") == expected
    if with_key:
        assert ("T_k", "T_v", None) in constraints(shapes)


def test_mha_static_query_length_keeps_keras_scores_shape():
    # Keras declares the scores as (batch, heads, Tq, Tq); with a static Tq
    # the model is built with that, and the rule keeps it.
    q = keras.Input((5, 8))
    layer = layers.MultiHeadAttention(2, 4, name="mha")
    y = layer(q, q, return_attention_scores=True)
    shapes = check(keras.Model(q, list(y)))
    assert outs(shapes, "mha") == ["(batch, 5, 8)", "(batch, 2, 5, 5)"]


@pytest.mark.parametrize("axes", [None, (2,), (1, 2), (-2,)])
def test_mha_attention_axes(axes):
    q = keras.Input((3, None, 8), name="q")
    v = keras.Input((3, None, 8), name="v")
    layer = layers.MultiHeadAttention(2, 2, attention_axes=axes, name="mha")
    shapes = check(keras.Model([q, v], layer(q, v)))
    assert out_shape(shapes, "mha") == "(batch, 3, W_q, 8)"


def test_mha_attention_mask():
    q = keras.Input((None, 8), name="q")
    v = keras.Input((None, 8), name="v")
    mask = keras.Input((None, None), dtype="bool", name="mask")
    layer = layers.MultiHeadAttention(2, 4, name="mha")
    m = keras.Model([q, v, mask], layer(q, v, attention_mask=mask))
    shapes = infer_model(m)
    assert out_shape(shapes, "mha") == "(batch, T_q, 8)"
    cons = constraints(shapes)
    assert ("F_mask", "T_v", None) in cons and ("T_mask", "T_q", None) in cons
    check(m, sizes={"T_q": [4, 5, 6], "T_mask": [4, 5, 6],
                    "T_v": [7, 8, 9], "F_mask": [7, 8, 9]})


def test_mha_broadcast_attention_mask_records_nothing_for_ones():
    q = keras.Input((None, 8), name="q")
    mask = keras.Input((1, None), dtype="bool", name="mask")
    layer = layers.MultiHeadAttention(2, 4, name="mha")
    m = keras.Model([q, mask], layer(q, q, attention_mask=mask))
    shapes = check(m, sizes={"T_q": [4, 5, 6], "F_mask": [4, 5, 6]})
    assert constraints(shapes) == [("F_mask", "T_q", None)]


def test_mha_transformer_block():
    x = keras.Input((None, 8))
    h = layers.MultiHeadAttention(2, 4, name="mha")(x, x, use_causal_mask=True)
    h = layers.LayerNormalization()(layers.Add()([x, h]))
    y = layers.Dense(3, name="head")(h)
    shapes = check(keras.Model(x, y))
    assert out_shape(shapes, "mha") == "(batch, T, 8)"
    assert out_shape(shapes, "head") == "(batch, T, 3)"


def test_mha_key_value_static_mismatch_raises():
    layer = layers.MultiHeadAttention(2, 4)
    layer.build((None, None, 8), (None, 5, 8), (None, 5, 8))
    with pytest.raises(ShapeError):
        Scope().apply(layer, (Sym((B, T, 8)), Sym((B, 5, 8)), Sym((B, 6, 8))), {},
                      layer="mha")


def test_mha_shared_layer_with_other_query_width_is_a_constraint():
    layer = layers.MultiHeadAttention(2, 4, name="mha")
    a = keras.Input((None, 8))
    b = keras.Input((None, 6))
    m = keras.Model([a, b], [layer(a, a), layer(b, b)])
    shapes = infer_model(m)
    assert ("6", "8", False) in constraints(shapes)


# --- GroupedQueryAttention ------------------------------------------------------------


GQA_CASES = [
    (dict(head_dim=2, num_query_heads=4, num_key_value_heads=2), {}, False,
     ["(batch, T_q, 8)"]),
    (dict(head_dim=3, num_query_heads=2, num_key_value_heads=1),
     {"return_attention_scores": True}, False, ["(batch, T_q, 8)", "(batch, 2, T_q, T_v)"]),
    (dict(head_dim=2, num_query_heads=4, num_key_value_heads=4, dropout=0.1),
     {"return_attention_scores": True}, True, ["(batch, T_q, 8)", "(batch, 4, T_q, T_k)"]),
    (dict(head_dim=2, num_query_heads=2, num_key_value_heads=1), {"use_causal_mask": True},
     True, ["(batch, T_q, 8)"]),
]


@pytest.mark.parametrize("kwargs,call_kwargs,with_key,expected", GQA_CASES)
def test_grouped_query_attention(kwargs, call_kwargs, with_key, expected):
    q = keras.Input((None, 8), name="q")
    v = keras.Input((None, 8), name="v")
    inputs = [q, v]
    layer = layers.GroupQueryAttention(name="gqa", **kwargs)
    if with_key:
        k = keras.Input((None, 5), name="k")
        inputs.append(k)
        y = layer(q, v, key=k, **call_kwargs)
    else:
        y = layer(q, v, **call_kwargs)
    m = keras.Model(inputs, list(y) if isinstance(y, tuple) else y)
    sizes = {"T_k": [11, 12, 13], "T_v": [11, 12, 13]} if with_key else None
    shapes = check(m, sizes=sizes)
    assert outs(shapes, "gqa") == expected


def test_gqa_self_attention_with_mask():
    x = keras.Input((None, 8), name="x")
    mask = keras.Input((None, None), dtype="bool", name="mask")
    layer = layers.GroupQueryAttention(2, 4, 2, name="gqa")
    m = keras.Model([x, mask], layer(x, x, attention_mask=mask))
    check(m, sizes={"T_x": [4, 5, 6], "T_mask": [4, 5, 6], "F_mask": [4, 5, 6]})


def test_gqa_value_width_must_match_query():
    layer = layers.GroupQueryAttention(2, 2, 1)
    layer.build((None, None, 8), (None, None, 8))
    with pytest.raises(ShapeError):
        Scope().apply(layer, (Sym((B, T, 8)), Sym((B, S, 6))), {}, layer="gqa")


def test_seq2seq_luong_attention():
    enc_in = keras.Input((None, 4), name="enc")
    dec_in = keras.Input((None, 4), name="dec")
    enc = layers.LSTM(6, return_sequences=True, name="encoder")(enc_in)
    dec = layers.LSTM(6, return_sequences=True, name="decoder")(dec_in)
    ctx = layers.Attention(name="att")([dec, enc])
    y = layers.Concatenate(name="cat")([dec, ctx])
    shapes = check(keras.Model([enc_in, dec_in], y))
    assert out_shape(shapes, "att") == "(batch, T_dec, 6)"
    assert out_shape(shapes, "cat") == "(batch, T_dec, 12)"
    assert constraints(shapes) == []


def test_shared_additive_attention_with_other_query_width_is_a_constraint():
    layer = layers.AdditiveAttention(name="att")
    q1, v1 = keras.Input((None, 4)), keras.Input((None, 4))
    q2, v2 = keras.Input((None, 6)), keras.Input((None, 6))
    m = keras.Model([q1, v1, q2, v2], [layer([q1, v1]), layer([q2, v2])])
    shapes = infer_model(m)
    assert ("6", "4", False) in constraints(shapes)
