"""Shape contracts (``assert_shapes``, ``assert_compatible``), each checked against Keras.

Every contract a test says holds is also run through Keras at several sizes (a forward
pass on zeros): the shapes Keras gives must be the spec's at those sizes.  Every failure
is run at its witness size: Keras's shape must differ from the spec's there.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest

import shapecheck
from shapecheck.api import shape_table
from shapecheck.shapes import dims
from shapecheck.shapes.contracts import (Domain, ShapeTable, SpecError, check_shapes,
                                         eval_expr, parse_spec)

L = keras.layers
pytestmark = pytest.mark.filterwarnings("ignore:The structure of `inputs`")


# --- the oracle -------------------------------------------------------------------


def inputs_at(model, sizes: dict[str, int], batch: int = 2) -> list[np.ndarray]:
    """Zeros for each input of ``model``, its named dims at ``sizes``."""
    table = shape_table(model)
    env = {"batch": batch, **sizes}
    out = []
    for (_, layer, index), t in zip(table.inputs, model.inputs):
        shape = [dims.evaluate(d, env) for d in table.shape(layer, index)]
        assert None not in shape, f"no size for {table.shape(layer, index)} in {env}"
        out.append(np.zeros(shape, dtype=t.dtype))
    return out


def keras_shapes(model, sizes, layer: str | None = None, batch: int = 2) -> list[tuple]:
    """Keras's output shapes (of ``layer``, else of the model) at ``sizes``."""
    target = model if layer is None else keras.Model(model.inputs,
                                                     model.get_layer(layer).output)
    xs = inputs_at(model, sizes, batch)
    got = target(xs if len(xs) > 1 else xs[0])
    return [tuple(t.shape) for t in keras.tree.flatten(got)]


def spec_at(spec: str, bindings: dict, sizes: dict[str, int]) -> list:
    """The spec's sizes under ``bindings`` (spec name -> dim) at ``sizes``; None for
    an axis the spec leaves free."""
    env = {n: v for n, v in bindings.items() if not isinstance(v, tuple)}
    out: list = []
    for a in parse_spec(spec):
        if a.kind == "int":
            out.append(a.value)
        elif a.kind == "name":
            out.append(dims.evaluate(bindings[a.name], sizes))
        elif a.kind == "expr":
            out.append(dims.evaluate(eval_expr(a.tree, env), sizes))
        elif a.kind == "many" and a.name is not None:
            out += [dims.evaluate(d, sizes) for d in bindings[a.name]]
        else:
            out.append(None)
    return out


def fits(spec: str, bindings: dict, sizes: dict[str, int], shape: tuple) -> bool:
    want = spec_at(spec, bindings, sizes)
    if any(a.kind == "many" and a.name is None for a in parse_spec(spec)):
        raise ValueError("anonymous `...`: compare by hand")
    return len(want) == len(shape) and all(w is None or w == s for w, s in zip(want, shape))


# --- specs and matching, without Keras ----------------------------------------------


def test_parse_spec_reads_jaxtyping_axes():
    kinds = [(a.kind, a.name, a.value) for a in parse_spec("*batch T 400 _ (T-3)//2+1")]
    assert kinds == [("many", "batch", None), ("name", "T", None), ("int", None, 400),
                     ("any", None, None), ("expr", None, None)]
    assert [a.kind for a in parse_spec("... T")] == ["many", "name"]
    with pytest.raises(SpecError, match="at most one"):
        parse_spec("*a T *b")
    for bad in ("T/2", "T**2", "f(T)", "T.x"):
        with pytest.raises(SpecError, match="is not an axis"):
            parse_spec(f"batch {bad}")


def table(**layers) -> ShapeTable:
    """A table of layers' shapes written as text: ``x="batch, T, 80"``."""
    parsed = {name: [tuple(dims.from_json(int(p) if p.strip().isdigit() else p.strip())
                           for p in text.split(","))] for name, text in layers.items()}
    first, last = next(iter(parsed)), list(parsed)[-1]
    return ShapeTable("m", parsed, [(first, first, 0)], [(last, last, 0)], Domain())


def test_names_bind_across_entries_and_expressions_evaluate():
    t = table(x="batch, T, 80", y="batch, floor((T - 3)/2) + 1, 16")
    io_in, io_out = t.inputs[0], t.outputs[0]
    bound = check_shapes(t, None, [(io_in, "batch T 80")], [(io_out, "batch (T-3)//2+1 16")])
    assert {n: str(v) for n, v in bound.items()} == {"batch": "batch", "T": "T"}
    with pytest.raises(AssertionError) as err:
        check_shapes(t, None, [(io_in, "batch T 80")], [(io_out, "batch T//2 16")])
    (failure,) = err.value.failures
    assert failure.witness == {"T": 2, "batch": 1}  # floor(2/2) = 1, floor(-1/2) + 1 = 0
    assert "differ for even T" in str(err.value)


def test_an_expression_solves_for_a_name_only_when_it_is_a_whole_size():
    t = table(x="batch, T", y="batch, 2*T")
    bound = check_shapes(t, {"y": "batch 2*N"})
    assert str(bound["N"]) == "T"  # N bound by solving 2*N = 2*T
    with pytest.raises(SpecError, match="bound nowhere"):
        check_shapes(t, {"x": "batch 2*N"})  # N = T/2 is no size for odd T


def test_variadic_binds_a_sequence_and_must_repeat_it():
    t = table(x="batch, H, W, 3", y="batch, H, W, 8", z="batch, H, 8")
    bound = check_shapes(t, {"x": "*b 3", "y": "*b 8"})
    assert [str(d) for d in bound["b"]] == ["batch", "H", "W"]
    with pytest.raises(AssertionError, match=r"`\*b` is \(batch, H, W\) \(bound at `x` "
                       r"axes 0..2\); got batch, H: 3 axes, here 2"):
        check_shapes(t, {"x": "*b 3", "z": "*b 8"})
    with pytest.raises(AssertionError, match="rank: the spec has 3 axes, the shape has 4"):
        check_shapes(t, {"x": "batch H 3"})
    with pytest.raises(SpecError, match="both as"):
        check_shapes(t, {"x": "*b 3", "z": "b H 8"})


# --- Keras models ------------------------------------------------------------------


def conv_model(padding: str = "valid") -> keras.Model:
    x = keras.Input((None, 80), name="frames")
    h = L.Conv1D(64, 3, strides=2, padding=padding, name="conv")(x)
    return keras.Model(x, L.Dense(10, name="logits")(h), name="halver")


@pytest.mark.parametrize("padding,spec", [("valid", "batch (T-3)//2+1 10"),
                                          ("same", "batch (T+1)//2 10")])
def test_conv1d_stride_2_halves_time_exactly(padding, spec):
    m = conv_model(padding)
    bound = shapecheck.assert_shapes(m, inputs="batch T 80", outputs=spec)
    for t in (3, 4, 7, 10, 33):
        (shape,) = keras_shapes(m, {"T": t})
        assert fits(spec, bound, {"T": t, "batch": 2}, shape), (t, shape)


def test_conv1d_stride_2_is_not_t_half_and_keras_agrees_at_the_witness():
    m = conv_model("same")  # ceil(T/2): T//2 only for even T
    with pytest.raises(shapecheck.ShapeContractError) as err:
        shapecheck.assert_shapes(m, inputs="batch T 80", outputs="batch T//2 10")
    (failure,) = err.value.failures
    assert failure.witness == {"T": 1, "batch": 1}
    assert "differ for odd T, e.g. T = 1" in str(err.value)
    (shape,) = keras_shapes(m, {"T": 1}, batch=1)
    assert shape == (1, 1, 10)  # Keras: 1 step; the spec: 1 // 2 = 0
    assert not fits("batch T//2 10", err.value.bindings, {"T": 1, "batch": 1}, shape)


def test_wrong_spec_reads_like_a_pytest_assertion():
    m = conv_model("valid")
    with pytest.raises(AssertionError) as err:
        shapecheck.assert_shapes(m, {"conv": "batch T//2 64"}, inputs="batch T 80")
    assert str(err.value).splitlines() == [
        "shape contract of model `halver`: 1 of 2 shape(s) do not match",
        '`conv`: "batch T//2 64"',
        "  expected: (batch, T//2,                 64)",
        "  got:      (batch, floor((T - 3)/2) + 1, 64)",
        "                    ^^^^^^^^^^^^^^^^^^^^",
        "  axis 1: `T//2` is floor(T/2); got floor((T - 3)/2) + 1: differ for even T, "
        "e.g. T = 4",
        "  at T = 4, batch = 1: expected (1, 2, 64), got (1, 1, 64)",
        "bindings: batch = batch (input `frames` axis 0), T = T (input `frames` axis 1)"]
    # T = 3 is the model's minimum (the window): the witness starts there, and Keras
    # gives 1 step at T = 4 where the spec says 2
    assert keras_shapes(m, {"T": 4}, layer="conv", batch=1) == [(1, 1, 64)]


def test_fixed_size_against_a_named_dim_names_the_sizes_where_they_meet():
    m = conv_model("valid")
    with pytest.raises(AssertionError) as err:
        shapecheck.assert_shapes(m, outputs="batch 5 10")
    assert "axis 1: expected 5; got floor((T - 3)/2) + 1: differ unless T = 11 or 12" \
        in str(err.value)
    assert keras_shapes(m, {"T": 11}) == [(2, 5, 10)]
    assert keras_shapes(m, {"T": 13}) == [(2, 6, 10)]


def seed003(variable: bool) -> keras.Model:
    """Seed 003's decoder: RepeatVector freezes its length at 9; the variable-length
    twin decodes a target sequence of its own length instead."""
    vocab, emb, hidden, classes = 100, 7, 3, 100
    src = keras.Input((None,), dtype="int32", name="src")
    h = L.Embedding(vocab, emb, mask_zero=True)(src)
    if not variable:
        h = L.LSTM(hidden)(h)
        h = L.RepeatVector(9)(h)
        h = L.LSTM(hidden, return_sequences=True, name="decoder")(h)
        out = L.TimeDistributed(L.Dense(classes, activation="softmax"), name="decoder_out")(h)
        return keras.Model(src, out, name="seed003")
    _, state_h, state_c = L.LSTM(hidden, return_state=True, name="enc")(h)
    tgt = keras.Input((None,), dtype="int32", name="tgt")
    d = L.Embedding(vocab, emb)(tgt)
    d = L.LSTM(hidden, return_sequences=True, name="decoder")(d, initial_state=[state_h,
                                                                               state_c])
    out = L.TimeDistributed(L.Dense(classes, activation="softmax"), name="decoder_out")(d)
    return keras.Model([src, tgt], out, name="seed003_variable")


def test_seed003_variable_decoder_follows_the_target_length():
    m = seed003(variable=True)
    specs = {"enc": "batch 3", "decoder_out": "batch T 100"}
    bound = shapecheck.assert_shapes(m, specs, inputs=["batch S", "batch T"])
    assert str(bound["S"]) != str(bound["T"])  # two lengths, bound apart
    names = {str(bound["S"]): 0, str(bound["T"]): 0}
    for s, t in ((1, 9), (7, 2), (5, 5)):
        sizes = dict(zip(names, (s, t)))
        (shape,) = keras_shapes(m, sizes)
        assert fits("batch T 100", bound, {**sizes, "batch": 2}, shape)
        assert keras_shapes(m, sizes, layer="enc")[0] == (2, 3)


def test_seed003_repeatvector_decoder_fails_with_the_length_it_freezes():
    m = seed003(variable=False)
    with pytest.raises(shapecheck.ShapeContractError) as err:
        shapecheck.assert_shapes(m, inputs="batch T", outputs="batch T 100")
    text = str(err.value)
    assert "  expected: (batch, T, 100)\n  got:      (batch, 9, 100)\n" \
           "                    ^\n" in text
    # a rank-2 input's length is called L: the spec's T is bound to it
    assert "axis 1: `T` is L (bound at input `src` axis 1); got 9: differ unless L = 9, " \
           "e.g. L = 1" in text
    assert text.endswith("bindings: batch = batch (input `src` axis 0), "
                         "T = L (input `src` axis 1)")
    (failure,) = err.value.failures
    assert failure.witness == {"L": 1, "batch": 1}
    (shape,) = keras_shapes(m, failure.witness)
    assert shape == (1, 9, 100)  # Keras at L = 1: still 9 steps
    assert not fits("batch T 100", err.value.bindings, failure.witness, shape)
    # and where the spec says 9, it holds: Keras agrees at several lengths
    bound = shapecheck.assert_shapes(m, inputs="batch T", outputs="batch 9 100")
    for t in (1, 4, 12):
        assert fits("batch 9 100", bound, {"L": t, "batch": 2}, keras_shapes(m, {"L": t})[0])


def test_star_batch_covers_several_leading_axes():
    x = keras.Input((None, None, 16), name="grid")
    h = L.Dense(32, name="proj")(x)
    m = keras.Model(x, L.Dense(4, name="head")(h), name="grid_model")
    bound = shapecheck.assert_shapes(m, {"proj": "*b 32"}, inputs="*b 16", outputs="*b 4")
    assert [str(d) for d in bound["b"]] == ["batch", "H", "W"]
    for h_, w_ in ((1, 1), (3, 5)):
        sizes = {"H": h_, "W": w_}
        assert fits("*b 4", bound, {**sizes, "batch": 2}, keras_shapes(m, sizes)[0])
        assert fits("*b 32", bound, {**sizes, "batch": 2},
                    keras_shapes(m, sizes, layer="proj")[0])
    with pytest.raises(AssertionError) as err:
        shapecheck.assert_shapes(m, inputs="*b 16", outputs="*b 5 4")
    assert str(err.value).splitlines()[1:6] == [
        'output `head`: "*b 5 4"',
        "  expected: (*b,       5, 4)",
        "  got:      (batch, H, W, 4)",
        "             ^^^^^^^^  ^",
        "  axes 0..1: `*b` is (batch, H, W) (bound at input `grid` axes 0..2); got batch, H: "
        "3 axes, here 2"]


def test_the_models_own_equalities_hold_where_keras_runs_it():
    a = keras.Input((None, 8), name="a")
    b = keras.Input((None, 8), name="b")
    m = keras.Model([a, b], L.Add(name="sum")([a, b]), name="adder")
    # the inputs' lengths are two dims, but Add only runs where they are equal
    bound = shapecheck.assert_shapes(m, inputs=["batch T 8", "batch T 8"],
                                     outputs="batch T 8")
    assert [tuple(map(str, e)) for e in shape_table(m).domain.equalities] == [("T_a", "T_b")]
    for t in (1, 6):
        sizes = {n: t for n in ("T_a", "T_b")}
        assert keras_shapes(m, sizes) == [(2, t, 8)]
        assert fits("batch T 8", bound, {**sizes, "batch": 2}, (2, t, 8))


def test_a_report_is_accepted_as_the_model():
    m = conv_model("valid")
    report = shapecheck.check_model(m)
    assert shapecheck.assert_shapes(report, {"conv": "batch (T-3)//2+1 64"},
                                    inputs="batch T 80")
    with pytest.raises(AssertionError, match="differ for even T"):
        shapecheck.assert_shapes(report.models[0], {"conv": "batch T//2 64"},
                                 inputs="batch T 80")


# --- assert_compatible: seed 002's two models chained ---------------------------------


def model_a(ir_size: int = 8) -> keras.Model:
    """Seed 002's first model: a sequence of inputs to a sequence of IRs."""
    x = keras.Input((None, 4), name="x")
    return keras.Model(x, L.SimpleRNN(ir_size, return_sequences=True, name="ir")(x),
                       name="model_a")


def model_b_step() -> keras.Model:
    """Seed 002's second model as the question builds it: one step of a cell."""
    ipt = keras.Input((8,), name="ir_step")
    state = keras.Input((4,), name="state")
    out, new_state = L.SimpleRNNCell(4)(ipt, state)
    return keras.Model([ipt, state], [out, new_state], name="model_b")


def model_b_seq(steps: int | None = None) -> keras.Model:
    """The second model over IRs copied ``steps`` times (None: any number)."""
    ir = keras.Input((steps, 8), name="ir_copies")
    return keras.Model(ir, L.SimpleRNN(4, return_sequences=True, name="out_i")(ir),
                       name="model_b_seq")


def chained(producer, consumer, sizes):
    """Keras runs ``consumer(producer(x))``: its shape, or the error it raises."""
    mid = producer(inputs_at(producer, sizes)[0])
    try:
        return tuple(consumer(mid).shape)
    except Exception as err:  # Keras refuses the shape
        return err


def test_seed002_step_model_takes_two_inputs_for_one_output():
    with pytest.raises(shapecheck.ShapeContractError) as err:
        shapecheck.assert_compatible(model_a(), model_b_step())
    assert str(err.value) == (
        "model `model_a`'s outputs do not fit model `model_b`'s inputs: `model_a` gives "
        "1 output(s) (`ir`), `model_b` takes 2 input(s) (`ir_step`, `state`)")


def test_seed002_chained_over_any_number_of_copies_fits_for_every_length():
    a, b = model_a(), model_b_seq()
    bound = shapecheck.assert_compatible(a, b)
    assert {n: str(v) for n, v in bound.items()} == {"batch": "batch", "T": "T"}
    for t in (1, 3, 7):
        assert chained(a, b, {"T": t}) == (2, t, 4)


def test_seed002_fixed_copies_fit_only_at_that_length():
    a, b = model_a(), model_b_seq(steps=3)
    with pytest.raises(shapecheck.ShapeContractError) as err:
        shapecheck.assert_compatible(a, b)
    text = str(err.value)
    assert "output `ir` -> input `ir_copies`\n  expected: (batch, 3, 8)\n" \
           "  got:      (batch, T, 8)\n                    ^\n" in text
    assert "axis 1: expected 3; got T: differ unless T = 3, e.g. T = 1" in text
    assert isinstance(chained(a, b, {"T": 1}), Exception)  # Keras refuses at the witness
    assert shapecheck.assert_compatible(a, b, dims={"T": 3}) == {"batch": dims.symbol("batch")}
    assert chained(a, b, {"T": 3}) == (2, 3, 4)


def test_seed002_ir_size_mismatch_fails_for_every_size():
    a, b = model_a(ir_size=6), model_b_seq()
    with pytest.raises(shapecheck.ShapeContractError) as err:
        shapecheck.assert_compatible(a, b)
    assert "axis 2: expected 8; got 6: differ for every size" in str(err.value)
    assert isinstance(chained(a, b, {"T": 5}), Exception)


def test_consumer_windows_must_fit_what_the_producer_gives():
    a = conv_model("valid")  # logits: (batch, floor((T - 3)/2) + 1, 10)
    y = keras.Input((None, 10), name="logits_in")
    b = keras.Model(y, L.Conv1D(2, 5, name="smooth")(y), name="smoother")
    with pytest.raises(shapecheck.ShapeContractError) as err:
        shapecheck.assert_compatible(a, b)
    assert ("`smoother` needs its T >= 5 (its windows must fit); fed floor((T - 3)/2) + 1: "
            "shorter, e.g. T = 3") in str(err.value)
    assert str(err.value).endswith("`smoother`'s dims: batch = batch (output `logits` -> "
                                   "input `logits_in` axis 0), T = floor((T - 3)/2) + 1 "
                                   "(output `logits` -> input `logits_in` axis 1)")
    assert isinstance(chained(a, b, {"T": 3}), Exception)
    assert chained(a, b, {"T": 11}) == (2, 1, 2)
    shapecheck.assert_compatible(a, b, dims={"T": 11})


def test_a_layer_called_once_is_a_producer():
    a = conv_model("valid")
    y = keras.Input((None, 64), name="features")
    b = keras.Model(y, L.GlobalAveragePooling1D()(y), name="pool")
    bound = shapecheck.assert_compatible(a.get_layer("conv"), b)
    assert str(bound["T"]) == "floor(T/2 - 3/2) + 1"


def test_a_fixed_length_met_only_far_above_the_small_sizes_is_named() -> None:
    """ceiling(T/2) = 50 only at T = 99 or 100: the message says so, and Keras agrees."""
    x = keras.Input((None, 8))
    enc = keras.Model(x, L.Conv1D(4, 3, strides=2, padding="same", name="down")(x))
    y = keras.Input((50, 4))
    dec = keras.Model(y, L.LSTM(3)(y))
    with pytest.raises(AssertionError) as info:
        shapecheck.assert_compatible(enc, dec)
    assert "differ unless T = 99 or 100" in str(info.value)
    for t, fits in ((98, False), (99, True), (100, True), (101, False)):
        assert (enc.compute_output_shape((1, t, 8))[1] == 50) is fits
    shapecheck.assert_compatible(enc, dec, dims={"T": 99})
