"""The picture of a model: the report's wiring, the layout, the SVG and HTML pages, and
the pages opened in headless Chromium."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import threading
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import pytest  # noqa: E402

import shapecheck  # noqa: E402
from shapecheck import cli  # noqa: E402
from shapecheck.options import OptionError, read_config, settings  # noqa: E402
from shapecheck.render import html, svg  # noqa: E402
from shapecheck.render.layout import Edge, layout  # noqa: E402
from shapecheck.report import Diagnostic, Report  # noqa: E402
from shapecheck.script.runner import check_file  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
CAPTIONING = "fixtures/seed000_captioning.py"  # SC601 at `concat3`
BIDIRECTIONAL = "fixtures/seed004_bidirectional_states.py"  # SC401 at `Dec_Bi1`
WINDOW = (1400, 850)


cwd = contextlib.chdir  # the working directory for the block


@pytest.fixture(scope="module")
def captioning() -> Report:
    with cwd(ROOT):
        return Report([check_file(CAPTIONING)])


@pytest.fixture(scope="module")
def bidirectional() -> Report:
    with cwd(ROOT):
        return Report([check_file(BIDIRECTIONAL)])


def nested_model() -> keras.Model:
    """A block model called twice, then a Sequential head and a skip connection."""
    i = keras.Input((None, 32))
    block = keras.Model(i, keras.layers.LayerNormalization()(keras.layers.Dense(32)(i)),
                        name="block")
    tokens = keras.Input((None, 16), name="tokens")
    h = keras.layers.Dense(32, name="embed")(tokens)
    h1 = block(h)
    h2 = block(h1)
    head = keras.Sequential([keras.layers.Dense(32, name="proj")], name="head")
    out = keras.layers.Add(name="skip")([head(h2), h1])
    return keras.Model(tokens, out, name="outer")


def test_layers_carry_their_sources_and_nested_models() -> None:
    doc = shapecheck.check_model(nested_model()).to_dict()
    layers = doc["files"][0]["models"][0]["layers"]
    names = [layer["name"] for layer in layers]
    assert names == ["tokens", "embed", "block", "block", "head", "skip"]
    # the block is called twice: each call is its own entry, wired to the right one
    assert layers[2]["sources"] == [[1, 0]] and layers[3]["sources"] == [[2, 0]]
    assert layers[5]["sources"] == [[4, 0], [2, 0]]  # head's output, the first block call
    assert [layer["model"] for layer in layers] == [None, None, "block", "block", "head",
                                                    None]
    again = Report.from_dict(doc).to_dict()
    assert again == doc


def test_reports_without_sources_still_load() -> None:
    doc = shapecheck.check_model(nested_model()).to_dict()
    for layer in doc["files"][0]["models"][0]["layers"]:
        del layer["sources"], layer["model"]
    report = Report.from_dict(doc)
    assert report.models[0].layers[5].sources == [] and report.models[0].layers[2].model is None


# --- layout ----------------------------------------------------------------------


def tower_edges(blocks: int) -> list[Edge]:
    """x -> dense -> add(x, dense) -> ...: node 0, then (dense, add) per block."""
    edges, x = [], 0
    for b in range(blocks):
        d, a = 1 + 2 * b, 2 + 2 * b
        edges += [Edge(x, d), Edge(x, a, 0, 0), Edge(d, a, 0, 1)]
        x = a
    return edges


def overlaps(d) -> list[tuple[int, int]]:
    by_rank: dict[int, list[int]] = {}
    for v, r in enumerate(d.rank):
        by_rank.setdefault(r, []).append(v)
    bad = []
    for nodes in by_rank.values():
        nodes.sort(key=lambda v: d.x[v])
        for a, b in zip(nodes, nodes[1:]):
            if d.x[a] + d.w[a] / 2 > d.x[b] - d.w[b] / 2:
                bad.append((a, b))
    return bad


def test_layout_of_a_residual_tower_keeps_the_trunk_straight() -> None:
    n = 1001
    d = layout([(110.0, 40.0)] * n, tower_edges(500))
    assert overlaps(d) == []
    adds = [2 + 2 * b for b in range(500)]
    assert len({round(d.x[v]) for v in [0] + adds}) == 1  # one straight trunk
    assert d.width < 400 and d.height > 1000 * 40
    for route in d.routes:  # every edge runs downwards
        ys = [y for _, y in route.points]
        assert ys == sorted(ys) and ys[0] < ys[-1]


def test_layout_puts_an_input_right_above_its_consumer_and_avoids_crossings() -> None:
    # 0 -> 1 -> 2 -> 3 -> 5 <- 4 (an input read only at the end), 3 -> 6, 5 -> 6
    edges = [Edge(0, 1), Edge(1, 2), Edge(2, 3), Edge(3, 5), Edge(4, 5, 0, 1),
             Edge(3, 6), Edge(5, 6, 0, 1)]
    d = layout([(80.0, 40.0)] * 7, edges)
    assert d.rank[4] == d.rank[5] - 1 == d.rank[3]
    assert overlaps(d) == []
    assert d.x[4] > d.x[3]  # the second argument of 5 comes from the right


def test_layout_handles_empty_and_cyclic_graphs() -> None:
    assert layout([], []).routes == []
    d = layout([(80.0, 40.0)] * 3, [Edge(0, 1), Edge(1, 2), Edge(2, 0)])
    assert len(d.routes) == 3 and overlaps(d) == []


# --- SVG ----------------------------------------------------------------------------

SVG_NS = "{http://www.w3.org/2000/svg}"


def classes(root: ET.Element) -> dict[str, set[str]]:
    """data-layer (nodes) or id (edges, labels) -> class set."""
    out = {}
    for el in root.iter():
        key = el.get("data-layer") or el.get("id")
        if key and el.get("class"):
            out.setdefault(key, set()).update(el.get("class").split())
    return out


def test_svg_marks_the_captioning_conflict(captioning: Report, tmp_path: Path) -> None:
    root = ET.fromstring(svg.render(captioning))
    assert root.tag == SVG_NS + "svg"
    c = classes(root)
    assert {"node", "sev-error"} <= c["concat3"]
    assert "feeds-error" in c["lstm"] and "feeds-error" in c["lstm_1"]
    # the message names the four inputs: their paths down to concat3 are marked
    for name in ("input_layer", "input_layer_2", "dropout", "repeat_vector_1", "concat2"):
        assert "path-error" in c[name], name
    assert not {"sev-error", "feeds-error", "path-error"} & c["dense_2"]
    into = [el for el in root.iter(SVG_NS + "path") if "into-error" in el.get("class", "")]
    assert len(into) == 2
    text = "".join(root.itertext())
    assert "SC601" in text and "(batch, 34, 256)" in text and "(batch, 1000)" in text


def test_svg_marks_the_state_tensors_that_feed_dec_bi1(bidirectional: Report) -> None:
    root = ET.fromstring(svg.render(bidirectional))
    c = classes(root)
    assert "sev-error" in c["Dec_Bi1"] and "feeds-error" in c["Enc_Bi1"]
    labels = {el.text: el.get("class") for el in root.iter(SVG_NS + "text")
              if "elabel" in el.get("class", "")}
    # Enc_Bi1's outputs 1 and 2 (the forward states) go to Dec_Bi1's initial_state
    assert "into-error" in labels["[1] (batch, 256)"]
    assert "into-error" in labels["[2] (batch, 256)"]
    into = [el for el in root.iter(SVG_NS + "path") if "into-error" in el.get("class", "")]
    assert len(into) == 3  # Dec_Embedding's output and the two states


def test_svg_of_a_report_without_models() -> None:
    root = ET.fromstring(svg.render(Report([])))
    assert "no model" in "".join(root.itertext())


# --- HTML ---------------------------------------------------------------------------


def page_data(page: str) -> dict:
    m = re.search(r'<script type="application/json" id="sc-data">(.*?)</script>', page, re.S)
    return json.loads(m.group(1))


def test_html_is_one_self_contained_page(captioning: Report) -> None:
    page = html.render(captioning)
    assert page.startswith("<!DOCTYPE html>")
    assert not re.search(r"<script[^>]+src=|<link|@import|<iframe|<img", page)
    urls = set(re.findall(r"https?://[^\s\"'<>)]+", page))
    assert urls == {"http://www.w3.org/2000/svg"}  # the SVG namespace, never fetched
    data = page_data(page)
    layers = [layer.name for layer in captioning.models[0].layers]
    assert data["findings"] == [{"tab": 0, "nodes": [layers.index("concat3")],
                                 "layer": "concat3", "code": "SC601", "severity": "error"}]
    assert 'data-layer="concat3"' in page and "give every input of a batch" in page
    assert "(47, 4096)" in page  # the finding's shapes are listed beside the graph


def test_html_escapes_what_the_report_says(captioning: Report) -> None:
    report = Report.from_dict(captioning.to_dict())
    f = report.files[0]
    f.diagnostics.append(Diagnostic("SC999", "warning", "`a` </script><b>x</b> & <!--",
                                    model=f.models[0].name, layer="dense_2", line=44))
    page = html.render(report)
    assert "</script><b>" not in page and "&lt;/script&gt;&lt;b&gt;" in page
    data = page_data(page)
    assert data["findings"][1]["nodes"] == [17] and data["findings"][1]["tab"] == 0
    assert "</" not in re.search(r'id="sc-data">(.*?)</script>', page, re.S).group(1)


def test_html_opens_nested_models_in_place() -> None:
    # check_model gives the nested models entries of their own, as a script's report has
    report = shapecheck.check_model(nested_model())
    assert [m.name for m in report.files[0].models] == ["outer", "block", "head"]
    page = html.render(report)
    data = page_data(page)
    outer_scene = data["scenes"][data["tabs"][0]["scene"]]
    assert sorted(outer_scene["nested"]) == ["2", "3", "4"]  # both calls of the block, head
    assert page.count('class="inner"') == 3
    # a nested model the report has no entry for is drawn closed
    report.files[0].models.pop()
    data = page_data(html.render(report))
    assert sorted(data["scenes"][data["tabs"][0]["scene"]]["nested"]) == ["2", "3"]


def test_html_of_failed_and_empty_reports() -> None:
    with cwd(ROOT):
        report = Report([check_file("fixtures/no_such_script.py")])
    page = html.render(report)
    assert "not-found" in page and "No model was built" in page


# --- options and the command ---------------------------------------------------------


def test_html_and_svg_are_command_line_options_only(tmp_path: Path) -> None:
    s = settings({"paths": ["m.py"], "html": "r.html", "svg": "r.svg"}, use_config=False)
    assert (s.html, s.svg) == ("r.html", "r.svg")
    config = tmp_path / "pyproject.toml"
    config.write_text('[tool.shapecheck]\nhtml = "r.html"\n')
    with pytest.raises(OptionError, match="no setting 'html'"):
        read_config(str(config))


def test_pictures_are_announced_on_stderr_with_machine_formats(
        captioning: Report, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    s = settings({"paths": ["m.py"], "format": "json", "html": str(tmp_path / "r.html"),
                  "svg": str(tmp_path / "r.svg")}, use_config=False)
    assert cli.write_pictures(captioning, s)
    out, err = capsys.readouterr()
    assert out == "" and "HTML report written to" in err and "SVG picture written to" in err
    ET.parse(tmp_path / "r.svg")
    s.html, s.svg = str(tmp_path / "missing" / "r.html"), None
    assert not cli.write_pictures(captioning, s)
    assert "could not write the HTML report" in capsys.readouterr().err


def test_command_writes_html_and_svg(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "shapecheck", BIDIRECTIONAL, "--isolated",
                           "--no-tables", "--html", str(tmp_path / "r.html"),
                           "--svg", str(tmp_path / "r.svg")],
                          cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 1, proc.stderr
    assert f"HTML report written to {tmp_path / 'r.html'}" in " ".join(proc.stdout.split())
    assert "SVG picture written to" in proc.stdout
    assert "Dec_Bi1" in (tmp_path / "r.html").read_text()
    ET.parse(tmp_path / "r.svg")


# --- in a browser ---------------------------------------------------------------------


def find_chromium() -> str | None:
    for name in (os.environ.get("SHAPECHECK_CHROMIUM"), "chromium", "chromium-browser",
                 "google-chrome"):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


CHROMIUM = find_chromium()
needs_browser = pytest.mark.skipif(
    CHROMIUM is None, reason="no headless Chromium (apt-get install chromium): the HTML "
                             "report was not opened in a browser")


def chromium(page: Path, tmp_path: Path, *args: str, fragment: str = "") -> str:
    proc = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
         "--hide-scrollbars", "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}",
         f"--window-size={WINDOW[0]},{WINDOW[1]}", "--virtual-time-budget=5000", *args,
         page.as_uri() + fragment],
        capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


class Dom(HTMLParser):
    """The attributes of <html>, <body> and every element with a data-layer or id."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.root: dict = {}
        self.body: dict = {}
        self.layers: dict[str, list[dict]] = {}
        self.ids: dict[str, dict] = {}
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list) -> None:
        a = dict(attrs)
        if tag == "html":
            self.root = a
        elif tag == "body":
            self.body = a
        if "data-layer" in a:
            self.layers.setdefault(a["data-layer"], []).append(a)
        if "id" in a:
            self.ids[a["id"]] = a


def opened(page: Path, tmp_path: Path, fragment: str = "") -> Dom:
    """The page after its scripts ran, checked to have loaded without a script error."""
    dom = Dom(chromium(page, tmp_path, "--dump-dom", fragment=fragment))
    assert json.loads(dom.root.get("data-errors", "null")) == []
    assert dom.body.get("data-ready") == "1"
    return dom


def screenshot(page: Path, tmp_path: Path, name: str, fragment: str = "") -> Path:
    shot = tmp_path / name
    chromium(page, tmp_path, f"--screenshot={shot}", fragment=fragment)
    head = shot.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    assert struct.unpack(">II", head[16:24]) == WINDOW
    assert shot.stat().st_size > 10_000  # a picture, not a blank page
    if os.environ.get("SHAPECHECK_DOCS_SCREENSHOTS"):  # refresh the README's pictures
        (ROOT / "docs").mkdir(exist_ok=True)
        shutil.copy(shot, ROOT / "docs" / name)
    return shot


def classes_of(dom: Dom, layer: str) -> set[str]:
    return {c for a in dom.layers[layer] for c in a.get("class", "").split()}


@needs_browser
@pytest.mark.parametrize("report_name, layer, picture", [
    ("captioning", "concat3", "report-captioning.png"),
    ("bidirectional", "Dec_Bi1", "report-bidirectional.png"),
])
def test_browser_focuses_the_finding(report_name: str, layer: str, picture: str,
                                     request: pytest.FixtureRequest, tmp_path: Path) -> None:
    report = request.getfixturevalue(report_name)
    page = tmp_path / "report.html"
    page.write_text(html.render(report), encoding="utf-8")
    dom = opened(page, tmp_path, "#focus=0")
    assert dom.body["data-focus"] == layer
    assert {"focused", "sev-error"} <= classes_of(dom, layer)
    into = [i for i, a in dom.ids.items() if "into-error" in a.get("class", "")
            and re.fullmatch(r"s\d+-e\d+", i)]
    assert into  # the edges into it are marked
    screenshot(page, tmp_path, picture, "#focus=0")


@needs_browser
def test_browser_opens_nested_models(tmp_path: Path) -> None:
    report = shapecheck.check_model(nested_model())
    inner = shapecheck.check_model(nested_model().get_layer("block")).files[0].models[0]
    inner.name = "block"
    report.files[0].models.append(inner)
    page = tmp_path / "nested.html"
    page.write_text(html.render(report), encoding="utf-8")
    closed = opened(page, tmp_path, "#tab=0")
    assert {"expandable"} <= classes_of(closed, "block")
    dom = opened(page, tmp_path, "#tab=0&open=1")
    assert "open" in classes_of(dom, "block")
    # the opened block is laid out wider than closed, and the rest moved to make room
    before = closed.layers["skip"][0]["transform"]
    after = dom.layers["skip"][0]["transform"]
    assert before != after


DRIVE = """<script>
(function () {
  function fire(el, type, x, y, extra) {
    var init = Object.assign({bubbles: true, cancelable: true, clientX: x, clientY: y,
                              button: 0, pointerId: 1}, extra || {});
    el.dispatchEvent(type === "wheel" ? new WheelEvent(type, init) : new PointerEvent(type, init));
  }
  document.querySelectorAll("nav.tabs button").forEach(function (b) { b.click(); });
  document.querySelector("nav.tabs button").click();
  document.querySelectorAll(".toolbar button").forEach(function (b) { b.click(); });
  document.querySelectorAll("li.finding").forEach(function (li) { li.click(); });
  var canvas = document.querySelector(".canvas:not([hidden])");
  fire(canvas, "wheel", 300, 300, {deltaY: -240});
  fire(canvas, "pointerdown", 300, 300);
  fire(canvas, "pointermove", 360, 340);
  fire(canvas, "pointerup", 360, 340);
  var block = document.querySelector('.node.expandable[data-layer="block"]');
  fire(block.querySelector("rect"), "pointerdown", 10, 10);
  fire(block.querySelector("rect"), "pointerup", 10, 10);
  document.body.setAttribute("data-opened-by-click", String(block.classList.contains("open")));
  var skip = document.querySelector('.node[data-layer="skip"] rect');
  fire(skip, "pointerdown", 10, 10);
  fire(skip, "pointerup", 10, 10);
  var active = document.querySelector("li.finding.active");
  document.body.setAttribute("data-selected", active ? active.getAttribute("data-finding") : "");
  document.dispatchEvent(new KeyboardEvent("keydown", {key: "f", bubbles: true}));
  window.dispatchEvent(new Event("resize"));
  document.body.setAttribute("data-driven", "1");
})();
</script>"""


@needs_browser
def test_browser_controls_run_without_errors(tmp_path: Path) -> None:
    """Tabs, toolbar, findings, wheel, drag, a click that opens a nested model and one
    that selects a finding, keys and a resize: no script error."""
    report = shapecheck.check_model(nested_model())
    inner = shapecheck.check_model(nested_model().get_layer("block")).files[0].models[0]
    inner.name = "block"
    report.files[0].models.append(inner)
    report.files[0].diagnostics += [
        Diagnostic("SC301", "warning", "`skip` adds", model="outer", layer="skip"),
        Diagnostic("SC999", "info", "no layer", model="outer"),
        Diagnostic("SC998", "info", "no model")]
    page = tmp_path / "driven.html"
    page.write_text(html.render(report).replace("</body>", DRIVE + "</body>"),
                    encoding="utf-8")
    dom = opened(page, tmp_path)
    assert dom.body["data-driven"] == "1"
    assert dom.body["data-opened-by-click"] == "true"
    assert dom.body["data-selected"] == "0"  # clicking the marked layer selects its finding
    assert "sev-warning" in classes_of(dom, "skip")


def residual_tower(blocks: int) -> keras.Model:
    """x -> (Dense, Add) * blocks: Keras recurses once per layer while building it."""
    out: dict = {}

    def build() -> None:
        limit = sys.getrecursionlimit()
        sys.setrecursionlimit(max(limit, 60 * blocks + 10_000))
        try:
            inp = keras.Input(shape=(None, 8), name="x")
            x = inp
            for _ in range(blocks):
                x = keras.layers.Add()([x, keras.layers.Dense(8)(x)])
            out["model"] = keras.Model(inp, x, name="tower")
        finally:
            sys.setrecursionlimit(limit)

    size = threading.stack_size()
    threading.stack_size(1 << 28)
    try:
        worker = threading.Thread(target=build)
        worker.start()
        worker.join()
    finally:
        threading.stack_size(size)
    return out["model"]


@needs_browser
def test_browser_renders_a_thousand_layer_model(tmp_path: Path) -> None:
    report = shapecheck.check_model(residual_tower(500))
    model = report.models[0]
    assert len(model.layers) == 1001
    deep = model.layers[800].name
    # a finding deep in the tower (the renderer draws findings, it never makes them)
    report.files[0].diagnostics.append(Diagnostic("SC301", "error", f"`{deep}` is wrong",
                                                  model=model.name, layer=deep))
    page = tmp_path / "tower.html"
    page.write_text(html.render(report), encoding="utf-8")
    dom = opened(page, tmp_path)
    assert dom.body["data-nodes"] == "1001"
    # too tall to see whole: the page starts at the finding
    assert dom.body["data-focus"] == deep and "focused" in classes_of(dom, deep)
