"""One model's checks: its graph of layer calls, symbolic shapes, the rules, the run."""
