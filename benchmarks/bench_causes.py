"""Where findings sit: the bugs of fixtures/causes against the line of their cause.

    python benchmarks/bench_causes.py [--json FILE]

Each buggy script there marks the line the user must edit (``# cause: <argument>``)
and has a fixed twin. For each bug this counts the findings that do not follow from
another (errors and warnings), whether the first sits on the cause line, and whether
the argument is named; each fixed twin must check clean. Runs the installed
``shapecheck`` package (put another checkout first on ``PYTHONPATH`` to measure it).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from shapecheck.script.runner import check_files_together

CAUSES = Path(__file__).resolve().parent.parent / "fixtures" / "causes"


def cause_line(path: Path) -> tuple[int, str]:
    for i, text in enumerate(path.read_text().splitlines(), 1):
        if "# cause:" in text:
            return i, text.split("# cause:")[1].split()[0]
    raise ValueError(f"{path.name} has no cause marker")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", help="write the per-script results here")
    args = parser.parse_args()
    buggy = sorted(p for p in CAUSES.glob("*.py") if not p.stem.endswith("_fixed"))
    fixed = [p.with_name(p.stem + "_fixed.py") for p in buggy]
    start = time.monotonic()
    reports = {Path(f.path or "").name: f
               for f in check_files_together([str(p) for p in buggy + fixed])}
    seconds = time.monotonic() - start
    rows = []
    for p in buggy:
        line, argument = cause_line(p)
        f = reports[p.name]
        roots = [d for d in f.diagnostics
                 if d.severity in ("error", "warning") and not d.follows]
        first = min(roots, key=lambda d: (d.line or 0)) if roots else None
        rows.append({
            "script": p.name, "cause": line, "argument": argument,
            "found": bool(roots), "roots": len(roots),
            "followers": sum(1 for d in f.diagnostics if d.follows),
            "first": None if first is None else {"code": first.code, "line": first.line,
                                                  "argument": getattr(first, "argument", None)},
            "at_cause": first is not None and first.line == line,
            "names_argument": first is not None
            and (getattr(first, "argument", None) or "").split("=")[0] == argument,
            "fixed_clean": reports[p.stem + "_fixed.py"].status == "clean",
        })
    print(f"{'script':48} {'cause':>5} {'first':>12} {'at cause':>8} {'roots':>5}")
    for r in rows:
        first = r["first"] or {}
        print(f"{r['script']:48} {r['cause']:>5} "
              f"{str(first.get('code')) + ':' + str(first.get('line')):>12} "
              f"{'yes' if r['at_cause'] else 'no':>8} {r['roots']:>5}")
    n = len(rows)
    print(f"\nbugs: {n}; found: {sum(r['found'] for r in rows)}; first finding at the cause "
          f"line: {sum(r['at_cause'] for r in rows)}; exactly one finding not marked "
          f"follows: {sum(r['roots'] == 1 for r in rows)}; argument named: "
          f"{sum(r['names_argument'] for r in rows)}; fixed twins clean: "
          f"{sum(r['fixed_clean'] for r in rows)} of {n}; {seconds:.0f} s")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
