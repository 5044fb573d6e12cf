"""Renderers: turn a Report into text. Only renderers print."""
