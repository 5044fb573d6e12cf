"""Symbolic shapes: dims, the graph of layer calls, inference, per-layer shape rules.

Knows nothing of scripts, rules or faces.
"""
