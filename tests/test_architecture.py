"""The package's layout: no import cycle, no private name taken across modules, and
every import going the way the data flows.

Data flows down, and so do imports: a layer imports only layers listed below it, less
those the table ``FORBIDDEN_TABLE`` names (data never imports rules, verify never rules)::

    faces    shapecheck (the API), api, cli, __main__, pytest_plugin, options, oracle, child,
             magics (the IPython extension)
    script   run a user's script under capture, in a child process
    graph    one model's checks: graph, shapes, rules, run
    data     the data fed to a model, sampled and bound to its dims
    rules    the diagnostic rules, their catalog and engine
    verify   execute a model for real; Keras as the oracle
    shapes   dims, the graph of layer calls, shape inference, per-layer shape rules
    report   plain data; version: the tool's version
    render   turns a report (and a rule catalog handed to it) into text

Every import is counted: at module level, inside a function, under ``TYPE_CHECKING``.
``from shapecheck import X`` and ``import shapecheck`` import ``shapecheck/__init__.py``
(the API face), which imports what it re-exports.
"""

from __future__ import annotations

import ast
from pathlib import Path

import networkx as nx

PACKAGE = Path(__file__).resolve().parent.parent / "shapecheck"

# module (or package prefix) -> layer; the longest prefix wins
LAYERS: dict[str, str] = {
    "shapecheck": "faces",
    "shapecheck.__main__": "faces",
    "shapecheck.api": "faces",
    "shapecheck.cli": "faces",
    "shapecheck.pytest_plugin": "faces",
    "shapecheck.options": "faces",
    "shapecheck.oracle": "faces",
    "shapecheck.child": "faces",
    "shapecheck.magics": "faces",
    "shapecheck.script": "script",
    "shapecheck.graph": "graph",
    "shapecheck.data": "data",
    "shapecheck.rules": "rules",
    "shapecheck.verify": "verify",
    "shapecheck.shapes": "shapes",
    "shapecheck.report": "report",
    "shapecheck.version": "report",
    "shapecheck.render": "render",
}

# Which layers a layer may not import, read as "importer: never these".
FORBIDDEN_TABLE = """
    script:  faces
    graph:   faces script
    data:    faces script graph rules verify render
    rules:   faces script graph render
    verify:  faces script graph rules render
    shapes:  faces script graph data rules verify render
    report:  faces script graph data rules verify shapes render
    render:  faces script graph data rules verify shapes
"""
FORBIDDEN: dict[str, set[str]] = {
    line.split(":")[0].strip(): set(line.split(":")[1].split())
    for line in FORBIDDEN_TABLE.strip().splitlines()
}
# report.py and version.py import nothing of ours at all
LEAVES = {"shapecheck.report", "shapecheck.version"}

# Known violations still to remove (empty when the layout is done).
# allow-list
ALLOWED: set[tuple[str, str]] = set()
ALLOWED_PRIVATE: set[tuple[str, str, str]] = set()
ALLOWED_CYCLES: list[set[str]] = []
LONG: set[str] = set()
# end allow-list


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


MODULES: dict[str, Path] = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports() -> tuple[nx.DiGraph, list[tuple[str, str, str]]]:
    """The import graph of the package (every import statement anywhere in a module),
    and the private names taken from another module: (importer, module, name)."""
    graph = nx.DiGraph()
    graph.add_nodes_from(MODULES)
    private: list[tuple[str, str, str]] = []
    for name, path in MODULES.items():
        is_package = path.name == "__init__.py"
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            targets: list[tuple[str, str | None]] = []  # (module, imported name)
            if isinstance(node, ast.Import):
                targets = [(alias.name, None) for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = name.split(".") if is_package else name.split(".")[:-1]
                    base = base[:len(base) - node.level + 1]
                    source = ".".join(base + ([node.module] if node.module else []))
                else:
                    source = node.module or ""
                for alias in node.names:
                    sub = f"{source}.{alias.name}"
                    targets.append((sub, None) if sub in MODULES else (source, alias.name))
            for target, imported in targets:
                if target != "shapecheck" and not target.startswith("shapecheck."):
                    continue
                while target not in MODULES:  # `import shapecheck.a.b` of a package's name
                    target = target.rsplit(".", 1)[0]
                if target != name:
                    graph.add_edge(name, target)
                if (imported and imported.startswith("_") and not imported.startswith("__")
                        and target != name):
                    private.append((name, target, imported))
        private += private_attributes(name, path)
    return graph, private


def private_attributes(name: str, path: Path) -> list[tuple[str, str, str]]:
    """``module._name`` read in ``path`` of a module of ours it imported by name
    (``from shapecheck.script import capture`` then ``capture._ACTIVE``)."""
    tree = ast.parse(path.read_text(), str(path))
    bound: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and not node.level:
            for alias in node.names:
                if f"{node.module}.{alias.name}" in MODULES:
                    bound[alias.asname or alias.name] = f"{node.module}.{alias.name}"
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.asname and alias.name in MODULES:
                    bound[alias.asname] = alias.name
    return [(name, bound[node.value.id], node.attr) for node in ast.walk(tree)
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
            and node.value.id in bound and bound[node.value.id] != name
            and node.attr.startswith("_") and not node.attr.startswith("__")]


def layer(module: str) -> str:
    best = max((p for p in LAYERS if module == p or module.startswith(p + ".")), key=len,
               default=None)
    assert best is not None, f"{module} is in no layer: add it to LAYERS"
    return LAYERS[best]


GRAPH, PRIVATE = imports()


def test_every_module_has_a_layer() -> None:
    for module in MODULES:
        layer(module)


def test_no_import_cycle() -> None:
    cycles = [c for c in nx.strongly_connected_components(GRAPH) if len(c) > 1]
    unexpected = [sorted(c) for c in cycles if c not in ALLOWED_CYCLES]
    assert not unexpected, f"import cycles: {unexpected}"
    gone = [sorted(c) for c in ALLOWED_CYCLES if c not in cycles]
    assert not gone, f"cycles gone: drop them from ALLOWED_CYCLES: {gone}"


def test_no_private_name_across_modules() -> None:
    unexpected = sorted(set(PRIVATE) - ALLOWED_PRIVATE)
    assert not unexpected, f"private names imported from another module: {unexpected}"
    gone = sorted(ALLOWED_PRIVATE - set(PRIVATE))
    assert not gone, f"gone: drop them from ALLOWED_PRIVATE: {gone}"


def test_imports_follow_the_flow() -> None:
    wrong = set()
    for importer, imported in GRAPH.edges:
        if importer in LEAVES:
            wrong.add((importer, imported))
        elif layer(imported) in FORBIDDEN.get(layer(importer), set()):
            wrong.add((importer, imported))
    unexpected = sorted(wrong - ALLOWED)
    assert not unexpected, "imports against the flow: " + "; ".join(
        f"{a} ({layer(a)}) -> {b} ({layer(b)})" for a, b in unexpected)
    gone = sorted(ALLOWED - wrong)
    assert not gone, f"gone: drop them from ALLOWED: {gone}"


MAX_LINES = 600


def test_modules_are_short_and_say_what_they_hold() -> None:
    long = {m for m, p in MODULES.items() if len(p.read_text().splitlines()) > MAX_LINES}
    assert long <= LONG, f"over {MAX_LINES} lines: split by job: {sorted(long - LONG)}"
    assert LONG <= long, f"short now: drop from LONG: {sorted(LONG - long)}"
    for m, p in MODULES.items():
        doc = ast.get_docstring(ast.parse(p.read_text()))
        assert doc and doc.strip(), f"{m} has no docstring saying what it holds"


def test_the_api_face_sits_on_top() -> None:
    """Nothing below the faces imports the package itself."""
    below = sorted(m for m in GRAPH.predecessors("shapecheck")
                   if layer(m) != "faces" and (m, "shapecheck") not in ALLOWED)
    assert not below, f"import shapecheck/__init__.py from below the faces: {below}"
