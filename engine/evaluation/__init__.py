"""Evaluation: eval runs of adapter versions and the base models, and the gate on them."""
