"""``python -m shapecheck``: the command."""

from shapecheck.cli import run

run()
