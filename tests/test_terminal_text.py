"""`neutralise`: every code point a terminal would obey is shown as its escape, nothing else
changes, nothing is dropped, and neutralising twice is neutralising once."""

import pytest

from engine.core.terminal_text import UNSAFE, neutralise

C0 = [chr(c) for c in range(0x20) if chr(c) not in "\t\n"]
C1 = [chr(c) for c in range(0x80, 0xA0)]
BIDI = [chr(c) for c in (0x061C, 0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A))]
UNSAFE_POINTS = [*C0, "\x7f", *C1, *BIDI, "\ud800", "\udcff", "\udfff"]
SAFE_SAMPLES = [
    "plain ascii text",
    "tab\tand\nnewline",
    "\\x1b already written as an escape",
    "[bold]markup[/] stays as it is",
    "unicode: naïve café — ✓ ⇄ 漢字 😀",
    "\u00a0no-break space and \u00ad soft hyphen",
    "\u2028 line separator, \u200b zero width space",
    "",
]
HOSTILE = "subject \x1b[2J\x1b]0;pwned\x07 bell \x07 csi \x9b31m rlo \u202egnp.exe"


class TestNeutralise:
    @pytest.mark.parametrize("char", UNSAFE_POINTS, ids=lambda c: f"U+{ord(c):04X}")
    def test_every_unsafe_code_point_is_shown_as_its_escape(self, char: str):
        """Each C0 control but tab and newline, DEL, each C1 control, each bidi control and a
        lone surrogate becomes its escape, the way Python writes it."""
        point = ord(char)
        expected = f"\\x{point:02x}" if point <= 0xFF else f"\\u{point:04x}"
        assert neutralise(f"a{char}b") == f"a{expected}b"

    def test_every_other_code_point_is_kept(self):
        """Across all of Unicode, a code point outside the unsafe set is kept as it is and one
        inside becomes its escape: nothing is dropped and no control is left."""
        unsafe = set(UNSAFE_POINTS) | {chr(c) for c in range(0xD800, 0xE000)}
        points = [chr(c) for c in range(0x110000)]
        expected = [
            (f"\\x{ord(c):02x}" if ord(c) <= 0xFF else f"\\u{ord(c):04x}") if c in unsafe else c
            for c in points
        ]
        assert neutralise("".join(points)) == "".join(expected)

    @pytest.mark.parametrize("text", SAFE_SAMPLES)
    def test_safe_text_is_unchanged(self, text: str):
        """Text with nothing a terminal obeys comes back as it was: newline, tab, backslashes,
        markup, non-ASCII letters and symbols included."""
        assert neutralise(text) == text

    @pytest.mark.parametrize("text", [HOSTILE, *SAFE_SAMPLES, "".join(UNSAFE_POINTS)])
    def test_neutralising_twice_is_neutralising_once(self, text: str):
        """The result holds nothing unsafe, so a second pass (a string neutralised by the
        engine and again at the screen) changes nothing: no double escaping."""
        once = neutralise(text)
        assert not UNSAFE.search(once)
        assert neutralise(once) == once

    def test_the_hostile_string_keeps_every_character_visible(self):
        """Clear-screen, retitle, BEL, C1 CSI and a right-to-left override are all still there
        to read, and no character of the text is dropped."""
        shown = neutralise(HOSTILE)
        assert shown == (
            "subject \\x1b[2J\\x1b]0;pwned\\x07 bell \\x07 csi \\x9b31m rlo \\u202egnp.exe"
        )
        assert shown.encode("utf-8").isascii()
