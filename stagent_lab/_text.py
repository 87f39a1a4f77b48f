"""Text that can always be stored: repair what cannot be encoded, never drop it.

Python strings may hold lone surrogates (a file name that is not valid UTF-8 decodes with
``surrogateescape``; JSON may carry ``"\\ud800"``). DuckDB and Arrow refuse them, and one such
value used to poison a whole write batch. Every text that reaches the store goes through
:func:`repair_text` first: bytes smuggled in by ``surrogateescape`` are decoded as UTF-8 where
they can be and shown as U+FFFD where they cannot; any other lone surrogate becomes U+FFFD.
NUL characters are kept (DuckDB stores them).
"""

from __future__ import annotations

REPLACEMENT = "\ufffd"


def repair_text(text: str) -> str:
    """``text`` if it encodes as UTF-8, else a repaired copy (same length or shorter)."""
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        pass
    try:  # surrogateescape'd bytes (file names): recover the original UTF-8 where valid
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    except UnicodeEncodeError:
        return "".join(REPLACEMENT if 0xD800 <= ord(c) <= 0xDFFF else c for c in text)


def needs_repair(text: str) -> bool:
    if text.isascii():
        return False
    try:
        text.encode("utf-8")
        return False
    except UnicodeEncodeError:
        return True


def clip(text: str, limit: int, marker: str = "…") -> str:
    """``text`` cut to at most ``limit`` characters, ending with ``marker`` when cut."""
    if len(text) <= limit:
        return text
    return text[: max(0, limit - len(marker))] + marker
