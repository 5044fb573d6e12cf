"""What Keras refused while a script built its model, as the checks read it: the calls
(:class:`Failure`), the weights (:class:`WeightError`), Keras's messages cleaned, and the
input a layer expects (its rank, in words).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from shapecheck.shapes.layers.registry import Sym

_ANSI = re.compile(r"\x1b\[[0-9;]*m")


@dataclass
class Failure:
    """One call Keras refused while the script built a model."""

    op: Any  # the layer or op whose call raised
    error_type: str
    message: str  # Keras's message, without its wrapping
    path: str | None
    line: int | None
    col: int | None
    end_col: int | None
    input_shapes: list[tuple]  # Keras shapes of the tensor arguments (None: unknown)
    inputs: list[Any] = field(default_factory=list)  # the KerasTensor arguments
    outputs: list[tuple] = field(default_factory=list)  # shapes of the stand-in outputs


def clean_message(err: BaseException) -> str:
    """Keras's own message, without colour codes and its "Arguments received" tail."""
    text = _ANSI.sub("", str(err)).strip()
    m = re.match(r"Exception encountered when calling [^\n]*\n+(.*?)(\n\nArguments received.*)?$",
                 text, re.S)
    if m:
        text = m.group(1).strip()
    return text


# Attribute of a layer holding the WeightError records of its refused weights.
ERRORS_ATTR = "_shapecheck_weight_errors"


@dataclass
class WeightError:
    """One weight a layer could not be given."""

    source: str  # "set_weights" | "weights=" | "initializer"
    message: str  # Keras's message
    declared: list[tuple[str, tuple]] = field(default_factory=list)  # the layer's weights
    given: list[tuple | None] = field(default_factory=list)  # shapes of the values given
    weight: str | None = None  # the weight that failed (an initializer's), if known
    initializer: str | None = None  # e.g. "kernel_initializer=Constant"


def errors_of(layer: Any) -> list[tuple[Any, WeightError]]:
    """``(layer, error)`` for the weight errors recorded on ``layer`` and the layers
    inside it (an RNN's cell)."""
    out: list[tuple[Any, WeightError]] = []
    try:
        parts = list(layer._flatten_layers(include_self=True, recursive=True))
    except Exception:  # not a Keras layer
        parts = [layer]
    for part in parts:
        out += [(part, e) for e in getattr(part, ERRORS_ATTR, None) or []]
    return out


NAMED_RANKS = {
    1: ("steps", "channels"), 2: ("height", "width", "channels"),
    3: ("depth", "height", "width", "channels"),
}


def expectation(op: Any, rank: int | None = None) -> str | None:
    """What ``op`` takes, in words: ``(batch, time, features)``."""
    from keras import layers

    cls = type(op).__name__
    if isinstance(op, (layers.RNN, layers.Bidirectional)) and "ConvLSTM" not in cls:
        return "(batch, time, features)"
    if cls == "TimeDistributed":
        return "(batch, time, ...)"
    if cls.startswith("ConvLSTM"):
        n = int(cls[-2]) if cls[-2].isdigit() else 2
        return "(batch, time, " + ", ".join(NAMED_RANKS[n]) + ")"
    m = re.search(r"([123])D", cls)
    if m and any(k in cls for k in ("Conv", "Pooling", "Cropping", "UpSampling",
                                     "ZeroPadding", "SpatialDropout")):
        axes = list(NAMED_RANKS[int(m.group(1))])
        if getattr(op, "data_format", "channels_last") == "channels_first":
            axes = axes[-1:] + axes[:-1]
        return "(batch, " + ", ".join(axes) + ")"
    if rank is not None:
        return f"a rank-{rank} tensor"
    return None


def fit_rank(op: Any, args: tuple) -> tuple | None:
    """``args`` with the first tensor brought to the rank the layer's input spec wants."""
    spec = getattr(op, "input_spec", None)
    if isinstance(spec, (list, tuple)):
        spec = spec[0] if spec else None
    want = getattr(spec, "ndim", None) or getattr(spec, "min_ndim", None)
    if want is None and type(op).__name__ == "TimeDistributed":
        want = 3
    if not args or not isinstance(args[0], Sym) or want is None:
        return None
    shape = args[0].shape
    if len(shape) > want:  # drop the axes right after the batch
        shape = shape[:1] + shape[len(shape) - want + 1:]
    elif len(shape) < want:
        pad = (1,) * (want - len(shape))
        if (expectation(op) or "").endswith("channels)"):  # a missing channel axis
            shape = shape + pad
        else:  # a missing time axis
            shape = shape[:1] + pad + shape[1:]
    else:
        return None
    return (Sym(shape, args[0].dtype),) + tuple(args[1:])
