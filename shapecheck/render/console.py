"""Rich console output: a table of symbolic shapes per model, then findings."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from shapecheck.report import Diagnostic, FileReport, ModelEntry, Report


def _dim(d: object) -> str:
    return "?" if d is None else str(d)


def shape_text(shape: list) -> str:
    inner = ", ".join(_dim(d) for d in shape)
    return f"({inner},)" if len(shape) == 1 else f"({inner})"


def _site(path: str | None, line: int | None) -> str:
    if path is None:
        return ""
    return f"{path}:{line}" if line else path


def render_model(console: Console, model: ModelEntry) -> None:
    where = _site(model.path, model.line)
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
            where = (str(layer.line or "") if layer.path == model.path
                     else _site(layer.path, layer.line))
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
    eq = f"  [blue]{' ' * len(str(d.line or ''))} =[/]"
    for label, shape in d.shapes.items():
        console.print(f"{eq} {escape(label)}: [green]{escape(_shape(shape))}[/]")
    for name, origin in d.dims.items():
        if name != "batch":
            console.print(f"{eq} dim [green]{escape(name)}[/]: {escape(str(origin))}")
    if d.data:
        console.print(f"{eq} data: {escape(d.data)}")
    if d.hint:
        console.print(f"{eq} [bold]help[/]: {escape(d.hint)}")
    if d.confirmed is not None:
        mark = "[green]✓ confirmed[/]" if d.confirmed else "[yellow]✗ not confirmed[/]"
        console.print(f"{eq} {mark}: {escape(d.run or '')}")


def render_consequence(console: Console, d: Diagnostic) -> None:
    colour = _COLOURS.get(d.severity, "blue")
    console.print(f"  [{colour}]↳ {escape(d.code)}[/] {escape(d.where)}: {escape(d.message)} "
                  f"[dim](follows from {escape(d.follows or '')})[/]")


def render_file(console: Console, f: FileReport, *, tables: bool = True) -> None:
    if f.error is not None:
        if f.status == "failed":
            console.print(f"[bold red]✗ {escape(f.path or '<model>')}: could not be checked "
                          f"({escape(f.error.kind)})[/]")
        else:
            console.print(f"[bold yellow]{escape(f.path or '<model>')}: the script stopped "
                          "after the findings below[/]")
        console.print(escape(f.error.message))
    if tables:
        for model in f.models:
            console.print()
            render_model(console, model)
    if f.error is None and not f.models and not f.diagnostics:
        console.print(f"[yellow]{escape(f.path or '<model>')}: the script built no Keras "
                      "model[/] — nothing to check.")
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


def render(report: Report, console: Console | None = None, *, tables: bool = True) -> None:
    console = console or Console(highlight=False)
    for f in report.files:
        render_file(console, f, tables=tables)
    n_models = sum(len(f.models) for f in report.files)
    diags = report.diagnostics
    counts = {s: sum(d.severity == s for d in diags) for s in ("error", "warning", "info")}
    n_failed = sum(f.status == "failed" for f in report.files)
    console.print()
    found = ", ".join(f"{n} {s}{'s' if n != 1 else ''}" for s, n in counts.items() if n)
    summary = (f"{len(report.files)} file(s), {n_models} model(s): "
               + (found or "no findings")
               + (f", {n_failed} could not be checked" if n_failed else ""))
    style = "red" if n_failed or counts["error"] else ("yellow" if counts["warning"] else "green")
    console.print(f"[bold {style}]{summary}[/]")
