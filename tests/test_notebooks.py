"""`shapecheck nb.ipynb`: a notebook's code cells run as a script, IPython syntax as
IPython runs it, findings located by cell."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from shapecheck.render import github, sarif, text
from shapecheck.report import Report
from shapecheck.rules import all_rules
from shapecheck.script import notebook
from shapecheck.script.runner import expand

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "fixtures" / "notebooks"
BUGGY = NOTEBOOKS / "seed000_generator.ipynb"
CLEAN = NOTEBOOKS / "captioning_clean.ipynb"


def shapecheck(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "shapecheck", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=240)


def write_notebook(path: Path, *cells: str, markdown_first: bool = False) -> Path:
    made = [new_code_cell(c) for c in cells]
    if markdown_first:
        made.insert(0, new_markdown_cell("# A notebook"))
    nbformat.write(new_notebook(cells=made), str(path))
    return path


def raw_line(path: Path, number: int) -> str:
    return path.read_text(encoding="utf-8").split("\n")[number - 1]


@pytest.fixture(scope="module")
def buggy() -> dict:
    proc = shapecheck("--format", "json", str(BUGGY.relative_to(ROOT)))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    return json.loads(proc.stdout)


def test_finding_is_located_by_cell_and_line_in_the_cell(buggy: dict) -> None:
    [f] = buggy["files"]
    [d] = f["diagnostics"]
    assert d["code"] == "SC601" and d["layer"] == "concat3"
    assert (d["cell"], d["line"]) == (5, 19)  # cell 5 (a markdown cell counted), line 19
    cell = nbformat.read(str(BUGGY), as_version=4).cells[d["cell"] - 1]
    assert d["source"] == cell.source.split("\n")[d["line"] - 1]
    assert "concatenate([lm2_1, lm2_2]" in d["source"]
    # the .ipynb file's own line, where GitHub and a text editor open it
    assert "merged3 = concatenate([lm2_1, lm2_2]" in raw_line(BUGGY, d["notebook_line"])
    # the data that shows it: `fit` under %time in the last cell
    assert d["data"].startswith("`fit` at fixtures/notebooks/seed000_generator.ipynb:cell 9:2")


def test_models_and_layers_are_located_by_cell(buggy: dict) -> None:
    [model] = buggy["files"][0]["models"]
    assert (model["cell"], model["line"]) == (5, 22)
    concat3 = next(layer for layer in model["layers"] if layer["name"] == "concat3")
    assert (concat3["cell"], concat3["line"]) == (5, 19)


def test_shell_lines_are_skipped_and_reported_never_run(buggy: dict) -> None:
    nb = buggy["files"][0]["notebook"]
    assert nb["code_cells"] == 6
    [skipped] = nb["skipped"]
    assert skipped["text"] == "!pip install -q keras numpy"
    assert (skipped["cell"], skipped["line"]) == (2, 1)
    assert skipped["why"] == "package install"


def test_text_github_and_sarif_give_places_editors_open(buggy: dict) -> None:
    report = Report.from_dict(buggy)
    [d] = report.diagnostics
    assert text.render(report).startswith(
        "fixtures/notebooks/seed000_generator.ipynb:cell 5:19:15: SC601 [error]")
    annotation = github.render(report).splitlines()[0]
    assert annotation.startswith("::error file=fixtures/notebooks/seed000_generator.ipynb,"
                                 f"line={d.notebook_line},title=SC601 batch-mismatch "
                                 "(cell 5%2C line 19)::")
    result = json.loads(sarif.render(report, all_rules()))["runs"][0]["results"][0]
    region = result["locations"][0]["physicalLocation"]["region"]
    assert region["startLine"] == d.notebook_line and "startColumn" not in region
    assert result["properties"]["cell"] == 5 and result["properties"]["cell_line"] == 19


def test_console_shows_the_cell_and_its_source_line() -> None:
    proc = shapecheck(str(BUGGY.relative_to(ROOT)))
    assert proc.returncode == 1
    out = " ".join(proc.stdout.split())
    assert "--> fixtures/notebooks/seed000_generator.ipynb:cell 5:19:15" in out
    assert '19 | merged3 = concatenate([lm2_1, lm2_2], name="concat3")' in out
    assert "note: not run (package install): `!pip install -q keras numpy`" in out


def test_clean_notebook_with_bash_and_capture_cells_checks_clean() -> None:
    proc = shapecheck(str(CLEAN.relative_to(ROOT)))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = " ".join(proc.stdout.split())
    assert "clean: 1 file, 1 model; no findings" in out
    assert "not run (cell magic %%bash: the whole cell)" in out


def test_cells_run_from_the_notebooks_folder_and_write_nothing(tmp_path: Path) -> None:
    folder = tmp_path / "project"
    folder.mkdir()
    import numpy as np

    np.save(folder / "x.npy", np.zeros((8, 5)))
    write_notebook(
        folder / "train.ipynb",
        "import numpy as np\nimport keras\nx = np.load('x.npy')",
        "model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])\n"
        "model.compile(loss='mse')\nmodel.save('model.keras')",
        "model.fit(x, np.zeros((8, 2)))")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    proc = shapecheck("--format", "json", str(folder / "train.ipynb"), cwd=elsewhere)
    doc = json.loads(proc.stdout)
    [f] = doc["files"]
    assert f["error"] is None, f["error"]
    [d] = f["diagnostics"]  # x has 5 features, the model takes 4
    assert d["code"].startswith("SC6") and (d["cell"], d["line"]) == (3, 1)
    assert not (folder / "model.keras").exists()  # the dry run's writes are kept away


def test_an_exception_is_located_by_cell(tmp_path: Path) -> None:
    nb = write_notebook(tmp_path / "raises.ipynb", "import keras",
                        "x = 1\nraise ValueError('no such column')", markdown_first=True)
    proc = shapecheck("--format", "json", str(nb), cwd=tmp_path)
    assert proc.returncode == 2
    [f] = json.loads(proc.stdout)["files"]
    error = f["error"]
    assert error["kind"] == "script-error"
    assert (error["cell"], error["line"]) == (3, 2)
    assert error["source"] == "raise ValueError('no such column')"
    assert 'raises.ipynb", cell 3, line 2' in error["message"]


def test_a_syntax_error_is_located_by_cell(tmp_path: Path) -> None:
    nb = write_notebook(tmp_path / "typo.ipynb", "import keras", "x = (1,\ny = 2 +")
    proc = shapecheck(str(nb), cwd=tmp_path)
    assert proc.returncode == 2
    assert "typo.ipynb:cell 2:" in proc.stdout and "SyntaxError" in proc.stdout


def test_not_a_notebook_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "broken.ipynb"
    bad.write_text("{ not json")
    proc = shapecheck(str(bad), cwd=tmp_path)
    assert proc.returncode == 2
    assert "not a Jupyter notebook" in " ".join(proc.stdout.split())
    assert "Traceback" not in proc.stdout + proc.stderr


def test_a_notebook_of_another_language_is_refused(tmp_path: Path) -> None:
    nb = new_notebook(cells=[new_code_cell("x <- 1")],
                      metadata={"kernelspec": {"name": "ir", "language": "R",
                                                "display_name": "R"}})
    nbformat.write(nb, str(tmp_path / "r.ipynb"))
    proc = shapecheck(str(tmp_path / "r.ipynb"), cwd=tmp_path)
    assert proc.returncode == 2
    assert "its kernel runs R, not Python" in " ".join(proc.stdout.split())


def test_missing_nbformat_names_the_extra(tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    from shapecheck.script.runner import check_file

    monkeypatch.setitem(sys.modules, "nbformat", None)
    report = check_file(str(BUGGY))
    assert report.status == "failed"
    assert "pip install 'keras-shapecheck[notebook]'" in report.error.message


def test_folders_find_notebooks_beside_scripts_but_not_checkpoints(tmp_path: Path) -> None:
    (tmp_path / "a.py").write_text("")
    write_notebook(tmp_path / "b.ipynb", "")
    (tmp_path / ".ipynb_checkpoints").mkdir()
    write_notebook(tmp_path / ".ipynb_checkpoints" / "b-checkpoint.ipynb", "")
    assert [Path(p).name for p in expand([str(tmp_path)])] == ["a.py", "b.ipynb"]


@pytest.mark.parametrize("source, expected, skipped", [
    ("%matplotlib inline\nimport keras", "__shapecheck_ipython__.run_line_magic("
     "'matplotlib', 'inline')\nimport keras", []),
    ("%time history = model.fit(x, y)", "history = model.fit(x, y)", []),
    ("%timeit -n 1 -r 2 model.predict(x)", "model.predict(x)", []),
    ("if True:\n    %time f()", "if True:\n    f()", []),
    ("!pip install keras", "__shapecheck_ipython__.system('pip install keras')",
     ["package install"]),
    ("%pip install -q keras", "__shapecheck_ipython__.system('%pip install -q keras')",
     ["package install"]),
    ("files = !ls data", "files = __shapecheck_ipython__.system('ls data')",
     ["shell command"]),
    ("model.fit?", "pass", []),
    ("text = '''\n%not a magic\n'''", "text = '''\n%not a magic\n'''", []),
    ("y = (10\n% 3)", "y = (10\n% 3)", []),
    ("%%bash\npip install x\nls", "__shapecheck_ipython__.run_cell_magic('bash', '', 0)"
     "\npass\npass", ["cell magic %%bash: the whole cell"]),
    ("%%time\nx = 1\n%time y = 2", "pass\nx = 1\ny = 2", []),
    ("%%capture out\nmodel.summary()",
     "out = __shapecheck_ipython__.captured()\nmodel.summary()", []),
])
def test_ipython_syntax_becomes_python_line_for_line(source: str, expected: str,
                                                    skipped: list[str]) -> None:
    code, found = notebook.transform_cell(source)
    assert code == expected
    assert len(code.split("\n")) == len(source.split("\n"))
    ast.parse(code)
    assert [s.why for s in found] == skipped


def test_magics_run_as_a_kernel_runs_them(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "helpers.py").write_text("WIDTH = 6\n")
    nb = write_notebook(
        tmp_path / "magics.ipynb",
        "%run helpers.py\n%env UNITS=3\n%cd sub",
        "%%writefile notes.txt\nhello",
        "import os, keras\nassert os.path.basename(os.getcwd()) == 'sub'\n"
        "assert open('notes.txt').read() == 'hello\\n'\n"
        "units = int(os.environ['UNITS'])\n"
        "ip = get_ipython()\nip.run_line_magic('matplotlib', 'inline')\n"
        "inputs = keras.Input((WIDTH,))\n"
        "model = keras.Model(inputs, keras.layers.Dense(units)(inputs))\n"
        "display(model)")
    proc = shapecheck("--format", "json", str(nb), cwd=tmp_path)
    [f] = json.loads(proc.stdout)["files"]
    assert f["error"] is None, f["error"]
    [model] = f["models"]
    assert model["layers"][-1]["output_shapes"] == [["batch", 3]]
    assert not (tmp_path / "sub" / "notes.txt").exists()


def test_pytest_shapecheck_collects_notebooks(pytester: pytest.Pytester) -> None:
    models = pytester.mkdir("models")
    (models / BUGGY.name).write_bytes(BUGGY.read_bytes())
    pytester.makepyprojecttoml('[tool.shapecheck]\npaths = ["models"]\n')
    result = pytester.runpytest_subprocess("--shapecheck", "-v", "-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([f"*models/{BUGGY.name}::shapecheck FAILED*",
                                 "*SC601 batch-mismatch*",
                                 f"*--> models/{BUGGY.name}:cell 5:19:15*"])
