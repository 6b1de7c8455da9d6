"""The cra console's front ends: the Textual app, the `cra` CLI and shared widgets."""
