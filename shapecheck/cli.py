"""The ``shapecheck`` command."""

from __future__ import annotations

import argparse
import os
import sys

from shapecheck.options import OptionError, Settings, add_arguments, settings


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="shapecheck",
        usage="shapecheck [PATH...] [options] [-- SCRIPT-ARGS]\n"
              "       shapecheck rules      (list the rules)\n"
              "       shapecheck rule CODE  (explain one rule)",
        description="Find shape errors in Keras model scripts before training. "
                    "Each script runs as `python SCRIPT` would, in its own process; "
                    "fit/evaluate/predict become dry runs (nothing is trained). "
                    "A folder is searched for scripts. Settings may also come from "
                    "[tool.shapecheck] in pyproject.toml; the command line wins.",
        epilog="Exit status: 0 no finding at the --fail-on level; 1 findings at that "
               "level; 2 a script could not be checked (missing, failed, timed out), with "
               "--strict also a model that could not be checked or a script that built no "
               "model, or a usage error. Arguments after `--` are passed to every script "
               "as its sys.argv[1:].")
    p.add_argument("paths", nargs="*", metavar="PATH",
                   help="Python scripts or folders (default: paths in [tool.shapecheck])")
    add_arguments(p)
    p.add_argument("--config", metavar="PYPROJECT",
                   help="read [tool.shapecheck] from this file instead of the nearest "
                        "pyproject.toml")
    p.add_argument("--isolated", action="store_true",
                   help="ignore every pyproject.toml")
    p.add_argument("--version", action="version", version=f"shapecheck {version()}")
    return p


def version() -> str:
    """The installed distribution's version (package metadata), else the module's."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as dist_version

    try:
        return dist_version("keras-shapecheck")
    except PackageNotFoundError:
        from shapecheck.version import __version__

        return __version__


def catalog_main(argv: list[str]) -> int:
    """``shapecheck rules`` lists the catalog; ``shapecheck rule CODE`` prints one doc."""
    from shapecheck.render import catalog
    from shapecheck.rules import FAMILIES, all_rules, lookup

    if argv[0] == "rules":
        p = argparse.ArgumentParser(prog="shapecheck rules",
                                    description="List every rule shapecheck applies.")
        p.add_argument("--format", choices=("rich", "json"), default="rich")
        opts = p.parse_args(argv[1:])
        catalog.render_rules(all_rules(), FAMILIES, opts.format)
        return 0
    p = argparse.ArgumentParser(prog="shapecheck rule", description="Explain one rule.")
    p.add_argument("code", help="a rule code (SC303) or name (rank-broadcast)")
    opts = p.parse_args(argv[1:])
    return 0 if catalog.render_rule(lookup(opts.code), opts.code) else 2


def resolve(argv: list[str]) -> tuple[Settings, list[str]]:
    """The settings and script arguments a command line asks for (exits on misuse)."""
    script_args: list[str] = []
    if "--" in argv:
        cut = argv.index("--")
        argv, script_args = argv[:cut], argv[cut + 1:]
    p = parser()
    ns = p.parse_args(argv)
    given = {k: v for k, v in vars(ns).items() if k not in ("paths", "config", "isolated")}
    if ns.paths:
        given["paths"] = ns.paths
    try:
        s = settings(given, config=ns.config, use_config=not ns.isolated)
    except OptionError as err:
        p.error(str(err))
    if not s.paths:
        p.error("no PATH given (name scripts or folders, or set paths in [tool.shapecheck])")
    if (s.dims or s.device != "auto") and not s.run:
        p.error("--dims and --device need --run")
    return s, script_args


def render(report: object, s: Settings) -> None:
    if s.format == "rich":
        from shapecheck.render.console import render as render_rich

        render_rich(report, tables=not s.no_tables)
        return
    if s.format == "json":
        from shapecheck.render.jsondoc import render as render_json

        print(render_json(report))
        return
    import importlib

    module = importlib.import_module(f"shapecheck.render.{s.format}")
    if s.format == "sarif":  # the renderer is handed the rule catalog
        from shapecheck.rules import all_rules

        text = module.render(report, all_rules())
    else:
        text = module.render(report)
    if text:
        print(text)


def write_pictures(report: object, s: Settings) -> bool:
    """Write ``--html`` and ``--svg`` and say where (stderr unless the output is rich);
    False when a file could not be written."""
    ok = True
    for path, kind in ((s.html, "html"), (s.svg, "svg")):
        if not path:
            continue
        import importlib

        module = importlib.import_module(f"shapecheck.render.{kind}")
        what = "HTML report" if kind == "html" else "SVG picture"
        try:
            with open(path, "w", encoding="utf-8") as fh:
                fh.write(module.render(report))
        except OSError as err:
            print(f"shapecheck: could not write the {what} {path}: {err.strerror or err}",
                  file=sys.stderr)
            ok = False
            continue
        if s.format == "rich":
            from rich.console import Console
            from rich.markup import escape

            Console(highlight=False).print(f"{what} written to [bold]{escape(path)}[/]")
        else:
            print(f"shapecheck: {what} written to {path}", file=sys.stderr)
    return ok


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in ("rules", "rule") and not os.path.exists(argv[0]):
        return catalog_main(argv)
    s, script_args = resolve(argv)

    from shapecheck.report import Report
    from shapecheck.script.runner import check_paths, stop_on_signals

    with stop_on_signals() as stop:  # SIGINT/SIGTERM: the children stopped, their records kept
        files = check_paths(s.paths, s, script_args)
    report = Report(files)
    report.filter(s.select, s.ignore)
    report.suppress(s.per_file_ignores,
                    os.path.dirname(s.config_file) if s.config_file else None)
    render(report, s)
    pictures = write_pictures(report, s)
    if stop.exit_code is not None:  # 130 after SIGINT, 143 after SIGTERM
        return stop.exit_code
    if not pictures:
        return 2
    return report.exit_code_for(s.fail_on, s.strict)


def run() -> None:
    try:
        code = main()
    except KeyboardInterrupt:
        code = 130
    sys.exit(code)


if __name__ == "__main__":
    run()
