"""Sampling the data a dry-run call was given, in every form Keras 3 takes."""

from __future__ import annotations

import threading
import time

import keras
import numpy as np
import pytest
import tensorflow as tf

from shapecheck.script.capture import DataCall
from shapecheck.data.values import array_info
from shapecheck.data.feeds import sample


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
    # [1] too: Keras fixes the TensorFlow spec from items [0] and [1]
    assert [b.label for b in feed.batches] == ["PyDataset[0]", "PyDataset[1]",
                                               "PyDataset[4] (the last)"]
    assert shapes(feed.batches[-1].x) == (3, 4) and not feed.problems


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


# --- arrays -------------------------------------------------------------------------------


def test_arguments_by_position_follow_keras_signatures(model) -> None:
    # evaluate(x, y, batch_size, verbose, sample_weight); predict(x, batch_size)
    [ev] = sample(call(model, "evaluate", np.zeros((10, 4)), np.zeros((10, 2)), 4, 0,
                       np.ones(10)))
    assert ev.role == "evaluate" and ev.batch_size == 4 and ev.steps == 3
    assert shapes(ev.batches[-1].sample_weight) == (2,)
    [pr] = sample(call(model, "predict", np.zeros((10, 4)), 5))
    assert pr.role == "predict" and pr.steps == 2 and pr.batches[0].y is None


def test_parameter_tables_match_keras() -> None:
    import inspect

    from keras.src.trainers.trainer import Trainer

    from shapecheck.data.feeds import _PARAMS

    for method, names in _PARAMS.items():
        params = [p for p in inspect.signature(getattr(Trainer, method)).parameters
                  if p not in ("self", "kwargs")]
        assert tuple(params) == names, method


def test_default_batch_size_and_steps_per_epoch(model) -> None:
    [feed] = sample(call(model, "fit", np.zeros((70, 4)), np.zeros((70, 2))))
    assert (feed.batch_size, feed.steps) == (32, 3)
    assert feed.batches[-1].label == "last batch 3 of 3 (rows 64-69)"
    # steps_per_epoch without batch_size: Keras takes ceil(n / steps) rows per batch
    [feed] = sample(call(model, "fit", np.zeros((70, 4)), np.zeros((70, 2)),
                         steps_per_epoch=4))
    assert (feed.batch_size, feed.steps) == (18, 4)
    assert feed.batches[-1].label == "last batch 4 of 4 (rows 54-69)"


def test_validation_split_rows_and_limits(model) -> None:
    train, val = sample(call(model, "fit", np.zeros((100, 4)), np.zeros((100, 2)),
                             batch_size=32, validation_split=0.25))
    assert [b.label for b in train.batches] == ["batch 1 of 3 (rows 0-31)",
                                                "last batch 3 of 3 (rows 64-74)"]
    assert [b.label for b in val.batches] == ["batch 1 of 1 (rows 75-99)"]
    assert shapes(val.batches[0].y) == (25, 2) and val.kind == "arrays"
    [bad] = sample(call(model, "fit", np.zeros((3, 4)), np.zeros((3, 2)),
                        validation_split=0.99))  # no training rows left
    assert [p.kind for p in bad.problems] == ["wrong-structure"]
    # validation_data wins over validation_split, as in Keras
    train, val = sample(call(model, "fit", np.zeros((100, 4)), np.zeros((100, 2)),
                             validation_split=0.5, validation_data=(np.zeros((6, 4)),
                                                                    np.zeros((6, 2)))))
    assert train.steps == 4 and [b.label for b in val.batches] == ["batch 1 of 1 (rows 0-5)"]


def test_dict_inputs_keep_their_names_in_every_batch(model) -> None:
    x = {"features": np.zeros((40, 4)), "extra": np.ones((40, 3))}
    [feed] = sample(call(model, "fit", x, np.zeros((40, 2)), batch_size=16))
    assert [shapes(b.x) for b in feed.batches] == [{"features": (16, 4), "extra": (16, 3)},
                                                   {"features": (8, 4), "extra": (8, 3)}]


def test_arrays_of_different_lengths_each_keep_their_shape(model) -> None:
    x = [np.zeros((100, 4)), np.zeros((90, 4))]
    [feed] = sample(call(model, "fit", x, np.zeros((100, 2))))
    assert not feed.problems  # two inputs that disagree: the binding says it
    assert shapes(feed.batches[-1].x) == [(4, 4), (0, 4)]


def test_train_on_batch_takes_the_whole_arrays(model) -> None:
    [feed] = sample(call(model, "train_on_batch", np.zeros((300, 4)), np.zeros((300, 2))))
    [batch] = feed.batches
    assert (feed.batch_size, feed.steps, batch.label) == (300, 1, "the whole data (rows 0-299)")
    assert shapes(batch.x) == (300, 4)
    [pred] = sample(call(model, "predict_on_batch", np.zeros((5, 4))))
    assert pred.role == "predict" and shapes(pred.batches[0].x) == (5, 4)


def test_python_lists_are_not_arrays_in_keras3(model) -> None:
    [feed] = sample(call(model, "fit", np.zeros((10, 4)).tolist(), np.zeros((10, 2))))
    assert [p.kind for p in feed.problems] == ["python-list"]  # once, for the argument
    assert "`x`" in feed.problems[0].message and shapes(feed.batches[0].x) == (10, 4)


def test_sampling_does_not_touch_the_data(model) -> None:
    x = np.arange(40.0).reshape(10, 4)
    before = x.copy()
    sample(call(model, "fit", x, np.zeros((10, 2)), validation_split=0.3))
    assert np.array_equal(x, before) and x.flags.writeable


# --- generators --------------------------------------------------------------------------


def test_generator_that_ends_early_says_how_many_items(model) -> None:
    def two():
        for _ in range(2):
            yield np.zeros((8, 4)), np.zeros((8, 2))

    [feed] = sample(call(model, "fit", two()))
    assert not feed.problems and feed.steps == 2
    assert feed.batches[-1].label == "generator item 2 (the last)"
    [empty] = sample(call(model, "fit", (i for i in ())))
    assert [p.kind for p in empty.problems] == ["empty"] and empty.steps == 0
    assert "at least one batch" in empty.problems[0].message


def test_list_item_message_says_what_keras3_does(model) -> None:
    def lists():
        while True:
            yield [np.zeros((8, 4)), np.zeros((8, 2))]

    [feed] = sample(call(model, "fit", lists()))
    [problem] = feed.problems  # once for all three items
    assert "tuple" in problem.message and "ValueError" in problem.message
    assert len(feed.batches) == 3 and shapes(feed.batches[0].x) == (8, 4)


def test_bare_array_from_a_generator_is_refused(model) -> None:
    def bare():
        while True:
            yield np.zeros((8, 4))

    [feed] = sample(call(model, "predict", bare()))
    assert [p.kind for p in feed.problems] == ["not-tuple"]
    assert shapes(feed.batches[0].x) == (8, 4)


def test_timeout_names_the_generator_and_the_wait(model) -> None:
    release = threading.Event()

    def stuck_batches():
        release.wait()
        yield np.zeros((1, 4)), np.zeros((1, 2))

    t = time.perf_counter()
    [feed] = sample(call(model, "fit", stuck_batches()), timeout=0.5)
    waited = time.perf_counter() - t
    release.set()
    assert 0.45 < waited < 1.5
    [problem] = feed.problems
    assert problem.kind == "timeout" and "stuck_batches" in problem.message
    assert "0.5 s" in problem.message and not feed.batches


def test_none_in_a_generator_item(model) -> None:
    def holes():
        yield (np.zeros((2, 4)), None)
        yield (np.zeros((2, 4)), None)

    # no targets fail only a compiled loss: SC702 says so, knowing the compile
    [feed] = sample(call(model, "fit", holes()))
    assert not feed.problems and feed.batches[0].y is None

    def hole_in_x():
        yield ([np.zeros((2, 4)), None], np.zeros((2, 2)))

    [feed] = sample(call(model, "fit", hole_in_x()))
    assert [p.kind for p in feed.problems] == ["none-in-batch"]
    assert "`x[1]`" in feed.problems[0].message


def test_ragged_python_rows(model) -> None:
    def ragged():
        yield ([[1, 2, 3], [4, 5]], np.zeros((2, 2)))

    [feed] = sample(call(model, "fit", ragged()))
    assert [p.kind for p in feed.problems] == ["ragged"]
    assert feed.batches[0].x is None and shapes(feed.batches[0].y) == (2, 2)


def test_changing_axes_break_the_tensorflow_spec(model) -> None:
    def lengths(*ls):
        for n in ls:
            yield np.zeros((8, n, 4)), np.zeros((8, 2))

    [bad] = sample(call(model, "fit", lengths(7, 7, 11)))
    assert [p.kind for p in bad.problems] == ["unstable-shape"]
    assert "(8, 11, 4)" in bad.problems[0].message and "(None, 7, 4)" in bad.problems[0].message
    [good] = sample(call(model, "fit", lengths(7, 11, 15)))  # the first two differ: None
    assert not good.problems


def test_rank_that_changes_between_the_first_two_items(model) -> None:
    def ranks():
        yield np.zeros((8, 7, 4)), np.zeros((8, 2))
        yield np.zeros((8, 7, 4, 1)), np.zeros((8, 2))

    [feed] = sample(call(model, "fit", ranks()))
    assert [p.kind for p in feed.problems] == ["unstable-shape"]
    assert "rank 3 in the first batch and 4 in the second" in feed.problems[0].message


def test_structure_that_changes_between_items(model) -> None:
    def shifting():
        yield np.zeros((2, 4)), np.zeros((2, 2))
        yield np.zeros((2, 4)), np.zeros((2, 2)), np.ones(2)

    [feed] = sample(call(model, "fit", shifting()))
    assert [p.kind for p in feed.problems] == ["wrong-structure"]


def test_iterators_that_are_not_generators(model) -> None:
    [feed] = sample(call(model, "fit", iter([(np.zeros((2, 4)), np.zeros((2, 2)))])))
    assert feed.kind == "generator" and [p.kind for p in feed.problems] == ["wrong-structure"]
    assert shapes(feed.batches[0].x) == (2, 4)


def test_predict_reads_only_x_from_items(model) -> None:
    def pairs():
        while True:
            yield np.zeros((3, 4)), np.zeros((3, 9))

    [feed] = sample(call(model, "predict", pairs()), max_batches=1)
    assert feed.batches[0].y is None and not feed.problems


# --- PyDataset ---------------------------------------------------------------------------


class Rows(keras.utils.PyDataset):
    def __init__(self, sizes, as_list=False, length=None):
        super().__init__()
        self.sizes, self.as_list, self.length = sizes, as_list, length

    def __len__(self):
        return len(self.sizes) if self.length is None else self.length

    def __getitem__(self, i):
        n, t = self.sizes[i]
        item = [np.zeros((n, t, 4)), np.zeros((n, 2))]
        return item if self.as_list else tuple(item)


def test_pydataset_lists_are_fine_and_spec_changes_are_not(model) -> None:
    [feed] = sample(call(model, "fit", Rows([(8, 5), (8, 5), (3, 5)], as_list=True)))
    assert not feed.problems and feed.steps == 3
    assert shapes(feed.batches[-1].x) == (3, 5, 4)
    [bad] = sample(call(model, "fit", Rows([(8, 5), (8, 5), (8, 6)])))
    assert [p.kind for p in bad.problems] == ["unstable-shape"]
    assert "PyDataset[2]" in bad.problems[0].message


def test_pydataset_empty_and_broken(model) -> None:
    [empty] = sample(call(model, "fit", Rows([])))
    assert [p.kind for p in empty.problems] == ["empty"] and empty.steps == 0
    [broken] = sample(call(model, "fit", Rows([(2, 3)], length=4)))  # len() lies
    assert [p.kind for p in broken.problems] == ["raised"]  # fit reads [1] and raises
    assert "IndexError" in broken.problems[0].message and broken.batches
    assert "test_feeds.py:" in broken.problems[0].message  # the line in __getitem__
    [late] = sample(call(model, "fit", Rows([(2, 3), (2, 3)], length=4), steps_per_epoch=2))
    assert [p.kind for p in late.problems] == ["sampling-error"]  # [3]: never read


def test_a_source_raising_on_an_item_fit_reads_is_a_fault(model) -> None:
    def third_fails():
        yield np.zeros((8, 4)), np.zeros((8, 2))
        yield np.zeros((8, 4)), np.zeros((8, 2))
        raise KeyError("row 17")

    [feed] = sample(call(model, "fit", third_fails()))  # fit reads until it ends
    [problem] = feed.problems
    assert problem.kind == "raised", problem
    assert "KeyError: 'row 17' at " in problem.message and "test_feeds.py:" in problem.message
    assert "raise KeyError" in problem.message and "generator item 3" in problem.message
    assert len(feed.batches) == 2  # the items before it are still checked
    [once] = sample(call(model, "fit", third_fails(), steps_per_epoch=1))  # Keras reads 2
    assert [p.kind for p in once.problems] == ["sampling-error"]
    [again] = sample(call(model, "fit", third_fails(), steps_per_epoch=1, epochs=3))
    assert [p.kind for p in again.problems] == ["raised"]


def test_a_failing_dataset_map_names_its_function(model) -> None:
    def strict(x, y):
        tf.debugging.assert_positive(x, message="a feature that is not positive")
        return x, y

    rows = tf.data.Dataset.from_tensor_slices((np.zeros((8, 4), "float32"),
                                               np.zeros((8, 2), "float32")))
    [feed] = sample(call(model, "fit", rows.map(strict).batch(4)))
    [problem] = feed.problems
    assert problem.kind == "raised", problem
    assert "InvalidArgumentError" in problem.message
    assert "a feature that is not positive" in problem.message
    assert "runs `strict` (" in problem.message and "test_feeds.py:" in problem.message
    assert "function_node" not in problem.message  # TensorFlow's node names left out


def test_strings_in_numpy_arrays_are_refused_as_keras_refuses_them(model) -> None:
    [feed] = sample(call(model, "fit", np.zeros((8, 4)).astype(str), np.zeros((8, 2))))
    [problem] = feed.problems
    assert problem.kind == "dtype" and "`x`" in problem.message
    assert "Invalid dtype: str" in problem.message
    [objects] = sample(call(model, "fit", np.zeros((8, 4)), np.zeros((8, 2), dtype=object)))
    assert [p.kind for p in objects.problems] == ["dtype"]
    assert "`y`" in objects.problems[0].message
    [tensor] = sample(call(model, "predict", tf.constant([["a"] * 4] * 8)))
    assert not tensor.problems  # a tensor of strings is for a dtype="string" input


def test_pydataset_items_keras_refuses_or_takes(model) -> None:
    class Tensors(keras.utils.PyDataset):
        def __len__(self):
            return 2

        def __getitem__(self, i):
            return tf.zeros((8, 4))

    [feed] = sample(call(model, "predict", Tensors()))
    assert [p.kind for p in feed.problems] == ["not-tuple"]
    assert "PyDataset[0] is a tensorflow.EagerTensor" in feed.problems[0].message

    class Bare(Tensors):
        def __getitem__(self, i):
            return np.zeros((8, 4))  # Keras reads a bare NumPy array as (x,)

    [bare] = sample(call(model, "predict", Bare()))
    assert not bare.problems and shapes(bare.batches[0].x) == (8, 4)


# --- tf.data -----------------------------------------------------------------------------


def test_tf_data_labels_carry_the_element_spec(model) -> None:
    data = tf.data.Dataset.from_tensor_slices((np.zeros((10, 4), "float32"),
                                               np.zeros((10, 2), "float32")))
    [batched] = sample(call(model, "fit", data.batch(4)))
    assert batched.steps == 3 and len(batched.batches) == 3
    assert batched.batches[0].label == "dataset element 1 (element_spec ((None, 4), (None, 2)))"
    assert batched.batches[1].label == "dataset element 2"
    assert shapes(batched.batches[-1].x) == (2, 4)  # the short last batch
    [dropped] = sample(call(model, "fit", data.batch(4, drop_remainder=True)))
    assert "((4, 4), (4, 2))" in dropped.batches[0].label and dropped.steps == 2
    assert dropped.batches[-1].label == "dataset element 2 (the last)"
    [forever] = sample(call(model, "fit", data.repeat().batch(4), steps_per_epoch=7))
    assert forever.steps == 7 and len(forever.batches) == 3
    [wrong] = sample(call(model, "fit", data.batch(4), np.zeros((10, 2))), max_batches=1)
    assert [p.kind for p in wrong.problems] == ["wrong-structure"]


def test_tf_data_dict_elements(model) -> None:
    data = tf.data.Dataset.from_tensor_slices(({"features": np.zeros((6, 4))},
                                               np.zeros((6, 2)))).batch(3)
    [feed] = sample(call(model, "evaluate", data))
    assert shapes(feed.batches[0].x) == {"features": (3, 4)} and feed.steps == 2


# --- validation_data ---------------------------------------------------------------------


def test_validation_data_forms(model) -> None:
    x, y = np.zeros((50, 4)), np.zeros((50, 2))
    _, val = sample(call(model, "fit", x, y, validation_data=[x[:20], y[:20]],
                         validation_batch_size=8))
    assert (val.kind, val.batch_size, val.steps) == ("arrays", 8, 3) and not val.problems
    _, lonely = sample(call(model, "fit", x, y, validation_data=(x,)))
    assert not lonely.problems and lonely.batches[0].y is None  # SC702's, with the loss
    _, four = sample(call(model, "fit", x, y, validation_data=(x, y, y, y)))
    assert [p.kind for p in four.problems] == ["wrong-structure"] and not four.batches
    _, mismatch = sample(call(model, "fit", x, y, validation_data=(x, y[:40])))
    assert [p.kind for p in mismatch.problems] == ["rows"]
    assert "validation_data[1]" in mismatch.problems[0].message
    _, dataset = sample(call(model, "fit", x, y, validation_data=Rows([(4, 2)])))
    assert dataset.kind == "pydataset" and dataset.batches


# --- array_info --------------------------------------------------------------------------


def test_one_hot_and_integer_ranges() -> None:
    labels = keras.utils.to_categorical([0, 2, 1, 2], 3)
    assert array_info(labels).one_hot is True
    assert array_info(labels * 2).one_hot is False
    assert array_info(np.array([[1, 1, 0], [0, 1, 0]])).one_hot is False  # two ones
    assert array_info(np.ones((4, 1))).one_hot is False  # one column is no one-hot
    ids = array_info(np.array([[3, 7579], [0, 12]], dtype="int32"))
    assert ids.integer and (ids.min, ids.max) == (0, 7579) and ids.dtype == "int32"
    flags = array_info(np.array([True, False]))
    assert flags.integer and flags.dtype == "bool" and flags.one_hot is False
    text = array_info(np.array(["a"]))
    assert (text.dtype, text.min, text.one_hot) == ("str", None, None)
    assert array_info(np.array([np.nan, 2.0, -1.0])).min == -1.0


def test_array_info_of_tensors_and_odd_values() -> None:
    t = array_info(tf.constant([[1.0, 5.0]]))
    assert (t.shape, t.dtype, t.max) == ((1, 2), "float32", 5.0)
    assert array_info(tf.constant(["x", "y"])).dtype == "str"
    r = array_info(tf.ragged.constant([[1, 2], [3]]))
    assert r.shape == (2, 2) and r.max == 3
    s = array_info(tf.sparse.from_dense(np.eye(3)))
    assert s.shape == (3, 3) and s.one_hot is True and s.min == 0
    assert array_info(7).shape == () and array_info(7).integer
    assert array_info([[1, 2], [3]]) is None  # ragged
    assert array_info({"a": 1}) is None and array_info(object()) is None
    assert array_info(keras.Input((3,))) is None  # symbolic: no values


def test_huge_arrays_are_sampled_quickly() -> None:
    big = np.zeros((4000, 1000), dtype="float32")
    big[-1, -1] = 1.0  # evenly spaced rows include the last row here
    t = time.perf_counter()
    info = array_info(big)
    assert time.perf_counter() - t < 0.5
    assert info.shape == (4000, 1000) and info.min == 0.0


class FakeFrame:
    """Duck-typed pandas DataFrame (pandas is not required)."""

    def __init__(self, values):
        self.values_ = values
        self.iloc = self

    def __getitem__(self, key):
        return FakeFrame(self.values_[key])

    def __len__(self):
        return len(self.values_)

    def to_numpy(self):
        return self.values_


def test_dataframe_like_values(model) -> None:
    [feed] = sample(call(model, "fit", FakeFrame(np.ones((40, 4))), np.zeros((40, 2))))
    assert [shapes(b.x) for b in feed.batches] == [(32, 4), (8, 4)]


# --- never raises ------------------------------------------------------------------------


class Hostile:
    def __iter__(self):
        raise RuntimeError("no iterating me")


def test_sample_never_raises(model) -> None:
    [odd] = sample(call(model, "fit", Hostile()))
    assert [p.kind for p in odd.problems] == ["wrong-structure", "raised"]
    assert "no iterating me" in odd.problems[1].message
    [none] = sample(call(model, "fit"))
    assert [p.kind for p in none.problems] == ["not-data"]
    [text] = sample(call(model, "predict", "images/"))
    assert [p.kind for p in text.problems] == ["not-data"]

    class Broken:
        method = "fit"

    feeds = sample(Broken())
    assert feeds[0].problems[0].kind == "sampling-error"


# --- each problem kind against Keras itself ------------------------------------------------


def _net(*shapes: tuple) -> keras.Model:
    """A compiled model with one input per shape (sequences pooled), two outputs units."""
    inputs = [keras.Input(shape) for shape in shapes]
    flat = [keras.layers.GlobalAveragePooling1D()(i) if len(shape) > 1 else i
            for i, shape in zip(inputs, shapes)]
    joined = flat[0] if len(flat) == 1 else keras.layers.Concatenate()(flat)
    net = keras.Model(inputs if len(inputs) > 1 else inputs[0], keras.layers.Dense(2)(joined))
    net.compile(optimizer="sgd", loss="mse")
    return net


def _items(*items):
    yield from items


def _raising():
    yield X, Y
    raise OSError("the second shard is unreadable")


def _seq(n: int, t: int) -> tuple[np.ndarray, np.ndarray]:
    return np.zeros((n, t, 4), "float32"), np.zeros((n, 2), "float32")


X, Y = np.zeros((10, 4), "float32"), np.zeros((10, 2), "float32")

# kind: (the model's input shapes, method, fresh (args, kwargs) for one call)
CASES = {
    "rows": ([(4,)], "fit", lambda: ((X, Y[:9]), {})),
    "wrong-structure": ([(4,)], "fit", lambda: ((_items((X, Y)), Y), {})),
    "list-not-tuple": ([(4,)], "fit", lambda: ((_items([X, Y], [X, Y]),), {})),
    "not-tuple": ([(4,)], "predict", lambda: ((_items(X, X),), {})),
    "none-in-batch": ([(4,), (4,)], "fit", lambda: ((_items(((X, None), Y)),), {})),
    "ragged": ([(4,)], "fit", lambda: (([[1.0, 2, 3, 4], [1.0, 2, 3]], Y[:2]), {})),
    "python-list": ([(4,)], "fit", lambda: ((X.tolist(), Y), {})),
    "not-data": ([(4,)], "predict", lambda: (("images/",), {})),
    "unstable-shape": ([(None, 4)], "fit",
                       lambda: ((_items(_seq(8, 7), _seq(8, 7), _seq(8, 11)),), {})),
    "empty": ([(4,)], "fit", lambda: ((_items(),), {})),
    "exhausted": ([(4,)], "fit", lambda: ((X[:0], Y[:0]), {})),
    "raised": ([(4,)], "fit", lambda: ((_raising(),), {"steps_per_epoch": 3})),
    "dtype": ([(4,)], "fit", lambda: ((X.astype(str), Y), {})),
}


def _kinds_in_source() -> set[str]:
    import re
    from pathlib import Path

    import shapecheck.data.feeds as feeds

    text = "".join(p.read_text() for p in sorted(Path(feeds.__file__).parent.glob("*.py")))
    return set(re.findall(r'\.add\(\s*"([a-z-]+)"', text))


def test_every_problem_kind_has_a_hint_and_a_keras_case() -> None:
    from shapecheck.rules.data import _QUIET, _STRUCTURE_HINTS

    kinds = _kinds_in_source()
    assert {"python-list", "not-tuple", "unstable-shape", "empty"} <= kinds
    assert kinds <= set(_STRUCTURE_HINTS), kinds - set(_STRUCTURE_HINTS)
    assert set(_QUIET) <= kinds
    # every kind but those Keras never sees (a slow source, our own read) is run below
    assert kinds - {"timeout", "sampling-error"} == set(CASES)


@pytest.mark.parametrize("kind", sorted(CASES))
def test_problem_is_an_error_exactly_when_keras_fails_on_it(kind: str) -> None:
    from shapecheck.rules.data import _QUIET

    input_shapes, method, make = CASES[kind]
    net = _net(*input_shapes)
    args, kwargs = make()
    feeds = sample(DataCall(net, method, "script.py", 7, args, kwargs))
    assert kind in {p.kind for f in feeds for p in f.problems}
    args, kwargs = make()
    try:
        getattr(net, method)(*args, verbose=0, **kwargs)
        failed = None
    except Exception as err:  # what Keras says, for the assertion's message
        failed = f"{type(err).__name__}: {err}"[:300]
    assert (failed is not None) == (_QUIET.get(kind, "error") == "error"), failed


def test_keras2_data_forms_are_found_where_keras3_fails() -> None:
    from pathlib import Path

    from shapecheck.script.runner import check_file

    path = Path(__file__).resolve().parent.parent / "fixtures" / "keras2_data_forms.py"
    report = check_file(str(path), timeout=240)
    assert report.error is None, report.error.message
    found = {d.line: d for d in report.diagnostics}
    text = path.read_text().splitlines()

    def line(needle: str) -> int:
        return next(n for n, t in enumerate(text, start=1) if needle in t)

    want = {line(".tolist()"): ("is a Python list of values (10, 6, 4)", "`np.asarray(values)`"),
            line("model.fit(lengths(7, 7, 11))"): ("shape (8, 11, 4)", "first two batches"),
            line("model.predict(sequences_only()"): ("not a tuple", "`(x,)` to predict"),
            line("model.evaluate(batches)"): ("gave nothing", "a fresh one for each")}
    assert sorted(found) == sorted(want), [(d.line, d.message) for d in report.diagnostics]
    for n, (said, hint) in want.items():
        d = found[n]
        assert (d.code, d.severity) == ("SC606", "error"), d
        assert said in d.message and hint in d.hint, d


def test_an_unbatched_dataset_is_one_finding_with_its_fix(tmp_path) -> None:
    from shapecheck.script.runner import check_file

    script = tmp_path / "unbatched.py"
    script.write_text(
        "import numpy as np, tensorflow as tf, keras\n"
        "from keras import layers\n"
        "x = np.zeros((8, 28, 28, 1), 'float32'); y = np.zeros(8, 'int32')\n"
        "ds = tf.data.Dataset.from_tensor_slices((x, y))\n"
        "m = keras.Sequential([keras.Input((28, 28, 1)), layers.Conv2D(4, 3),\n"
        "                      layers.Flatten(), layers.Dense(10, activation='softmax')])\n"
        "m.compile(optimizer='adam', loss='sparse_categorical_crossentropy')\n"
        "m.fit(ds, epochs=1)\n"
        "m.fit(ds.batch(4), epochs=1)\n")
    (d,) = check_file(str(script), timeout=300).diagnostics  # nothing more said of y
    assert (d.code, d.line) == ("SC603", 8) and "x is (28, 28, 1)" in d.message
    assert "add `.batch(batch_size)`" in d.hint
    m = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Flatten(),
                          keras.layers.Dense(10, activation="softmax")])
    m.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    ds = tf.data.Dataset.from_tensor_slices((np.zeros((8, 28, 28, 1), "float32"),
                                             np.zeros(8, "int32")))
    with pytest.raises(Exception):  # noqa: B017  Keras fails on it as well
        m.fit(ds, epochs=1, verbose=0)


def test_a_short_last_batch_of_a_fixed_batch_model_is_said_once(tmp_path) -> None:
    from shapecheck.script.runner import check_file

    script = tmp_path / "stateful.py"
    script.write_text(
        "import numpy as np, keras\n"
        "from keras import layers\n"
        "model = keras.Sequential([keras.Input(batch_shape=(32, 10, 4)),\n"
        "                          layers.LSTM(8, stateful=True), layers.Dense(1)])\n"
        "model.compile(optimizer='adam', loss='mse')\n"
        "model.fit(np.zeros((100, 10, 4)), np.zeros((100, 1)), batch_size=32, epochs=1)\n")
    (d,) = check_file(str(script), timeout=300).diagnostics  # not again for y's 4 rows
    assert (d.code, d.line) == ("SC603", 6) and "axis 0 is 4, the model fixes 32" in d.message
    assert "drop the short last batch" in d.hint
    model = keras.Sequential([keras.Input(batch_shape=(32, 10, 4)),
                              keras.layers.LSTM(8, stateful=True), keras.layers.Dense(1)])
    model.compile(optimizer="adam", loss="mse")
    with pytest.raises(Exception):  # noqa: B017  Keras fails on the last 4 rows too
        model.fit(np.zeros((100, 10, 4)), np.zeros((100, 1)), batch_size=32, epochs=1,
                  verbose=0)
