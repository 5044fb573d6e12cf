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

import math
import os
import re
import sysconfig
import threading
import types
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class ArrayInfo:
    shape: tuple[int, ...]
    dtype: str  # numpy dtype name ("float32", "int64", "bool", "str", "object")
    integer: bool  # integer or bool dtype
    min: float | None  # over the sampled values; None when not numeric or empty
    max: float | None
    one_hot: bool | None  # rank >= 2, last axis >= 2, values in {0, 1}, one 1 per row


@dataclass
class Batch:
    index: int  # 0-based position in its feed
    label: str  # "batch 1 of 32 (rows 0-31)", "generator item 2", "PyDataset[0]", ...
    x: Any  # ArrayInfo, or the data's structure (list / tuple / dict) of ArrayInfo
    y: Any | None
    sample_weight: Any | None


@dataclass
class Problem:
    kind: str
    message: str


@dataclass
class Feed:
    method: str
    role: str  # "train" | "validation" | "predict" | "evaluate"
    path: str | None
    line: int | None
    kind: str  # "arrays" | "generator" | "pydataset" | "tf.data" | "other"
    batches: list[Batch] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    batch_size: int | None = None  # rows per batch when known
    steps: int | None = None  # batches per epoch when known
    class_weight: Any = None  # the `class_weight` given to fit / train_on_batch, as given
    source: Any = None  # sources.Source: the Keras utility that made a tf.data dataset
    pipeline: list[tuple[str, str, int]] = field(default_factory=list)  # its user functions

    def add(self, kind: str, message: str, label: str = "") -> None:
        """Record a problem once: the same words for another batch (``message`` less its
        leading ``label``) count once."""
        core = message[len(label):] if label and message.startswith(label) else message
        if not any(p.kind == kind and p.message.endswith(core) for p in self.problems):
            self.problems.append(Problem(kind, message))


_MAX_VALUES = 500_000  # values read for min/max/one-hot (a few MB); larger data is subsampled
_DEFAULT_BATCH = 32  # Keras's batch_size when neither batch_size nor steps is given

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


# --- array_info -------------------------------------------------------------------------


def array_info(value: Any) -> ArrayInfo | None:
    """ArrayInfo of an array-like (numpy, tf.Tensor, jax/torch-like with .shape and
    numpy(), pandas, sparse, Python lists of numbers, scalars); None when it is not
    array-like (or is a ragged Python list)."""
    try:
        special = _sparse_or_ragged_info(value)
        if special is not None:
            return special
        got = _sampled_array(value)
    except Exception:  # a value whose conversion fails is not data we can read
        return None
    if got is None:
        return None
    shape, arr = got
    return _info(shape, arr)


def _info(shape: tuple[int, ...], arr: np.ndarray) -> ArrayInfo:
    """ArrayInfo of an array of ``shape`` whose (sampled) values are ``arr``."""
    kind = arr.dtype.kind
    dtype = arr.dtype.name
    if kind in "US" or (kind == "O" and arr.size and isinstance(arr.flat[0], (str, bytes))):
        dtype = "str"
    numeric = kind in "biuf"
    lo, hi, one_hot = _stats(arr) if numeric else (None, None, None)
    return ArrayInfo(shape, dtype, kind in "biu", lo, hi, one_hot)


def _stats(arr: np.ndarray) -> tuple[float | None, float | None, bool | None]:
    """min, max and one-hot-ness of numeric values (NaN ignored)."""
    if not arr.size:
        return None, None, None
    vals = arr
    if arr.dtype.kind == "f":
        nan = np.isnan(arr)
        if nan.any():
            vals = arr[~nan]
            if not vals.size:
                return None, None, None
    lo, hi = float(np.min(vals)), float(np.max(vals))
    one_hot = False
    if arr.ndim >= 2 and arr.shape[-1] >= 2 and lo >= 0 and hi <= 1:
        rows = arr.reshape(-1, arr.shape[-1])
        one_hot = bool(np.all((rows == 0) | (rows == 1)) and np.all(rows.sum(axis=-1) == 1))
    return lo, hi, one_hot


def _sampled_array(value: Any) -> tuple[tuple[int, ...], np.ndarray] | None:
    """``(full shape, values)``: all values, or evenly spaced whole rows when many."""
    if value is None or isinstance(value, (str, bytes, dict)):
        return None
    if isinstance(value, (bool, int, float, np.generic)):
        arr = np.asarray(value)
        return tuple(arr.shape), arr
    if isinstance(value, (list, tuple)):
        if not _is_number_list(value) or _ragged_lengths(value):
            return None
        arr = np.asarray(value)
        if arr.dtype == object:
            return None
        return tuple(int(d) for d in arr.shape), _subsample(arr)
    if _is_pandas(value):
        arr = value.to_numpy()
        return tuple(int(d) for d in arr.shape), _subsample(arr)
    if isinstance(value, np.ndarray):
        return tuple(int(d) for d in value.shape), _subsample(value)
    shape = _static_shape(value)
    if shape is None:
        return None
    head = value
    rows = _rows_in_budget(shape)
    if rows is not None and rows < shape[0]:
        head = value[:rows]  # tensors slice like arrays: convert only what is read
    arr = _to_numpy(head)
    if arr is None:
        return None
    return shape, _subsample(arr)


def _static_shape(value: Any) -> tuple[int, ...] | None:
    shape = getattr(value, "shape", None)
    if shape is None:
        return None
    try:
        dims = tuple(shape)
    except (TypeError, ValueError):  # an unknown-rank TensorShape
        return None
    if any(d is None for d in dims):
        return None
    return tuple(int(d) for d in dims)


def _to_numpy(value: Any) -> np.ndarray | None:
    if hasattr(value, "detach") and hasattr(value, "cpu"):  # torch
        value = value.detach().cpu()
    if hasattr(value, "__array__"):
        return np.asarray(value)
    numpy = getattr(value, "numpy", None)
    if callable(numpy):
        return np.asarray(numpy())
    return None


def _rows_in_budget(shape: tuple[int, ...]) -> int | None:
    """Leading rows that fit the value budget; None when the whole array does."""
    if not shape or math.prod(shape) <= _MAX_VALUES:
        return None
    per_row = max(1, math.prod(shape[1:]))
    return max(1, _MAX_VALUES // per_row)


def _subsample(arr: np.ndarray) -> np.ndarray:
    """At most about ``_MAX_VALUES`` values: evenly spaced whole rows (or the first row's
    leading entries when one row is already too big)."""
    rows = _rows_in_budget(tuple(arr.shape))
    if rows is None:
        return arr
    if rows == 1 and arr[0].size > _MAX_VALUES:
        last = arr.shape[-1] if arr.ndim >= 2 else 1
        if last > _MAX_VALUES:
            return np.asarray(arr[0]).reshape(-1)[:_MAX_VALUES]
        flat = np.asarray(arr[0]).reshape(-1)[:(_MAX_VALUES // last) * last]
        return flat.reshape(-1, last)
    step = max(1, arr.shape[0] // rows)
    return arr[::step][:rows]


def _sparse_or_ragged_info(value: Any) -> ArrayInfo | None:
    """ArrayInfo of a scipy / TensorFlow sparse matrix or a tf.RaggedTensor."""
    cls = type(value)
    module = getattr(cls, "__module__", "") or ""
    if module.startswith("scipy.sparse") and hasattr(value, "tocoo"):
        coo = value.tocoo()
        shape = tuple(int(d) for d in coo.shape)
        return _sparse_info(shape, np.asarray(coo.data[:_MAX_VALUES]), coo.row, coo.nnz)
    if "tensorflow" not in module:
        return None
    if cls.__name__ == "SparseTensor":
        shape = tuple(int(d) for d in np.asarray(value.dense_shape))
        values = np.asarray(value.values)
        rows = np.asarray(value.indices)[:, 0] if len(shape) == 2 else None
        return _sparse_info(shape, values[:_MAX_VALUES], rows, int(values.size))
    if cls.__name__ == "RaggedTensor":
        shape = tuple(int(d) for d in np.asarray(value.bounding_shape()))
        flat = np.asarray(value.flat_values).reshape(-1)[:_MAX_VALUES]
        info = _info(shape, flat)
        info.one_hot = None if info.one_hot is None else False
        return info
    return None


def _sparse_info(shape: tuple[int, ...], data: np.ndarray, rows: Any, nnz: int) -> ArrayInfo:
    """Stats of a sparse array: its stored values, and the zeros it leaves out."""
    info = _info(shape, data)
    if data.dtype.kind not in "biuf":
        return info
    if nnz < math.prod(shape):
        info.min = 0.0 if info.min is None else min(info.min, 0.0)
        info.max = 0.0 if info.max is None else max(info.max, 0.0)
    info.one_hot = False
    if (len(shape) == 2 and shape[1] >= 2 and rows is not None and nnz == shape[0]
            and nnz <= _MAX_VALUES and np.all(data == 1)):
        info.one_hot = bool(len(np.unique(np.asarray(rows))) == shape[0])
    return info


# --- structures -----------------------------------------------------------------------------

_SCALARS = (bool, int, float, complex, str, bytes, np.generic)


def _is_number_list(value: Any) -> bool:
    """A (nested) Python list / tuple whose leaves are all scalars: data, not a structure."""
    if not isinstance(value, (list, tuple)):
        return isinstance(value, _SCALARS)
    return all(_is_number_list(v) for v in value)


def _ragged_lengths(value: Any) -> list[int]:
    """The distinct row lengths of a ragged nested list (empty when rectangular)."""
    rows = [v for v in value if isinstance(v, (list, tuple))]
    if not rows:
        return []
    lengths = sorted({len(v) for v in rows})
    if len(rows) != len(value):  # numbers and lists side by side
        return sorted(set(lengths) | {0})
    if len(lengths) > 1:
        return lengths
    for v in rows:
        inner = _ragged_lengths(v)
        if inner:
            return inner
    return []


def _is_pandas(value: Any) -> bool:
    return hasattr(value, "iloc") and hasattr(value, "to_numpy")


def _is_structure(value: Any) -> bool:
    """A list / tuple / dict that Keras reads as several arrays (not a list of numbers)."""
    if isinstance(value, dict):
        return True
    return isinstance(value, (list, tuple)) and not _is_number_list(value)


def _sub(where: str, key: Any) -> str:
    return f"{where}[{key!r}]" if isinstance(key, str) else f"{where}[{key}]"


def _leaves(value: Any, where: str) -> Iterator[tuple[str, Any]]:
    """``(place, leaf)`` of every leaf, dict keys in Keras's (sorted) order."""
    if isinstance(value, dict):
        try:
            keys = sorted(value)
        except TypeError:
            keys = list(value)
        for k in keys:
            yield from _leaves(value[k], _sub(where, k))
    elif _is_structure(value):
        for i, v in enumerate(value):
            yield from _leaves(v, _sub(where, i))
    else:
        yield where, value


def _map(fn: Callable[[Any, str], Any], value: Any, where: str) -> Any:
    """``value`` with ``fn(leaf, place)`` at every leaf, its lists / tuples / dicts kept."""
    if isinstance(value, dict):
        return {k: _map(fn, v, _sub(where, k)) for k, v in value.items()}
    if _is_structure(value):
        items = [_map(fn, v, _sub(where, i)) for i, v in enumerate(value)]
        return items if isinstance(value, list) else tuple(items)
    return fn(value, where)


def _describe(feed: Feed, value: Any, where: str, label: str = "", lists: bool = True) -> Any:
    """``value`` with each array replaced by its ArrayInfo; what is no array is a problem
    (``label``: the batch, for the problems' words; ``lists``: report Python lists)."""
    prefix = f"{label}: " if label else ""

    def leaf(v: Any, place: str) -> Any:
        if v is None:
            return None
        if isinstance(v, (list, tuple)):
            return _python_list(feed, v, place, prefix) if lists else array_info(v)
        info = array_info(v)
        if info is not None and info.dtype == "object" and _object_ragged(v):
            feed.add("ragged", f"{prefix}`{place}` is an object array of rows of different "
                     "lengths: Keras 3 needs rectangular arrays, every row the same length",
                     prefix)
        elif info is not None and info.dtype in ("str", "object"):
            _refused_dtype(feed, v, place, prefix)
        if info is None:
            what = _type_name(v)
            if type(v).__name__ == "KerasTensor":
                what = "symbolic KerasTensor (a placeholder without values)"
            feed.add("not-data", f"{prefix}`{place}` is a {what}, not an array: Keras 3 "
                     "needs NumPy arrays or tensors (or a list, tuple or dict of them) here",
                     prefix)
        return info

    return _map(leaf, value, where)


def _refused_dtype(feed: Feed, value: Any, place: str, prefix: str) -> None:
    """A NumPy array or DataFrame of strings, bytes or objects: Keras 3 converts every
    array to a tensor of a Keras dtype and raises ValueError on these (a ``tf.Tensor`` of
    strings is read as it is, for a model whose input has ``dtype="string"``)."""
    if _is_pandas(value):
        dtype, what = value.to_numpy().dtype, "DataFrame"
    elif isinstance(value, np.ndarray):
        dtype, what = value.dtype, "NumPy array"
    else:
        return
    words = {"U": "strings", "S": "bytes", "O": "Python objects"}.get(dtype.kind)
    if words is None:
        return
    feed.add("dtype", f"{prefix}`{place}` is a {what} of {words} (dtype {dtype.str}): Keras 3 "
             f"converts data to tensors of numbers and raises ValueError ('Invalid dtype: "
             f"{dtype.name}')", prefix)


def _python_list(feed: Feed, value: Any, place: str, prefix: str) -> ArrayInfo | None:
    """A Python list of numbers where an array belongs: ragged, or read as a structure."""
    lengths = _ragged_lengths(value)
    what = type(value).__name__
    if lengths:
        shown = ", ".join(map(str, lengths[:5])) + (", ..." if len(lengths) > 5 else "")
        feed.add("ragged", f"{prefix}`{place}` is a ragged Python {what} (rows of lengths "
                 f"{shown}): Keras 3 needs rectangular arrays, every row the same length",
                 prefix)
        return None
    info = array_info(value)
    if info is not None:
        feed.add("python-list", f"{prefix}`{place}` is a Python {what} of values "
                 f"{_shape_text(info.shape)}: Keras 3 reads a {what} as a structure of "
                 "arrays, not as one array, and fails on its numbers ('Unrecognized data "
                 "type', or one input per number)", prefix)
    return info


def _object_ragged(value: Any) -> bool:
    if not isinstance(value, np.ndarray) or value.dtype != object or not value.size:
        return False
    sample = value.reshape(-1)[:1000]
    return len({len(v) for v in sample if isinstance(v, (list, tuple, np.ndarray))}) > 1


def _type_name(value: Any) -> str:
    cls = type(value)
    module = getattr(cls, "__module__", "") or ""
    if module in ("builtins", "__main__") or not module:
        return cls.__name__
    return f"{module.split('.')[0]}.{cls.__name__}"


def _shape_text(shape: Any) -> str:
    dims = tuple(shape)
    inner = ", ".join("None" if d is None else str(d) for d in dims)
    return f"({inner},)" if len(dims) == 1 else f"({inner})"


# --- the call's arguments ---------------------------------------------------------------


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
            _is_pandas(x) or hasattr(x, "__array__") or hasattr(x, "tocoo") or \
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


def _keras_reads_natively(x: Any) -> bool:
    """torch DataLoader / grain datasets: Keras has adapters; read here by iteration."""
    return any((c.__name__ == "DataLoader" and "torch.utils.data" in str(c.__module__)) or
               (c.__name__ in ("MapDataset", "IterDataset", "DataLoader")
                and "grain" in str(c.__module__)) for c in type(x).__mro__)


def _tensorflow_backend() -> bool:
    try:
        import keras

        return keras.backend.backend() == "tensorflow"
    except Exception:  # pragma: no cover
        return False


# --- sample ---------------------------------------------------------------------------------


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
        _guard(feed, lambda: _main(feeds, args, max_batches, timeout))
        if method == "fit" and args.get("validation_data") is not None:
            val = Feed(method, "validation", feed.path, feed.line, "other")
            feeds.append(val)
            _guard(val, lambda: _validation_data(val, args, max_batches, timeout))
    except Exception as err:  # sampling never stops the check
        feed.add("sampling-error", f"shapecheck could not read the data of `{method}`: "
                 f"{type(err).__name__}: {err}")
    return feeds


def _guard(feed: Feed, fn: Callable[[], None]) -> None:
    try:
        fn()
    except Exception as err:  # our own limits: say so on this feed, keep the others
        feed.add("sampling-error", f"shapecheck could not read the {feed.role} data of "
                 f"`{feed.method}`: {type(err).__name__}: {err}")


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
        _arrays_with_split(feeds, args, x, y, sw)
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


# --- arrays ----------------------------------------------------------------------------------

_NAMES = ("x", "y", "sample_weight")


def _rows(value: Any) -> int | None:
    """Rows (first-axis length) of an array-like leaf; None when it has no first axis."""
    if isinstance(value, (list, tuple)) or _is_pandas(value):
        return len(value)
    shape = getattr(value, "shape", None)
    try:
        if shape is not None and len(shape) and shape[0] is not None:
            return int(shape[0])
    except (TypeError, ValueError):  # an unknown-rank TensorShape
        return None
    return None


def _first_rows(*parts: Any) -> int | None:
    """The rows Keras counts: those of the first array in (x, y, sample_weight)."""
    for part in parts:
        for _, leaf in _leaves(part, ""):
            if leaf is not None:
                n = _rows(leaf)
                if n is not None:
                    return n
    return None


def _slice_rows(value: Any, start: int, stop: int) -> Any:
    """Rows ``start:stop`` of every array in a structure (an array's own rows: a shorter
    array gives fewer, as slicing does)."""
    def cut(v: Any, _: str) -> Any:
        if v is None or _rows(v) is None:
            return v
        if _is_pandas(v):
            return v.iloc[start:stop]
        module = str(getattr(type(v), "__module__", ""))
        if module.startswith("scipy.sparse"):
            return v.tocsr()[start:stop]
        if type(v).__name__ == "SparseTensor" and "tensorflow" in module:
            import tensorflow as tf

            shape = [int(d) for d in np.asarray(v.dense_shape)]
            return tf.sparse.slice(v, [start] + [0] * (len(shape) - 1),
                                   [max(0, stop - start)] + shape[1:])
        return v[start:stop]

    return _map(cut, value, "")


def _check_rows(feed: Feed, x: Any, y: Any, sw: Any,
                names: tuple[str, str, str] = _NAMES) -> None:
    """x, y and sample_weight must have one row per sample each (Keras checks it first)."""
    n = _first_rows(x)
    if n is None:
        return
    for part, name in ((y, names[1]), (sw, names[2])):
        for where, leaf in _leaves(part, name):
            rows = None if leaf is None else _rows(leaf)
            if rows is not None and rows != n:
                feed.add("rows", f"`{names[0]}` has {n} rows and `{where}` has {rows}: Keras 3 "
                         "refuses arrays of different lengths ('Data cardinality is "
                         "ambiguous')")
                return


def _batch_size(args: dict[str, Any], n: int, steps: Any, validation: bool = False) -> int:
    """Keras's batch size for arrays: given, else ``ceil(n / steps)``, else 32."""
    given = args.get("batch_size")
    if validation:
        given = args.get("validation_batch_size") or given
    if given:
        return int(given)
    if steps:
        return max(1, math.ceil(n / int(steps)))
    return _DEFAULT_BATCH


def _split_at(feed: Feed, args: dict[str, Any], n: int | None) -> int | None:
    """Where fit's ``validation_split`` cuts the rows (None: no split)."""
    split = args.get("validation_split") if feed.method == "fit" else None
    if not split or args.get("validation_data") is not None or not n:
        return None
    at = math.floor(n * (1.0 - float(split)))
    if at in (0, n):
        feed.add("wrong-structure", f"`validation_split={float(split):g}` of {n} rows leaves "
                 f"{at} for training and {n - at} for validation: Keras 3 raises ValueError "
                 "when either part is empty")
        return None
    return at


def _arrays_with_split(feeds: list[Feed], args: dict[str, Any], x: Any, y: Any,
                       sw: Any) -> None:
    """Arrays: the whole of them (``*_on_batch``), or batches, with validation_split's
    last rows as a second feed."""
    feed = feeds[0]
    n = _first_rows(x, y, sw)
    _check_rows(feed, x, y, sw)
    if feed.method.endswith("_on_batch"):
        _arrays(feed, x, y, sw, None if n is None else (0, n), None, None)
        return
    steps = args.get("steps_per_epoch") if feed.method == "fit" else args.get("steps")
    cut = _split_at(feed, args, n)
    if n is None or cut is None:
        window = None if n is None else (0, n)
        _arrays(feed, x, y, sw, window, _batch_size(args, n or 0, steps), steps)
        return
    _arrays(feed, x, y, sw, (0, cut), _batch_size(args, cut, steps), steps)
    val = Feed(feed.method, "validation", feed.path, feed.line, "arrays")
    feeds.append(val)
    vsteps = args.get("validation_steps")
    _guard(val, lambda: _arrays(val, x, y, sw, (cut, n),
                                _batch_size(args, n - cut, vsteps, validation=True), vsteps))
    shared = {(p.kind, p.message) for p in feed.problems}  # the same arrays: said once
    val.problems = [p for p in val.problems if (p.kind, p.message) not in shared]


def _arrays(feed: Feed, x: Any, y: Any, sw: Any, window: tuple[int, int] | None,
            batch_size: int | None, steps: Any,
            names: tuple[str, str, str] = _NAMES) -> None:
    """The first and last batch of rows ``window`` (``batch_size`` None: one batch)."""
    feed.kind = "arrays"
    if window is None:  # no array with a first axis: describe it as it is
        feed.batches.append(_batch(feed, 0, "the data", (x, y, sw), names))
        if not feed.problems:
            feed.add("not-data", f"`{names[0]}` has no samples axis: Keras 3 needs arrays "
                     "whose first axis counts the samples")
        return
    for part, name in zip((x, y, sw), names):  # Python lists: said of the whole argument
        for where, leaf in _leaves(part, name):
            if isinstance(leaf, (list, tuple)):
                _python_list(feed, leaf, where, "")
    lo, hi = window
    n = hi - lo
    if n <= 0:
        feed.add("exhausted", f"the {feed.role} data has no rows: Keras 3 has no batch to "
                 "feed")
        feed.batch_size, feed.steps = batch_size, 0
        return
    bs = batch_size or n
    total = math.ceil(n / bs)
    feed.batch_size = bs
    feed.steps = min(total, int(steps)) if steps else total
    starts = [lo] if total == 1 else [lo, lo + (total - 1) * bs]
    for i, start in enumerate(starts):
        stop = min(hi, start + bs)
        rows = f"rows {start}-{stop - 1}"
        if batch_size is None:
            label = f"the whole data ({rows})"
        elif i == 0:
            label = f"batch 1 of {total} ({rows})"
        else:
            label = f"last batch {total} of {total} ({rows})"
        parts = tuple(_slice_rows(p, start, stop) for p in (x, y, sw))
        feed.batches.append(_batch(feed, i, label, parts, names, lists=False))


def _batch(feed: Feed, index: int, label: str, parts: tuple[Any, Any, Any],
           names: tuple[str, str, str] = _NAMES, item_label: str = "",
           lists: bool = True) -> Batch:
    """A Batch of described ``(x, y, sample_weight)``; a None inside x is a problem
    (``item_label``: the item's words in problems; arrays name the argument only)."""
    x = parts[0]
    prefix = f"{item_label}: " if item_label else ""
    nones = [names[0] + w for w, v in _leaves(x, "") if v is None]
    if nones:
        feed.add("none-in-batch", f"{prefix}`{nones[0]}` is None: Keras 3 needs an array "
                 "for every input of the model", prefix)
    return Batch(index, label, *(_describe(feed, part, name, item_label, lists)
                                 for part, name in zip(parts, names)))


# --- generators, PyDataset, tf.data ----------------------------------------------------------


def _pull(fn: Callable[[], Any], timeout: float) -> tuple[str, Any]:
    """Run ``fn`` in a daemon thread: ``("ok", value)``, ``("stop", None)``,
    ``("timeout", None)`` or ``("error", exception)``."""
    box: dict[str, Any] = {}

    def work() -> None:
        try:
            box["value"] = fn()
        except StopIteration:
            box["stop"] = True
        except BaseException as err:  # the user's code: report it
            box["error"] = err

    t = threading.Thread(target=work, name="shapecheck-sample", daemon=True)
    t.start()
    t.join(max(0.0, timeout))
    if t.is_alive():
        return "timeout", None
    if "stop" in box:
        return "stop", None
    if "error" in box:
        return "error", box["error"]
    return "ok", box.get("value")


def _take(feed: Feed, name: str, what: str, fn: Callable[[], Any], timeout: float,
          ends: bool = True, reached: bool = True,
          functions: list[tuple[str, str, int]] = ()) -> tuple[str, Any]:
    """``fn()`` from the source ``name`` within ``timeout``: ``("ok", value)``, ``("stop",
    None)`` when the source ended (only if it ``ends`` by StopIteration), or ``("failed",
    None)`` with the timeout or the error recorded (``what``: what was waited for;
    ``reached``: whether Keras reads it too; ``functions``: the source's own functions,
    ``(name, path, line)``, to point at when the error has no line of the user's)."""
    status, value = _pull(fn, timeout)
    if status == "stop" and not ends:
        status, value = "error", StopIteration()
    if status == "timeout":
        feed.add("timeout", f"{name} gave nothing within {timeout:g} s (waiting for {what}): "
                 "shapecheck stopped reading it")
    elif status == "error":
        said = f"{name} raised {_exception_text(value)}"
        where = _raised_at(value)
        if where is not None:
            said += f" at {_place(*where)}"
            source = _source(*where)
            if source:
                said += f" (`{source}`)"
        elif functions:
            said += " in its pipeline, which runs " + ", ".join(
                f"`{fn}` ({_place(path, line)})" for fn, path, line in functions[:3])
        if reached:
            feed.add("raised", f"{said}, while giving {what}: `{feed.method}` reads it and "
                     "raises there too")
        else:
            feed.add("sampling-error", f"{said}, while giving {what}, beyond the steps "
                     f"`{feed.method}` reads")
    return ("failed", None) if status in ("timeout", "error") else (status, value)


_TF_NOISE = re.compile(r"\{\{function_node [^}]*\}\}\s*")


def _exception_text(err: BaseException) -> str:
    """``ValueError: corrupt record``: the first lines of the message, TensorFlow's node
    names left out."""
    text = _TF_NOISE.sub("", str(err)).split("[[{{node", 1)[0].strip()
    lines = [part.strip() for part in text.splitlines() if part.strip()]
    message = " ".join(lines[:3])
    if len(message) > 300:
        message = message[:297] + "..."
    return f"{type(err).__name__}: {message}" if message else type(err).__name__


def _library_dirs() -> tuple[str, ...]:
    """Folders whose code is not the user's: the standard library, installed packages,
    shapecheck itself."""
    paths = sysconfig.get_paths()
    dirs = {paths.get(k) for k in ("stdlib", "platstdlib", "purelib", "platlib")}
    dirs.add(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # shapecheck/
    return tuple(os.path.join(os.path.abspath(d), "") for d in dirs if d)


def _user_code(filename: str) -> bool:
    return (not filename.startswith("<") and "__autograph_generated_file" not in filename
            and not os.path.abspath(filename).startswith(_library_dirs()))


def _raised_at(err: BaseException) -> tuple[str, int] | None:
    """The innermost line of the user's code in ``err``'s traceback."""
    import traceback

    frames = [f for f in traceback.extract_tb(err.__traceback__) if _user_code(f.filename)]
    if not frames or frames[-1].lineno is None:
        return None
    return os.path.abspath(frames[-1].filename), frames[-1].lineno


def _place(path: str, line: int) -> str:
    from shapecheck.report import display_path

    return f"{display_path(path)}:{line}"


def _source(path: str, line: int) -> str:
    import linecache

    return linecache.getline(path, line).strip()


def _pipeline_functions(ds: Any) -> list[tuple[str, str, int]]:
    """The user's functions a tf.data pipeline runs (``map``, ``filter``, ...), from the
    source outwards: ``(name, path, first line)``."""
    import inspect

    out: list[tuple[str, str, int]] = []
    seen: set[int] = set()
    while ds is not None and id(ds) not in seen:
        seen.add(id(ds))
        for attr in ("_map_func", "_predicate", "_reduce_func", "_key_func"):
            fn = getattr(getattr(ds, attr, None), "_func", None)
            code = getattr(inspect.unwrap(fn), "__code__", None) if fn is not None else None
            if code is not None and _user_code(code.co_filename):
                out.append((getattr(fn, "__name__", "?"), os.path.abspath(code.co_filename),
                            code.co_firstlineno))
        ds = getattr(ds, "_input_dataset", None)
    return out[::-1]


def _source_name(x: Any, kind: str) -> str:
    if kind == "generator" and isinstance(x, types.GeneratorType):
        return f"generator `{getattr(x, '__name__', 'generator')}`"
    if kind == "tf.data":
        return "the tf.data.Dataset"
    if kind == "pydataset":
        return f"PyDataset `{type(x).__name__}`"
    return f"`{type(x).__name__}`"


def _unreadable(feed: Feed, x: Any) -> bool:
    """Say what Keras 3 refuses about a non-generator iterable; True: nothing to read."""
    if feed.kind == "generator" and not isinstance(x, types.GeneratorType):
        feed.add("wrong-structure", f"`x` is a {_type_name(x)}, an iterator but not a "
                 "generator: Keras 3 takes generators (functions that `yield`), a "
                 "PyDataset, a tf.data.Dataset or arrays, and raises 'Unrecognized data type'")
    elif feed.kind == "other" and not _keras_reads_natively(x):
        if not hasattr(x, "__iter__") or isinstance(x, (str, bytes)):
            feed.add("not-data", f"`x` is a {_type_name(x)}: Keras 3 reads arrays, "
                     "generators, a PyDataset or a tf.data.Dataset, and raises "
                     "'Unrecognized data type'")
            return True
        feed.add("wrong-structure", f"`x` is a {_type_name(x)}: Keras 3 takes generators, a "
                 "PyDataset, a tf.data.Dataset or arrays, and raises 'Unrecognized data type'")
    return False


def _iterable(feed: Feed, x: Any, max_batches: int, timeout: float, steps: Any,
              epochs: Any = 1) -> None:
    """Items of a generator, PyDataset, tf.data.Dataset or other iterable (``steps``,
    ``epochs``: how many items Keras reads)."""
    if feed.kind == "pydataset":
        _pydataset(feed, x, max_batches, timeout, steps)
        return
    spec = _tf_facts(feed, x, steps) if feed.kind == "tf.data" else ""
    functions: list[tuple[str, str, int]] = []
    if feed.kind == "tf.data":
        try:
            functions = _pipeline_functions(x)
        except Exception:  # a dataset of another make: no functions to point at
            functions = []
        from shapecheck.data.sources import dataset_source

        feed.source, feed.pipeline = dataset_source(x), functions
    reach = _reach(feed.kind, steps, epochs)
    if _unreadable(feed, x):
        return
    if steps and feed.steps is None:
        feed.steps = int(steps)
    name = _source_name(x, feed.kind) + (f" (element_spec {spec})" if spec else "")
    holder: dict[str, Any] = {}

    def pull() -> Any:
        if "it" not in holder:
            holder["it"] = x if hasattr(x, "__next__") else iter(x)
        return next(holder["it"])

    raws: list[Any] = []
    for i in range(max_batches):
        label = _item_label(feed.kind, i, x)
        status, item = _take(feed, name, label, pull, timeout,
                             reached=reach is None or i < reach, functions=functions)
        if status == "stop":
            _ended(feed, name, i, steps)
        if status != "ok":
            break
        shown = label + (f" (element_spec {spec})" if spec and i == 0 else "")
        raws.append(_item(feed, i, shown, item, label))
    _check_spec(feed, raws, first_two=True)


def _reach(kind: str, steps: Any, epochs: Any) -> int | None:
    """How many items Keras reads from an iterable (None: until it ends): ``steps`` per
    epoch, from one generator for all epochs, from the start of a dataset each epoch."""
    if not steps:
        return None
    try:
        per_epoch, n_epochs = int(steps), max(1, int(epochs or 1))
    except (TypeError, ValueError):
        return None
    if kind in ("generator", "other"):  # Keras peeks at the first two for the spec
        return max(2, per_epoch * n_epochs)
    return per_epoch


def _item_label(kind: str, i: int, x: Any) -> str:
    if kind == "generator":
        return f"generator item {i + 1}"
    if kind == "tf.data":
        return f"dataset element {i + 1}"
    return f"{type(x).__name__} item {i + 1}"


def _ended(feed: Feed, name: str, pulled: int, steps: Any) -> None:
    """A finite source ended after ``pulled`` items."""
    if pulled == 0:
        if feed.kind == "generator":
            feed.add("empty", f"{name} gave nothing: Keras 3 raises ValueError ('the "
                     "generator must yield at least one batch')")
        elif not any(p.kind == "exhausted" for p in feed.problems):
            feed.add("exhausted", f"{name} gave nothing: Keras 3 runs no step on it")
        feed.steps = 0
        return
    feed.batches[-1].label += " (the last)"
    if not steps and feed.steps is None:
        feed.steps = pulled


def _tf_facts(feed: Feed, ds: Any, steps: Any) -> str:
    """element_spec text and cardinality (steps) of a tf.data.Dataset."""
    try:
        spec = _spec_text(ds.element_spec)
    except Exception:  # a distributed dataset without element_spec
        spec = "?"
    try:
        card = int(np.asarray(ds.cardinality()))
    except Exception:
        card = -2
    if card == 0:
        feed.add("exhausted", f"the tf.data.Dataset (element_spec {spec}) is empty: Keras 3 "
                 "runs no step on it")
    if card >= 0:
        feed.steps = min(card, int(steps)) if steps else card
    elif steps:
        feed.steps = int(steps)
    return spec


def _spec_text(spec: Any) -> str:
    """``((None, 4), (None,))`` for an element_spec (shapes only)."""
    if isinstance(spec, dict):
        return "{" + ", ".join(f"{k!r}: {_spec_text(v)}" for k, v in spec.items()) + "}"
    if isinstance(spec, (list, tuple)):
        inner = ", ".join(_spec_text(s) for s in spec)
        return f"({inner},)" if len(spec) == 1 else f"({inner})"
    shape = getattr(spec, "shape", None)
    if shape is None:
        return "?"
    try:
        return _shape_text(shape.as_list() if hasattr(shape, "as_list") else shape)
    except ValueError:  # unknown rank
        return "(<unknown rank>)"


def _pydataset(feed: Feed, ds: Any, max_batches: int, timeout: float, steps: Any) -> None:
    """Items [0], [1] and [len - 1] of a PyDataset (the first ones when it is infinite):
    Keras fixes the TensorFlow spec from [0] and [1]."""
    name = _source_name(ds, "pydataset")
    status, n = _take(feed, name, "its length (`num_batches` / `__len__`)",
                      lambda: ds.num_batches, timeout, ends=False)
    if status != "ok":
        return
    if n is None:
        feed.steps = int(steps) if steps else None
        picks = list(range(max(1, max_batches)))
    else:
        n = int(n)
        feed.steps = min(n, int(steps)) if steps else n
        if n <= 0:
            if _tensorflow_backend():
                feed.add("empty", f"{name} has length 0: Keras 3 raises ValueError ('The "
                         "PyDataset has length 0')")
            else:
                feed.add("exhausted", f"{name} has length 0: Keras 3 runs no step on it")
            return
        picks = sorted({0, min(1, n - 1), n - 1} if max_batches >= 3 else {0, n - 1})
    raws: list[Any] = []
    for i, k in enumerate(picks):
        label = f"PyDataset[{k}]"
        status, item = _take(feed, name, label, lambda k=k: ds[k], timeout, ends=False,
                             reached=not steps or k < max(2, int(steps)))
        if status != "ok":
            break
        last = " (the last)" if n is not None and k == n - 1 and n > 1 else ""
        raws.append(_item(feed, i, label + last, item, label))
    _check_spec(feed, raws, first_two=picks[:2] == [0, 1])


# --- one item ---------------------------------------------------------------------------------


def _item(feed: Feed, index: int, label: str, item: Any, short: str) -> Any:
    """Describe one item, ``(x,)``, ``(x, y)``, ``(x, y, sample_weight)`` or a bare x, as
    Keras 3 reads items of this kind of source (``short``: the label in problems).
    Returns the item as Keras reads it (a list as a tuple)."""
    if feed.kind == "generator":
        if not isinstance(item, tuple):
            item = _not_a_tuple(feed, short, item)
    elif isinstance(item, list):
        item = tuple(item)  # PyDataset, tf.data, DataLoader items: Keras reads lists as tuples
    if feed.kind == "pydataset":
        if isinstance(item, np.ndarray):
            item = (item,)
        elif not isinstance(item, (tuple, dict)):
            feed.add("not-tuple", f"{short} is a {_type_name(item)}: Keras 3 needs "
                     "`PyDataset.__getitem__` to return a tuple `(x,)`, `(x, y)` or "
                     "`(x, y, sample_weight)`, a list, a dict or a NumPy array, and raises "
                     "ValueError", short)
    x, y, sw = item, None, None
    if isinstance(item, tuple):
        if not 1 <= len(item) <= 3:
            feed.add("wrong-structure", f"{short} is a tuple of {len(item)} items: Keras 3 "
                     "reads only `(x,)`, `(x, y)` or `(x, y, sample_weight)` and raises "
                     "ValueError", short)
        x, y, sw = (item + (None, None))[:3]
    if feed.role == "predict":
        y = sw = None  # predict reads x only
    feed.batches.append(_batch(feed, index, label, (x, y, sw), item_label=short))
    return item


def _not_a_tuple(feed: Feed, label: str, item: Any) -> Any:
    """A generator item that is no tuple: Keras 3 refuses it; read it as meant."""
    m = feed.method
    if (isinstance(item, list) and len(item) in (2, 3) and feed.role != "predict"
            and not _is_number_list(item)
            and all(v is None or _is_structure(v) or array_info(v) is not None
                    for v in item)):
        feed.add("list-not-tuple", f"{label} is a list of {len(item)}, not a tuple: Keras 3 "
                 "needs a generator to yield `(x, y)` or `(x, y, sample_weight)` as a tuple, "
                 f"and `{m}` raises ValueError ('the generator must return a tuple') on a "
                 "list, which Keras 2 unpacked", label)
        return tuple(item)
    what = "list" if isinstance(item, list) else _type_name(item)
    feed.add("not-tuple", f"{label} is a bare {what}, not a tuple: Keras 3 needs a generator "
             "to yield `(x,)`, `(x, y)` or `(x, y, sample_weight)`, and "
             f"`{m}` raises ValueError ('the generator must return a tuple')", label)
    return item


# --- what Keras fixes from the first two batches (TensorFlow backend) ------------------------


def _signature(value: Any) -> Any:
    """The nesting Keras compares between batches (lists / tuples / dicts, None)."""
    if isinstance(value, dict):
        keys = sorted(value, key=str)
        return ("dict", tuple(map(str, keys)), tuple(_signature(value[k]) for k in keys))
    if isinstance(value, (list, tuple)):
        return (type(value).__name__, tuple(_signature(v) for v in value))
    return None if value is None else "*"


def _shapes(batch: Batch) -> dict[str, tuple[int, ...]]:
    """Shape of every described array of a batch, by place."""
    out: dict[str, tuple[int, ...]] = {}
    for name, part in zip(_NAMES, (batch.x, batch.y, batch.sample_weight)):
        for where, leaf in _leaves(part, name):
            if isinstance(leaf, ArrayInfo):
                out[where] = tuple(leaf.shape)
    return out


def _check_spec(feed: Feed, raws: list[Any], first_two: bool) -> None:
    """Batches Keras 3 refuses after fixing the structure (and, on the TensorFlow backend,
    the shapes) from the first two batches of a generator or PyDataset
    (``first_two``: ``raws`` starts with the first two)."""
    if feed.kind not in ("generator", "pydataset") or len(raws) < 2:
        return
    first = _signature(raws[0])
    for raw, batch in zip(raws[1:], feed.batches[1:]):
        if _signature(raw) != first:
            feed.add("wrong-structure", f"{batch.label} is nested differently from the first "
                     "item (another number of arrays, or a list / tuple / dict in another "
                     "place): Keras 3 needs every batch nested the same way and raises "
                     "ValueError")
            return
    if not first_two or not _tensorflow_backend():
        return
    spec = _merged(_shapes(feed.batches[0]), _shapes(feed.batches[1]), feed)
    for batch in feed.batches[2:]:
        for where, shape in _shapes(batch).items():
            want = spec.get(where)
            if want is None:
                continue
            if len(shape) != len(want) or any(
                    w is not None and w != s for w, s in zip(want[1:], shape[1:])):
                feed.add("unstable-shape", f"{batch.label} gives `{where}` the shape "
                         f"{_shape_text(shape)} where Keras 3 expects {_shape_text(want)}: "
                         "on the TensorFlow backend it fixes every non-batch axis on which "
                         "the first two batches agree, and fails on a later batch that "
                         "changes it")
                return


def _merged(a: dict[str, tuple[int, ...]], b: dict[str, tuple[int, ...]],
            feed: Feed) -> dict[str, tuple[Any, ...]]:
    """The spec Keras builds from two batches: the batch axis and differing axes None."""
    out: dict[str, tuple[Any, ...]] = {}
    for where, sa in a.items():
        sb = b.get(where)
        if sb is None:
            continue
        if len(sa) != len(sb):
            feed.add("unstable-shape", f"`{where}` has rank {len(sa)} in the first batch and "
                     f"{len(sb)} in the second: Keras 3 needs the same rank in every batch and "
                     "raises ValueError")
            continue
        out[where] = (None,) + tuple(d if d == e else None for d, e in zip(sa[1:], sb[1:]))
    return out


# --- validation_data -------------------------------------------------------------------------

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
    n = _first_rows(vx, vy, vsw)
    _check_rows(val, vx, vy, vsw, names)
    window = None if n is None else (0, n)
    _arrays(val, vx, vy, vsw, window, _batch_size(args, n or 0, steps, validation=True),
            steps, names)
