"""Untrusted text made safe for a terminal: control characters shown, never interpreted.

Commit subjects, manifest fields, test names and output, logged prompts and answers, server
replies and log lines all come from outside. A terminal interprets some of their characters: ESC
and CSI start sequences that clear the screen, move the cursor or retitle the window, BEL rings,
a carriage return overwrites the line, bidirectional controls reorder what is read. `visible`
replaces each such character by a visible escape (`\\x1b`, `\\x9b`, `\\u202e`), so the operator
sees that it was there and nothing is lost. Newlines and tabs are kept (multi-line output stays
readable); a CRLF line ending becomes a plain newline. The escapes are printable ASCII, so
applying `visible` twice gives the same text as once: every output path can apply it without
knowing whether another already did.
"""

import re

__all__ = ["visible"]

# C0 controls but tab and newline, DEL, C1 controls, and the Unicode bidirectional controls
# (marks, embeddings, overrides, isolates).
_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def visible(text: str) -> str:
    """`text` with every character a terminal would act on replaced by a visible escape."""
    return _UNSAFE.sub(_escape, text.replace("\r\n", "\n"))
