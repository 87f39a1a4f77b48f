"""Compiled rules: an index per tool, so a decision costs about the same with 10 rules or 1,000.

:class:`RuleSet` compiles a list of rules (a profile policy, or one scope of saved rules) into
lookups that find the few rules that *could* cover a request before any glob runs:

* Bash ``command`` rules by the glob's first word (``git log *`` is filed under ``git``), for
  the allow reading (the first word of the line's first command) and the deny reading (every
  word that may start a command, see :mod:`stagent_lab.governance.deny`);
* path rules by their literal leading directories (``/srv/p/**/*.py`` under ``/srv/p``), looked
  up with each ancestor of the requested path, as written and resolved;
* other fields by the glob's literal prefix (``https://docs.x.io/*``);
* bare ``Tool`` rules by tool.

Candidates are then checked in rule order with the compiled globs, so the first matching rule
wins exactly as if every rule had been tried. :class:`RuleIndex` holds the saved rules split
by scope (global, per profile, per project); build it once and rebuild it when rules change.
:func:`compile_policy` caches a profile's ``autoApprove``/``autoDeny`` list the same way.

A :class:`Request` computes what the rules need from a tool call once (the shell analysis,
path forms, the deny subject) however many rules look at it.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from stagent_lab.governance.deny import (
    PREFIX_CHARS,
    DenySubject,
    deny_glob,
    deny_subject,
    literal_prefix,
)
from stagent_lab.governance.globs import (
    bash_glob,
    path_glob_matches,
    plain_glob,
    plain_literal_prefix,
)
from stagent_lab.governance.paths import (
    base_dir,
    bash_argument_report,
    bash_glob_names_git,
    glob_names_git,
    has_git_component,
    literal_dir,
    paths_under,
    rule_globs,
)
from stagent_lab.governance.shell import analyze_cached
from stagent_lab.governance.syntax import PATH_FIELDS, WRITE_TOOLS, Rule, parse_rule

if TYPE_CHECKING:
    from stagent_lab.governance.cascade import SavedRule

__all__ = ["CompiledRule", "Request", "RuleIndex", "RuleSet", "compile_policy", "compile_rules"]

Mode = Literal["allow", "deny"]


class _BashAllow:
    """The allow-side facts of a Bash line: its command texts (when the line is coverable at
    all) and, computed only when a rule needs them, the argument report."""

    __slots__ = ("_flags", "_req", "coverable", "texts", "words")

    def __init__(self, req: Request | None, words: list[tuple[str, ...]]) -> None:
        self._req = req
        self.words = words
        self.coverable = req is not None
        self.texts = tuple(" ".join(w) for w in words)
        self._flags: tuple[bool, ...] | None = None

    @property
    def git_flags(self) -> tuple[bool, ...] | None:
        """Per command: names a ``.git`` path. None when an argument leads outside the
        working directory (then no pattern rule may allow the line)."""
        if self._flags is None:
            if self._req is None:
                return None
            reason, flags = bash_argument_report(self.words, self._req.base)
            self._flags = () if reason else flags  # () = outside: a coverable line has commands
        return self._flags or None


class Request:
    """One tool call, with what rules need from it computed on first use."""

    def __init__(
        self, tool: str, tool_input: Mapping[str, Any], working_dir: str | Path | None
    ) -> None:
        self.tool = tool
        self.input = tool_input if isinstance(tool_input, Mapping) else None
        self.working_dir = working_dir
        self._base: str | None = None
        self._forms: dict[str, tuple[str, str] | None] = {}
        self._bash: _BashAllow | None = None
        self._subject: DenySubject | None = None
        self._git: bool | None = None
        self.memo: dict[tuple[Any, ...], bool] = {}

    @property
    def base(self) -> str:
        if self._base is None:
            self._base = base_dir(self.working_dir)
        return self._base

    def value(self, field: str) -> str | None:
        value = self.input.get(field) if self.input is not None else None
        return value if isinstance(value, str) else None

    def path_forms(self, field: str) -> tuple[str, str] | None:
        """(lexical, resolved) absolute forms of a path field, or None when unusable."""
        if field not in self._forms:
            value = self.value(field)
            ok = value and "\x00" not in value
            self._forms[field] = paths_under(value, self.base) if ok else None
        return self._forms[field]

    @property
    def touches_git(self) -> bool:
        """A write tool aimed at a path with a ``.git`` component (as written or resolved)."""
        if self._git is None:
            self._git = self.tool in WRITE_TOOLS and any(
                has_git_component(form)
                for field in PATH_FIELDS
                for form in (self.path_forms(field) or ())
            )
        return self._git

    def bash_allow(self) -> _BashAllow:
        if self._bash is None:
            line = self.value("command")
            analysis = analyze_cached(line) if line is not None else None
            if analysis is None or not analysis.coverable:
                self._bash = _BashAllow(None, [])
            else:
                self._bash = _BashAllow(self, [c.words for c in analysis.commands])
        return self._bash

    def deny_subject(self) -> DenySubject:
        if self._subject is None:
            self._subject = deny_subject(self.value("command") or "")
        return self._subject


class CompiledRule:
    """A parsed rule ready to match: its kind, compiled globs and index keys.

    ``frozen`` rules resolve their path globs (``~`` and the symlinks of their leading
    directories) once, when compiled; otherwise on every call, like :func:`rule_matches`.
    """

    __slots__ = ("_by_base", "_static", "field", "frozen", "kind", "names_git", "order",
                 "pattern", "payload", "rule", "text", "tool")  # fmt: skip

    def __init__(self, rule: Rule, order: int, payload: Any = None, *, frozen: bool) -> None:
        self.rule = rule
        self.text = rule.text
        self.tool = rule.tool
        self.field = rule.field
        self.pattern = rule.pattern
        self.order = order
        self.payload = payload
        self.frozen = frozen
        self._static: list[str] | None = None
        self._by_base: dict[str, list[str]] = {}
        if rule.field is None or rule.pattern is None:
            self.kind = "bare"
            self.names_git = False
        elif rule.tool == "Bash" and rule.field == "command":
            self.kind = "bash"
            self.names_git = bash_glob_names_git(rule.pattern)
        elif rule.field in PATH_FIELDS:
            self.kind = "path"
            self.names_git = glob_names_git(rule.pattern)
            if frozen and rule.pattern.startswith(("/", "~")):
                self._static = rule_globs(rule.pattern, "/")
        else:
            self.kind = "plain"
            self.names_git = False

    @property
    def anchored(self) -> bool:
        """A path rule whose glob does not depend on the working directory."""
        return self.pattern is not None and self.pattern.startswith(("/", "~"))

    def path_globs(self, base: str) -> list[str]:
        if self._static is not None:
            return self._static
        if not self.frozen:
            return rule_globs(self.pattern or "", base)
        globs = self._by_base.get(base)
        if globs is None:
            if len(self._by_base) > 64:
                self._by_base.clear()
            globs = self._by_base[base] = rule_globs(self.pattern or "", base)
        return globs

    def matches(self, req: Request, mode: Mode) -> bool:
        """Does this rule cover the request (``allow``: strictly; ``deny``: broadly)?"""
        if self.tool != req.tool:
            return False
        if self.kind == "bare":
            return mode == "deny" or not req.touches_git
        if req.input is None:
            return False
        if mode == "allow" and req.touches_git and not self.names_git:
            return False  # .git is only ever written under a rule that names it
        key = (self.kind, self.field, self.pattern, mode, self.names_git)
        hit = req.memo.get(key)
        if hit is None:
            hit = req.memo[key] = self._match(req, mode)
        return hit

    def _match(self, req: Request, mode: Mode) -> bool:
        pattern = self.pattern or ""
        if self.kind == "bash":
            if req.value("command") is None:
                return False
            if mode == "deny":
                return deny_glob(pattern).search(req.deny_subject())
            state = req.bash_allow()
            if not state.coverable:
                return False
            glob = bash_glob(pattern)
            if not all(glob.matches(text) for text in state.texts):
                return False
            flags = state.git_flags  # the file system is looked at only now
            return flags is not None and (self.names_git or not any(flags))
        if self.kind == "path":
            forms = req.path_forms(self.field or "")
            if forms is None or "\x00" in pattern:
                return False
            globs = self.path_globs(req.base)
            hits = [any(path_glob_matches(g, form) for g in globs) for form in forms]
            return any(hits) if mode == "deny" else all(hits)
        value = req.value(self.field or "")
        return value is not None and plain_glob(pattern).match(value) is not None


def _ancestors(path: str) -> list[str]:
    """``/a/b`` -> ``["/", "/a", "/a/b"]``."""
    out = ["/"]
    k = path.find("/", 1)
    while k > 0:
        out.append(path[:k])
        k = path.find("/", k + 1)
    if path != "/":
        out.append(path)
    return out


class _PathIndex:
    """Path rules of one (tool, field) by literal leading directory."""

    def __init__(self) -> None:
        self.static: dict[str, list[CompiledRule]] = {}
        self.relative: list[CompiledRule] = []
        self._per_base: dict[str, dict[str, list[CompiledRule]]] = {}

    def add(self, rule: CompiledRule) -> None:
        if rule.anchored:
            for glob in rule.path_globs("/"):
                self.static.setdefault(literal_dir(glob), []).append(rule)
        else:
            self.relative.append(rule)

    def _relative_map(self, base: str) -> dict[str, list[CompiledRule]]:
        table = self._per_base.get(base)
        if table is None:
            if len(self._per_base) > 64:
                self._per_base.clear()
            table = {}
            for rule in self.relative:
                for glob in rule.path_globs(base):
                    table.setdefault(literal_dir(glob), []).append(rule)
            self._per_base[base] = table
        return table

    def candidates(self, req: Request, field: str, out: list[CompiledRule]) -> None:
        forms = req.path_forms(field)
        if forms is None:
            return
        tables = [self.static]
        if self.relative:
            tables.append(self._relative_map(req.base))
        for form in dict.fromkeys(forms):
            for anc in _ancestors(form):
                for table in tables:
                    hit = table.get(anc)
                    if hit:
                        out.extend(hit)


class _PlainIndex:
    """fnmatch rules of one (tool, field) by literal prefix, bucketed by its length."""

    def __init__(self) -> None:
        self.buckets: dict[int, dict[str, list[CompiledRule]]] = {}

    def add(self, rule: CompiledRule) -> None:
        prefix = plain_literal_prefix(rule.pattern or "")
        self.buckets.setdefault(len(prefix), {}).setdefault(prefix, []).append(rule)

    def candidates(self, req: Request, field: str, out: list[CompiledRule]) -> None:
        value = req.value(field)
        if value is None:
            return
        for length, table in self.buckets.items():
            if length <= len(value):
                hit = table.get(value[:length])
                if hit:
                    out.extend(hit)


def _bucket_lookup(
    buckets: dict[int, dict[str, list[CompiledRule]]], text: str, out: list[CompiledRule]
) -> None:
    for length, table in buckets.items():
        if length <= len(text):
            hit = table.get(text[:length])
            if hit:
                out.extend(hit)


class _BashIndex:
    """Bash command rules by the first word of their glob's literal start, then by the whole
    literal start (``git log`` for ``git log *``) bucketed by its length. Globs whose first word
    is cut by a wildcard (``ls*``) are bucketed by their literal start alone; globs that start
    with a wildcard are always candidates."""

    def __init__(self) -> None:
        self.words: dict[str, dict[int, dict[str, list[CompiledRule]]]] = {}
        self.word_rules: dict[str, list[CompiledRule]] = {}
        self.partial: dict[int, dict[str, list[CompiledRule]]] = {}
        self.anywhere: list[CompiledRule] = []
        self.size = 0

    def add(self, rule: CompiledRule) -> None:
        self.size += 1
        prefix = literal_prefix(rule.pattern or "")[:PREFIX_CHARS]
        if not prefix:
            self.anywhere.append(rule)
            return
        if " " in prefix:
            word = prefix.split(" ", 1)[0]
            buckets = self.words.setdefault(word, {})
            self.word_rules.setdefault(word, []).append(rule)
        else:
            buckets = self.partial
        buckets.setdefault(len(prefix), {}).setdefault(prefix, []).append(rule)

    def _lookup(self, text: str, out: list[CompiledRule]) -> None:
        buckets = self.words.get(text.split(" ", 1)[0])
        if buckets:
            _bucket_lookup(buckets, text, out)
        if self.partial:
            _bucket_lookup(self.partial, text, out)

    def candidates(self, req: Request, mode: Mode, out: list[CompiledRule]) -> None:
        if not self.size or req.value("command") is None:
            return
        out.extend(self.anywhere)
        if mode == "allow":
            state = req.bash_allow()
            if state.coverable:  # every command must match: the first one picks candidates
                self._lookup(state.texts[0], out)
            return
        subject = req.deny_subject()
        if subject.starts is not None:
            for start in subject.starts:
                self._lookup(start, out)
            return
        partial = [r for table in self.partial.values() for rs in table.values() for r in rs]
        if subject.coarse and self.size <= 16:
            out.extend(r for rules in self.word_rules.values() for r in rules)
            out.extend(partial)
            return
        heads = subject.heads
        if len(self.word_rules) <= len(heads):
            for word, rules in self.word_rules.items():
                if word in heads:
                    out.extend(rules)
        else:
            for head in heads:
                out.extend(self.word_rules.get(head, ()))
        if subject.coarse:
            out.extend(partial)
        else:
            for rule in partial:
                prefix = literal_prefix(rule.pattern or "")
                if any(h.startswith(prefix) for h in heads):
                    out.append(rule)


class _ToolIndex:
    def __init__(self) -> None:
        self.bare: list[CompiledRule] = []
        self.bash = _BashIndex()
        self.paths: dict[str, _PathIndex] = {}
        self.plain: dict[str, _PlainIndex] = {}

    def add(self, rule: CompiledRule) -> None:
        if rule.kind == "bare":
            self.bare.append(rule)
        elif rule.kind == "bash":
            self.bash.add(rule)
        elif rule.kind == "path":
            self.paths.setdefault(rule.field or "", _PathIndex()).add(rule)
        else:
            self.plain.setdefault(rule.field or "", _PlainIndex()).add(rule)

    def candidates(self, req: Request, mode: Mode) -> list[CompiledRule]:
        out = list(self.bare)
        self.bash.candidates(req, mode, out)
        for field, index in self.paths.items():
            index.candidates(req, field, out)
        for field, plain in self.plain.items():
            plain.candidates(req, field, out)
        return out


class RuleSet:
    """An ordered list of rules, indexed by tool; :meth:`first_match` returns the first rule
    (in list order) that covers a request, as a plain loop over the list would."""

    def __init__(self, rules: Iterable[CompiledRule]) -> None:
        self.rules = list(rules)
        self.tools: dict[str, _ToolIndex] = {}
        seen: set[tuple[str, str, str | None, str | None]] = set()
        for rule in self.rules:
            key = (rule.tool, rule.kind, rule.field, rule.pattern)
            if key in seen:
                continue  # an identical earlier rule always answers first
            seen.add(key)
            self.tools.setdefault(rule.tool, _ToolIndex()).add(rule)

    def __len__(self) -> int:
        return len(self.rules)

    def first_match(self, req: Request, mode: Mode) -> CompiledRule | None:
        index = self.tools.get(req.tool)
        if index is None:
            return None
        candidates = index.candidates(req, mode)
        if len(candidates) > 1:
            candidates = sorted(set(candidates), key=lambda r: r.order)
        for rule in candidates:
            if rule.matches(req, mode):
                return rule
        return None


@functools.lru_cache(maxsize=128)
def _policy(entries: tuple[str, ...], home: str | None) -> RuleSet:
    del home  # part of the cache key: "~/..." globs were expanded with it
    return RuleSet(
        CompiledRule(parse_rule(entry), k, entry, frozen=True) for k, entry in enumerate(entries)
    )


def compile_policy(entries: Iterable[str], home: str | None = None) -> RuleSet:
    """A profile's ``autoApprove`` or ``autoDeny`` list, compiled and cached (by its entries
    and ``$HOME``, read when not given). Bare entries (``Read``) match the tool."""
    return _policy(tuple(entries), os.environ.get("HOME") if home is None else home)


class RuleIndex:
    """Saved rules compiled for the cascade: split by scope and effect, indexed by tool.

    Build it when the rules are loaded and again whenever one is added or removed; pass it as
    ``evaluate(rules=index)``. It keeps the order of the list it was built from, so "deny
    before allow, first match wins" holds across scopes. The rules that apply to one
    (profile, project) pair are merged into one indexed view the first time that pair asks.
    """

    def __init__(self, rules: Iterable[SavedRule]) -> None:
        self.rules: tuple[SavedRule, ...] = tuple(rules)
        self._scoped: dict[tuple[str, str | None], list[CompiledRule]] = {}
        for order, saved in enumerate(self.rules):
            if saved.scope == "global":
                key: tuple[str, str | None] = ("global", None)
            elif saved.scope in ("profile", "project"):
                key = (saved.scope, saved.scope_id)
            else:
                continue  # an unknown scope applies nowhere
            compiled = CompiledRule(parse_rule(saved.rule), order, saved, frozen=True)
            self._scoped.setdefault(key, []).append(compiled)
        self._views: dict[tuple[str, str | None], dict[str, RuleSet]] = {}

    def __len__(self) -> int:
        return len(self.rules)

    def view(self, profile_id: str, project_id: str | None) -> dict[str, RuleSet]:
        """{"deny": RuleSet, "allow": RuleSet} of the rules that apply to this pair."""
        key = (profile_id, project_id)
        view = self._views.get(key)
        if view is None:
            scopes: list[tuple[str, str | None]] = [("global", None), ("profile", profile_id)]
            if project_id is not None:
                scopes.append(("project", project_id))
            merged = sorted(
                (r for scope in scopes for r in self._scoped.get(scope, ())),
                key=lambda r: r.order,
            )
            view = {
                effect: RuleSet(r for r in merged if r.payload.effect == effect)
                for effect in ("deny", "allow")
            }
            if len(self._views) >= 64:
                self._views.clear()
            self._views[key] = view
        return view

    def first_match(
        self,
        req: Request,
        effect: Literal["allow", "deny"],
        profile_id: str,
        project_id: str | None,
    ) -> SavedRule | None:
        """The first saved rule with ``effect`` that applies here and covers the request."""
        hit = self.view(profile_id, project_id)[effect].first_match(req, effect)
        return None if hit is None else hit.payload


def compile_rules(rules: Iterable[SavedRule]) -> RuleIndex:
    """``RuleIndex(rules)``: the saved rules compiled for :func:`cascade.evaluate`."""
    return RuleIndex(rules)
