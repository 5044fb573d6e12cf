"""Scripts as notebooks: the same findings, and what a notebook costs.

    python benchmarks/bench_notebooks.py                # every group below
    python benchmarks/bench_notebooks.py --only tutorials

Each script of ``fixtures/tutorials/``, ``fixtures/seed*.py``, ``fixtures/rules/``
(every rule's bad and good script), ``fixtures/subclassed/`` and
``fixtures/custom_loops/`` is turned into a notebook in a copy of its folder: a markdown cell for its docstring, then a new code
cell at each top-level statement that follows a blank line (as people split a script
into cells).  Both are checked by ``shapecheck --format json -j 2`` from that folder,
scripts in one command and notebooks in another, and compared file by file: the
status, and each finding's code, layer and source line.  A notebook's places are by
cell, so lines are compared by their text.  Prints a table and the wall clock of
each command.  Not a test: nothing is asserted.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

ROOT = Path(__file__).resolve().parent.parent
ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")


def to_notebook(script: Path) -> nbformat.NotebookNode:
    """``script`` split into cells at top-level statements after a blank line."""
    text = script.read_text(encoding="utf-8")
    lines = text.split("\n")
    tree = ast.parse(text)
    body = list(tree.body)
    cells = []
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
            and isinstance(body[0].value.value, str):
        cells.append(new_markdown_cell(body[0].value.value.strip()))
        start = body[0].end_lineno or 1
        body = body[1:]
    else:
        start = 0
    cuts = [start]
    for node in body:
        first = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])
        if first - 2 >= 0 and not lines[first - 2].strip() and first - 1 > cuts[-1]:
            cuts.append(first - 1)
    cuts.append(len(lines))
    for a, b in zip(cuts, cuts[1:]):
        source = "\n".join(lines[a:b]).strip("\n")
        if source.strip():
            cells.append(new_code_cell(source))
    return new_notebook(cells=cells, metadata={"kernelspec": {
        "name": "python3", "display_name": "Python 3", "language": "python"}})


def check(folder: Path, names: list[str]) -> tuple[dict, float]:
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "shapecheck", "--format", "json", "-j", "2",
                           "--timeout", "240", *names], cwd=folder, capture_output=True,
                          text=True, env=ENV, timeout=3600)
    seconds = time.perf_counter() - start
    doc = json.loads(proc.stdout)
    return {Path(f["path"]).stem: f for f in doc["files"]}, seconds


def findings(f: dict) -> list[tuple]:
    return sorted((d["code"], d.get("layer") or "", (d.get("source") or "").strip())
                  for d in f["diagnostics"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    groups = {"tutorials": (ROOT / "fixtures" / "tutorials", "*.py"),
              "seeds": (ROOT / "fixtures", "seed*.py"),
              "rules": (ROOT / "fixtures" / "rules", "*.py"),
              "subclassed": (ROOT / "fixtures" / "subclassed", "*.py"),
              "custom_loops": (ROOT / "fixtures" / "custom_loops", "*.py")}
    parser.add_argument("--only", choices=sorted(groups))
    args = parser.parse_args()
    rows = []
    totals = {"scripts": 0.0, "notebooks": 0.0}
    with tempfile.TemporaryDirectory(prefix="bench-notebooks-") as tmp:
        for group, (source, pattern) in groups.items():
            if args.only and group != args.only:
                continue
            folder = Path(tmp) / group
            scripts = sorted(source.glob(pattern))
            if group != "seeds":  # the folder, with its data files
                shutil.copytree(source, folder, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                folder.mkdir()
                for script in scripts:
                    shutil.copy(script, folder / script.name)
            for script in scripts:
                nbformat.write(to_notebook(script), str(folder / f"{script.stem}.ipynb"))
            as_scripts, t1 = check(folder, [s.name for s in scripts])
            as_notebooks, t2 = check(folder, [f"{s.stem}.ipynb" for s in scripts])
            totals["scripts"] += t1
            totals["notebooks"] += t2
            for script in scripts:
                a, b = as_scripts[script.stem], as_notebooks[script.stem]
                same = a["status"] == b["status"] and findings(a) == findings(b)
                rows.append((group, script.name, a["status"],
                             ",".join(d["code"] for d in a["diagnostics"]) or "-",
                             b["status"], "same" if same else "DIFFERENT"))
    print("| group | script | as script | codes | as notebook | findings |")
    print("| --- | --- | --- | --- | --- | --- |")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    same = sum(r[-1] == "same" for r in rows)
    print(f"\n{same}/{len(rows)} scripts give the same status and findings as notebooks; "
          f"wall clock (-j 2): scripts {totals['scripts']:.1f} s, "
          f"notebooks {totals['notebooks']:.1f} s")


if __name__ == "__main__":
    main()
