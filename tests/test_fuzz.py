"""Differential fuzzing with a fixed budget: random valid Keras graphs agree with Keras,
raise no finding, and injected shape bugs are found (``tests/fuzz``).

The long run is ``python benchmarks/fuzz.py --graphs N``.
"""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import pytest  # noqa: E402
from hypothesis import HealthCheck, given, note, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from tests.fuzz.gen import BUG_KINDS, RandomChooser, generate, inject  # noqa: E402
from tests.fuzz.harness import (check_injected, check_scripts, check_valid,  # noqa: E402
                                replay)
from tests.fuzz.strategies import buggy_graphs, valid_graphs  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore")

FIXED = dict(deadline=None, derandomize=True, database=None, print_blob=True,
             suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                    HealthCheck.filter_too_much])
KEPT = sorted((Path(__file__).parent / "fuzz" / "fixtures").glob("*.py"))


def test_generator_covers_forty_layer_types():
    names = set()
    for seed in range(300):
        names |= generate(RandomChooser(seed), max_layers=16).keras_names()
    classes = {n for n in names if n.startswith("layers.")}
    assert len(classes) >= 60, sorted(classes)
    assert len(names - classes) >= 30, sorted(names - classes)


@settings(max_examples=120, **FIXED)
@given(valid_graphs(max_layers=16))
def test_valid_graphs_agree_with_keras_and_raise_nothing(spec):
    note(spec.source())
    res = check_valid(spec, count=3)
    assert res.keras_error is None, "the generator made a graph Keras refuses: " + \
        res.keras_error
    assert res.ok, "\n".join(res.problems())


@settings(max_examples=1, **FIXED)
@given(st.tuples(*[buggy_graphs(kind) for kind in BUG_KINDS for _ in range(5)]))
def test_injected_bugs_get_an_error(specs):
    """Each injected bug gets an error-level finding: from ``check_model`` where Keras
    builds the model, from its script run under capture where Keras refuses it."""
    results, refused = [], []
    for spec in specs:
        res = check_injected(spec)
        if res is None:
            refused.append(spec)
        else:
            results.append((spec, res))
    results += zip(refused, check_scripts(refused) if refused else [])
    missed = [(spec, res) for spec, res in results if not res.detected]
    for spec, res in missed:
        note(f"missed {res.kind} ({res.path}; lower findings {res.other}, {res.error}):\n"
             + spec.source())
    assert not missed, [res.kind for _, res in missed]


@pytest.mark.parametrize("path", KEPT, ids=lambda p: p.stem)
def test_kept_reproducers(path):
    """Graphs the fuzzer once failed on, kept as scripts: they pass now."""
    res = replay(str(path))
    assert res.ok, "\n".join(res.problems())


def test_injected_units_change_breaks_the_merge():
    """A changed Dense whose output reaches both sides of a merge is no bug (seed 7282 once
    gave one): the injected graph must fail in Keras."""
    from tests.fuzz.harness import _data, build

    bug = inject(generate(RandomChooser(7282), max_layers=20), "wrong-units",
                 RandomChooser(7282 * 7919 + 1))
    with pytest.raises(Exception):
        model = build(bug)
        model(_data(bug.sizes(), [(i.name, i.shape, i.dtype) for i in bug.inputs], 2))


def test_attention_scores_stay_small():
    """MultiHeadAttention over two axes of (200, 63) gave 6 GB of scores (seed 7148)."""
    spec = generate(RandomChooser(7148), max_layers=20)
    lines = [n.line() for n in spec.nodes if "attention_axes=(1, 2)" in n.line()]
    assert not lines
    assert all(t.elements() < 10**7 for t in spec.tensors.values())
