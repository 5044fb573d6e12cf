"""Rich console output: a table of symbolic shapes per model, then findings."""

from __future__ import annotations

import os

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from shapecheck.report import Diagnostic, FileReport, Location, ModelEntry, Report, place


def _dim(d: object) -> str:
    return "?" if d is None else str(d)


def shape_text(shape: list) -> str:
    inner = ", ".join(_dim(d) for d in shape)
    return f"({inner},)" if len(shape) == 1 else f"({inner})"


def render_model(console: Console, model: ModelEntry) -> None:
    where = model.where
    verb = "built at" if model.line else "loaded from"  # a saved model has no line
    title = f"model [bold]{escape(model.name)}[/] ({model.kind})" + (
        f" {verb} {escape(where)}" if where else "")
    if not model.layers:
        console.print(title)
    else:
        table = Table(title=title, title_justify="left", show_edge=False, pad_edge=False)
        table.add_column("Layer", style="bold")
        table.add_column("Class", style="cyan")
        table.add_column("Output shape", style="green")
        lines = any(layer.path or layer.line for layer in model.layers)
        if lines:
            table.add_column("Line", style="dim")
        for layer in model.layers:
            shapes = "\n".join(shape_text(s) for s in layer.output_shapes)
            in_file = f"cell {layer.cell}:{layer.line}" if layer.cell and layer.line \
                else str(layer.line or "")
            where = in_file if layer.path == model.path else layer.where
            table.add_row(escape(layer.name), escape(layer.cls), escape(shapes),
                          *([escape(where)] if lines else []))
        console.print(table)
    for n, o in model.dims.items():
        low = model.minimums.get(n)
        need = (f"; needs {n} >= {low['size']} (`{escape(low['layer'])}`)" if low else "")
        console.print(f"  [bold]dim[/] [green]{escape(n)}[/] = {escape(o)}{need}")
    for d in model.data:
        bound = ", ".join(f"{n}={v}" for n, v in d["dims"].items()) or "no named dim"
        console.print(f"  [bold]data[/] {escape(d['data'])}: [green]{escape(bound)}[/]")
    for c in model.constraints:
        verdict = {True: "holds", False: "[red]never holds[/]", None: "needed"}[c.holds]
        console.print(f"  [bold]constraint[/]: {escape(_dim(c.lhs))} == {escape(_dim(c.rhs))} "
                      f"{verdict} — {escape(c.reason)} (`{escape(c.layer)}`)")
    for n in model.notes:
        if not model.checked and n.message == model.reason:
            continue  # said once, under the file (render_unchecked)
        console.print(f"  [yellow]note[/] `{escape(n.layer)}`: {escape(n.message)}")
    if model.run is not None:
        render_run(console, model.run)


def render_run(console: Console, run: dict) -> None:
    """What ``--run`` did with one model."""
    if run.get("skipped"):
        console.print(f"  [bold]run[/]: [yellow]{escape(run['skipped'])}[/]")
        return
    for e in run.get("executions", []):
        err = e.get("error")
        stages = " + ".join(e.get("stages") or []) or "nothing"
        if err is None:
            verdict = f"[green]ran[/] ({escape(stages)})"
        else:
            where = f" at `{escape(err['layer'])}`" if err.get("layer") else ""
            verdict = f"[red]failed[/] in the {escape(err['stage'])} stage{where}"
        console.print(f"  [bold]run[/] on {escape(run.get('device', ''))}, "
                      f"{escape(e['data'])}: {verdict} in {e.get('seconds', 0):.2f} s")
    for note in run.get("notes", []):
        console.print(f"  [yellow]run note[/]: {escape(note)}")


_COLOURS = {"error": "red", "warning": "yellow", "info": "blue"}


def _shape(v: object) -> str:
    return shape_text(v) if isinstance(v, list) else _dim(v)


def render_finding(console: Console, d: Diagnostic) -> None:
    """One finding in the style of rustc and ruff: title, place, source, shapes, help."""
    colour = _COLOURS.get(d.severity, "blue")
    title = f"{d.code}" + (f" {d.name}" if d.name else "")
    console.print(f"[bold {colour}]{d.severity}[{escape(title)}][/]: [bold]{escape(d.message)}[/]")
    if d.path:
        where = d.where + (f":{d.col}" if d.col and d.line else "")
        console.print(f"  [blue]-->[/] {escape(where)}")
    if d.source and d.line:
        gutter = " " * len(str(d.line))
        console.print(f"  [blue]{gutter} |[/]")
        console.print(f"  [blue]{d.line} |[/] {escape(d.source)}", soft_wrap=True)
        if d.col:
            end = d.end_col or len(d.source.rstrip())
            width = max(1, end - d.col + 1)
            console.print(f"  [blue]{gutter} |[/] {' ' * (d.col - 1)}[{colour}]{'^' * width}[/]",
                          soft_wrap=True)
        console.print(f"  [blue]{gutter} |[/]")
    for r in d.related:
        render_related(console, r, colour)
    eq = f"  [blue]{' ' * len(str(d.line or ''))} =[/]"
    for label, shape in d.shapes.items():
        console.print(f"{eq} {escape(label)}: [green]{escape(_shape(shape))}[/]")
    for name, origin in d.dims.items():
        if name != "batch":
            console.print(f"{eq} dim [green]{escape(name)}[/]: {escape(str(origin))}")
    if d.also_in:
        console.print(f"{eq} also in model(s): {escape(', '.join(d.also_in))} "
                      "(they share the layer)")
    if d.data:
        console.print(f"{eq} data: {escape(d.data)}")
    if d.hint:
        console.print(f"{eq} [bold]help[/]: {escape(d.hint)}")
    if d.confirmed is not None:
        mark = "[green]✓ confirmed[/]" if d.confirmed else "[yellow]✗ not confirmed[/]"
        console.print(f"{eq} {mark}: {escape(d.run or '')}")


def render_related(console: Console, r: Location, colour: str) -> None:
    """A second place of a finding: "note: the shape breaks here", with its line."""
    at = f"`{r.layer}` at " if r.layer else ""
    console.print(f"  [bold]note[/]: {escape(r.message)}: {escape(at + r.where)}")
    if r.source and r.line:
        gutter = " " * len(str(r.line))
        console.print(f"  [blue]{r.line} |[/] {escape(r.source)}", soft_wrap=True)
        if r.col:
            width = max(1, (r.end_col or len(r.source.rstrip())) - r.col + 1)
            console.print(f"  [blue]{gutter} |[/] {' ' * (r.col - 1)}[{colour}]{'-' * width}[/]",
                          soft_wrap=True)


def render_consequence(console: Console, d: Diagnostic) -> None:
    colour = _COLOURS.get(d.severity, "blue")
    console.print(f"  [{colour}]↳ {escape(d.code)}[/] {escape(d.where)}: {escape(d.message)} "
                  f"[dim](follows from {escape(d.follows or '')})[/]")


def render_error(console: Console, f: FileReport) -> None:
    """Why the file could not be checked, or where the script stopped after findings:
    the exception and the user's line first, then the whole message."""
    assert f.error is not None
    err = f.error
    name = escape(f.path or "<model>")
    if f.status == "failed":
        console.print(f"[bold red]✗ {name}: could not be checked ({escape(err.kind)})[/]")
    elif err.path and err.line and any(d.path == err.path and d.line == err.line
                                       and d.severity == "error" for d in f.diagnostics):
        raised = (err.exception or err.kind).split(":", 1)[0].rsplit(".", 1)[-1]
        console.print(f"[bold yellow]{name}: the script stopped at "
                      f"{escape(place(err.path, err.line, err.cell))} ({escape(raised)}); "
                      "a finding below says why[/]")
        return
    else:
        console.print(f"[bold yellow]{name}: the script stopped after the findings below "
                      f"({escape(err.kind)})[/]")
    if err.exception:
        console.print(f"  [bold]{escape(err.exception.splitlines()[0])}[/]")
    if err.path and err.line:
        console.print(f"  [blue]-->[/] {escape(place(err.path, err.line, err.cell))}")
        if err.source and err.source.strip():
            console.print(f"  [blue]{err.line} |[/] {escape(err.source)}", soft_wrap=True)
    console.print(escape(err.message))


def render_unchecked(console: Console, f: FileReport) -> None:
    """One line per model that could not be checked; one for a script with no model."""
    for m in f.unchecked_models:
        where = m.where
        console.print(f"[yellow]○ model `{escape(m.name)}` ({escape(m.kind)})"
                      + (f" at {escape(where)}" if where else "")
                      + f" not checked[/]: {escape(m.reason or 'its graph could not be read')}")
    if f.no_model:
        console.print(f"[yellow]○ {escape(f.path or '<model>')}: the script built no Keras "
                      "model[/] — nothing was checked.")


def render_dry_run(console: Console, f: FileReport) -> None:
    """Once per script: the values the dry run made up, the files it kept away."""
    dry = f.dry_run or {}
    if dry.get("made_up"):
        console.print(f"[dim]note: dry run: fit/evaluate/predict returned made-up values "
                      f"(first: {escape(dry['made_up'])}); nothing was trained[/]")
    if dry.get("stopped"):
        console.print(f"[dim]note: dry run: {escape(dry['stopped'])}, as if the script "
                      "had ended there; optimizers applied nothing and the weights are "
                      "as they were[/]")
    for s in dry.get("stacked") or []:
        shape = "(" + ", ".join(str(d) for d in s["shape"]) + ")"
        sizes = ", ".join(f"{n} = {v}" for n, v in s.get("dims", {}).items())
        at = place(s["path"], s["line"], s.get("cell"))
        console.print(f"[dim]note: stacked over loop steps at {escape(at)}: {escape(shape)}" + (f" ({escape(sizes)})" if sizes else "")
                      + "[/]")
    writes = dry.get("writes") or []
    home = os.path.expanduser("~") + os.sep
    processes = [w["path"] for w in writes if w["kind"] == "process"]
    files = [w for w in writes if w["kind"] != "process"]
    caches = [w for w in files if w["path"].startswith(home)]
    shown = [f"{'deleted ' if w['kind'] == 'deleted' else ''}{w['path']}"
             for w in files if w not in caches]
    if caches:
        shown.append(f"{len(caches)} cache file(s) in your home folder")
    if shown:
        listed = ", ".join(shown[:8]) + (f" and {len(shown) - 8} more" if len(shown) > 8 else "")
        console.print(f"[dim]note: what the script wrote went to a scratch folder, dropped "
                      f"after the check (your files are unchanged): {escape(listed)}[/]")
    for command in processes:
        console.print(f"[yellow]note: the script started a process whose writes are not "
                      f"sandboxed: {escape(command)}[/]")
    for s in (f.notebook or {}).get("skipped") or []:
        console.print(f"[dim]note: not run ({escape(s['why'])}): `{escape(s['text'])}` at "
                      f"{escape(place(f.path, s.get('line'), s.get('cell')))}[/]")


def render_file(console: Console, f: FileReport, *, tables: bool = True) -> None:
    if f.error is not None:
        render_error(console, f)
    if tables:
        for model in f.models:
            console.print()
            render_model(console, model)
    render_unchecked(console, f)
    render_dry_run(console, f)
    roots = [d for d in f.diagnostics if not d.follows]
    later = [d for d in f.diagnostics if d.follows]
    for d in roots:
        console.print()
        render_finding(console, d)
    if later:
        console.print()
        console.print(f"[dim]{len(later)} more finding(s) follow from the ones above:[/]")
        for d in later:
            render_consequence(console, d)


# the summary's colour: by the run's status, and for findings by the worst severity
_STATUS_STYLES = {"failed": "red", "unchecked": "yellow", "clean": "green"}


def summary_style(status: str, worst: str | None) -> str:
    if status == "findings":
        return _COLOURS.get(worst or "info", "blue")
    return _STATUS_STYLES.get(status, "yellow")


def render(report: Report, console: Console | None = None, *, tables: bool = True) -> None:
    console = console or Console(highlight=False)
    for f in report.files:
        render_file(console, f, tables=tables)
    summary = report.summary()
    console.print()
    console.print(f"[bold {summary_style(summary.status, summary.worst)}]"
                  f"{escape(summary.line())}[/]")
