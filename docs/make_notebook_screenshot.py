"""Take ``docs/notebook-inline.png``: the inline report in an executed notebook.

    pip install nbconvert        # besides the [notebook,test] extras
    python docs/make_notebook_screenshot.py

A notebook that loads the extension and runs ``%shapecheck model`` on a buggy model
is executed in a Jupyter kernel (nbclient), rendered to HTML with nbconvert, and
the page is photographed by headless Chromium (``chromium``).  The page's scripts
from the network (nbconvert's template loads require.js and MathJax from a CDN)
are left out, so the picture shows only what the notebook itself holds, and so are
TensorFlow's start-up log lines on stderr, which every notebook importing it shows.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import nbclient
import nbformat
from nbconvert import HTMLExporter
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

OUT = Path(__file__).resolve().parent / "notebook-inline.png"
CELLS = [
    new_markdown_cell("## A GRU summary added to a GRU sequence"),
    new_code_cell("%load_ext shapecheck"),
    new_code_cell('''\
import keras
from keras import layers

inp = keras.Input((32, 8))
last = layers.GRU(16, name="gru_last")(inp)
seq = layers.GRU(16, return_sequences=True, name="gru_seq")(inp)
out = layers.Dense(1)(layers.add([last, seq], name="merge"))
model = keras.Model(inp, out)'''),
    new_code_cell("%shapecheck model"),
]


def execute(folder: Path) -> nbformat.NotebookNode:
    """The notebook, run in a kernel of this interpreter."""
    spec = folder / "jupyter" / "kernels" / "shapecheck-docs"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3", "language": "python"}))
    import os

    os.environ["JUPYTER_PATH"] = str(folder / "jupyter")
    os.environ["IPYTHONDIR"] = str(folder / "ipython")
    nb = new_notebook(cells=CELLS)
    nbclient.NotebookClient(nb, kernel_name="shapecheck-docs", timeout=300,
                            resources={"metadata": {"path": str(folder)}}).execute()
    return nb


def page(nb: nbformat.NotebookNode) -> str:
    """The notebook as nbconvert's HTML, less the scripts it loads from the network and
    the cells' stderr."""
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = [o for o in cell.outputs
                            if not (o.output_type == "stream" and o.name == "stderr")]
    body, _ = HTMLExporter(template_name="lab").from_notebook_node(nb)
    body = re.sub(r'<script[^>]*src="https?://[^"]*"[^>]*>\s*</script>', "", body)
    return re.sub(r'<script type="module">.*?</script>', "", body, flags=re.S)


def main() -> None:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        sys.exit("no chromium on PATH")
    with tempfile.TemporaryDirectory(prefix="shapecheck-docs-") as tmp:
        folder = Path(tmp)
        html = folder / "notebook.html"
        html.write_text(page(execute(folder)), encoding="utf-8")
        subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu",
                        "--hide-scrollbars", "--window-size=1100,1020",
                        "--virtual-time-budget=5000", f"--screenshot={OUT}",
                        html.as_uri()], check=True, capture_output=True, timeout=120)
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
