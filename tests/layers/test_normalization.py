"""Normalization and regularization layers: all shape preserving."""

from __future__ import annotations

import keras
import pytest

from shapecheck.shapes import dims
from shapecheck.shapes.infer import Scope, infer_model
from shapecheck.shapes.layers.registry import Call, ShapeError, Sym, find_rule
from tests.layers.conftest import check, out_shape

L = keras.layers
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def _model(shape, layer, name="x"):
    x = keras.Input(shape, name=name)
    return keras.Model(x, layer(x))


def _rule(layer, shape):
    scope = Scope()
    fn = find_rule(layer)
    assert fn is not None
    out = fn(Call(op=layer, args=(Sym(tuple(shape)),), kwargs={}, scope=scope, layer="n"))
    return out, scope


B, T = dims.symbol("batch"), dims.symbol("T")


# --- normalization -----------------------------------------------------------------


@pytest.mark.parametrize("make, shape, want", [
    (lambda: L.BatchNormalization(name="n"), (None, 8), "(batch, T, 8)"),
    (lambda: L.BatchNormalization(name="n"), (None, None, 3), "(batch, H, W, 3)"),
    (lambda: L.BatchNormalization(axis=1, name="n"), (3, None, None), "(batch, 3, W, C)"),
    (lambda: L.BatchNormalization(momentum=0.8, center=False, scale=False, name="n"),
     (5,), "(batch, 5)"),
    (lambda: L.BatchNormalization(renorm=True, name="n"), (None, 4), "(batch, T, 4)"),
    (lambda: L.LayerNormalization(name="n"), (None, 8), "(batch, T, 8)"),
    (lambda: L.LayerNormalization(axis=[-2, -1], name="n"), (4, 8), "(batch, 4, 8)"),
    (lambda: L.LayerNormalization(axis=(1, 2, 3), name="n"), (2, 3, 4), "(batch, 2, 3, 4)"),
    (lambda: L.LayerNormalization(rms_scaling=True, name="n"), (None, 6), "(batch, T, 6)"),
    (lambda: L.LayerNormalization(center=False, scale=False, name="n"), (None, 6),
     "(batch, T, 6)"),
    (lambda: L.GroupNormalization(groups=2, name="n"), (None, None, 4), "(batch, H, W, 4)"),
    (lambda: L.GroupNormalization(groups=-1, name="n"), (None, 6), "(batch, T, 6)"),
    (lambda: L.GroupNormalization(groups=3, axis=1, name="n"), (6, None), "(batch, 6, F)"),
    (lambda: L.UnitNormalization(name="n"), (None, 8), "(batch, T, 8)"),
    (lambda: L.UnitNormalization(axis=[1, 2], name="n"), (None, None), "(batch, T, F)"),
    (lambda: L.UnitNormalization(axis=1, name="n"), (None, None, 3), "(batch, H, W, 3)"),
    (lambda: L.RMSNormalization(name="n"), (None, 8), "(batch, T, 8)"),
    (lambda: L.RMSNormalization(axis=[-2, -1], name="n"), (4, 8), "(batch, 4, 8)"),
])
def test_normalization(make, shape, want):
    shapes = check(_model(shape, make()))
    assert out_shape(shapes, "n") == want
    assert not shapes.scope.constraints


@pytest.mark.parametrize("layer, shape", [
    (L.UnitNormalization(axis=2), (B, 4)),
    (L.UnitNormalization(axis=[1, -3]), (B, 4)),
    (L.LayerNormalization(axis=3), (B, T, 4)),
    (L.BatchNormalization(axis=-4), (B, T, 4)),
])
def test_axis_out_of_bounds(layer, shape):
    with pytest.raises(ShapeError):
        _rule(layer, shape)


def test_batch_norm_shared_unknown_axis_records_constraint():
    a = keras.Input((None, 8), name="a")
    b = keras.Input((None, None), name="b")
    bn = L.BatchNormalization(name="n")
    m = keras.Model([a, b], [bn(a), bn(b)])
    shapes = infer_model(m)
    assert not shapes.scope.notes
    assert ("F_b", "8") in {(str(c.lhs), str(c.rhs)) for c in shapes.scope.constraints}
    check(m, sizes={"F_b": [8]})


def test_batch_norm_rank_mismatch_is_a_shape_error():
    bn = L.BatchNormalization()
    bn(keras.Input((None, 8)))
    with pytest.raises(ShapeError):
        _rule(bn, (B, 8))
    with pytest.raises(ShapeError):
        _rule(bn, (B, T, 6))


def test_layer_norm_shared_known_mismatch():
    # LayerNormalization has no input spec: Keras builds the model, the run fails.
    a = keras.Input((None, 8), name="a")
    b = keras.Input((None, 6), name="b")
    ln = L.LayerNormalization(name="n")
    m = keras.Model([a, b], [ln(a), ln(b)])
    shapes = infer_model(m)
    assert "shape-error" in [n.kind for n in shapes.scope.notes]


def test_layer_norm_shared_unknown_axis_records_constraint():
    a = keras.Input((None, 8), name="a")
    b = keras.Input((None, None), name="b")
    ln = L.LayerNormalization(name="n")
    m = keras.Model([a, b], [ln(a), ln(b)])
    shapes = infer_model(m)
    assert not shapes.scope.notes
    assert ("F_b", "8") in {(str(c.lhs), str(c.rhs)) for c in shapes.scope.constraints}


def test_rms_norm_shared_known_mismatch():
    rms = L.RMSNormalization()
    rms(keras.Input((None, 8)))
    with pytest.raises(ShapeError):
        _rule(rms, (B, T, 6))
    out, scope = _rule(rms, (B, T, 8))
    assert out == (B, T, 8) and not scope.constraints


def test_group_norm_shared_mismatch():
    gn = L.GroupNormalization(groups=2)
    gn(keras.Input((None, 4)))
    with pytest.raises(ShapeError):
        _rule(gn, (B, T, 6))


@pytest.mark.parametrize("make, shape, want", [
    (lambda: L.Dense(6), (None, 4), "(batch, T, 6)"),
    (lambda: L.Dense(3), (4,), "(batch, 3)"),
    (lambda: L.Conv2D(2, 3), (9, 9, 1), "(batch, 7, 7, 2)"),
    (lambda: L.Conv1D(5, 3, padding="same"), (None, 2), "(batch, T, 5)"),
])
def test_spectral_normalization(make, shape, want):
    shapes = check(_model(shape, L.SpectralNormalization(make(), name="n")))
    assert out_shape(shapes, "n") == want


def test_spectral_normalization_embedding():
    x = keras.Input((None,), dtype="int32", name="x")
    m = keras.Model(x, L.SpectralNormalization(L.Embedding(10, 4), name="n")(x))
    shapes = check(m)
    assert out_shape(shapes, "n") == "(batch, L, 4)"


# --- regularization ----------------------------------------------------------------


@pytest.mark.parametrize("make, shape, want", [
    (lambda: L.Dropout(0.5, name="n"), (None, 8), "(batch, T, 8)"),
    (lambda: L.Dropout(0.2, noise_shape=(None, 1, 8), name="n"), (None, 8), "(batch, T, 8)"),
    (lambda: L.Dropout(0.3, name="n"), (None, None, 3), "(batch, H, W, 3)"),
    (lambda: L.SpatialDropout1D(0.5, name="n"), (None, 8), "(batch, T, 8)"),
    (lambda: L.SpatialDropout2D(0.5, name="n"), (None, None, 3), "(batch, H, W, 3)"),
    (lambda: L.SpatialDropout2D(0.5, data_format="channels_first", name="n"), (3, None, 5),
     "(batch, 3, W, 5)"),
    (lambda: L.SpatialDropout3D(0.5, name="n"), (None, 4, None, 2), "(batch, D, 4, W, 2)"),
    (lambda: L.GaussianNoise(0.1, name="n"), (None, 8), "(batch, T, 8)"),
    (lambda: L.GaussianDropout(0.1, name="n"), (None, 8), "(batch, T, 8)"),
    (lambda: L.AlphaDropout(0.1, name="n"), (None, 8), "(batch, T, 8)"),
    (lambda: L.ActivityRegularization(l1=0.01, l2=0.01, name="n"), (None, 8), "(batch, T, 8)"),
    (lambda: L.ActivityRegularization(name="n"), (7,), "(batch, 7)"),
])
def test_regularization(make, shape, want):
    shapes = check(_model(shape, make()))
    assert out_shape(shapes, "n") == want


@pytest.mark.parametrize("layer, shape", [
    (L.SpatialDropout1D(0.5), (B, 8)),
    (L.SpatialDropout2D(0.5), (B, T, 8)),
    (L.SpatialDropout3D(0.5), (B, T, T, 8)),
])
def test_spatial_dropout_rank_errors(layer, shape):
    with pytest.raises(ShapeError):
        _rule(layer, shape)


def test_norm_block():
    x = keras.Input((None, 16), name="x")
    h = L.LayerNormalization(epsilon=1e-6)(x)
    h = L.Dense(32, activation="gelu")(h)
    h = L.Dropout(0.1)(h)
    h = L.Dense(16)(h)
    h = L.Dropout(0.1)(h)
    y = L.Add(name="res")([x, h])
    y = L.BatchNormalization(name="n")(y)
    shapes = check(keras.Model(x, y))
    assert out_shape(shapes, "n") == "(batch, T, 16)"
    assert not shapes.scope.constraints


def test_batch_norm_after_masking():
    x = keras.Input((None, 4), name="x")
    h = L.Masking(name="mask")(x)
    y = L.BatchNormalization(name="n")(h)
    shapes = check(keras.Model(x, y))
    assert out_shape(shapes, "n") == "(batch, T, 4)"


def test_batch_norm_mask_rank():
    bn = L.BatchNormalization()
    bn(keras.Input((None, 4)))
    fn = find_rule(bn)

    def run(mask_shape):
        scope = Scope()
        return fn(Call(op=bn, args=(Sym((B, T, 4)),), kwargs={"mask": Sym(mask_shape, "bool")},
                       scope=scope, layer="n"))

    assert run((B, T)) == (B, T, 4)
    with pytest.raises(ShapeError):
        run((B, T, 4))


# --- statistics made for another size (Keras builds the model; the run fails) ----------


def _runs(model, shape) -> bool:
    import numpy as np

    try:
        model.predict(np.zeros(shape, "float32"), verbose=0)
    except Exception:  # noqa: BLE001  (Keras raises several kinds)
        return False
    return True


def test_normalization_adapted_to_other_features_fails_and_is_found():
    import numpy as np

    import shapecheck

    norm = L.Normalization()
    norm.adapt(np.random.rand(10, 100).astype("float32"))  # transposed: 100 features
    with pytest.raises(ShapeError, match="adapted to data of shape"):
        _rule(norm, (B, 10))
    out, scope = _rule(norm, (B, 100))
    assert out == (B, 100) and not scope.constraints
    model = keras.Sequential([keras.Input((10,)), norm, L.Dense(1)])
    (d,) = shapecheck.check_model(model).diagnostics
    assert (d.code, d.layer) == ("SC105", norm.name) and "expected 100, got 10" in d.message
    assert not _runs(model, (2, 10))  # Keras: "Dimensions must be equal, but are 10 and 100"
    good = L.Normalization()
    good.adapt(np.random.rand(100, 10).astype("float32"))
    fine = keras.Sequential([keras.Input((10,)), good, L.Dense(1)])
    assert shapecheck.check_model(fine).diagnostics == [] and _runs(fine, (2, 10))


def test_normalization_given_statistics_and_other_axes():
    norm = L.Normalization(axis=1, mean=[0.0, 1.0, 2.0], variance=[1.0, 1.0, 1.0])
    norm.build((None, 3, 5))
    with pytest.raises(ShapeError, match="given to"):
        _rule(norm, (B, 4, 5))
    assert _rule(norm, (B, 3, T))[0] == (B, 3, T)
    unbuilt = L.Normalization()
    assert _rule(unbuilt, (B, T, 7))[0] == (B, T, 7)


def test_layer_norm_built_for_another_width_is_a_finding_and_keras_fails():
    import shapecheck

    ln = L.LayerNormalization()
    ln.build((None, 100))
    model = keras.Sequential([keras.Input((10,)), ln, L.Dense(1)])
    (d,) = shapecheck.check_model(model).diagnostics
    assert d.code == "SC105" and "fails on the first batch" in d.message
    assert "made for another input" in d.hint
    assert not _runs(model, (2, 10))
