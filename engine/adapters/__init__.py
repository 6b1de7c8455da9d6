"""Adapter versions in service: promote, roll back, reject, and name the active one."""
