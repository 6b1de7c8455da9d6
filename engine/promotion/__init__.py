"""Acting on adapter versions: promote and roll back (through the gate), the watch
after a promotion, and the per-stage overview the console shows.
"""
