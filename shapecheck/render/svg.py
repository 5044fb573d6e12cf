"""The layer graph of each model as SVG: the picture both ``--svg`` and ``--html`` show.

A *scene* is one model laid out (:mod:`shapecheck.render.layout`) with the
report's findings marked on it: the finding's layer red (error) or amber
(warning), the edges into it and the layers that feed it, and the path from
any layer the message names (``input_layer`` in "47 for `input_layer`") down
to it.  Nothing here computes a finding: the marks come from the report.
"""

from __future__ import annotations

import re
import textwrap
from dataclasses import dataclass, field
from html import escape
from typing import Callable

from shapecheck.render.layout import Drawing, Edge, layout, path_data
from shapecheck.report import Diagnostic, ModelEntry, Report

NAME_CHAR = 7.3  # 12px bold monospace
CLASS_CHAR = 6.65  # 11px monospace
LABEL_CHAR = 6.35  # 10.5px monospace
NODE_HEIGHT = 40.0
NODE_MIN_WIDTH = 76.0
NAME_MAX = 36
LABEL_MAX = 44
NEST_PAD = 6.0  # an expanded nested model: its graph inside the box
NEST_HEAD = 40.0
MAX_EMBEDDED = 4000  # layers of nested models drawn inside one model, at most
SEVERITIES = ("error", "warning", "info")
FONT = '"DejaVu Sans Mono", Menlo, Consolas, "Liberation Mono", monospace'

STYLE = f"""
.sc-graph text{{font-family:{FONT}}}
.sc-graph .box{{fill:#fff;stroke:#8a94a6;stroke-width:1.2}}
.sc-graph .name{{font-size:12px;font-weight:700;fill:#1f2937;text-anchor:middle}}
.sc-graph .cls{{font-size:11px;fill:#6b7280;text-anchor:middle}}
.sc-graph .input>.box{{fill:#eef5ff}}
.sc-graph .nested>.box{{fill:#f6f3ff;stroke:#7c3aed;stroke-dasharray:5 3}}
.sc-graph .toggle{{font-size:13px;font-weight:700;fill:#7c3aed;cursor:pointer}}
.sc-graph .edge{{fill:none;stroke:#9aa3b2;stroke-width:1.3;marker-end:url(#sc-arrow)}}
.sc-graph .elabel{{font-size:10.5px;fill:#4b5563;paint-order:stroke;stroke:#fff;
  stroke-width:3px;stroke-linejoin:round}}
.sc-graph .sev-error>.box{{fill:#fde7e7;stroke:#d32f2f;stroke-width:2.6}}
.sc-graph .sev-warning>.box{{fill:#fff3df;stroke:#e69500;stroke-width:2.6}}
.sc-graph .sev-info>.box{{fill:#eaf2ff;stroke:#2563eb;stroke-width:2}}
.sc-graph .feeds-error:not(.sev-error)>.box{{stroke:#d32f2f;stroke-width:2;
  stroke-dasharray:6 3}}
.sc-graph .feeds-warning:not(.sev-error):not(.sev-warning)>.box{{stroke:#e69500;
  stroke-width:2;stroke-dasharray:6 3}}
.sc-graph .path-error:not(.sev-error):not(.feeds-error)>.box{{stroke:#ef9a9a;stroke-width:2}}
.sc-graph .path-warning:not(.sev-error):not(.sev-warning)>.box{{stroke:#f3c26b;
  stroke-width:2}}
.sc-graph .edge.path-warning{{stroke:#f3c26b;stroke-width:2.2;marker-end:url(#sc-arrow-warning)}}
.sc-graph .edge.path-error{{stroke:#ef9a9a;stroke-width:2.2;marker-end:url(#sc-arrow-error)}}
.sc-graph .edge.into-warning{{stroke:#e69500;stroke-width:2.8;marker-end:url(#sc-arrow-warning)}}
.sc-graph .edge.into-error{{stroke:#d32f2f;stroke-width:2.8;marker-end:url(#sc-arrow-error)}}
.sc-graph .elabel.into-warning{{fill:#9a5b00;font-weight:700}}
.sc-graph .elabel.into-error{{fill:#b71c1c;font-weight:700}}
.sc-graph .badge rect{{fill:#d32f2f}}
.sc-graph .badge.warning rect{{fill:#e69500}}
.sc-graph .badge.info rect{{fill:#2563eb}}
.sc-graph .badge text{{fill:#fff;font-size:10px;font-weight:700;text-anchor:middle}}
.sc-graph .title{{font-size:14px;font-weight:700;fill:#111827}}
.sc-graph .legend{{font-size:11.5px;fill:#374151}}
.sc-graph .legend.error{{fill:#b71c1c}}
.sc-graph .legend.warning{{fill:#9a5b00}}
"""

DEFS = "".join(
    f'<marker id="sc-arrow{suffix}" viewBox="0 0 10 10" refX="9" refY="5" '
    f'markerUnits="userSpaceOnUse" markerWidth="9" markerHeight="9" orient="auto">'
    f'<path d="M0,1 L9,5 L0,9 z" fill="{color}"/></marker>'
    for suffix, color in (("", "#9aa3b2"), ("-error", "#d32f2f"), ("-warning", "#e69500")))


def shape_text(shape: list) -> str:
    inner = ", ".join("?" if d is None else str(d) for d in shape)
    return f"({inner},)" if len(shape) == 1 else f"({inner})"


def clip(text: str, most: int) -> str:
    return text if len(text) <= most else text[:most - 1] + "…"


def _rank(severity: str) -> int:
    return SEVERITIES.index(severity) if severity in SEVERITIES else len(SEVERITIES)


_TICKED = re.compile(r"`([^`]+)`")


@dataclass
class Scene:
    """One model drawn: its layout, the marks from its findings, nested models inside."""

    uid: str
    model: ModelEntry
    drawing: Drawing
    edges: list[Edge]
    node_classes: list[set[str]]
    edge_classes: list[set[str]]
    label_classes: list[set[str]]
    label_text: list[str]
    badges: dict[int, tuple[str, str]]  # node -> (text, severity)
    findings: dict[int, list[Diagnostic]]
    nested: dict[int, "Scene"] = field(default_factory=dict)


def layers_of(model: ModelEntry, d: Diagnostic) -> list[int]:
    """The layers a finding is at: by name, narrowed by line when the layer is shared."""
    if d.layer is None:
        return []
    hits = [i for i, layer in enumerate(model.layers) if layer.name == d.layer]
    if len(hits) > 1 and d.line is not None:
        by_line = [i for i in hits if model.layers[i].line == d.line]
        hits = by_line or hits
    return hits


def graph_edges(model: ModelEntry) -> list[Edge]:
    """One edge per input tensor of each layer (``sources``; ``inputs`` in older reports)."""
    edges = []
    last: dict[str, int] = {}
    for i, layer in enumerate(model.layers):
        if layer.sources:
            for pos, (src, out) in enumerate(layer.sources):
                if 0 <= src < len(model.layers) and src != i:
                    edges.append(Edge(src, i, out, pos))
        else:
            for pos, name in enumerate(layer.inputs):
                if name in last and last[name] != i:
                    edges.append(Edge(last[name], i, 0, pos))
        last[layer.name] = i
    return edges


def node_size(name: str, cls: str) -> tuple[float, float]:
    width = max(len(clip(name, NAME_MAX)) * NAME_CHAR, len(cls) * CLASS_CHAR) + 22
    return max(width, NODE_MIN_WIDTH), NODE_HEIGHT


class Scenes:
    """Builds the scenes of a report, numbering them for unique element ids."""

    def __init__(self, embed: bool = True) -> None:
        self.count = 0
        self.embed = embed
        self.all: list[Scene] = []

    def build(self, model: ModelEntry, findings: list[Diagnostic],
              lookup: Callable[[str], ModelEntry | None] = lambda name: None,
              ancestors: tuple[str, ...] = (), budget: list[int] | None = None) -> Scene:
        uid = f"s{self.count}"
        self.count += 1
        layers = model.layers
        edges = graph_edges(model)
        consumers: dict[int, set[int]] = {}
        for e in edges:
            consumers.setdefault(e.src, set()).add(e.out)
        texts: dict[tuple[int, int], str] = {}
        for i, layer in enumerate(layers):
            outs = consumers.get(i) or set(range(len(layer.output_shapes)))  # outputs: all
            for o in sorted(outs):
                if o < len(layer.output_shapes):
                    many = len(layer.output_shapes) > 1
                    texts[(i, o)] = clip((f"[{o}] " if many else "")
                                         + shape_text(layer.output_shapes[o]), LABEL_MAX)
        sizes = [node_size(layer.name, layer.cls) for layer in layers]
        drawing = layout(sizes, edges,
                         labels={k: len(t) * LABEL_CHAR for k, t in texts.items()})

        node_classes = [{"node"} for _ in layers]
        for i, layer in enumerate(layers):
            if layer.cls == "InputLayer":
                node_classes[i].add("input")
            if layer.model:
                node_classes[i].add("nested")
        edge_classes: list[set[str]] = [{"edge"} for _ in edges]
        label_classes: list[set[str]] = [{"elabel"} for _ in drawing.labels]
        label_text = [texts[(lb.node, lb.out)] for lb in drawing.labels]
        own = [d for d in findings if d.model == model.name]
        on_node: dict[int, list[Diagnostic]] = {}
        for d in own:
            for i in layers_of(model, d):
                on_node.setdefault(i, []).append(d)
        self._mark(model, edges, drawing, on_node, node_classes, edge_classes, label_classes)
        badges = {}
        for i, ds in on_node.items():
            ds = sorted(ds, key=lambda d: _rank(d.severity))
            codes = list(dict.fromkeys(d.code for d in ds))
            text = codes[0] + (f" +{len(codes) - 1}" if len(codes) > 1 else "")
            badges[i] = (text, ds[0].severity)
        scene = Scene(uid, model, drawing, edges, node_classes, edge_classes, label_classes,
                      label_text, badges, on_node)
        self.all.append(scene)
        if self.embed:
            budget = budget if budget is not None else [MAX_EMBEDDED]
            for i, layer in enumerate(layers):
                inner = lookup(layer.model) if layer.model else None
                if (inner is None or not inner.layers or inner.name in ancestors
                        or inner.name == model.name or len(inner.layers) > budget[0]):
                    continue
                budget[0] -= len(inner.layers)
                scene.nested[i] = self.build(inner, findings, lookup,
                                             ancestors + (model.name,), budget)
                node_classes[i].add("expandable")
        return scene

    @staticmethod
    def _mark(model: ModelEntry, edges: list[Edge], drawing: Drawing,
              on_node: dict[int, list[Diagnostic]], node_classes: list[set[str]],
              edge_classes: list[set[str]], label_classes: list[set[str]]) -> None:
        pred: dict[int, list[int]] = {}
        succ: dict[int, list[int]] = {}
        for e in edges:
            pred.setdefault(e.dst, []).append(e.src)
            succ.setdefault(e.src, []).append(e.dst)
        names: dict[str, list[int]] = {}
        for i, layer in enumerate(model.layers):
            names.setdefault(layer.name, []).append(i)
        label_at = {(lb.node, lb.out): k for k, lb in enumerate(drawing.labels)}
        for i, ds in on_node.items():  # where classes meet, the style sheet ranks them
            sev = min((d.severity for d in ds), key=_rank)
            node_classes[i] |= {f"sev-{sev}"}
            # the path from each layer the finding names down to its layer
            above, stack = set(), [i]
            while stack:
                v = stack.pop()
                for p in pred.get(v, ()):
                    if p not in above:
                        above.add(p)
                        stack.append(p)
            named = {j for d in ds for t in _TICKED.findall(f"{d.message} {d.hint or ''}")
                     for j in names.get(t, ()) if j in above}
            on_path, stack = set(named), list(named)
            while stack:
                v = stack.pop()
                for s in succ.get(v, ()):
                    if s in above and s not in on_path:
                        on_path.add(s)
                        stack.append(s)
            for v in on_path:
                node_classes[v].add(f"path-{sev}")
            for k, e in enumerate(edges):
                if e.dst == i:
                    edge_classes[k].add(f"into-{sev}")
                    node_classes[e.src].add(f"feeds-{sev}")
                    if (e.src, e.out) in label_at:
                        label_classes[label_at[(e.src, e.out)]].add(f"into-{sev}")
                elif e.src in on_path and (e.dst in on_path or e.dst == i):
                    edge_classes[k].add(f"path-{sev}")


def _node_title(scene: Scene, i: int) -> str:
    layer = scene.model.layers[i]
    where = layer.where
    lines = [f"{layer.name} ({layer.cls})"] + ([where] if where else [])
    lines += [f"output {k}: {shape_text(s)}" if len(layer.output_shapes) > 1
              else f"output: {shape_text(s)}" for k, s in enumerate(layer.output_shapes)]
    if layer.model:
        lines.append(f"nested model `{layer.model}`")
    lines += [f"{d.code} {d.severity}: {d.message}" for d in scene.findings.get(i, ())]
    return "\n".join(lines)


def scene_markup(scene: Scene) -> str:
    """The scene's SVG elements (edges, labels, nodes), in its own coordinates."""
    d = scene.drawing
    out: list[str] = []
    layers = scene.model.layers
    for k, route in enumerate(d.routes):
        e = route.edge
        title = (f"{layers[e.src].name} → {layers[e.dst].name}: "
                 f"{shape_text(layers[e.src].output_shapes[e.out])}"
                 if e.out < len(layers[e.src].output_shapes) else "")
        out.append(f'<path id="{scene.uid}-e{k}" class="{" ".join(sorted(scene.edge_classes[k]))}"'
                   f' d="{path_data(route.points)}"><title>{escape(title)}</title></path>')
    for k, lb in enumerate(d.labels):
        x = d.x[lb.node] + lb.dx + 5
        y = d.y[lb.node] + d.h[lb.node] + 12 + 13 * lb.row
        out.append(f'<text id="{scene.uid}-l{k}" class="{" ".join(sorted(scene.label_classes[k]))}"'
                   f' x="{x:.1f}" y="{y:.1f}">{escape(scene.label_text[k])}</text>')
    for i, layer in enumerate(layers):
        w, h = d.w[i], d.h[i]
        classes = " ".join(sorted(scene.node_classes[i]))
        out.append(f'<g id="{scene.uid}-n{i}" class="{classes}" data-layer="{escape(layer.name)}"'
                   f' data-line="{layer.line or ""}"'
                   f' transform="translate({d.x[i] - w / 2:.1f},{d.y[i]:.1f})">'
                   f'<title>{escape(_node_title(scene, i))}</title>'
                   f'<rect class="box" width="{w:.1f}" height="{h:.1f}" rx="6"/>'
                   f'<text class="name" x="{w / 2:.1f}" y="17">'
                   f'{escape(clip(layer.name, NAME_MAX))}</text>'
                   f'<text class="cls" x="{w / 2:.1f}" y="32">{escape(layer.cls)}</text>')
        if i in scene.nested:
            out.append('<text class="toggle" x="7" y="17">+</text>')
        if i in scene.badges:
            text, sev = scene.badges[i]
            bw = len(text) * 6.4 + 10
            out.append(f'<g class="badge {sev}" data-bw="{bw:.1f}" '
                       f'transform="translate({w - bw + 6:.1f},-9)">'
                       f'<rect width="{bw:.1f}" height="15" rx="7.5"/>'
                       f'<text x="{bw / 2:.1f}" y="11">{escape(text)}</text></g>')
        if i in scene.nested:
            out.append(f'<g class="inner" transform="translate({NEST_PAD},{NEST_HEAD})" '
                       f'display="none">{scene_markup(scene.nested[i])}</g>')
        out.append("</g>")
    return "".join(out)


def scene_data(scene: Scene) -> dict:
    """What the page's script needs to lay the scene out again when a nested model opens."""
    d = scene.drawing
    return {
        "id": scene.uid,
        "nodes": [[round(d.x[i], 1), d.rank[i], round(d.w[i], 1), round(d.h[i], 1)]
                  for i in range(len(d.x))],
        "nested": {str(i): s.uid for i, s in scene.nested.items()},
        "top": round(d.rank_top[0], 1) if d.rank_top else 0.0,
        "rankHeight": [round(h, 1) for h in d.rank_height],
        "rankGap": [round(g, 1) for g in d.rank_gap],
        "edges": [[r.edge.src, r.edge.dst, round(r.out_dx, 1), round(r.in_dx, 1),
                   [[round(x, 1), rk] for x, rk in r.dummies]] for r in d.routes],
        "labels": [[lb.node, round(lb.dx, 1), lb.row] for lb in d.labels],
        "width": round(d.width, 1), "height": round(d.height, 1),
    }


def model_findings(report: Report) -> list[tuple[int, ModelEntry, list[Diagnostic]]]:
    """(file index, model, that file's findings) for every model of the report."""
    return [(k, m, f.diagnostics) for k, f in enumerate(report.files) for m in f.models]


def lookup_in(report: Report, k: int) -> Callable[[str], ModelEntry | None]:
    by_name = {m.name: m for m in report.files[k].models}
    return by_name.get


def title_of(path: str | None, model: ModelEntry) -> str:
    return f"{path + ' · ' if path else ''}{model.name} ({model.kind})"


def render(report: Report) -> str:
    """One SVG document: every model's graph, stacked, each under its name, its findings
    listed below it; nested models are drawn closed."""
    scenes = Scenes(embed=False)
    parts: list[str] = []
    y = 12.0
    width = 480.0
    for k, model, findings in model_findings(report):
        if not model.layers:
            continue
        scene = scenes.build(model, findings)
        title = title_of(report.files[k].path, model)
        parts.append(f'<text class="title" x="16" y="{y + 16:.1f}">{escape(title)}</text>')
        parts.append(f'<g transform="translate(0,{y + 24:.1f})">{scene_markup(scene)}</g>')
        y += 24 + scene.drawing.height
        width = max(width, scene.drawing.width, len(title) * 8.6 + 32)
        own = [d for d in findings if d.model == model.name]
        for d in own:
            where = f"line {d.line} " if d.line else ""
            at = f"`{d.layer}` " if d.layer else ""
            text = f"{d.code} {d.severity} {where}{at}— {d.message}"
            for line in textwrap.wrap(text, max(60, int(width / 7.0)), subsequent_indent="  "):
                parts.append(f'<text class="legend {d.severity}" x="16" y="{y + 4:.1f}">'
                             f'{escape(line)}</text>')
                y += 16
        y += 20
    if not parts:
        parts.append('<text class="title" x="16" y="28">no model with layers to draw</text>')
        y = 48
    return (f'<svg xmlns="http://www.w3.org/2000/svg" class="sc-graph" width="{width:.0f}" '
            f'height="{y:.0f}" viewBox="0 0 {width:.0f} {y:.0f}">'
            f'<style>{STYLE}</style><defs>{DEFS}</defs>'
            f'<rect width="100%" height="100%" fill="#fff"/>{"".join(parts)}</svg>\n')
