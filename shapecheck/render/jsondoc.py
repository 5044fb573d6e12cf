"""The ``shapecheck/1`` JSON document."""

from __future__ import annotations

import json

from shapecheck.report import Report


def render(report: Report) -> str:
    return json.dumps(report.to_dict(), indent=2)
