"""Calls of a model on data outside ``fit`` (``model(x)`` in a hand-written loop, under
a tape, inside a ``tf.function`` being traced): each becomes a feed of one batch, bound
and checked as a batch of ``predict`` is, a few distinct input shapes per call site.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterator

from shapecheck.script import loops
from shapecheck.script.frames import user_site

KEPT = 3  # distinct input shapes kept per call site of a model

_SEEN: dict[tuple, set] = {}  # (id(model), path, line) -> input shapes seen there
OWN: list[bool] = []  # not empty while the dry run itself calls the model


@dataclass
class Seen:
    path: str | None
    line: int | None
    feed: Any  # data.batches.Feed, or None when the call adds nothing to check


def reset() -> None:
    _SEEN.clear()


@contextmanager
def own_calls() -> Iterator[None]:
    """The dry run's own calls of a model (building it, tracing its step, making up
    ``fit``'s values): not the user's calls on data."""
    OWN.append(True)
    try:
        yield
    finally:
        OWN.pop()


def on_data(layer: Any, args: tuple, kwargs: dict) -> Seen | None:
    """A call of ``layer`` by the user: None when its inputs are symbolic (a graph
    being built); else its site and, for a model's new input shapes, its feed. The
    layer's variables are kept to be put back when the script stops or ends."""
    from keras import KerasTensor, Model, tree

    from shapecheck.script import trace

    if OWN:
        return None
    x = args[0] if args else kwargs.get("inputs", kwargs.get("x"))
    leaves = tree.flatten(x) if x is not None else []
    if not leaves or any(isinstance(v, KerasTensor) for v in leaves) or \
            not all(hasattr(v, "shape") for v in leaves):
        return None
    if trace.concrete(x):
        loops.remember(layer)
    elif not any(type(v).__name__ == "SymbolicTensor" for v in leaves):
        return None
    if not isinstance(layer, Model):
        return Seen(None, None, None)
    path, line = user_site(3)
    try:
        key = tuple(tuple(v.shape) for v in leaves)
    except (TypeError, ValueError):  # an unknown rank
        return Seen(path, line, None)
    seen = _SEEN.setdefault((id(layer), path, line), set())
    if key in seen or len(seen) >= KEPT:
        return Seen(path, line, None)
    seen.add(key)
    from shapecheck.data.feeds import call_feed

    try:
        feed = call_feed(x, path, line, f"call {len(seen)}")
    except Exception:  # our own limits: the call is not checked as data
        feed = None
    return Seen(path, line, feed)
