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
When the lexer is unsure, it refuses. A refusal never runs anything and never denies anything
on its own; it only means "a saved rule cannot decide this".
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["ShellAnalysis", "SimpleCommand", "analyze_command", "command_index", "deny_texts"]


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
    only a line with ``refusal is None`` may be allowed by a rule.
    """

    commands: tuple[SimpleCommand, ...]
    refusal: str | None = None
    reasons: tuple[str, ...] = field(default=(), repr=False)

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


@dataclass
class _Word:
    chars: list[str] = field(default_factory=list)
    quoted: list[bool] = field(default_factory=list)
    started: bool = False  # '' is an (empty) word; nothing typed yet is not

    def add(self, ch: str, quoted: bool) -> None:
        self.chars.append(ch)
        self.quoted.append(quoted)
        self.started = True

    @property
    def value(self) -> str:
        return "".join(self.chars)

    def unquoted_is(self, text: str) -> bool:
        return self.value == text and not any(self.quoted)

    def has_unquoted(self, chars: str) -> bool:
        return any(c in chars and not q for c, q in zip(self.chars, self.quoted, strict=True))


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
    """

    def __init__(self, line: str) -> None:
        self.s = line
        self.i = 0
        self.tokens: list[_Token] = []
        self.word = _Word()
        self.reasons: list[str] = []

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
        while self.i < len(s):
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
                self.dollar(quoted=False)
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
        self.word.started = True
        for ch in self.s[self.i + 1 : end]:
            self.word.add(ch, True)
        self.i = end + 1
        return True

    def double_quoted(self) -> bool:
        s = self.s
        self.word.started = True
        self.i += 1
        while True:
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
                self.word.add(c, True)
                self.i += 1
            elif c == "$":
                self.dollar(quoted=True)
            else:
                self.word.add(c, True)
                self.i += 1

    def dollar(self, *, quoted: bool) -> None:
        nxt = self.peek()
        if nxt == "(":
            if self.peek(2) == "(":
                self.refuse("arithmetic expansion $((...)) can run commands through array indexes")
            else:
                self.refuse("command substitution $(...) runs a command the rule cannot see")
            if not quoted:  # let "(" open a group so deny rules see the inner command
                self.word.add("$", False)
                self.i += 1
                return
        elif nxt == "{":
            self.refuse("parameter expansion ${...}: its value is unknown when the rule is checked")
        elif nxt and (_NAME_START.match(nxt) or nxt in _SPECIAL_PARAMS):
            name = re.match(r"[A-Za-z_][A-Za-z0-9_]*|.", self.s[self.i + 1 :]).group()
            self.refuse(f"variable expansion ${name}: its value is unknown to the rule")
        elif not quoted and nxt == "'":
            self.refuse("ANSI-C quoting $'...' is not interpreted by the rule matcher")
        elif not quoted and nxt == '"':
            self.refuse('locale quoting $"..." is not interpreted by the rule matcher')
        elif nxt and nxt not in _LITERAL_AFTER_DOLLAR and not (quoted and nxt == '"'):
            # $[...] (old arithmetic), zsh's $=x $~x $^x $+x, and anything unfamiliar.
            self.refuse(f"'${nxt}' may be an expansion; only a bare '$' is taken literally")
        self.word.add("$", quoted)
        self.i += 1

    def comment(self) -> None:
        # A comment runs to the end of the line; stopping at \r too only makes us check more.
        while self.i < len(self.s) and self.s[self.i] not in "\n\r":
            self.i += 1

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
        if w.started and not any(w.quoted) and _FD.fullmatch(w.value):
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

# Shells, also with a version suffix (bash5, ksh93, zsh-5.9).
_SHELL_NAME = re.compile(
    r"(?:sh|bash|zsh|dash|ksh|mksh|ash|fish|csh|tcsh|yash|posh|rbash|pwsh|busybox|elvish|nu|xonsh)"
    r"(?:[0-9][0-9.-]*|-[0-9][0-9.-]*)?"
)


def _is_shell(base: str) -> bool:
    return bool(_SHELL_NAME.fullmatch(base))


# Commands that run another command (or text as code) given in their arguments.
_RUNNERS = {
    "eval", "exec", "source", ".", "xargs", "nohup", "sudo", "doas", "su", "runuser",
    "pkexec", "timeout", "nice", "ionice", "command", "builtin", "time", "watch", "script",
    "setsid", "stdbuf", "unbuffer", "taskset", "chrt", "chroot", "nsenter", "unshare",
    "flock", "parallel", "strace", "ltrace", "trap", "fc", "enable", "hash", "alias",
    "coproc", "let", "firejail", "numactl", "caffeinate", "entr", "xvfb-run",
    "dbus-run-session", "catchsegv",
}  # fmt: skip
_KEYWORDS = {
    "if", "then", "else", "elif", "fi", "while", "until", "for", "do", "done", "case",
    "esac", "select", "function", "!", "[[", "]]", "{", "}",
}  # fmt: skip
# Builtins that evaluate array subscripts (and so $(...)) hidden inside quoted arguments.
_SUBSCRIPT_EVALUATORS = {
    "printf", "read", "unset", "declare", "typeset", "local", "readonly", "export", "mapfile",
    "readarray", "test", "[", "wait", "getopts",
}  # fmt: skip
_ASSIGNMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\+?=")
_GLOB_CHARS = "*?["


def _is_assignment(word: _Word) -> bool:
    m = _ASSIGNMENT.match(word.value)
    return bool(m) and not any(word.quoted[: m.end()])


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
    elif _is_shell(base):
        refuse(f"{base!r} runs a shell whose commands the rule cannot see")
    elif base in _RUNNERS:
        refuse(f"{base!r} runs another command or code given as text")
    elif base == "env" and any(not _ASSIGNMENT.match(a) for a in args):
        refuse("'env' with a command or options runs another command")
    elif base in _SUBSCRIPT_EVALUATORS and any(("$" in a or "`" in a) for a in args):
        refuse(f"{base!r} may evaluate '$' or '`' inside an argument")
    elif base == "find" and any(a in ("-exec", "-execdir", "-ok", "-okdir") for a in args):
        refuse("'find -exec/-execdir/-ok' runs another command")
    elif base == "fd" and any(
        a in ("-x", "-X", "--exec", "--exec-batch") or a.startswith("--exec") for a in args
    ):
        refuse("'fd --exec' runs another command")
    elif base in ("rg", "ripgrep") and any(a.startswith("--pre") for a in args):
        refuse("'rg --pre' runs another command")
    elif base == "git":
        reason = _git_reason(words[k + 1 :])
        if reason:
            refuse(reason)


_GIT_OPTS_WITH_ARG = {"-C", "--git-dir", "--work-tree", "--namespace", "--super-prefix"}
_GIT_EXEC_OPTS = ("--upload-pack", "--receive-pack", "--exec", "--extcmd")
_GIT_CONFIG_READS = {"--get", "--get-all", "--get-regexp", "--list", "-l", "get", "list"}


def _short_flag(arg: str, letter: str) -> bool:
    """True for ``-x`` and bundles such as ``-ix`` (git lets short flags share one dash)."""
    return arg.startswith("-") and not arg.startswith("--") and letter in arg[1:]


def _git_reason(args: list[_Word]) -> str | None:
    """Git options that make ``git *`` run arbitrary programs (config, aliases, pagers)."""
    j = 0
    while j < len(args) and args[j].value.startswith("-"):
        a = args[j]
        if a.has_unquoted(_GLOB_CHARS + "{}"):
            return "git global option with a wildcard"
        v = a.value
        if v.startswith("-c") or v.startswith("--config-env") or v.startswith("--exec-path"):
            return f"'git {v.split('=')[0]}' can change which programs git runs"
        j += 2 if v in _GIT_OPTS_WITH_ARG else 1
    if j >= len(args):
        return None
    sub = args[j].value
    rest = [a.value for a in args[j + 1 :]]
    if any(r.startswith(_GIT_EXEC_OPTS) for r in rest):
        return f"'git {sub}' with an option that runs a program"
    if sub == "config" and not any(r in _GIT_CONFIG_READS for r in rest):
        return "'git config' that writes settings (aliases, pagers, hooks) can run programs"
    if sub in ("filter-branch", "filter-repo"):
        return f"'git {sub}' runs commands given as text"
    if sub == "rebase" and any(_short_flag(r, "x") for r in rest):
        return "'git rebase -x' runs a command"
    if (sub == "bisect" and rest[:1] == ["run"]) or (sub == "submodule" and "foreach" in rest):
        return f"'git {sub} {rest[0] if sub == 'bisect' else 'foreach'}' runs a command"
    if sub in ("difftool", "mergetool") and any(_short_flag(r, "x") for r in rest):
        return f"'git {sub} -x' runs a command"
    if sub == "clone" and any(_short_flag(r, "u") for r in rest):
        return "'git clone -u' runs an upload-pack program"
    return None


def analyze_command(line: str) -> ShellAnalysis:
    """Split a shell line into simple commands and decide whether rules may cover it.

    >>> analyze_command("git status && rm -rf ~").commands[1].text
    'rm -rf ~'
    >>> analyze_command("echo $(id)").coverable
    False
    """
    reasons: list[str] = []
    if _CONTROL.search(line):
        reasons.append("the line contains a control character (NUL, escape, ...)")
    lexer = _Lexer(line)
    tokens = lexer.run()
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
    return ShellAnalysis(commands, reasons[0] if reasons else None, tuple(reasons))


# ---- deny side: what a line might run, best effort -----------------------------------------

# Wrappers (besides _RUNNERS) whose arguments end with the command they run.
_STRIPPABLE = {"env"}


def deny_texts(line: str, _depth: int = 0) -> list[str]:
    """Command texts a deny rule should be tested against: every simple command, every tail of
    a wrapped command (``sudo -u root rm x`` also yields ``rm x``), and the scripts given to
    ``sh -c`` / ``eval`` / ``find -exec``. Best effort: a deny rule narrows, it is no sandbox;
    the allow side (every command must match, uncoverable lines never do) is the guarantee.
    """
    out: list[str] = []
    for cmd in analyze_command(line).commands:
        _deny_from_words(list(cmd.words), _depth, out)
    return list(dict.fromkeys(out))


def _deny_from_words(words: list[str], depth: int, out: list[str]) -> None:
    words = words[command_index(words) :]
    if not words or depth > 4 or len(out) > 256:
        return
    out.append(" ".join(words))
    base = posixpath.basename(words[0])
    if _is_shell(base):
        for j, w in enumerate(words[:-1]):
            if _short_flag(w, "c"):
                out.extend(deny_texts(words[j + 1], depth + 1))
                break
    elif base == "eval":
        out.extend(deny_texts(" ".join(words[1:]), depth + 1))
    elif base == "find":
        for j, w in enumerate(words):
            if w in ("-exec", "-execdir", "-ok", "-okdir"):
                tail = [t for t in words[j + 1 :] if t not in (";", "+")]
                _deny_from_words(tail, depth + 1, out)
    elif base in _STRIPPABLE or base in _RUNNERS:
        # Which words are the wrapper's own options is unknowable in general: try every tail.
        for j in range(1, len(words)):
            if not words[j].startswith("-"):
                _deny_from_words(words[j:], depth + 1, out)
