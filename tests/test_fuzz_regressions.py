"""Minimal reproducers of what differential fuzzing found (``tests/fuzz``), one per fix."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from keras import layers  # noqa: E402

from shapecheck import check_model  # noqa: E402
from shapecheck.shapes import dims  # noqa: E402
from shapecheck.shapes.infer import infer_model  # noqa: E402
from shapecheck.verify.oracle import check_against_keras  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:The structure of `inputs`")


@pytest.fixture(autouse=True)
def _clear_session():
    keras.backend.clear_session()
    yield


def agree(model: keras.Model, sizes: dict | None = None) -> dict[str, list[str]]:
    """Inferred shapes (as text, by layer) after checking them against Keras."""
    shapes = infer_model(model)
    bad = [n for n in shapes.scope.notes if n.kind in ("inference-defect", "rule-error",
                                                       "shape-error")]
    assert not bad, bad
    mismatches = check_against_keras(model, sizes=sizes, shapes=shapes)
    assert not mismatches, "\n".join(map(str, mismatches))
    return {r.call.name: [dims.fmt_shape(s) for s in r.shapes] for r in shapes.results}


def loud(report) -> list[tuple[str, str]]:
    return [(d.code, d.severity) for d in report.diagnostics
            if d.severity in ("error", "warning")]


# --- MultiHeadAttention scores: Keras declares (batch, heads, Tq, Tq) ---------------------------


def test_mha_scores_key_of_another_length_than_a_static_query():
    q = keras.Input((7, 8))
    v = keras.Input((5, 8))
    _, scores = layers.MultiHeadAttention(2, 3, name="mha")(q, v, return_attention_scores=True)
    model = keras.Model([q, v], scores)
    assert tuple(scores.shape) == (None, 2, 7, 7)  # Keras's declaration
    assert agree(model)["mha"][1] == "(batch, 2, 7, 5)"  # what the call returns
    notes = [n for n in infer_model(model).scope.notes if n.kind == "keras-declaration"]
    assert len(notes) == 1 and "(?, 2, 7, 7)" in notes[0].message
    assert loud(check_model(model)) == []


def test_mha_scores_variable_key_after_a_static_query():
    q = keras.Input((6, 8))
    v = keras.Input((None, 8))
    _, scores = layers.MultiHeadAttention(1, 2, name="mha")(q, v, return_attention_scores=True)
    assert agree(keras.Model([q, v], scores))["mha"][1] == "(batch, 1, 6, T)"


@pytest.mark.parametrize("axes,expected", [
    ((2,), "(batch, 3, 2, W_in_q, W_in_k)"),
    (None, "(batch, 2, 3, W_in_q, 3, W_in_k)"),
])
def test_mha_scores_of_a_rank_4_query(axes, expected):
    q = keras.Input((3, None, 8), name="in_q")
    k = keras.Input((3, None, 8), name="in_k")
    layer = layers.MultiHeadAttention(2, 3, attention_axes=axes, name="mha")
    _, scores = layer(q, k, return_attention_scores=True)
    model = keras.Model([q, k], scores)
    assert agree(model, sizes={"W_in_q": [5, 6, 7], "W_in_k": [9, 4, 11]})["mha"][1] == expected


def test_dense_built_for_the_declared_scores_fails_at_run_time():
    q = keras.Input((7, 8))
    v = keras.Input((5, 8))
    _, scores = layers.MultiHeadAttention(2, 3)(q, v, return_attention_scores=True)
    model = keras.Model([q, v], layers.Dense(3, name="head")(scores))  # kernel (7, 3)
    with pytest.raises(Exception):
        model([np.zeros((2, 7, 8)), np.zeros((2, 5, 8))])
    found = [d for d in check_model(model).diagnostics if d.severity == "error"]
    assert [(d.code, d.layer) for d in found] == [("SC104", "head")]
    assert "expected 7, got 5" in found[0].message
    assert "declares" in found[0].hint


def test_layers_after_mha_scores_keep_the_run_time_shape():
    # Keras's shapes for the layers after the scores rest on its declaration
    # (batch, 2, 7, 7); they must not replace the run-time (batch, 2, 7, T).
    q = keras.Input((7, 8))
    v = keras.Input((None, 8))
    _, scores = layers.MultiHeadAttention(2, 3)(q, v, return_attention_scores=True)
    a = layers.UnitNormalization(axis=-3, name="unit")(scores)
    b = keras.ops.expand_dims(layers.Softmax(axis=2, name="soft")(scores), -1)
    model = keras.Model([q, v], [a, b])
    shapes = agree(model)
    assert shapes["unit"] == ["(batch, 2, 7, T)"]
    assert shapes["soft"] == ["(batch, 2, 7, T)"]
    assert shapes["expand_dims"] == ["(batch, 2, 7, T, 1)"]
    assert loud(check_model(model)) == []


# --- a loss per output, where one layer gives several outputs -----------------------------------


def test_losses_of_a_shared_layers_outputs_stay_with_their_outputs():
    x = keras.Input((3,))
    shared = layers.Dense(4)
    model = keras.Model(x, [shared(x), shared(layers.Activation("tanh")(x))])
    y = [np.zeros((6, 4), "float32"), np.zeros((6,), "int32")]
    report = check_model(model, data=np.zeros((6, 3), "float32"), targets=y,
                         loss=["mse", "sparse_categorical_crossentropy"], batch_size=3)
    assert loud(report) == []


def test_losses_of_a_layers_several_outputs_stay_with_their_outputs():
    s = keras.Input((7, 8))
    outs = layers.Bidirectional(layers.LSTM(2, return_state=True))(s)  # 5 outputs
    model = keras.Model(s, list(outs))
    y = [np.eye(4, dtype="float32")[np.arange(6) % 4], np.zeros((6,), "int32")] + \
        [np.zeros((6, 2), "float32")] * 3
    losses = ["categorical_crossentropy", "sparse_categorical_crossentropy"] + ["mse"] * 3
    report = check_model(model, data=np.zeros((6, 7, 8), "float32"), targets=y, loss=losses,
                         batch_size=3)
    assert loud(report) == []
    # and a wrong target is still found at its own output
    y[1] = np.zeros((6, 3), "float32")
    report = check_model(model, data=np.zeros((6, 7, 8), "float32"), targets=y, loss=losses,
                         batch_size=3)
    assert [(d.code, d.severity) for d in report.diagnostics] == [("SC703", "error")]


# --- the probe fallback: an input dim that is constant at every probe size ---------------------


def test_lambda_passes_a_saturating_dim_through():
    # ``x[:, :, 1:4]`` is Min(3, W - 1) steps: 3 at every large probe size, so the
    # Lambda's output was taken for a constant 3 (wrong for W < 4).
    x = keras.Input((None, None, 2))
    cut = x[:, :, 1:4]
    twice = layers.Lambda(lambda v: keras.ops.concatenate([v, v], axis=-1), name="twice")(cut)
    head = layers.Lambda(lambda v: v[:, :, :2], name="head")(cut)
    shapes = agree(keras.Model(x, [twice, head]), sizes={"H": [5, 6, 7], "W": [3, 2, 9]})
    assert shapes["twice"] == ["(batch, H, Min(3, W - 1), 4)"]
    assert shapes["head"] == ["(batch, H, Min(2, W - 1), 2)"]


def test_lambda_with_a_constant_output_stays_constant():
    x = keras.Input((None, 5))
    cut = x[:, 2:6]  # Min(4, Max(0, T - 2))
    out = layers.Lambda(lambda v: keras.ops.zeros_like(v)[:, :1] + 1.0, name="one")(cut)
    shapes = agree(keras.Model(x, out), sizes={"T": [9, 12, 20]})
    assert shapes["one"] == ["(batch, 1, 5)"]


def test_lambda_doubles_a_saturating_dim():
    # 2*Min(25, T): linear in the input dim Min(25, T), which only the small probes
    # tell apart from a constant
    x = keras.Input((None, 3))
    twice = layers.Lambda(lambda v: keras.ops.concatenate([v, v], axis=1),
                          name="twice")(x[:, -25:])
    shapes = agree(keras.Model(x, twice), sizes={"T": [28, 34, 11]})
    assert shapes["twice"] == ["(batch, 2*Min(25, T), 3)"]


# --- RepeatVector's fixed steps: a warning about targets, quiet when they agree -------------------


def _repeat_model() -> keras.Model:
    seq = keras.Input((None, 3), name="seq")
    code = layers.GRU(4, name="enc")(seq)
    steps = layers.RepeatVector(9, name="repeat")(code)
    return keras.Model(seq, layers.GRU(2, return_sequences=True, name="dec")(steps))


def test_repeat_vector_warning_without_targets():
    assert ("SC203", "warning") in loud(check_model(_repeat_model()))


def test_repeat_vector_quiet_when_fed_targets_have_its_steps():
    x = np.zeros((4, 12, 3), "float32")
    report = check_model(_repeat_model(), data=x, targets=np.zeros((4, 9, 2), "float32"),
                         loss="mse", batch_size=2)
    assert loud(report) == []


def test_repeat_vector_warns_when_fed_targets_have_other_steps():
    x = np.zeros((4, 12, 3), "float32")
    report = check_model(_repeat_model(), data=x, targets=np.zeros((4, 12, 2), "float32"),
                         loss="mse", batch_size=2)
    codes = {c for c, _ in loud(report)}
    assert "SC203" in codes and len(codes) >= 2, loud(report)


# --- check_model: models nested in the model checked are checked too ----------------------------


def test_a_dropped_state_inside_a_nested_model_is_found():
    """The fuzzer's seed 8626: an LSTM given 1 of its 2 states inside a sub-model."""
    inner_in = keras.Input((1, 4))
    state = layers.Dense(3)(layers.GlobalAveragePooling1D()(inner_in))
    inner = keras.Model(inner_in, layers.LSTM(3, name="lstm")(inner_in, initial_state=[state]),
                        name="inner")
    outer_in = keras.Input((1, 4))
    outer = keras.Model(outer_in, layers.Dense(2)(inner(outer_in)), name="outer")
    report = check_model(outer)
    assert ("SC401", "error") in loud(report)
    assert [m.name for m in report.models] == ["outer", "inner"]
