"""Which Keras utility made a dataset, and hints that name its own arguments.

The child patches ``keras.utils.image_dataset_from_directory``,
``timeseries_dataset_from_array``, ``text_dataset_from_directory`` and
``audio_dataset_from_directory`` to tag each dataset they return with a
:class:`Source`: the function, the arguments that fix sizes (as given, or
Keras's defaults) and the user's line.  A dataset built on top of one
(``.map``, ``.prefetch``, ``.cache``) finds it through its input datasets.  The
data rules then say "``image_size=(180, 180)`` gives 180x180 images" rather than
"reshape the data", and a ``tf.data`` pipeline is told to transpose or reshape
inside ``Dataset.map``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

TAG = "_shapecheck_source"

# The dataset utilities recorded, and the arguments of each that decide a size.
FUNCTIONS: dict[str, tuple[str, ...]] = {
    "image_dataset_from_directory": ("image_size", "color_mode", "batch_size", "label_mode",
                                     "data_format", "crop_to_aspect_ratio"),
    "timeseries_dataset_from_array": ("sequence_length", "sequence_stride", "sampling_rate",
                                      "batch_size"),
    "text_dataset_from_directory": ("batch_size", "label_mode", "max_length"),
    "audio_dataset_from_directory": ("output_sequence_length", "sampling_rate", "batch_size",
                                     "label_mode"),
}


@dataclass
class Source:
    """The utility that made a dataset."""

    function: str
    arguments: dict[str, Any] = field(default_factory=dict)
    path: str | None = None
    line: int | None = None
    data_shape: tuple | None = None  # timeseries: the shape of the `data` array

    def call(self) -> str:
        """``image_dataset_from_directory`` (line 12)."""
        where = f" (line {self.line})" if self.line else ""
        return f"`{self.function}`{where}"


def dataset_source(ds: Any) -> Source | None:
    """The :class:`Source` of ``ds`` or of a dataset it is built on."""
    queue, seen = [ds], set()
    while queue:
        item = queue.pop(0)
        if item is None or id(item) in seen:
            continue
        seen.add(id(item))
        found = getattr(item, TAG, None)
        if isinstance(found, Source):
            return found
        queue.append(getattr(item, "_input_dataset", None))
        queue += list(getattr(item, "_datasets", None) or ())
    return None


# --- hints ----------------------------------------------------------------------------


def _mapped(feed: Any) -> str | None:
    """The user's last `Dataset.map` (or other) function of the feed's pipeline."""
    functions = getattr(feed, "pipeline", None) or []
    if not functions:
        return None
    name, path, line = functions[-1]
    return f"`{name}` ({os.path.basename(path)}:{line})"


def _image_axes(source: Source, rank: int) -> tuple[tuple[int, int], int]:
    """((height axis, width axis), channel axis) of the images a source gives."""
    fmt = source.arguments.get("data_format")
    if fmt is None:
        try:
            import keras

            fmt = keras.config.image_data_format()
        except Exception:  # no Keras config: Keras's own default
            fmt = "channels_last"
    if fmt == "channels_first":
        return (2, 3), 1
    return (rank - 3, rank - 2), rank - 1


_COLOR_MODES = {1: "grayscale", 3: "rgb", 4: "rgba"}


def size_hint(feed: Any, model: tuple, data: tuple, axis: int) -> str | None:
    """A hint naming the argument of the feed's source that gave ``data`` its size on
    ``axis``, where the model fixes ``model[axis]``; None when the source is unknown."""
    source = getattr(feed, "source", None)
    want = model[axis]
    mapped = _mapped(feed)
    if source is not None and source.function == "image_dataset_from_directory" \
            and len(data) == 4:
        found = _image_size_hint(source, model, data, axis, mapped)
        if found is not None:
            return found
    if source is not None and source.function == "timeseries_dataset_from_array" \
            and len(data) >= 3:
        found = _timeseries_hint(source, model, data, axis, mapped)
        if found is not None:
            return found
    if source is not None and source.function == "audio_dataset_from_directory" \
            and axis == 1:
        length = source.arguments.get("output_sequence_length")
        if length == data[axis]:
            return (f"`output_sequence_length={length}` of {source.call()} gives clips of "
                    f"{length} samples; the model wants {want}: pass "
                    f"`output_sequence_length={want}`")
    if mapped is not None and feed.kind == "tf.data":
        return (f"the dataset's function {mapped} gives axis {axis} {data[axis]} entries; "
                f"the model wants {want}: resize, pad or crop there "
                "(`tf.image.resize`, `tf.pad`, slicing), or declare the input with "
                f"{data[axis]}")
    return None


def _image_size_hint(source: Source, model: tuple, data: tuple, axis: int,
                     mapped: str | None) -> str | None:
    (h, w), c = _image_axes(source, len(data))
    size = source.arguments.get("image_size")
    if axis in (h, w) and isinstance(size, (tuple, list)) and len(size) == 2:
        want = (model[h], model[w])
        got = (data[h], data[w])
        if tuple(size) != got:
            if mapped is None:
                return None
            return (f"the dataset's function {mapped} gives {got[0]}x{got[1]} images (from "
                    f"`image_size={tuple(size)}` of {source.call()}); the model wants "
                    f"{_hw(want)}: resize there to {_hw(want)}")
        fix = (f"pass `image_size=({want[0]}, {want[1]})`" if all(isinstance(v, int)
                                                                   for v in want)
               else "pass the model's size as `image_size`")
        return (f"`image_size={tuple(size)}` of {source.call()} gives {got[0]}x{got[1]} "
                f"images; the model wants {_hw(want)}: {fix}, or resize in the model "
                f"(`layers.Resizing({want[0]}, {want[1]})` first)")
    if axis == c:
        mode = source.arguments.get("color_mode")
        want = model[c]
        if mapped is None and isinstance(want, int) and want in _COLOR_MODES:
            return (f"`color_mode={mode!r}` of {source.call()} gives {data[c]} channel(s); "
                    f"the model wants {want}: pass `color_mode={_COLOR_MODES[want]!r}`")
    return None


def _hw(size: tuple) -> str:
    return f"{size[0]}x{size[1]}"


def _timeseries_hint(source: Source, model: tuple, data: tuple, axis: int,
                     mapped: str | None) -> str | None:
    want = model[axis]
    if axis == 1:
        length = source.arguments.get("sequence_length")
        if length != data[1]:
            return None if mapped is None else (
                f"the dataset's function {mapped} gives windows of {data[1]} steps (from "
                f"`sequence_length={length}` of {source.call()}); the model wants {want}")
        return (f"`sequence_length={length}` of {source.call()} gives windows of {length} "
                f"steps; the model wants {want}: pass `sequence_length={want}`, or declare "
                f"`Input(shape=(None, ...))` to take any length")
    if axis == len(data) - 1 and source.data_shape and mapped is None \
            and source.data_shape[-1] == data[axis]:
        return (f"the `data` array given to {source.call()} has {data[axis]} features per "
                f"step (its last axis, of {source.data_shape}); the model wants {want}: "
                "select the feature columns the model was built for, or declare the input "
                f"with {data[axis]}")
    return None


def rank_hint(feed: Any, model: tuple, data: tuple) -> str | None:
    """A rank hint that names the feed's source (a text dataset of raw strings, a
    dataset made with ``batch_size=None``); None when there is nothing to name."""
    source = getattr(feed, "source", None)
    if source is None:
        return None
    if source.function == "text_dataset_from_directory" and len(data) == 1 \
            and len(model) >= 2:
        return (f"{source.call()} yields raw strings, one per sample: turn them into token "
                "ids before the model, e.g. a `layers.TextVectorization("
                f"output_sequence_length={model[-1]})` adapted on the text, in "
                "`ds.map(lambda x, y: (vectorize(x), y))` or as the model's first layer")
    if source.arguments.get("batch_size", 0) is None and len(data) == len(model) - 1:
        return (f"`batch_size=None` of {source.call()} gives single samples, not batches: "
                "pass `batch_size=32` (or add `.batch(32)`)")
    return None


def transpose_hint(feed: Any, label: str, order: tuple[int, ...], result: str,
                   kind: str) -> str:
    """The transpose that reorders the data's axes: ``np.transpose`` for arrays,
    ``tf.transpose`` inside ``Dataset.map`` for a ``tf.data`` pipeline."""
    if feed.kind == "tf.data":
        mapped = _mapped(feed)
        where = f" (or inside {mapped})" if mapped else ""
        return (f"{kind}: transpose inside the pipeline, after `.batch()`{where}: "
                f"`ds = ds.map(lambda x, y: (tf.transpose(x, {order}), y))` gives {result}")
    return f"{kind}: `np.transpose({label.split('[')[0]}, {order})` gives {result}"
