"""SC106 weight-shape: weights Keras refuses while a layer is made, set or built.

Keras raises at that line, so the script stops there when it runs (checked here with
plain Keras in a separate process); shapecheck reports the line with both shapes and a
fix, goes on without those weights and checks the rest of the script.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import shapecheck

PRELUDE = textwrap.dedent("""\
    import numpy as np
    import keras
    from keras import layers

    inp = keras.Input(shape=(20,))
    hidden = layers.Dense(8, name="hidden")
    model = keras.Model(inp, layers.Dense(1)(hidden(inp)))
    images = keras.Input(shape=(32, 32, 3))
""")

# (statement, what the finding's hint says)
CASES = [
    ("hidden.set_weights([np.ones((8, 20)), np.zeros(8)])", "`w.T`"),
    ("hidden.set_weights([np.ones((20, 8))])", "[kernel, bias]"),
    ("layers.Dense(4).set_weights([np.ones((8, 4)), np.zeros(4)])", "no weights yet"),
    ("layers.Dense(8, kernel_initializer=keras.initializers.Constant(np.ones((10, 8))))(inp)",
     "inputs of 20 features"),
    ("layers.Conv2D(16, 3, kernel_initializer=keras.initializers.Constant("
     "np.zeros((16, 3, 3, 3))))(images)", "np.transpose(w, (1, 2, 3, 0))"),
    ("layers.Embedding(50, 16, embeddings_initializer=keras.initializers.Constant("
     "np.zeros((60, 16))))(inp)", "use input_dim=60, output_dim=16"),
]

KERAS_RUNNER = textwrap.dedent("""\
    import json, os, sys
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    prelude, statements = open(sys.argv[1]).read().split("# --- cases\\n")
    code = compile(prelude, sys.argv[1], "exec")
    for statement in statements.splitlines():
        space = {}
        exec(code, space)
        try:
            exec(statement, space)
            print(json.dumps({"raised": None}))
        except Exception as err:
            print(json.dumps({"raised": type(err).__name__}))
""")


def _check(path: Path) -> object:
    [f] = shapecheck.check_script(str(path)).files
    return f


def _keras_raises(tmp_path: Path, script: Path) -> list[str | None]:
    runner = tmp_path / "run_keras.py"
    runner.write_text(KERAS_RUNNER)
    proc = subprocess.run([sys.executable, str(runner), str(script)], capture_output=True,
                          text=True, timeout=600, cwd=tmp_path)
    rows = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    assert len(rows) == len(CASES), proc.stdout[-2000:] + proc.stderr[-3000:]
    return [r["raised"] for r in rows]


def test_embedding_weights_of_another_shape_are_a_finding_and_the_check_goes_on(
        tmp_path: Path) -> None:
    script = tmp_path / "glove.py"
    script.write_text(textwrap.dedent("""\
        import numpy as np
        import keras
        from keras import layers

        matrix = np.zeros((412, 40), "float32")
        model = keras.Sequential([
            keras.Input(shape=(10,)),
            layers.Embedding(43, 100, weights=[matrix]),
            layers.GlobalAveragePooling1D(),
            layers.Dense(1, activation="sigmoid"),
        ])
        model.compile(optimizer="adam", loss="binary_crossentropy")
        model.fit(np.zeros((8, 12)), np.zeros((8, 1)))
        """))
    f = _check(script)
    assert f.error is None, f.error
    assert [m.checked for m in f.models] == [True]
    found = {d.code: d for d in f.diagnostics}
    d = found["SC106"]
    assert (d.line, d.layer) == (8, "embedding")
    assert d.shapes == {"declared `embeddings`": [43, 100], "given": [412, 40]}
    assert "Keras raises ValueError here" in d.message and "went on" in d.message
    assert d.hint.startswith("the matrix has 412 rows and 40 columns; Embedding(43, 100) "
                             "needs (43, 100): use input_dim=412, output_dim=40")
    assert "SC603" in found  # the rest of the script was checked too: x is (8, 12)
    plain = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                           timeout=300, cwd=tmp_path)
    assert plain.returncode != 0
    assert 'glove.py", line 8' in plain.stderr
    assert "is not compatible with provided weight shape (412, 40)" in plain.stderr


def test_set_weights_and_initializer_arrays_of_another_shape(tmp_path: Path) -> None:
    script = tmp_path / "weights.py"
    script.write_text(PRELUDE + "# --- cases\n" + "\n".join(s for s, _ in CASES) + "\n")
    first = PRELUDE.count("\n") + 2
    f = _check(script)
    assert f.error is None, f.error
    by_line = {d.line: d for d in f.diagnostics}
    for i, (statement, hint) in enumerate(CASES):
        d = by_line.get(first + i)
        assert d is not None and d.code == "SC106", (statement, f.diagnostics)
        assert hint in d.hint, (statement, d.hint)
        assert d.shapes, statement
    kernel = by_line[first + 3]
    assert kernel.shapes == {"declared `kernel`": [20, 8], "given": [10, 8],
                             "input": ["batch", 20]}
    assert "kernel_initializer=Constant" in kernel.message
    assert all(r is not None for r in _keras_raises(tmp_path, script))


def test_other_errors_of_set_weights_still_stop_the_script(tmp_path: Path) -> None:
    script = tmp_path / "not_a_list.py"
    script.write_text(textwrap.dedent("""\
        import keras
        from keras import layers

        inp = keras.Input(shape=(4,))
        dense = layers.Dense(2)
        model = keras.Model(inp, dense(inp))
        dense.set_weights(5)
        """))
    f = _check(script)
    assert f.error is not None and (f.error.exception or "").startswith("TypeError"), f.error
    assert f.error.line == 7
    assert [d.code for d in f.diagnostics if d.code == "SC106"] == []
