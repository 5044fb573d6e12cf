"""shapecheck: every shape error in a Keras model and its data, before training.

Python API::

    report = shapecheck.check_script("model.py")      # runs it in a child process
    report = shapecheck.check_model(model)            # a model built in this process
    shapecheck.assert_shapes(model, inputs="batch T 80", outputs="batch T//2 64")
    shapecheck.assert_compatible(encoder, decoder)     # outputs fit inputs, every size
    report.to_dict()                                  # the "shapecheck/1" document

    @shapecheck.returns("batch T 4", inputs="batch T 8")  # checked by the command and
    def build_tagger(): ...                               # under pytest, free elsewhere

In IPython or Jupyter, ``%load_ext shapecheck`` adds ``%shapecheck`` and
``%%shapecheck`` (:mod:`shapecheck.magics`), and a report shows itself inline.
"""

from __future__ import annotations

from shapecheck.api import (assert_compatible, assert_shapes, check_model, check_script,
                            shape_snapshot)
from shapecheck.decorators import returns
from shapecheck.magics import load_ipython_extension  # imports no IPython; fills report.SHOW
from shapecheck.report import Diagnostic, Report
from shapecheck.shapes.contracts import ShapeContractError, SpecError
from shapecheck.version import __version__

__all__ = ["Diagnostic", "Report", "ShapeContractError", "SpecError", "assert_compatible",
           "assert_shapes", "check_model", "check_script", "load_ipython_extension",
           "returns", "shape_snapshot"]
