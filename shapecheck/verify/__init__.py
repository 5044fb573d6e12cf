"""Check the checker's shapes against Keras: execute a model for real; Keras as the oracle."""
