"""``keras.utils.PyDataset``: items ``[0]``, ``[1]`` and ``[len - 1]``, read as Keras reads them.
"""

from __future__ import annotations

from typing import Any

from shapecheck.data.batches import Feed
from shapecheck.data.generators import check_spec, read_item, source_name, take
from shapecheck.data.values import tensorflow_backend


def sample_pydataset(feed: Feed, ds: Any, max_batches: int, timeout: float, steps: Any) -> None:
    """Items [0], [1] and [len - 1] of a PyDataset (the first ones when it is infinite):
    Keras fixes the TensorFlow spec from [0] and [1]."""
    name = source_name(ds, "pydataset")
    status, n = take(feed, name, "its length (`num_batches` / `__len__`)",
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
            if tensorflow_backend():
                feed.add("empty", f"{name} has length 0: Keras 3 raises ValueError ('The "
                         "PyDataset has length 0')")
            else:
                feed.add("exhausted", f"{name} has length 0: Keras 3 runs no step on it")
            return
        picks = sorted({0, min(1, n - 1), n - 1} if max_batches >= 3 else {0, n - 1})
    raws: list[Any] = []
    for i, k in enumerate(picks):
        label = f"PyDataset[{k}]"
        status, item = take(feed, name, label, lambda k=k: ds[k], timeout, ends=False,
                            reached=not steps or k < max(2, int(steps)))
        if status != "ok":
            break
        last = " (the last)" if n is not None and k == n - 1 and n > 1 else ""
        raws.append(read_item(feed, i, label + last, item, label))
    check_spec(feed, raws, first_two=picks[:2] == [0, 1])
