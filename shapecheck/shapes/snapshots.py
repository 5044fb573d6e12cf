"""Shape snapshots: one model's symbolic shape table as stable text, and what changed.

A snapshot holds one line per layer (its name, class and output shapes) and one per
named dim (where it comes from, the smallest size the model runs at)::

    conv: Conv1D -> (batch, T, 64)
    dense: Dense -> (batch, T, 10)
    dim T: axis 1 of input `frames`; needs T >= 3 (`conv`)

Lines starting with ``#`` are comments, left out of the comparison.  Keras names an
unnamed layer after its class and a process-wide counter (``dense_7``): such names are
numbered again within the model, in order (``dense``, ``dense_1``), here and in the
dims named after them (``T_input_layer_3``), so a snapshot does not depend on what the
process built before.  :func:`compare` says which layers and dims changed, with both
shapes and the axes that differ marked; :func:`settle` reads, writes and compares the
file.  Nothing here reads a Keras model: the text is made from a report's model entry.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SUFFIX = ".txt"
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_AUTO_MODEL = re.compile(r"(functional|sequential)(_\d+)?\Z")


def snake_case(name: str) -> str:
    """A class name as Keras names its instances (``Conv1D`` -> ``conv1d``)."""
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


def canonical_names(layers: list[tuple[str, str]]) -> dict[str, str]:
    """``(name, class)`` of each layer in order -> the names Keras would give the
    unnamed ones in a fresh process (only names that change are returned)."""
    auto = [(n, snake_case(c)) for n, c in layers
            if re.fullmatch(re.escape(snake_case(c)) + r"(_\d+)?", n)]
    taken = {n for n, _ in layers} - {n for n, _ in auto}
    count: dict[str, int] = {}
    out: dict[str, str] = {}
    for name, base in auto:
        while True:
            k = count.get(base, 0)
            count[base] = k + 1
            new = base if k == 0 else f"{base}_{k}"
            if new not in taken:
                break
        taken.add(new)
        if new != name:
            out[name] = new
    return out


def renamer(mapping: dict[str, str]) -> Any:
    """A function renaming, in a text, each identifier in ``mapping`` and each one
    that ends with ``_`` and such a name (a dim named after its input)."""
    olds = sorted(mapping, key=len, reverse=True)

    def one(m: re.Match) -> str:
        word = m.group(0)
        if word in mapping:
            return mapping[word]
        for old in olds:
            if word.endswith("_" + old):
                return word[:-len(old)] + mapping[old]
        return word

    return lambda text: _IDENT.sub(one, text) if mapping else text


def _shape(shape: list) -> str:
    inner = ", ".join("?" if d is None else str(d) for d in shape)
    return f"({inner},)" if len(shape) == 1 else f"({inner})"


def snapshot_text(entry: Any) -> str:
    """A report's model entry as snapshot text (see the module's docstring)."""
    rename = renamer(canonical_names([(e.name, e.cls) for e in entry.layers]))
    model = "functional" if _AUTO_MODEL.match(entry.name) and entry.kind == "functional" \
        else "sequential" if _AUTO_MODEL.match(entry.name) else entry.name
    lines = [f"# shapecheck snapshot of model `{model}` ({entry.kind}): each layer's output",
             "# shapes, then the named dims; `pytest --shapecheck-update` rewrites it"]
    for e in entry.layers:
        shapes = ", ".join(_shape(s) for s in e.output_shapes) or "no output"
        lines.append(rename(f"{e.name}: {e.cls} -> {shapes}"))
    for name, origin in entry.dims.items():
        low = entry.minimums.get(name)
        need = f"; needs {name} >= {low['size']} (`{low['layer']}`)" if low else ""
        lines.append(rename(f"dim {name}: {origin}{need}"))
    return "\n".join(lines) + "\n"


# --- comparing two snapshots -------------------------------------------------------


@dataclass
class Parsed:
    layers: dict[str, tuple[str, str]]  # name -> (class, shapes)
    dims: dict[str, str]  # name -> origin


def parse(text: str) -> Parsed:
    """A snapshot's layers and dims, in order."""
    out = Parsed({}, {})
    for line in text.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        if " -> " in line and ": " in line:
            name, rest = line.split(": ", 1)
            cls, shapes = rest.split(" -> ", 1)
            out.layers[name] = (cls, shapes)
        elif line.startswith("dim ") and ": " in line:
            name, origin = line[4:].split(": ", 1)
            out.dims[name] = origin
    return out


def split_shapes(text: str) -> list[list[str]]:
    """``"(batch, T, 64), (batch, 64)"`` -> its shapes' axes (parentheses nest)."""
    shapes: list[list[str]] = []
    depth, axis = 0, ""
    for ch in text:
        if ch == "(" and depth == 0:
            shapes.append([])
            depth, axis = 1, ""
            continue
        if depth == 0:
            continue
        depth += ch == "("
        depth -= ch == ")"
        if depth == 0 or ch == "," and depth == 1:
            if axis.strip():
                shapes[-1].append(axis.strip())
            axis = ""
        else:
            axis += ch
    return shapes


def marked(was: str, now: str) -> list[str]:
    """Two shapes of a layer, one above the other, the axes that differ marked."""
    a, b = split_shapes(was), split_shapes(now)
    if len(a) != 1 or len(b) != 1 or len(a[0]) != len(b[0]):
        return [f"    was {was}", f"    now {now}"]
    last = len(a[0]) - 1
    was_axes = [x + ("," if i < last else "") for i, x in enumerate(a[0])]
    now_axes = [y + ("," if i < last else "") for i, y in enumerate(b[0])]
    widths = [max(len(x), len(y)) for x, y in zip(was_axes, now_axes)]
    row = lambda axes: " ".join(x.ljust(w) for x, w in zip(axes, widths)).rstrip()
    marks = " ".join(("^" * len(y) if x != y else "").ljust(w)
                     for x, y, w in zip(a[0], b[0], widths))
    return [f"    was ({row(was_axes)})", f"    now ({row(now_axes)})",
            ("         " + marks).rstrip()]


def compare(old: str, new: str) -> list[str]:
    """What changed from snapshot ``old`` to ``new``, one block per layer or dim
    (empty when nothing did): changed layers first, in the model's order."""
    a, b = parse(old), parse(new)
    lines: list[str] = []
    for name, (cls, shapes) in b.layers.items():
        if name in a.layers and a.layers[name] != (cls, shapes):
            was_cls, was = a.layers[name]
            what = cls if cls == was_cls else f"{was_cls} -> {cls}"
            lines += [f"  layer `{name}` ({what}):", *marked(was, shapes)]
    gone = [n for n in a.layers if n not in b.layers]
    new_layers = [n for n in b.layers if n not in a.layers]
    for name in gone:
        lines.append(f"  layer `{name}` ({a.layers[name][0]}): gone (was "
                     f"{a.layers[name][1]})")
    for name in new_layers:
        lines.append(f"  layer `{name}` ({b.layers[name][0]}): new, {b.layers[name][1]}")
    for name in {**a.dims, **b.dims}:
        was, now = a.dims.get(name), b.dims.get(name)
        if was != now:
            lines += ([f"  dim {name}: new, {now}"] if was is None else
                      [f"  dim {name}: gone (was {was})"] if now is None else
                      [f"  dim {name}:", f"    was {was}", f"    now {now}"])
    return lines


# --- the file ------------------------------------------------------------------------


@dataclass
class Outcome:
    """What :func:`settle` did: ``status`` is "same", "written" (there was none),
    "updated" or "changed" (the file kept, ``changes`` saying how it differs)."""

    status: str
    path: Path
    changes: list[str]


def settle(path: Path, text: str, *, update: bool) -> Outcome:
    """Compare ``text`` with the snapshot at ``path``: write it when there is none,
    rewrite it when ``update`` and it changed (comments alone never count)."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        return Outcome("written", path, [])
    old = path.read_text(encoding="utf-8")
    changes = compare(old, text)
    if not changes:
        return Outcome("same", path, [])
    if update:
        path.write_text(text, encoding="utf-8")
        return Outcome("updated", path, changes)
    return Outcome("changed", path, changes)


def file_name(test: str, index: int, name: str | None) -> str:
    """The snapshot file of a test's ``index``-th snapshot (or the one called ``name``):
    ``test_x.txt``, ``test_x.1.txt``, ``test_x.decoder.txt``; characters a file
    system refuses become ``_``."""
    stem = test if name is None and index == 0 else \
        f"{test}.{name if name is not None else index}"
    return re.sub(r'[<>:"/\\|?*\s]', "_", stem) + SUFFIX
