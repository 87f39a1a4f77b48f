"""A small, conservative shell lexer for Bash permission rules.

A rule such as ``Bash(command:git *)`` is only safe if it holds for *every* command the line
would run. ``shlex.split`` cannot tell: it knows quotes but not operators, so
``git status && rm -rf ~`` would look like one ``git`` command. This module splits a line into
its simple commands the way bash would (operators, grouping, quotes, escapes, comments) and
normalizes each to its words joined by single spaces.

It is deliberately not a full shell parser. Whatever would run code that the text of the line
does not show - command substitution, process substitution, here-docs, variable expansion,
``sh -c``, ``eval``, ``xargs``, ``find -exec``, ``sudo`` and similar wrappers - makes the whole
line *uncoverable*: no Bash rule glob can allow it, and the request goes to a human instead.
So do options that make a program read, write or run files of its own choosing (see
:mod:`stagent_lab.governance.programs`), and lines longer than :data:`MAX_COVERABLE_CHARS`.
When the lexer is unsure, it refuses. A refusal never runs anything and never denies anything
on its own; it only means "a saved rule cannot decide this".

The lexer is linear in the length of the line: runs of ordinary characters are taken by one
regular-expression match, and no step looks back over what it has read.
"""

from __future__ import annotations

import functools
import posixpath
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from stagent_lab.governance import programs

__all__ = [
    "MAX_COVERABLE_CHARS",
    "MAX_COVERABLE_WORDS",
    "ShellAnalysis",
    "SimpleCommand",
    "analyze_command",
    "command_index",
    "deny_texts",
]

# A Bash line longer than this, or with more words and operators than MAX_COVERABLE_WORDS, is
# never covered by an allow rule (it goes to a person), and deny rules read it with the coarse
# linear scan of :mod:`stagent_lab.governance.deny`. Both caps bound the time the precise
# reading may take, which is linear but costs a few microseconds per word.
MAX_COVERABLE_CHARS = 64 * 1024
MAX_COVERABLE_WORDS = 4096


@dataclass(frozen=True)
class SimpleCommand:
    """One simple command: its words after quote removal, redirections left out."""

    words: tuple[str, ...]

    @property
    def text(self) -> str:
        """The normalized text a Bash rule glob is matched against."""
        return " ".join(self.words)


@dataclass(frozen=True)
class ShellAnalysis:
    """The simple commands of a line and, when no rule may cover it, the first reason why.

    ``commands`` is filled on a best-effort basis even for refused lines (deny rules use it);
    only a line with ``refusal is None`` may be allowed by a rule. ``hidden`` holds the text
    of command substitutions inside double quotes, which deny rules also read. An ``oversized``
    line (over :data:`MAX_COVERABLE_CHARS` or :data:`MAX_COVERABLE_WORDS`) is not split.
    """

    commands: tuple[SimpleCommand, ...]
    refusal: str | None = None
    reasons: tuple[str, ...] = field(default=(), repr=False)
    hidden: tuple[str, ...] = field(default=(), repr=False)
    oversized: bool = field(default=False, repr=False)  # over a cap: not split at all

    @property
    def coverable(self) -> bool:
        return self.refusal is None and bool(self.commands)


# ---- lexer -----------------------------------------------------------------------------------

_NAME_START = re.compile(r"[A-Za-z_]")
_SPECIAL_PARAMS = set("@*#?-$!0123456789")
# After these (or at the end of the line) a '$' is just a dollar sign in every common shell.
_LITERAL_AFTER_DOLLAR = set(" \t\n\r/.,:%;|&<>)}]")
# C0 controls other than tab, newline and carriage return, plus DEL: never legitimate here.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
# Runs of characters with no special meaning, unquoted and inside double quotes: the lexer
# takes them in one step, so a long argument costs one regex match, not a loop per character.
_PLAIN = re.compile(r"[^ \t\n\r\\'\"`$#;&|()<>]+")
_DQ_PLAIN = re.compile(r'[^"\\`$]+')
_COMMENT = re.compile(r"[^\n\r]*")
_ANSI_SIMPLE = {
    "a": "\a", "b": "\b", "e": "\x1b", "E": "\x1b", "f": "\f", "n": "\n", "r": "\r",
    "t": "\t", "v": "\v", "\\": "\\", "'": "'", '"': '"', "?": "?",
}  # fmt: skip
_ANSI_NUMERIC = re.compile(r"[0-7]{1,3}|x[0-9A-Fa-f]{1,2}|u[0-9A-Fa-f]{1,4}|U[0-9A-Fa-f]{1,8}")


class _Word:
    """A word as chunks of (text, quoted), so long arguments stay one chunk."""

    __slots__ = ("_value", "parts", "started")

    def __init__(self) -> None:
        self.parts: list[tuple[str, bool]] = []
        self.started = False  # '' is an (empty) word; nothing typed yet is not
        self._value: str | None = None

    def add(self, text: str, quoted: bool) -> None:
        self.parts.append((text, quoted))
        self.started = True
        self._value = None

    @property
    def value(self) -> str:
        if self._value is None:
            self._value = "".join(t for t, _ in self.parts)
        return self._value

    def unquoted_is(self, text: str) -> bool:
        return self.value == text and not any(q for t, q in self.parts if t)

    def has_unquoted(self, chars: str) -> bool:
        return any(not q and any(c in chars for c in t) for t, q in self.parts)

    def unquoted_prefix(self) -> int:
        """How many leading characters are unquoted."""
        n = 0
        for t, q in self.parts:
            if q and t:
                break
            n += len(t)
        return n

    @property
    def quoted_anywhere(self) -> bool:
        return any(q for _, q in self.parts)


@dataclass
class _Op:
    op: str


@dataclass
class _Redir:
    op: str  # one of < > >> >| <> &> &>> >& <&


_Token = _Word | _Op | _Redir
# Longest first, so "&>>" is not read as "&>" and ">".
_REDIR_OPS = ("&>>", "<<<", "&>", ">>", ">|", ">&", "<&", "<>", "<<", ">", "<")
_FD = re.compile(r"[0-9]+")


class _Lexer:
    """Turns a line into words, operators and redirections, collecting refusal reasons.

    Lexing goes on after a refusal where it can, so deny rules still see the commands; it
    stops only where the rest of the line has no defined meaning (an unterminated quote).
    Command substitutions inside double quotes are recorded in ``hidden`` for deny rules.
    """

    def __init__(self, line: str) -> None:
        self.s = line
        self.i = 0
        self.tokens: list[_Token] = []
        self.word = _Word()
        self.reasons: list[str] = []
        self.hidden: list[str] = []
        self.oversized = False

    def refuse(self, reason: str) -> None:
        self.reasons.append(reason)

    def end_word(self) -> None:
        if self.word.started:
            self.tokens.append(self.word)
            self.word = _Word()

    def peek(self, k: int = 1) -> str:
        j = self.i + k
        return self.s[j] if j < len(self.s) else ""

    def run(self) -> list[_Token]:
        s = self.s
        n = len(s)
        plain = _PLAIN.match
        tokens = self.tokens
        while self.i < n:
            if len(tokens) > MAX_COVERABLE_WORDS:
                self.oversized = True
                break
            m = plain(s, self.i)
            if m:
                self.word.add(m.group(), False)
                self.i = m.end()
                continue
            c = s[self.i]
            if c in " \t":
                self.end_word()
                self.i += 1
            elif c in "\n\r":
                self.end_word()
                self.tokens.append(_Op("\n"))
                self.i += 1
            elif c == "\\":
                if not self.backslash():
                    break
            elif c == "'":
                if not self.single_quoted():
                    break
            elif c == '"':
                if not self.double_quoted():
                    break
            elif c == "`":
                self.refuse("backtick command substitution runs a command the rule cannot see")
                self.end_word()
                self.tokens.append(_Op("`"))
                self.i += 1
            elif c == "$":
                if not self.dollar(quoted=False):
                    break
            elif c == "#" and not self.word.started:
                self.comment()
            elif c in ";&|()":
                self.operator(c)
            elif c in "<>":
                self.redirection()
            else:
                self.word.add(c, False)
                self.i += 1
        self.end_word()
        return self.tokens

    # -- quoting --------------------------------------------------------------------------

    def backslash(self) -> bool:
        nxt = self.peek()
        if not nxt:
            self.refuse("the line ends with a lone backslash")
            return False
        if nxt == "\n":  # line continuation: both characters vanish
            self.i += 2
            return True
        self.word.add(nxt, True)
        self.i += 2
        return True

    def single_quoted(self) -> bool:
        end = self.s.find("'", self.i + 1)
        if end < 0:
            self.refuse("unterminated single quote")
            return False
        self.word.add(self.s[self.i + 1 : end], True)
        self.i = end + 1
        return True

    def double_quoted(self) -> bool:
        s = self.s
        self.word.add("", True)
        self.i += 1
        while True:
            m = _DQ_PLAIN.match(s, self.i)
            if m:
                self.word.add(m.group(), True)
                self.i = m.end()
            if self.i >= len(s):
                self.refuse("unterminated double quote")
                return False
            c = s[self.i]
            if c == '"':
                self.i += 1
                return True
            if c == "\\":
                nxt = self.peek()
                if nxt in ("$", "`", '"', "\\"):
                    self.word.add(nxt, True)
                    self.i += 2
                elif nxt == "\n":
                    self.i += 2
                else:  # backslash stays literal inside double quotes
                    self.word.add("\\", True)
                    self.i += 1
            elif c == "`":
                self.refuse("backtick command substitution runs a command the rule cannot see")
                end = s.find("`", self.i + 1)
                if end > 0:
                    self.hidden.append(s[self.i + 1 : end])
                self.word.add(c, True)
                self.i += 1
            else:  # '$'
                self.dollar(quoted=True)

    def _hidden_substitution(self, start: int) -> None:
        """Record the text of ``$(...)`` starting at ``start`` (just after the '(')."""
        depth, j, s = 1, start, self.s
        while j < len(s) and depth:
            if s[j] == "(":
                depth += 1
            elif s[j] == ")":
                depth -= 1
            j += 1
        self.hidden.append(s[start : j - 1 if not depth else j])

    def dollar(self, *, quoted: bool) -> bool:
        nxt = self.peek()
        if nxt == "(":
            if self.peek(2) == "(":
                self.refuse("arithmetic expansion $((...)) can run commands through array indexes")
            else:
                self.refuse("command substitution $(...) runs a command the rule cannot see")
            if not quoted:  # let "(" open a group so deny rules see the inner command
                self.word.add("$", False)
                self.i += 1
                return True
            self._hidden_substitution(self.i + 2)
        elif nxt == "{":
            self.refuse("parameter expansion ${...}: its value is unknown when the rule is checked")
        elif nxt and (_NAME_START.match(nxt) or nxt in _SPECIAL_PARAMS):
            name = re.match(r"[A-Za-z_][A-Za-z0-9_]*|.", self.s[self.i + 1 :]).group()
            self.refuse(f"variable expansion ${name}: its value is unknown to the rule")
        elif not quoted and nxt == "'":
            self.refuse("ANSI-C quoting $'...' is not interpreted by the rule matcher")
            return self.ansi_c_quoted()
        elif not quoted and nxt == '"':
            self.refuse('locale quoting $"..." is not interpreted by the rule matcher')
            self.i += 1
            return self.double_quoted()
        elif nxt and nxt not in _LITERAL_AFTER_DOLLAR and not (quoted and nxt == '"'):
            # $[...] (old arithmetic), zsh's $=x $~x $^x $+x, and anything unfamiliar.
            self.refuse(f"'${nxt}' may be an expansion; only a bare '$' is taken literally")
        self.word.add("$", quoted)
        self.i += 1
        return True

    def ansi_c_quoted(self) -> bool:
        """Decode ``$'...'`` so deny rules see ``$'rm'`` as ``rm`` (allow rules refuse it)."""
        s, j = self.s, self.i + 2
        out: list[str] = []
        while j < len(s):
            c = s[j]
            if c == "'":
                self.word.add("".join(out), True)
                self.i = j + 1
                return True
            if c == "\\" and j + 1 < len(s):
                nxt = s[j + 1]
                if nxt in _ANSI_SIMPLE:
                    out.append(_ANSI_SIMPLE[nxt])
                    j += 2
                    continue
                if nxt == "c" and j + 2 < len(s):
                    out.append(chr(ord(s[j + 2]) & 0x1F))
                    j += 3
                    continue
                m = _ANSI_NUMERIC.match(s, j + 1)
                if m:
                    digits = m.group()
                    base = 8 if digits[0].isdigit() else 16
                    code = int(digits if base == 8 else digits[1:], base)
                    out.append(chr(code) if code < 0x110000 else "?")
                    j = m.end()
                    continue
            out.append(c)
            j += 1
        self.refuse("unterminated $'...' quote")
        return False

    def comment(self) -> None:
        # A comment runs to the end of the line; stopping at \r too only makes us check more.
        self.i = _COMMENT.match(self.s, self.i).end()

    # -- operators and redirections ----------------------------------------------------------

    def operator(self, c: str) -> None:
        nxt = self.peek()
        if c == "&" and nxt == ">":
            self.redirection()
            return
        self.end_word()
        if c == ";":
            if nxt in (";", "&"):
                self.refuse("case-statement syntax (;; or ;&) is not supported by rules")
                self.i += 2
                self.tokens.append(_Op(";"))
                return
            op = ";"
        elif c == "&":
            op = "&&" if nxt == "&" else "&"
        elif c == "|":
            op = "||" if nxt == "|" else "|&" if nxt == "&" else "|"
        elif c == "(":
            if nxt == "(":
                self.refuse("arithmetic command ((...)) can run commands through array indexes")
            op = "("
        else:
            op = ")"
        self.tokens.append(_Op(op))
        self.i += len(op)

    def redirection(self) -> None:
        s = self.s
        w = self.word
        if w.started and not w.quoted_anywhere and _FD.fullmatch(w.value):
            self.word = _Word()  # "2>file": the digits name a file descriptor, not a word
        elif w.started and re.fullmatch(r"\{[A-Za-z_][A-Za-z0-9_]*\}", w.value):
            self.refuse("named file descriptors {var}>... are not supported by rules")
            self.word = _Word()
        else:
            self.end_word()
        rest = s[self.i : self.i + 3]
        op = next(o for o in _REDIR_OPS if rest.startswith(o))
        if op in ("<<", "<<<"):
            self.refuse("here-documents and here-strings (<<, <<<) feed text the rule cannot see")
        elif op in ("<", ">") and self.peek() == "(":
            self.refuse("process substitution <(...) / >(...) runs a command the rule cannot see")
            self.i += 1
            return  # the "(" that follows opens a group holding the substituted command
        self.tokens.append(_Redir(op))
        self.i += len(op)


# ---- parser: tokens -> simple commands ---------------------------------------------------

_SEPARATORS = {";", "&", "&&", "||", "|", "|&", "\n", "`"}
_NEEDS_FOLLOWER = {"&&", "||", "|", "|&"}
_DUP_TARGET = re.compile(r"[0-9]*-?")
_NULL_TARGETS = {"/dev/null"}


@dataclass
class _Command:
    words: list[_Word] = field(default_factory=list)
    redirs: int = 0

    @property
    def empty(self) -> bool:
        return not self.words and not self.redirs


def _parse(tokens: list[_Token], refuse: Callable[[str], None]) -> list[list[_Word]]:
    commands: list[list[_Word]] = []
    cur = _Command()
    groups: list[str] = []  # stack of "(" and "{"
    after_group = False  # just closed a group: only operators or redirections may follow
    pending: str | None = None  # an operator that still needs a command after it
    i = 0

    def finish() -> None:
        nonlocal cur
        if cur.words:
            commands.append(cur.words)
        elif cur.redirs and not after_group:
            commands.append([])  # a redirection with no command: nothing a rule can allow
        cur = _Command()

    while i < len(tokens):
        tok = tokens[i]
        if isinstance(tok, _Op) and tok.op in _SEPARATORS:
            if tok.op not in ("\n", "`") and cur.empty and not after_group:
                refuse(f"syntax error: no command before {tok.op!r}")
            finish()
            after_group = False
            if tok.op in _NEEDS_FOLLOWER:
                pending = tok.op
            elif tok.op != "\n":
                pending = None
        elif isinstance(tok, _Op) and tok.op == "(":
            if not cur.empty or after_group:
                refuse("'(' after a word (function definition or array) is not supported")
                finish()
            groups.append("(")
            pending = "("
            after_group = False
        elif isinstance(tok, _Op) and tok.op == ")":
            if pending == "(":
                refuse("syntax error: empty ( ) group")
            finish()
            if not groups or groups[-1] != "(":
                refuse("unbalanced ')'")
            else:
                groups.pop()
            after_group = True
            pending = None
        elif isinstance(tok, _Redir):
            cur.redirs += 1
            target = tokens[i + 1] if i + 1 < len(tokens) else None
            if not isinstance(target, _Word):
                refuse(f"redirection {tok.op!r} has no target")
            else:
                i += 1
                _check_redirection(tok.op, target.value, refuse)
        else:
            assert isinstance(tok, _Word)
            if after_group:
                refuse("syntax error: a word after a closing ')' or '}'")
                after_group = False
            if not cur.words and tok.unquoted_is("{"):
                groups.append("{")
                pending = "{"
            elif not cur.words and tok.unquoted_is("}"):
                if pending == "{":
                    refuse("syntax error: empty { } group")
                if not groups or groups[-1] != "{":
                    refuse("unbalanced '}'")
                else:
                    groups.pop()
                after_group = True
                pending = None
            else:
                cur.words.append(tok)
                pending = None
        i += 1
    finish()
    if groups:
        refuse(f"unclosed {groups[-1]!r} group")
    if pending in _NEEDS_FOLLOWER:
        refuse(f"the line ends with {pending!r}")
    return commands


def _check_redirection(op: str, target: str, refuse: Callable[[str], None]) -> None:
    if op in ("<<", "<<<"):
        return  # already refused by the lexer
    if op in (">&", "<&") and _DUP_TARGET.fullmatch(target) and target:
        return  # fd duplication or closing (2>&1, >&-): touches no file
    if op == "<&":
        refuse(f"input duplication from {target!r} is not a file descriptor")
        return
    if target not in _NULL_TARGETS:
        refuse(f"redirection {op} {target!r} touches a file; only /dev/null is coverable")


# ---- command-level checks ------------------------------------------------------------------

_KEYWORDS = {
    "if", "then", "else", "elif", "fi", "while", "until", "for", "do", "done", "case",
    "esac", "select", "function", "!", "[[", "]]", "{", "}",
}  # fmt: skip
# Builtins that evaluate array subscripts (and so $(...)) hidden inside quoted arguments.
_SUBSCRIPT_EVALUATORS = {
    "printf", "read", "unset", "declare", "typeset", "local", "readonly", "export", "mapfile",
    "readarray", "test", "[", "wait", "getopts",
}  # fmt: skip
# Builtins that change the directory later commands run in, to one the rule cannot see.
_DIRECTORY_CHANGERS = {"cd", "pushd", "popd"}
_ASSIGNMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\+?=")
_GLOB_CHARS = "*?["


def _is_assignment(word: _Word) -> bool:
    if "=" not in word.value:
        return False
    m = _ASSIGNMENT.match(word.value)
    return bool(m) and word.unquoted_prefix() >= m.end()


def command_index(words: list[str] | tuple[str, ...]) -> int:
    """Index of the command name, after leading ``NAME=value`` assignments (len if none)."""
    for k, w in enumerate(words):
        if not _ASSIGNMENT.match(w):
            return k
    return len(words)


def _check_command(words: list[_Word], refuse: Callable[[str], None]) -> None:
    k = next((j for j, w in enumerate(words) if not _is_assignment(w)), len(words))
    if k == len(words):
        return  # only assignments: the text itself is what a rule must match
    head = words[k]
    name = head.value
    base = posixpath.basename(name) if "/" in name else name
    args = [w.value for w in words[k + 1 :]]
    if head.has_unquoted(_GLOB_CHARS + "{}"):
        refuse(f"the command name {name!r} uses a wildcard or brace expansion")
    elif any(ch in name for ch in " \t\n\r") or not name:
        refuse("the command name contains whitespace or is empty")
    elif name in _KEYWORDS:
        refuse(f"shell keyword {name!r}: compound commands are not matched by rules")
    elif programs.is_shell(base):
        refuse(f"{base!r} runs a shell whose commands the rule cannot see")
    elif base in programs.RUNNERS:
        refuse(f"{base!r} runs another command or code given as text")
    elif base == "env" and any(not _ASSIGNMENT.match(a) for a in args):
        refuse("'env' with a command or options runs another command")
    elif base in _SUBSCRIPT_EVALUATORS and any(("$" in a or "`" in a) for a in args):
        refuse(f"{base!r} may evaluate '$' or '`' inside an argument")
    elif base in _DIRECTORY_CHANGERS and (
        base == "popd" or not [a for a in args if not a.startswith("-")] or "-" in args
    ):
        refuse(f"{base!r} changes to a directory the rule cannot see (home, or a previous one)")
    else:
        reason = programs.refusal(name, args)
        if reason:
            refuse(reason)


def _oversized(what: str) -> ShellAnalysis:
    reason = f"the line has more than {what}; no rule may allow it"
    return ShellAnalysis((), reason, (reason,), oversized=True)


def analyze_command(line: str) -> ShellAnalysis:
    """Split a shell line into simple commands and decide whether rules may cover it.

    >>> analyze_command("git status && rm -rf ~").commands[1].text
    'rm -rf ~'
    >>> analyze_command("echo $(id)").coverable
    False

    A line over the caps (:data:`MAX_COVERABLE_CHARS`, :data:`MAX_COVERABLE_WORDS`) is not
    split at all: its analysis has no commands and says why.
    """
    if len(line) > MAX_COVERABLE_CHARS:
        return _oversized(f"{MAX_COVERABLE_CHARS} characters")
    reasons: list[str] = []
    if _CONTROL.search(line):
        reasons.append("the line contains a control character (NUL, escape, ...)")
    lexer = _Lexer(line)
    tokens = lexer.run()
    if lexer.oversized:
        return _oversized(f"{MAX_COVERABLE_WORDS} words and operators")
    reasons.extend(lexer.reasons)
    raw = _parse(tokens, reasons.append)
    for words in raw:
        if words:
            _check_command(words, reasons.append)
        else:
            reasons.append("an empty command (a bare redirection) cannot be allowed")
    commands = tuple(SimpleCommand(tuple(w.value for w in words)) for words in raw)
    if not commands:
        reasons.append("the line has no command")
    return ShellAnalysis(
        commands, reasons[0] if reasons else None, tuple(reasons), tuple(lexer.hidden)
    )


# The analysis is a pure function of the text; the allow side and the deny side share it.
analyze_cached = functools.lru_cache(maxsize=256)(analyze_command)


def deny_texts(line: str) -> list[str]:
    """Command texts a deny rule is tested against, for display and debugging: every simple
    command, every command a wrapper runs (``sudo -u root rm x`` also yields ``rm x``), the
    scripts given to ``sh -c`` / ``eval`` / ``find -exec``, and the same with program paths
    and git's global options read past (``/bin/rm x`` -> ``rm x``). At most 256 texts.

    Matching does not build this list: see :mod:`stagent_lab.governance.deny`.
    """
    from stagent_lab.governance.deny import candidate_texts

    return candidate_texts(line, limit=256)
