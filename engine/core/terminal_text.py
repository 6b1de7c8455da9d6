"""Untrusted text made safe to show on a terminal: its control characters shown, never obeyed.

Commit subjects, manifest fields, test names and output, logged prompts and responses, model
answers and log lines can hold ESC, BEL or C1 sequences that a terminal would obey (clear the
screen, retitle the window, move the cursor) and bidi controls that reorder what is read.
`neutralise` turns every such code point into its escape, as Python writes it (`\\x1b`, `\\x9b`,
`\\u202e`), so the operator sees it and the terminal does nothing with it; nothing is dropped.

Kept as they are: newline (lines are how every view is laid out) and tab (it only moves to the
next tab stop on its line, and code and test output use it; Rich expands it). Backslashes are
not doubled, so the result has no control character left and `neutralise` of it is the same
text: calling it twice on a path to the screen does no harm, and code stays readable.
Every output path (the `cra` commands through `app.output`, every pane) passes untrusted text
through this one function.
"""

import re

__all__ = ["UNSAFE", "neutralise"]

# C0 but tab and newline, DEL and C1; bidi marks, embeddings, overrides and isolates
# (Trojan Source, CVE-2021-42574); lone surrogates, which cannot be encoded for the terminal.
UNSAFE = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\ud800-\udfff]"
)


def _escape(match: re.Match[str]) -> str:
    point = ord(match.group())
    return f"\\x{point:02x}" if point <= 0xFF else f"\\u{point:04x}"


def neutralise(text: str) -> str:
    """`text` with every control, bidi or lone-surrogate code point written as its escape."""
    return UNSAFE.sub(_escape, text)
