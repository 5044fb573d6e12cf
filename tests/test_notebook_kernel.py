"""The IPython extension in a real Jupyter kernel: a notebook run by nbclient, its
outputs read as a notebook frontend would show them."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

from nbformat.v4 import new_code_cell, new_notebook  # noqa: E402

from tests.test_magics import MODEL  # noqa: E402

KERNEL = "shapecheck-test"
CELLS = [
    "%load_ext shapecheck",
    MODEL + "\nimport shapecheck",
    "%shapecheck model",
    "%%shapecheck\nhistory = model.fit(x, y_short, epochs=2)\nran_in_kernel = True",
    "shapecheck.check_model(model)",
    "print('ran_in_kernel' in globals(), 'history' in globals())",
]


def kernelspec(folder: Path) -> None:
    """A kernel running this interpreter (this venv's IPython and shapecheck), found
    through ``JUPYTER_PATH=folder``."""
    spec = folder / "kernels" / KERNEL
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "shapecheck test", "language": "python"}))


def run_notebook(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The notebook of :data:`CELLS`, executed in a fresh kernel started in ``tmp_path``;
    skipped when no kernel can start here."""
    kernelspec(tmp_path / "jupyter")
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    monkeypatch.setenv("IPYTHONDIR", str(tmp_path / "ipython"))  # no user profile, history
    nb = new_notebook(cells=[new_code_cell(c) for c in CELLS])
    client = nbclient.NotebookClient(nb, kernel_name=KERNEL, timeout=120,
                                     resources={"metadata": {"path": str(tmp_path)}})
    try:
        client.km = client.create_kernel_manager()
        client.start_new_kernel()
        client.start_new_kernel_client()
    except Exception as err:  # no kernel here (no ZMQ, no ports): not what is tested
        if client.km is not None and client.km.has_kernel:
            client.km.shutdown_kernel(now=True)
        pytest.skip(f"a Jupyter kernel could not start: {type(err).__name__}: {err}")
    try:
        return client.execute()
    finally:
        if client.km is not None and client.km.has_kernel:
            client.km.shutdown_kernel(now=True)


def bundles(cell: Any, kind: str) -> list[dict]:
    """The mime bundles of the cell's outputs of ``kind`` (display_data, ...)."""
    return [o["data"] for o in cell.outputs if o["output_type"] == kind]


def assert_self_contained_graph(html: str) -> None:
    """The HTML shows the graph page in a sandboxed iframe that fetches nothing."""
    frame = re.search(r'<iframe srcdoc="([^"]*)" sandbox="allow-scripts"', html)
    assert frame, html[:300]
    assert "&lt;svg" in frame.group(1)
    assert 'src="http' not in html and not re.search(r"src=(&quot;)?https?:", html)


def test_the_report_renders_inline_in_a_jupyter_kernel(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    nb = run_notebook(tmp_path, monkeypatch)
    cells = nb.cells
    assert not any(o["output_type"] == "error" for c in cells for o in c.outputs)

    [line] = bundles(cells[2], "display_data")  # %shapecheck model
    assert "error[SC303 rank-broadcast]" in line["text/plain"] and "`merge`" in line["text/plain"]
    assert "SC303" in line["text/html"]
    assert_self_contained_graph(line["text/html"])

    [checked] = bundles(cells[3], "display_data")  # %%shapecheck: found at In [4], line 2
    assert "SC606" in checked["text/plain"]
    assert re.search(r"--> In \[4\]:2\b", checked["text/plain"]), checked["text/plain"]
    assert "--> In [2]:8:" in checked["text/plain"]  # SC303 where the model was built
    assert_self_contained_graph(checked["text/html"])

    [value] = bundles(cells[4], "execute_result")  # a report as the cell's last line
    assert "SC303" in value["text/plain"] and "SC303" in value["text/html"]
    assert_self_contained_graph(value["text/html"])

    # the %%shapecheck cell did not run in the kernel
    assert "".join(o.get("text", "") for o in cells[5].outputs).strip() == "False False"
