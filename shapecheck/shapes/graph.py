"""A Keras functional model as a networkx graph of layer calls.

One graph node per layer (or ``keras.ops``) *call*; an edge from the call
that produced a tensor to each call that consumes it.  The walk is iterative,
so graphs far deeper than Python's recursion limit are fine.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from typing import Any, Iterator

import networkx as nx


@dataclass
class LayerCall:
    """One call of a layer or op in a model graph."""

    id: int
    op: Any  # the Keras Operation (layer, op, or nested model)
    knode: Any  # the Keras Node recording the call; None for bare inputs
    name: str
    cls: str
    inputs: list[int]  # tensor keys, in argument order
    outputs: list[int]  # tensor keys, in Keras's flattened order
    path: str | None = None
    line: int | None = None
    seq: int = 0  # creation order, for a stable listing
    internal: bool = False  # made by Keras inside another call (e.g. mask ops)
    col: int | None = None
    end_col: int | None = None
    failure: Any = None  # a shapecheck.script.standin.Failure when Keras refused the call
    created: tuple | None = None  # (path, line, col, end_col) where the user made the layer
    inner_failure: Any = None  # a refused call inside a user's layer traced in place

    @property
    def is_input(self) -> bool:
        return self.knode is None or not self.inputs and self.cls == "InputLayer"


@dataclass
class ModelGraph:
    """The calls of one model, in a topological order, and their wiring."""

    model: Any
    graph: nx.DiGraph
    calls: list[LayerCall]
    inputs: list[int]  # tensor keys of the model's inputs
    outputs: list[int]  # tensor keys of the model's outputs
    producer: dict[int, tuple[int, int]] = field(default_factory=dict)  # tensor -> (call id, index)
    tensors: dict[int, Any] = field(default_factory=dict)  # tensor key -> KerasTensor

    def __iter__(self) -> Iterator[LayerCall]:
        return iter(self.calls)


def key(tensor: Any) -> int:
    return id(tensor)


def model_io(model: Any) -> tuple[list[Any], list[Any]]:
    """Flat lists of a functional model's input and output KerasTensors."""
    from keras import tree

    inner = getattr(model, "_functional", None) or model
    inputs = inner._inputs_struct if hasattr(inner, "_inputs_struct") else inner.inputs
    outputs = inner._outputs_struct if hasattr(inner, "_outputs_struct") else inner.outputs
    return tree.flatten(inputs), tree.flatten(outputs)


def build_graph(model: Any) -> ModelGraph:
    """Walk ``model`` from its outputs back to its inputs, without recursion."""
    inputs, outputs = model_io(model)
    input_keys = {key(t) for t in inputs}
    tensors: dict[int, Any] = {}
    calls: dict[int, LayerCall] = {}  # id(keras node) -> call
    producer: dict[int, tuple[int, int]] = {}

    def call_for_input(t: Any) -> LayerCall:
        hist = getattr(t, "_keras_history", None)
        op = hist.operation if hist is not None else None
        knode = op._inbound_nodes[hist.node_index] if op is not None else None
        if knode is not None and not knode.arguments.keras_tensors:
            return _make_call(op, knode)
        # An input that is not an Input tensor: treat it as a bare entry point.
        name = getattr(t, "name", None) or "input"
        return LayerCall(id=0, op=op, knode=None, name=name, cls="InputLayer",
                         inputs=[], outputs=[key(t)])

    stack = list(outputs)
    seen: set[int] = set()
    while stack:
        t = stack.pop()
        k = key(t)
        if k in seen:
            continue
        seen.add(k)
        tensors[k] = t
        if k in input_keys:
            call = call_for_input(t)
            nid = id(call.knode) if call.knode is not None else k
        else:
            hist = t._keras_history
            op = hist.operation
            knode = op._inbound_nodes[hist.node_index]
            nid = id(knode)
            call = calls.get(nid) or _make_call(op, knode)
            for parent in knode.arguments.keras_tensors:
                if key(parent) not in seen:
                    stack.append(parent)
        if nid not in calls:
            call.id = len(calls)
            calls[nid] = call
        for i, out in enumerate(calls[nid].outputs):
            producer[out] = (calls[nid].id, i)
        for out_t in (calls[nid].knode.outputs if calls[nid].knode is not None else [t]):
            tensors.setdefault(key(out_t), out_t)

    for t in inputs:  # unused inputs still belong to the model
        k = key(t)
        if k not in seen:
            call = call_for_input(t)
            call.id = len(calls)
            calls[id(call.knode) if call.knode is not None else k] = call
            tensors[k] = t
            producer[k] = (call.id, 0)

    by_id = {c.id: c for c in calls.values()}
    g = nx.DiGraph()
    for c in by_id.values():
        g.add_node(c.id, call=c)
    for c in by_id.values():
        for pos, tk in enumerate(c.inputs):
            if tk in producer:
                src, idx = producer[tk]
                if g.has_edge(src, c.id):
                    g.edges[src, c.id]["tensors"].append((idx, pos))
                else:
                    g.add_edge(src, c.id, tensors=[(idx, pos)])
    ordered = _topological(g, by_id)
    return ModelGraph(model=model, graph=g, calls=ordered,
                      inputs=[key(t) for t in inputs],
                      outputs=[key(t) for t in outputs],
                      producer=producer, tensors=tensors)


def _make_call(op: Any, knode: Any) -> LayerCall:
    site = tuple(getattr(knode, "_shapecheck_site", None) or ()) + (None,) * 4
    failure = getattr(op, "failure", None) if hasattr(op, "failed_op") else None
    if failure is not None:  # a stand-in for a refused call: show the real layer
        op = op.failed_op
    # The graph of a user's layer traced in place (shapecheck.script.trace): its class.
    traced = getattr(op, "_shapecheck_trace", None)
    return LayerCall(
        id=0, op=op, knode=knode,
        name=getattr(op, "name", type(op).__name__),
        cls=type(traced if traced is not None else op).__name__,
        inputs=[key(t) for t in knode.arguments.keras_tensors],
        outputs=[key(t) for t in knode.outputs],
        path=site[0], line=site[1], col=site[2], end_col=site[3],
        seq=getattr(knode, "_shapecheck_seq", 0),
        internal=getattr(knode, "_shapecheck_internal", False),
        failure=failure,
        created=getattr(op, "_shapecheck_created", None),
        inner_failure=(getattr(op, "_shapecheck_failures", None) or [None])[0],
    )


def _topological(g: nx.DiGraph, by_id: dict[int, LayerCall]) -> list[LayerCall]:
    """Kahn's algorithm, taking ready calls in the order they were made."""
    indeg = {n: g.in_degree(n) for n in g.nodes}

    def rank(n: int) -> tuple[int, int]:
        c = by_id[n]
        return (c.seq if c.seq else 1 << 60, -n)

    ready = [(rank(n), n) for n, d in indeg.items() if d == 0]
    heapq.heapify(ready)
    out: list[LayerCall] = []
    while ready:
        _, n = heapq.heappop(ready)
        out.append(by_id[n])
        for m in g.successors(n):
            indeg[m] -= 1
            if indeg[m] == 0:
                heapq.heappush(ready, (rank(m), m))
    if len(out) != len(by_id):  # pragma: no cover - Keras graphs are acyclic
        raise ValueError("model graph has a cycle")
    return out
