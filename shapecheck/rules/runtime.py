"""SC8xx run time: what executing the model (``--run``) shows.

Execution confirms or refutes each static finding, maps an error that only
execution finds to its layer and line, and compares every observed shape with
the inferred one.  These rules read :mod:`shapecheck.verify.execute` results; they
never execute anything themselves.
"""

from __future__ import annotations

import re
from typing import Any, Iterable

from shapecheck.shapes import dims
from shapecheck.verify.execute import Execution, ModelRun, RunError, iter_mismatches
from shapecheck.shapes.graph import LayerCall
from shapecheck.report import Diagnostic
from shapecheck.rules import define
from shapecheck.rules.catalog import CATALOG
from shapecheck.rules.context import ModelContext, numbered, source_line

RUN_FAILURE = define("SC801", "run-failure", "error",
                     "the model fails when executed, where no static rule predicted it", """
    ## What it does
    With `--run`, executes the model on the sampled batches (or on inputs
    made up at a few sizes of each named dim): a forward pass, the compiled
    loss and its gradient.  An error that no static finding explains is
    reported at the layer that raised it, with the shapes it was given.

    ## Why is this bad
    Some errors exist only at run time: a custom layer that hard-codes a
    size, an op whose shape Keras cannot know when it builds the graph.
    `fit` reports them deep in the framework (`{{node model/layer_1/MatMul}}`),
    after the data is loaded.

    ## Example
    ```python
    class Patches(keras.layers.Layer):
        def call(self, x):
            return ops.reshape(x, (32, -1, 16))   # assumes 32 samples per batch
    ```

    ## Use instead
    ```python
    class Patches(keras.layers.Layer):
        def call(self, x):
            return ops.reshape(x, (ops.shape(x)[0], -1, 16))
    ```
    """)

DECLARED_SHAPE = define("SC802", "declared-shape-mismatch", "warning",
                        "a custom layer's declared output shape differs from what it returns",
                        """
    ## What it does
    With `--run`, compares the shape a custom layer returns with the one its
    `compute_output_shape` (or `compute_output_spec`) declares, which is what
    Keras used to build every layer after it.

    ## Why is this bad
    The layers after it were built for the declared shape: they fail at run
    time, or compute on the wrong axes without an error.

    ## Example
    ```python
    class Pool(keras.layers.Layer):
        def call(self, x):
            return ops.mean(x, axis=1)
        def compute_output_shape(self, shape):
            return shape                      # declares (batch, T, C)
    ```

    ## Use instead
    ```python
        def compute_output_shape(self, shape):
            return (shape[0], shape[2])       # (batch, C), as `call` returns
    ```
    """, outcome="silent")

INFERENCE_DEFECT = define("SC803", "inference-defect", "warning",
                          "shapecheck inferred another shape than Keras computed", """
    ## What it does
    With `--run`, compares every layer's observed output shape with the
    symbolic shape shapecheck inferred for it, at the sizes the run used.
    A difference for a Keras layer is a defect in shapecheck itself.

    ## Why is this bad
    shapecheck's findings about the layers after it rest on the wrong shape:
    they may be false alarms, or miss a real error.  Please report it with
    the layer and its shapes.

    ## Example
    ```python
    # a layer whose shape rule shapecheck gets wrong; nothing to change in
    # the model
    ```

    ## Use instead
    ```python
    # report the finding; meanwhile `--ignore` the findings after that layer
    ```
    """)

_STAGES = {"input": "when Keras took the inputs", "forward": "in the forward pass",
           "loss": "in the compiled loss", "gradient": "in the gradient of the training step"}
# Out-of-range ids raise on CPU under TensorFlow and PyTorch; on a GPU, and under
# JAX anywhere (XLA's gather clamps or fills), they are read without an error.
_CPU_ONLY = frozenset({"SC503", "SC607"})
_RAISES_ON_CPU = ("tensorflow", "torch")
# Findings about the values of the data (ids, labels): made-up inputs cannot show them.
_NEEDS_DATA = frozenset({"SC503", "SC607", "SC705"})
# Words of an error about shapes; other errors (an unadapted lookup table, a dtype)
# are reported as warnings: real, but not what shapecheck is sure about.
_SHAPE_WORDS = re.compile(r"shape|dimension|rank|size|incompatible|must match|equal|"
                          r"broadcast|index|indices|out of range|axis|reshape|length",
                          re.IGNORECASE)


def _shape_text(shape: Iterable[Any]) -> str:
    return "(" + ", ".join("?" if d is None else str(d) for d in shape) + \
        ("," if len(tuple(shape)) == 1 else "") + ")"


def describe_error(err: RunError, ctx: ModelContext, plan_label: str) -> str:
    where = f"`{err.call.name}` ({err.call.cls})" if err.call is not None else "the model"
    at = f" at {ctx.show(err.call.path)}:{err.call.line}" if err.call is not None \
        and err.call.path else ""
    if err.call is None and err.loss:
        where = f"the loss `{err.loss}`" + (f" of output `{err.output}`" if err.output else "")
    if err.raised_at is not None and err.call is not None and err.raised_at[1] != err.call.line:
        at += f" (raised at {ctx.show(err.raised_at[0])}:{err.raised_at[1]})"
    shapes = ""
    if err.input_shapes:
        label = "outputs" if err.stage == "loss" and err.call is None else "inputs"
        shapes = f"; its {label} were " + ", ".join(_shape_text(s) for s in err.input_shapes)
    why = ""
    if err.stage == "forward" and err.call is not None:
        why = disagreement(err.input_shapes, ctx.in_shapes(err.call))
    first = err.message.strip().splitlines()[0] if err.message.strip() else err.error_type
    return (f"{where}{at} raised {err.error_type} {_STAGES.get(err.stage, '')} on "
            f"{plan_label}: {first[:300]}{shapes}" + (f": {why}" if why else ""))


def disagreement(shapes: list[tuple], inferred: list[tuple | None]) -> str:
    """"inputs (47, 500) and (4, 500) disagree on axis 0 (batch)", or ""."""
    if len(shapes) < 2 or len({len(s) for s in shapes}) != 1:
        return ""
    axes = [a for a in range(len(shapes[0])) if len({s[a] for s in shapes}) > 1]
    if not axes:
        return ""
    names = []
    for a in axes:
        syms = {dims.fmt(s[a]) for s in inferred if s is not None and a < len(s)
                and not isinstance(s[a], int) and s[a] is not None}
        names.append(f"axis {a}" + (f" ({', '.join(sorted(syms))})" if syms else ""))
    return (f"inputs {' and '.join(_shape_text(s) for s in shapes)} disagree on "
            + ", ".join(names))


def _applies(d: Diagnostic, e: Execution) -> bool:
    """Whether execution ``e`` could show finding ``d``."""
    if (d.data is not None or d.code in _NEEDS_DATA) and not e.plan.from_data:
        return False
    if d.code.startswith("SC7") and "loss" not in e.stages and (
            e.error is None or e.error.stage not in ("loss", "gradient")):
        return False
    return True


def _explaining(ctx: ModelContext, found: list[Diagnostic], e: Execution) -> list[Diagnostic]:
    """The static findings that explain the failure of ``e``, closest first."""
    err = e.error
    assert err is not None
    live = [d for d in found if _applies(d, e) and d.severity != "info"]
    if err.call is not None:  # a failure at the finding's own layer shows it, whatever the data
        here = [d for d in found if d.layer == err.call.name]
        if here:
            return here
        anc = {ctx.by_id[i].name for i in ctx.ancestors(err.call)}
        upstream = [d for d in live if d.layer in anc
                    and CATALOG.get(d.code) is not None and CATALOG[d.code].outcome == "silent"]
        if upstream:
            return upstream
    if err.stage in ("input", "loss", "gradient"):
        family = "SC6" if err.stage == "input" else "SC7"
        same = [d for d in live if d.code.startswith(family)]
        if same:
            return same
    data = [d for d in live if d.code.startswith("SC6") and d.data is not None]
    if data and err.stage != "loss":
        return data
    if err.stage in ("loss", "gradient"):
        return [d for d in live if CATALOG.get(d.code) is not None
                and CATALOG[d.code].outcome == "silent"]
    return []


def run_failure(ctx: ModelContext, e: Execution) -> Diagnostic:
    err = e.error
    assert err is not None
    call = err.call
    msg = describe_error(err, ctx, e.plan.label)
    inferred = ctx.in_shapes(call) if call is not None else []
    why = disagreement(err.input_shapes, inferred) if err.stage == "forward" else ""
    shapes: dict[str, Any] = {}
    if err.input_shapes:
        shapes.update({f"observed {k}": v for k, v in numbered(err.input_shapes).items()})
    if call is not None:
        shapes.update({f"inferred {k}": v for k, v in numbered(inferred).items()
                       if v is not None})
    hint = _failure_hint(why, err)
    severity = None
    if not _SHAPE_WORDS.search(err.message):
        severity = "warning"
        msg += " (not a shape error, but `fit` would stop on it too)"
    if call is not None:
        d = ctx.finding(RUN_FAILURE, call, msg, shapes=shapes, hint=hint, severity=severity)
    else:
        path, line = e.plan.site if err.stage == "input" else _compile_site(ctx)
        if err.stage in ("loss", "gradient") and err.raised_at is not None:
            path, line = err.raised_at  # the user's own loss code that raised
        d = RUN_FAILURE.finding(msg, model=ctx.name, path=ctx.show(path), line=line,
                                source=source_line(path, line), hint=hint,
                                severity=severity or RUN_FAILURE.severity,
                                shapes={k: list(v) for k, v in shapes.items()})
    d.data = e.plan.label if e.plan.from_data else None
    d.dims = {n: str(v) for n, v in e.plan.values.items()} or d.dims
    d.confirmed = True
    d.run = describe_error(err, ctx, e.plan.label)
    return d


def _compile_site(ctx: ModelContext) -> tuple[str | None, int | None]:
    c = ctx.compiled or {}
    return c.get("path"), c.get("line")


def _failure_hint(why: str, err: RunError) -> str:
    if "(batch" in why:
        return "feed every input of a batch the same number of samples"
    if err.stage in ("loss", "gradient"):
        return "compare the targets with the model's outputs and the loss's expectations"
    if err.call is not None and not type(err.call.op).__module__.startswith("keras"):
        return ("the layer is your own: check the sizes its `call` assumes against the "
                "shapes it was given")
    return "compare the shapes the layer was given with the ones it needs"


def defects(ctx: ModelContext, run: ModelRun) -> list[Diagnostic]:
    """SC802/SC803 at the first call whose observed shape differs from the inferred one."""
    out: list[Diagnostic] = []
    reported: set[int] = set()
    for e in run.executions:
        wrong: set[int] = set()
        for call, i, inferred, want, seen in iter_mismatches(ctx, e):
            wrong.add(call.id)
            if call.id in reported or any(p is not None and p.id in wrong
                                          for p in ctx.producers(call)):
                continue  # already said, or it follows from a wrong shape upstream
            reported.add(call.id)
            out.append(_mismatch(ctx, call, i, inferred, want, seen, e))
    return out


def _mismatch(ctx: ModelContext, call: LayerCall, i: int, inferred: tuple, want: tuple,
              seen: tuple, e: Execution) -> Diagnostic:
    declared = tuple(call.knode.outputs[i].shape) if call.knode is not None and \
        i < len(call.knode.outputs) else ()
    lies = len(declared) != len(seen) or any(d is not None and d != s
                                            for d, s in zip(declared, seen))
    output = f"output {i} of " if len(ctx.out_shapes(call)) > 1 else ""
    shapes = {"inferred": inferred, "observed": seen}
    if lies and not type(call.op).__module__.startswith("keras"):
        msg = (f"{output}`{call.name}` ({call.cls}) returns {_shape_text(seen)} on "
               f"{e.plan.label}, but declares {_shape_text(declared)}; the layers after it "
               "were built for the declared shape")
        hint = ("make `compute_output_shape` return what `call` returns (or remove it and "
                "let Keras trace `call`)")
        d = ctx.finding(DECLARED_SHAPE, call, msg, shapes=shapes | {"declared": declared},
                        hint=hint)
    else:
        msg = (f"shapecheck inferred {dims.fmt_shape(inferred)} = {_shape_text(want)} for "
               f"{output}`{call.name}` ({call.cls}) on {e.plan.label}; Keras computed "
               f"{_shape_text(seen)}. This is a defect in shapecheck, not in the model")
        hint = ("please report it with this layer's configuration; findings after this "
                "layer may be wrong")
        d = ctx.finding(INFERENCE_DEFECT, call, msg, shapes=shapes, hint=hint)
    d.confirmed = True
    d.run = f"observed {_shape_text(seen)} on {e.plan.label}"
    return d


def confirm(ctx: ModelContext, run: ModelRun, found: list[Diagnostic],
            device: str = "CPU") -> list[Diagnostic]:
    """Mark each static finding of this model as seen or not; the run's own findings."""
    mine = [d for d in found if d.model == ctx.name and d.follows is None]
    new = defects(ctx, run)
    failed: set[tuple] = set()  # where a run failure was said (once for all sizes)
    for e in run.executions:
        if e.error is None:
            continue
        explained = _explaining(ctx, mine + new, e)
        text = describe_error(e.error, ctx, e.plan.label)
        for d in explained:
            if d.confirmed is None or d.confirmed is False:
                d.confirmed, d.run = True, f"seen: {text}"
        if not explained:
            d = run_failure(ctx, e)
            if (d.path, d.line, d.layer, d.severity) not in failed:
                failed.add((d.path, d.line, d.layer, d.severity))
                new.append(d)
    for d in mine:
        if d.confirmed is not None:
            continue
        spec = CATALOG.get(d.code)
        ran = [e for e in run.executions if e.error is None and _applies(d, e)]
        if spec is None or not ran:
            continue
        if d.code in _CPU_ONLY and ("GPU" in device or run.backend not in _RAISES_ON_CPU):
            d.run = (f"not checked by running: on {device} under {run.backend}, out-of-range "
                     "ids are read without an error (the gather clamps or fills)")
        elif spec.outcome == "fails":
            e = ran[0]
            d.confirmed = False
            d.run = (f"not seen: the model ran ({', '.join(e.stages)}) on {e.plan.label} "
                     "without an error")
        elif spec.outcome == "silent":
            call = ctx.by_name.get(d.layer or "")
            e = ran[0]
            seen = e.observed.get(call.id) if call is not None else None
            if seen:
                d.confirmed = True
                d.run = (f"seen: `{call.name}` gave {_shape_text(seen[0])} on "
                         f"{e.plan.label}, as the finding says")
    return new
