"""Every option of a check, defined once for the command, pytest and ``pyproject.toml``.

An :class:`Option` knows its flag, its help, how to parse a value, and
whether ``[tool.shapecheck]`` may set it.  :func:`settings` merges the three
sources: built-in defaults < ``[tool.shapecheck]`` < the command line.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from typing import Any, Callable

from shapecheck.script.protocol import DEFAULT_STEPS, DEFAULT_TIMEOUT
from shapecheck.verify import DEFAULT_RUN_TIMEOUT

FORMATS = ("rich", "text", "json", "sarif", "github")
FAIL_ON = ("error", "warning", "never")
DEVICES = ("auto", "cpu", "gpu")


class OptionError(ValueError):
    """A value that is not what its option takes (from the command line or a config)."""


def codes(value: Any) -> list[str]:
    """``"SC3,SC401"`` or ``["SC3", "sc401"]`` -> ``["SC3", "SC401"]``."""
    items = value if isinstance(value, (list, tuple)) else [value]
    return [c.strip().upper() for v in items for c in str(v).split(",") if c.strip()]


def sizes(value: Any) -> dict[str, int]:
    """``"batch=3,T=7"``, a list of such strings, or a table -> ``{"batch": 3, "T": 7}``."""
    if isinstance(value, dict):
        pairs = [(str(k), v) for k, v in value.items()]
    else:
        items = value if isinstance(value, (list, tuple)) else [value]
        pairs = []
        for item in (x.strip() for v in items for x in str(v).split(",")):
            if not item:
                continue
            name, eq, size = item.partition("=")
            if not eq:
                raise OptionError(f"{item!r} is not NAME=SIZE")
            pairs.append((name.strip(), size.strip()))
    out = {}
    for name, size in pairs:
        try:
            n = int(size)
        except (TypeError, ValueError):
            n = 0
        if not name or n < 1:
            raise OptionError(f"{name}={size!r}: a dim's size is a positive integer")
        out[name] = n
    return out


def _positive(kind: type) -> Callable[[Any], Any]:
    def parse(value: Any) -> Any:
        try:
            v = kind(value)
        except (TypeError, ValueError):
            raise OptionError(f"{value!r} is not a number") from None
        if v <= 0:
            raise OptionError(f"{value!r} must be positive")
        return v
    return parse


def _choice(choices: tuple[str, ...]) -> Callable[[Any], str]:
    def parse(value: Any) -> str:
        if str(value) not in choices:
            raise OptionError(f"{value!r} is not one of {', '.join(choices)}")
        return str(value)
    return parse


def _flag(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    raise OptionError(f"{value!r} is not true or false")


def _paths(value: Any) -> list[str]:
    items = value if isinstance(value, (list, tuple)) else [value]
    return [str(v) for v in items]


def _file(value: Any) -> str:
    if not isinstance(value, (str, os.PathLike)) or not str(value).strip():
        raise OptionError(f"{value!r} is not a file name")
    return str(value)


def _per_file(value: Any) -> dict[str, list[str]]:
    if not isinstance(value, dict):
        raise OptionError("per-file-ignores is a table of glob = [codes]")
    return {str(k): codes(v) for k, v in value.items()}


@dataclass(frozen=True)
class Option:
    """One setting: its name in ``Settings``, its flag, help and parser."""

    name: str
    flag: str | None  # None: config only
    help: str
    parse: Callable[[Any], Any]
    default: Any = None
    metavar: str | None = None
    is_flag: bool = False
    repeat: bool = False  # the flag may be given several times (values add up)
    choices: tuple[str, ...] | None = None
    config: bool = True  # may be set in [tool.shapecheck]
    group: str = "check"

    @property
    def key(self) -> str:
        """The name in ``[tool.shapecheck]``: ``fail-on``, ``per-file-ignores``."""
        return self.name.replace("_", "-")


OPTIONS: tuple[Option, ...] = (
    Option("paths", None, "scripts or folders to check when none is named", _paths, []),
    Option("format", "--format", "output format: rich console, text (one line per "
           "finding), json, sarif (SARIF 2.1.0), github (workflow annotations)",
           _choice(FORMATS), "rich", choices=FORMATS, group="output"),
    Option("fail_on", "--fail-on", "lowest severity that makes the exit status 1 "
           "(default error; never: always 0 unless a script could not be checked)",
           _choice(FAIL_ON), "error", choices=FAIL_ON, group="output"),
    Option("strict", "--strict", "exit 2 when a model could not be checked (a subclassed "
           "model, a Sequential model without an input shape) or a script built no model",
           _flag, False, is_flag=True, group="output"),
    Option("no_tables", "--no-tables", "rich output: findings only, without each model's "
           "shape table", _flag, False, is_flag=True, group="output"),
    Option("html", "--html", "also write one self-contained HTML page: each model's layer "
           "graph with its shapes, the findings beside it", _file, None, metavar="FILE",
           config=False, group="output"),
    Option("svg", "--svg", "also write the layer graphs as one SVG picture (models stacked, "
           "findings marked)", _file, None, metavar="FILE", config=False, group="output"),
    Option("timeout", "--timeout", f"time limit per script in seconds (default "
           f"{DEFAULT_TIMEOUT:g})", _positive(float), DEFAULT_TIMEOUT, metavar="SECONDS"),
    Option("steps", "--steps", f"a hand-written training loop (optimizer.apply_gradients) "
           f"is stopped after this many steps, as if the script ended there (default "
           f"{DEFAULT_STEPS})", _positive(int), DEFAULT_STEPS, metavar="K"),
    Option("jobs", "-j", "scripts checked at once, each in its own process (default: the "
           "number of CPU cores)", _positive(int), None, metavar="N"),
    Option("select", "--select", "only these rule codes or prefixes (comma-separated, "
           "e.g. SC3,SC401)", codes, None, metavar="CODES", repeat=True),
    Option("ignore", "--ignore", "leave out these rule codes or prefixes (the longer "
           "prefix wins over --select)", codes, None, metavar="CODES", repeat=True),
    Option("per_file_ignores", None, "codes to leave out per file glob", _per_file, {}),
    Option("run", "--run", "execute the models on the sampled data (or on made-up "
           "inputs) and mark each finding as seen or not", _flag, False, is_flag=True,
           group="execution"),
    Option("dims", "--dims", "sizes of named dims for made-up inputs (e.g. batch=3,T=7); "
           "by default a few small sizes, each execution other ones", sizes, {},
           metavar="NAME=SIZE,...", repeat=True, group="execution"),
    Option("device", "--device", "where to execute (default auto: a GPU when TensorFlow "
           "sees one)", _choice(DEVICES), "auto", choices=DEVICES, group="execution"),
    Option("run_timeout", "--run-timeout", f"time limit for executing one model "
           f"(default {DEFAULT_RUN_TIMEOUT:g})", _positive(float), DEFAULT_RUN_TIMEOUT,
           metavar="SECONDS", group="execution"),
)
BY_NAME = {o.name: o for o in OPTIONS}


@dataclass
class Settings:
    """The options of one check, merged from defaults, config and command line."""

    paths: list[str] = field(default_factory=list)
    format: str = "rich"
    fail_on: str = "error"
    strict: bool = False
    no_tables: bool = False
    html: str | None = None
    svg: str | None = None
    timeout: float = DEFAULT_TIMEOUT
    steps: int = DEFAULT_STEPS
    jobs: int | None = None
    select: list[str] | None = None
    ignore: list[str] | None = None
    per_file_ignores: dict[str, list[str]] = field(default_factory=dict)
    run: bool = False
    dims: dict[str, int] = field(default_factory=dict)
    device: str = "auto"
    run_timeout: float = DEFAULT_RUN_TIMEOUT
    config_file: str | None = None  # the pyproject.toml the config came from

    def run_options(self) -> Any:
        """The :class:`shapecheck.verify.execute.RunOptions` for ``--run``, or None."""
        if not self.run:
            return None
        from shapecheck.verify.plans import RunOptions

        return RunOptions(device=self.device, sizes=dict(self.dims), timeout=self.run_timeout)


def find_config(start: str | None = None) -> str | None:
    """The nearest ``pyproject.toml`` with a ``[tool.shapecheck]`` table, upwards."""
    here = os.path.abspath(start or os.getcwd())
    while True:
        candidate = os.path.join(here, "pyproject.toml")
        if os.path.isfile(candidate):
            try:
                with open(candidate, "rb") as fh:
                    if "shapecheck" in tomllib.load(fh).get("tool", {}):
                        return candidate
            except (OSError, tomllib.TOMLDecodeError):
                pass
        parent = os.path.dirname(here)
        if parent == here:
            return None
        here = parent


def read_config(path: str) -> dict[str, Any]:
    """``[tool.shapecheck]`` of ``path``, each value parsed; unknown keys are an error."""
    try:
        with open(path, "rb") as fh:
            table = tomllib.load(fh).get("tool", {}).get("shapecheck", {})
    except tomllib.TOMLDecodeError as err:
        raise OptionError(f"{path}: not valid TOML: {err}") from None
    by_key = {o.key: o for o in OPTIONS if o.config}
    out: dict[str, Any] = {}
    for key, value in table.items():
        option = by_key.get(key)
        if option is None:
            known = ", ".join(sorted(by_key))
            raise OptionError(f"{path}: [tool.shapecheck] has no setting {key!r} "
                              f"(known: {known})")
        try:
            out[option.name] = option.parse(value)
        except OptionError as err:
            raise OptionError(f"{path}: [tool.shapecheck] {key}: {err}") from None
    if "paths" in out:  # relative to the config's folder
        base = os.path.dirname(path)
        out["paths"] = [p if os.path.isabs(p) else os.path.normpath(os.path.join(base, p))
                        for p in out["paths"]]
    return out


def settings(given: dict[str, Any] | None = None, *, config: str | None = None,
             use_config: bool = True) -> Settings:
    """Defaults < ``[tool.shapecheck]`` (found from the working directory, or
    ``config``) < ``given`` (raw values from the command line; None = not given)."""
    merged: dict[str, Any] = {}
    path = config or (find_config() if use_config else None)
    if path:
        merged.update(read_config(path))
    for name, raw in (given or {}).items():
        if raw is None or name not in BY_NAME:
            continue
        option = BY_NAME[name]
        if option.is_flag and raw is False:
            continue
        merged[name] = option.parse(raw)
    s = Settings(**merged)
    s.config_file = path
    return s


def add_arguments(parser: Any) -> None:
    """The options as ``argparse`` arguments (grouped), defaults left to :func:`settings`."""
    groups: dict[str, Any] = {}
    titles = {"check": None, "output": "output", "execution": "execution (--run)"}
    for option in OPTIONS:
        if option.flag is None:
            continue
        target = parser
        if titles[option.group]:
            if option.group not in groups:
                groups[option.group] = parser.add_argument_group(titles[option.group])
            target = groups[option.group]
        dest = option.name
        if option.is_flag:
            target.add_argument(option.flag, dest=dest, action="store_true", default=None,
                                help=option.help)
        elif option.repeat:
            target.add_argument(option.flag, dest=dest, action="append", default=None,
                                metavar=option.metavar, help=option.help)
        else:
            target.add_argument(option.flag, dest=dest, default=None, metavar=option.metavar,
                                choices=option.choices, help=option.help)


def add_pytest_options(parser: Any) -> None:
    """The same options for pytest, as ``--shapecheck-<name>`` (``-j`` is left out:
    pytest-xdist spreads the checks)."""
    group = parser.getgroup("shapecheck", "shape checks of Keras model scripts")
    group.addoption("--shapecheck", action="store_true", default=False,
                    help="check the model scripts named in [tool.shapecheck] paths, one "
                         "test item per script")
    for option in OPTIONS:
        if option.flag is None or option.name in ("jobs", "format", "no_tables", "html", "svg"):
            continue
        flag = "--shapecheck-" + option.flag.lstrip("-")
        dest = "shapecheck_" + option.name
        if option.is_flag:
            group.addoption(flag, dest=dest, action="store_true", default=None,
                            help=option.help)
        elif option.repeat:
            group.addoption(flag, dest=dest, action="append", default=None,
                            metavar=option.metavar, help=option.help)
        else:
            group.addoption(flag, dest=dest, default=None, metavar=option.metavar,
                            choices=option.choices, help=option.help)
