"""Sample the data a dry-run `fit`/`evaluate`/`predict` was given.

Every form Keras 3 accepts becomes plain descriptions of a few batches
(:class:`Batch` of :class:`ArrayInfo`, the data's own structure kept):

- arrays (NumPy, tensors, pandas, lists / tuples / dicts of them): the first
  and the last batch, with exact row ranges, ``batch_size`` and ``steps`` as
  Keras computes them; ``validation_split`` takes the last rows, as Keras does;
- Python generators and other iterators: up to ``max_batches`` items, each
  pulled in a daemon thread within ``timeout`` seconds;
- ``keras.utils.PyDataset``: items ``[0]``, ``[1]`` and ``[len - 1]``;
- ``tf.data.Dataset``: ``element_spec`` (in the first batch's label),
  ``cardinality()`` and up to ``max_batches`` elements.

What Keras 3 would refuse, or what cannot be read, becomes a :class:`Problem`;
:func:`sample` never raises, never calls the model and never writes a file.

Problem kinds (Keras 3 fails on each, except where marked):

- ``rows``: arrays x, y, sample_weight with different numbers of rows;
- ``wrong-structure``: an argument Keras rejects with this data (``y=`` or
  ``class_weight=`` with a generator, ``validation_split`` with anything but
  arrays, or leaving no rows), an iterator that is not a generator, an item
  or ``validation_data`` tuple of 4 or more, nesting that changes between batches;
- ``list-not-tuple``: a generator yields a list ``[x, y]``;
- ``not-tuple``: a generator yields a bare array, list or dict, or a
  ``PyDataset`` item is neither tuple, list, dict nor NumPy array;
- ``none-in-batch``: None where an input is expected (missing targets are the
  target rules' business: they fail only with a compiled loss);
- ``ragged``: a Python list, or object array, whose rows differ in length;
- ``python-list``: a Python list of numbers where Keras 3 needs an array;
- ``not-data``: something that is not an array at all;
- ``unstable-shape``: (TensorFlow backend) a generator or ``PyDataset`` batch
  whose rank, or an axis the first two batches agreed on, changes;
- ``empty``: a generator or (TensorFlow backend) a ``PyDataset`` with no item;
- ``exhausted`` (Keras runs no step): arrays or a dataset with no rows;
- ``raised``: the data's own code raised on an item Keras reads (a generator's
  ``next``, ``PyDataset.__len__``/``__getitem__``, a ``tf.data`` map function): the
  exception, where it was raised (the user's line, or the dataset's functions);
- ``dtype``: a NumPy array (or DataFrame) of strings, bytes or Python objects, which
  Keras 3 refuses ('Invalid dtype: str32');
- ``timeout`` (unknown to Keras): no item within ``timeout`` seconds;
- ``sampling-error`` (unknown to Keras): shapecheck could not read the data, or the
  source raised on an item beyond the steps Keras reads.

An infinite source is normal (a few items are read), and so is a short last batch.
"""

from __future__ import annotations

import types
from typing import Any

import numpy as np

from shapecheck.data.arrays import (check_rows, first_rows, keras_batch_size, sample_arrays,
                                    sample_arrays_with_split)
from shapecheck.data.batches import Feed, guard
from shapecheck.data.generators import (check_spec, ended, items_read, label_of_item, read_item,
                                        source_name, take, unreadable)
from shapecheck.data.pydataset import sample_pydataset
from shapecheck.data.tfdata import pipeline_functions, tf_facts
from shapecheck.data.values import is_pandas


# Keras 3's parameter order for each dry-run method (keras.src.trainers.trainer.Trainer).
_PARAMS: dict[str, tuple[str, ...]] = {
    "fit": ("x", "y", "batch_size", "epochs", "verbose", "callbacks", "validation_split",
            "validation_data", "shuffle", "class_weight", "sample_weight", "initial_epoch",
            "steps_per_epoch", "validation_steps", "validation_batch_size", "validation_freq"),
    "evaluate": ("x", "y", "batch_size", "verbose", "sample_weight", "steps", "callbacks",
                 "return_dict"),
    "predict": ("x", "batch_size", "verbose", "steps", "callbacks"),
    "train_on_batch": ("x", "y", "sample_weight", "class_weight", "return_dict"),
    "test_on_batch": ("x", "y", "sample_weight", "return_dict"),
    "predict_on_batch": ("x",),
}
_ROLES = {"fit": "train", "train_on_batch": "train", "evaluate": "evaluate",
          "test_on_batch": "evaluate", "predict": "predict", "predict_on_batch": "predict"}


def _arguments(call: Any) -> dict[str, Any]:
    """The call's arguments by Keras's parameter names."""
    names = _PARAMS.get(call.method, ("x", "y", "sample_weight"))
    bound = dict(zip(names, call.args or ()))
    bound.update(call.kwargs or {})
    return bound


def _data_kind(x: Any) -> str:
    """How Keras 3's ``get_data_adapter`` reads ``x``."""
    if x is None or isinstance(x, (str, bytes)):
        return "other"
    if isinstance(x, (dict, list, tuple, np.ndarray, np.generic, bool, int, float)) or \
            is_pandas(x) or hasattr(x, "__array__") or hasattr(x, "tocoo") or \
            type(x).__name__ in ("SparseTensor", "RaggedTensor"):
        return "arrays"
    if _is_tf_dataset(x):
        return "tf.data"
    if _is_pydataset(x):
        return "pydataset"
    if isinstance(x, types.GeneratorType) or hasattr(x, "__next__"):
        return "generator"
    if hasattr(x, "shape") and hasattr(x, "dtype"):
        return "arrays"  # a tensor-like without __array__: described (or not-data) there
    return "other"


def _is_tf_dataset(x: Any) -> bool:
    return any(c.__name__ in ("DatasetV2", "DistributedDataset",
                              "DistributedDatasetsFromFunction")
               and "tensorflow.python." in str(c.__module__) for c in type(x).__mro__)


def _is_pydataset(x: Any) -> bool:
    try:
        from keras.utils import PyDataset
    except ImportError:  # pragma: no cover - Keras is a dependency
        return False
    return isinstance(x, PyDataset)


def _is_data_adapter(x: Any) -> bool:
    try:
        from keras.src.trainers.data_adapters.data_adapter import DataAdapter
    except ImportError:  # pragma: no cover
        return False
    return isinstance(x, DataAdapter)


def sample(call: Any, *, max_batches: int = 3, timeout: float = 10.0) -> list[Feed]:
    """Feeds for one dry-run call: its training/evaluation/prediction data and, for fit,
    its validation data. Never raises: what cannot be read becomes a Problem."""
    method = str(getattr(call, "method", "fit"))
    feed = Feed(method, _ROLES.get(method, "train"), getattr(call, "path", None),
                getattr(call, "line", None), "other")
    feeds = [feed]
    try:
        args = _arguments(call)
        feed.kind = "arrays" if method.endswith("_on_batch") else _data_kind(args.get("x"))
        if method in ("fit", "train_on_batch"):
            feed.class_weight = args.get("class_weight")
        guard(feed, lambda: _main(feeds, args, max_batches, timeout))
        if method == "fit" and args.get("validation_data") is not None:
            val = Feed(method, "validation", feed.path, feed.line, "other")
            feeds.append(val)
            guard(val, lambda: _validation_data(val, args, max_batches, timeout))
    except Exception as err:  # sampling never stops the check
        feed.add("sampling-error", f"shapecheck could not read the data of `{method}`: "
                 f"{type(err).__name__}: {err}")
    return feeds


def _main(feeds: list[Feed], args: dict[str, Any], max_batches: int, timeout: float) -> None:
    """The call's own data (and a validation_split's share of it)."""
    feed = feeds[0]
    x, y, sw = args.get("x"), args.get("y"), args.get("sample_weight")
    if feed.role == "predict":
        y = sw = None
    if x is None:
        feed.add("not-data", f"`{feed.method}` got no data: `x` is None, and Keras 3 needs "
                 "arrays, a generator, a PyDataset or a tf.data.Dataset")
        return
    if feed.kind == "arrays":
        sample_arrays_with_split(feeds, args, x, y, sw)
        return
    if _is_data_adapter(x):  # a custom Keras DataAdapter: Keras takes it as it is
        return
    _misuse(feed, args, y, sw)
    steps = args.get("steps_per_epoch") if feed.method == "fit" else args.get("steps")
    epochs = 1
    if feed.method == "fit":
        epochs = (args.get("epochs") or 1) - (args.get("initial_epoch") or 0)
    _iterable(feed, x, max_batches, timeout, steps, epochs)


def _misuse(feed: Feed, args: dict[str, Any], y: Any, sw: Any) -> None:
    """Arguments Keras 3 rejects alongside a generator, PyDataset or dataset."""
    what = _kind_words(feed.kind)
    m = feed.method
    if y is not None:
        feed.add("wrong-structure", f"`{m}` got `y=` with {what} as `x`: Keras 3 takes the "
                 f"targets from {what} itself (items `(x, y)`) and raises ValueError when "
                 "`y` is passed too")
    if sw is not None:
        feed.add("wrong-structure", f"`{m}` got `sample_weight=` with {what} as `x`: Keras 3 "
                 f"takes sample weights from {what} itself (items `(x, y, sample_weight)`) "
                 "and raises ValueError")
    if args.get("class_weight") is not None and feed.kind in ("generator", "other"):
        feed.add("wrong-structure", f"`{m}` got `class_weight=` with {what} as `x`: Keras 3 "
                 "supports class_weight only with arrays, a PyDataset or a tf.data.Dataset "
                 "and raises ValueError")
    split = args.get("validation_split") if m == "fit" else None
    if split and args.get("validation_data") is None:
        feed.add("wrong-structure", f"`fit` got `validation_split={split}` with {what} as "
                 "`x`: Keras 3 can split only arrays and raises ValueError; pass "
                 "`validation_data` instead")


def _kind_words(kind: str) -> str:
    return {"generator": "a generator", "pydataset": "a PyDataset",
            "tf.data": "a tf.data.Dataset"}.get(kind, "an iterable")


def _iterable(feed: Feed, x: Any, max_batches: int, timeout: float, steps: Any,
              epochs: Any = 1) -> None:
    """Items of a generator, PyDataset, tf.data.Dataset or other iterable (``steps``,
    ``epochs``: how many items Keras reads)."""
    if feed.kind == "pydataset":
        sample_pydataset(feed, x, max_batches, timeout, steps)
        return
    spec = tf_facts(feed, x, steps) if feed.kind == "tf.data" else ""
    functions: list[tuple[str, str, int]] = []
    if feed.kind == "tf.data":
        try:
            functions = pipeline_functions(x)
        except Exception:  # a dataset of another make: no functions to point at
            functions = []
        from shapecheck.data.sources import dataset_source

        feed.source, feed.pipeline = dataset_source(x), functions
    reach = items_read(feed.kind, steps, epochs)
    if unreadable(feed, x):
        return
    if steps and feed.steps is None:
        feed.steps = int(steps)
    name = source_name(x, feed.kind) + (f" (element_spec {spec})" if spec else "")
    holder: dict[str, Any] = {}

    def pull() -> Any:
        if "it" not in holder:
            holder["it"] = x if hasattr(x, "__next__") else iter(x)
        return next(holder["it"])

    raws: list[Any] = []
    for i in range(max_batches):
        label = label_of_item(feed.kind, i, x)
        status, item = take(feed, name, label, pull, timeout,
                            reached=reach is None or i < reach, functions=functions)
        if status == "stop":
            ended(feed, name, i, steps)
        if status != "ok":
            break
        shown = label + (f" (element_spec {spec})" if spec and i == 0 else "")
        raws.append(read_item(feed, i, shown, item, label))
    check_spec(feed, raws, first_two=True)


_VAL_NAMES = ("validation_data[0]", "validation_data[1]", "validation_data[2]")


def _validation_data(val: Feed, args: dict[str, Any], max_batches: int,
                     timeout: float) -> None:
    """fit's ``validation_data``, read as Keras 3's ``unpack_x_y_sample_weight`` reads it."""
    data = args["validation_data"]
    steps = args.get("validation_steps")
    if isinstance(data, list):
        data = tuple(data)  # Keras reads a list here as a tuple
    vx, vy, vsw = data, None, None
    if isinstance(data, tuple):
        if not 1 <= len(data) <= 3:
            val.add("wrong-structure", f"`validation_data` is a tuple of {len(data)} items: "
                    "Keras 3 reads only `(x_val, y_val)` or `(x_val, y_val, "
                    "sample_weight_val)` and raises ValueError")
            return
        vx, vy, vsw = (data + (None, None))[:3]
    val.kind = _data_kind(vx)
    if val.kind != "arrays":
        if vy is not None or vsw is not None:
            val.add("wrong-structure", f"`validation_data` pairs {_kind_words(val.kind)} "
                    "with targets: Keras 3 takes the targets from the generator or dataset "
                    "itself and raises ValueError")
        _iterable(val, vx, max_batches, timeout, steps)
        return
    names = _VAL_NAMES if isinstance(data, tuple) else ("validation_data", "y", "sw")
    n = first_rows(vx, vy, vsw)
    check_rows(val, vx, vy, vsw, names)
    window = None if n is None else (0, n)
    sample_arrays(val, vx, vy, vsw, window,
                  keras_batch_size(args, n or 0, steps, validation=True), steps, names)


def call_feed(x: Any, path: str | None, line: int | None, label: str) -> Feed | None:
    """The inputs of one call of a model on data (``model(x)`` in a loop, or inside a
    ``tf.function`` being traced) as a feed of one batch; None when an input's shape is
    not fully known (a traced function's unknown batch size)."""
    from shapecheck.data.batches import ArrayInfo, Batch
    from shapecheck.data.values import array_info, map_leaves

    feed = Feed("call", "predict", path, line, "arrays")
    unknown: list[str] = []

    def leaf(v: Any, place: str) -> Any:
        if v is None:
            return None
        info = array_info(v) if not _symbolic(v) else None
        if info is not None:
            return info
        try:
            shape = tuple(v.shape)
            dtype = getattr(v.dtype, "name", str(v.dtype))
        except Exception:
            shape, dtype = None, ""
        if shape is None or any(d is None for d in shape):
            unknown.append(place)
            return None
        return ArrayInfo(tuple(int(d) for d in shape), dtype,
                         dtype.startswith(("int", "uint", "bool")), None, None, None)

    described = map_leaves(leaf, x, "x")
    if unknown:
        return None
    feed.batches.append(Batch(0, label, described, None, None))
    feed.batch_size = first_rows(x)
    return feed


def _symbolic(v: Any) -> bool:
    """A tensor without values: one of a ``tf.function`` being traced."""
    return type(v).__name__ in ("SymbolicTensor", "Tensor") and \
        type(v).__module__.startswith("tensorflow") and not hasattr(v, "_numpy")
