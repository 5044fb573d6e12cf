"""Subclassed models and a user's own layers, checked like functional models: their
`call` traced on symbolic inputs from the data (fixtures/subclassed/), custom steps
traced once, and a model that cannot be traced reported not checked, with its line."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from shapecheck.report import Report
from shapecheck.render import html
from shapecheck.script.runner import check_file, check_files_together

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "fixtures" / "subclassed"
BUGGY = sorted(p for p in CORPUS.glob("*.py")
               if not p.stem.endswith("_fixed") and not p.stem.startswith("untraceable"))
UNTRACEABLE = sorted(CORPUS.glob("untraceable_*.py"))


def marked(path: Path, word: str) -> set[int]:
    return {i for i, text in enumerate(path.read_text().splitlines(), 1)
            if re.search(rf"#\s*{word}\b", text)}


@pytest.fixture(scope="module")
def reports() -> dict[str, object]:
    scripts = ([str(p) for p in BUGGY] + [str(p.with_name(p.stem + "_fixed.py")) for p in BUGGY]
               + [str(p) for p in UNTRACEABLE])
    return {Path(f.path or "").name: f for f in check_files_together(scripts, timeout=1200)}


def test_the_corpus_has_ten_pairs_written_as_real_code_is() -> None:
    assert len(BUGGY) >= 10
    assert all(p.with_name(p.stem + "_fixed.py").exists() for p in BUGGY)
    names = " ".join(p.stem for p in BUGGY)
    for topic in ("vae", "gan", "transformer", "resblock", "seq2seq", "dict", "siamese"):
        assert topic in names


@pytest.mark.parametrize("script", BUGGY, ids=lambda p: p.stem)
def test_each_bug_is_found_at_its_line_inside_the_class(script: Path, reports: dict) -> None:
    f = reports[script.name]
    assert f.status == "findings", (f.status, f.error)
    assert all(m.checked for m in f.models), [(m.name, m.reason) for m in f.models]
    roots = [d for d in f.diagnostics if d.severity in ("error", "warning") and not d.follows]
    want = marked(script, "finding")

    def lines(d: object) -> set[int]:
        return {d.line} | {r.line for r in d.related}

    for line in want:  # each marked line is a finding's, or where its shape breaks
        assert any(line in lines(d) for d in roots), (line, [(d.code, d.line) for d in roots])
    for d in roots:  # and nothing else is reported
        assert lines(d) & want, (d.code, d.line, d.message)


@pytest.mark.parametrize("script", BUGGY, ids=lambda p: p.stem)
def test_each_fixed_twin_is_checked_and_clean(script: Path, reports: dict) -> None:
    f = reports[script.stem + "_fixed.py"]
    assert f.status == "clean", [(d.code, d.line, d.message) for d in f.diagnostics]
    assert f.models and all(m.checked for m in f.models)


@pytest.mark.parametrize("script", UNTRACEABLE, ids=lambda p: p.stem)
def test_a_model_that_cannot_be_traced_says_why_and_where(script: Path, reports: dict) -> None:
    f = reports[script.name]
    assert f.status == "unchecked", f.status
    [m] = [m for m in f.models if not m.checked]
    [line] = marked(script, "untraceable")
    assert f"{script.name}:{line}" in m.reason, m.reason
    assert "could not be traced" in m.reason


def test_the_json_lists_the_layers_with_shapes_and_lines_inside_call(reports: dict) -> None:
    f = reports["lstm_net_2d_data_fixed.py"]
    [m] = f.models
    doc = m.to_dict()
    assert doc["kind"] == "subclassed" and doc["checked"]
    calls = {layer["class"]: layer for layer in doc["layers"]}
    assert calls["LSTM"]["output_shapes"] == [["batch", 16]]
    source = (CORPUS / "lstm_net_2d_data_fixed.py").read_text().splitlines()
    assert "self.lstm(" in source[calls["LSTM"]["line"] - 1]
    assert doc["line"] and "Net(" in source[doc["line"] - 1]  # where the user made it


def test_a_users_layer_is_a_nested_graph_opened_in_place(reports: dict) -> None:
    f = reports["transformer_ffn_width_fixed.py"]
    outer = next(m for m in f.models if m.kind == "subclassed")
    block = next(layer for layer in outer.layers if layer.cls == "TransformerBlock")
    assert block.model is not None
    inner = next(m for m in f.models if m.kind == "layer" and m.name == block.model)
    classes = {layer.cls for layer in inner.layers}
    assert {"MultiHeadAttention", "LayerNormalization"} <= classes
    page = html.render(Report([f]))
    assert "TransformerBlock" in page and "MultiHeadAttention" in page


def test_the_step_finding_sits_inside_the_step(reports: dict) -> None:
    f = reports["vae_train_step_loss.py"]
    [d] = [d for d in f.diagnostics if d.code == "SC901"]
    assert "train_step" in d.message and "`fit`" in d.message
    assert d.shapes and all(s[0] == "batch" for s in d.shapes.values())


SCRIPT = '''
import numpy as np
import keras
from keras import layers


class Net(keras.Model):
    def __init__(self):
        super().__init__()
        self.conv = layers.Conv1D(8, 3)
        self.pool = layers.GlobalAveragePooling1D()
        self.out = layers.Dense(2)

    def call(self, x):
        return self.out(self.pool(self.conv(x)))


model = Net()
{how}
'''


@pytest.mark.parametrize("how", [
    "model.build((None, None, 4))\nmodel.summary()",
    "print(model(np.zeros((2, 10, 4), 'float32')).shape)",
])
def test_build_or_a_call_gives_the_shapes_to_trace_with(tmp_path: Path, how: str) -> None:
    script = tmp_path / "net.py"
    script.write_text(SCRIPT.format(how=how))
    f = check_file(str(script))
    assert f.error is None and f.status == "clean", (f.status, f.error)
    [m] = f.models
    assert m.checked and [layer.cls for layer in m.layers][1:] == [
        "Conv1D", "GlobalAveragePooling1D", "Dense"]
    conv = m.layers[1].output_shapes[0]
    assert conv[0] == "batch" and conv[2] == 8


def test_data_of_the_wrong_rank_is_found_at_the_layer_through_a_call(tmp_path: Path) -> None:
    script = tmp_path / "net.py"
    script.write_text(SCRIPT.format(how="model(np.zeros((2, 10), 'float32'))"))
    f = check_file(str(script))
    [d] = [d for d in f.diagnostics if d.severity == "error" and not d.follows]
    assert (d.code, d.line) == ("SC102", 15), (d.code, d.line, d.message)
    assert "samples of shape (10,)" in (d.hint or "")


def test_tracing_leaves_the_models_weights_as_they_were(tmp_path: Path) -> None:
    script = tmp_path / "weights.py"
    script.write_text(SCRIPT.format(how="""
x = np.random.rand(16, 10, 4).astype("float32")
model(x)
before = [w.copy() for w in model.get_weights()]
model.compile("adam", "sparse_categorical_crossentropy")
model.fit(x, np.zeros((16,)), epochs=2, batch_size=8)
model.predict(x)
after = model.get_weights()
assert len(before) == len(after)
assert all((a == b).all() for a, b in zip(before, after)), "weights changed"
"""))
    f = check_file(str(script))
    assert f.error is None and f.status == "clean", (f.status, f.error)


def test_check_model_traces_a_subclassed_model_built_in_this_process() -> None:
    import numpy as np
    import keras
    from keras import layers

    import shapecheck

    class Net(keras.Model):
        def __init__(self) -> None:
            super().__init__()
            self.conv = layers.Conv1D(8, 3)
            self.pool = layers.GlobalAveragePooling1D()
            self.out = layers.Dense(2)

        def call(self, x):  # type: ignore[no-untyped-def]
            return self.out(self.pool(self.conv(x)))

    model = Net()
    [m] = shapecheck.check_model(model).models
    assert not m.checked and "never built" in (m.reason or "")
    model(np.zeros((2, 10, 4), "float32"))
    [m] = shapecheck.check_model(model).models
    assert m.checked and m.layers[1].output_shapes == [["batch", "T - 2", 8]]
    report = shapecheck.check_model(model, data=np.zeros((8, 12, 5), "float32"))
    assert [d.code for d in report.diagnostics] == ["SC603"]


def test_run_executes_the_traced_graph_of_a_subclassed_model() -> None:
    from shapecheck.verify.plans import RunOptions

    cpu = RunOptions(device="cpu")
    clean, buggy = check_files_together(
        [str(CORPUS / "resblock_loop_channels_fixed.py"),
         str(CORPUS / "transformer_ffn_width.py")], run=cpu, timeout=900)
    [outer] = [m for m in clean.models if m.kind == "subclassed"]
    runs = outer.run["executions"]
    assert runs and all(e["error"] is None for e in runs), runs
    assert clean.status == "clean"
    # the refused add inside the block is confirmed where it is; no run failure is
    # added for the block that holds it
    codes = [d.code for d in buggy.diagnostics]
    assert "SC801" not in codes and "SC101" in codes
    assert all(d.confirmed for d in buggy.diagnostics if d.code == "SC101")
