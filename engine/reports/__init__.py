"""Readers over the whole workspace: the morning report."""
