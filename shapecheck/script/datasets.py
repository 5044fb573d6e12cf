"""Tag each dataset Keras's dataset utilities return with the :class:`Source` that made it
(the child patches them while the script runs; :mod:`shapecheck.data.sources` reads it).
"""

from __future__ import annotations

import functools
import inspect
import sys
from typing import Any

from shapecheck.data.sources import FUNCTIONS, TAG, Source


def install() -> None:
    """Wrap each dataset utility wherever Keras exports it (``keras.utils``,
    ``keras.preprocessing``, ``tf.keras.utils``) so that what it returns is tagged."""
    import keras  # noqa: F401  (loads the modules that export the utilities)

    for name in FUNCTIONS:
        holders = [m for m in list(sys.modules.values())
                   if m is not None and getattr(m, "__name__", "").startswith("keras")
                   and callable(getattr(m, name, None))]
        originals = {id(getattr(m, name)): getattr(m, name) for m in holders}
        wrapped = {k: _wrap(name, fn) for k, fn in originals.items()
                   if not getattr(fn, "_shapecheck_wrapped", False)}
        for m in holders:
            fn = getattr(m, name)
            if id(fn) in wrapped:
                setattr(m, name, wrapped[id(fn)])


def _wrap(name: str, fn: Any) -> Any:
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):
        signature = None

    @functools.wraps(fn)
    def made(*args: Any, **kwargs: Any) -> Any:
        result = fn(*args, **kwargs)
        try:
            _tag(result, _source(name, signature, args, kwargs))
        except Exception:  # recording must never change what the script gets
            pass
        return result

    made._shapecheck_wrapped = True  # type: ignore[attr-defined]
    return made


def _source(name: str, signature: Any, args: tuple, kwargs: dict) -> Source:
    from shapecheck.script.frames import user_site

    given: dict[str, Any] = {}
    if signature is not None:
        bound = signature.bind_partial(*args, **kwargs)
        bound.apply_defaults()
        given = dict(bound.arguments)
    else:
        given = dict(kwargs)
    path, line = user_site(3)
    data = given.get("data")
    shape = getattr(data, "shape", None)
    return Source(name, {k: given[k] for k in FUNCTIONS[name] if k in given}, path, line,
                  tuple(int(d) for d in shape) if shape is not None else None)


def _tag(result: Any, source: Source) -> None:
    """Tag a dataset, or each of a (train, validation) pair."""
    items = result if isinstance(result, (list, tuple)) else [result]
    for item in items:
        try:
            setattr(item, TAG, source)
        except (AttributeError, TypeError):  # an object that takes no attribute
            continue
