"""Headless engine of cra console: state, validation, approval. Never imports textual."""
