"""Training data for the per-stage adapters and the planning base, derived from validated tasks."""
