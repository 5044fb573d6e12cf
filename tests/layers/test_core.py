"""Core and activation layers: Dense, EinsumDense, Embedding, Identity, Masking, ..."""

from __future__ import annotations

import keras
import pytest

from shapecheck.shapes.infer import infer_model
from shapecheck.shapes.layers.registry import find_rule
from tests.layers.conftest import check, out_shape

L = keras.layers
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def _model(shape, layer, dtype="float32", name="x"):
    x = keras.Input(shape, dtype=dtype, name=name)
    y = layer(x)
    return keras.Model(x, y)


def _notes(shapes):
    return [(n.kind, n.message) for n in shapes.scope.notes]


# --- Dense -------------------------------------------------------------------------


@pytest.mark.parametrize("shape, units, want", [
    ((16,), 8, "(batch, 8)"),
    ((None, 16), 8, "(batch, T, 8)"),
    ((None, None, 3), 5, "(batch, H, W, 5)"),
    ((4, None, 6, 3), 2, "(batch, 4, H, 6, 2)"),
    ((7, 16), 1, "(batch, 7, 1)"),
])
def test_dense(shape, units, want):
    m = _model(shape, L.Dense(units, activation="relu", name="d"))
    shapes = check(m)
    assert out_shape(shapes, "d") == want


def test_dense_shared_on_unknown_last_axis_records_constraint():
    a = keras.Input((16,), name="a")
    b = keras.Input((None,), name="b")
    dense = L.Dense(4, name="d")
    m = keras.Model([a, b], [dense(a), dense(b)])
    shapes = infer_model(m)
    assert not shapes.scope.notes
    cons = [(str(c.lhs), str(c.rhs)) for c in shapes.scope.constraints]
    assert ("L", "16") in cons
    check(m, sizes={"L": [16]})


def test_dense_shared_known_mismatch_is_a_shape_error():
    # Keras's own input spec check catches it at construction time.
    dense = L.Dense(4)
    dense(keras.Input((16,)))
    with pytest.raises(ValueError):
        dense(keras.Input((8,)))


# --- EinsumDense -------------------------------------------------------------------


@pytest.mark.parametrize("eq, bias, in_shape, out, want", [
    ("ab,b->a", None, (32,), (), "(batch,)"),
    ("ab,bc->ac", None, (32,), 64, "(batch, 64)"),
    ("abc,cde->abde", None, (1, 2), (1, 3, 4), "(batch, 1, 3, 4)"),
    ("abc,cde->abde", "be", (7, 2), (7, 3, 4), "(batch, 7, 3, 4)"),
    ("BFNH,NHD->BFD", None, (1, 2, 3), (1, 4), "(batch, 1, 4)"),
    ("abc,cd->abd", None, (None, 2), (None, 4), "(batch, T, 4)"),
    ("abc,cd->abd", "d", (5, 2), (None, 4), "(batch, 5, 4)"),
    ("ibd,nd->ibn", None, (2, 1), (2, 2), "(batch, 2, 2)"),
    ("...b,bc->...c", None, (32,), (64,), "(batch, 64)"),
    ("...bc,bc->...b", None, (32, 64), (32,), "(batch, 32)"),
    ("...b,bc->...c", None, (None, 32), (64,), "(batch, T, 64)"),
    ("...c,cde->...de", "de", (None, 2), (3, 4), "(batch, T, 3, 4)"),
    ("...b,bc->...c", "c", (None, None, 32), 8, "(batch, H, W, 8)"),
    ("...b,bc->...c", None, (4, 4, 32), 8, "(batch, 4, 4, 8)"),
    ("bc...,cd->bd...", None, (1, 2, 3), (4,), "(batch, 4, 2, 3)"),
    ("bc...,cde->bde...", "d", (1, None), (3, 4), "(batch, 3, 4, F)"),
    ("abc,cd->abd", "d", (None, 16), (None, 8), "(batch, T, 8)"),
    # attention-style projections
    ("abc,cde->abde", "de", (None, 16), (None, 4, 8), "(batch, T, 4, 8)"),
    ("abcd,cde->abe", "e", (None, 4, 8), (None, 16), "(batch, H, 16)"),
])
def test_einsum_dense(eq, bias, in_shape, out, want):
    m = _model(in_shape, L.EinsumDense(eq, output_shape=out, bias_axes=bias, name="e"))
    shapes = check(m)
    assert out_shape(shapes, "e") == want


def test_einsum_dense_batchless_equation():
    m = _model((), L.EinsumDense("i,d->id", output_shape=(2,), name="e"))
    shapes = check(m)
    assert out_shape(shapes, "e") == "(batch, 2)"


def test_einsum_dense_left_ellipsis_rank4_unknown_axes():
    # Keras lists elided axes reversed in its static shape; the run-time order
    # is kept where the axes are unknown.
    m = _model((None, None, 8), L.EinsumDense("...b,bc->...c", output_shape=4, name="e"))
    shapes = check(m)
    assert out_shape(shapes, "e") == "(batch, H, W, 4)"


def test_einsum_dense_left_ellipsis_rank5_unknown_axes():
    m = _model((None, None, None, 8), L.EinsumDense("...b,bc->...c", output_shape=4,
                                                    name="e"))
    shapes = check(m)
    assert out_shape(shapes, "e") == "(batch, D, H, W, 4)"


def test_einsum_dense_chain_into_dense():
    x = keras.Input((None, 16), name="x")
    h = L.EinsumDense("abc,cde->abde", output_shape=(None, 2, 8), bias_axes="de",
                      name="proj")(x)
    y = L.EinsumDense("abde,def->abf", output_shape=(None, 16), name="back")(h)
    z = L.Dense(3, name="d")(y)
    shapes = check(keras.Model(x, z))
    assert out_shape(shapes, "proj") == "(batch, T, 2, 8)"
    assert out_shape(shapes, "back") == "(batch, T, 16)"
    assert out_shape(shapes, "d") == "(batch, T, 3)"


# --- Embedding ---------------------------------------------------------------------


@pytest.mark.parametrize("shape, want", [
    ((None,), "(batch, L, 8)"),
    ((7,), "(batch, 7, 8)"),
    ((None, 3), "(batch, T, 3, 8)"),
    ((), "(batch, 8)"),
])
def test_embedding(shape, want):
    m = _model(shape, L.Embedding(20, 8, name="emb"), dtype="int32")
    shapes = check(m)
    assert out_shape(shapes, "emb") == want


def test_embedding_mask_zero_then_dense():
    x = keras.Input((None,), dtype="int32", name="tok")
    e = L.Embedding(20, 8, mask_zero=True, name="emb")(x)
    y = L.Dense(4, name="d")(e)
    shapes = check(keras.Model(x, y))
    assert out_shape(shapes, "d") == "(batch, L, 4)"


def test_reversible_embedding():
    x = keras.Input((None,), dtype="int32", name="tok")
    layer = L.ReversibleEmbedding(30, 8, name="emb")
    h = layer(x)
    logits = layer(h, reverse=True)
    m = keras.Model(x, logits)
    shapes = check(m)
    assert out_shape(shapes, "emb", 0) == "(batch, L, 8)"
    results = [r for r in shapes.results if r.call.name == "emb"]
    assert len(results) == 2
    from shapecheck.shapes import dims
    assert dims.fmt_shape(results[1].shapes[0]) == "(batch, L, 30)"


def test_reversible_embedding_untied():
    x = keras.Input((5,), dtype="int32", name="tok")
    layer = L.ReversibleEmbedding(30, 8, tie_weights=False, name="emb")
    m = keras.Model(x, layer(layer(x), reverse=True))
    check(m)


# --- shape-preserving --------------------------------------------------------------


PRESERVING = [
    lambda: L.Identity(name="p"),
    lambda: L.Masking(0.0, name="p"),
    lambda: L.Activation("tanh", name="p"),
    lambda: L.Activation("softmax", name="p"),
    lambda: L.ReLU(max_value=6.0, name="p"),
    lambda: L.ReLU(negative_slope=0.1, threshold=0.5, name="p"),
    lambda: L.LeakyReLU(negative_slope=0.2, name="p"),
    lambda: L.ELU(alpha=0.5, name="p"),
    lambda: L.Softmax(name="p"),
    lambda: L.Softmax(axis=1, name="p"),
    lambda: L.Softmax(axis=(1, 2), name="p"),
    lambda: L.PReLU(shared_axes=[1], name="p"),
]


@pytest.mark.parametrize("make", PRESERVING)
@pytest.mark.parametrize("shape, want", [
    ((None, 6), "(batch, T, 6)"),
    ((5, 6), "(batch, 5, 6)"),
])
def test_shape_preserving(make, shape, want):
    layer = make()
    m = _model(shape, layer)
    shapes = check(m)
    assert out_shape(shapes, "p") == want


@pytest.mark.parametrize("make", [
    lambda: L.ReLU(name="p"), lambda: L.Activation("gelu", name="p"),
    lambda: L.Softmax(axis=-2, name="p"), lambda: L.PReLU(shared_axes=[1, 2], name="p"),
])
def test_shape_preserving_rank4(make):
    m = _model((None, None, 3), make())
    shapes = check(m)
    assert out_shape(shapes, "p") == "(batch, H, W, 3)"


def test_identity_passes_nested_inputs():
    a = keras.Input((None, 4), name="a")
    b = keras.Input((3,), name="b")
    outs = L.Identity(name="p")([a, b])
    m = keras.Model([a, b], outs)
    shapes = check(m)
    assert out_shape(shapes, "p", 0) == "(batch, T, 4)"
    assert out_shape(shapes, "p", 1) == "(batch, 3)"


def test_prelu_full_alpha():
    m = _model((5, 6), L.PReLU(name="p"))
    shapes = check(m)
    assert out_shape(shapes, "p") == "(batch, 5, 6)"


def test_prelu_shared_layer_known_mismatch_is_a_shape_error():
    # No input spec without shared axes: Keras builds the model, the run fails.
    a = keras.Input((4, 6), name="a")
    b = keras.Input((4, 7), name="b")
    layer = L.PReLU(name="p")
    m = keras.Model([a, b], [layer(a), layer(b)])
    shapes = infer_model(m)
    assert "shape-error" in [n.kind for n in shapes.scope.notes]


def test_prelu_shared_on_unknown_axis_records_constraint():
    a = keras.Input((4, 6), name="a")
    b = keras.Input((None, 6), name="b")
    layer = L.PReLU(name="p")
    m = keras.Model([a, b], [layer(a), layer(b)])
    shapes = infer_model(m)
    assert not shapes.scope.notes
    assert ("T", "4") in [(str(c.lhs), str(c.rhs)) for c in shapes.scope.constraints]
    check(m, sizes={"T": [4]})


def test_prelu_shared_axes_unknown_axis():
    a = keras.Input((4, 6), name="a")
    b = keras.Input((None, 6), name="b")
    layer = L.PReLU(shared_axes=[1], name="p")
    m = keras.Model([a, b], [layer(a), layer(b)])
    shapes = check(m)
    assert not shapes.scope.constraints


def test_softmax_with_explicit_mask():
    x = keras.Input((2, None, None), name="scores")
    mask = keras.Input((1, 1, None), dtype="bool", name="mask")
    y = L.Softmax(name="p")(x, mask=mask)
    m = keras.Model([x, mask], y)
    shapes = infer_model(m)
    assert not shapes.scope.notes
    assert out_shape(shapes, "p") == "(batch, 2, W_scores, C_scores)"
    cons = {(str(c.lhs), str(c.rhs)) for c in shapes.scope.constraints}
    assert cons == {("C_mask", "C_scores")}
    check(m, sizes={"C_mask": [5, 7, 9], "C_scores": [5, 7, 9]})


def test_softmax_mask_propagated_from_embedding_mismatch():
    # Keras hands the (batch, L) mask to Softmax over (batch, L, 8): at run
    # time the right-aligned broadcast fails unless L == 8 and batch == L.
    x = keras.Input((None,), dtype="int32", name="tok")
    e = L.Embedding(10, 8, mask_zero=True)(x)
    y = L.Softmax(name="p")(e)
    shapes = infer_model(keras.Model(x, y))
    cons = {(str(c.lhs), str(c.rhs)) for c in shapes.scope.constraints}
    assert ("L", "8") in cons


def test_softmax_mask_known_mismatch_is_a_shape_error():
    x = keras.Input((5,), dtype="int32", name="tok")
    e = L.Embedding(10, 4, mask_zero=True)(x)
    y = L.Softmax(name="p")(e)
    shapes = infer_model(keras.Model(x, y))
    assert "shape-error" in [n.kind for n in shapes.scope.notes]


def test_lambda_has_no_rule():
    assert find_rule(L.Lambda(lambda t: t)) is None


def test_dense_after_activation_chain():
    x = keras.Input((None, 12), name="x")
    h = L.Dense(24, name="d1")(x)
    h = L.LeakyReLU(name="act")(h)
    h = L.Masking(name="mask")(h)
    h = L.Dense(6, name="d2")(h)
    shapes = check(keras.Model(x, h))
    assert out_shape(shapes, "d2") == "(batch, T, 6)"


def test_einsum_dense_shared_kernel_checks():
    layer = L.EinsumDense("abc,cd->abd", output_shape=(None, 4))
    layer(keras.Input((None, 16)))
    from shapecheck.shapes.infer import Scope
    from shapecheck.shapes.layers.registry import Call, ShapeError, Sym
    from shapecheck.shapes import dims
    B, T, F = dims.symbol("batch"), dims.symbol("T"), dims.symbol("F")

    def run(shape):
        scope = Scope()
        out = find_rule(layer)(Call(op=layer, args=(Sym(shape),), kwargs={}, scope=scope,
                                    layer="e"))
        return out, scope

    with pytest.raises(ShapeError):
        run((B, T, 8))
    with pytest.raises(ShapeError):
        run((B, 8))
    out, scope = run((B, T, F))
    assert dims.fmt_shape(out) == "(batch, T, 4)"
    assert [(str(c.lhs), str(c.rhs)) for c in scope.constraints] == [("F", "16")]


def test_dense_and_concatenate_called_by_keyword():
    x = keras.Input((None, 4), name="x")
    y = L.Dense(3, name="d")(inputs=x)
    z = L.Concatenate(axis=1, name="c")(inputs=[y, y])
    shapes = check(keras.Model(x, z))
    assert out_shape(shapes, "c") == "(batch, 2*T, 3)"


def test_einsum_dense_left_ellipsis_known_axes_follow_keras_static_shape():
    # Keras's static shape reverses the elided axes (a Keras bug: run time
    # gives (batch, 4, 5, 8)); known sizes follow Keras, so no note is raised.
    m = _model((4, 5, 32), L.EinsumDense("...b,bc->...c", output_shape=8, name="e"))
    shapes = infer_model(m)
    assert not shapes.scope.notes
    assert out_shape(shapes, "e") == tuple_str(m.get_layer("e").output.shape)


def tuple_str(shape):
    from shapecheck.shapes import dims
    return dims.fmt_shape(tuple("batch" if d is None else d for d in shape))
