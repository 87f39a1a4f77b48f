"""Glob engines for permission rules, compiled once per glob and linear in the text.

An agent controls the text a glob is matched against, so no engine here may backtrack without
bound: a regular expression such as ``a.*b.*c.*d`` against a long crafted command can take
hours. Bash globs compile to expressions whose middle pieces sit in atomic groups (the
leftmost place for each middle piece is always a right choice, so the engine never revisits
it); path globs match segment by segment with a small dynamic program; other fields use
``fnmatch``'s own translation, which is built the same way.
"""

from __future__ import annotations

import fnmatch
import functools
import re

__all__ = [
    "BashGlob",
    "bash_glob",
    "path_glob_matches",
    "plain_glob",
    "plain_literal_prefix",
    "split_unescaped",
    "tokenize",
]

STAR = ("*",)
ONE = ("?",)
Token = tuple


def tokenize(glob: str, *, classes: bool) -> tuple[Token, ...]:
    """``*``, ``?``, ``\\x`` (a literal x) and, when ``classes``, ``[...]`` / ``[!...]``."""
    out: list[Token] = []
    i = 0
    while i < len(glob):
        c = glob[i]
        if c == "\\" and i + 1 < len(glob):
            out.append(("c", glob[i + 1]))
            i += 2
            continue
        if c == "*":
            if not out or out[-1] is not STAR:  # "**" inside a segment is just "*"
                out.append(STAR)
        elif c == "?":
            out.append(ONE)
        elif c == "[" and classes and glob.find("]", i + 2) > 0:
            close = glob.find("]", i + 2)
            inner = glob[i + 1 : close]
            negate = inner[:1] in ("!", "^")
            if negate:
                inner = inner[1:]
            out.append(("[", negate, inner))
            i = close
        else:
            out.append(("c", c))
        i += 1
    return tuple(out)


def split_pieces(tokens: tuple[Token, ...]) -> list[list[Token]]:
    """The literal runs between stars: ``a*b*c`` -> [[a], [b], [c]]."""
    pieces: list[list[Token]] = [[]]
    for tok in tokens:
        if tok is STAR:
            pieces.append([])
        else:
            pieces[-1].append(tok)
    return pieces


# ---- Bash globs, allow reading -------------------------------------------------------------

_LINE_BREAK = re.compile(r"([\n\r])")
_NOT_BREAK = "[^\\n\\r]"


def _piece_regex(tokens: list[Token]) -> re.Pattern[str]:
    def lit(run: list[Token]) -> str:
        return "".join(_NOT_BREAK if t is ONE else re.escape(t[1]) for t in run)

    pieces = split_pieces(tuple(tokens))
    if len(pieces) == 1:
        return re.compile(lit(pieces[0]))
    middle = "".join(f"(?>{_NOT_BREAK}*?{lit(p)})" for p in pieces[1:-1])
    return re.compile(lit(pieces[0]) + middle + f"{_NOT_BREAK}*" + lit(pieces[-1]))


class BashGlob:
    """A compiled Bash glob: ``*`` = any run of characters except line breaks, ``?`` = one
    such character, ``\\x`` = x. A trailing `` *`` (or Claude Code's ``:*``) also matches the
    bare command: ``git log *`` matches ``git log`` and ``git log -5``, never ``git logx``.
    Line breaks in the text must meet literal line breaks in the glob."""

    __slots__ = ("alternatives", "pattern")

    def __init__(self, pattern: str) -> None:
        self.pattern = pattern
        bare_ok = pattern.endswith((" *", ":*"))  # the '*' follows ' ' or ':', so unescaped
        texts = [pattern[:-2] + " *", pattern[:-2]] if bare_ok else [pattern]
        self.alternatives: list[tuple[re.Pattern[str], ...]] = []
        for alt in texts:
            pieces: list[list[Token]] = [[]]
            for tok in tokenize(alt, classes=False):
                if tok[0] == "c" and tok[1] in "\n\r":
                    pieces.append([tok])  # a piece starts with its line break
                else:
                    pieces[-1].append(tok)
            self.alternatives.append(tuple(_piece_regex(p) for p in pieces))

    def matches(self, text: str) -> bool:
        if not text:
            return False
        if "\n" in text or "\r" in text:
            parts = _LINE_BREAK.split(text)
            pieces = [parts[0]] + [parts[k] + parts[k + 1] for k in range(1, len(parts), 2)]
        else:
            pieces = [text]
        for alternative in self.alternatives:
            if len(alternative) == len(pieces) and all(
                rx.fullmatch(piece) for rx, piece in zip(alternative, pieces, strict=True)
            ):
                return True
        return False


@functools.lru_cache(maxsize=4096)
def bash_glob(pattern: str) -> BashGlob:
    return BashGlob(pattern)


# ---- path globs ----------------------------------------------------------------------------


def _class_regex(token: Token) -> str:
    _, negate, inner = token
    out = []
    j = 0
    while j < len(inner):
        if j + 2 < len(inner) and inner[j + 1] == "-":
            out.append(f"{re.escape(inner[j])}-{re.escape(inner[j + 2])}")
            j += 3
        else:
            out.append(re.escape(inner[j]))
            j += 1
    return (
        ("[^/" if negate else "[") + "".join(out) + "]" if out else ("[^/]" if negate else "(?!)")
    )


def _segment_regex(segment: str) -> str:
    """One path segment: ``*`` stays inside it; middle pieces in atomic groups."""

    def lit(run: list[Token]) -> str:
        return "".join(
            "[^/]" if t is ONE else _class_regex(t) if t[0] == "[" else re.escape(t[1]) for t in run
        )

    pieces = split_pieces(tokenize(segment, classes=True))
    if len(pieces) == 1:
        return "/" + lit(pieces[0])
    middle = "".join(f"(?>[^/]*?{lit(p)})" for p in pieces[1:-1])
    return "/" + lit(pieces[0]) + middle + "[^/]*" + lit(pieces[-1]) + "(?=/|\\Z)"


@functools.lru_cache(maxsize=4096)
def _path_regex(glob: str) -> re.Pattern[str]:
    """An absolute path glob as a regular expression over the path ("" for "/"). A ``**``
    segment spans any number of segments; the runs between them are placed leftmost, in
    atomic groups, which is always a right choice, so matching never backtracks over them."""
    segments = split_unescaped(glob)[1:]  # drop the empty root segment
    if segments == [""]:
        return re.compile("")  # the glob "/" itself
    runs: list[list[str]] = [[]]
    for seg in segments:
        if seg == "**":
            runs.append([])
        else:
            runs[-1].append(_segment_regex(seg))
    if len(runs) == 1:
        return re.compile("".join(runs[0]))
    middle = "".join(f"(?>(?:/[^/]*)*?{''.join(r)}(?=/|\\Z))" for r in runs[1:-1])
    return re.compile("".join(runs[0]) + middle + "(?:/[^/]*)*" + "".join(runs[-1]))


def path_glob_matches(glob: str, path: str) -> bool:
    """``*`` stays in one segment, a ``**`` segment spans any number of them (so ``/p/**``
    matches ``/p`` itself and everything below it)."""
    return _path_regex(glob).fullmatch("" if path == "/" else path) is not None


def split_unescaped(glob: str) -> list[str]:
    parts, cur, i = [], [], 0
    while i < len(glob):
        c = glob[i]
        if c == "\\" and i + 1 < len(glob):
            cur.append(glob[i : i + 2])
            i += 2
            continue
        if c == "[":
            close = glob.find("]", i + 2)
            if close > 0 and "/" not in glob[i:close]:
                cur.append(glob[i : close + 1])
                i = close + 1
                continue
        if c == "/":
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(c)
        i += 1
    parts.append("".join(cur))
    return parts


# ---- other fields: fnmatch -----------------------------------------------------------------


@functools.lru_cache(maxsize=4096)
def plain_glob(pattern: str) -> re.Pattern[str]:
    """``fnmatch``-style, case-sensitive, on the raw text."""
    return re.compile(fnmatch.translate(pattern))


def plain_literal_prefix(pattern: str) -> str:
    """The characters before the first ``*``, ``?`` or ``[``."""
    m = re.search(r"[*?\[]", pattern)
    return pattern if m is None else pattern[: m.start()]
