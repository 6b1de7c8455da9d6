"""Widgets and modals shared by every pane."""
