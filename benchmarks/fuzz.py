"""Differential fuzzing at length: random valid Keras graphs against shapecheck.

    python benchmarks/fuzz.py --graphs 10000            # seeds 0..9999
    python benchmarks/fuzz.py --graphs 500 --seed 7000  # another stretch of seeds
    python benchmarks/fuzz.py --graphs 200 --keep out/  # keep reproducers of failures
    python benchmarks/fuzz.py --graphs 10000 --jobs 2   # two worker processes

Each seed gives one valid graph (``tests/fuzz/gen.py`` driven by a seeded
``random`` instead of hypothesis: no shrinking).  For each: Keras runs it at
``--assignments`` assignments of its variable dims and every layer's output
shape must equal shapecheck's inference; inference leaves no
``inference-defect``/``rule-error`` note; ``check_model`` reports nothing at
warning or error level, without data and with data and targets at the first
assignment; then again as a subclassed model whose ``call`` replays the layers:
its traced graph must check clean and agree with Keras, layer by layer and at the
model's own outputs.  Every ``--inject-every``-th graph also yields a buggy variant
(the kinds in turn) that must get an error-level finding: through
``check_model`` when Keras builds it, else through its script run under
capture (in batches, one child process per batch).

The graphs run in worker processes, a fresh one every ``--recycle`` graphs
(Keras and TensorFlow keep memory across graphs: a worker grew past 12 GB over
1,300 graphs). When one dies (a crash in a kernel), the seed is counted as a
crash with the worker's last words, and the run goes on from the next.

Prints the counts (graphs, layer types covered, assignments executed,
mismatches, false alarms, injected bugs per kind and detected, seconds) and,
with ``--json``, writes them to a file.  Not a test: nothing is asserted.
"""

from __future__ import annotations

import argparse
import collections
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
import warnings

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def parse(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--graphs", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0, help="first seed")
    ap.add_argument("--max-layers", type=int, default=20)
    ap.add_argument("--assignments", type=int, default=3, choices=(2, 3, 4))
    ap.add_argument("--inject-every", type=int, default=2,
                    help="derive a buggy graph from every N-th valid graph (0: none)")
    ap.add_argument("--batch", type=int, default=40,
                    help="buggy scripts checked per child process")
    ap.add_argument("--no-data", action="store_true",
                    help="leave out the second check_model with data and targets")
    ap.add_argument("--keep", metavar="DIR", help="write a reproducer for each failure here")
    ap.add_argument("--json", metavar="FILE", help="write the counts as JSON")
    ap.add_argument("--progress", type=int, default=250, help="print counts every N graphs")
    ap.add_argument("--jobs", type=int, default=1,
                    help="worker processes, each over its own stretch of seeds")
    ap.add_argument("--recycle", type=int, default=200,
                    help="graphs per worker process before a fresh one takes over (Keras "
                         "and TensorFlow keep memory across graphs)")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    return ap.parse_args(argv)


# --- the worker: one line of JSON per result -------------------------------------------------


def worker(args: argparse.Namespace) -> int:
    warnings.filterwarnings("ignore")
    import keras

    from tests.fuzz.gen import BUG_KINDS, RandomChooser, generate, inject
    from tests.fuzz.harness import check_injected, check_scripts, check_valid

    pending: list = []

    def say(obj: dict) -> None:
        sys.stdout.write("@" + json.dumps(obj) + "\n")
        sys.stdout.flush()

    def keep(name: str, source: str) -> None:
        if args.keep:
            with open(os.path.join(args.keep, name), "w", encoding="utf-8") as fh:
                fh.write(source)

    def injected(seed: int, spec, res) -> None:
        if not res.detected:
            keep(f"missed_{res.kind}_{seed}.py", spec.source())
        say({"injected": {"seed": seed, "kind": res.kind, "path": res.path,
                          "detected": res.detected, "codes": res.codes, "other": res.other,
                          "error": res.error}})

    def flush() -> None:
        if pending:
            try:
                results = check_scripts([s for _, s in pending])
            except Exception as err:  # the harness's own failure: count it, go on
                say({"harness_error": {"seeds": [seed for seed, _ in pending],
                                       "error": f"{type(err).__name__}: {err}"[:600]}})
                results = []
            for (seed, spec), res in zip(pending, results):
                injected(seed, spec, res)
            pending.clear()

    for i in range(args.graphs):
        seed = args.seed + i
        say({"start": seed})
        try:
            spec = generate(RandomChooser(seed), max_layers=args.max_layers)
        except Exception as err:  # the generator's own bug: count it, go on
            say({"generator_error": {"seed": seed, "error": f"{type(err).__name__}: {err}"}})
            continue
        res = check_valid(spec, count=args.assignments, with_data=not args.no_data)
        if not res.ok:
            keep(f"graph_{seed}.py", spec.source())
        say({"graph": {"seed": seed, "layers": len(spec.nodes),
                       "kinds": sorted(n.kind for n in spec.nodes),
                       "keras": sorted(spec.keras_names()),
                       "assignments": res.assignments, "mismatches": len(res.mismatches),
                       "subclassed": res.subclassed,
                       "false_alarms": len(res.false_alarms), "notes": len(res.notes),
                       "minimums": len(res.minimums), "approximate": len(res.approximate),
                       "keras_error": res.keras_error is not None,
                       "internal": res.internal is not None, "tight": res.tight,
                       "problems": res.problems()[:6]}})
        if args.inject_every and seed % args.inject_every == 0 and res.keras_error is None:
            kind = BUG_KINDS[(seed // args.inject_every) % len(BUG_KINDS)]
            try:
                bug = inject(spec, kind, RandomChooser(seed * 7919 + 1))
            except Exception as err:
                say({"generator_error": {"seed": seed, "error": f"inject {kind}: "
                                                               f"{type(err).__name__}: {err}"}})
                bug = None
            if bug is None:
                say({"no_site": {"seed": seed, "kind": kind}})
            else:
                out = check_injected(bug)
                if out is None:
                    pending.append((seed, bug))
                    if len(pending) >= args.batch:
                        flush()
                else:
                    injected(seed, bug, out)
        keras.backend.clear_session()
    flush()
    return 0


# --- the parent: runs workers, counts ----------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    if args.worker:
        return worker(args)
    from tests.fuzz.gen import BUG_KINDS, OP_NAMES

    if args.keep:
        os.makedirs(args.keep, exist_ok=True)
    c: dict = {
        "graphs": 0, "layers": 0, "assignments": 0, "graphs_with_mismatch": 0,
        "checked_as_subclassed": 0,
        "mismatches": 0, "graphs_with_false_alarm": 0, "false_alarms": 0,
        "bad_notes": 0, "minimum_claims_too_large": 0, "approximate_notes": 0,
        "generator_invalid": 0, "internal_errors": 0, "crashed_seeds": [],
        "generator_errors": [], "harness_errors": [], "tight_runs_failed": [],
        "injected": {k: {"made": 0, "built": 0, "refused": 0, "detected": 0, "no_site": 0}
                     for k in BUG_KINDS},
    }
    covered: collections.Counter = collections.Counter()
    keras_names: collections.Counter = collections.Counter()
    codes: dict[str, collections.Counter] = {k: collections.Counter() for k in BUG_KINDS}
    failures: list[dict] = []
    missed: list[dict] = []
    start = time.perf_counter()
    end = args.seed + args.graphs
    lock = threading.Lock()
    state = {"done": 0}

    def take(msg: dict) -> None:
        if "graph" in msg:
            g = msg["graph"]
            state["done"] += 1
            c["graphs"] += 1
            c["layers"] += g["layers"]
            covered.update(g["kinds"])
            keras_names.update(g["keras"])
            c["assignments"] += g["assignments"]
            c["checked_as_subclassed"] += g.get("subclassed", 0)
            c["mismatches"] += g["mismatches"]
            c["graphs_with_mismatch"] += int(g["mismatches"] > 0)
            c["false_alarms"] += g["false_alarms"]
            c["graphs_with_false_alarm"] += int(g["false_alarms"] > 0)
            c["bad_notes"] += g["notes"]
            c["minimum_claims_too_large"] += g["minimums"]
            c["approximate_notes"] += g["approximate"]
            c["generator_invalid"] += int(g["keras_error"])
            c["internal_errors"] += int(g["internal"])
            if g["tight"]:
                c["tight_runs_failed"].append({"seed": g["seed"], "error": g["tight"]})
            if g["problems"]:
                failures.append({"seed": g["seed"], "problems": g["problems"]})
            if args.progress and state["done"] % args.progress == 0:
                print(f"[{state['done']}/{args.graphs}] {time.perf_counter() - start:.0f}s, "
                      f"failures {len(failures)}, missed {len(missed)}", flush=True)
        elif "harness_error" in msg:
            c["harness_errors"].append(msg["harness_error"])
        elif "generator_error" in msg:
            c["generator_errors"].append(msg["generator_error"])
        elif "no_site" in msg:
            c["injected"][msg["no_site"]["kind"]]["no_site"] += 1
        elif "injected" in msg:
            r = msg["injected"]
            k = c["injected"][r["kind"]]
            k["made"] += 1
            k[r["path"]] += 1
            k["detected"] += int(r["detected"])
            codes[r["kind"]].update(r["codes"] or ["(none)"])
            if not r["detected"]:
                missed.append(r)

    def run_range(seed: int, stop: int) -> None:
        """Workers over seeds [seed, stop): a fresh one every ``--recycle`` graphs, and
        a new one after one that dies (its seed counted as a crash, with its last words)."""
        while seed < stop:
            count = min(args.recycle, stop - seed) if args.recycle > 0 else stop - seed
            cmd = [sys.executable, os.path.abspath(__file__), "--worker", "--seed", str(seed),
                   "--graphs", str(count), "--max-layers", str(args.max_layers),
                   "--assignments", str(args.assignments), "--inject-every",
                   str(args.inject_every), "--batch", str(args.batch)]
            cmd += ["--no-data"] if args.no_data else []
            cmd += ["--keep", args.keep] if args.keep else []
            with tempfile.TemporaryFile("w+", encoding="utf-8") as err:
                proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, text=True,
                                        cwd=ROOT)
                current = None
                for line in proc.stdout:
                    if line.startswith("@"):
                        msg = json.loads(line[1:])
                        if "start" in msg:
                            current = msg["start"]
                        with lock:
                            take(msg)
                proc.wait()
                err.seek(0)
                last_words = err.read()[-1500:]
            if proc.returncode == 0:
                seed += count
                continue
            crashed = current if current is not None else seed
            with lock:
                c["crashed_seeds"].append({"seed": crashed, "status": proc.returncode,
                                           "stderr": last_words})
                print(f"worker died (status {proc.returncode}) at seed {crashed}; going on\n"
                      f"{last_words[-600:]}", flush=True)
            seed = crashed + 1

    jobs = max(1, min(args.jobs, args.graphs))
    bounds = [args.seed + args.graphs * j // jobs for j in range(jobs + 1)]
    threads = [threading.Thread(target=run_range, args=(bounds[j], bounds[j + 1]))
               for j in range(jobs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    c["crashed_seeds"].sort(key=lambda d: d["seed"])
    seconds = time.perf_counter() - start
    import keras

    c["layer_types_covered"] = len(covered)
    c["keras_layer_classes"] = sorted(n for n in keras_names if n.startswith("layers."))
    c["keras_ops"] = sorted(n for n in keras_names if n.startswith("ops."))
    c["graphs_per_keras_name"] = dict(sorted(keras_names.items()))
    c["layer_types"] = dict(sorted(covered.items()))
    c["generator_types_never_generated"] = sorted(set(OP_NAMES) - set(covered))
    c["seconds"] = round(seconds, 1)
    c["graphs_per_second"] = round(c["graphs"] / seconds, 3) if seconds else 0.0
    c["seeds"] = [args.seed, end - 1]
    c["jobs"] = jobs
    c["codes_by_kind"] = {k: dict(v) for k, v in codes.items()}
    c["failures"] = failures[:300]
    c["missed"] = missed[:300]
    c["date"] = datetime.date.today().isoformat()
    c["machine"] = (f"{platform.system()} {platform.machine()}, {os.cpu_count()} cores, "
                    f"Python {platform.python_version()}, Keras {keras.__version__} "
                    f"({keras.backend.backend()} backend), command line "
                    f"{' '.join(sys.argv[1:]) or '(defaults)'}")
    report(c)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(c, fh, indent=1)
    return 0


def report(c: dict) -> None:
    print(f"graphs generated         {c['graphs']} (seeds {c['seeds'][0]}..{c['seeds'][1]}), "
          f"{c['layers']} layer calls")
    print(f"layer types covered      {c['layer_types_covered']} generator types: "
          f"{len(c['keras_layer_classes'])} Keras layer classes, {len(c['keras_ops'])} "
          "keras.ops functions")
    print(f"assignments executed     {c['assignments']}")
    print(f"also as subclassed       {c['checked_as_subclassed']} graphs (a `call` replaying "
          "the layers, traced)")
    print(f"mismatches               {c['mismatches']} in {c['graphs_with_mismatch']} graphs")
    print(f"false alarms             {c['false_alarms']} in {c['graphs_with_false_alarm']} "
          "graphs (warning or error on a valid graph)")
    print(f"defect/rule-error notes  {c['bad_notes']}")
    print(f"minimums too large       {c['minimum_claims_too_large']}")
    print(f"approximate notes        {c['approximate_notes']} (probe fallback, not failures)")
    print(f"generator invalid        {c['generator_invalid']} (Keras refused a 'valid' graph)")
    print(f"internal errors          {c['internal_errors']}")
    print(f"crashed seeds            {[d['seed'] for d in c['crashed_seeds']] or 'none'}")
    print(f"harness errors           {len(c['harness_errors'])} (buggy scripts left unchecked)")
    print(f"generator errors         {len(c['generator_errors'])}")
    print(f"Keras failed at minimum  {len(c['tight_runs_failed'])} (sizes shapecheck says "
          "the windows need; to look at)")
    print("injected bugs            kind: made / built / refused / detected (no site)")
    for kind, v in c["injected"].items():
        print(f"  {kind:22s} {v['made']} / {v['built']} / {v['refused']} / {v['detected']}"
              f"  ({v['no_site']})")
    print(f"seconds                  {c['seconds']} ({c['graphs_per_second']} graphs/s)")
    print(f"machine                  {c['machine']}")
    for f in c["failures"][:30]:
        print("FAIL", f["seed"], " | ".join(p[:240] for p in f["problems"]))
    for m in c["missed"][:30]:
        print("MISSED", m)
    for g in c["generator_errors"][:10]:
        print("GENERATOR", g)
    for t in c["tight_runs_failed"][:10]:
        print("AT MINIMUM", t["seed"], t["error"][:300])


if __name__ == "__main__":
    raise SystemExit(main())
