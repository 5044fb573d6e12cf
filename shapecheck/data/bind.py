"""Bind sampled data to a model's named dims: which sizes each batch gives them.

One :class:`Binding` per sampled batch: the arrays matched to the model's
inputs and outputs as Keras 3 matches them (by the structure given to
``keras.Model``: a dict by its keys, a flat list by position or by the inputs'
names, nesting by position; inputs that are not ``keras.Input`` tensors
included, under the names Keras gives their clones), the size
each named dim takes and where that size came from, and the conflicts — two
inputs giving ``batch`` different sizes.  Rules read bindings; nothing here
decides what is a finding.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from shapecheck.shapes import dims
from shapecheck.shapes.graph import key


@dataclass
class Match:
    """One array of a batch matched to a model input or output."""

    key: int  # the model tensor's key
    name: str  # its key in the dict given to keras.Model, else the input's or output's name
    label: str  # where the array sits in the data: "x", "x[1]", "y['label']"
    shape: tuple  # the model's symbolic shape
    info: Any  # feeds.ArrayInfo


@dataclass
class Conflict:
    """A named dim given two sizes by one batch."""

    dim: str
    sizes: list[tuple[int, str, str]]  # (size, label of the array, model input name)


@dataclass
class Binding:
    feed: Any  # feeds.Feed
    batch: Any  # feeds.Batch
    inputs: list[Match] = field(default_factory=list)
    targets: list[Match] = field(default_factory=list)
    values: dict[str, int] = field(default_factory=dict)  # dim -> size
    sources: dict[str, str] = field(default_factory=dict)  # dim -> "x[0] axis 1"
    conflicts: list[Conflict] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # structure: counts, names
    warnings: list[str] = field(default_factory=list)  # data Keras feeds, maybe not as meant
    rank_mismatches: list[Match] = field(default_factory=list)
    size_mismatches: list[tuple[Match, int, int, int]] = field(default_factory=list)
    # (match, axis, model size, data size)

    def describe(self, show: Any = None) -> str:
        """The data in words: "`fit` at model.py:62, generator item 1"."""
        path = show(self.feed.path) if show and self.feed.path else self.feed.path
        site = f" at {path}:{self.feed.line}" if path else ""
        role = f" ({self.feed.role} data)" if self.feed.role == "validation" else ""
        if self.feed.method == "call":
            return f"the model called on data{site} ({self.batch.label})"
        return f"`{self.feed.method}`{site}{role}, {self.batch.label}"


def output_names(ctx: Any) -> list[str]:
    """The name of each model output, in Keras's flat order, as Keras matches a dict of
    targets (or of losses) to it: the key of a dict of outputs, else the output layer's
    name (``model.output_names``)."""
    return [name for _, name in _slots(ctx, "output")]


@dataclass
class Leaf:
    """One array of the data (or None), and where it sits in it: "x['age']"."""

    label: str
    info: Any  # feeds.ArrayInfo, or None


def flatten(struct: Any, path: tuple = ()) -> list[tuple[tuple, Any]]:
    """``(path, leaf)`` of every leaf of nested lists, tuples and dicts, in the order of
    ``keras.tree.flatten`` (a dict's keys sorted)."""
    if isinstance(struct, dict):
        try:
            keys = sorted(struct)
        except TypeError:
            keys = list(struct)
        return [item for k in keys for item in flatten(struct[k], path + (k,))]
    if isinstance(struct, (list, tuple)):
        return [item for i, v in enumerate(struct) for item in flatten(v, path + (i,))]
    return [(path, struct)]


def _place(arg: str, path: tuple) -> str:
    """Where ``path`` leads in the data: "x['pair'][1]"."""
    return arg + "".join(f"[{k!r}]" if isinstance(k, str) else f"[{k}]" for k in path)


def _labelled(data: Any, arg: str, path: tuple = ()) -> Any:
    """``data`` with every leaf a :class:`Leaf` naming its place, the nesting kept."""
    if isinstance(data, dict):
        return {k: _labelled(v, arg, path + (k,)) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        items = [_labelled(v, arg, path + (i,)) for i, v in enumerate(data)]
        return items if isinstance(data, list) else tuple(items)
    return Leaf(_place(arg, path), data)


def structure(ctx: Any, what: str) -> Any:
    """The model's inputs (``what="input"``) or outputs as Keras keeps them: the
    KerasTensors in the list / tuple / dict nesting given to ``keras.Model``
    (``_inputs_struct``), or a flat list when the model keeps no structure."""
    inner = getattr(ctx.model, "_functional", None) or ctx.model
    keys = ctx.graph.inputs if what == "input" else ctx.graph.outputs
    attr = "_inputs_struct" if what == "input" else "_outputs_struct"
    struct = getattr(inner, attr, None)
    if struct is not None and [key(t) for _, t in flatten(struct)] == list(keys):
        return struct
    return [ctx.graph.tensors.get(k) for k in keys]


def _slots(ctx: Any, what: str) -> list[tuple[tuple, str]]:
    """``(path, name)`` of each flat input or output: a dict's key names what it holds;
    else an input's layer name, an output's layer name (``model.output_names``)."""
    flat = flatten(structure(ctx, what))
    names = [_op_name(t) for _, t in flat]  # the input layer's name, as the model lists it
    if what == "output":
        layers = list(getattr(ctx.model, "output_names", None) or [])
        names = layers if len(layers) == len(flat) else [_op_name(t) for _, t in flat]
    return [(path, path[-1] if path and isinstance(path[-1], str) else name)
            for (path, _), name in zip(flat, names)]


def _op_name(t: Any) -> str:
    hist = getattr(t, "_keras_history", None)
    op = getattr(hist, "operation", None)
    return getattr(op, "name", None) or getattr(t, "name", "?")


def _is_array(obj: Any) -> bool:
    return hasattr(obj, "shape") and hasattr(obj, "dtype")


def _quoted(names: Any) -> str:
    """Names (or a dict's keys) quoted: "'a', 'b'"."""
    return ", ".join(map(repr, names))


def _layout(struct: Any, name: Any) -> str:
    """A structure in words, each leaf by ``name(leaf)``: "{'pair': ['a', 'b'], 'c': 'c'}"."""
    if isinstance(struct, dict):
        return "{" + ", ".join(f"{k!r}: {_layout(v, name)}" for k, v in struct.items()) + "}"
    if isinstance(struct, (list, tuple)):
        inner = ", ".join(_layout(v, name) for v in struct)
        if isinstance(struct, list):
            return f"[{inner}]"
        return f"({inner},)" if len(struct) == 1 else f"({inner})"
    return name(struct)


def _shape_of(leaf: Any) -> str:
    """A leaf of the data in words: its shape."""
    info = leaf.info if isinstance(leaf, Leaf) else None
    return "None" if info is None else str(tuple(getattr(info, "shape", ())))


def _spec_names(model: Any) -> list[str | None] | None:
    """The names in the model's ``input_spec``, which ``Layer.__call__`` checks the data
    against first (a dict is picked by them); None when the model has no spec."""
    try:
        spec = model.input_spec
    except Exception:  # a model's own property failing: Keras would fail elsewhere
        return None
    if not spec:
        return None
    return [getattr(s, "name", None) for _, s in flatten(spec)]


def match_inputs(ctx: Any, x: Any) -> tuple[list[Match], list[str], list[str]]:
    """The arrays of ``x`` matched to the model's inputs as Keras 3 matches them:
    ``Layer.__call__``'s input-spec check, then ``Functional._standardize_inputs``, then
    the data flattened and fed to the flat inputs by position.  Returns the matches,
    what Keras refuses (errors) and what it feeds where the user may not expect
    (warnings)."""
    if x is None:
        return [], [], []
    struct = structure(ctx, "input")
    slots = _slots(ctx, "input")
    tensors = [t for _, t in flatten(struct)]
    names = [n for _, n in slots]
    data = _labelled(x, "x")
    spec = _spec_names(ctx.model)
    if spec is not None:  # Layer.__call__ -> input_spec.assert_input_compatibility
        if isinstance(data, dict) and all(spec):
            missing = [n for n in spec if n not in data]
            if missing:
                return [], [_missing_inputs(struct, missing, list(data))], []
            given = len(flatten([data[n] for n in spec]))
        else:
            given = len(flatten(data))
        if given != len(spec):
            return [], [_count_words("input", names, data, given)], []
    data, refused = _standardize(struct, data)
    if refused:
        return [], [refused], []
    leaves = [leaf for _, leaf in flatten(data)]
    if len(leaves) < len(tensors):
        return [], [_structure_words("input", struct, slots, data, leaves)], []
    out: list[Match] = []
    shifted = []
    places = {leaf.label for leaf in leaves if isinstance(leaf, Leaf)}
    for (path, name), t, leaf in zip(slots, tensors, leaves):
        if not isinstance(leaf, Leaf) or not _is_array(leaf.info):
            continue
        k = key(t)
        out.append(Match(k, name, leaf.label, ctx.tensor_shape(k) or (), leaf.info))
        own = _place("x", path)
        keyed = any(isinstance(step, str) for step in path)  # meant to go by key
        if keyed and own != leaf.label and own in places:
            shifted.append(f"input `{name}` gets {leaf.label}, not {own}")
    warnings = []
    if shifted:
        extra = sorted(places - {_place("x", p) for p, _ in slots})
        warnings.append(
            f"data key(s) {', '.join(extra)} match no input: Keras flattens a dict of data "
            "in sorted key order and feeds the model's inputs by position, so "
            + "; ".join(shifted))
    return out, [], warnings


def _standardize(struct: Any, data: Any) -> tuple[Any, str | None]:
    """``Functional._standardize_inputs``: a dict for a list of inputs picked by the
    inputs' names, one array wrapped for a list of one; None or what Keras refuses."""
    nested = (list, tuple, dict)
    if isinstance(struct, list) and len(struct) == 1 and isinstance(data, Leaf):
        return [data], None
    if isinstance(data, dict) and not isinstance(struct, dict):
        flat_list = isinstance(struct, (list, tuple)) and not any(isinstance(t, nested)
                                                                  for t in struct)
        if flat_list:
            wanted = [_tensor_name(t) for t in struct]
            missing = [n for n in wanted if n not in data]
            if missing:
                return None, _missing_inputs(struct, missing, list(data))
            return [data[n] for n in wanted], None
        if not isinstance(struct, nested):
            name = _tensor_name(struct)
            if name in data:
                return [data[name]], None
            return None, _missing_inputs(struct, [name], list(data))
        return None, (f"the model's inputs are nested, {_layout(struct, _quoted_name)}: Keras "
                      "takes a dict of data only for a flat list of inputs (by their names) "
                      "or for inputs given as a dict; the data is a dict with keys "
                      f"{_quoted(data)}: give the data nested as the inputs are")
    unsorted = isinstance(struct, dict) and list(struct) != sorted(struct)
    if unsorted and not isinstance(data, dict):
        given = "one array" if isinstance(data, Leaf) else f"a {type(data).__name__}"
        return None, (f"the model's inputs are a dict whose keys are not in sorted order "
                      f"({_quoted(struct)}): Keras takes data for them only as a dict by "
                      f"those keys, not as {given}")
    return data, None


def _tensor_name(t: Any) -> str:
    """A KerasTensor's name (an `Input`'s name; Keras matches a dict of data by it)."""
    return getattr(t, "name", None) or _op_name(t)


def _quoted_name(t: Any) -> str:
    """A KerasTensor's name, quoted."""
    return repr(_tensor_name(t))


def _missing_inputs(struct: Any, missing: list[str], keys: list) -> str:
    """No data for some inputs, in words that say how Keras matched the dict."""
    text = f"no data for input(s) {_quoted(missing)}; the data's keys are {_quoted(keys)}"
    if isinstance(struct, dict):
        return (text + " (Keras matches a dict of data to the keys of the dict of inputs "
                "given to `keras.Model`)")
    if any(str(n).endswith("CLONE") for n in missing):
        return (text + ": the model was built on tensors that are not `keras.Input`s, so "
                "Keras made inputs of those names and matches a dict of data by them; pass "
                "the arrays as a list in input order, or build the model on a dict of those "
                "tensors keyed as the data is (`keras.Model({key: tensor, ...}, ...)`)")
    return text


def _count_words(what: str, names: list[str], data: Any, given: int) -> str:
    """A count of arrays other than the model's, in words."""
    gives = "one array" if isinstance(data, Leaf) else f"{given}"
    return (f"the model has {len(names)} {what}(s) ({', '.join(names)}); the data gives "
            f"{gives}")


def _structure_words(what: str, struct: Any, slots: list[tuple[tuple, str]], data: Any,
                     leaves: list[Any]) -> str:
    """Fewer arrays than the nested inputs take: both structures, and what is missing."""
    arg = "x" if what == "input" else "y"
    have = {leaf.label for leaf in leaves if isinstance(leaf, Leaf)}
    missing = [_place(arg, p) for p, _ in slots if _place(arg, p) not in have]
    words = (f"the model's {what}s are {_layout(struct, _quoted_name)} ({len(slots)} "
             f"arrays); the data gives {len(leaves)}: {_layout(data, _shape_of)}")
    if missing and len(missing) <= len(slots) - len(leaves) + 1:
        words += f" (nothing at {', '.join(missing)})"
    return words


def match_targets(ctx: Any, y: Any) -> tuple[list[Match], list[str]]:
    """The arrays of ``y`` matched to the model's outputs as Keras 3's compiled loss
    matches them (``CompileLoss.call``): by the outputs' structure, a dict of targets
    by the keys of a dict of outputs or by the output layers' names for a list of
    outputs, anything else by position; the matches and what Keras refuses."""
    if y is None:
        return [], []
    struct = structure(ctx, "output")
    slots = _slots(ctx, "output")
    tensors = [t for _, t in flatten(struct)]
    names = [n for _, n in slots]
    pred = struct[0] if isinstance(struct, (list, tuple)) and len(struct) == 1 else struct
    data = _labelled(y, "y")
    nested = isinstance(pred, (list, tuple, dict))
    if isinstance(data, Leaf):
        if len(tensors) != 1:
            return [], [_count_words("output", names, data, 1)]
        leaves = [data]
    elif isinstance(data, dict):
        if isinstance(pred, dict):
            ours = [_key(p) for p, _ in flatten(pred)]
            theirs = [_key(p) for p, _ in flatten(data)]
            if set(ours) != set(theirs):
                return [], [_key_words([k for k in ours if k not in theirs],
                                       [k for k in theirs if k not in ours],
                                       "the keys of the dict of outputs")]
            leaves = [leaf for _, leaf in flatten(data)]  # the same paths: the same order
        elif nested:
            layers = list(getattr(ctx.model, "output_names", None) or names)
            if set(data) != set(layers):
                return [], [_key_words([repr(n) for n in layers if n not in data],
                                       [repr(k) for k in data if k not in layers],
                                       "the output layers' names")]
            leaves = [leaf for _, leaf in flatten([data[n] for n in layers])]
        else:
            return [], [f"the model has one output ({names[0]!r}), not a dict of outputs: "
                        "Keras takes its targets as an array, not as a dict (keys "
                        f"{_quoted(data)})"]
    else:
        leaves = [leaf for _, leaf in flatten(data)]
    if len(leaves) != len(tensors):
        return [], [_count_words("output", names, data, len(leaves))]
    out = []
    for name, t, leaf in zip(names, tensors, leaves):
        if isinstance(leaf, Leaf) and _is_array(leaf.info):
            k = key(t)
            out.append(Match(k, name, leaf.label, ctx.tensor_shape(k) or (), leaf.info))
    return out, []


def _key(path: tuple) -> str:
    """A place in a dict in words: "'label'", or "['pair'][0]" deeper down."""
    return repr(path[0]) if len(path) == 1 else _place("", path)


def _key_words(missing: list, extra: list, by: str) -> str:
    """Target keys the outputs lack or do not know, in words."""
    parts = []
    if missing:
        parts.append(f"no data for output(s) {', '.join(map(str, missing))}")
    if extra:
        parts.append(f"data key(s) {', '.join(map(str, extra))} match no output")
    return "; ".join(parts) + f" (Keras matches a dict of targets by {by})"


def bind(ctx: Any, feed: Any, batch: Any) -> Binding:
    """What one sampled batch says about the model's named dims."""
    b = Binding(feed, batch)
    b.inputs, problems, b.warnings = match_inputs(ctx, batch.x)
    b.problems += problems
    seen: dict[str, list[tuple[int, str, str, int]]] = {}
    for m in b.inputs:
        data = keras_adjusted(tuple(m.info.shape), m.shape)
        if len(data) != len(m.shape):
            b.rank_mismatches.append(m)
            continue
        for axis, (d, v) in enumerate(zip(m.shape, data)):
            if d is None:
                continue
            if isinstance(d, int):
                if d != v:
                    b.size_mismatches.append((m, axis, d, v))
                continue
            names = dims.free_names(d)
            if len(names) == 1 and d == dims.named(next(iter(names))):
                name = next(iter(names))
                seen.setdefault(name, []).append((int(v), m.label, m.name, axis))
    for name, found in seen.items():
        first = found[0]
        b.values[name] = first[0]
        b.sources[name] = f"{first[1]} axis {first[3]} (input `{first[2]}`)"
        if len({s for s, _, _, _ in found}) > 1:
            b.conflicts.append(Conflict(name, [(s, label, n) for s, label, n, _ in found]))
    b.targets, problems = match_targets(ctx, batch.y)
    b.problems += problems
    return b


def keras_adjusted(data: tuple, model: tuple) -> tuple:
    """The data's shape after Keras's own rank fix-up of model inputs
    (``Functional._adjust_input_rank``): a trailing axis of 1 is added or dropped."""
    if len(data) == len(model) + 1 and data and data[-1] == 1:
        return data[:-1]
    if len(data) == len(model) - 1 and model and model[-1] == 1:
        return data + (1,)
    return data


def unbatched(data: tuple, model: tuple) -> bool:
    """Whether ``data`` is one sample of ``model``'s input: its shape without the batch
    axis (an unbatched ``tf.data`` element, ``x[0]``)."""
    return len(data) == len(model) - 1 and all(
        not isinstance(m, int) or m == d for m, d in zip(model[1:], data))


def evaluate(shape: tuple, values: dict[str, int]) -> tuple:
    """``shape`` at the bound sizes: ints, or None where a dim is still unknown."""
    return tuple(dims.evaluate(d, values) for d in shape)


def meeting_call(ctx: Any, keys: list[int]) -> Any:
    """The first call (in graph order) that depends on every input in ``keys``."""
    sources = []
    for k in keys:
        c = ctx.producer(k)
        if c is not None:
            sources.append(c.id)
    for call in ctx.calls:
        anc = ctx.ancestors(call)
        if all(s in anc for s in sources):
            return call
    return None
