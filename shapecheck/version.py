"""The version of shapecheck: one place, read by the API, the command and the renderers."""

__version__ = "0.1.0"
