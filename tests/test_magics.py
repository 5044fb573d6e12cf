"""The IPython extension in this process: ``%shapecheck``, ``%%shapecheck`` and a
report shown as a cell's value, in an :class:`InteractiveShell` (no kernel)."""

from __future__ import annotations

import re
import subprocess
import sys
from typing import Any, Iterator

import numpy as np
import pytest

pytest.importorskip("IPython")

from IPython.core.error import UsageError  # noqa: E402
from IPython.core.interactiveshell import InteractiveShell  # noqa: E402
from IPython.lib.pretty import pretty  # noqa: E402
from IPython.utils.capture import capture_output  # noqa: E402
from traitlets.config import Config  # noqa: E402

import shapecheck  # noqa: E402
from shapecheck import magics  # noqa: E402
from shapecheck import report as reports  # noqa: E402

# `add` repeats gru_last's (batch, 16) over gru_seq's (batch, 32, 16): SC303 at `merge`;
# x has 10 rows and y_short 12: SC606 when fed together
MODEL = '''\
import numpy as np
import keras
from keras import layers

inp = keras.Input((32, 8))
last = layers.GRU(16, name="gru_last")(inp)
seq = layers.GRU(16, return_sequences=True, name="gru_seq")(inp)
out = layers.Dense(1)(layers.add([last, seq], name="merge"))
model = keras.Model(inp, out)
model.compile(loss="mse", optimizer="adam")
x = np.zeros((10, 32, 8))
y = np.zeros((10, 32, 1))
y_short = np.zeros((12, 32, 1))'''


@pytest.fixture(scope="module")
def shell() -> Iterator[InteractiveShell]:
    """An IPython shell with the extension loaded and the buggy model defined, as a
    user's session would have them (both inputs in its history); afterwards the
    process's ``__main__`` is given back (IPython puts its own in its place)."""
    main = sys.modules["__main__"]
    ours = not InteractiveShell.initialized()
    config = Config()
    config.HistoryManager.hist_file = ":memory:"
    ip = InteractiveShell.instance(config=config)
    try:
        for cell in ("%load_ext shapecheck", MODEL):
            assert ip.run_cell(cell, store_history=True).success
        yield ip
    finally:
        sys.modules["__main__"] = main
        if ours:
            InteractiveShell.clear_instance()


def input_number(ip: InteractiveShell, source: str) -> int:
    """The number of the session's last input ``source`` (``In [N]``)."""
    inputs = ip.history_manager.input_hist_raw
    return max(n for n, text in enumerate(inputs) if text == source)


def shown(ip: InteractiveShell, source: str) -> tuple[list[dict], Any]:
    """What running ``source`` as a cell displayed (mime bundles), and its result."""
    with capture_output() as cap:
        result = ip.run_cell(source, store_history=True)
    return [o.data for o in cap.outputs], result


def test_line_magic_shows_the_finding_of_a_kernel_model(shell: InteractiveShell) -> None:
    outputs, result = shown(shell, "%shapecheck model")
    assert result.success and result.result is None  # shown once, not also as Out[]
    [bundle] = outputs
    assert "error[SC303 rank-broadcast]" in bundle["text/plain"]
    assert "`merge`" in bundle["text/plain"]
    assert "\x1b[" not in bundle["text/plain"]  # not a terminal: no colour codes
    html = bundle["text/html"]
    assert "<iframe" in html and "SC303" in html and "<code>merge</code>" in html


def test_line_magic_takes_data_and_targets_from_the_kernel(shell: InteractiveShell) -> None:
    [clean], _ = shown(shell, "%shapecheck model --data x --targets y")
    assert "SC606" not in clean["text/plain"] and "SC303" in clean["text/plain"]
    [bundle], _ = shown(shell, "%shapecheck model --data x --targets y_short")
    assert "SC606" in bundle["text/plain"]
    assert "`x` has 10 rows and `y` has 12" in bundle["text/plain"]
    # expressions with spaces, evaluated in the kernel's namespace
    [spaced], _ = shown(shell, "%shapecheck model --data np.zeros((10, 32, 8)) "
                               "--targets np.zeros((12, 32, 1))")
    assert "SC606" in spaced["text/plain"]


def test_line_magic_runs_the_model_at_the_sizes_given(shell: InteractiveShell) -> None:
    [bundle], _ = shown(shell, "%shapecheck model --run --dims batch=3")
    text = bundle["text/plain"]
    assert re.search(r"gru_seq +│ GRU +│ \(3, 32, 16\)", text), text
    assert "✓ confirmed" in text


@pytest.mark.parametrize("line, message", [
    ("modle", "%shapecheck: the model modle: name 'modle' is not defined in the kernel"),
    ("x", "%shapecheck: x is not a Keras model (its type is ndarray)"),
    ("model --data x --epochs 3", "%shapecheck: unknown option --epochs (options: --data, "
                                  "--dims, --run, --targets)"),
    ("model --targets y", "%shapecheck: --targets needs --data"),
    ("model --data", "%shapecheck: --data needs a value"),
    ("model --data nothing_here", "%shapecheck: --data nothing_here: name 'nothing_here' is "
                                  "not defined in the kernel"),
    ("model --dims T20", "%shapecheck: --dims takes NAME=SIZE,... (T=20,B=4), not T20"),
    ("", "usage: %shapecheck MODEL"),
])
def test_usage_errors_are_one_clear_line(shell: InteractiveShell, line: str,
                                         message: str) -> None:
    with pytest.raises(UsageError) as err:
        shell.run_line_magic("shapecheck", line)
    assert str(err.value).startswith(message)


def test_a_usage_error_shows_no_traceback(shell: InteractiveShell) -> None:
    with capture_output() as cap:
        result = shell.run_cell("%shapecheck modle")
    assert not result.success
    assert cap.stderr.strip() == ("UsageError: %shapecheck: the model modle: name 'modle' "
                                  "is not defined in the kernel")
    assert "Traceback" not in cap.stdout + cap.stderr


def test_report_as_a_cell_value_shows_graph_and_findings(shell: InteractiveShell) -> None:
    report = shapecheck.check_model(shell.user_ns["model"])
    html = report._repr_html_()
    frame = re.search(r'<iframe srcdoc="([^"]*)" sandbox="allow-scripts"', html)
    assert frame, "the graph page is in a sandboxed iframe"
    page = frame.group(1)
    assert "&lt;svg" in page and "gru_last" in page  # the graph, drawn inline
    # self-contained: nothing fetched from the network
    assert not re.search(r"(src|href)=(&quot;|&#x27;)?(https?:)?//", page)
    assert "&lt;link" not in page
    assert "SC303" in html.split("</iframe>")[1]  # the findings, outside the frame too
    assert "SC303" in pretty(report) and "`merge`" in pretty(report)
    data, _ = shell.display_formatter.format(report)
    assert "SC303" in data["text/plain"] and "<iframe" in data["text/html"]


def test_report_repr_without_renderers_is_the_summary(monkeypatch: pytest.MonkeyPatch,
                                                      shell: InteractiveShell) -> None:
    report = shapecheck.check_model(shell.user_ns["model"])
    monkeypatch.setattr(reports, "SHOW", {})
    assert report._repr_html_() == "<pre>findings: 1 file, 1 model; 1 error</pre>"
    assert pretty(report) == "findings: 1 file, 1 model; 1 error"


def test_terminal_text_has_colours(shell: InteractiveShell) -> None:
    report = shapecheck.check_model(shell.user_ns["model"])
    coloured = magics.text_of(report, colour=True)
    assert "\x1b[" in coloured
    assert re.sub(r"\x1b\[[0-9;]*m", "", coloured).count("SC303") == 1


def test_cell_magic_checks_the_cell_without_running_it(
        shell: InteractiveShell, tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # the kernel's folder: the cell's relative paths start here
    np.save(tmp_path / "features.npy", np.zeros((10, 32, 8)))
    before = set(shell.user_ns)
    outputs, result = shown(shell, "%%shapecheck\n"
                                   "features = np.load('features.npy')\n"
                                   "history = model.fit(features, y_short, epochs=2)\n"
                                   "ran_in_kernel = True\n"
                                   "!echo hi\n")
    number = shell.execution_count - 1
    assert result.success
    assert all(name.startswith("_") for name in set(shell.user_ns) - before)  # _i7 and such
    assert "ran_in_kernel" not in shell.user_ns and "features" not in shell.user_ns
    [bundle] = outputs
    text = bundle["text/plain"]
    # the data finding at this cell's fit (line 3, the %%shapecheck line counted), the
    # model's finding where the model was built (line 8 of the MODEL input)
    assert re.search(rf"error\[SC606 [\w-]+\][^\n]*\n(?:[^\n]*\n)?"
                     rf"  --> In \[{number}\]:3(:\d+)?\n", text), text
    assert f"--> In [{input_number(shell, MODEL)}]:8:" in text
    assert f"not run (shell command): `!echo hi` at In [{number}]:5" in text
    assert "shapecheck_cell" not in text and str(tmp_path) not in text  # no temp file named
    assert f"In [{number}]:3" in bundle["text/html"]


def test_cell_magic_usage_errors(shell: InteractiveShell) -> None:
    with pytest.raises(UsageError, match="unknown option --bogus"):
        shell.run_cell_magic("shapecheck", "--bogus 1", "model.fit(x, y)\n")
    with pytest.raises(UsageError, match="the cell has none"):
        shell.run_cell_magic("shapecheck", "", "\n  \n")
    with pytest.raises(UsageError, match="--timeout takes a positive number, not soon"):
        shell.run_cell_magic("shapecheck", "--timeout soon", "model.fit(x, y)\n")


def test_earlier_inputs_are_replayed_less_ours_and_those_that_raised() -> None:
    class History:
        input_hist_raw = ["", "import numpy as np\n%load_ext shapecheck", "1/0",
                          "%%shapecheck\nmodel.fit(x)", "%shapecheck model\ny = 2",
                          "%%shapecheck\nnow()"]
        exceptions = {2: {}}

    class Shell:
        history_manager = History()
        user_ns: dict = {}

    earlier, number = magics.earlier_inputs(Shell())
    assert earlier == ["import numpy as np\n", "", "", "\ny = 2"]
    assert number == 5  # the %%shapecheck cell running now is In [5]


def test_without_ipython_import_works_and_the_extension_names_the_extra(
        monkeypatch: pytest.MonkeyPatch) -> None:
    code = ("import sys; sys.modules['IPython'] = None\n"
            "import shapecheck\n"
            "assert 'IPython' not in sys.modules or sys.modules['IPython'] is None\n"
            "assert 'keras' not in sys.modules and 'rich' not in sys.modules\n"
            "print(shapecheck.load_ipython_extension.__module__)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "shapecheck.magics"
    monkeypatch.setitem(sys.modules, "IPython", None)
    with pytest.raises(ImportError, match=re.escape(
            "shapecheck's IPython extension needs IPython: "
            "pip install 'keras-shapecheck[notebook]'")):
        magics.load_ipython_extension(object())
