"""How long the HTML report of a large model takes to make and to open.

    python benchmarks/bench_html.py              # residual towers of 1k, 2k and 5k layers
    python benchmarks/bench_html.py --sizes 1000

For each size: a residual tower (``x = Add()([x, Dense(x)])``, plus the input)
is built with Keras and checked with ``shapecheck.check_model``; then

- ``check`` is ``check_model`` (once); ``layout`` is the layered layout
  alone, ``html``/``svg`` the whole page or picture (layout included), in
  this process, each the best of 2;
- ``browser`` is headless Chromium loading the page until its script has run
  (``--dump-dom``), less the same for an empty page (Chromium's own start),
  the best of 3; ``script`` is the time the page's script reports for itself.

Wall-clock seconds (``time.perf_counter``).  Not a test: the one bound it
checks is that the page opens in a browser in under 10 s, with no script error.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def tower(layers: int):
    import keras

    out: dict = {}

    def build() -> None:
        limit = sys.getrecursionlimit()
        sys.setrecursionlimit(max(limit, 60 * layers + 10_000))
        try:
            inp = keras.Input(shape=(None, 8), name="x")
            x = inp
            for _ in range(layers // 2):
                x = keras.layers.Add()([x, keras.layers.Dense(8)(x)])
            out["model"] = keras.Model(inp, x)
        finally:
            sys.setrecursionlimit(limit)

    size = threading.stack_size()
    threading.stack_size(1 << 30)
    try:
        worker = threading.Thread(target=build)
        worker.start()
        worker.join()
    finally:
        threading.stack_size(size)
    return out["model"]


def timed(fn):
    start = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - start


def open_page(browser: str, page: Path, profile: Path) -> tuple[str, float]:
    cmd = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
           "--no-first-run", f"--user-data-dir={profile}", "--window-size=1400,850",
           "--dump-dom", page.as_uri()]
    proc, seconds = timed(lambda: subprocess.run(cmd, capture_output=True, text=True,
                                                 timeout=120))
    return proc.stdout, seconds


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[1000, 2000, 5000])
    opts = p.parse_args(argv)
    import shapecheck
    from shapecheck.render import html, layout, svg
    from shapecheck.render.svg import graph_edges, node_size

    browser = next((shutil.which(b) for b in ("chromium", "chromium-browser", "google-chrome")
                    if shutil.which(b)), None)
    print(f"python {platform.python_version()}, {os.cpu_count()} cores, browser: "
          f"{browser or 'none (browser column left empty)'}")
    work = Path(tempfile.mkdtemp())
    blank = work / "blank.html"
    blank.write_text("<!DOCTYPE html><html><body>blank</body></html>")
    base = None
    if browser:
        base = min(open_page(browser, blank, work / "profile")[1] for _ in range(3))
        print(f"Chromium start and an empty page: {base:.2f} s (subtracted below)")
    print(f"{'layers':>7} {'check':>7} {'layout':>7} {'html':>7} {'svg':>7} {'page KB':>8} "
          f"{'browser':>8} {'script':>7}")
    html.render(shapecheck.check_model(tower(50)))  # warm up: imports, first calls

    def best(fn):
        (value, t1), (_, t2) = timed(fn), timed(fn)
        return value, min(t1, t2)

    for n in opts.sizes:
        model = tower(n)
        report, t_check = timed(lambda: shapecheck.check_model(model))
        entry = report.models[0]
        sizes = [node_size(x.name, x.cls) for x in entry.layers]
        _, t_layout = best(lambda: layout.layout(sizes, graph_edges(entry)))
        page, t_html = best(lambda: html.render(report))
        _, t_svg = best(lambda: svg.render(report))
        path = work / f"tower{n}.html"
        path.write_text(page, encoding="utf-8")
        shown = script = ""
        if browser:
            runs = [open_page(browser, path, work / "profile") for _ in range(3)]
            dom, seconds = min(runs, key=lambda r: r[1])
            errors = re.search(r'data-errors="([^"]*)"', dom)
            ready = re.search(r'data-ready="1"', dom)
            ms = re.search(r'data-render-ms="([\d.]+)"', dom)
            ok = errors and json.loads(errors.group(1).replace("&quot;", '"')) == [] and ready
            assert ok, f"the {n}-layer page did not load cleanly"
            assert seconds < 10, f"the {n}-layer page took {seconds:.1f} s to open"
            shown = f"{seconds - base:.2f}"
            script = f"{float(ms.group(1)) / 1000:.2f}" if ms else "?"
        print(f"{len(entry.layers):>7} {t_check:>7.2f} {t_layout:>7.2f} {t_html:>7.2f} "
              f"{t_svg:>7.2f} {len(page) // 1024:>8} {shown:>8} {script:>7}")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
