"""Recurrent layers and their wrappers against Keras (symbolic time axes)."""

from __future__ import annotations

import keras
import pytest
from keras import layers, ops

from shapecheck.shapes import dims
from shapecheck.shapes.infer import Scope, infer_model
from shapecheck.shapes.layers.registry import ShapeError, Sym
from tests.layers.conftest import check as _check
from tests.layers.conftest import constraints, out_shape, outs

B = dims.symbol("batch")
T = dims.symbol("T")


# Short time axes keep the RNNs fast; distinct sizes per dim at each run.
SMALL = {"T": [3, 5, 7], "H": [4, 6, 9], "W": [5, 8, 10], "D": [3, 4, 6], "L": [4, 7, 9],
         "F": [6, 9, 11], "T_seq": [3, 6, 7], "T_enc": [4, 6, 8], "T_dec": [5, 7, 9],
         "d1": [3, 5, 6]}


def check(m, sizes=None):
    return _check(m, sizes={**SMALL, **(sizes or {})})


def model(inputs, outputs) -> keras.Model:
    return keras.Model(inputs, outputs)


# --- SimpleRNN / GRU / LSTM -------------------------------------------------------

RNN_CASES = [
    # (layer, expected shapes as text)
    (lambda: layers.SimpleRNN(3), ["(batch, 3)"]),
    (lambda: layers.SimpleRNN(3, return_sequences=True), ["(batch, T, 3)"]),
    (lambda: layers.SimpleRNN(3, return_state=True), ["(batch, 3)", "(batch, 3)"]),
    (lambda: layers.SimpleRNN(3, return_sequences=True, return_state=True, go_backwards=True),
     ["(batch, T, 3)", "(batch, 3)"]),
    (lambda: layers.GRU(3), ["(batch, 3)"]),
    (lambda: layers.GRU(3, return_sequences=True, reset_after=False), ["(batch, T, 3)"]),
    (lambda: layers.GRU(3, return_state=True), ["(batch, 3)", "(batch, 3)"]),
    (lambda: layers.GRU(2, return_sequences=True, return_state=True, go_backwards=True),
     ["(batch, T, 2)", "(batch, 2)"]),
    (lambda: layers.LSTM(3), ["(batch, 3)"]),
    (lambda: layers.LSTM(3, return_sequences=True), ["(batch, T, 3)"]),
    (lambda: layers.LSTM(3, return_state=True), ["(batch, 3)", "(batch, 3)", "(batch, 3)"]),
    (lambda: layers.LSTM(2, return_sequences=True, return_state=True, dropout=0.1,
                         recurrent_dropout=0.1),
     ["(batch, T, 2)", "(batch, 2)", "(batch, 2)"]),
    (lambda: layers.LSTM(2, go_backwards=True, use_cudnn=False), ["(batch, 2)"]),
]


@pytest.mark.parametrize("make,expected", RNN_CASES)
def test_builtin_rnn(make, expected):
    x = keras.Input((None, 4))
    y = make()(x)
    m = model(x, y)
    shapes = check(m)
    name = m.layers[-1].name
    assert outs(shapes, name) == expected


@pytest.mark.parametrize("cls", [layers.SimpleRNN, layers.GRU, layers.LSTM])
def test_unroll_static_time(cls):
    x = keras.Input((5, 4))
    m = model(x, cls(3, unroll=True, return_sequences=True)(x))
    assert out_shape(check(m), m.layers[-1].name) == "(batch, 5, 3)"


def test_stateful_rnn_with_fixed_batch():
    x = keras.Input((None, 4), batch_size=2)
    layer = layers.GRU(3, stateful=True, return_sequences=True, name="gru")
    shapes = check(model(x, layer(x)))
    assert out_shape(shapes, "gru") == "(2, T, 3)"
    assert constraints(shapes) == []


def test_stacked_rnns_and_masking():
    x = keras.Input((None,), dtype="int32")
    e = layers.Embedding(10, 4, mask_zero=True)(x)
    h = layers.LSTM(3, return_sequences=True, name="l1")(e)
    h = layers.GRU(2, return_sequences=True, name="l2")(h)
    y = layers.SimpleRNN(5, name="l3")(h)
    shapes = check(model(x, y))
    assert out_shape(shapes, "l1") == "(batch, L, 3)"
    assert out_shape(shapes, "l3") == "(batch, 5)"


# --- generic RNN(cell) ---------------------------------------------------------------


class MinimalCell(layers.Layer):
    """A cell without output_size: the output is the first state's size."""

    def __init__(self, sizes, **kwargs):
        super().__init__(**kwargs)
        self.sizes = sizes
        self.state_size = sizes if isinstance(sizes, int) else list(sizes)

    def build(self, input_shape):
        first = self.sizes if isinstance(self.sizes, int) else self.sizes[0]
        self.kernel = self.add_weight(shape=(input_shape[-1], first))

    def call(self, inputs, states):
        h = ops.matmul(inputs, self.kernel) + states[0]
        if isinstance(self.sizes, int):
            return h, [h]
        return h, [h, *states[1:]]


RNN_CELL_CASES = [
    (lambda: layers.RNN(layers.SimpleRNNCell(3)), ["(batch, 3)"]),
    (lambda: layers.RNN(layers.GRUCell(3), return_sequences=True), ["(batch, T, 3)"]),
    (lambda: layers.RNN(layers.LSTMCell(3), return_state=True),
     ["(batch, 3)", "(batch, 3)", "(batch, 3)"]),
    (lambda: layers.RNN([layers.LSTMCell(3), layers.GRUCell(2)], return_state=True),
     ["(batch, 2)", "(batch, 3)", "(batch, 3)", "(batch, 2)"]),
    (lambda: layers.RNN(layers.StackedRNNCells([layers.SimpleRNNCell(2), layers.LSTMCell(5)]),
                        return_sequences=True, return_state=True),
     ["(batch, T, 5)", "(batch, 2)", "(batch, 5)", "(batch, 5)"]),
    (lambda: layers.RNN(MinimalCell(3), return_state=True), ["(batch, 3)", "(batch, 3)"]),
    (lambda: layers.RNN(MinimalCell([4, 2]), return_sequences=True, return_state=True),
     ["(batch, T, 4)", "(batch, 4)", "(batch, 2)"]),
]


@pytest.mark.parametrize("make,expected", RNN_CELL_CASES)
def test_generic_rnn(make, expected):
    x = keras.Input((None, 4))
    m = model(x, make()(x))
    shapes = check(m)
    assert outs(shapes, m.layers[-1].name) == expected


# --- initial_state --------------------------------------------------------------------


def test_lstm_initial_state_matches():
    x = keras.Input((None, 4), name="seq")
    h = keras.Input((3,), name="h")
    c = keras.Input((3,), name="c")
    y = layers.LSTM(3, return_state=True, name="lstm")(x, initial_state=[h, c])
    shapes = check(model([x, h, c], y))
    assert outs(shapes, "lstm") == ["(batch, 3)"] * 3
    assert constraints(shapes) == []


def test_initial_state_positional_single_tensor_and_unknown_width():
    x = keras.Input((None, 4), name="seq")
    h = keras.Input((None,), name="h")  # width unknown: must equal units
    y = layers.GRU(3, return_sequences=True, name="gru")(x, h)
    shapes = infer_model(model([x, h], y))
    assert not shapes.scope.notes
    assert out_shape(shapes, "gru") == "(batch, T_seq, 3)"
    assert constraints(shapes) == [("L_h", "3", None)]
    check(model([x, h], y), sizes={"L_h": [3]})


def test_initial_state_wrong_width_is_a_constraint():
    x = keras.Input((None, 4))
    h = keras.Input((6,))
    y = layers.SimpleRNN(3, name="rnn")(x, initial_state=h)
    shapes = infer_model(model([x, h], y))
    assert not shapes.scope.notes
    assert out_shape(shapes, "rnn") == "(batch, 3)"
    assert ("6", "3", False) in constraints(shapes)


def test_initial_state_batch_must_match():
    x = keras.Input((None, 4), batch_size=2)
    h = keras.Input((3,), batch_size=5)
    y = layers.GRU(3, name="gru")(x, initial_state=[h])
    shapes = infer_model(model([x, h], y))
    assert ("5", "2", False) in constraints(shapes)


def test_too_few_states_is_noted_but_shape_is_keras():
    x = keras.Input((None, 4))
    h = keras.Input((3,))
    y = layers.LSTM(3, return_state=True, name="lstm")(x, initial_state=[h])
    shapes = infer_model(model([x, h], y))
    assert outs(shapes, "lstm") == ["(batch, 3)"] * 3
    assert [(n.layer, n.kind) for n in shapes.scope.notes] == [("lstm", "shape-error")]


@pytest.mark.parametrize("make,count", [
    (lambda: layers.LSTM(3), 3),   # fails at run time, but only by the loop's structure
    (lambda: layers.GRU(3), 2),    # extra states are ignored on some backends
    (lambda: layers.RNN(MinimalCell(3)), 0),  # custom cells: unknown
])
def test_other_wrong_counts_are_not_noted(make, count):
    x = keras.Input((None, 4))
    hs = [keras.Input((3,)) for _ in range(count)]
    y = make()(x, initial_state=hs)
    shapes = infer_model(model([x, *hs], y))
    assert not shapes.scope.notes
    assert out_shape(shapes, y._keras_history.operation.name) == "(batch, 3)"


def test_stacked_cells_nested_initial_state():
    x = keras.Input((None, 4), name="seq")
    h1, c1 = keras.Input((3,), name="h1"), keras.Input((3,), name="c1")
    h2 = keras.Input((2,), name="h2")
    rnn = layers.RNN([layers.LSTMCell(3), layers.GRUCell(2)], return_state=True, name="rnn")
    y = rnn(x, initial_state=[[h1, c1], h2])
    shapes = check(model([x, h1, c1, h2], y))
    assert outs(shapes, "rnn") == ["(batch, 2)", "(batch, 3)", "(batch, 3)", "(batch, 2)"]


def test_shared_rnn_with_other_features_is_a_constraint():
    lstm = layers.LSTM(3, name="shared")
    a = keras.Input((None, 4))
    b = keras.Input((None, 6))
    m = model([a, b], [lstm(a), lstm(b)])
    shapes = infer_model(m)
    assert ("6", "4", False) in constraints(shapes)


def test_rank_error_from_rule():
    lstm = layers.LSTM(3)
    lstm.build((None, None, 4))
    with pytest.raises(ShapeError):
        Scope().apply(lstm, (Sym((B, 4)),), {}, layer="lstm")


# --- ConvLSTM -------------------------------------------------------------------------

CONV_CASES = [
    # (cls, kwargs, input shape without batch, expected first output)
    (layers.ConvLSTM1D, dict(filters=2, kernel_size=3, padding="same"), (None, 8, 3),
     "(batch, 8, 2)"),
    (layers.ConvLSTM1D, dict(filters=2, kernel_size=3, strides=2, return_sequences=True),
     (None, 9, 3), "(batch, H, 4, 2)"),
    (layers.ConvLSTM1D, dict(filters=2, kernel_size=3, dilation_rate=2, return_state=True),
     (None, 9, 3), "(batch, 5, 2)"),
    (layers.ConvLSTM2D, dict(filters=2, kernel_size=3, padding="same",
                             return_sequences=True), (None, 5, 5, 3), "(batch, D, 5, 5, 2)"),
    (layers.ConvLSTM2D, dict(filters=2, kernel_size=(3, 2), strides=(2, 1),
                             return_state=True), (None, 7, 6, 3), "(batch, 3, 5, 2)"),
    (layers.ConvLSTM2D, dict(filters=2, kernel_size=3, padding="same", strides=2,
                             return_sequences=True, return_state=True), (None, 7, 6, 3),
     "(batch, D, 4, 3, 2)"),
    (layers.ConvLSTM3D, dict(filters=2, kernel_size=2, return_sequences=True),
     (None, 4, 4, 3, 2), "(batch, d1, 3, 3, 2, 2)"),
]


@pytest.mark.parametrize("cls,kwargs,shape,expected", CONV_CASES)
def test_conv_lstm(cls, kwargs, shape, expected):
    x = keras.Input(shape)
    m = model(x, cls(**kwargs)(x))
    shapes = check(m)
    got = outs(shapes, m.layers[-1].name)
    assert got[0] == expected
    if kwargs.get("return_state"):
        state = got[0] if not kwargs.get("return_sequences") else None
        assert len(got) == 3 and got[1] == got[2]
        if state:
            assert got[1] == state


def test_conv_lstm_channels_first():
    x = keras.Input((None, 3, 7, 6))
    layer = layers.ConvLSTM2D(2, 3, data_format="channels_first", return_sequences=True,
                              return_state=True, name="cl")
    shapes = check(model(x, layer(x)), sizes={"D": [2, 3, 4]})
    assert outs(shapes, "cl") == ["(batch, D, 2, 5, 4)", "(batch, 2, 5, 4)", "(batch, 2, 5, 4)"]


def test_conv_lstm_initial_state():
    x = keras.Input((None, 6, 3), name="seq")
    h = keras.Input((6, 2), name="h")
    c = keras.Input((6, 2), name="c")
    layer = layers.ConvLSTM1D(2, 3, padding="same", name="cl")
    shapes = check(model([x, h, c], layer(x, initial_state=[h, c])))
    assert out_shape(shapes, "cl") == "(batch, 6, 2)"
    assert constraints(shapes) == []


def test_conv_lstm_too_small_for_kernel():
    layer = layers.ConvLSTM1D(2, 5)
    layer.build((None, None, 8, 3))
    with pytest.raises(ShapeError):
        Scope().apply(layer, (Sym((B, T, 3, 3)),), {}, layer="cl")


# --- Bidirectional ---------------------------------------------------------------------

BIDI_CASES = [
    # (inner, merge_mode, expected)
    (lambda: layers.LSTM(3), "concat", ["(batch, 6)"]),
    (lambda: layers.LSTM(3, return_sequences=True), "sum", ["(batch, T, 3)"]),
    (lambda: layers.GRU(3, return_sequences=True), "mul", ["(batch, T, 3)"]),
    (lambda: layers.SimpleRNN(3), "ave", ["(batch, 3)"]),
    (lambda: layers.GRU(3, return_sequences=True), None, ["(batch, T, 3)", "(batch, T, 3)"]),
    (lambda: layers.LSTM(8, return_state=True), "concat",
     ["(batch, 16)", "(batch, 8)", "(batch, 8)", "(batch, 8)", "(batch, 8)"]),
    (lambda: layers.GRU(2, return_sequences=True, return_state=True), "sum",
     ["(batch, T, 2)", "(batch, 2)", "(batch, 2)"]),
    (lambda: layers.LSTM(2, return_state=True), None,
     ["(batch, 2)", "(batch, 2)", "(batch, 2)", "(batch, 2)", "(batch, 2)", "(batch, 2)"]),
    (lambda: layers.RNN(layers.LSTMCell(2), return_sequences=True), "concat",
     ["(batch, T, 4)"]),
]


@pytest.mark.parametrize("make,merge,expected", BIDI_CASES)
def test_bidirectional(make, merge, expected):
    x = keras.Input((None, 4))
    layer = layers.Bidirectional(make(), merge_mode=merge, name="bi")
    shapes = check(model(x, layer(x)))
    assert outs(shapes, "bi") == expected


def test_bidirectional_custom_backward_layer():
    x = keras.Input((None, 4))
    layer = layers.Bidirectional(layers.LSTM(3, return_sequences=True),
                                 backward_layer=layers.GRU(3, return_sequences=True,
                                                           go_backwards=True), name="bi")
    shapes = check(model(x, layer(x)))
    assert out_shape(shapes, "bi") == "(batch, T, 6)"


def test_bidirectional_backward_layer_of_other_width_is_a_constraint():
    x = keras.Input((None, 4))
    layer = layers.Bidirectional(layers.LSTM(3), name="bi",
                                 backward_layer=layers.LSTM(5, go_backwards=True))
    shapes = infer_model(model(x, layer(x)))
    assert out_shape(shapes, "bi") == "(batch, 6)"  # what Keras declares
    assert ("5", "3", False) in constraints(shapes)


def test_bidirectional_initial_state_split():
    x = keras.Input((None, 4), name="seq")
    states = [keras.Input((3,), name=f"s{i}") for i in range(4)]
    layer = layers.Bidirectional(layers.LSTM(3, return_state=True), name="bi")
    shapes = check(model([x, *states], layer(x, initial_state=states)))
    assert outs(shapes, "bi") == ["(batch, 6)"] + ["(batch, 3)"] * 4
    assert constraints(shapes) == []


def test_bidirectional_initial_state_wrong_width_and_count():
    x = keras.Input((None, 4))
    s = [keras.Input((3,)), keras.Input((5,))]
    layer = layers.Bidirectional(layers.GRU(3), name="bi")
    shapes = infer_model(model([x, *s], layer(x, initial_state=s)))
    assert ("5", "3", False) in constraints(shapes)
    assert not shapes.scope.notes
    s = [keras.Input((3,)), keras.Input((3,))]  # LSTM needs 4: 1 per direction fails
    layer = layers.Bidirectional(layers.LSTM(3), name="bi2")
    shapes = infer_model(model([x, *s], layer(x, initial_state=s)))
    assert [(n.layer, n.kind) for n in shapes.scope.notes] == [("bi2", "shape-error")]
    assert out_shape(shapes, "bi2") == "(batch, 6)"


def test_stacked_bidirectional():
    x = keras.Input((None, 4))
    h = layers.Bidirectional(layers.LSTM(3, return_sequences=True), name="b1")(x)
    y = layers.Bidirectional(layers.GRU(2), merge_mode="ave", name="b2")(h)
    shapes = check(model(x, y))
    assert out_shape(shapes, "b1") == "(batch, T, 6)"
    assert out_shape(shapes, "b2") == "(batch, 2)"


def test_bidirectional_conv_lstm():
    x = keras.Input((None, 5, 2))
    layer = layers.Bidirectional(layers.ConvLSTM1D(2, 3, return_sequences=True), name="bi")
    shapes = check(model(x, layer(x)))
    assert out_shape(shapes, "bi") == "(batch, H, 3, 4)"


# --- TimeDistributed -------------------------------------------------------------------


def test_time_distributed_dense():
    x = keras.Input((None, 4))
    shapes = check(model(x, layers.TimeDistributed(layers.Dense(3), name="td")(x)))
    assert out_shape(shapes, "td") == "(batch, T, 3)"


def test_time_distributed_conv_and_flatten():
    x = keras.Input((None, 6, 6, 1))
    h = layers.TimeDistributed(layers.Conv2D(2, 3), name="conv")(x)
    h = layers.TimeDistributed(layers.Flatten(), name="flat")(h)
    y = layers.LSTM(3, name="lstm")(h)
    shapes = check(model(x, y))
    assert out_shape(shapes, "conv") == "(batch, D, 4, 4, 2)"
    assert out_shape(shapes, "flat") == "(batch, D, 32)"
    assert out_shape(shapes, "lstm") == "(batch, 3)"


def test_time_distributed_rnn_keeps_both_time_axes():
    x = keras.Input((None, None, 4))
    y = layers.TimeDistributed(layers.LSTM(3, return_sequences=True), name="td")(x)
    shapes = check(model(x, y), sizes={"H": [2, 3, 4], "W": [5, 6, 7]})
    assert out_shape(shapes, "td") == "(batch, H, W, 3)"


def test_time_distributed_inner_model_with_its_own_time_axis():
    inner_in = keras.Input((None, 4))
    inner = keras.Model(inner_in, layers.GRU(3, return_sequences=True)(inner_in),
                        name="inner")
    x = keras.Input((None, None, 4))
    shapes = check(model(x, layers.TimeDistributed(inner, name="td")(x)),
                   sizes={"H": [2, 3, 4], "W": [5, 6, 7]})
    out = shapes.results[-1].shapes[0]
    assert dims.fmt_shape(out) == "(batch, H, W, 3)"
    assert out[1] != out[2]


def test_time_distributed_bidirectional_and_sentence_encoder():
    words = keras.Input((None,), dtype="int32")
    enc = layers.Embedding(20, 4)(words)
    enc = layers.Bidirectional(layers.GRU(3))(enc)
    encoder = keras.Model(words, enc, name="encoder")
    doc = keras.Input((None, None), dtype="int32")
    sents = layers.TimeDistributed(encoder, name="td")(doc)
    y = layers.LSTM(2, name="lstm")(sents)
    shapes = check(model(doc, y), sizes={"T": [2, 3, 4], "F": [5, 6, 7]})
    assert out_shape(shapes, "td") == "(batch, T, 6)"
    assert out_shape(shapes, "lstm") == "(batch, 2)"


def test_time_distributed_needs_rank_3():
    td = layers.TimeDistributed(layers.Dense(2))
    td.build((None, None, 4))
    with pytest.raises(ShapeError):
        Scope().apply(td, (Sym((B, 4)),), {}, layer="td")


# --- real-model patterns ------------------------------------------------------------------


def test_seq2seq_encoder_states_feed_decoder():
    enc_in = keras.Input((None, 4), name="enc")
    dec_in = keras.Input((None, 5), name="dec")
    _, fh, fc, bh, bc = layers.Bidirectional(layers.LSTM(3, return_state=True),
                                             name="encoder")(enc_in)
    h = layers.Concatenate(name="h")([fh, bh])
    c = layers.Concatenate(name="c")([fc, bc])
    dec = layers.LSTM(6, return_sequences=True, name="decoder")(dec_in, initial_state=[h, c])
    y = layers.TimeDistributed(layers.Dense(2), name="proj")(dec)
    shapes = check(model([enc_in, dec_in], y))
    assert outs(shapes, "encoder") == ["(batch, 6)"] + ["(batch, 3)"] * 4
    assert out_shape(shapes, "decoder") == "(batch, T_dec, 6)"
    assert out_shape(shapes, "proj") == "(batch, T_dec, 2)"
    assert constraints(shapes) == []


def test_seq2seq_decoder_units_too_small_for_encoder_state():
    enc_in = keras.Input((None, 4), name="enc")
    dec_in = keras.Input((None, 5), name="dec")
    _, h, c = layers.LSTM(8, return_state=True, name="encoder")(enc_in)
    dec = layers.LSTM(4, return_sequences=True, name="decoder")(dec_in, initial_state=[h, c])
    shapes = infer_model(model([enc_in, dec_in], dec))
    assert out_shape(shapes, "decoder") == "(batch, T_dec, 4)"
    assert constraints(shapes).count(("8", "4", False)) == 2


def test_time_distributed_sequential_frame_encoder():
    frame = keras.Sequential([keras.Input((6, 6, 1)), layers.Conv2D(2, 3),
                              layers.GlobalAveragePooling2D(), layers.Dense(3)], name="frame")
    x = keras.Input((None, 6, 6, 1))
    h = layers.TimeDistributed(frame, name="td")(x)
    y = layers.Bidirectional(layers.GRU(2), name="bi")(h)
    shapes = check(model(x, y))
    assert out_shape(shapes, "td") == "(batch, D, 3)"
    assert out_shape(shapes, "bi") == "(batch, 4)"
