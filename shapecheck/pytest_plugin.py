"""pytest plugin: shape checks as test assertions and as collected test items.

- The ``shapecheck`` fixture: ``shapecheck.check_script(path)`` and
  ``shapecheck.check_model(model, data=...)`` fail the test with the rendered
  findings when one is at the ``fail-on`` level, and return the report
  otherwise.
- ``shapecheck.snapshot(model)`` keeps the model's symbolic shape table in
  ``__snapshots__/<test module>/<test>.txt`` beside the test file: written the
  first time, compared on later runs (the test fails naming the layers whose
  shapes changed), rewritten by ``pytest --shapecheck-update``.  Where ``CI`` is
  set, a missing snapshot is written but fails the test: it was never committed.
- Functions marked ``@shapecheck.returns(spec)`` are checked as tests call them
  (a failure raises :class:`shapecheck.ShapeContractError`).
- ``pytest --shapecheck`` adds one test item per model script named in
  ``[tool.shapecheck] paths`` (folders are searched), like other lint
  plugins; the items are ordinary test items, so pytest-xdist spreads them.

Options are the command's (``--shapecheck-select``, ``--shapecheck-run``, ...)
over ``[tool.shapecheck]``.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import pytest

from shapecheck.decorators import enable_in_tests
from shapecheck.options import Settings, add_pytest_options, settings

enable_in_tests()  # `@shapecheck.returns` contracts are checked in tests

_ITEM_SUFFIX = "shapecheck"


def pytest_addoption(parser: pytest.Parser) -> None:
    add_pytest_options(parser)
    parser.getgroup("shapecheck").addoption(
        "--shapecheck-update", action="store_true", default=False,
        help="rewrite the shape snapshots (`shapecheck.snapshot(model)`) that changed")


def _settings(config: pytest.Config) -> Settings:
    """``[tool.shapecheck]`` (from the rootdir's pyproject.toml) under the pytest options."""
    given = {}
    for name in ("select", "ignore", "fail_on", "strict", "timeout", "run", "dims", "device",
                 "run_timeout"):
        value = config.getoption(f"shapecheck_{name}", default=None)
        if value is not None:
            given[name] = value
    from shapecheck.options import find_config

    return settings(given, config=find_config(str(config.rootpath)), use_config=False)


def rendered(report: Any) -> str:
    """The findings as the console shows them, without colour or shape tables."""
    from rich.console import Console

    from shapecheck.render.console import render

    buf = io.StringIO()
    render(report, Console(file=buf, width=110, color_system=None, highlight=False,
                           soft_wrap=True), tables=False)
    return buf.getvalue().strip()


def _finish(report: Any, s: Settings, what: str) -> Any:
    report.filter(s.select, s.ignore)
    report.suppress(s.per_file_ignores,
                    os.path.dirname(s.config_file) if s.config_file else None)
    code = report.exit_code_for(s.fail_on, s.strict)
    if code == 2:
        pytest.fail(f"shapecheck could not check {what}:\n{rendered(report)}", pytrace=False)
    if code == 1:
        pytest.fail(f"shapecheck found shape errors in {what}:\n{rendered(report)}",
                    pytrace=False)
    return report


def on_ci() -> bool:
    """Whether the ``CI`` environment variable says this is a CI run."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


_WRITTEN = pytest.StashKey[list]()


class Checker:
    """What the ``shapecheck`` fixture gives a test."""

    def __init__(self, s: Settings, node: pytest.Item | None = None) -> None:
        self.settings = s
        self.node = node
        self.snapshots = 0  # taken so far in this test

    def check_script(self, path: str | os.PathLike, *, args: tuple[str, ...] = ()) -> Any:
        """Check a script in a child process; fail the test on findings."""
        from shapecheck.report import Report
        from shapecheck.script.runner import check_file

        s = self.settings
        report = Report([check_file(str(path), timeout=s.timeout, args=list(args),
                                    run=s.run_options(), steps=s.steps)])
        return _finish(report, s, str(path))

    def check_model(self, model: Any, dims: dict[str, int] | None = None,
                    **kwargs: Any) -> Any:
        """Check a model built in the test (``data=``, ``targets=``, ``loss=`` as for
        :func:`shapecheck.check_model`); fail the test on findings."""
        import shapecheck

        s = self.settings
        kwargs.setdefault("run", s.run)
        kwargs.setdefault("device", s.device)
        report = shapecheck.check_model(model, dims or dict(s.dims) or None, **kwargs)
        return _finish(report, s, f"model `{getattr(model, 'name', model)}`")

    def snapshot(self, model: Any, *, name: str | None = None) -> str:
        """Compare the model's symbolic shape table with the test's snapshot (written
        when there is none); fail the test naming the layers whose shapes changed.
        Returns the table's text.  ``name`` tells several snapshots of a test apart
        (else they are numbered)."""
        from shapecheck.api import shape_snapshot
        from shapecheck.shapes.snapshots import file_name, settle

        if self.node is None:
            raise RuntimeError("snapshot() needs the `shapecheck` fixture of a test")
        node, config = self.node, self.node.config
        test = node.nodeid.split("::", 1)[-1].replace("::", ".")
        folder = node.path.parent / "__snapshots__" / node.path.stem
        path = folder / file_name(test, self.snapshots, name)
        self.snapshots += 1
        text = shape_snapshot(model)
        update = config.getoption("shapecheck_update", default=False)
        done = settle(path, text, update=update)
        try:
            shown = path.relative_to(config.rootpath).as_posix()
        except ValueError:
            shown = str(path)
        if done.status in ("written", "updated"):
            config.stash.setdefault(_WRITTEN, []).append(f"{done.status} {shown}")
        if done.status == "written" and on_ci() and not update:
            pytest.fail(f"shapecheck: no shape snapshot was committed for this test; "
                        f"written now to {shown} (CI is set, so the test fails). Run the "
                        "test locally and commit the file.", pytrace=False)
        if done.status == "changed":
            pytest.fail("\n".join([
                f"shapecheck: the shapes of model `{getattr(model, 'name', model)}` "
                f"changed from the snapshot {shown}:", *done.changes,
                "If the change is meant, rewrite it: pytest --shapecheck-update"]),
                pytrace=False)
        return text


@pytest.fixture
def shapecheck(request: pytest.FixtureRequest) -> Checker:
    """Check scripts and models; a finding at the fail-on level fails the test."""
    return Checker(_settings(request.config), request.node)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Any:
    """A failed shape contract (``assert_shapes``, ``assert_compatible``) is shown from
    the test's own frame, with its message, without shapecheck's frames."""
    report = yield
    excinfo = call.excinfo
    style = item.config.getoption("tbstyle", "auto")
    if (not report.failed or excinfo is None or style not in ("auto", "long", "short")
            or item.config.getoption("fulltrace", False)):
        return report
    from shapecheck.shapes.contracts import ShapeContractError, SpecError

    if not excinfo.errisinstance((ShapeContractError, SpecError)):
        return report
    package = Path(__file__).resolve().parent
    entries = list(excinfo.traceback)
    start = next((i for i, e in enumerate(entries) if Path(str(e.path)) == item.path), None)
    if start is None:
        return report
    keep = {id(e) for e in entries[start:]
            if package not in Path(str(e.path)).resolve().parents}
    report.longrepr = excinfo.getrepr(
        style="short" if style == "short" else "long", funcargs=True,
        tbfilter=lambda ei: ei.traceback.filter(lambda e: id(e) in keep))
    return report


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int,
                            config: pytest.Config) -> None:
    """The shape snapshots written or rewritten in this session, one line each."""
    done = config.stash.get(_WRITTEN, [])
    if done:
        terminalreporter.section("shapecheck snapshots")
        for line in done:
            terminalreporter.write_line(line)


# --- pytest --shapecheck: one item per script ------------------------------------------


class ShapecheckError(Exception):
    """A script's check failed; the message is the rendered report."""


class ScriptItem(pytest.Item):
    """One model script, checked in its own process."""

    def __init__(self, *, script: str, settings: Settings, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.script = script
        self.settings = settings
        self.add_marker("shapecheck")

    def runtest(self) -> None:
        from shapecheck.report import Report
        from shapecheck.script.runner import check_file

        s = self.settings
        report = Report([check_file(self.script, timeout=s.timeout, run=s.run_options(),
                                    steps=s.steps)])
        report.filter(s.select, s.ignore)
        report.suppress(s.per_file_ignores,
                        os.path.dirname(s.config_file) if s.config_file else None)
        if report.exit_code_for(s.fail_on, s.strict) != 0:
            raise ShapecheckError(rendered(report))

    def repr_failure(self, excinfo: Any, style: Any = None) -> str:
        if isinstance(excinfo.value, ShapecheckError):
            return str(excinfo.value)
        return super().repr_failure(excinfo, style)

    def reportinfo(self) -> tuple[Path, int | None, str]:
        """The headline of the item's report: ``shapecheck models/train.py``."""
        return self.path, None, f"shapecheck {self.script_name}"

    @property
    def script_name(self) -> str:
        """The script's path relative to the rootdir (as given when outside it)."""
        try:
            return self.path.relative_to(self.config.rootpath).as_posix()
        except ValueError:
            return str(self.path)


class ScriptFile(pytest.File):
    """A model script as a collector of its one check."""

    settings: Settings

    def collect(self) -> list[ScriptItem]:
        return [ScriptItem.from_parent(self, name=_ITEM_SUFFIX, script=str(self.path),
                                       settings=self.settings)]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "shapecheck: a shape check of a model script")


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config,
                                  items: list[pytest.Item]) -> None:
    if not config.getoption("shapecheck", default=False):
        return
    from shapecheck.script.runner import expand

    s = _settings(config)
    if not s.paths:
        raise pytest.UsageError("--shapecheck: no model scripts; set paths in "
                                "[tool.shapecheck] of pyproject.toml")
    seen = {item.nodeid for item in items}
    root = config.rootpath
    for script in expand([p if os.path.isabs(p) else str(root / p) for p in s.paths]):
        node = ScriptFile.from_parent(session, path=Path(script).resolve())
        node.settings = s
        for item in node.collect():
            if item.nodeid not in seen:
                items.append(item)
                seen.add(item.nodeid)
