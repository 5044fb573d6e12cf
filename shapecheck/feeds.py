"""Sample the data a dry-run `fit`/`evaluate`/`predict` was given.

Every form Keras 3 accepts becomes plain descriptions of a few batches
(:class:`Batch` of :class:`ArrayInfo`): arrays (first and last batch),
generators (a few items, each within a time limit), ``PyDataset`` (first and
last item), ``tf.data`` (a few elements).  What cannot be read becomes a
:class:`Problem`; :func:`sample` never raises.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class ArrayInfo:
    shape: tuple[int, ...]
    dtype: str
    integer: bool
    min: float | None
    max: float | None
    one_hot: bool | None


@dataclass
class Batch:
    index: int
    label: str
    x: Any
    y: Any | None
    sample_weight: Any | None


@dataclass
class Problem:
    kind: str
    message: str


@dataclass
class Feed:
    method: str
    role: str
    path: str | None
    line: int | None
    kind: str
    batches: list[Batch] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    batch_size: int | None = None
    steps: int | None = None


_MAX_VALUES = 2_000_000  # values read for min/max/one-hot; larger arrays are subsampled


def _to_numpy(value: Any) -> np.ndarray | None:
    if isinstance(value, np.ndarray):
        return value
    if hasattr(value, "numpy") and hasattr(value, "shape"):
        try:
            return np.asarray(value.numpy())
        except Exception:  # a symbolic tensor: no values
            return None
    if hasattr(value, "shape") and hasattr(value, "dtype"):
        try:
            return np.asarray(value)
        except Exception:
            return None
    return None


def array_info(value: Any) -> ArrayInfo | None:
    """ArrayInfo of an array-like; None when it is not array-like."""
    if value is None or isinstance(value, (str, bytes, dict)):
        return None
    arr = _to_numpy(value)
    if arr is None:
        if isinstance(value, (list, tuple)) and value and not _is_structure(value):
            try:
                arr = np.asarray(value)
            except Exception:
                return None
            if arr.dtype == object:
                return None
        elif isinstance(value, (int, float, bool, np.number)):
            arr = np.asarray(value)
        else:
            return None
    if hasattr(value, "columns") and hasattr(value, "to_numpy"):  # pandas
        arr = value.to_numpy()
    kind = arr.dtype.kind
    numeric = kind in "biuf"
    lo = hi = None
    one_hot: bool | None = None
    if numeric and arr.size:
        flat = arr if arr.size <= _MAX_VALUES else arr[: max(1, _MAX_VALUES // max(1, arr[0].size))]
        lo, hi = float(np.min(flat)), float(np.max(flat))
        one_hot = False
        if arr.ndim >= 2 and arr.shape[-1] > 1 and lo >= 0 and hi <= 1:
            sums = flat.reshape(-1, arr.shape[-1]).sum(axis=-1)
            vals_ok = np.all((flat == 0) | (flat == 1))
            one_hot = bool(vals_ok and np.allclose(sums, 1))
    dtype = "str" if kind in "US" else arr.dtype.name
    return ArrayInfo(tuple(int(d) for d in arr.shape), dtype, kind in "biu", lo, hi,
                     one_hot if numeric else None)


def _is_structure(value: Any) -> bool:
    """A list/tuple of arrays (a structure), not a Python list of numbers."""
    return any(hasattr(v, "shape") or isinstance(v, (list, tuple, dict)) and
               v and _is_structure_item(v) for v in value)


def _is_structure_item(v: Any) -> bool:
    return not all(isinstance(e, (int, float, bool, np.number)) for e in
                   (v.values() if isinstance(v, dict) else v))


def describe(value: Any, problems: list[Problem], where: str) -> Any:
    """``value`` with every array replaced by its ArrayInfo (structure kept)."""
    if value is None:
        return None
    if isinstance(value, dict):
        return {k: describe(v, problems, f"{where}[{k!r}]") for k, v in value.items()}
    if isinstance(value, (list, tuple)) and _is_structure(value):
        items = [describe(v, problems, f"{where}[{i}]") for i, v in enumerate(value)]
        return items if isinstance(value, list) else tuple(items)
    info = array_info(value)
    if info is None:
        if isinstance(value, (list, tuple)):
            lengths = {len(v) for v in value if isinstance(v, (list, tuple))}
            if len(lengths) > 1:
                problems.append(Problem("ragged", f"{where} is a ragged Python list (rows of "
                                        f"lengths {sorted(lengths)[:5]}): Keras needs "
                                        "rectangular arrays"))
                return None
        problems.append(Problem("not-data", f"{where} is a {type(value).__name__}, not an "
                                "array"))
    return info


def _rows(value: Any) -> int | None:
    if isinstance(value, dict):
        value = next(iter(value.values()), None)
    if isinstance(value, (list, tuple)) and value and _is_structure(value):
        return _rows(value[0])
    shape = getattr(value, "shape", None)
    if shape is None and isinstance(value, (list, tuple)):
        return len(value)
    return int(shape[0]) if shape else None


def _slice(value: Any, start: int, stop: int) -> Any:
    if value is None:
        return None
    if isinstance(value, dict):
        return {k: _slice(v, start, stop) for k, v in value.items()}
    if isinstance(value, (list, tuple)) and _is_structure(value):
        items = [_slice(v, start, stop) for v in value]
        return items if isinstance(value, list) else tuple(items)
    arr = _to_numpy(value)
    if arr is None:
        try:
            arr = np.asarray(value)
        except Exception:
            return value
    return arr[start:stop]


# --- the call's arguments ------------------------------------------------------------


def _arg(call: Any, name: str, position: int, default: Any = None) -> Any:
    if name in call.kwargs:
        return call.kwargs[name]
    return call.args[position] if len(call.args) > position else default


def _kind(x: Any) -> str:
    try:
        import tensorflow as tf

        if isinstance(x, tf.data.Dataset):
            return "tf.data"
    except ImportError:  # pragma: no cover - no TensorFlow
        pass
    try:
        from keras.utils import PyDataset

        if isinstance(x, PyDataset):
            return "pydataset"
    except ImportError:  # pragma: no cover
        pass
    if hasattr(x, "__next__") or (hasattr(x, "__iter__") and not isinstance(
            x, (list, tuple, dict, np.ndarray, str)) and not hasattr(x, "shape")):
        return "generator"
    return "arrays"


def sample(call: Any, *, max_batches: int = 3, timeout: float = 10.0) -> list[Feed]:
    """Feeds for one dry-run call (and its validation data). Never raises."""
    feeds: list[Feed] = []
    role = {"fit": "train", "train_on_batch": "train", "evaluate": "evaluate",
            "test_on_batch": "evaluate"}.get(call.method, "predict")
    try:
        x = _arg(call, "x", 0)
        y = _arg(call, "y", 1) if role != "predict" else None
        sw = _arg(call, "sample_weight", 2) if role != "predict" else None
        kind = _kind(x)
        feed = Feed(call.method, role, call.path, call.line, kind)
        feeds.append(feed)
        on_batch = call.method.endswith("_on_batch")
        if kind == "arrays":
            split = float(call.kwargs.get("validation_split") or 0.0) if call.method == "fit" else 0.0
            bs = None if on_batch else int(call.kwargs.get("batch_size") or 32)
            n = _rows(x)
            if split and n:
                cut = int(math.floor(n * (1.0 - split)))
                val = Feed(call.method, "validation", call.path, call.line, "arrays")
                _arrays(val, _slice(x, cut, n), _slice(y, cut, n), _slice(sw, cut, n),
                        bs, offset=cut)
                feeds.append(val)
                x, y, sw = _slice(x, 0, cut), _slice(y, 0, cut), _slice(sw, 0, cut)
            _arrays(feed, x, y, sw, bs)
        else:
            if y is not None:
                feed.problems.append(Problem(
                    "wrong-structure", f"`{call.method}` got `y=` together with a {kind} "
                    "input; Keras 3 takes the targets from the generator/dataset itself"))
            _iterable(feed, x, kind, max_batches, timeout, role)
        val_data = call.kwargs.get("validation_data") if call.method == "fit" else None
        if val_data is not None:
            val = Feed(call.method, "validation", call.path, call.line, _kind(val_data))
            if val.kind == "arrays" and isinstance(val_data, (list, tuple)):
                vx, vy = val_data[0], val_data[1] if len(val_data) > 1 else None
                vsw = val_data[2] if len(val_data) > 2 else None
                _arrays(val, vx, vy, vsw, int(call.kwargs.get("validation_batch_size")
                                              or call.kwargs.get("batch_size") or 32))
            else:
                _iterable(val, val_data, val.kind, max_batches, timeout, "validation")
            feeds.append(val)
    except Exception as err:  # never stop the script over sampling
        if not feeds:
            feeds.append(Feed(call.method, role, call.path, call.line, "other"))
        feeds[0].problems.append(Problem("sampling-error", f"shapecheck could not read the "
                                         f"data: {type(err).__name__}: {err}"))
    return feeds


def _arrays(feed: Feed, x: Any, y: Any, sw: Any, batch_size: int | None,
            offset: int = 0) -> None:
    n = _rows(x)
    for part, name in ((y, "y"), (sw, "sample_weight")):
        rows = _rows(part) if part is not None else None
        if n is not None and rows is not None and rows != n:
            feed.problems.append(Problem(
                "rows", f"x has {n} rows and {name} has {rows}: Keras refuses arrays of "
                "different lengths (\"Data cardinality is ambiguous\")"))
    if n is None:
        feed.batches.append(Batch(0, "the data", describe(x, feed.problems, "x"),
                                  describe(y, feed.problems, "y"),
                                  describe(sw, feed.problems, "sample_weight")))
        return
    bs = batch_size or n
    feed.batch_size = bs
    steps = max(1, math.ceil(n / bs))
    feed.steps = steps
    starts = [0] if steps == 1 else [0, (steps - 1) * bs]
    for i, start in enumerate(starts):
        stop = min(n, start + bs)
        k = start // bs + 1
        if steps == 1:
            label = f"the whole data ({n} rows)" if batch_size is None else \
                f"batch 1 of 1 (rows {offset}-{offset + stop - 1})"
        else:
            last = "last " if i else ""
            label = f"{last}batch {k} of {steps} (rows {offset + start}-{offset + stop - 1})"
        feed.batches.append(Batch(i, label, describe(_slice(x, start, stop), feed.problems, "x"),
                                  describe(_slice(y, start, stop), feed.problems, "y"),
                                  describe(_slice(sw, start, stop), feed.problems,
                                           "sample_weight")))


def _pull(fn: Any, timeout: float) -> tuple[str, Any]:
    """``("ok", value)``, ``("stop", None)``, ``("timeout", None)`` or ``("error", exc)``."""
    box: dict[str, Any] = {}

    def work() -> None:
        try:
            box["value"] = fn()
        except StopIteration:
            box["stop"] = True
        except BaseException as err:  # the user's code: report it
            box["error"] = err

    t = threading.Thread(target=work, daemon=True)
    t.start()
    t.join(timeout)
    if t.is_alive():
        return "timeout", None
    if "stop" in box:
        return "stop", None
    if "error" in box:
        return "error", box["error"]
    return "ok", box.get("value")


def _iterable(feed: Feed, x: Any, kind: str, max_batches: int, timeout: float,
              role: str) -> None:
    if kind == "pydataset":
        _pydataset(feed, x, timeout, role)
        return
    name = getattr(x, "__name__", None) or type(x).__name__
    if kind == "tf.data":
        try:
            spec = x.element_spec
            card = int(x.cardinality().numpy())
            feed.steps = card if card >= 0 else None
            spec_text = _spec_text(spec)
        except Exception:
            spec_text = "?"
        it = iter(x)
        label = "dataset element {} (element_spec {})".format
    else:
        it = iter(x)
        spec_text = ""
        label = "generator item {}".format if kind == "generator" else "item {}".format
    for i in range(max_batches):
        status, item = _pull(lambda: next(it), timeout)
        if status == "timeout":
            feed.problems.append(Problem("timeout", f"`{name}` gave no item within "
                                         f"{timeout:g} s (item {i + 1})"))
            return
        if status == "stop":
            if i == 0:
                feed.problems.append(Problem("exhausted", f"`{name}` gave no items"))
            return
        if status == "error":
            feed.problems.append(Problem("sampling-error", f"`{name}` raised "
                                         f"{type(item).__name__}: {item}"))
            return
        if kind == "tf.data":
            item = _tf_to_numpy(item)
        text = label(i + 1, spec_text) if kind == "tf.data" else label(i + 1)
        _item(feed, i, text, item, role)


def _spec_text(spec: Any) -> str:
    if isinstance(spec, (list, tuple)):
        inner = ", ".join(_spec_text(s) for s in spec)
        return f"({inner})"
    if isinstance(spec, dict):
        return "{" + ", ".join(f"{k!r}: {_spec_text(v)}" for k, v in spec.items()) + "}"
    shape = getattr(spec, "shape", None)
    return str(tuple(shape)) if shape is not None else "?"


def _tf_to_numpy(item: Any) -> Any:
    if isinstance(item, dict):
        return {k: _tf_to_numpy(v) for k, v in item.items()}
    if isinstance(item, (list, tuple)):
        out = [_tf_to_numpy(v) for v in item]
        return out if isinstance(item, list) else tuple(out)
    return _to_numpy(item) if hasattr(item, "numpy") else item


def _pydataset(feed: Feed, ds: Any, timeout: float, role: str) -> None:
    status, n = _pull(lambda: len(ds), timeout)
    if status != "ok":
        feed.problems.append(Problem("sampling-error", "could not take len() of the "
                                     "PyDataset"))
        return
    feed.steps = int(n)
    if not n:
        feed.problems.append(Problem("exhausted", "the PyDataset is empty"))
        return
    for i, k in enumerate(sorted({0, int(n) - 1})):
        status, item = _pull(lambda k=k: ds[k], timeout)
        if status == "timeout":
            feed.problems.append(Problem("timeout", f"PyDataset[{k}] took over {timeout:g} s"))
            return
        if status == "error":
            feed.problems.append(Problem("sampling-error", f"PyDataset[{k}] raised "
                                         f"{type(item).__name__}: {item}"))
            return
        last = " (the last)" if k == n - 1 and n > 1 else ""
        _item(feed, i, f"PyDataset[{k}]{last}", item, role)


def _item(feed: Feed, index: int, label: str, item: Any, role: str) -> None:
    """One yielded item: ``(x,)``, ``(x, y)``, ``(x, y, sw)`` or a bare x."""
    if isinstance(item, list) and len(item) in (2, 3) and role != "predict":
        feed.problems.append(Problem(
            "list-not-tuple", f"{label} is a list of {len(item)}; Keras 3 unpacks only "
            "tuples into (x, y[, sample_weight]), so it reads the whole list as the inputs "
            "and finds no targets"))
        item = tuple(item)  # check the rest as meant, so the one finding says it all
    if isinstance(item, tuple) and 1 <= len(item) <= 3:
        x, y, sw = (list(item) + [None, None])[:3]
    else:
        x, y, sw = item, None, None
    for part, name in ((x, "x"), (y, "y")):
        if _has_none(part):
            feed.problems.append(Problem("none-in-batch", f"{label}: {name} holds None"))
    feed.batches.append(Batch(index, label, describe(x, feed.problems, "x"),
                              describe(y, feed.problems, "y"),
                              describe(sw, feed.problems, "sample_weight")))


def _has_none(part: Any) -> bool:
    if isinstance(part, dict):
        return any(_has_none(v) for v in part.values())
    if isinstance(part, (list, tuple)):
        return any(v is None or _has_none(v) for v in part)
    return False
