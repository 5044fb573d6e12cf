"""The ``shapecheck`` command."""

from __future__ import annotations

import argparse
import sys

from shapecheck.runner import DEFAULT_TIMEOUT


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="shapecheck",
        description="Find shape errors in Keras model scripts before training. "
                    "Each script runs as `python SCRIPT` would, in its own process; "
                    "fit/evaluate/predict become dry runs (nothing is trained).",
        epilog="Exit status: 0 no error-level finding; 1 error-level findings; "
               "2 a script could not be checked (missing, failed, timed out). "
               "Arguments after `--` are passed to every script as its sys.argv[1:].")
    p.add_argument("paths", nargs="+", metavar="PATH", help="Python scripts to check")
    p.add_argument("--format", choices=("rich", "json"), default="rich",
                   help="output format (default: rich console tables)")
    p.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, metavar="SECONDS",
                   help=f"time limit per script (default {DEFAULT_TIMEOUT:g})")
    return p


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    script_args: list[str] = []
    if "--" in argv:
        cut = argv.index("--")
        argv, script_args = argv[:cut], argv[cut + 1:]
    opts = parser().parse_args(argv)

    from shapecheck.report import Report
    from shapecheck.runner import check_file

    report = Report([check_file(p, timeout=opts.timeout, args=script_args)
                     for p in opts.paths])
    if opts.format == "json":
        from shapecheck.render.jsondoc import render

        print(render(report))
    else:
        from shapecheck.render.console import render

        render(report)
    return report.exit_code


def run() -> None:
    try:
        code = main()
    except KeyboardInterrupt:
        code = 130
    sys.exit(code)


if __name__ == "__main__":
    run()
