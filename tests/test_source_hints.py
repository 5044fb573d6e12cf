"""Hints that name the argument of the Keras utility (or the `Dataset.map` function) that
gave the data its size, and `tf.transpose` inside `Dataset.map` for a tf.data pipeline."""

from __future__ import annotations

import struct
import textwrap
import zlib
from pathlib import Path

import pytest

import shapecheck


def _png(path: Path, width: int, height: int) -> None:
    """A small RGB PNG, written without an imaging library."""
    raw = b"".join(b"\x00" + bytes([120, 60, 200] * width) for _ in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
                     + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("sources")
    for label in ("cats", "dogs"):
        (root / "photos" / label).mkdir(parents=True)
        (root / "texts" / label).mkdir(parents=True)
        for i in range(3):
            _png(root / "photos" / label / f"{i}.png", 40, 30)
            (root / "texts" / label / f"{i}.txt").write_text("a good film " * (i + 1))
    return root


def _hints(path: Path) -> list[tuple[str, str]]:
    """``(code, hint)`` of every error, in line order."""
    [f] = shapecheck.check_script(str(path)).files
    assert f.error is None, f.error
    return [(d.code, d.hint or "") for d in f.diagnostics if d.severity == "error"]


def _one(hints: list[tuple[str, str]], code: str, words: str) -> str:
    """The hint of the one ``code`` finding whose hint holds ``words``."""
    found = [hint for c, hint in hints if c == code and words in hint]
    assert len(found) == 1, (code, words, hints)
    return found[0]


def test_image_datasets_name_image_size_color_mode_and_map(folders: Path) -> None:
    script = folders / "images.py"
    script.write_text(textwrap.dedent(f"""\
        import numpy as np
        import tensorflow as tf
        import keras
        from keras import layers

        photos = keras.utils.image_dataset_from_directory({str(folders / "photos")!r},
                                                          image_size=(180, 180), batch_size=4)

        def classifier(shape, loss="sparse_categorical_crossentropy"):
            inputs = keras.Input(shape=shape)
            pooled = layers.GlobalAveragePooling2D()(layers.Conv2D(4, 3)(inputs))
            model = keras.Model(inputs, layers.Dense(2, activation="softmax")(pooled))
            model.compile(optimizer="adam", loss=loss)
            return model

        def shrink(image, label):
            return tf.image.resize(image, (128, 128)), label

        classifier((224, 224, 3)).fit(photos)
        classifier((180, 180, 1)).fit(photos)
        classifier((224, 224, 3)).fit(photos.map(shrink))
        classifier((180, 180, 3), "categorical_crossentropy").fit(photos)
        chw = tf.data.Dataset.from_tensor_slices(
            (np.zeros((8, 3, 64, 64), "float32"), np.zeros((8,), "int64"))).batch(4)
        classifier((64, 64, 3)).fit(chw)
        single = keras.utils.image_dataset_from_directory({str(folders / "photos")!r},
                                                          image_size=(180, 180),
                                                          batch_size=None)
        classifier((180, 180, 3)).fit(single)
        """))
    hints = _hints(script)
    assert _one(hints, "SC603", "gives 180x180 images") == (
        "`image_size=(180, 180)` of `image_dataset_from_directory` (line 6) gives 180x180 "
        "images; the model wants 224x224: pass `image_size=(224, 224)`, or resize in the "
        "model (`layers.Resizing(224, 224)` first)")
    assert "pass `color_mode='grayscale'`" in _one(hints, "SC603", "`color_mode='rgb'`")
    assert _one(hints, "SC603", "`shrink`").startswith(
        "the dataset's function `shrink` (images.py:16) gives 128x128 images")
    assert _one(hints, "SC705", "label_mode").startswith(
        "pass `label_mode='categorical'` to `image_dataset_from_directory` (line 6)")
    transpose = _one(hints, "SC603", "channels-first")
    assert "`ds = ds.map(lambda x, y: (tf.transpose(x, (0, 2, 3, 1)), y))`" in transpose
    assert "np.transpose" not in transpose
    assert _one(hints, "SC602", "batch_size=None").startswith(
        "`batch_size=None` of `image_dataset_from_directory` (line 26) gives single samples")


def test_series_and_text_datasets_name_their_arguments(folders: Path) -> None:
    script = folders / "series.py"
    script.write_text(textwrap.dedent(f"""\
        import numpy as np
        import keras
        from keras import layers

        readings = np.zeros((200, 5), "float32")
        windows = keras.utils.timeseries_dataset_from_array(
            readings, np.zeros(200), sequence_length=10, batch_size=16)
        model = keras.Sequential([keras.Input(shape=(24, 5)), layers.LSTM(8), layers.Dense(1)])
        model.compile(optimizer="adam", loss="mse")
        model.fit(windows)
        wide = keras.Sequential([keras.Input(shape=(10, 7)), layers.LSTM(8), layers.Dense(1)])
        wide.compile(optimizer="adam", loss="mse")
        wide.fit(windows)
        reviews = keras.utils.text_dataset_from_directory({str(folders / "texts")!r},
                                                          batch_size=4)
        words = keras.Sequential([keras.Input(shape=(100,)), layers.Embedding(1000, 8),
                                  layers.GlobalAveragePooling1D(),
                                  layers.Dense(1, activation="sigmoid")])
        words.compile(optimizer="adam", loss="binary_crossentropy")
        words.fit(reviews)
        """))
    hints = _hints(script)
    assert _one(hints, "SC603", "sequence_length") == (
        "`sequence_length=10` of `timeseries_dataset_from_array` (line 6) gives windows of 10 "
        "steps; the model wants 24: pass `sequence_length=24`, or declare `Input(shape=(None, "
        "...))` to take any length")
    assert _one(hints, "SC603", "features").startswith(
        "the `data` array given to `timeseries_dataset_from_array` (line 6) has 5 features")
    text = _one(hints, "SC602", "raw strings")
    assert text.startswith("`text_dataset_from_directory` (line 14) yields raw strings")
    assert "TextVectorization(output_sequence_length=100)" in text


def test_arrays_keep_the_numpy_transpose(tmp_path: Path) -> None:
    script = tmp_path / "arrays.py"
    script.write_text(textwrap.dedent("""\
        import numpy as np
        import keras
        from keras import layers

        inputs = keras.Input(shape=(64, 64, 3))
        pooled = layers.GlobalAveragePooling2D()(layers.Conv2D(4, 3)(inputs))
        model = keras.Model(inputs, layers.Dense(2, activation="softmax")(pooled))
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
        model.fit(np.zeros((8, 3, 64, 64), "float32"), np.zeros((8,), "int64"))
        """))
    assert "`np.transpose(x, (0, 2, 3, 1))`" in _one(_hints(script), "SC603", "channels-first")
