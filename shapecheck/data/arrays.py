"""Arrays (NumPy, tensors, pandas, nested): the first and the last batch, with the row
ranges, ``batch_size``, ``steps`` and ``validation_split`` as Keras computes them.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from shapecheck.data.batches import Batch, Feed, guard
from shapecheck.data.values import describe, is_pandas, leaves, map_leaves, python_list


_DEFAULT_BATCH = 32  # Keras's batch_size when neither batch_size nor steps is given


NAMES = ("x", "y", "sample_weight")


def _rows(value: Any) -> int | None:
    """Rows (first-axis length) of an array-like leaf; None when it has no first axis."""
    if isinstance(value, (list, tuple)) or is_pandas(value):
        return len(value)
    shape = getattr(value, "shape", None)
    try:
        if shape is not None and len(shape) and shape[0] is not None:
            return int(shape[0])
    except (TypeError, ValueError):  # an unknown-rank TensorShape
        return None
    return None


def first_rows(*parts: Any) -> int | None:
    """The rows Keras counts: those of the first array in (x, y, sample_weight)."""
    for part in parts:
        for _, leaf in leaves(part, ""):
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
        if is_pandas(v):
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

    return map_leaves(cut, value, "")


def check_rows(feed: Feed, x: Any, y: Any, sw: Any,
               names: tuple[str, str, str] = NAMES) -> None:
    """x, y and sample_weight must have one row per sample each (Keras checks it first)."""
    n = first_rows(x)
    if n is None:
        return
    for part, name in ((y, names[1]), (sw, names[2])):
        for where, leaf in leaves(part, name):
            rows = None if leaf is None else _rows(leaf)
            if rows is not None and rows != n:
                feed.add("rows", f"`{names[0]}` has {n} rows and `{where}` has {rows}: Keras 3 "
                         "refuses arrays of different lengths ('Data cardinality is "
                         "ambiguous')")
                return


def keras_batch_size(args: dict[str, Any], n: int, steps: Any, validation: bool = False) -> int:
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


def sample_arrays_with_split(feeds: list[Feed], args: dict[str, Any], x: Any, y: Any,
                             sw: Any) -> None:
    """Arrays: the whole of them (``*_on_batch``), or batches, with validation_split's
    last rows as a second feed."""
    feed = feeds[0]
    n = first_rows(x, y, sw)
    check_rows(feed, x, y, sw)
    if feed.method.endswith("_on_batch"):
        sample_arrays(feed, x, y, sw, None if n is None else (0, n), None, None)
        return
    steps = args.get("steps_per_epoch") if feed.method == "fit" else args.get("steps")
    cut = _split_at(feed, args, n)
    if n is None or cut is None:
        window = None if n is None else (0, n)
        sample_arrays(feed, x, y, sw, window, keras_batch_size(args, n or 0, steps), steps)
        return
    sample_arrays(feed, x, y, sw, (0, cut), keras_batch_size(args, cut, steps), steps)
    val = Feed(feed.method, "validation", feed.path, feed.line, "arrays")
    feeds.append(val)
    vsteps = args.get("validation_steps")
    guard(val, lambda: sample_arrays(val, x, y, sw, (cut, n),
                                     keras_batch_size(args, n - cut, vsteps, validation=True),
                                     vsteps))
    shared = {(p.kind, p.message) for p in feed.problems}  # the same arrays: said once
    val.problems = [p for p in val.problems if (p.kind, p.message) not in shared]


def sample_arrays(feed: Feed, x: Any, y: Any, sw: Any, window: tuple[int, int] | None,
                  batch_size: int | None, steps: Any,
                  names: tuple[str, str, str] = NAMES) -> None:
    """The first and last batch of rows ``window`` (``batch_size`` None: one batch)."""
    feed.kind = "arrays"
    if window is None:  # no array with a first axis: describe it as it is
        feed.batches.append(array_batch(feed, 0, "the data", (x, y, sw), names))
        if not feed.problems:
            feed.add("not-data", f"`{names[0]}` has no samples axis: Keras 3 needs arrays "
                     "whose first axis counts the samples")
        return
    for part, name in zip((x, y, sw), names):  # Python lists: said of the whole argument
        for where, leaf in leaves(part, name):
            if isinstance(leaf, (list, tuple)):
                python_list(feed, leaf, where, "")
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
        feed.batches.append(array_batch(feed, i, label, parts, names, lists=False))


def array_batch(feed: Feed, index: int, label: str, parts: tuple[Any, Any, Any],
                names: tuple[str, str, str] = NAMES, item_label: str = "",
                lists: bool = True) -> Batch:
    """A Batch of described ``(x, y, sample_weight)``; a None inside x is a problem
    (``item_label``: the item's words in problems; arrays name the argument only)."""
    x = parts[0]
    prefix = f"{item_label}: " if item_label else ""
    nones = [names[0] + w for w, v in leaves(x, "") if v is None]
    if nones:
        feed.add("none-in-batch", f"{prefix}`{nones[0]}` is None: Keras 3 needs an array "
                 "for every input of the model", prefix)
    return Batch(index, label, *(describe(feed, part, name, item_label, lists)
                                 for part, name in zip(parts, names)))
