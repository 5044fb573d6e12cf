"""Sampling the data a dry-run call was given, in every form Keras 3 takes."""

from __future__ import annotations

import threading
import time

import keras
import numpy as np
import pytest
import tensorflow as tf

from shapecheck.capture import DataCall
from shapecheck.feeds import array_info, sample


@pytest.fixture(scope="module")
def model() -> keras.Model:
    inp = keras.Input((4,), name="features")
    return keras.Model(inp, keras.layers.Dense(2)(inp))


def call(model, method="fit", *args, **kwargs) -> DataCall:
    return DataCall(model, method, "script.py", 7, args, kwargs)


def shapes(struct):
    if isinstance(struct, (list, tuple)):
        return [shapes(s) for s in struct]
    if isinstance(struct, dict):
        return {k: shapes(v) for k, v in struct.items()}
    return None if struct is None else struct.shape


def test_arrays_give_first_and_short_last_batch(model) -> None:
    [feed] = sample(call(model, "fit", np.zeros((100, 4)), np.zeros((100, 2))))
    assert (feed.kind, feed.role, feed.batch_size, feed.steps) == ("arrays", "train", 32, 4)
    assert [b.label for b in feed.batches] == ["batch 1 of 4 (rows 0-31)",
                                               "last batch 4 of 4 (rows 96-99)"]
    assert [shapes(b.x) for b in feed.batches] == [(32, 4), (4, 4)]
    assert [shapes(b.y) for b in feed.batches] == [(32, 2), (4, 2)]


def test_validation_split_takes_the_last_rows(model) -> None:
    train, val = sample(call(model, "fit", np.zeros((100, 4)), np.zeros((100, 2)),
                             batch_size=50, validation_split=0.2))
    assert val.role == "validation"
    assert [b.label for b in val.batches] == ["batch 1 of 1 (rows 80-99)"]
    assert train.steps == 2 and shapes(train.batches[-1].x) == (30, 4)


def test_dicts_and_values(model) -> None:
    y = keras.utils.to_categorical([0, 1, 1, 0], 2)
    [feed] = sample(call(model, "train_on_batch", {"features": np.arange(16).reshape(4, 4)},
                         y))
    [batch] = feed.batches
    info = batch.x["features"]
    assert info.shape == (4, 4) and info.integer and (info.min, info.max) == (0, 15)
    assert batch.y.one_hot is True and info.one_hot is False


def test_infinite_generator_is_sampled_a_few_times(model) -> None:
    def forever():
        while True:
            yield np.zeros((8, 4)), np.zeros((8, 2))

    [feed] = sample(call(model, "fit", forever()), max_batches=3)
    assert feed.kind == "generator" and not feed.problems
    assert [b.label for b in feed.batches] == ["generator item 1", "generator item 2",
                                               "generator item 3"]


def test_generator_yielding_lists_is_a_problem(model) -> None:
    def lists():
        while True:
            yield [np.zeros((8, 4)), np.zeros((8, 2))]

    [feed] = sample(call(model, "fit", lists()), max_batches=1)
    assert [p.kind for p in feed.problems] == ["list-not-tuple"]
    assert shapes(feed.batches[0].y) == (8, 2)  # checked as meant


def test_blocking_generator_times_out(model) -> None:
    release = threading.Event()

    def stuck():
        release.wait()
        yield np.zeros((1, 4))

    t = time.perf_counter()
    [feed] = sample(call(model, "predict", stuck()), timeout=0.3)
    assert time.perf_counter() - t < 3
    release.set()
    assert [p.kind for p in feed.problems] == ["timeout"]


def test_none_and_ragged_batches(model) -> None:
    def bad():
        yield (np.zeros((2, 4)), None)
        yield ([[1, 2, 3], [1, 2]], np.zeros((2, 2)))

    [feed] = sample(call(model, "fit", bad()))
    kinds = {p.kind for p in feed.problems}
    assert {"ragged"} <= kinds


def test_pydataset_first_and_last_item(model) -> None:
    class Pages(keras.utils.PyDataset):
        def __len__(self):
            return 5

        def __getitem__(self, i):
            n = 3 if i == 4 else 10
            return np.zeros((n, 4)), np.zeros((n, 2))

    [feed] = sample(call(model, "evaluate", Pages()))
    assert feed.kind == "pydataset" and feed.steps == 5
    assert [b.label for b in feed.batches] == ["PyDataset[0]", "PyDataset[4] (the last)"]
    assert shapes(feed.batches[1].x) == (3, 4)


def test_tf_data_batched_and_unbatched(model) -> None:
    rows = tf.data.Dataset.from_tensor_slices((np.zeros((10, 4), "float32"),
                                               np.zeros((10, 2), "float32")))
    [flat] = sample(call(model, "fit", rows), max_batches=1)
    assert flat.kind == "tf.data" and shapes(flat.batches[0].x) == (4,)
    assert "(4,)" in flat.batches[0].label
    [batched] = sample(call(model, "fit", rows.batch(4, drop_remainder=True)))
    assert batched.steps == 2 and shapes(batched.batches[0].x) == (4, 4)


def test_validation_data_generator_and_y_with_a_generator(model) -> None:
    def gen():
        while True:
            yield np.zeros((5, 4)), np.zeros((5, 2))

    train, val = sample(call(model, "fit", gen(), validation_data=gen()))
    assert val.role == "validation" and val.kind == "generator" and val.batches
    [wrong] = sample(call(model, "fit", gen(), np.zeros((5, 2))), max_batches=1)
    assert [p.kind for p in wrong.problems] == ["wrong-structure"]


def test_array_info_of_lists_and_non_data() -> None:
    assert array_info([1, 2, 3]).shape == (3,)
    assert array_info("text") is None
    assert array_info(np.array(["a", "b"])).dtype == "str"


def test_x_and_y_of_different_lengths_is_a_problem(model) -> None:
    [feed] = sample(call(model, "fit", np.zeros((100, 4)), np.zeros((90, 2))))
    assert [p.kind for p in feed.problems] == ["rows"]
    assert "100" in feed.problems[0].message and "90" in feed.problems[0].message
