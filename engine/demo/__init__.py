"""Builders for the demo workspace: a small real repository, real wheels, repo packages."""
