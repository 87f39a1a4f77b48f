"""What common programs do with their arguments, as far as permission rules care.

A Bash allow rule names a command by its text. Some arguments make a program do far more than
the text suggests: write a file it chose (``git log --output=.git/hooks/pre-commit``,
``sort -o``, ``sed -i``), read one (``grep -f /proc/self/environ``), or run another program
(``rg --pre``, ``tar --to-command``, awk's ``system()``). Such an argument is treated like a
redirection: :func:`refusal` names it, and no allow rule can cover the line; a person decides.

The tables below are deliberately short and readable; they are a best-effort list of the
common tools, not a model of every program. The guarantees that do not depend on them (the
line split, hidden code, paths outside the working directory) live in
:mod:`stagent_lab.governance.shell` and :mod:`stagent_lab.governance.paths`.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Callable, Sequence

__all__ = [
    "DENY_WRAPPERS",
    "RUNNERS",
    "is_code_runner",
    "is_shell",
    "refusal",
    "strip_git_globals",
]

# Shells, also with a version suffix (bash5, ksh93, zsh-5.9).
_SHELL_NAME = re.compile(
    r"(?:sh|bash|zsh|dash|ksh|mksh|ash|fish|csh|tcsh|yash|posh|rbash|pwsh|busybox|elvish|nu|xonsh)"
    r"(?:[0-9][0-9.-]*|-[0-9][0-9.-]*)?"
)


def is_shell(base: str) -> bool:
    return bool(_SHELL_NAME.fullmatch(base))


# Commands that run another command (or text as code) given in their arguments.
RUNNERS = frozenset(
    {
        "eval", "exec", "source", ".", "xargs", "nohup", "sudo", "doas", "su", "runuser",
        "pkexec", "timeout", "nice", "ionice", "command", "builtin", "time", "watch", "script",
        "setsid", "stdbuf", "unbuffer", "taskset", "chrt", "chroot", "nsenter", "unshare",
        "flock", "parallel", "strace", "ltrace", "trap", "fc", "enable", "hash", "alias",
        "coproc", "let", "firejail", "numactl", "caffeinate", "entr", "xvfb-run",
        "dbus-run-session", "catchsegv", "at", "batch", "systemd-run", "crontab", "sg",
        "fakeroot", "proot", "bwrap", "torsocks", "proxychains",
    }
)  # fmt: skip

# Shell keywords that may precede a command on the same line (``if rm x; then``, ``! rm x``).
_KEYWORD_PREFIXES = frozenset({"if", "then", "else", "elif", "while", "until", "do", "!", "time"})

# For deny rules: words after one of these may start the command that really runs.
DENY_WRAPPERS = RUNNERS | _KEYWORD_PREFIXES | {"env"}

# Programs that run code given in their arguments or in files they read (interpreters, build
# tools, package managers, editors with command modes ...). "Always allow" suggests the exact
# command for them: "node *" would allow "node -e <anything>".
_CODE_RUNNERS = frozenset(
    {
        "awk", "gawk", "mawk", "nawk", "sed", "gsed", "find", "fd", "fdfind", "tar", "gtar",
        "bsdtar", "xargs", "env", "make", "gmake", "cmake", "ninja", "just", "rake", "ant",
        "mvn", "gradle", "gradlew", "sbt", "npm", "npx", "pnpm", "pnpx", "yarn", "bun", "bunx",
        "deno", "node", "nodejs", "pip", "pip3", "pipx", "uv", "uvx", "poetry", "pdm", "hatch",
        "tox", "nox", "conda", "mamba", "micromamba", "pytest", "py.test", "ipython", "jupyter",
        "perl", "ruby", "irb", "php", "lua", "luajit", "R", "Rscript", "julia", "java", "jshell",
        "go", "cargo", "rustc", "dotnet", "swift", "kotlin", "scala", "groovy", "osascript",
        "docker", "podman", "kubectl", "helm", "terraform", "ansible", "ansible-playbook",
        "vim", "vi", "nvim", "view", "ex", "ed", "emacs", "nano", "less", "more", "man", "jq",
        "sqlite3", "duckdb", "psql", "mysql", "gdb", "lldb", "ssh", "tmux", "screen", "brew",
        "apt", "apt-get", "dnf", "yum", "pacman", "gem", "bundle", "composer", "cpan", "cpanm",
        "tclsh", "wish", "expect", "busybox", "patch", "zip", "unzip", "rsync", "openssl",
        "git-shell", "m4", "gcc", "cc", "clang", "g++", "c++", "ld",
    }
)  # fmt: skip
_CODE_RUNNER_NAME = re.compile(
    r"(?:python|pypy|perl|ruby|php|lua|node|java|pip|ipython)[0-9][0-9.]*(?:-[0-9.]+)?"
)


def is_code_runner(base: str) -> bool:
    """True for programs that can run code (or other programs) their arguments describe."""
    return (
        base in _CODE_RUNNERS
        or base in RUNNERS
        or base in ("python", "python3", "py")
        or bool(_CODE_RUNNER_NAME.fullmatch(base))
        or is_shell(base)
    )


# ---- option tables -------------------------------------------------------------------------


def _long_hit(arg: str, names: frozenset[str]) -> bool:
    """``--name`` or ``--name=value``, or any unambiguous abbreviation of ``--name`` (GNU
    getopt and git both accept ``--out=x`` for ``--output=x``)."""
    name = arg[2:].split("=", 1)[0]
    return bool(name) and any(n.startswith(name) for n in names)


def _short_hit(arg: str, letters: str) -> bool:
    """A single-dash bundle (``-ni``, ``-o``) that contains one of ``letters`` anywhere; a
    letter inside an attached value counts too, which only ever refuses more."""
    return len(arg) > 1 and arg[0] == "-" and arg[1] != "-" and any(ch in letters for ch in arg[1:])


def _scan_options(args: Sequence[str], long: frozenset[str], short: str) -> str | None:
    for a in args:
        if a == "--":
            return None  # the rest are operands
        if a.startswith("--") and long and _long_hit(a, long):
            return a
        if short and _short_hit(a, short):
            return a
    return None


# program -> (refused long options, refused short letters, what they do)
_OPTION_TABLE: dict[str, tuple[frozenset[str], str, str]] = {}


def _table(names: str, long: str, short: str, what: str) -> None:
    for name in names.split():
        _OPTION_TABLE[name] = (frozenset(long.split()), short, what)


_table(
    "grep egrep fgrep rgrep zgrep zegrep zfgrep",
    "file exclude-from",
    "f",
    "reads patterns or names from a file the rule does not name",
)
_table(
    "rg ripgrep",
    "pre hostname-bin file",
    "f",
    "runs a preprocessor program or reads patterns from a file",
)
_table(
    "sort",
    "output compress-program files0-from",
    "o",
    "writes its output to a file, or runs a compression program",
)
_table("wc du", "files0-from exclude-from", "X", "reads file names from a file")
_table("fd fdfind", "exec exec-batch", "xX", "runs another command for every file")
_table(
    "curl",
    "output output-dir remote-name remote-name-all remote-header-name config "
    "upload-file dump-header cookie-jar trace trace-ascii stderr libcurl etag-save "
    "create-dirs netrc-file",
    "oOKTDcJ",
    "writes or uploads files",
)
_table(
    "wget",
    "output-document output-file append-output directory-prefix input-file "
    "post-file body-file load-cookies save-cookies config execute use-askpass",
    "OoaPie",
    "writes, reads or runs files",
)
_table(
    "make gmake",
    "file makefile directory eval include-dir what-if new-file assume-new old-file assume-old",
    "fCEIWo",
    "reads another makefile or changes directory",
)
_table(
    "npm npx pnpm pnpx yarn bun bunx",
    "script-shell prefix userconfig globalconfig dir cwd node-options call shell",
    "cC",
    "runs a shell command or changes directory",
)
_table(
    "rsync",
    "rsh rsync-path files-from exclude-from include-from log-file write-batch "
    "read-batch password-file",
    "e",
    "runs a remote shell or reads/writes files",
)
_table("ssh scp sftp", "", "oFS", "sets options such as ProxyCommand that run programs")
_table("vim vi nvim view ex", "cmd", "cS", "runs editor commands")
_table("zip", "unzip-command", "T", "runs a test command")
_table("jq", "rawfile slurpfile from-file", "f", "reads a file the rule does not name")


# ---- per-program checks --------------------------------------------------------------------


def _find(args: Sequence[str]) -> str | None:
    for a in args:
        if a in ("-exec", "-execdir", "-ok", "-okdir"):
            return f"'find {a}' runs another command"
        if a == "-delete":
            return "'find -delete' deletes the files it finds"
        if a in ("-fprint", "-fprint0", "-fprintf", "-fls"):
            return f"'find {a}' writes to a file"
        if a == "-files0-from":
            return "'find -files0-from' reads names from a file"
    return None


# sed: only a safe subset of scripts is coverable; anything the scanner does not understand
# refuses. "w", "W", "r", "R", "e" and the s///w and s///e flags touch files or run commands.
_SED_SIMPLE = set("dDgGhHnNpPxz=F")
_SED_S_FLAGS = set("gpiImM0123456789")


def _sed_script_reason(script: str) -> str | None:
    s, n, i = script, len(script), 0

    def skip_delimited(j: int, delim: str) -> int:
        """Index just past the next unescaped ``delim`` from ``j``, or -1."""
        while j < n:
            c = s[j]
            if c == "\\":
                j += 2
                continue
            if c == "\n" and delim != "\n":
                return -1
            if c == delim:
                return j + 1
            j += 1
        return -1

    def address(j: int) -> int:
        if j < n and s[j].isdigit():
            while j < n and (s[j].isdigit() or s[j] == "~"):
                j += 1
        elif j < n and s[j] == "$":
            j += 1
        elif j < n and (s[j] == "/" or s[j] == "\\"):
            if s[j] == "\\":
                if j + 1 >= n:
                    return -1
                j += 1
            j = skip_delimited(j + 1, s[j])
            if j < 0:
                return -1
            while j < n and s[j] in "IM":
                j += 1
        return j

    while i < n:
        c = s[i]
        if c in " \t\n;":
            i += 1
            continue
        if c == "#":
            while i < n and s[i] != "\n":
                i += 1
            continue
        start = i
        i = address(i)
        if i < 0:
            return "a sed address the rule matcher cannot read"
        if i > start and i < n and s[i] == ",":
            i += 1
            if i < n and s[i] in "+~":
                i += 1
                while i < n and s[i].isdigit():
                    i += 1
            else:
                i = address(i)
                if i < 0:
                    return "a sed address the rule matcher cannot read"
        while i < n and s[i] in " \t!":
            i += 1
        if i >= n:
            return None if i == start else "a sed address without a command"
        c = s[i]
        i += 1
        if c in "{}" or c in _SED_SIMPLE:
            continue
        if c in "qQlL":
            while i < n and (s[i].isdigit() or s[i] in " \t"):
                i += 1
        elif c in ":btTv":
            while i < n and s[i] not in ";\n":
                i += 1
        elif c in "aic":
            while i < n and s[i] != "\n":
                i += 2 if s[i] == "\\" else 1
        elif c in "sy":
            if i >= n or s[i] in "\n\\":
                return f"a sed '{c}' command the rule matcher cannot read"
            delim = s[i]
            i = skip_delimited(i + 1, delim)
            i = skip_delimited(i, delim) if i >= 0 else -1
            if i < 0:
                return f"an unterminated sed '{c}' command"
            if c == "s":
                while i < n and s[i] not in " \t\n;}#":
                    if s[i] == "w":
                        return "the sed flag 's///w' writes a file"
                    if s[i] == "e":
                        return "the sed flag 's///e' runs a command"
                    if s[i] not in _SED_S_FLAGS:
                        return f"the sed flag {s[i]!r} is not understood by the rule matcher"
                    i += 1
        elif c in "wW":
            return f"the sed command '{c}' writes a file"
        elif c in "rR":
            return f"the sed command '{c}' reads a file the rule does not name"
        elif c == "e":
            return "the sed command 'e' runs a command"
        else:
            return f"the sed command {c!r} is not understood by the rule matcher"
    return None


def _sed(args: Sequence[str]) -> str | None:
    scripts: list[str] = []
    operands: list[str] = []
    j = 0
    while j < len(args):
        a = args[j]
        if a == "--":
            operands.extend(args[j + 1 :])
            break
        if a.startswith("--"):
            name, eq, value = a[2:].partition("=")
            if _long_hit(a, frozenset({"in-place"})):
                return "'sed --in-place' rewrites files"
            if _long_hit(a, frozenset({"file"})):
                return "'sed --file' runs a script the rule cannot see"
            if name and "expression".startswith(name):
                if eq:
                    scripts.append(value)
                elif j + 1 < len(args):
                    scripts.append(args[j + 1])
                    j += 1
            elif name and "line-length".startswith(name) and not eq:
                j += 1
        elif a.startswith("-") and len(a) > 1:
            k = 1
            while k < len(a):
                ch = a[k]
                if ch == "i":
                    return "'sed -i' rewrites files in place"
                if ch == "f":
                    return "'sed -f' runs a script the rule cannot see"
                if ch in "el":
                    rest = a[k + 1 :]
                    if not rest and j + 1 < len(args):
                        rest = args[j + 1]
                        j += 1
                    if ch == "e":
                        scripts.append(rest)
                    break
                if ch not in "nErsuz":
                    return f"'sed -{ch}' is not understood by the rule matcher"
                k += 1
        else:
            operands.append(a)
        j += 1
    if not scripts:
        if not operands:
            return None
        scripts.append(operands[0])
    for script in scripts:
        reason = _sed_script_reason(script)
        if reason:
            return reason
    return None


_AWK_DANGER = re.compile(
    r"\b(?:system|getline|close|ENVIRON|PROCINFO)\b|[|@]|\bprintf?\b[^;}\n]*>", re.ASCII
)


def _awk(args: Sequence[str]) -> str | None:
    programs: list[str] = []
    operands: list[str] = []
    j = 0
    while j < len(args):
        a = args[j]
        if a == "--":
            operands.extend(args[j + 1 :])
            break
        if a.startswith("--"):
            name, eq, value = a[2:].partition("=")
            refused = frozenset(
                {"file", "include", "load", "exec", "dump-variables", "profile", "pretty-print"}
            )
            if _long_hit(a, refused):
                return f"'awk {a.split('=')[0]}' reads, writes or runs a file"
            if name and "source".startswith(name):
                if eq:
                    programs.append(value)
                elif j + 1 < len(args):
                    programs.append(args[j + 1])
                    j += 1
            elif name and ("assign".startswith(name) or "field-separator".startswith(name)):
                j += 0 if eq else 1
        elif a.startswith("-") and len(a) > 1:
            ch = a[1]
            if ch in "filEdpo":
                return f"'awk -{ch}' reads, writes or runs a file"
            if ch in "Fve":
                rest = a[2:]
                if not rest and j + 1 < len(args):
                    rest = args[j + 1]
                    j += 1
                if ch == "e":
                    programs.append(rest)
        else:
            operands.append(a)
        j += 1
    if not programs and operands:
        programs.append(operands[0])
    for program in programs:
        m = _AWK_DANGER.search(program)
        if m:
            return (
                f"the awk program uses {m.group().strip()!r}: it can run commands, read the "
                "environment or write files"
            )
    return None


_TAR_LONG = frozenset(
    {
        "file", "to-command", "use-compress-program", "checkpoint-action", "info-script",
        "new-volume-script", "rsh-command", "rmt-command", "directory", "files-from",
        "exclude-from", "listed-incremental", "absolute-names", "extract", "get", "index-file",
        "volno-file",
    }
)  # fmt: skip
_TAR_SHORT = "fIFCTXgPx"


def _tar(args: Sequence[str]) -> str | None:
    for k, a in enumerate(args):
        if a == "--":
            break
        if a.startswith("--") and _long_hit(a, _TAR_LONG):
            return f"'tar {a.split('=')[0]}' reads, writes or runs files the rule does not name"
        bundle = a[1:] if a.startswith("-") and not a.startswith("--") else ""
        if k == 0 and not a.startswith("-") and a.isalpha():
            bundle = a  # the traditional form: tar czf out.tgz src
        hit = next((ch for ch in bundle if ch in _TAR_SHORT), None)
        if hit:
            return f"'tar -{hit}' reads, writes or runs files the rule does not name"
    return None


def _uniq(args: Sequence[str]) -> str | None:
    operands, j = 0, 0
    while j < len(args):
        a = args[j]
        if a in ("-f", "-s", "-w"):
            j += 2
            continue
        if not a.startswith("-") or a == "-":
            operands += 1
        j += 1
    return "'uniq IN OUT' writes its second operand" if operands >= 2 else None


def _tee(args: Sequence[str]) -> str | None:
    files = [a for a in args if not a.startswith("-") and a != "/dev/null"]
    return "'tee' writes files, like a redirection" if files else None


def _make(args: Sequence[str]) -> str | None:
    reason = _scan_options(args, *_OPTION_TABLE["make"][:2])
    if reason:
        return f"'make {reason}' {_OPTION_TABLE['make'][2]}"
    if any(re.match(r"[A-Za-z_][A-Za-z0-9_.-]*[:+?!]?=", a) for a in args):
        return "'make NAME=value' overrides variables, and so the commands make runs"
    return None


def _curl(args: Sequence[str]) -> str | None:
    reason = _scan_options(args, *_OPTION_TABLE["curl"][:2])
    if reason:
        return f"'curl {reason.split('=')[0]}' writes or uploads files"
    if any(a.startswith("@") or "=@" in a or "=<" in a for a in args):
        return "'curl' with '@file' sends the contents of a file"
    return None


def _unzip(args: Sequence[str]) -> str | None:
    listing = any(
        a.startswith("-") and not a.startswith("--") and set(a[1:]) & set("lptvZ") for a in args
    )
    return None if listing else "'unzip' writes the files named inside the archive"


def _patch(args: Sequence[str]) -> str | None:
    return "'patch' writes the files named inside the patch"


def _vim(args: Sequence[str]) -> str | None:
    reason = _scan_options(args, *_OPTION_TABLE["vim"][:2])
    if reason or any(a.startswith("+") for a in args):
        return "editor commands given on the command line can run programs"
    return None


def _jq(args: Sequence[str]) -> str | None:
    reason = _scan_options(args, *_OPTION_TABLE["jq"][:2])
    if reason:
        return f"'jq {reason}' reads a file the rule does not name"
    if any(re.search(r"\benv\b|\$ENV\b|\binput_filename\b|\$__loc__", a) for a in args):
        return "the jq program reads the environment"
    return None


# ---- git -----------------------------------------------------------------------------------

# Global options (before the sub-command) that cannot change which repository, configuration
# or programs git uses. Every other global option makes the line uncoverable.
_GIT_SAFE_GLOBALS = frozenset(
    {
        "--no-pager", "-P", "-p", "--paginate", "--no-replace-objects", "--literal-pathspecs",
        "--glob-pathspecs", "--noglob-pathspecs", "--icase-pathspecs", "--no-optional-locks",
        "--no-advice", "--version", "--help", "-h", "--html-path", "--man-path", "--info-path",
        "--exec-path",
    }
)  # fmt: skip
# Global options followed by a separate argument (for reading past them on the deny side).
_GIT_GLOBALS_WITH_ARG = frozenset(
    {"-C", "-c", "--git-dir", "--work-tree", "--namespace", "--super-prefix", "--config-env",
     "--attr-source", "--list-cmds"}
)  # fmt: skip
# Sub-command options that write or read files git would not otherwise touch, or run programs.
_GIT_LONG = frozenset(
    {
        "output", "output-directory", "no-index", "pathspec-from-file", "upload-pack",
        "receive-pack", "exec", "extcmd", "template", "separate-git-dir", "contents",
        "ignore-revs-file", "open-files-in-pager", "unsafe-paths", "reference",
        "reference-if-able",
    }
)  # fmt: skip
_GIT_SHORT = {
    "format-patch": "o", "archive": "o", "grep": "fO", "rebase": "x", "difftool": "x",
    "clone": "cu",
}  # fmt: skip
_GIT_REFUSED_SUBS = {
    "filter-branch": "runs commands given as text",
    "filter-repo": "runs commands given as text",
    "send-email": "runs mail programs it is configured with",
    "daemon": "runs a server with hook programs",
    "instaweb": "runs a web server",
    "credential": "prints stored credentials",
    "credential-store": "prints stored credentials",
    "credential-cache": "prints stored credentials",
    "hook": "runs hook programs",
    "shell": "runs commands given as text",
}
_GIT_CONFIG_READS = frozenset({"--get", "--get-all", "--get-regexp", "--list", "-l", "get", "list"})


def _git(args: Sequence[str]) -> str | None:
    j = 0
    while j < len(args) and args[j].startswith("-"):
        if args[j] not in _GIT_SAFE_GLOBALS:
            opt = args[j].split("=")[0]
            return f"'git {opt}' changes which repository, configuration or programs git uses"
        j += 1
    if j >= len(args):
        return None
    sub, rest = args[j], list(args[j + 1 :])
    if sub in _GIT_REFUSED_SUBS:
        return f"'git {sub}' {_GIT_REFUSED_SUBS[sub]}"
    if sub == "config" and not any(r in _GIT_CONFIG_READS for r in rest):
        return "'git config' that writes settings (aliases, pagers, hooks) can run programs"
    if sub == "bisect" and rest[:1] == ["run"]:
        return "'git bisect run' runs a command"
    if sub == "submodule" and "foreach" in rest:
        return "'git submodule foreach' runs a command"
    hit = _scan_options(rest, _GIT_LONG, _GIT_SHORT.get(sub, ""))
    if hit:
        opt = hit.split("=")[0]
        return f"'git {sub} {opt}' writes or reads files of its choosing, or runs a program"
    return None


def strip_git_globals(words: Sequence[str]) -> list[str]:
    """``git -C . --no-pager -c x=y push`` -> ``git push``: what a deny rule should see."""
    out = [words[0]]
    j = 1
    while j < len(words) and words[j].startswith("-") and words[j] != "--":
        j += 2 if words[j] in _GIT_GLOBALS_WITH_ARG else 1
    out.extend(words[j:])
    return out


_CHECKS: dict[str, Callable[[Sequence[str]], str | None]] = {
    "find": _find, "sed": _sed, "gsed": _sed, "awk": _awk, "gawk": _awk, "mawk": _awk,
    "nawk": _awk, "tar": _tar, "gtar": _tar, "bsdtar": _tar, "uniq": _uniq, "tee": _tee,
    "make": _make, "gmake": _make, "curl": _curl, "unzip": _unzip, "patch": _patch,
    "vim": _vim, "vi": _vim, "nvim": _vim, "view": _vim, "ex": _vim, "jq": _jq, "git": _git,
}  # fmt: skip


def refusal(name: str, args: Sequence[str]) -> str | None:
    """Why ``name args...`` cannot be covered by an allow rule, or None.

    ``name`` is the command word as written; programs are recognized by their basename, so
    ``/usr/bin/git --output=x`` is read as git.
    """
    base = posixpath.basename(name) if "/" in name else name
    check = _CHECKS.get(base)
    if check is not None:
        return check(args)
    spec = _OPTION_TABLE.get(base)
    if spec is not None:
        hit = _scan_options(args, spec[0], spec[1])
        if hit:
            return f"'{base} {hit.split('=')[0]}' {spec[2]}"
    return None
