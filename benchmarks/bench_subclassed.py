"""How many subclassed models in the fixtures shapecheck checks, and whether Keras
agrees with what it infers for them.

    python benchmarks/bench_subclassed.py [--json FILE] [--no-oracle]

Part 1 checks every script under ``fixtures/`` (but ``fixtures/broken/``) in one
child process and counts the models by kind: subclassed models checked (their
``call`` traced) or not, and why not. Part 2 runs ``python -m shapecheck.oracle`` on
each script that builds a subclassed model: every layer of the traced graph is
compared with what Keras computes, and the model's own ``call`` with the traced
outputs, at three sizes of each named dim.

Run it from another checkout (``PYTHONPATH=that/tree python
benchmarks/bench_subclassed.py --root that/tree``) to measure that tree.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent


def scripts(root: Path) -> list[Path]:
    return sorted(p for p in (root / "fixtures").rglob("*.py")
                  if "broken" not in p.parts and p.name != "__init__.py")


def count_models(root: Path) -> dict:
    from shapecheck.script.runner import check_files_together

    paths = scripts(root)
    start = time.perf_counter()
    reports = check_files_together([str(p) for p in paths], timeout=3600)
    seconds = time.perf_counter() - start
    kinds: collections.Counter = collections.Counter()
    checked: collections.Counter = collections.Counter()
    reasons: collections.Counter = collections.Counter()
    files_with: set[str] = set()
    for f in reports:
        for m in f.models:
            kinds[m.kind] += 1
            checked[m.kind] += bool(m.checked)
            if m.kind == "subclassed":
                files_with.add(f.path or "")
                if not m.checked:
                    reasons[_reason(m.reason or "")] += 1
    return {"scripts": len(paths), "seconds": round(seconds, 1), "kinds": dict(kinds),
            "checked": dict(checked), "unchecked_reasons": dict(reasons),
            "subclassed_scripts": sorted(files_with)}


def _reason(text: str) -> str:
    for key in ("TensorFlow function", "values of its inputs", "never built",
                "no `call`", "not a graph"):
        if key in text:
            return key
    return text[:60]


def oracle(root: Path, files: list[str]) -> dict:
    agree = differ = skipped = 0
    details = []
    for path in files:
        proc = subprocess.run([sys.executable, "-m", "shapecheck.oracle", path],
                              capture_output=True, text=True, timeout=600, cwd=root,
                              env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
        for line in proc.stdout.splitlines():
            if not line.startswith("{"):
                continue
            r = json.loads(line)
            if not r.get("traced"):
                continue
            if "skipped" in r:
                skipped += 1
            elif r["mismatches"] or r.get("notes"):
                differ += 1
                details.append({"script": path, **r})
            else:
                agree += 1
    return {"agree": agree, "differ": differ, "skipped": skipped, "details": details}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", default=str(HERE), help="the checkout whose fixtures to use")
    ap.add_argument("--json", help="write the counts here")
    ap.add_argument("--no-oracle", action="store_true", help="part 1 only")
    args = ap.parse_args()
    root = Path(args.root).resolve()
    counts = count_models(root)
    sub = counts["kinds"].get("subclassed", 0)
    done = counts["checked"].get("subclassed", 0)
    print(f"{counts['scripts']} fixture scripts, {counts['seconds']} s")
    print(f"models by kind: {counts['kinds']}")
    print(f"subclassed models checked: {done} of {sub}"
          + (f" ({100 * done / sub:.0f}%)" if sub else ""))
    for reason, n in sorted(counts["unchecked_reasons"].items()):
        print(f"  not checked, {reason}: {n}")
    result = {"models": counts}
    if not args.no_oracle:
        o = oracle(root, counts["subclassed_scripts"])
        print(f"oracle on traced subclassed models: {o['agree']} agree, {o['differ']} "
              f"differ, {o['skipped']} skipped (refused calls, or not traced)")
        for d in o["details"]:
            print(f"  {d['script']}: {d['model']}: {d['mismatches'][:2]} {d.get('notes')}")
        result["oracle"] = o
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
