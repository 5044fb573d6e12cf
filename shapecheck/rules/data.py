"""SC6xx data: what `fit`/`evaluate`/`predict` are fed, against the model's shapes."""

from __future__ import annotations

import math
from itertools import permutations
from typing import Any, Iterator

from shapecheck.shapes import dims
from shapecheck.data.bind import Binding, meeting_call, unbatched
from shapecheck.rules import batch_check, define, feed_check
from shapecheck.rules.context import ModelContext, data_finding
from shapecheck.data.sources import rank_hint, size_hint, transpose_hint

BATCH_MISMATCH = define("SC601", "batch-mismatch", "error",
                        "the inputs of one batch have different numbers of samples", """
    ## What it does
    Reads the batches the script feeds (arrays, generators, `PyDataset`,
    `tf.data`) and finds inputs that get different numbers of rows in the same
    batch, and the layer where those inputs meet.

    ## Why is this bad
    Keras gives every input its own `None` batch axis, so the model builds;
    `fit` then fails deep inside the graph or its gradient
    (`ConcatOffset ... [4 500] vs [47 500]`).

    ## Example
    ```python
    def batches():
        while True:
            yield (np.zeros((47, 4096)), np.zeros((4, 4096))), y
    ```

    ## Use instead
    ```python
    def batches():
        while True:
            yield (np.zeros((47, 4096)), np.zeros((47, 4096))), y
    ```
    """)

DATA_RANK = define("SC602", "data-rank", "error",
                   "the data has another number of axes than the model's input", """
    ## What it does
    Compares the rank of each array fed to the model with the input it is
    matched to (after Keras's own fix-up, which adds or drops a trailing axis
    of size 1), and says which axis is missing or extra: the batch axis of a
    `tf.data` dataset never batched (or batched twice), the channel axis of
    images, an extra axis after the samples.

    ## Why is this bad
    `fit` fails with "Invalid input shape" after the script has loaded its
    data, or deep inside the first layer.

    ## Example
    ```python
    rows = tf.data.Dataset.from_tensor_slices((features, labels))
    model.fit(rows)                       # elements of (20,), not (batch, 20)
    ```

    ## Use instead
    ```python
    model.fit(rows.batch(32))
    ```
    """)

DATA_SIZE = define("SC603", "data-size", "error",
                   "the data's size on an axis differs from the size the model fixes", """
    ## What it does
    Finds an axis the model fixes (`Input(shape=(34,))`, a channel count, a
    fixed `batch_size`) that the data gives another size, and recognises axes
    in another order (channels-first images, time and features swapped).

    ## Why is this bad
    `fit` fails with an incompatible-shape error, after the script has loaded
    its data and built the model.

    ## Example
    ```python
    inputs = keras.Input(shape=(64, 64, 3))
    model.fit(images, labels)     # images: (N, 3, 64, 64), channels first
    ```

    ## Use instead
    ```python
    model.fit(np.transpose(images, (0, 2, 3, 1)), labels)
    ```
    """)

DATA_BREAKS = define("SC604", "data-breaks-constraint", "error",
                     "the sizes a batch gives break an equality a layer needs", """
    ## What it does
    Binds each batch's sizes to the model's named dims and checks every
    equality a layer needs (two sequences added step by step, a concatenation's
    other axes, a `RepeatVector(34)` branch against a text of `T` words).

    ## Why is this bad
    The model accepts any size for each `None`; the batch fails inside the
    layer that needs them equal.

    ## Example
    ```python
    a = keras.Input((None, 8)); b = keras.Input((None, 8))
    model = keras.Model([a, b], layers.Add()([a, b]))
    model.fit([np.zeros((4, 10, 8)), np.zeros((4, 12, 8))], y)
    ```

    ## Use instead
    ```python
    model.fit([np.zeros((4, 10, 8)), np.zeros((4, 10, 8))], y)
    ```
    """)

DATA_TOO_SHORT = define("SC605", "data-too-short", "error",
                        "a batch is smaller than a window the model slides over it", """
    ## What it does
    Checks each batch's sizes against the smallest input every convolution,
    pooling and cropping window needs (`T >= 13`).

    ## Why is this bad
    Keras builds the model for any size; a short sequence or small image
    fails at run time (or gives an empty axis).

    ## Example
    ```python
    x = keras.Input((None, 1)); y = layers.Conv1D(4, 5)(layers.Conv1D(4, 5)(x))
    model.predict(np.zeros((2, 6, 1)))    # needs T >= 9
    ```

    ## Use instead
    ```python
    model.predict(np.zeros((2, 16, 1)))
    ```
    """)

DATA_STRUCTURE = define("SC606", "data-structure", "error",
                        "the data's structure is not what Keras 3 accepts for this model", """
    ## What it does
    Reports data that Keras 3 cannot match to the model or refuses outright:
    another number of arrays than inputs, dict keys that name no input, a
    generator that yields lists or bare arrays (Keras 3 wants tuples), Python
    lists of numbers where an array belongs, `None` or ragged lists inside a
    batch, batches whose shapes change after the first two (TensorFlow fixes
    them from those), arguments a generator or dataset does not take (`y=`,
    `validation_split`), an empty generator, a generator that yields nothing in
    time.

    ## Why is this bad
    `fit` fails with a structure error from deep inside Keras, or takes the
    targets for a second input.

    ## Example
    ```python
    def batches():
        while True:
            yield [x, y]        # a list: Keras 3 reads it as inputs only
    ```

    ## Use instead
    ```python
    def batches():
        while True:
            yield (x, y)
    ```
    """, outcome="none")

ID_RANGE = define("SC607", "id-range", "error",
                  "token ids fed to an Embedding fall outside its input_dim", """
    ## What it does
    Reads the largest and smallest id in the data that reaches an `Embedding`
    and compares them with `input_dim`.

    ## Why is this bad
    On CPU the lookup fails (`indices[...] = 7579 is not in [0, 5000)`); on GPU
    it silently returns zeros, and the model trains on garbage.

    ## Example
    ```python
    tokens = keras.Input((None,))
    x = layers.Embedding(5000, 64)(tokens)
    model.fit(np.random.randint(0, 7579, (32, 20)), y)
    ```

    ## Use instead
    ```python
    x = layers.Embedding(7579, 64)(tokens)   # input_dim = largest id + 1
    ```
    """)

SOURCE_RAISED = define("SC608", "data-source-raised", "error",
                       "the data's own code raises on a batch `fit` reads", """
    ## What it does
    Reads the first batches of each generator, `keras.utils.PyDataset` and
    `tf.data.Dataset` the script feeds, as `fit`, `evaluate` and `predict`
    would, and reports the exception the data's own code raises on one of
    them: a generator's body, `PyDataset.__len__` or `__getitem__`, a
    function given to `Dataset.map`. The message names the exception and the
    line that raised it (for `tf.data`, the pipeline's functions). A source
    that raises only after the steps Keras reads is not reported as an error,
    and an infinite generator is normal.

    ## Why is this bad
    `fit` raises the same exception at that batch: after the model is built
    and compiled, often after the first epochs have run.

    ## Example
    ```python
    def batches():
        for path in files:
            yield np.load(path), labels[path]   # a file that is missing
    model.fit(batches())
    ```

    ## Use instead
    ```python
    files = [p for p in files if os.path.exists(p)]
    def batches():
        for path in files:
            yield np.load(path), labels[path]
    model.fit(batches())
    ```
    """, outcome="none")

DATA_DTYPE = define("SC609", "data-dtype", "error",
                    "the data holds strings or Python objects, which Keras 3 cannot read", """
    ## What it does
    Finds NumPy arrays and DataFrames of strings, bytes or Python objects
    (dtype `<U`, `S`, `object`) among the inputs, targets and sample weights a
    script feeds, as arrays, generator items or `PyDataset` items.

    ## Why is this bad
    Keras 3 converts every array to a tensor of a Keras dtype and raises
    `ValueError: Invalid dtype: str32` (or `bytes8`, `object`), even for a
    model whose input is `dtype="string"`; digits read from a CSV as text
    fail the same way.

    ## Example
    ```python
    x = np.array([["3.1"], ["2.7"]])          # numbers read as text
    model.fit(x, y)
    ```

    ## Use instead
    ```python
    model.fit(x.astype("float32"), y)
    # text for a string input: tf.constant(texts), or a StringLookup in tf.data
    ```
    """, outcome="none")


# --- SC601 ---------------------------------------------------------------------------------


@batch_check
def batch_mismatch(ctx: ModelContext, b: Binding) -> Iterator[Any]:
    for c in b.conflicts:
        sizes = sorted({s for s, _, _ in c.sizes})
        by_size: dict[int, list[str]] = {}
        for size, label, name in c.sizes:
            by_size.setdefault(size, []).append(f"`{name}` ({label})")
        parts = "; ".join(f"{size} for {', '.join(who)}" for size, who in by_size.items())
        groups = [[m.key for m in b.inputs if m.name in {n for s2, _, n in c.sizes if s2 == s}]
                  for s in sizes]
        meet = meeting_call(ctx, [g[0] for g in groups if g])
        what = "the number of samples" if c.dim == "batch" else f"`{c.dim}`"
        message = (f"the inputs of one batch disagree on {what}: {parts}"
                   + (f"; they meet at {meet.cls} `{meet.name}`" if meet is not None else ""))
        shapes = {m.label: tuple(m.info.shape) for m in b.inputs
                  if m.name in {n for _, _, n in c.sizes}}
        yield data_finding(
            BATCH_MISMATCH, ctx, b, message, call=meet,
            layer=None if meet else c.sizes[0][2], shapes=shapes,
            hint="give every input of a batch the same number of rows (check how the "
                 "generator slices each input)")


# --- SC602 / SC603 -----------------------------------------------------------------------------


def _fmt(shape: tuple) -> str:
    return dims.fmt_shape(tuple(shape))


def _rank_hint(b: Binding, model: tuple, data: tuple) -> str:
    named = rank_hint(b.feed, model, data)  # the argument of the utility that made the data
    if named is not None:
        return named
    rest = tuple(model[1:])

    def same(a: tuple, c: tuple) -> bool:
        return len(a) == len(c) and all(not isinstance(x, int) or x == y for x, y in zip(a, c))

    fixed = [d for d in rest if isinstance(d, int)]
    if len(fixed) == len(rest) and rest and math.prod(fixed) == math.prod(data[1:]):
        target = ", ".join(map(str, rest))
        fix = (f"`ds.map(lambda x, y: (tf.reshape(x, (-1, {target})), y))` after `.batch()`"
               if b.feed.kind == "tf.data" else f"`x.reshape((-1, {target}))`")
        return (f"the data holds the same {math.prod(fixed)} values per sample in another "
                f"shape: {fix}, or declare `Input(shape={tuple(data[1:])})` and add "
                "`layers.Flatten()`")
    one_sample = _unbatched_hint(b, model, data)
    if one_sample is not None:
        return one_sample
    if len(data) == len(model) + 1 and same(rest, tuple(data[2:])):
        if b.feed.kind == "tf.data":
            return "the dataset is batched twice: remove one `.batch(...)`"
        return "the data has an extra axis after the samples (a list of batches?)"
    if len(data) == len(model) - 1 and isinstance(model[-1], int) and \
            tuple(data[-(len(model) - 2):]) == tuple(model[1:-1]):
        return (f"the data has no channel axis: the model wants {model[-1]} channels "
                "(convert the images, or declare the input's channels to match)")
    if len(data) == len(model) + 1:
        return ("declare the input with one more axis, or reshape the data: "
                f"`Input(shape={tuple(data[1:])})`")
    return f"reshape the data to {_fmt(model)} or declare `Input(shape={tuple(data[1:])})`"


def _unbatched_hint(b: Binding, model: tuple, data: tuple) -> str | None:
    """The hint for data that is one sample, not a batch: its shape is the model's
    without the batch axis."""
    if not unbatched(data, model):
        return None
    if b.feed.kind == "tf.data":
        return ("the dataset yields single samples, not batches (`fit`'s `batch_size` "
                "does not batch a dataset): add `.batch(batch_size)`")
    return "the data has no batch axis: feed a batch (`x[None]` for a single sample)"


@batch_check
def data_rank(ctx: ModelContext, b: Binding) -> Iterator[Any]:
    for m in b.rank_mismatches:
        data = tuple(m.info.shape)
        yield data_finding(
            DATA_RANK, ctx, b,
            f"input `{m.name}` takes {_fmt(m.shape)} (rank {len(m.shape)}); {m.label} is "
            f"{_fmt(data)} (rank {len(data)})",
            layer=m.name, shapes={f"input `{m.name}`": m.shape, m.label: data},
            hint=_rank_hint(b, m.shape, data))


def _reordered(model: tuple, data: tuple) -> tuple[int, ...] | None:
    """The axis order that turns ``data`` into ``model``'s fixed sizes, if one does."""
    if len(model) > 6:
        return None
    rest = list(range(1, len(data)))
    for perm in permutations(rest):
        if list(perm) == rest:
            continue
        if all(not isinstance(d, int) or d == data[p] for d, p in zip(model[1:], perm)):
            return (0,) + tuple(perm)
    return None


@batch_check
def data_size(ctx: ModelContext, b: Binding) -> Iterator[Any]:
    done: set[str] = set()
    for m, axis, want, got in b.size_mismatches:
        if m.name in done:
            continue
        done.add(m.name)
        data = tuple(m.info.shape)
        order = _reordered(m.shape, data)
        if axis == 0:
            hint = ("the model fixes the batch size (`batch_size=` / a stateful layer): "
                    "feed batches of exactly that size, e.g. drop the short last batch")
        elif (one_sample := _unbatched_hint(b, m.shape, data)) is not None:
            hint = one_sample
        elif order is not None:
            kind = ("the images are channels-first" if len(data) == 4 and data[1] <= 4
                    else "the axes are in another order")
            hint = transpose_hint(b.feed, m.label, order,
                                  _fmt(tuple(data[p] for p in order)), kind)
        else:
            hint = size_hint(b.feed, m.shape, data, axis) or (
                f"give axis {axis} {want} entries (pad, crop or resize), or declare "
                f"`Input(shape=...)` with {got}")
        yield data_finding(
            DATA_SIZE, ctx, b,
            f"input `{m.name}` takes {_fmt(m.shape)}; {m.label} is {_fmt(data)}: axis "
            f"{axis} is {got}, the model fixes {want}",
            layer=m.name, shapes={f"input `{m.name}`": m.shape, m.label: data}, hint=hint)


# --- SC604 / SC605 ---------------------------------------------------------------------------


def _given(b: Binding, d: Any) -> str:
    names = sorted(dims.free_names(d) & set(b.values))
    return ", ".join(f"{n} = {b.values[n]} ({b.sources[n]})" for n in names)


@batch_check
def data_breaks_constraint(ctx: ModelContext, b: Binding) -> Iterator[Any]:
    if b.conflicts or not b.values:
        return
    seen: set[str] = set()
    for c in ctx.scope.constraints:
        if c.holds is not None:  # always or never: reported without data
            continue
        lhs, rhs = dims.evaluate(c.lhs, b.values), dims.evaluate(c.rhs, b.values)
        if lhs is None or rhs is None or lhs == rhs or c.layer in seen:
            continue
        seen.add(c.layer)
        call = ctx.by_name.get(c.layer.split("/")[0])
        given = _given(b, dims.add(c.lhs, c.rhs) if not isinstance(c.lhs, int) else c.rhs)
        yield data_finding(
            DATA_BREAKS, ctx, b,
            f"`{c.layer}` needs {dims.fmt(c.lhs)} == {dims.fmt(c.rhs)} ({c.reason}); this "
            f"batch gives {lhs} and {rhs}" + (f" ({given})" if given else ""),
            call=call, layer=c.layer,
            shapes={m.label: tuple(m.info.shape) for m in b.inputs},
            hint="make the data's sizes agree where the layer meets them, or fix the sizes "
                 "in the model")


@batch_check
def data_too_short(ctx: ModelContext, b: Binding) -> Iterator[Any]:
    if b.conflicts or not b.values:
        return
    for r in ctx.scope.requirements:
        if r.holds is not None:
            continue
        v = dims.evaluate(r.dim, b.values)
        if v is None or v >= 1:
            continue
        call = ctx.by_name.get(r.layer.split("/")[0])
        yield data_finding(
            DATA_TOO_SHORT, ctx, b,
            f"`{r.layer}` needs {dims.fmt(r.dim)} >= 1 ({r.reason}); this batch gives "
            f"{v} ({_given(b, r.dim)})",
            call=call, layer=r.layer, shapes={m.label: tuple(m.info.shape) for m in b.inputs},
            hint="feed longer sequences or larger images (pad them), or use "
                 "`padding=\"same\"` / smaller windows")
        return  # the first window that does not fit; later ones follow from it


# --- SC606 ----------------------------------------------------------------------------------

# Severity of each feeds.Problem kind (default: error, as Keras 3 fails on it).
_QUIET = {"exhausted": "warning",  # Keras runs no step on empty arrays or datasets
          "timeout": "warning",  # a slow source is not a failing one
          "sampling-error": "info"}  # shapecheck's own limits, or past what Keras reads
# The rule of each feeds.Problem kind that is not about the data's structure (SC606).
_RULES = {"raised": SOURCE_RAISED, "dtype": DATA_DTYPE}


@feed_check
def feed_structure(ctx: ModelContext, feed: Any) -> Iterator[Any]:
    from shapecheck.data.bind import Binding

    holder = Binding(feed, type("Sampled", (), {"label": "while sampling"})())
    for p in feed.problems:
        yield data_finding(_RULES.get(p.kind, DATA_STRUCTURE), ctx, holder, p.message,
                           layer=None, severity=_QUIET.get(p.kind),
                           hint=_STRUCTURE_HINTS.get(p.kind))


_STRUCTURE_HINTS = {
    "rows": "give x and y one row per sample each (check how they were split or filtered)",
    "wrong-structure": "hand the data over as Keras 3 takes it: targets and sample weights "
                       "inside the items of a generator or dataset (not `y=` / "
                       "`sample_weight=`), `validation_data` instead of `validation_split` "
                       "for anything but arrays, a generator function (`yield`) or a "
                       "`PyDataset` rather than another iterator, and items `(x,)`, "
                       "`(x, y)` or `(x, y, sample_weight)` nested alike in every batch",
    "list-not-tuple": "yield a tuple: `yield (x, y)` (or `(x, y, sample_weight)`)",
    "not-tuple": "make every item a tuple: `(x, y)` to train or evaluate, `(x,)` to "
                 "predict (a PyDataset may also return a list, a dict or a NumPy array)",
    "none-in-batch": "give every input of the model an array; None is no input",
    "ragged": "pad the sequences to one length (`keras.utils.pad_sequences`)",
    "python-list": "convert it to one array: `np.asarray(values)`",
    "not-data": "pass NumPy arrays or tensors, a generator, a `keras.utils.PyDataset` or a "
                "`tf.data.Dataset` (load files into arrays first)",
    "unstable-shape": "give that axis one size in every batch (pad or crop to it); an axis "
                      "that must vary must already differ between the first two batches",
    "empty": "make the source yield at least one batch (a generator object is used up "
             "after one pass: create a fresh one for each `fit`/`evaluate`/`predict`)",
    "exhausted": "check that the data has rows (a filter or split that leaves none?)",
    "timeout": "make sure the generator yields promptly (shapecheck waited for its first "
               "batches), or check it with `--timeout` raised",
    "sampling-error": "shapecheck could not read this data (or it raised past the steps "
                      "Keras reads): run it alone (`next(gen)`, `dataset[0]`) to see why",
    "raised": "fix the data source where it raised; run it alone to see the error "
              "(`next(gen)`, `dataset[0]`, `next(iter(ds))`)",
    "dtype": "convert the values to numbers before `fit` (`x.astype(\"float32\")`, or a "
             "`StringLookup`/`TextVectorization` for text); text for a `dtype=\"string\"` "
             "input goes in as a tensor (`tf.constant(texts)`) or through `tf.data`",
}


@batch_check
def structure(ctx: ModelContext, b: Binding) -> Iterator[Any]:
    for p in b.problems:
        if "output" in p:
            continue  # targets: SC7xx
        yield data_finding(DATA_STRUCTURE, ctx, b, p,
                           hint="match the data to the model's inputs: a list in input "
                                "order, or a dict by input name")
    for w in b.warnings:  # Keras runs, feeding arrays maybe not as meant
        yield data_finding(DATA_STRUCTURE, ctx, b, w, severity="warning",
                           hint="give the data exactly the model's input keys (drop the "
                                "others), or a list in input order")


# --- SC607 ----------------------------------------------------------------------------------


def _embedding_inputs(ctx: ModelContext) -> list[tuple[Any, int]]:
    """(Embedding call, model input key) for Embeddings fed straight from an input."""
    from shapecheck.rules.context import SHAPE_PRESERVING

    out = []
    inputs = set(ctx.graph.inputs)
    for call in ctx.calls:
        if call.cls != "Embedding" or not call.inputs:
            continue
        key = call.inputs[0]
        for _ in range(10):
            if key in inputs:
                out.append((call, key))
                break
            src = ctx.producer(key)
            if src is None or not src.inputs or (src.cls not in SHAPE_PRESERVING
                                                 and src.cls not in ("Cast", "Reshape")):
                break
            key = src.inputs[0]
    return out


@batch_check
def id_range(ctx: ModelContext, b: Binding) -> Iterator[Any]:
    by_key = {m.key: m for m in b.inputs}
    for call, key in _embedding_inputs(ctx):
        m = by_key.get(key)
        n = getattr(call.op, "input_dim", None)
        if m is None or n is None or m.info.max is None:
            continue
        hi, lo = m.info.max, m.info.min
        if hi >= n:
            message = (f"Embedding `{call.name}` has input_dim={n} (ids 0..{n - 1}); "
                       f"{m.label} holds ids up to {int(hi)}")
            hint = f"set `input_dim={int(hi) + 1}` (the vocabulary size, padding included)"
        elif lo is not None and lo < 0:
            message = f"Embedding `{call.name}` gets negative ids ({int(lo)}) from {m.label}"
            hint = "map ids to 0..input_dim-1 (0 is usually padding)"
        else:
            continue
        yield data_finding(ID_RANGE, ctx, b, message, call=call,
                           shapes={m.label: tuple(m.info.shape)}, hint=hint)
