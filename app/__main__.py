"""`python -m app`: the `cra` command, for a checkout whose entry point is not installed."""

from app.cli import main

main()
