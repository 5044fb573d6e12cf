"""The ``shapecheck`` command."""

from __future__ import annotations

import argparse
import os
import sys

from shapecheck.execute import DEFAULT_RUN_TIMEOUT
from shapecheck.runner import DEFAULT_TIMEOUT


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="shapecheck",
        usage="shapecheck PATH... [options] [-- SCRIPT-ARGS]\n"
              "       shapecheck rules      (list the rules)\n"
              "       shapecheck rule CODE  (explain one rule)",
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
    p.add_argument("--select", action="append", metavar="CODES",
                   help="only these rule codes or prefixes (comma-separated, e.g. SC3,SC401)")
    p.add_argument("--ignore", action="append", metavar="CODES",
                   help="leave out these rule codes or prefixes (the longer prefix wins "
                        "over --select)")
    p.add_argument("--no-tables", action="store_true",
                   help="rich output: findings only, without each model's shape table")
    run = p.add_argument_group(
        "execution", "--run executes each model after the static checks: a forward pass and, "
        "when it is compiled, the loss and its gradient (no optimizer step; weights are "
        "restored). Each finding is then marked as seen or not seen.")
    run.add_argument("--run", action="store_true",
                     help="execute the models on the sampled data (or on made-up inputs)")
    run.add_argument("--dims", action="append", metavar="NAME=SIZE,...",
                     help="sizes of named dims for made-up inputs (e.g. batch=3,T=7); "
                          "by default a few small sizes, each run other ones")
    run.add_argument("--device", choices=("auto", "cpu", "gpu"), default="auto",
                     help="where to execute (default auto: a GPU when TensorFlow sees one)")
    run.add_argument("--run-timeout", type=float, default=DEFAULT_RUN_TIMEOUT,
                     metavar="SECONDS",
                     help=f"time limit for executing one model (default {DEFAULT_RUN_TIMEOUT:g})")
    return p


def _sizes(values: list[str] | None, p: argparse.ArgumentParser) -> dict[str, int]:
    out: dict[str, int] = {}
    for item in (x.strip() for v in values or () for x in v.split(",")):
        if not item:
            continue
        name, eq, size = item.partition("=")
        if not eq or not name.strip() or not size.strip().isdigit() or int(size) < 1:
            p.error(f"--dims: {item!r} is not NAME=SIZE with a positive SIZE")
        out[name.strip()] = int(size)
    return out


def _codes(values: list[str] | None) -> list[str] | None:
    if not values:
        return None
    return [c.strip().upper() for v in values for c in v.split(",") if c.strip()]


def catalog_main(argv: list[str]) -> int:
    """``shapecheck rules`` lists the catalog; ``shapecheck rule CODE`` prints one doc."""
    from shapecheck.render import catalog

    if argv[0] == "rules":
        p = argparse.ArgumentParser(prog="shapecheck rules",
                                    description="List every rule shapecheck applies.")
        p.add_argument("--format", choices=("rich", "json"), default="rich")
        opts = p.parse_args(argv[1:])
        catalog.render_rules(opts.format)
        return 0
    p = argparse.ArgumentParser(prog="shapecheck rule", description="Explain one rule.")
    p.add_argument("code", help="a rule code (SC303) or name (rank-broadcast)")
    opts = p.parse_args(argv[1:])
    return 0 if catalog.render_rule(opts.code) else 2


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    script_args: list[str] = []
    if "--" in argv:
        cut = argv.index("--")
        argv, script_args = argv[:cut], argv[cut + 1:]
    if argv and argv[0] in ("rules", "rule") and not os.path.exists(argv[0]):
        return catalog_main(argv)
    p = parser()
    opts = p.parse_args(argv)
    sizes = _sizes(opts.dims, p)
    if (sizes or opts.device != "auto") and not opts.run:
        p.error("--dims and --device need --run")
    run = None
    if opts.run:
        from shapecheck.execute import RunOptions

        run = RunOptions(device=opts.device, sizes=sizes, timeout=opts.run_timeout)

    from shapecheck.report import Report
    from shapecheck.runner import check_file

    report = Report([check_file(path, timeout=opts.timeout, args=script_args, run=run)
                     for path in opts.paths])
    report.filter(_codes(opts.select), _codes(opts.ignore))
    if opts.format == "json":
        from shapecheck.render.jsondoc import render

        print(render(report))
    else:
        from shapecheck.render.console import render

        render(report, tables=not opts.no_tables)
    return report.exit_code


def run() -> None:
    try:
        code = main()
    except KeyboardInterrupt:
        code = 130
    sys.exit(code)


if __name__ == "__main__":
    run()
