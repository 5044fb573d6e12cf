from shapecheck.cli import run

run()
