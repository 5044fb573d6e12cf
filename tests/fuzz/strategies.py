"""Hypothesis strategies over the graph generator (shrinkable: every choice is a draw)."""

from __future__ import annotations

from typing import Sequence

from hypothesis import assume
from hypothesis import strategies as st

from tests.fuzz.gen import BUG_KINDS, DrawChooser, GraphSpec, generate, inject


@st.composite
def valid_graphs(draw, *, min_layers: int = 3, max_layers: int = 12,
                 ops: Sequence[str] | None = None) -> GraphSpec:
    """A random valid Keras functional graph (see ``tests/fuzz/gen.py``)."""
    return generate(DrawChooser(draw), min_layers=min_layers, max_layers=max_layers, ops=ops)


@st.composite
def buggy_graphs(draw, kind: str | None = None, *, max_layers: int = 8) -> GraphSpec:
    """A valid graph with one injected shape bug of ``kind`` (any kind when None)."""
    kind = kind or draw(st.sampled_from(BUG_KINDS))
    spec = draw(valid_graphs(min_layers=1, max_layers=max_layers))
    bug = inject(spec, kind, DrawChooser(draw))
    assume(bug is not None)
    return bug
