"""Versioned base model checkpoints."""
