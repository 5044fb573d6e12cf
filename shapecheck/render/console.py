"""Rich console output: a table of symbolic shapes per model, then findings."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from shapecheck.report import FileReport, ModelEntry, Report


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
    title = f"model [bold]{escape(model.name)}[/] ({model.kind})" + (
        f" built at {escape(where)}" if where else "")
    if not model.layers:
        console.print(title)
    else:
        table = Table(title=title, title_justify="left", show_edge=False, pad_edge=False)
        table.add_column("Layer", style="bold")
        table.add_column("Class", style="cyan")
        table.add_column("Output shape", style="green")
        table.add_column("Line", style="dim")
        for layer in model.layers:
            shapes = "\n".join(shape_text(s) for s in layer.output_shapes)
            where = (str(layer.line or "") if layer.path == model.path
                     else _site(layer.path, layer.line))
            table.add_row(escape(layer.name), escape(layer.cls), escape(shapes),
                          escape(where))
        console.print(table)
    for n, o in model.dims.items():
        console.print(f"  [bold]dim[/] [green]{escape(n)}[/] = {escape(o)}")
    for c in model.constraints:
        verdict = {True: "holds", False: "[red]never holds[/]", None: "needed"}[c.holds]
        console.print(f"  [bold]constraint[/]: {escape(_dim(c.lhs))} == {escape(_dim(c.rhs))} "
                      f"{verdict} — {escape(c.reason)} (`{escape(c.layer)}`)")
    for n in model.notes:
        console.print(f"  [yellow]note[/] `{escape(n.layer)}`: {escape(n.message)}")


def render_file(console: Console, f: FileReport) -> None:
    if f.error is not None:
        console.print(f"[bold red]✗ {escape(f.path or '<model>')}: could not be checked "
                      f"({escape(f.error.kind)})[/]")
        console.print(escape(f.error.message))
    for model in f.models:
        console.print()
        render_model(console, model)
    if f.error is None and not f.models:
        console.print(f"[yellow]{escape(f.path or '<model>')}: the script built no Keras "
                      "model[/] — nothing to check.")
    for d in f.diagnostics:
        colour = {"error": "red", "warning": "yellow"}.get(d.severity, "blue")
        console.print(f"[bold {colour}]{escape(d.code)}[/] {escape(d.message)}")
        if d.path:
            console.print(f"  --> {escape(_site(d.path, d.line))}")
        if d.hint:
            console.print(f"  = hint: {escape(d.hint)}")


def render(report: Report, console: Console | None = None) -> None:
    console = console or Console()
    for f in report.files:
        render_file(console, f)
    n_models = sum(len(f.models) for f in report.files)
    n_diag = sum(len(f.diagnostics) for f in report.files)
    n_failed = sum(f.status == "failed" for f in report.files)
    console.print()
    summary = (f"{len(report.files)} file(s), {n_models} model(s), "
               f"{n_diag} finding(s)" + (f", {n_failed} could not be checked" if n_failed else ""))
    style = "red" if n_failed or any(f.status == "findings" for f in report.files) else "green"
    console.print(f"[bold {style}]{summary}[/]")
