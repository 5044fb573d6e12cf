"""Shape rules for attention layers.

``Attention`` and ``AdditiveAttention`` take ``[query, value(, key)]``;
``MultiHeadAttention`` and ``GroupedQueryAttention`` take ``query, value,
key=None``.  Each rule returns what Keras declares when building (its
``compute_output_spec``) and records what the computation needs at run time:
the key and value share their sequence axes, the query and key share their
feature size (dot products), the batch axes agree, an ``attention_mask``
broadcasts against the scores, and a shared layer's projections keep the
feature sizes they were built for.
"""

from __future__ import annotations

from typing import Any

from shapecheck.shapes import dims
from shapecheck.shapes.dims import Dim
from shapecheck.shapes.layers.registry import Call, ShapeError, rule, shape_of


def _fmt(shape: tuple) -> str:
    return dims.fmt_shape(shape)


def _bcast(call: Call, a: Dim, b: Dim, reason: str) -> None:
    """``a`` and ``b`` meet in a broadcasting op: equal unless one is 1."""
    if a == 1 or b == 1:
        return
    call.require_equal(a, b, reason)


def _need(call: Call, got: Dim, want: Dim, reason: str) -> Dim:
    """Equal dims Keras itself checks when building: ints that differ raise."""
    if isinstance(got, int) and isinstance(want, int) and got != want:
        raise ShapeError(f"{reason}: {want} != {got}", expected=str(want), got=str(got))
    return call.require_equal(got, want, reason)


def _built_in_dim(layer: Any) -> int | None:
    """The last input dim a built (sub)layer fixed in its weights."""
    if layer is None or not getattr(layer, "built", False):
        return None
    shapes = getattr(layer, "_build_shapes_dict", None)
    if not shapes:
        return None
    first = next(iter(shapes.values()))
    if isinstance(first, (list, tuple)) and first and isinstance(first[-1], int):
        return int(first[-1])
    return None


def _check_projection(call: Call, op: Any, attr: str, dim: Dim, what: str) -> None:
    """A shared layer's projection keeps the input size of its first build."""
    built = _built_in_dim(getattr(op, attr, None))
    if built is not None:
        call.require_equal(dim, built, f"the {what}'s last axis must match the size "
                                       "the layer's projection was built for")


# --- Attention, AdditiveAttention --------------------------------------------------


@rule("layers.Attention", "layers.AdditiveAttention")
def attention(call: Call) -> Any:
    op = call.op
    inputs = call.arg(0, "inputs")
    if not isinstance(inputs, (list, tuple)):
        raise ShapeError(f"{type(op).__name__} must be called on a list "
                         "[query, value] or [query, value, key]")
    if not 2 <= len(inputs) <= 3:
        raise ShapeError(f"{type(op).__name__} takes 2 or 3 inputs "
                         "([query, value] or [query, value, key]); got "
                         f"{len(inputs)}", expected="2 or 3", got=str(len(inputs)))
    shapes = [shape_of(t) for t in inputs]
    if any(s is None or len(s) == 0 for s in shapes):
        raise ShapeError("the inputs must be tensors of rank >= 1")
    q, v = shapes[0], shapes[1]
    k = shapes[2] if len(shapes) > 2 else v
    additive = _is_additive(op)

    # scores: query against key over the feature axis.
    if additive or op.score_mode == "concat":
        _bcast(call, q[-1], k[-1], "query and key features are added, so their "
                                   "last axes must match")
    else:
        call.require_equal(q[-1], k[-1], "query and key are dot-multiplied, so their "
                                         "last axes must match")
    scale = getattr(op, "scale", None) if additive and getattr(op, "use_scale", False) \
        else None
    scale_shape = tuple(getattr(scale, "shape", ()) or ())
    if len(scale_shape) == 1 and isinstance(scale_shape[0], int):
        _bcast(call, q[-1], int(scale_shape[0]), "the query's last axis must match the "
                                                 "size the layer's scale was built for")
    # weights (..., Tq, Tv) @ value (..., Tv, dim)
    if len(k) >= 2 and len(v) >= 2:
        call.require_equal(v[-2], k[-2], "value and key must have the same sequence length")
    # batch axes broadcast between query, key and value.
    if len(q) >= 2 and len(k) >= 2:
        for a, b in zip(reversed(q[:-2]), reversed(k[:-2])):
            _bcast(call, a, b, "query and key must have the same batch size")
    if len(k) >= 2 and len(v) >= 2 and k is not v:
        for a, b in zip(reversed(k[:-2]), reversed(v[:-2])):
            _bcast(call, b, a, "value and key must have the same batch size")

    output = (*q[:-1], v[-1])
    if call.arg(3, "return_attention_scores", False):
        scores = (*q[:-1], k[-2] if len(k) >= 2 else None)
        return [output, scores]
    return output


def _is_additive(op: Any) -> bool:
    from keras.src.layers.attention.additive_attention import AdditiveAttention

    return isinstance(op, AdditiveAttention)


# --- MultiHeadAttention ----------------------------------------------------------


def _query_value_key(call: Call) -> tuple[tuple, tuple, tuple, bool]:
    query = shape_of(call.arg(0, "query"))
    value = shape_of(call.arg(1, "value"))
    key_arg = call.arg(2, "key")
    key = shape_of(key_arg) if key_arg is not None else None
    if query is None or value is None:
        raise ShapeError("query and value must be tensors")
    return query, value, (key if key is not None else value), key is not None


def _same_kv_axes(call: Call, value: tuple, key: tuple) -> None:
    """``value.shape[1:-1] == key.shape[1:-1]`` (Keras checks this when building)."""
    if len(value) != len(key):
        raise ShapeError(
            "all dimensions of value and key, except the last one, must be equal; "
            f"got value {_fmt(value)} and key {_fmt(key)}",
            expected=_fmt(value), got=_fmt(key))
    for axis in range(1, len(value) - 1):
        _need(call, key[axis], value[axis],
              f"axis {axis} of key must equal value's (key and value share their "
              "sequence axes)")


def _attention_mask(call: Call, scores_tail: tuple, batch: Dim, reason: str) -> None:
    """An explicit ``attention_mask`` broadcasts against (batch, ..., T, S)."""
    mask = shape_of(call.arg(6, "attention_mask"))
    if mask is None or len(mask) < 2:
        return
    tail = len(scores_tail)
    if len(mask) >= tail:
        for m, s in zip(mask[-tail:], scores_tail):
            _bcast(call, m, s, reason)
    if len(mask) > tail:
        _bcast(call, mask[0], batch, "the attention_mask's batch must match the query's")


@rule("layers.MultiHeadAttention")
def multi_head_attention(call: Call) -> Any:
    op = call.op
    query, value, key, _ = _query_value_key(call)
    out_shape = op._output_shape
    output = (*query[:-1], *out_shape) if out_shape else query
    scores_wanted = call.arg(7, "return_attention_scores", False)
    if len(query) < 2 or len(value) < 2:  # no sequence axis: nothing to relate
        if scores_wanted:
            length = query[1] if len(query) > 1 else None
            return [output, (query[0] if query else None, op.num_heads, length, length)]
        return output
    _same_kv_axes(call, value, key)
    rank = len(value) + 1  # Keras builds the attention for the projected value's rank
    axes = op._attention_axes
    if axes is None:
        axes = tuple(range(1, rank - 2))
    else:
        axes = tuple(a if a >= 0 else (rank - 1) + a for a in axes)
    batch_axes = [a for a in range(len(query) - 1) if a not in axes]

    _bcast(call, value[0], query[0], "query and value must have the same batch size")
    if len(key) == len(query):
        for a in batch_axes:
            _bcast(call, key[a], query[a], f"axis {a} of query and key/value must match "
                                           "(it is not an attention axis)")
    _check_projection(call, op, "_query_dense", query[-1], "query")
    _check_projection(call, op, "_key_dense", key[-1], "key")
    _check_projection(call, op, "_value_dense", value[-1], "value")

    if len(key) == len(query):
        scores_tail = tuple(query[a] for a in axes) + tuple(key[a] for a in axes)
        _attention_mask(call, scores_tail, query[0],
                        "the attention_mask must broadcast to the attention scores "
                        "(query positions x key positions)")

    if scores_wanted:
        # At run time the scores are (batch dims, heads, query attention axes, key
        # attention axes); Keras declares (batch, heads, Tq, Tq) whatever the key's length
        # and the attention axes.  The layers after it were built for the declaration
        # where it is concrete, and their rules check them against the run-time shape.
        key_axes = tuple(key[a] for a in axes) if len(key) == len(query) else \
            tuple(key[1:-1])
        scores = (*(query[a] for a in batch_axes), op.num_heads,
                  *(query[a] for a in axes), *key_axes)
        call.runtime_output(1, "Keras declares the attention scores as (batch, heads, Tq, "
                               "Tq) for any key length and attention axes")
        return [output, scores]
    return output


# --- GroupedQueryAttention --------------------------------------------------------------


@rule("layers.GroupedQueryAttention")
def grouped_query_attention(call: Call) -> Any:
    op = call.op
    query, value, key, has_key = _query_value_key(call)
    if not query or not value or not key:
        raise ShapeError("query, key and value must have a feature axis")
    _need(call, value[-1], query[-1],
          "the last axes of query and value must be equal")
    _same_kv_axes(call, value, key)
    _bcast(call, value[0], query[0], "query and value must have the same batch size")
    _bcast(call, key[0], query[0], "query and key must have the same batch size")
    _check_projection(call, op, "_query_dense", query[-1], "query")
    _check_projection(call, op, "_key_dense", key[-1], "key")
    _check_projection(call, op, "_value_dense", value[-1], "value")
    if len(query) == 3 and len(key) == 3:
        _attention_mask(call, (query[1], key[1]), query[0],
                        "the attention_mask must broadcast to the attention scores "
                        "(query positions x key positions)")

    output = query
    if call.arg(7, "return_attention_scores", False):
        kv = key if has_key else value
        return [output, (query[0], op.num_query_heads, query[1] if len(query) > 1 else None,
                         kv[1] if len(kv) > 1 else None)]
    return output
