"""Default plans for the scripted runtime: real work with the profile's tools, offline.

A plan is a generator of steps; each ``yield`` of a tool step receives that tool's output. The
findings are written from what the tools returned, so a plan run over a different folder gives
a different report. Tools the profile does not allow are skipped rather than requested.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Generator
from typing import Any

from stagent_lab.runtimes.base import RunContext

Plan = Generator[dict[str, Any], Any, None]

# (category, OWASP reference, severity, pattern) — checked against each grep hit's text.
REVIEW_CHECKS: list[tuple[str, str, str, re.Pattern[str]]] = [
    (
        "SQL injection: query built from strings",
        "OWASP A03 Injection",
        "high",
        re.compile(
            r"(execute\(\s*f[\"']|execute\([^)]*(%|\+|\.format\()|f[\"']\s*(SELECT|INSERT|UPDATE|DELETE)\b|[\"']\s*(SELECT|INSERT|UPDATE|DELETE)\b[^\"']*[\"']\s*(%|\+|\.format))",
            re.I,
        ),
    ),
    (
        "Code execution from input (eval/exec)",
        "OWASP A03 Injection",
        "high",
        re.compile(r"\b(eval|exec)\("),
    ),
    (
        "Shell command injection risk",
        "OWASP A03 Injection",
        "high",
        re.compile(r"shell\s*=\s*True|os\.system\("),
    ),
    (
        "Hard-coded secret",
        "OWASP A07 Identification and Authentication Failures",
        "high",
        re.compile(r"(SECRET|PASSWORD|API_KEY|TOKEN)\w*\s*=\s*[\"'][^\"']+[\"']", re.I),
    ),
    (
        "Weak password hashing (md5/sha1)",
        "OWASP A02 Cryptographic Failures",
        "medium",
        re.compile(r"\b(md5|sha1)\b", re.I),
    ),
    ("Bare except hides failures", "reliability", "low", re.compile(r"except\s*:")),
    (
        "Unfinished work (TODO/FIXME)",
        "maintainability",
        "info",
        re.compile(r"\b(TODO|FIXME|XXX)\b"),
    ),
]
REVIEW_GREP = (
    r"execute\(|SELECT|INSERT|UPDATE|DELETE|\beval\(|\bexec\(|shell\s*=\s*True|os\.system\("
    r"|SECRET|PASSWORD|API_KEY|TOKEN|md5|sha1|except\s*:|TODO|FIXME|XXX"
)
_HIT = re.compile(r"^(?P<path>[^:\n]+):(?P<line>\d+)[:-](?P<text>.*)$")


def default_plan(ctx: RunContext) -> Plan:
    allowed = set(ctx.profile.allowed_tools or ())
    if ctx.profile.id in ("code-reviewer", "sweep") and {"Grep", "Glob"} <= allowed:
        return code_review_plan(ctx, allowed)
    return survey_plan(ctx, allowed)


def _lines(output: str) -> list[str]:
    return [ln for ln in output.splitlines() if ln.strip()]


def code_review_plan(ctx: RunContext, allowed: set[str]) -> Plan:
    yield {"say": f"Reviewing the project for: {ctx.prompt.strip()[:200]}"}
    listing = yield {"tool": "Glob", "input": {"pattern": "**/*.py"}}
    files = [f for f in _lines(listing) if f.endswith(".py")]
    hits_out = yield {
        "tool": "Grep",
        "input": {"pattern": REVIEW_GREP, "output_mode": "content", "-n": True, "glob": "*.py"},
    }
    findings: dict[str, list[tuple[str, str, str, str]]] = defaultdict(list)
    for raw in _lines(hits_out):
        m = _HIT.match(raw)
        if not m:
            continue
        for category, owasp, severity, pattern in REVIEW_CHECKS:
            if pattern.search(m["text"]):
                loc = f"{m['path']}:{m['line']}"
                findings[category].append((loc, m["text"].strip()[:120], owasp, severity))
                break
    loops_out = yield {
        "tool": "Grep",
        "input": {
            "pattern": r"^\s*for\s.+\sin\s",
            "output_mode": "content",
            "-n": True,
            "glob": "*.py",
        },
    }
    for loc, text in nested_loops(_lines(loops_out)):
        findings["Nested loops: quadratic time"].append((loc, text, "performance", "medium"))
    read_notes: list[str] = []
    if "Read" in allowed:
        ranked = sorted(
            {loc.split(":")[0] for items in findings.values() for loc, *_ in items},
            key=lambda p: (
                -sum(1 for items in findings.values() for loc, *_ in items if loc.startswith(p))
            ),
        )
        for path in ranked[:2]:
            text = yield {"tool": "Read", "input": {"file_path": path}}
            n = len(_lines(text))
            read_notes.append(f"{path} ({n} lines read)")
    history, status = "", None
    if "Bash" in allowed:
        history = yield {"tool": "Bash", "input": {"command": "git log --oneline -5"}}
        status = yield {"tool": "Bash", "input": {"command": "git status --short"}}
    yield {"say": _review_report(files, findings, read_notes, history, status)}


def _denied(output: str) -> bool:
    return output.lower().startswith(("permission denied", "denied"))


def nested_loops(hits: list[str], window: int = 12) -> list[tuple[str, str]]:
    """Loops nested inside another loop of the same file, from grep -n output.

    A ``for`` line indented deeper than a ``for`` a few lines above it runs once per outer
    iteration: O(n·m), usually O(n²) over one collection.
    """
    found: list[tuple[str, str]] = []
    last: dict[str, tuple[int, int]] = {}  # path -> (line, indent) of the latest loop
    for raw in hits:
        m = _HIT.match(raw)
        if not m:
            continue
        path, line, text = m["path"], int(m["line"]), m["text"]
        indent = len(text) - len(text.lstrip())
        prev = last.get(path)
        if prev and line - prev[0] <= window and indent > prev[1]:
            found.append((f"{path}:{line}", text.strip()[:120]))
        last[path] = (line, indent)
    return found


def _review_report(files, findings, read_notes, history, status: str | None) -> str:
    order = {"high": 0, "medium": 1, "low": 2, "info": 3}
    advice = {
        "Nested loops: quadratic time": (
            "Time complexity grows with the product of both collections; an optimization is to "
            "build a dict index once, which also avoids re-allocating intermediate lists."
        ),
    }
    lines = ["## Findings", ""]
    total = sum(len(v) for v in findings.values())
    if not findings:
        lines.append(
            f"No injection, authentication or secret-handling vulnerability patterns found in "
            f"{len(files)} Python files."
        )
    ranked = sorted(findings.items(), key=lambda kv: order[kv[1][0][3]])
    for category, items in ranked:
        _, _, owasp, severity = items[0]
        lines.append(f"### [{severity.upper()}] {category} — {owasp} ({len(items)})")
        for loc, text, *_ in items[:5]:
            lines.append(f"- `{loc}`: `{text}`")
        if category in advice:
            lines += ["", advice[category]]
        if len(items) > 5:
            lines.append(f"- … and {len(items) - 5} more")
        lines.append("")
    lines.append("## Summary")
    lines.append(
        f"Scanned {len(files)} Python files; {total} potential issues in {len(findings)} "
        "categories (security vulnerability, authentication, performance and maintainability)."
    )
    if read_notes:
        lines.append("Read in full: " + ", ".join(read_notes) + ".")
    if history.strip():
        first = _lines(history)[:3]
        if _denied(history):
            lines.append(f"Git history not inspected: {first[0]}")
        else:
            lines.append("Recent commits: " + "; ".join(first) + ".")
    if status is not None and _denied(status):
        lines.append(f"Working tree not inspected: {_lines(status)[0]}")
    elif status is not None and status.strip() and status.strip() != "(no output)":
        changed = _lines(status)
        lines.append(f"Uncommitted changes ({len(changed)}): " + "; ".join(changed[:5]) + ".")
    elif status is not None:
        lines.append("Working tree: no uncommitted changes.")
    return "\n".join(lines)


def survey_plan(ctx: RunContext, allowed: set[str]) -> Plan:
    profile = ctx.profile
    yield {"say": f"{profile.name}: starting on '{ctx.prompt.strip()[:200]}'."}
    files: list[str] = []
    if "Glob" in allowed:
        files = _lines((yield {"tool": "Glob", "input": {"pattern": "**/*"}}))
    readme_head = ""
    readme = next((f for f in files if f.lower().split("/")[-1].startswith("readme")), None)
    if readme and "Read" in allowed:
        text = yield {"tool": "Read", "input": {"file_path": readme, "limit": 20}}
        body = [re.sub(r"^\s*\d+\t", "", ln) for ln in _lines(text)]
        readme_head = next((b.strip("# ").strip() for b in body if b.strip("# ").strip()), "")
    exts: dict[str, int] = defaultdict(int)
    for f in files:
        exts[f.rsplit(".", 1)[-1] if "." in f.split("/")[-1] else "(none)"] += 1
    mix = ", ".join(f"{n} .{e}" for e, n in sorted(exts.items(), key=lambda kv: -kv[1])[:5])
    report = [
        f"## {profile.name} — offline scripted run",
        f"Task: {ctx.prompt.strip()}",
        f"Project folder: {len(files)} files" + (f" ({mix})" if mix else "") + ".",
    ]
    if readme_head:
        report.append(f"README: {readme_head}")
    report.append(
        "This run used the offline scripted runtime, which surveys with the profile's tools but "
        "does not reason; choose a model runtime (lab.runtimes()) for a real answer."
    )
    yield {"say": "\n".join(report)}
