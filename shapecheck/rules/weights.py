"""SC706-SC707 weights: `sample_weight` and `class_weight` against the targets and the loss.

Keras 3 multiplies each output's loss values (one per sample, or one per sample and
step for sequence outputs) by that output's sample weights, after its own rank
fix-up (``squeeze_or_expand_to_same_rank``), and turns ``class_weight`` into sample
weights of shape ``(N,)`` from the targets (``class_weight_to_sample_weights``, or a
lookup table in a ``tf.data`` pipeline).  The rules replay both on the sampled shapes.
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping
from typing import Any, Iterator

from shapecheck.shapes import dims
from shapecheck.data.bind import Binding, Match, evaluate
from shapecheck.data.batches import ArrayInfo
from shapecheck.rules import batch_check, define
from shapecheck.rules.context import ModelContext, data_finding
from shapecheck.rules.losses import BINARY, CATEGORICAL, SPARSE, loss_name
from shapecheck.rules.targets import agree, broadcast, output_losses, same_rank

SAMPLE_WEIGHT_SHAPE = define(
    "SC706", "sample-weight-shape", "error",
    "the sample weights do not fit the targets or the loss they weight", """
    ## What it does
    Matches the `sample_weight` given to `fit`, `evaluate`, `train_on_batch` or
    `test_on_batch` (or the third element of `validation_data` or of a
    dataset's items) to the model's outputs as Keras 3 does, and checks each
    array against the loss it weights: one weight per sample, `(N,)` or
    `(N, 1)`, for an output with one loss value per sample; `(N, T)` (or
    `(N, 1)`) for a sequence output whose loss has one value per step. It
    also reports a list or dict of weights that does not match the outputs,
    a single array of more than one weight per sample for a model with
    several outputs, and weights with another number of rows than the
    targets.

    ## Why is this bad
    Keras multiplies the loss values by the weights. When the shapes cannot
    broadcast, the first batch fails inside the loss ("Dimensions must be
    equal"); when they can, the weights land on the wrong axis (a `(N,)`
    array against a loss of `(batch, T)` values when `T` equals the batch)
    and the model trains with weights nobody chose. A weight structure that
    does not match the outputs fails before the first step.

    ## Example
    ```python
    outputs = layers.Dense(5, activation="softmax")(
        layers.LSTM(32, return_sequences=True)(inputs))   # (N, 20, 5): one loss per step
    model.compile(loss="sparse_categorical_crossentropy")
    model.fit(x, y, sample_weight=weights)                # weights: (N,)
    ```

    ## Use instead
    ```python
    model.fit(x, y, sample_weight=weights[:, None])       # (N, 1): one weight per sequence
    # or one weight per step: sample_weight of shape (N, 20)
    ```
    """, outcome="none")

CLASS_WEIGHT = define(
    "SC707", "class-weight", "error",
    "`class_weight` does not fit the model's output or its targets", """
    ## What it does
    Checks the `class_weight` given to `fit` or `train_on_batch` against the
    model and the targets, as Keras 3 turns it into one weight per sample:

    - a model with several outputs, or `class_weight` together with
      `sample_weight` (Keras raises);
    - targets with one class per step, `(N, T)` ids or `(N, T, C)` one-hot
      rows, which Keras reduces to one class per sample by an argmax over
      the last axis (it fails, or weights each sample by the class of a
      step index);
    - keys that are not class ids of the output: not integers (Keras
      looks up integer ids and never finds them), or outside `0..units-1`
      of a softmax output (`0..1` of a single sigmoid unit), whose
      weights are never used;
    - with a `tf.data.Dataset`, keys that stop below the last class (the
      lookup table Keras builds ends at the largest key and fails on the
      classes above it);
    - (a warning) multi-label targets, which Keras weights by their first
      positive class only.

    One-hot targets and integer ids are both accepted: Keras takes the
    argmax of one-hot rows.

    ## Why is this bad
    Keras raises before or during the first epoch, or trains with weights
    that are not the ones given: class 0 of a model whose keys run 1..3 is
    weighted 1.0 and the weight for "class 3" is dropped.

    ## Example
    ```python
    outputs = layers.Dense(3, activation="softmax")(x)
    model.fit(x_train, y_train, class_weight={1: 1.0, 2: 4.0, 3: 2.0})
    ```

    ## Use instead
    ```python
    model.fit(x_train, y_train, class_weight={0: 1.0, 1: 4.0, 2: 2.0})
    ```
    """, outcome="none")

# Loss functions that reduce the last axis of targets and predictions: one loss value per
# sample (and per step of a sequence output), which sample weights multiply.
LAST_AXIS_LOSSES = frozenset({
    "mean_squared_error", "mean_absolute_error", "mean_absolute_percentage_error",
    "mean_squared_logarithmic_error", "huber", "log_cosh", "kl_divergence", "poisson",
    "hinge", "squared_hinge", "categorical_hinge", "cosine_similarity",
}) | BINARY | CATEGORICAL | SPARSE


def _fmt(shape: tuple) -> str:
    return dims.fmt_shape(tuple(shape))


def _paths(struct: Any, path: tuple = ()) -> list[tuple[tuple, Any]]:
    """``(path, leaf)`` of nested lists / tuples / dicts, in ``keras.tree`` order."""
    if isinstance(struct, dict):
        try:
            keys = sorted(struct)
        except TypeError:
            keys = list(struct)
        return [item for k in keys for item in _paths(struct[k], path + (k,))]
    if isinstance(struct, (list, tuple)):
        return [item for i, v in enumerate(struct) for item in _paths(v, path + (i,))]
    return [(path, struct)]


def _place(path: tuple) -> str:
    return "".join(f"[{k!r}]" if isinstance(k, str) else f"[{k}]" for k in path)


def _nested(value: Any) -> bool:
    return isinstance(value, (list, tuple, dict))


def _resolve(struct: Any, path: tuple) -> tuple[bool, Any]:
    """``struct[path[0]][path[1]]...`` as Keras's compiled loss resolves it; (found, leaf)."""
    for k in path:
        if isinstance(struct, dict) and k in struct:
            struct = struct[k]
        elif isinstance(struct, (list, tuple)) and isinstance(k, int) and k < len(struct):
            struct = struct[k]
        else:
            return False, None
    return True, struct


def _kind(struct: Any) -> str:
    if isinstance(struct, dict):
        return f"a dict (keys {', '.join(map(repr, struct))})"
    if isinstance(struct, (list, tuple)):
        return f"a {type(struct).__name__} of {len(struct)}"
    return "one array"


def weights_name(feed: Any) -> str:
    """How the script gave this feed's sample weights."""
    if feed.kind != "arrays":
        return "sample_weight (the items' third element)"
    return "validation sample_weight" if feed.role == "validation" else "sample_weight"


def _output_paths(ctx: ModelContext) -> list[tuple[tuple, int]]:
    """``(path, tensor key)`` of each output in the model's output structure."""
    inner = getattr(ctx.model, "_functional", None) or ctx.model
    struct = getattr(inner, "_outputs_struct", None)
    keys = list(ctx.graph.outputs)
    if struct is None or len(_paths(struct)) != len(keys):
        struct = list(range(len(keys)))
    return [(path, key) for (path, _), key in zip(_paths(struct), keys)]


# --- SC706 ------------------------------------------------------------------------------


@batch_check
def sample_weight_shape(ctx: ModelContext, b: Binding) -> Iterator[Any]:
    sw = b.batch.sample_weight
    if sw is None or b.batch.y is None or not b.targets or b.conflicts or b.problems:
        return
    if any(p.kind == "rows" for p in b.feed.problems):  # said by SC606 for arrays
        return
    name = weights_name(b.feed)
    pairs, problem = _weight_pairs(ctx, b, sw, name)
    if problem is not None:
        message, hint = problem
        shapes = {m.label: tuple(m.info.shape) for m in b.targets}
        shapes |= {name + _place(path): tuple(leaf.shape) for path, leaf in _paths(sw)
                   if isinstance(leaf, ArrayInfo)}
        yield data_finding(SAMPLE_WEIGHT_SHAPE, ctx, b, message, hint=hint, shapes=shapes)
        return
    losses = output_losses(ctx)
    for m, info, label in pairs:
        found = _one_weight(ctx, b, m, info, label, loss_name(losses.get(m.key)))
        if found is not None:
            yield found


def _weight_pairs(ctx: ModelContext, b: Binding, sw: Any, name: str
                  ) -> tuple[list[tuple[Match, ArrayInfo, str]], tuple[str, str] | None]:
    """Each target with the weights Keras gives its output, or a structure problem
    ``(message, hint)``."""
    outs = _output_paths(ctx)
    by_key = {m.key: m for m in b.targets}
    y = b.batch.y
    if len(outs) == 1:
        if isinstance(sw, (list, tuple, dict)) and len(sw) == 1:
            (path, sw), = _paths(sw)
            name += _place(path)
        if not isinstance(sw, ArrayInfo):
            return [], None
        m = by_key.get(outs[0][1])
        return ([(m, sw, name)] if m is not None else []), None
    strict = b.feed.kind == "arrays" and b.feed.method in ("fit", "evaluate")
    if isinstance(sw, ArrayInfo):
        shape = tuple(sw.shape)
        if strict and _nested(y) and not (len(shape) == 1 or shape[1:] == (1,)):
            return [], (
                f"{name} is {_fmt(shape)}, one array for a model with {len(outs)} outputs: "
                "Keras then needs one weight per sample, (N,) or (N, 1), and raises "
                "ValueError ('it should only have one scalar score per sample')",
                "pass one array of weights per output: a list in output order, or a dict "
                "by output name")
        return [(by_key[k], sw, name) for _, k in outs if k in by_key], None
    if strict and _nested(y) and _skeleton(y) != _skeleton(sw):
        return [], (
            f"{name} is {_kind(sw)} and the targets {_kind(y)}: Keras needs the weights "
            "nested exactly as the targets and raises ValueError ('You should provide one "
            "`sample_weight` array per output in `y`')",
            "give the weights the targets' structure: the same list (or tuple), or a dict "
            "with the same keys")
    pairs = []
    for path, key in outs:
        found, leaf = _resolve(sw, path)
        if not found:
            how = ("by position, `" + name + _place(path) + "`"
                   if isinstance(path[0], int) else "by output name, `"
                   + name + _place(path) + "`")
            return [], (
                f"{name} is {_kind(sw)}, but the model's outputs are "
                f"{'a dict' if isinstance(path[0], str) else 'a list'} of {len(outs)}: "
                f"Keras finds each output's weights {how}, which {name} does not have, and "
                f"raises {'KeyError' if isinstance(sw, dict) else 'IndexError'}",
                ("pass the weights as a list in output order" if isinstance(path[0], int)
                 else "pass the weights as a dict by output name"))
        if isinstance(leaf, ArrayInfo) and key in by_key:
            pairs.append((by_key[key], leaf, name + _place(path)))
    return pairs, None


def _skeleton(struct: Any) -> Any:
    """The nesting of ``struct``, leaves left out (containers' types kept)."""
    if isinstance(struct, dict):
        return ("dict", tuple(sorted(map(str, struct))),
                tuple(_skeleton(struct[k]) for k in sorted(struct, key=str)))
    if isinstance(struct, (list, tuple)):
        return (type(struct).__name__, tuple(_skeleton(v) for v in struct))
    return "*"


def loss_values_shape(m: Match, pred: tuple, loss: str | None) -> tuple | None:
    """The shape of the loss values Keras weights for target ``m`` and prediction
    ``pred`` (None: a loss that reduces otherwise, or targets that do not fit)."""
    y = tuple(m.info.shape)
    if loss not in LAST_AXIS_LOSSES or len(pred) < 2:
        return None
    if loss in SPARSE:
        want = pred[:-1]
        if not (agree(y, want) or agree(y, want + (1,))):
            return None
        values = want
    else:
        ya, pa = same_rank(y, pred)
        if not agree(ya, pa):
            return None
        values = pa[:-1]
        y = ya
    return tuple(v if v is not None else (y[i] if i < len(y) else None)
                 for i, v in enumerate(values))


def _one_weight(ctx: ModelContext, b: Binding, m: Match, info: ArrayInfo, label: str,
                loss: str | None) -> Any:
    """SC706 for the weights of one output, or None."""
    call = ctx.producer(m.key)
    if call is None:
        return None
    y = tuple(m.info.shape)
    s = tuple(info.shape)
    if not s or not y:
        return None
    rows = y[0]
    pred = evaluate(m.shape, b.values)
    pred = (rows,) + tuple(pred[1:]) if pred else pred
    shapes = {f"output `{call.name}`": m.shape, m.label: y, label: s}
    where = f" (output `{call.name}`)" if len(ctx.graph.outputs) > 1 else ""
    if s[0] != rows:
        silent = s[0] == 1
        return data_finding(
            SAMPLE_WEIGHT_SHAPE, ctx, b,
            f"{label} has {s[0]} row{'s' if s[0] != 1 else ''}; {m.label}{where} has {rows}"
            + (": Keras spreads the one weight over the whole batch" if silent else
               ": Keras multiplies the loss by the weights and fails ('Dimensions must be "
               "equal')"),
            layer=call.name, shapes=shapes, severity="warning" if silent else None,
            hint="give one weight per sample of the batch")
    values = loss_values_shape(m, pred, loss)
    if not values:
        return None
    lw, sw = same_rank(values, s)
    if len(lw) == len(sw) and all(a is None or c in (1, a) for a, c in zip(lw, sw)):
        return None
    joint = broadcast(lw, sw)
    per = ("one value per sample" if len(values) == 1 else
           "one value per sample and step" if len(values) == 2 else "one value per position")
    if joint is None:
        effect = ("Keras multiplies the loss values by the weights and fails ('Dimensions "
                  "must be equal')")
    else:
        effect = (f"Keras multiplies them into {_fmt(joint)} values: the weights land on "
                  "the wrong axis, and the loss is not the weighted one")
    return data_finding(
        SAMPLE_WEIGHT_SHAPE, ctx, b,
        f"{label} is {_fmt(s)}; the {loss} loss of output `{call.name}` {_fmt(pred)} against "
        f"{m.label} {_fmt(y)} gives {per}, {_fmt(values)}: {effect}",
        layer=call.name, shapes=shapes | {"loss values": values},
        hint=_weight_hint(values, s, y, pred))


def _weight_hint(values: tuple, s: tuple, y: tuple, pred: tuple) -> str:
    if len(values) == 1:
        hint = "give one weight per sample: shape (N,) or (N, 1)"
        if len(s) == 2 and len(pred) == 3 and len(y) == 2 and pred[-1] == 1:
            hint += (f"; to weight each step, give the targets the output's shape "
                     f"{_fmt(('N',) + tuple(pred[1:]))} (the loss then has one value per step)")
        return hint
    if len(values) == 2:
        fix = "`sample_weight[:, None]`, " if len(s) == 1 else ""
        return (f"weight each sequence with shape (N, 1) ({fix}one weight per sample), or "
                f"each step with {_fmt(('N',) + tuple(values[1:]))}")
    return f"give the weights the loss values' shape {_fmt(('N',) + tuple(values[1:]))}"


# --- SC707 ------------------------------------------------------------------------------


@batch_check
def class_weight(ctx: ModelContext, b: Binding) -> Iterator[Any]:
    cw = getattr(b.feed, "class_weight", None)
    if cw is None or b.feed.role != "train" or b.feed.kind in ("generator", "other"):
        return  # a generator with class_weight: SC606 says Keras refuses it
    found = _class_weight_problem(ctx, b, cw)
    if found is not None:
        message, hint, layer, severity = found
        shapes = {}
        for m in b.targets:
            call = ctx.producer(m.key)
            if call is not None:
                shapes[f"output `{call.name}`"] = m.shape
            shapes[m.label] = tuple(m.info.shape)
        yield data_finding(CLASS_WEIGHT, ctx, b, message, layer=layer, hint=hint,
                           severity=severity, shapes=shapes)


Problem = tuple[str, str, str | None, str | None]  # message, hint, layer, severity


def _class_weight_problem(ctx: ModelContext, b: Binding, cw: Any) -> Problem | None:
    """The first thing Keras does wrong with this ``class_weight`` and batch."""
    if not isinstance(cw, Mapping):
        return (f"`class_weight` is a {type(cw).__name__}: Keras needs a dict of class id "
                "to weight and raises AttributeError ('object has no attribute `get`')",
                "pass a dict: `class_weight={0: 1.0, 1: 3.0}` (e.g. "
                "`dict(enumerate(weights))`)", None, None)
    n_out = len(ctx.graph.outputs)
    if n_out > 1 or _nested(b.batch.y):
        what = (f"a model with {n_out} outputs" if n_out > 1 else
                f"targets given as {_kind(b.batch.y)}")
        return (f"`class_weight` with {what}: Keras supports class_weight only for a single "
                "output (and one target array) and raises ValueError",
                "pass `sample_weight` instead, one array per output, e.g. "
                "`np.array([class_weight[c] for c in y_out])` for each output's class ids",
                None, None)
    if b.batch.sample_weight is not None:
        given = ("`sample_weight`" if b.feed.kind == "arrays"
                 else "items with sample weights, (x, y, sample_weight)")
        return (f"`class_weight` and {given} at once: Keras raises ValueError ('You cannot "
                "`class_weight` and `sample_weight` at the same time')",
                "fold the class weights into the sample weights: multiply each sample's "
                "weight by its class's", None, None)
    if not b.targets:
        return None
    m = b.targets[0]
    call = ctx.producer(m.key)
    layer = call.name if call is not None else None
    loss = loss_name(output_losses(ctx).get(m.key))
    pred = evaluate(m.shape, b.values)
    y = tuple(m.info.shape)
    units = pred[-1] if pred else None
    if len(pred) >= 3 and len(y) >= 2:
        found = _per_step(m, y, pred, units, b.feed.kind == "tf.data", layer)
        if found is not None:
            return found
    classes = _classes(loss, units)
    return _keys(cw, b.feed.kind, classes, m, layer, loss, units)


def _classes(loss: str | None, units: Any) -> int | None:
    """How many class ids the output's targets hold (None: not a classifier)."""
    if not isinstance(units, int):
        return None
    if loss in SPARSE or loss in CATEGORICAL:
        return units if units > 1 else None
    if loss in BINARY:
        return 2 if units == 1 else units
    return None


def _per_step(m: Match, y: tuple, pred: tuple, units: Any, table: bool,
              layer: str | None) -> Problem | None:
    """Targets with a class per step (a sequence or image output): Keras makes one weight
    per sample from the argmax of their last axis (a ``tf.data`` pipeline looks up every
    step instead, which works for one-hot rows and ids with a trailing axis of 1)."""
    onehot = len(y) == len(pred) and y[-1] not in (1,) and (units is None or y[-1] == units)
    trailing = len(y) == len(pred) and y[-1] == 1
    if table and (onehot or trailing):
        return None
    if len(y) >= 3 and not table:
        effect = ("which still leaves one class per step here, and raises TypeError ('only "
                  "0-dimensional arrays can be converted to Python scalars')")
    else:
        effect = ("the steps, not the classes, and the per-step loss cannot take one weight "
                  "per sample: it fails ('Dimensions must be equal', or an index out of "
                  "range), or weights the wrong axis when the batch size equals the number "
                  "of steps")
    what = "one-hot rows per step" if onehot else "class ids per step"
    ids = "np.argmax(y, -1)" if onehot else "y[..., 0]" if trailing else "y"
    return (f"`class_weight` with {what}, {m.label} {_fmt(y)}, for output `{layer}` "
            f"{_fmt(pred)}: Keras makes one weight per sample from the argmax of the "
            f"targets' last axis, {effect}",
            "pass per-step weights instead of class_weight: `sample_weight = "
            f"np.vectorize(class_weight.get)({ids})`, of shape "
            f"{_fmt(('N',) + tuple(pred[1:-1]))}", layer, None)


def _is_id(key: Any) -> bool:
    return isinstance(key, numbers.Integral) and not isinstance(key, bool)


def _keys(cw: Mapping, kind: str, classes: int | None, m: Match, layer: str | None,
          loss: str | None, units: Any) -> Problem | None:
    keys = list(cw)
    if not keys:
        return None
    table = kind == "tf.data"  # a lookup table of max(key) + 1 weights
    odd = [k for k in keys if not _is_id(k)]
    if table and odd:
        try:
            top = max(keys)
        except TypeError:  # keys of types that do not compare
            top = None
        if not _is_id(top):
            return (f"`class_weight` has keys that are not int ({_shown(odd)}): with a "
                    "tf.data.Dataset Keras builds a table of weights for "
                    "`range(max(keys) + 1)` and raises TypeError",
                    "use the class ids as int keys: `{0: ..., 1: ...}`", layer, None)
    odd = [k for k in odd if not (isinstance(k, numbers.Real) and float(k).is_integer())]
    if odd:
        return (f"`class_weight` keys {_shown(odd)} are not class ids: Keras looks up each "
                "sample's class as an int (`class_weight.get(int(class), 1.0)`) and never "
                "finds them, so their weights are never used"
                + (" and every sample is weighted 1.0" if len(odd) == len(keys) else ""),
                "use the class ids as int keys: `{0: ..., 1: ...}` (for class names, map "
                "them through the order of `class_names`)", layer, None)
    if classes is None:
        return None
    ids = sorted(int(k) for k in keys)
    outside = [k for k in ids if not 0 <= k < classes]
    if outside:
        missing = [c for c in range(classes) if c not in ids]
        rest = (f"; class{'es' if len(missing) > 1 else ''} {_shown(missing)} get"
                f"{'' if len(missing) > 1 else 's'} the default weight 1.0" if missing else "")
        span = (f"{units} units, classes 0..{classes - 1}" if classes == units else
                f"one sigmoid unit, classes 0..1")
        shifted = ids == list(range(1, classes + 1))
        hint = (f"the keys look 1-based: the class ids of output `{layer}` run 0..{classes - 1}"
                f"; use `{{c - 1: w for c, w in class_weight.items()}}`" if shifted else
                f"keep keys 0..{classes - 1}, one per class of output `{layer}`")
        return (f"`class_weight` key{'s' if len(outside) > 1 else ''} {_shown(outside)} "
                f"name{'' if len(outside) > 1 else 's'} no class of output `{layer}` "
                f"({span}): Keras never uses {'their' if len(outside) > 1 else 'its'} "
                f"weight{rest}", hint, layer, None)
    if table and ids[-1] < classes - 1:
        ids_given = m.info.integer and (len(m.info.shape) == 1 or m.info.shape[-1:] == (1,))
        top = m.info.max if ids_given else None
        seen = top is not None and top > ids[-1]
        return (f"`class_weight` stops at class {ids[-1]}, and output `{layer}` has "
                f"{classes} classes: with a tf.data.Dataset Keras looks each sample's class "
                f"up in a table of {ids[-1] + 1} weights and fails on class {ids[-1] + 1} "
                "and above ('indices ... not in [0, " f"{ids[-1] + 1})')"
                + (f"; {m.label} holds class {int(top)}" if seen else
                   ", on the first batch that holds one"),
                f"give every class 0..{classes - 1} a key", layer,
                None if seen else "warning")
    info = m.info
    if (loss in BINARY and isinstance(units, int) and units > 1 and info.one_hot is False
            and info.min is not None and info.min >= 0 and info.max is not None
            and info.max <= 1):
        return (f"`class_weight` with multi-label targets {m.label} {_fmt(info.shape)} for "
                f"output `{layer}`: Keras takes each sample's class as the argmax of its "
                "row, so a sample with several positive labels is weighted by the first "
                "one only",
                "pass `sample_weight` computed from all the labels of each sample instead",
                layer, "warning")
    return None


def _shown(items: list) -> str:
    shown = ", ".join(map(repr, items[:6]))
    return shown + (", ..." if len(items) > 6 else "")
