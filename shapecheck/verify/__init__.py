"""Check the checker's shapes against Keras: execute a model for real; Keras as the oracle."""

DEFAULT_RUN_TIMEOUT = 60.0  # seconds for all executions of a model (``--run-timeout``)
