"""Write the notebooks of ``fixtures/notebooks/`` (run it after changing one here).

The notebooks are built from the cells below with nbformat, with stable cell ids, so
that rewriting them changes nothing unless a cell changed.  ``python
tests/make_notebooks.py``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

FOLDER = Path(__file__).resolve().parent.parent / "fixtures" / "notebooks"

DEFINE = '''\
EMBEDDING_DIM = 256


def define_model(vocab_size1, max_length1, vocab_size2, max_length2):
    inputs1 = Input(shape=(4096,))
    fe2_1 = Dense(EMBEDDING_DIM, activation="relu")(Dropout(0.5)(inputs1))
    fe3_1 = RepeatVector(max_length1)(fe2_1)
    inputs2 = Input(shape=(max_length1,))
    emb2_1 = Embedding(vocab_size1, EMBEDDING_DIM, mask_zero=True)(inputs2)
    lm2_1 = LSTM(500)(concatenate([fe3_1, emb2_1], name="concat1"))

    inputs3 = Input(shape=(4096,))
    fe2_2 = Dense(EMBEDDING_DIM, activation="relu")(Dropout(0.5)(inputs3))
    fe3_2 = RepeatVector(max_length2)(fe2_2)
    inputs4 = Input(shape=(max_length2,))
    emb2_2 = Embedding(vocab_size2, EMBEDDING_DIM, mask_zero=True)(inputs4)
    lm2_2 = LSTM(500)(concatenate([fe3_2, emb2_2], name="concat2"))

    merged3 = concatenate([lm2_1, lm2_2], name="concat3")
    outputs = Dense(vocab_size1, activation="softmax")(merged3)
    outputs1 = Dense(vocab_size2, activation="softmax")(merged3)
    model = Model(inputs=[inputs1, inputs2, inputs3, inputs4], outputs=[outputs, outputs1])
    model.compile(loss=["categorical_crossentropy", "categorical_crossentropy"],
                  optimizer="adam", metrics=["accuracy", "accuracy"])
    return model'''

IMPORTS = '''\
import numpy as np
import keras
from keras.layers import (LSTM, Dense, Dropout, Embedding, Input, RepeatVector,
                          concatenate)
from keras.models import Model'''


def generator(n2: int) -> str:
    return f'''\
def double_generator(max_length1, max_length2, vocab1, vocab2):
    rng = np.random.default_rng(0)
    while True:
        n1, n2 = 47, {n2}
        yield ([rng.random((n1, 4096)), rng.integers(1, vocab1, (n1, max_length1)),
                rng.random((n2, 4096)), rng.integers(1, vocab2, (n2, max_length2))],
               [keras.utils.to_categorical(rng.integers(0, vocab1, n1), vocab1),
                keras.utils.to_categorical(rng.integers(0, vocab2, n2), vocab2)])'''


def seed000_generator() -> list:
    """Seed 000's generator bug over several cells, with magics and a ``!pip`` line."""
    return [
        new_markdown_cell("# Two captioning branches\n\nThe generator gives the "
                          "branches different sample counts."),
        new_code_cell("!pip install -q keras numpy\n%matplotlib inline"),
        new_code_cell(IMPORTS),
        new_markdown_cell("## The model"),
        new_code_cell(DEFINE),
        new_code_cell(generator(4)),
        new_code_cell("%%time\nmodel = define_model(7579, 34, 5582, 21)\nmodel.summary()"),
        new_markdown_cell("## Training"),
        new_code_cell("gen = double_generator(34, 21, 7579, 5582)\n"
                      "%time history = model.fit(gen, epochs=20, steps_per_epoch=10)"),
    ]


def captioning_clean() -> list:
    """The same notebook with the generator fixed, a ``%%bash`` cell and a
    ``%%capture``."""
    return [
        new_markdown_cell("# Two captioning branches, fixed"),
        new_code_cell("%%bash\nnvidia-smi\nls -l"),
        new_code_cell(IMPORTS),
        new_code_cell(DEFINE),
        new_code_cell(generator(47)),
        new_code_cell("%%capture output\nmodel = define_model(7579, 34, 5582, 21)\n"
                      "model.summary()"),
        new_code_cell("gen = double_generator(34, 21, 7579, 5582)\n"
                      "history = model.fit(gen, epochs=20, steps_per_epoch=10)\n"
                      "history.history.keys()"),
    ]


NOTEBOOKS = {"seed000_generator": seed000_generator, "captioning_clean": captioning_clean}


def build(cells: list) -> nbformat.NotebookNode:
    nb = new_notebook(cells=cells, metadata={
        "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
        "language_info": {"name": "python"}})
    for i, cell in enumerate(nb.cells):
        cell["id"] = f"cell-{i + 1}"
    return nb


def main(names: list[str]) -> None:
    FOLDER.mkdir(parents=True, exist_ok=True)
    for name, cells in NOTEBOOKS.items():
        if names and name not in names:
            continue
        nbformat.write(build(cells()), str(FOLDER / f"{name}.ipynb"))


if __name__ == "__main__":
    main(sys.argv[1:])
