"""Arithmetic in the user's code between a model's output and a tensor of another rank
that broadcasts each along a different axis: ``y - pred`` with ``y`` (32,) and ``pred``
(32, 1) is (32, 32), every target against every prediction, and nothing raises.

TensorFlow's eager tensors are patched (``-``, ``+``, ``*``, ``/`` both ways, and
``tf.math.squared_difference``); an operation made by the user's own line, with a
model's output on one side (:func:`shapecheck.script.operands.output_of`), whose two
shapes stretch each other is kept.  Inside a ``tf.function`` the sizes are not all
known: an axis of unknown size is never taken for a stretched one.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any

from shapecheck.script import frames, operands


@dataclass
class CrossBroadcast:
    """One line where a model's output was broadcast against a tensor of another rank."""

    path: str
    line: int
    col: int | None
    end_col: int | None
    op: str  # "-", "+", "*", "/", "squared_difference"
    output: list[int]  # the model output's shape
    other: list[int]  # the other operand's shape
    result: list[int]
    model: str
    layer: str | None
    made_at: tuple[str | None, int | None]  # where the model was called


FOUND: list[CrossBroadcast] = []
_SEEN: set[tuple[str, int]] = set()


def reset() -> None:
    FOUND.clear()
    _SEEN.clear()


def crossed(a: tuple, b: tuple) -> tuple[int, ...] | None:
    """The broadcast shape of ``a`` and ``b`` when they differ in rank and each is
    stretched along an axis the other gives (so the result is larger than both);
    None otherwise."""
    if len(a) == len(b) or any(not isinstance(d, int) for d in (*a, *b)):
        return None
    n = max(len(a), len(b))
    pa, pb = (1,) * (n - len(a)) + tuple(a), (1,) * (n - len(b)) + tuple(b)
    if any(x != y and 1 not in (x, y) for x, y in zip(pa, pb)):
        return None  # they do not broadcast: the op raises (SC903 says it)
    a_stretched = any(x == 1 and y > 1 for x, y in zip(pa, pb))
    b_stretched = any(y == 1 and x > 1 for x, y in zip(pa, pb))
    return tuple(max(x, y) for x, y in zip(pa, pb)) if a_stretched and b_stretched else None


def _shape(t: Any) -> tuple | None:
    try:
        return tuple(int(d) if d is not None else None for d in t.shape)
    except (TypeError, ValueError, AttributeError):
        return None


def _check(op: str, a: Any, b: Any) -> None:
    out_a, out_b = operands.output_of(a), operands.output_of(b)
    made = out_a or out_b
    if made is None or (out_a and out_b):
        return
    sa, sb = _shape(a), _shape(b)
    if sa is None or sb is None:
        return
    result = crossed(sa, sb)
    if result is None:
        return
    path, line, col, end = frames.user_position(1)
    if path is None or line is None or (path, line) in _SEEN:
        return
    _SEEN.add((path, line))
    output, other = (sa, sb) if out_a else (sb, sa)
    FOUND.append(CrossBroadcast(path, line, col, end, op, list(output), list(other),
                                list(result), made.model, made.layer,
                                (made.path, made.line)))


def _wrap(original: Any, op: str, swapped: bool = False) -> Any:
    def method(self: Any, other: Any, *args: Any, **kwargs: Any) -> Any:
        out = original(self, other, *args, **kwargs)
        try:
            if frames.called_by_user(1):
                _check(op, other, self) if swapped else _check(op, self, other)
        except Exception:  # the script's arithmetic is never disturbed
            pass
        return out

    method._shapecheck = True  # type: ignore[attr-defined]
    method.__name__ = getattr(original, "__name__", op)
    method.__doc__ = getattr(original, "__doc__", None)
    return method


def install() -> None:
    """Patch TensorFlow's tensors (once), where TensorFlow is loaded."""
    if "tensorflow" not in sys.modules:
        return
    import tensorflow as tf

    cls = tf.Tensor
    if getattr(cls.__sub__, "_shapecheck", False):
        return
    for name, op, swapped in (("__sub__", "-", False), ("__rsub__", "-", True),
                              ("__add__", "+", False), ("__radd__", "+", True),
                              ("__mul__", "*", False), ("__rmul__", "*", True),
                              ("__truediv__", "/", False), ("__rtruediv__", "/", True)):
        setattr(cls, name, _wrap(getattr(cls, name), op, swapped))
    keep = tf.autograph.experimental.do_not_convert
    squared = _wrap(tf.math.squared_difference, "squared_difference")
    tf.math.squared_difference = keep(lambda x, y, name=None: squared(x, y, name=name))
