"""The data fed to a model: sampled from each form ``fit`` takes, bound to its dims."""
