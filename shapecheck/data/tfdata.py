"""``tf.data.Dataset``: its ``element_spec`` and ``cardinality()``, and the user's functions in
its pipeline (where a map function raised).
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from shapecheck.data.batches import Feed
from shapecheck.data.generators import user_code
from shapecheck.data.values import shape_text


def pipeline_functions(ds: Any) -> list[tuple[str, str, int]]:
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
            if code is not None and user_code(code.co_filename):
                out.append((getattr(fn, "__name__", "?"), os.path.abspath(code.co_filename),
                            code.co_firstlineno))
        ds = getattr(ds, "_input_dataset", None)
    return out[::-1]


def tf_facts(feed: Feed, ds: Any, steps: Any) -> str:
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
        return shape_text(shape.as_list() if hasattr(shape, "as_list") else shape)
    except ValueError:  # unknown rank
        return "(<unknown rank>)"
