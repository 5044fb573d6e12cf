"""Every rule: its doc, a bad fixture with exactly the marked findings, a clean good one.

Fixtures live in ``fixtures/rules/``: ``SC123_bad.py`` marks each line where a
finding is expected with ``# expect: SC123`` (several codes: ``# expect: SC123,
SC456``); ``SC123_good.py`` must produce no finding at all.  Fixtures of the run-time
family (SC8) are checked with ``--run``.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from shapecheck.rules import all_rules
from shapecheck.script.runner import check_files_together

ROOT = Path(__file__).resolve().parent.parent
RULES_DIR = ROOT / "fixtures" / "rules"
# Families whose rules need execution (--run).
RUN_FAMILIES = ("SC8",)
# Rules that cannot have a bad fixture, and where they are tested instead.
NO_FIXTURE = {"SC803": "fires only on a defect of shapecheck itself: tests/test_run.py "
                       "injects a wrong inferred shape"}
ALL_CODES = [r.code for r in all_rules()]
CODES = [c for c in ALL_CODES if c not in NO_FIXTURE]
_MARK = re.compile(r"#\s*expect:\s*([A-Z0-9, ]+)")
_IMPORTS_TF = re.compile(r"^\s*(import tensorflow|from tensorflow)", re.MULTILINE)


def backend() -> str:
    import keras

    return keras.backend.backend()


def skip_without_tensorflow(name: str, report: object) -> None:
    """Skip a fixture that needs TensorFlow when Keras runs on another backend (the
    ``backend`` tests run under JAX and PyTorch too, where TensorFlow is absent): it
    imports TensorFlow, or Keras says a layer it uses requires it."""
    if backend() == "tensorflow":
        return
    if _IMPORTS_TF.search((RULES_DIR / name).read_text()):
        pytest.skip(f"{name} imports TensorFlow: checked on the TensorFlow backend")
    error = getattr(report, "error", None)
    if error is not None and "requires TensorFlow" in error.message:
        pytest.skip(f"{name}: {error.exception}")


# Where a backend shows a bug earlier than TensorFlow: Keras builds a model on JAX
# with symbolic sizes (shape polymorphism) and on PyTorch with a made-up batch size, so
# a custom layer that hard-codes the batch is refused when the model is built (SC101)
# instead of failing when it runs (SC801).
SHOWN_AS = {"jax": {"SC801": "SC101"}, "torch": {"SC801": "SC101"}}
# What a backend cannot check and says so: a custom train_step is traced under
# TensorFlow only (SC902, an info), so a clean fixture with one has that info elsewhere.
SAID_OFF_TENSORFLOW = {"SC902"}


def expected_here(path: Path) -> set[tuple[str, int]]:
    """The marked findings, as this backend shows them."""
    shown = SHOWN_AS.get(backend(), {})
    return {(shown.get(code, code), line) for code, line in expected(path)}


def expected(path: Path) -> set[tuple[str, int]]:
    out = set()
    for n, text in enumerate(path.read_text().splitlines(), start=1):
        m = _MARK.search(text)
        if m:
            out |= {(code.strip(), n) for code in m.group(1).split(",") if code.strip()}
    return out


@pytest.fixture(scope="session")
def rule_reports() -> dict[str, object]:
    from shapecheck.verify.plans import RunOptions

    paths = sorted(str(p) for p in RULES_DIR.glob("SC*.py"))
    static = [p for p in paths if not Path(p).name.startswith(RUN_FAMILIES)]
    run = [p for p in paths if Path(p).name.startswith(RUN_FAMILIES)]
    reports = check_files_together(static, timeout=900)
    reports += check_files_together(run, timeout=900, run=RunOptions(device="cpu"))
    return {Path(p).name: r for p, r in zip(static + run, reports)}


def _found(report: object) -> set[tuple[str, int]]:
    return {(d.code, d.line) for d in report.diagnostics}


def _describe(report: object) -> str:
    lines = [f"{d.code} line {d.line}: {d.message}" for d in report.diagnostics]
    if report.error is not None:
        lines.append(f"script error: {report.error.message}")
    return "\n".join(lines) or "(nothing)"


@pytest.mark.backend
@pytest.mark.parametrize("code", CODES)
def test_bad_fixture_raises_exactly_the_marked_findings(code, rule_reports):
    name = f"{code}_bad.py"
    assert name in rule_reports, f"missing fixtures/rules/{name}"
    report = rule_reports[name]
    skip_without_tensorflow(name, report)
    want = expected_here(RULES_DIR / name)
    marked = expected(RULES_DIR / name)
    assert any(c == code for c, _ in marked), f"{name} marks no {code} finding"
    assert report.status != "failed", _describe(report)
    assert _found(report) == want, _describe(report)


@pytest.mark.backend
@pytest.mark.parametrize("code", CODES)
def test_good_fixture_is_clean(code, rule_reports):
    name = f"{code}_good.py"
    assert name in rule_reports, f"missing fixtures/rules/{name}"
    report = rule_reports[name]
    skip_without_tensorflow(name, report)
    assert report.error is None, report.error.message
    assert report.models, "the good fixture builds no model"
    said = SAID_OFF_TENSORFLOW if backend() != "tensorflow" else set()
    assert [d for d in report.diagnostics if d.code not in said] == [], _describe(report)


@pytest.mark.parametrize("code", ALL_CODES)
def test_rule_doc_has_every_section(code):
    spec = next(r for r in all_rules() if r.code == code)
    for section in ("## What it does", "## Why is this bad", "## Example", "## Use instead"):
        assert section in spec.doc, f"{code} doc lacks {section!r}"
    assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", spec.name), spec.name


def test_codes_and_names_are_unique():
    rules = all_rules()
    assert len({r.code for r in rules}) == len(rules)
    assert len({r.name for r in rules}) == len(rules)
