"""Generators and other iterables: items pulled one at a time within a time limit, each
read as Keras reads it (the tuple it must be, stable shapes, where the data's own code
raised); a PyDataset's and a tf.data dataset's items go through the same reading.
"""

from __future__ import annotations

import functools
import os
import re
import sysconfig
import threading
import types
from collections.abc import Callable
from typing import Any

import numpy as np

from shapecheck.data.arrays import NAMES, array_batch
from shapecheck.data.batches import ArrayInfo, Batch, Feed
from shapecheck.data.values import (array_info, is_number_list, is_structure, keras_reads_natively,
                                    leaves, shape_text, tensorflow_backend, type_name)


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


def take(feed: Feed, name: str, what: str, fn: Callable[[], Any], timeout: float,
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


@functools.lru_cache(maxsize=1)
def _library_dirs() -> tuple[str, ...]:
    """Folders whose code is not the user's: the standard library, installed packages,
    shapecheck itself."""
    paths = sysconfig.get_paths()
    dirs = {paths.get(k) for k in ("stdlib", "platstdlib", "purelib", "platlib")}
    dirs.add(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # shapecheck/
    return tuple(os.path.join(os.path.abspath(d), "") for d in dirs if d)


def user_code(filename: str) -> bool:
    """Whether ``filename`` is the user's (not a library's, shapecheck's or ``<string>``)."""
    return (not filename.startswith("<") and "__autograph_generated_file" not in filename
            and not os.path.abspath(filename).startswith(_library_dirs()))


def _raised_at(err: BaseException) -> tuple[str, int] | None:
    """The innermost line of the user's code in ``err``'s traceback."""
    import traceback

    frames = [f for f in traceback.extract_tb(err.__traceback__) if user_code(f.filename)]
    if not frames or frames[-1].lineno is None:
        return None
    return os.path.abspath(frames[-1].filename), frames[-1].lineno


def _place(path: str, line: int) -> str:
    from shapecheck.report import display_path

    return f"{display_path(path)}:{line}"


def _source(path: str, line: int) -> str:
    import linecache

    return linecache.getline(path, line).strip()


def source_name(x: Any, kind: str) -> str:
    if kind == "generator" and isinstance(x, types.GeneratorType):
        return f"generator `{getattr(x, '__name__', 'generator')}`"
    if kind == "tf.data":
        return "the tf.data.Dataset"
    if kind == "pydataset":
        return f"PyDataset `{type(x).__name__}`"
    return f"`{type(x).__name__}`"


def unreadable(feed: Feed, x: Any) -> bool:
    """Say what Keras 3 refuses about a non-generator iterable; True: nothing to read."""
    if feed.kind == "generator" and not isinstance(x, types.GeneratorType):
        feed.add("wrong-structure", f"`x` is a {type_name(x)}, an iterator but not a "
                 "generator: Keras 3 takes generators (functions that `yield`), a "
                 "PyDataset, a tf.data.Dataset or arrays, and raises 'Unrecognized data type'")
    elif feed.kind == "other" and not keras_reads_natively(x):
        if not hasattr(x, "__iter__") or isinstance(x, (str, bytes)):
            feed.add("not-data", f"`x` is a {type_name(x)}: Keras 3 reads arrays, "
                     "generators, a PyDataset or a tf.data.Dataset, and raises "
                     "'Unrecognized data type'")
            return True
        feed.add("wrong-structure", f"`x` is a {type_name(x)}: Keras 3 takes generators, a "
                 "PyDataset, a tf.data.Dataset or arrays, and raises 'Unrecognized data type'")
    return False


def items_read(kind: str, steps: Any, epochs: Any) -> int | None:
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


def label_of_item(kind: str, i: int, x: Any) -> str:
    if kind == "generator":
        return f"generator item {i + 1}"
    if kind == "tf.data":
        return f"dataset element {i + 1}"
    return f"{type(x).__name__} item {i + 1}"


def ended(feed: Feed, name: str, pulled: int, steps: Any) -> None:
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


def read_item(feed: Feed, index: int, label: str, item: Any, short: str) -> Any:
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
            feed.add("not-tuple", f"{short} is a {type_name(item)}: Keras 3 needs "
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
    feed.batches.append(array_batch(feed, index, label, (x, y, sw), item_label=short))
    return item


def _not_a_tuple(feed: Feed, label: str, item: Any) -> Any:
    """A generator item that is no tuple: Keras 3 refuses it; read it as meant."""
    m = feed.method
    if (isinstance(item, list) and len(item) in (2, 3) and feed.role != "predict"
            and not is_number_list(item)
            and all(v is None or is_structure(v) or array_info(v) is not None
                    for v in item)):
        feed.add("list-not-tuple", f"{label} is a list of {len(item)}, not a tuple: Keras 3 "
                 "needs a generator to yield `(x, y)` or `(x, y, sample_weight)` as a tuple, "
                 f"and `{m}` raises ValueError ('the generator must return a tuple') on a "
                 "list, which Keras 2 unpacked", label)
        return tuple(item)
    what = "list" if isinstance(item, list) else type_name(item)
    feed.add("not-tuple", f"{label} is a bare {what}, not a tuple: Keras 3 needs a generator "
             "to yield `(x,)`, `(x, y)` or `(x, y, sample_weight)`, and "
             f"`{m}` raises ValueError ('the generator must return a tuple')", label)
    return item


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
    for name, part in zip(NAMES, (batch.x, batch.y, batch.sample_weight)):
        for where, leaf in leaves(part, name):
            if isinstance(leaf, ArrayInfo):
                out[where] = tuple(leaf.shape)
    return out


def check_spec(feed: Feed, raws: list[Any], first_two: bool) -> None:
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
    if not first_two or not tensorflow_backend():
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
                         f"{shape_text(shape)} where Keras 3 expects {shape_text(want)}: "
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
