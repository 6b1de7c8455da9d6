"""The checks an incoming repo package must pass, each in its own module."""
