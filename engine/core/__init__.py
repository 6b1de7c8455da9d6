"""Foundations every stage stands on: the workspace and its database and config, jobs
and locks, errors, time, durable writes, and the vocabulary of stages and metrics.
"""
