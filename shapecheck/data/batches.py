"""What sampling a feed gives: the Feed (one argument's data, its batches and problems),
each Batch, the ArrayInfo of each array, each Problem.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


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


def guard(feed: Feed, fn: Callable[[], None]) -> None:
    try:
        fn()
    except Exception as err:  # our own limits: say so on this feed, keep the others
        feed.add("sampling-error", f"shapecheck could not read the {feed.role} data of "
                 f"`{feed.method}`: {type(err).__name__}: {err}")
