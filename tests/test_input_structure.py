"""Data is matched to a model's inputs (and targets to its outputs) exactly as Keras 3
matches it: by the structure given to ``keras.Model`` (a dict by its keys, a flat list by
the inputs' names or by position, nesting by position), for inputs that are not
``keras.Input`` tensors too.

Keras is the oracle: each group of cases is one script, run for real (every ``fit`` in a
``try``: Keras accepts or rejects it) and under shapecheck.  A case Keras accepts has no
error finding; a case it rejects has the structure finding (SC606 for inputs, SC702 for
targets) or the shape finding it leads to.  The verdicts written here are Keras 3's own,
checked again by every run, so a Keras that changes its mind shows up as such.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

import shapecheck


@dataclass
class Case:
    name: str
    body: str  # builds a model and calls `fit` once, on its own lines
    keras: str  # "accept" | "reject": what Keras 3 does with it
    finding: tuple[str, str, str] | None = None  # (code, severity, words in the message)


HEADER = '''\
import numpy as np
import keras
from keras import layers

N = 16


def arr(*shape):
    return np.random.rand(N, *shape).astype("float32")


Y = arr(1)


def two_inputs(name_a="a", name_b="b"):
    a = keras.Input((2,), name=name_a)
    b = keras.Input((3,), name=name_b)
    return a, b, layers.Dense(1)(layers.concatenate([a, b]))


def norm(t):
    return layers.Normalization(mean=0.0, variance=1.0)(t)


def three_inputs():
    a, b, _ = two_inputs()
    c = keras.Input((4,), name="c")
    return a, b, c, layers.Dense(1)(layers.concatenate([a, b, c]))


def two_outputs(first="d1", second="d2"):
    x = keras.Input((2,), name="x")
    return x, layers.Dense(1, name=first)(x), layers.Dense(3, name=second)(x)

'''

RUNNER = '''
for _name, _fn in list(globals().items()):
    if _name.startswith("case_"):
        try:
            _fn()
            _verdict = "accept"
        except Exception as _err:
            _verdict = "reject"
        print("CASE", _name[len("case_"):], _verdict, flush=True)
'''

GROUPS: dict[str, list[Case]] = {
    "dict_of_inputs": [
        Case("same_keys", """
            a, b, out = two_inputs()
            m = keras.Model({"a": a, "b": b}, out)
            m.compile("adam", "mse")
            m.fit({"a": arr(2), "b": arr(3)}, Y, epochs=1, verbose=0)
        """, "accept"),
        Case("keys_differ_fed_by_keys", """
            a, b, out = two_inputs("in_a", "in_b")
            m = keras.Model({"x1": a, "x2": b}, out)
            m.compile("adam", "mse")
            m.fit({"x1": arr(2), "x2": arr(3)}, Y, epochs=1, verbose=0)
        """, "accept"),
        Case("keys_differ_fed_by_input_names", """
            a, b, out = two_inputs("in_a", "in_b")
            m = keras.Model({"x1": a, "x2": b}, out)
            m.compile("adam", "mse")
            m.fit({"in_a": arr(2), "in_b": arr(3)}, Y, epochs=1, verbose=0)
        """, "reject", ("SC606", "error", "keys of the dict of inputs")),
        Case("keys_naming_the_other_input", """
            a, b, out = two_inputs("b", "a")
            m = keras.Model({"a": a, "b": b}, out)
            m.compile("adam", "mse")
            m.fit({"a": arr(2), "b": arr(3)}, Y, epochs=1, verbose=0)
        """, "accept"),
        Case("missing_key", """
            a, b, out = two_inputs()
            m = keras.Model({"a": a, "b": b}, out)
            m.compile("adam", "mse")
            m.fit({"a": arr(2)}, Y, epochs=1, verbose=0)
        """, "reject", ("SC606", "error", "no data for input(s) 'b'")),
        Case("list_for_sorted_keys", """
            a, b, out = two_inputs()
            m = keras.Model({"a": a, "b": b}, out)
            m.compile("adam", "mse")
            m.fit([arr(2), arr(3)], Y, epochs=1, verbose=0)
        """, "accept"),
        Case("list_for_unsorted_keys", """
            a, b, out = two_inputs()
            m = keras.Model({"b": b, "a": a}, out)
            m.compile("adam", "mse")
            m.fit([arr(3), arr(2)], Y, epochs=1, verbose=0)
        """, "reject", ("SC606", "error", "not in sorted order")),
        Case("extra_key_sorted_last", """
            a, b, out = two_inputs()
            m = keras.Model({"a": a, "b": b}, out)
            m.compile("adam", "mse")
            m.fit({"a": arr(2), "b": arr(3), "c": arr(5)}, Y, epochs=1, verbose=0)
        """, "accept"),
        # Keras flattens the dict in sorted key order and feeds inputs by position: "aa"
        # goes to input "b" (a shape Keras then refuses, or silently takes)
        Case("extra_key_sorted_between", """
            a, b, out = two_inputs()
            m = keras.Model({"a": a, "b": b}, out)
            m.compile("adam", "mse")
            m.fit({"a": arr(2), "b": arr(3), "aa": arr(5)}, Y, epochs=1, verbose=0)
        """, "reject", ("SC603", "error", "x['aa'] is")),
        Case("extra_key_between_same_shape", """
            a, b, out = two_inputs()
            m = keras.Model({"a": a, "b": b}, out)
            m.compile("adam", "mse")
            m.fit({"a": arr(2), "b": arr(3), "aa": arr(3)}, Y, epochs=1, verbose=0)
        """, "accept", ("SC606", "warning", "input `b` gets x['aa'], not x['b']")),
    ],
    "not_input_tensors": [
        Case("issue_normalization_dict", """
            data = {"age": arr(1), "fare": arr(1)}
            y = np.random.randint(0, 2, (N, 1))
            inputs = {k: keras.Input(shape=(1,), name=k) for k in data}
            normed = {k: norm(v) for k, v in inputs.items()}
            x = layers.concatenate(list(normed.values()))
            out = layers.Dense(1, activation="sigmoid")(x)
            m = keras.Model(normed, out)
            m.compile("adam", "binary_crossentropy")
            m.fit(data, y, epochs=1, verbose=0)
        """, "accept"),
        Case("normalization_dict_other_keys", """
            a, b, _ = two_inputs()
            na, nb = norm(a), norm(b)
            m = keras.Model({"first": na, "second": nb}, layers.Dense(1)(layers.concatenate([na, nb])))
            m.compile("adam", "mse")
            m.fit({"first": arr(2), "second": arr(3)}, Y, epochs=1, verbose=0)
        """, "accept"),
        Case("normalization_list_fed_list", """
            a, b, _ = two_inputs()
            na, nb = norm(a), norm(b)
            m = keras.Model([na, nb], layers.Dense(1)(layers.concatenate([na, nb])))
            m.compile("adam", "mse")
            m.fit([arr(2), arr(3)], Y, epochs=1, verbose=0)
        """, "accept"),
        Case("normalization_list_fed_dict_by_input_names", """
            a, b, _ = two_inputs()
            na, nb = norm(a), norm(b)
            m = keras.Model([na, nb], layers.Dense(1)(layers.concatenate([na, nb])))
            m.compile("adam", "mse")
            m.fit({"a": arr(2), "b": arr(3)}, Y, epochs=1, verbose=0)
        """, "reject", ("SC606", "error", "not `keras.Input`s")),
        Case("lambda_fed_dict", """
            a = keras.Input((2,), name="a")
            doubled = layers.Lambda(lambda t: t * 2.0)(a)
            m = keras.Model(doubled, layers.Dense(1)(doubled))
            m.compile("adam", "mse")
            m.fit({"a": arr(2)}, Y, epochs=1, verbose=0)
        """, "reject", ("SC606", "error", "not `keras.Input`s")),
        Case("lambda_fed_array", """
            a = keras.Input((2,), name="a")
            doubled = layers.Lambda(lambda t: t * 2.0)(a)
            m = keras.Model(doubled, layers.Dense(1)(doubled))
            m.compile("adam", "mse")
            m.fit(arr(2), Y, epochs=1, verbose=0)
        """, "accept"),
    ],
    "list_of_inputs": [
        Case("dict_by_names", """
            a, b, out = two_inputs()
            m = keras.Model([a, b], out)
            m.compile("adam", "mse")
            m.fit({"b": arr(3), "a": arr(2)}, Y, epochs=1, verbose=0)
        """, "accept"),
        Case("dict_by_names_not_sorted", """
            a, b, out = two_inputs("z", "b")
            m = keras.Model([a, b], out)
            m.compile("adam", "mse")
            m.fit({"z": arr(2), "b": arr(3)}, Y, epochs=1, verbose=0)
        """, "accept"),
        Case("list", """
            a, b, out = two_inputs()
            m = keras.Model([a, b], out)
            m.compile("adam", "mse")
            m.fit([arr(2), arr(3)], Y, epochs=1, verbose=0)
        """, "accept"),
        Case("tuple", """
            a, b, out = two_inputs()
            m = keras.Model([a, b], out)
            m.compile("adam", "mse")
            m.fit((arr(2), arr(3)), Y, epochs=1, verbose=0)
        """, "accept"),
        Case("dict_extra_key", """
            a, b, out = two_inputs()
            m = keras.Model([a, b], out)
            m.compile("adam", "mse")
            m.fit({"a": arr(2), "b": arr(3), "c": arr(5)}, Y, epochs=1, verbose=0)
        """, "accept"),
        Case("dict_missing_key", """
            a, b, out = two_inputs()
            m = keras.Model([a, b], out)
            m.compile("adam", "mse")
            m.fit({"a": arr(2)}, Y, epochs=1, verbose=0)
        """, "reject", ("SC606", "error", "no data for input(s) 'b'")),
        Case("one_array_for_two", """
            a, b, out = two_inputs()
            m = keras.Model([a, b], out)
            m.compile("adam", "mse")
            m.fit(arr(2), Y, epochs=1, verbose=0)
        """, "reject", ("SC606", "error", "the data gives one array")),
    ],
    "single_input": [
        Case("dict_by_name", """
            a = keras.Input((2,), name="a")
            m = keras.Model(a, layers.Dense(1)(a))
            m.compile("adam", "mse")
            m.fit({"a": arr(2)}, Y, epochs=1, verbose=0)
        """, "accept"),
        Case("dict_other_key", """
            a = keras.Input((2,), name="a")
            m = keras.Model(a, layers.Dense(1)(a))
            m.compile("adam", "mse")
            m.fit({"zzz": arr(2)}, Y, epochs=1, verbose=0)
        """, "reject", ("SC606", "error", "no data for input(s) 'a'")),
        Case("dict_extra_key", """
            a = keras.Input((2,), name="a")
            m = keras.Model(a, layers.Dense(1)(a))
            m.compile("adam", "mse")
            m.fit({"a": arr(2), "b": arr(7)}, Y, epochs=1, verbose=0)
        """, "accept"),
        Case("list_of_one_fed_dict_other_key", """
            a = keras.Input((2,), name="a")
            m = keras.Model([a], layers.Dense(1)(a))
            m.compile("adam", "mse")
            m.fit({"zzz": arr(2)}, Y, epochs=1, verbose=0)
        """, "reject", ("SC606", "error", "no data for input(s) 'a'")),
        Case("list_of_one", """
            a = keras.Input((2,), name="a")
            m = keras.Model(a, layers.Dense(1)(a))
            m.compile("adam", "mse")
            m.fit([arr(2)], Y, epochs=1, verbose=0)
        """, "accept"),
        Case("two_arrays_for_one", """
            a = keras.Input((2,), name="a")
            m = keras.Model(a, layers.Dense(1)(a))
            m.compile("adam", "mse")
            m.fit([arr(2), arr(2)], Y, epochs=1, verbose=0)
        """, "reject", ("SC606", "error", "the data gives 2")),
        Case("dict_model_fed_other_key", """
            a = keras.Input((2,), name="a")
            m = keras.Model({"k": a}, layers.Dense(1)(a))
            m.compile("adam", "mse")
            m.fit({"zzz": arr(2)}, Y, epochs=1, verbose=0)
        """, "reject", ("SC606", "error", "no data for input(s) 'k'")),
        Case("dict_model_fed_array", """
            a = keras.Input((2,), name="a")
            m = keras.Model({"k": a}, layers.Dense(1)(a))
            m.compile("adam", "mse")
            m.fit(arr(2), Y, epochs=1, verbose=0)
        """, "accept"),
        Case("sequential_dict_by_input_name", """
            m = keras.Sequential([keras.Input((2,), name="feat"), layers.Dense(1)])
            m.compile("adam", "mse")
            m.fit({"feat": arr(2)}, Y, epochs=1, verbose=0)
        """, "accept"),
        Case("sequential_dict_other_key", """
            m = keras.Sequential([keras.Input((2,), name="feat"), layers.Dense(1)])
            m.compile("adam", "mse")
            m.fit({"zzz": arr(2)}, Y, epochs=1, verbose=0)
        """, "reject", ("SC606", "error", "no data for input(s) 'feat'")),
    ],
    "nested": [
        Case("dict_of_list", """
            a, b, c, out = three_inputs()
            m = keras.Model({"pair": [a, b], "c": c}, out)
            m.compile("adam", "mse")
            m.fit({"pair": [arr(2), arr(3)], "c": arr(4)}, Y, epochs=1, verbose=0)
        """, "accept"),
        Case("dict_of_tuple_fed_list", """
            a, b, c, out = three_inputs()
            m = keras.Model({"pair": (a, b), "c": c}, out)
            m.compile("adam", "mse")
            m.fit({"pair": [arr(2), arr(3)], "c": arr(4)}, Y, epochs=1, verbose=0)
        """, "accept"),
        Case("list_of_lists", """
            a, b, c, out = three_inputs()
            m = keras.Model([[a, b], c], out)
            m.compile("adam", "mse")
            m.fit(([arr(2), arr(3)], arr(4)), Y, epochs=1, verbose=0)
        """, "accept"),
        Case("list_of_lists_fed_flat", """
            a, b, c, out = three_inputs()
            m = keras.Model([[a, b], c], out)
            m.compile("adam", "mse")
            m.fit([arr(2), arr(3), arr(4)], Y, epochs=1, verbose=0)
        """, "accept"),
        Case("list_of_lists_fed_dict_by_names", """
            a, b, c, out = three_inputs()
            m = keras.Model([[a, b], c], out)
            m.compile("adam", "mse")
            m.fit({"a": arr(2), "b": arr(3), "c": arr(4)}, Y, epochs=1, verbose=0)
        """, "reject", ("SC606", "error", "inputs are nested")),
        Case("dict_of_list_missing_one", """
            a, b, c, out = three_inputs()
            m = keras.Model({"pair": [a, b], "c": c}, out)
            m.compile("adam", "mse")
            m.fit({"pair": [arr(2)], "c": arr(4)}, Y, epochs=1, verbose=0)
        """, "reject", ("SC606", "error", "nothing at x['pair'][1]")),
    ],
    "targets": [
        Case("dict_outputs_by_keys", """
            x, o1, o2 = two_outputs()
            m = keras.Model(x, {"p": o1, "q": o2})
            m.compile("adam", "mse")
            m.fit(arr(2), {"p": arr(1), "q": arr(3)}, epochs=1, verbose=0)
        """, "accept"),
        Case("dict_outputs_by_layer_names", """
            x, o1, o2 = two_outputs()
            m = keras.Model(x, {"p": o1, "q": o2})
            m.compile("adam", "mse")
            m.fit(arr(2), {"d1": arr(1), "d2": arr(3)}, epochs=1, verbose=0)
        """, "reject", ("SC702", "error", "no data for output(s) 'p', 'q'")),
        Case("dict_outputs_extra_key", """
            x, o1, o2 = two_outputs()
            m = keras.Model(x, {"p": o1, "q": o2})
            m.compile("adam", "mse")
            m.fit(arr(2), {"p": arr(1), "q": arr(3), "r": arr(4)}, epochs=1, verbose=0)
        """, "reject", ("SC702", "error", "data key(s) 'r' match no output")),
        Case("dict_outputs_fed_list", """
            x, o1, o2 = two_outputs()
            m = keras.Model(x, {"p": o1, "q": o2})
            m.compile("adam", "mse")
            m.fit(arr(2), [arr(1), arr(3)], epochs=1, verbose=0)
        """, "accept"),
        Case("list_outputs_by_layer_names", """
            x, o1, o2 = two_outputs()
            m = keras.Model(x, [o1, o2])
            m.compile("adam", "mse")
            m.fit(arr(2), {"d2": arr(3), "d1": arr(1)}, epochs=1, verbose=0)
        """, "accept"),
        Case("list_outputs_dict_extra_key", """
            x, o1, o2 = two_outputs()
            m = keras.Model(x, [o1, o2])
            m.compile("adam", "mse")
            m.fit(arr(2), {"d1": arr(1), "d2": arr(3), "zz": arr(4)}, epochs=1, verbose=0)
        """, "reject", ("SC702", "error", "data key(s) 'zz' match no output")),
        Case("single_output_dict", """
            x = keras.Input((2,), name="x")
            m = keras.Model(x, layers.Dense(1, name="d")(x))
            m.compile("adam", "mse")
            m.fit(arr(2), {"d": arr(1)}, epochs=1, verbose=0)
        """, "reject", ("SC702", "error", "not a dict of outputs")),
        Case("single_output_dict_model", """
            x = keras.Input((2,), name="x")
            m = keras.Model(x, {"out": layers.Dense(1, name="d")(x)})
            m.compile("adam", "mse")
            m.fit(arr(2), {"out": arr(1)}, epochs=1, verbose=0)
        """, "accept"),
        Case("single_output_dict_model_fed_array", """
            x = keras.Input((2,), name="x")
            m = keras.Model(x, {"out": layers.Dense(1, name="d")(x)})
            m.compile("adam", "mse")
            m.fit(arr(2), arr(1), epochs=1, verbose=0)
        """, "accept"),
    ],
}


def write_script(path: Path, cases: list[Case]) -> dict[str, tuple[int, int]]:
    """The group's script; each case's first and last line."""
    lines = HEADER.splitlines()
    spans = {}
    for case in cases:
        lines += ["", ""]
        start = len(lines) + 1
        lines.append(f"def case_{case.name}():")
        lines += ["    " + line for line in textwrap.dedent(case.body).strip().splitlines()]
        spans[case.name] = (start, len(lines))
    path.write_text("\n".join(lines) + "\n" + RUNNER)
    return spans


def keras_verdicts(script: Path) -> dict[str, str]:
    """What Keras itself does with each case: the script run for real."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    proc = subprocess.run([sys.executable, str(script)], cwd=script.parent, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return {w[1]: w[2] for w in (line.split() for line in proc.stdout.splitlines())
            if len(w) == 3 and w[0] == "CASE"}


def fed_at(data: str | None, name: str) -> int:
    """The line of the `fit` whose data a finding is about (a finding may sit at the line
    that caused it, such as the helper's `keras.Input`); 0 when it names none."""
    found = re.search(rf"{re.escape(name)}:(\d+)", data or "")
    return int(found.group(1)) if found else 0


@pytest.mark.parametrize("group", sorted(GROUPS))
def test_data_matched_to_the_model_as_keras_matches_it(group: str, tmp_path: Path) -> None:
    cases = GROUPS[group]
    script = tmp_path / f"{group}.py"
    spans = write_script(script, cases)
    [f] = shapecheck.check_script(str(script)).files
    assert f.error is None, f.error
    oracle = keras_verdicts(script)
    for case in cases:
        assert oracle.get(case.name) == case.keras, (case.name, oracle.get(case.name))
        lo, hi = spans[case.name]
        found = [d for d in f.diagnostics if lo <= (d.line or 0) <= hi
                 or lo <= fed_at(d.data, script.name) <= hi]
        words = [(d.code, d.severity, d.message) for d in found]
        errors = [d for d in found if d.severity == "error"]
        if case.keras == "accept":
            assert not errors, (case.name, words)
        else:
            assert errors, (case.name, "Keras rejects it; no error found")
        if case.finding is None:
            assert not found, (case.name, words)
        else:
            code, severity, text = case.finding
            assert any(d.code == code and d.severity == severity and text in d.message
                       for d in found), (case.name, words)
