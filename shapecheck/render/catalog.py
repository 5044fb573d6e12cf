"""The rule catalog on the console: ``shapecheck rules`` and ``shapecheck rule CODE``."""

from __future__ import annotations

import json
from typing import Any, Mapping, Sequence

from rich.console import Console
from rich.markdown import Markdown
from rich.markup import escape
from rich.table import Table



def render_rules(rules: Sequence[Any], families: Mapping[str, str], fmt: str = "rich",
                 console: Console | None = None) -> None:
    """Print the catalog ``rules`` (each with ``code``, ``name``, ``severity``, ``family``,
    ``summary``), grouped by ``families`` (code prefix -> family name)."""
    if fmt == "json":
        print(json.dumps([{"code": r.code, "name": r.name, "severity": r.severity,
                           "family": r.family, "summary": r.summary} for r in rules],
                         indent=2))
        return
    console = console or Console(highlight=False)
    for prefix, family in families.items():
        members = [r for r in rules if r.code.startswith(prefix)]
        if not members:
            continue
        table = Table(title=f"{prefix}xx {family}", title_justify="left", show_edge=False)
        table.add_column("Code", style="bold")
        table.add_column("Name", style="cyan")
        table.add_column("Severity")
        table.add_column("Finds")
        for r in members:
            table.add_row(r.code, r.name, r.severity, escape(r.summary))
        console.print(table)
        console.print()
    console.print("`shapecheck rule CODE` explains one rule.")


def render_rule(spec: Any, code: str, console: Console | None = None) -> bool:
    """Print one rule's doc; ``spec`` is None when no rule is called ``code``."""
    console = console or Console(highlight=False)
    if spec is None:
        console.print(f"[red]no rule {escape(code)!s}[/]; `shapecheck rules` lists them")
        return False
    console.print(f"[bold]{spec.code} {spec.name}[/] ({spec.severity}, {spec.family})")
    console.print(escape(spec.summary))
    console.print()
    console.print(Markdown(spec.doc))
    return True
