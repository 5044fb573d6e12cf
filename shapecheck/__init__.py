"""shapecheck: every shape error in a Keras model and its data, before training."""

__version__ = "0.1.0"
