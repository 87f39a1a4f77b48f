"""The deny reading of a Bash line, in time linear in its length.

A deny rule fires when its glob matches *any* command the line may run: every simple command,
what a wrapper runs (``sudo -u root rm x`` runs ``rm x``), the scripts of ``sh -c`` and
``eval``, ``find -exec`` commands, command substitutions, and each of these with its program
path reduced to a name (``/bin/rm`` -> ``rm``) and git's global options read past
(``git -C . --no-pager -c x=y push`` -> ``git push``).

Listing those texts one by one is quadratic: after a wrapper every later word may start the
command that really runs, and each such tail is as long as the line. Instead the line becomes
one *subject* string: every simple command (and its normalized copy) is a segment that starts
with ``\\x00``; words are joined by spaces, and a word that may start a command is preceded by
``\\x01`` instead. A candidate text is then "from a ``\\x01`` to the end of its segment". Each
deny glob compiles to one regular expression that finds such a text in a single left-to-right
scan (globs that end in ``*``), or in one scan of the reversed subject (any other glob, whose
end is anchored at the segment's end); the pieces between stars sit in atomic groups, so the
scan never backtracks over a piece it has placed.

Lines longer than :data:`~stagent_lab.governance.shell.MAX_COVERABLE_CHARS` are not lexed:
the *coarse* reading drops quotes and backslashes, splits at every operator character, and
treats every word as a possible command start. It can only fire more often than the precise
one, and it runs at the speed of a few ``str.translate`` and ``re.sub`` passes.

This is the broad, best-effort side: a deny rule narrows what an agent may try, it is no
sandbox. The guarantee is on the allow side (every command must match; lines that hide code
are never allowed by a rule).
"""

from __future__ import annotations

import functools
import re
from functools import cached_property

from stagent_lab.governance.globs import ONE, split_pieces, tokenize
from stagent_lab.governance.programs import DENY_WRAPPERS, is_shell, strip_git_globals
from stagent_lab.governance.shell import MAX_COVERABLE_CHARS, analyze_cached, command_index

__all__ = [
    "DenyGlob",
    "DenySubject",
    "candidate_texts",
    "deny_glob",
    "deny_subject",
    "literal_prefix",
]

SEG = "\x00"  # starts a segment (one command)
MARK = "\x01"  # precedes a word that may start a command
MAX_DEPTH = 4  # nested sh -c / eval / find -exec levels that are read


PREFIX_CHARS = 64  # how much of each candidate text the rule index looks at


class DenySubject:
    """The marked text of a line for deny matching and its reverse; ``starts`` holds the first
    :data:`PREFIX_CHARS` characters of every candidate text (``None`` for the coarse reading,
    where every word is a candidate); ``heads`` the words that may start a command."""

    def __init__(
        self,
        text: str,
        heads: frozenset[str] | None,
        starts: tuple[str, ...] | None,
        coarse: bool,
    ) -> None:
        self.text = text
        self.coarse = coarse
        self.starts = starts
        self._heads = heads

    @cached_property
    def reverse(self) -> str:
        return self.text[::-1]

    @cached_property
    def heads(self) -> frozenset[str]:
        if self._heads is not None:
            return self._heads
        return frozenset(re.split("[\x00\x01]", self.text))


def _short_flag(arg: str, letter: str) -> bool:
    return arg.startswith("-") and not arg.startswith("--") and letter in arg[1:]


class _Builder:
    def __init__(self) -> None:
        self.parts: list[str] = []
        self.heads: set[str] = set()
        self.starts: list[str] = []
        self.coarse = False

    def add_line(self, line: str, depth: int) -> None:
        if depth > MAX_DEPTH:
            return
        analysis = analyze_cached(line)
        if analysis.oversized:
            self.parts.append(_coarse_text(line)[:-1])  # drop the final SEG: build() adds one
            self.coarse = True
            return
        for cmd in analysis.commands:
            self.add_command(list(cmd.words), depth)
        for hidden in analysis.hidden:
            self.add_line(hidden, depth + 1)

    def segment(self, words: list[str], starts: list[bool]) -> None:
        if not any(starts[1:]):
            text = SEG + MARK + " ".join(words)
        else:
            out = [SEG, MARK, words[0]]
            for word, start in zip(words[1:], starts[1:], strict=True):
                out.append(MARK if start else " ")
                out.append(word)
            text = "".join(out)
        if SEG in text[1:]:  # a NUL inside a word must not end the segment early
            text = SEG + text[1:].replace(SEG, MARK)
        self.parts.append(text)
        if len(self.starts) <= 4 * PREFIX_CHARS:
            at = 1
            while at >= 0:
                self.starts.append(text[at + 1 : at + 1 + PREFIX_CHARS].replace(MARK, " "))
                at = text.find(MARK, at + 1)

    def add_command(self, words: list[str], depth: int) -> None:
        words = words[command_index(words) :]
        if not words or depth > MAX_DEPTH:
            return
        n = len(words)
        head = words[0].rpartition("/")[2]
        wrapped = head in DENY_WRAPPERS
        starts = [True] + [wrapped and not w.startswith("-") for w in words[1:]]
        self.segment(words, starts)
        if not wrapped and head == words[0] and head not in _SPECIAL_HEADS and not is_shell(head):
            self.heads.add(head)  # the common case: nothing to normalize, nothing nested
            return
        # The normalized copy: program paths become names, git's global options vanish.
        norm: list[str] = []
        norm_starts: list[bool] = []
        j = 0
        while j < n:
            word = words[j]
            if starts[j]:
                base = word.rpartition("/")[2] or word
                self.heads.add(word)
                self.heads.add(base)
                norm.append(base)
                norm_starts.append(True)
                if base == "git":
                    rest = strip_git_globals(words[j:])
                    j = n - len(rest) + 1
                    continue
            else:
                norm.append(word)
                norm_starts.append(False)
            j += 1
        if norm != words:
            self.segment(norm, norm_starts)
        seen: set[str] = set()
        for j in range(n):
            if not starts[j]:
                continue
            base = words[j].rpartition("/")[2]
            kind = "shell" if is_shell(base) else base
            if kind in seen or kind not in ("shell", "eval", "find"):
                continue
            seen.add(kind)
            if kind == "shell":
                for k in range(j + 1, n - 1):
                    if _short_flag(words[k], "c"):
                        self.add_line(words[k + 1], depth + 1)
                        break
            elif kind == "eval":
                self.add_line(" ".join(words[j + 1 :]), depth + 1)
            else:
                k = j + 1
                while k < n:
                    if words[k] in ("-exec", "-execdir", "-ok", "-okdir"):
                        m = k + 1
                        while m < n and words[m] not in (";", "+"):
                            m += 1
                        self.add_command(words[k + 1 : m], depth + 1)
                        k = m
                    k += 1

    def build(self) -> DenySubject:
        text = "".join(self.parts) + SEG
        if self.coarse or len(self.starts) > 4 * PREFIX_CHARS:
            return DenySubject(text, None, None, coarse=self.coarse)
        return DenySubject(text, frozenset(self.heads), tuple(self.starts), coarse=False)


_SPECIAL_HEADS = frozenset({"git", "eval", "find"})


@functools.lru_cache(maxsize=256)
def _precise(line: str) -> DenySubject:
    builder = _Builder()
    builder.add_line(line, 0)
    return builder.build()


# ---- the coarse reading (lines over the cap) -----------------------------------------------

# Bytes, not str: bytes.translate is one table lookup per byte whatever the text holds, and
# UTF-8 never uses an ASCII byte inside a multi-byte character.
_COARSE_BREAKS = b";&|()<>\n\r`{}$"
_COARSE_TABLE = bytes.maketrans(
    _COARSE_BREAKS + b" \t", b"\x00" * len(_COARSE_BREAKS) + b"\x01\x01"
)
_COARSE_DIRS = re.compile("\x01[^\x00\x01]*/(?=[^\x00\x01/])")
_COARSE_GIT = re.compile(
    "\x01git(?:\x01+(?:-[Cc]|--git-dir|--work-tree|--namespace|--super-prefix|--config-env"
    "|--attr-source|--list-cmds)\x01+[^\x00\x01]*|\x01+-[^\x00\x01]*)++"
)


def _coarse_text(line: str) -> str:
    """Quotes and backslashes dropped, every operator character a segment break, every space
    a possible command start; plus a copy with program paths and git's global options read
    past. Runs of separators are left as they are: coarse globs accept them."""
    data = line.replace("\\\n", "").encode("utf-8", "surrogatepass")
    data = data.translate(_COARSE_TABLE, b"'\"\\").replace(b"\x00", b"\x00\x01")
    text = SEG + MARK + data.decode("utf-8", "surrogatepass") + SEG
    norm = text
    if "/" in text:
        norm = _COARSE_DIRS.sub(MARK, norm)
    if "git" in text:
        norm = _COARSE_GIT.sub(MARK + "git", norm)
    return text + norm[1:] if norm != text else text


def _coarse(line: str) -> DenySubject:
    return DenySubject(_coarse_text(line), None, None, coarse=True)


def deny_subject(line: str) -> DenySubject:
    """The deny subject of a Bash line (cached for lines under the caps)."""
    if len(line) > MAX_COVERABLE_CHARS:
        return _coarse(line)
    return _precise(line)


# ---- deny globs ----------------------------------------------------------------------------


def _lit(tokens: list, *, reverse: bool, coarse: bool) -> str:
    space = "[ \x01]+" if coarse else "[ \x01]"
    out = []
    for tok in reversed(tokens) if reverse else tokens:
        if tok is ONE:
            out.append("[^\x00]")
        elif tok[1] == " ":
            out.append(space)
        else:
            out.append(re.escape(tok[1]))
    return "".join(out)


def literal_prefix(pattern: str) -> str:
    """The literal start every text a Bash glob matches begins with (escapes resolved; the
    bare alternative of a trailing `` *`` / ``:*`` taken into account)."""
    if pattern.endswith((" *", ":*")):
        pattern = pattern[:-2]
    out: list[str] = []
    for tok in tokenize(pattern, classes=False):
        if tok[0] != "c":
            break
        out.append(tok[1])
    return "".join(out)


class DenyGlob:
    """A Bash glob compiled for the deny reading. ``*`` and ``?`` also match line breaks
    here (the deny side reads broadly), never the segment separator. In the coarse reading a
    space in the glob also matches a run of separators."""

    __slots__ = ("_compiled", "fragments", "pattern")

    def __init__(self, pattern: str) -> None:
        self.pattern = pattern
        self._compiled: dict[bool, tuple[re.Pattern[str] | None, re.Pattern[str] | None]] = {}
        # Literal runs every match must contain: a cheap test that rules most lines out.
        runs = re.split(r"[ *?]+", re.sub(r"\\(.)", r"\1", pattern))
        self.fragments = tuple(r for r in runs if len(r) >= 2 and "\\" not in r)

    def _regexes(self, coarse: bool) -> tuple[re.Pattern[str] | None, re.Pattern[str] | None]:
        found = self._compiled.get(coarse)
        if found is not None:
            return found
        pattern = self.pattern
        bare_ok = pattern.endswith((" *", ":*"))
        alternatives = [pattern[:-2] + " *", pattern[:-2]] if bare_ok else [pattern]
        forward: list[str] = []
        backward: list[str] = []
        tail = "\x01*" if coarse else ""  # coarse segments may end with separators
        for alt in alternatives:
            pieces = split_pieces(tokenize(alt, classes=False))
            lits = [_lit(p, reverse=False, coarse=coarse) for p in pieces]
            if len(pieces) == 1:  # exact: the candidate text is the whole rest of its segment
                forward.append(lits[0] + tail + SEG)
            elif len(pieces) == 2 and not pieces[1]:  # "prefix*": only the start matters
                forward.append(lits[0])
            else:  # anchored at the segment's end: scan the reversed subject
                revs = [_lit(p, reverse=True, coarse=coarse) for p in pieces]
                middle = "".join(f"(?>[^\x00]*?{r})" for r in reversed(revs[1:-1]))
                backward.append(tail + revs[-1] + middle + f"[^\x00]*?{revs[0]}(?={MARK})")
        found = (
            re.compile(MARK + "(?:" + "|".join(forward) + ")") if forward else None,
            re.compile(SEG + "(?:" + "|".join(backward) + ")") if backward else None,
        )
        self._compiled[coarse] = found
        return found

    def search(self, subject: DenySubject) -> bool:
        text = subject.text
        if any(fragment not in text for fragment in self.fragments):
            return False
        forward, backward = self._regexes(subject.coarse)
        if forward is not None and forward.search(text):
            return True
        return backward is not None and backward.search(subject.reverse) is not None


@functools.lru_cache(maxsize=4096)
def deny_glob(pattern: str) -> DenyGlob:
    return DenyGlob(pattern)


def candidate_texts(line: str, limit: int = 256) -> list[str]:
    """The candidate texts of a line's deny subject, spelled out (for display and tests)."""
    out: list[str] = []
    for segment in deny_subject(line).text.split(SEG):
        for k, ch in enumerate(segment):
            if ch == MARK:
                out.append(segment[k + 1 :].replace(MARK, " "))
                if len(out) >= limit:
                    return list(dict.fromkeys(out))
    return list(dict.fromkeys(t for t in out if t))
