"""One self-contained HTML page per run: each model's layer graph, findings beside it.

The page needs no network: the graph is SVG drawn here
(:mod:`shapecheck.render.svg`), the style and the script (pan, zoom, nested
models opened in place, a finding focused on its layer) are inlined from
``assets/``.  It records script errors in ``<html data-errors="[...]">`` and
sets ``<body data-ready="1">`` once the script has run, for tests.
"""

from __future__ import annotations

import json
import os
import re
from html import escape
from importlib import resources

from shapecheck.render.svg import (DEFS, STYLE, Scene, Scenes, layers_of, lookup_in,
                                   scene_data, scene_markup, shape_text)
from shapecheck.report import Diagnostic, Report, place

_ERRORS = """
document.documentElement.setAttribute("data-errors", "[]");
window.__shapecheckErrors = [];
(function () {
  function record(message) {
    window.__shapecheckErrors.push(String(message));
    document.documentElement.setAttribute("data-errors",
      JSON.stringify(window.__shapecheckErrors));
  }
  window.addEventListener("error", function (e) {
    record((e.message || "error") + (e.lineno ? " (line " + e.lineno + ")" : ""));
  });
  window.addEventListener("unhandledrejection", function (e) {
    record("unhandled rejection: " + e.reason);
  });
  var original = console.error;
  console.error = function () {
    record(Array.prototype.join.call(arguments, " "));
    return original.apply(console, arguments);
  };
})();
"""


def _asset(name: str) -> str:
    return resources.files("shapecheck.render").joinpath("assets", name).read_text("utf-8")


def _inline(text: str) -> str:
    """An asset inside ``<script>``/``<style>``: it must not close the element."""
    if "</" in text or "<!--" in text:
        raise ValueError("an inlined asset may not contain '</' or '<!--'")
    return text


def _json(data: object) -> str:
    """JSON inside ``<script type="application/json">``: no ``<`` at all."""
    return json.dumps(data, separators=(",", ":")).replace("<", "\\u003c")


_TICK = re.compile(r"`([^`]+)`")


def _prose(text: str) -> str:
    return _TICK.sub(lambda m: f"<code>{m.group(1)}</code>", escape(text))


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _finding(i: int, d: Diagnostic, tab: int, base: str | None) -> str:
    where = ""
    if d.path:
        shown = d.path if d.path != base else os.path.basename(d.path)
        where = place(shown, d.line, d.cell)
    parts = [f'<li class="finding {escape(d.severity)}{" static" if tab < 0 else ""}" '
             f'data-finding="{i}">',
             '<div class="head">'
             f'<span class="code">{escape(d.code)}</span>'
             f'<span class="rule">{escape(d.name or "")} · {escape(d.severity)}</span>'
             f'<span class="where">{escape(where)}</span></div>']
    parts.append(f'<div class="msg">{_prose(d.message)}</div>')
    if d.shapes:
        rows = "".join(f"<dt>{escape(str(k))}</dt><dd>"
                       f"{escape(shape_text(v) if isinstance(v, list) else str(v))}</dd>"
                       for k, v in d.shapes.items())
        parts.append(f'<dl class="shapes">{rows}</dl>')
    if d.hint:
        parts.append(f'<div class="hint">hint: {_prose(d.hint)}</div>')
    extra = []
    at = [f"layer <code>{escape(d.layer)}</code>"] if d.layer else []
    at += [f"model <code>{escape(d.model)}</code>"] if d.model else []
    if at:
        extra.append(" in ".join(at))
    if d.follows:
        extra.append(f"follows {escape(d.follows)}")
    for r in d.related:
        layer = f"<code>{escape(r.layer)}</code> at " if r.layer else ""
        extra.append(f"{escape(r.message)}: {layer}{escape(r.where)}")
    if d.also_in:
        extra.append("also in " + ", ".join(f"<code>{escape(m)}</code>" for m in d.also_in))
    if d.data:
        extra.append(f"shown by {_prose(d.data)}")
    if d.confirmed is not None:
        extra.append("seen when executed" if d.confirmed else "not seen when executed")
    if d.run:
        extra.append(_prose(d.run))
    if d.source and d.line:
        extra.append(f"<code>{escape(d.source.strip())}</code>")
    parts += [f'<div class="extra">{x}</div>' for x in extra]
    parts.append("</li>")
    return "".join(parts)


def render(report: Report) -> str:
    """The page for ``report``."""
    builder = Scenes(embed=True)
    tabs: list[dict] = []
    canvases: list[str] = []
    tab_of: dict[tuple[int, str], int] = {}
    root_scene: dict[int, Scene] = {}
    many_files = len(report.files) > 1
    for k, f in enumerate(report.files):
        for model in f.models:
            t = len(tabs)
            tab_of.setdefault((k, model.name), t)
            own = [d for d in f.diagnostics if d.model == model.name]
            errors = sum(d.severity == "error" for d in own)
            warnings = sum(d.severity == "warning" for d in own)
            label = (f"{os.path.basename(f.path or '')} › " if many_files else "") + model.name
            if model.layers:
                scene = builder.build(model, f.diagnostics, lookup_in(report, k))
                root_scene[t] = scene
                canvases.append(
                    f'<div class="canvas" data-tab="{t}" hidden>'
                    f'<svg class="sc-graph" xmlns="http://www.w3.org/2000/svg">'
                    f'<g class="viewport">{scene_markup(scene)}</g></svg></div>')
                sid = scene.uid
            else:
                notes = "".join(f"<p>{_prose(n.message)}</p>" for n in model.notes)
                canvases.append(f'<div class="canvas" data-tab="{t}" hidden><div class="empty">'
                                f'<p>model <code>{escape(model.name)}</code> ({escape(model.kind)})'
                                f' has no layer graph to draw.</p>{notes}</div></div>')
                sid = None
            tabs.append({"scene": sid, "title": label, "file": k, "model": model.name})
            count = ""
            if errors or warnings:
                kind = "error" if errors else "warning"
                count = f'<span class="count {kind}">{errors or warnings}</span>'
            tabs[-1]["button"] = (f'<button type="button" title="{escape(f.path or "")}">'
                                  f'{escape(label)}{count}</button>')

    findings: list[dict] = []
    aside: list[str] = []
    for k, f in enumerate(report.files):
        status = f.status + (f" ({f.worst})" if f.status == "findings" and f.worst else "")
        aside.append(f'<div class="file">{escape(f.path or "model")}'
                     f'<span class="status">{escape(status)}</span></div>')
        if f.error is not None:
            aside.append(f'<div class="failed"><b>{escape(f.error.kind)}</b>: '
                         f'{_prose(f.error.text)}</div>')
        for m in f.unchecked_models:
            aside.append(f'<p class="none">model <code>{escape(m.name)}</code> not checked: '
                         f'{_prose(m.reason or "its graph could not be read")}</p>')
        if f.no_model:
            aside.append('<p class="none">the script built no Keras model: nothing was '
                         'checked</p>')
        if not f.diagnostics:
            if f.status == "clean":
                aside.append('<p class="none">no findings</p>')
            continue
        aside.append('<ol class="findings">')
        for d in f.diagnostics:
            t = tab_of.get((k, d.model), -1) if d.model else -1
            nodes = layers_of(root_scene[t].model, d) if t in root_scene else []
            findings.append({"tab": t, "nodes": nodes, "layer": d.layer, "code": d.code,
                             "severity": d.severity})
            aside.append(_finding(len(findings) - 1, d, t, f.path))
        aside.append("</ol>")

    all_d = report.diagnostics
    errors = sum(d.severity == "error" for d in all_d)
    warnings = sum(d.severity == "warning" for d in all_d)
    models = sum(len(f.models) for f in report.files)
    told = report.summary()
    summary = (f'<b>{escape(told.status)}</b> · '
               f'{_plural(len(report.files), "file")} · {_plural(models, "model")} · '
               f'<span class="{"errors" if errors else ""}">{_plural(errors, "error")}</span> · '
               f'<span class="{"warnings" if warnings else ""}">'
               f'{_plural(warnings, "warning")}</span>')
    for count, one, many in ((told.infos, "info", "infos"),
                             (told.unchecked_models, "model not checked",
                              "models not checked"),
                             (told.no_model, "script without a model",
                              "scripts without a model"),
                             (told.failed, "file not checked", "files not checked")):
        if count:
            summary += f' · {count} {escape(one if count == 1 else many)}'
    data = {"scenes": {s.uid: scene_data(s) for s in builder.all}, "tabs":
            [{k: v for k, v in t.items() if k != "button"} for t in tabs], "findings": findings}
    title = ", ".join(os.path.basename(f.path) for f in report.files if f.path) or "model"
    if not tabs:
        canvases.append('<div class="canvas" data-tab="0"><div class="empty">'
                        'No model was built: nothing to draw.</div></div>')
    return "".join([
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>shapecheck: {escape(title)}</title>",
        f"<script>{_inline(_ERRORS)}</script>",
        f"<style>{_inline(_asset('report.css'))}{_inline(STYLE)}</style></head>",
        '<body data-ready="0">',
        '<svg width="0" height="0" style="position:absolute" aria-hidden="true">',
        f"<defs>{DEFS}</defs></svg>",
        f'<header><h1>shapecheck</h1><span class="summary">{summary}</span>',
        f'<nav class="tabs">{"".join(t["button"] for t in tabs)}</nav></header>',
        '<main><section id="stage"><div class="toolbar">',
        '<button type="button" data-act="fit" title="fit (f)">Fit</button>',
        '<button type="button" data-act="in" title="zoom in (+)">+</button>',
        '<button type="button" data-act="out" title="zoom out (-)">&#8722;</button>',
        '<button type="button" data-act="open">Open nested</button>',
        '<button type="button" data-act="close">Close nested</button>',
        '<span>drag to pan · wheel to zoom · click a nested model to open it</span>',
        '<span class="legend"><span><span class="swatch error"></span>error</span>',
        '<span><span class="swatch warning"></span>warning</span></span></div>',
        "".join(canvases), "</section>",
        f'<aside><h2>Findings</h2>{"".join(aside)}</aside></main>',
        '<script type="application/json" id="sc-data">',
        _json(data), "</script>",
        f"<script>{_inline(_asset('report.js'))}</script>",
        "</body></html>\n"])
