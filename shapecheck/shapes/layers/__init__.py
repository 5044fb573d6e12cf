"""Per-layer shape rules, one module per Keras layer family."""
