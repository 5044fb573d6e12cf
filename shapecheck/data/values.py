"""One value fed to a model, described: shape, dtype and values of arrays, tensors,
pandas, sparse and ragged data and Python lists, in the data's own structure.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from shapecheck.data.batches import ArrayInfo, Feed


_MAX_VALUES = 500_000  # values read for min/max/one-hot (a few MB); larger data is subsampled


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
        if not is_number_list(value) or _ragged_lengths(value):
            return None
        arr = np.asarray(value)
        if arr.dtype == object:
            return None
        return tuple(int(d) for d in arr.shape), _subsample(arr)
    if is_pandas(value):
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


_SCALARS = (bool, int, float, complex, str, bytes, np.generic)


def is_number_list(value: Any) -> bool:
    """A (nested) Python list / tuple whose leaves are all scalars: data, not a structure."""
    if not isinstance(value, (list, tuple)):
        return isinstance(value, _SCALARS)
    return all(is_number_list(v) for v in value)


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


def is_pandas(value: Any) -> bool:
    return hasattr(value, "iloc") and hasattr(value, "to_numpy")


def is_structure(value: Any) -> bool:
    """A list / tuple / dict that Keras reads as several arrays (not a list of numbers)."""
    if isinstance(value, dict):
        return True
    return isinstance(value, (list, tuple)) and not is_number_list(value)


def _sub(where: str, key: Any) -> str:
    return f"{where}[{key!r}]" if isinstance(key, str) else f"{where}[{key}]"


def leaves(value: Any, where: str) -> Iterator[tuple[str, Any]]:
    """``(place, leaf)`` of every leaf, dict keys in Keras's (sorted) order."""
    if isinstance(value, dict):
        try:
            keys = sorted(value)
        except TypeError:
            keys = list(value)
        for k in keys:
            yield from leaves(value[k], _sub(where, k))
    elif is_structure(value):
        for i, v in enumerate(value):
            yield from leaves(v, _sub(where, i))
    else:
        yield where, value


def map_leaves(fn: Callable[[Any, str], Any], value: Any, where: str) -> Any:
    """``value`` with ``fn(leaf, place)`` at every leaf, its lists / tuples / dicts kept."""
    if isinstance(value, dict):
        return {k: map_leaves(fn, v, _sub(where, k)) for k, v in value.items()}
    if is_structure(value):
        items = [map_leaves(fn, v, _sub(where, i)) for i, v in enumerate(value)]
        return items if isinstance(value, list) else tuple(items)
    return fn(value, where)


def describe(feed: Feed, value: Any, where: str, label: str = "", lists: bool = True) -> Any:
    """``value`` with each array replaced by its ArrayInfo; what is no array is a problem
    (``label``: the batch, for the problems' words; ``lists``: report Python lists)."""
    prefix = f"{label}: " if label else ""

    def leaf(v: Any, place: str) -> Any:
        if v is None:
            return None
        if isinstance(v, (list, tuple)):
            return python_list(feed, v, place, prefix) if lists else array_info(v)
        info = array_info(v)
        if info is not None and info.dtype == "object" and _object_ragged(v):
            feed.add("ragged", f"{prefix}`{place}` is an object array of rows of different "
                     "lengths: Keras 3 needs rectangular arrays, every row the same length",
                     prefix)
        elif info is not None and info.dtype in ("str", "object"):
            _refused_dtype(feed, v, place, prefix)
        if info is None:
            what = type_name(v)
            if type(v).__name__ == "KerasTensor":
                what = "symbolic KerasTensor (a placeholder without values)"
            feed.add("not-data", f"{prefix}`{place}` is a {what}, not an array: Keras 3 "
                     "needs NumPy arrays or tensors (or a list, tuple or dict of them) here",
                     prefix)
        return info

    return map_leaves(leaf, value, where)


def _refused_dtype(feed: Feed, value: Any, place: str, prefix: str) -> None:
    """A NumPy array or DataFrame of strings, bytes or objects: Keras 3 converts every
    array to a tensor of a Keras dtype and raises ValueError on these (a ``tf.Tensor`` of
    strings is read as it is, for a model whose input has ``dtype="string"``)."""
    if is_pandas(value):
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


def python_list(feed: Feed, value: Any, place: str, prefix: str) -> ArrayInfo | None:
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
                 f"{shape_text(info.shape)}: Keras 3 reads a {what} as a structure of "
                 "arrays, not as one array, and fails on its numbers ('Unrecognized data "
                 "type', or one input per number)", prefix)
    return info


def _object_ragged(value: Any) -> bool:
    if not isinstance(value, np.ndarray) or value.dtype != object or not value.size:
        return False
    sample = value.reshape(-1)[:1000]
    return len({len(v) for v in sample if isinstance(v, (list, tuple, np.ndarray))}) > 1


def type_name(value: Any) -> str:
    cls = type(value)
    module = getattr(cls, "__module__", "") or ""
    if module in ("builtins", "__main__") or not module:
        return cls.__name__
    return f"{module.split('.')[0]}.{cls.__name__}"


def shape_text(shape: Any) -> str:
    dims = tuple(shape)
    inner = ", ".join("None" if d is None else str(d) for d in dims)
    return f"({inner},)" if len(dims) == 1 else f"({inner})"


def keras_reads_natively(x: Any) -> bool:
    """torch DataLoader / grain datasets: Keras has adapters; read here by iteration."""
    return any((c.__name__ == "DataLoader" and "torch.utils.data" in str(c.__module__)) or
               (c.__name__ in ("MapDataset", "IterDataset", "DataLoader")
                and "grain" in str(c.__module__)) for c in type(x).__mro__)


def tensorflow_backend() -> bool:
    try:
        import keras

        return keras.backend.backend() == "tensorflow"
    except Exception:  # pragma: no cover
        return False
