"""shapecheck: every shape error in a Keras model and its data, before training.

Python API::

    report = shapecheck.check_script("model.py")      # runs it in a child process
    report = shapecheck.check_model(model)            # a model built in this process
    report.to_dict()                                  # the "shapecheck/1" document
"""

from __future__ import annotations

from typing import Any, Sequence

from shapecheck.report import Diagnostic, Report

__version__ = "0.1.0"
__all__ = ["Diagnostic", "Report", "check_model", "check_script"]


def check_script(path: str, *, timeout: float | None = None,
                 args: Sequence[str] = ()) -> Report:
    """Run ``path`` under capture in a child process and check every model it builds."""
    from shapecheck.runner import DEFAULT_TIMEOUT, check_file

    return Report([check_file(path, timeout=timeout or DEFAULT_TIMEOUT, args=list(args))])


def check_model(model: Any, dims: dict[str, int] | None = None, *,
                select: Sequence[str] | None = None,
                ignore: Sequence[str] | None = None) -> Report:
    """Check a Keras model built in this process (no script, no child process).

    ``dims`` binds named dims to sizes (``{"T": 20}``): shapes are reported
    with those sizes substituted.  ``select``/``ignore`` filter findings by
    code or prefix, as the command's options do.
    """
    from shapecheck.analyze import analyze
    from shapecheck.report import FileReport

    models, found = analyze([(model, None, None)], bindings=dims)
    report = Report([FileReport(path=None, models=models, diagnostics=found).finish()])
    if select or ignore:
        report.filter(list(select or ()) or None, list(ignore or ()) or None)
    return report
