"""Static copies of the widgets: what a saved notebook shows when no kernel is there.

Each widget is displayed as two outputs: its live view, then a static copy (a mimebundle of
``text/html``, ``text/markdown`` and ``text/plain``) with a display id that the kernel updates
when the widget's state changes (for a task card: each status change and the end of the task).
Saved notebooks, ``jupyter nbconvert --to html`` and GitHub render the static copy; JupyterLab
hides it while the live view is present, and hides the live view's placeholder ("Error
displaying widget: model not found") once the kernel that owned it is gone. Both rules are
plain CSS (``:has``), shipped inside the copy and in the widgets' stylesheet.

Everything here is link-free and self-contained: no scripts, no images, no fetches. Agent text
(results, chat replies) goes through :func:`notebook.markdown.render_markdown`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from html import escape
from typing import Any

from stagent_lab.notebook import fmt
from stagent_lab.notebook.markdown import first_line, render_markdown

STATIC_CLASS = "stg-static"
ACTIVE = ("queued", "running", "waiting")
# Hide the copy while its live view is shown; hide a dead live view's placeholder.
HIDE_RULES = (
    ".jp-OutputArea-child:has(.stagent) + .jp-OutputArea-child:has(.stg-static)"
    "{display:none}"
    ".jp-OutputArea-child:not(:has(.stagent)):has(+ .jp-OutputArea-child .stg-static)"
    "{display:none}"
)
_STYLE = (
    "<style>"
    + HIDE_RULES
    + ".stg-static{font-family:var(--jp-ui-font-family,system-ui,sans-serif);"
    "font-size:var(--jp-ui-font-size1,13px);color:var(--jp-ui-font-color1,#1f2328);"
    "border:1px solid var(--jp-border-color2,#d0d7de);border-radius:6px;padding:8px 12px;"
    "margin:4px 0;max-width:980px;overflow-x:auto}"
    ".stg-static h4{margin:0 0 4px;font-size:1.05em}"
    ".stg-static .stg-static-muted{color:var(--jp-ui-font-color2,#656d76)}"
    ".stg-static .stg-static-badge{display:inline-block;padding:0 8px;border-radius:10px;"
    "border:1px solid currentColor;font-size:.85em;font-weight:600;margin-left:6px}"
    ".stg-static .stg-static-offline{color:var(--jp-warn-color1,#9a6700)}"
    ".stg-static .stg-static-result{border-left:3px solid var(--jp-success-color1,#1a7f37);"
    "padding:2px 10px;margin-top:6px}"
    ".stg-static table{border-collapse:collapse;margin-top:4px}"
    ".stg-static th,.stg-static td{text-align:left;padding:2px 8px;"
    "border-bottom:1px solid var(--jp-border-color2,#d0d7de);white-space:nowrap}"
    ".stg-static td.stg-static-wrap{white-space:normal}"
    "</style>"
)


def _e(value: Any) -> str:
    return escape("" if value is None else str(value))


def _div(kind: str, body: str, **data: Any) -> str:
    attrs = "".join(f' data-{k.replace("_", "-")}="{_e(v)}"' for k, v in data.items() if v)
    return f'<div class="{STATIC_CLASS}" data-stagent="{kind}"{attrs}>{_STYLE}{body}</div>'


def _table(columns: Sequence[str], rows: Iterable[Sequence[Any]], wrap: int | None = None) -> str:
    head = "".join(f"<th>{_e(c)}</th>" for c in columns)
    body = []
    for row in rows:
        cells = []
        for i, value in enumerate(row):
            cls = ' class="stg-static-wrap"' if i == wrap else ""
            cells.append(f"<td{cls}>{_e(value)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _md_table(columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    def cell(v: Any) -> str:
        return str("" if v is None else v).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def _note(what: str, live_hint: str) -> str:
    return (
        f'<div class="stg-static-muted" style="margin-top:6px;font-size:.85em">'
        f"Saved view of {_e(what)} as of {fmt.utc_stamp()}. {_e(live_hint)}</div>"
    )


def runtime_label(runtime: str | None) -> str:
    """The runtime as the card names it; the scripted runtime is never mistaken for a model."""
    if runtime == "scripted":
        return "scripted (offline demo: no model was called)"
    return runtime or "–"


# ---- task card ----------------------------------------------------------------------------


def card(info: dict[str, Any], *, pending: Sequence[dict[str, Any]] = (), tokens: Any = None):
    """The static copy of a task card: title, status, profile, runtime, limits, result."""
    tid = info.get("id") or ""
    title = info.get("title") or tid
    status = info.get("status") or "unknown"
    runtime = info.get("runtime")
    offline = runtime == "scripted"
    turns = fmt.turns_of(info.get("turns"), info.get("max_turns"))
    cost = fmt.cost_of(info.get("cost_usd"), info.get("max_budget_usd"))
    tok = tokens or {}
    numbers = [turns, cost]
    if tok.get("input") or tok.get("output"):
        numbers.append(f"tokens {tok.get('input') or 0:,} in / {tok.get('output') or 0:,} out")
    if info.get("started_ms") and info.get("finished_ms"):
        numbers.append("ran " + fmt.duration((info["finished_ms"] - info["started_ms"]) / 1000))
    meta = [
        ("profile", info.get("profile")),
        ("runtime", runtime_label(runtime)),
        ("model", info.get("model") if not offline else None),
        ("project", info.get("project")),
        ("task", tid),
    ]
    meta = [(k, v) for k, v in meta if v]
    result = info.get("result")
    failure = info.get("failure_reason") if status != "completed" else None
    waiting = [p for p in pending if p.get("kind")]

    offline_badge = ' <span class="stg-static-badge stg-static-offline">offline demo</span>'
    parts = [
        f'<h4>{_e(title)}<span class="stg-static-badge">{_e(status)}</span>'
        + (offline_badge if offline else "")
        + "</h4>",
        '<div class="stg-static-muted">'
        + " · ".join(f"{_e(k)} {_e(v)}" for k, v in meta)
        + "</div>",
        "<div>" + " · ".join(_e(n) for n in numbers) + "</div>",
    ]
    for item in waiting:
        what = item.get("question") or f"{item.get('kind')} {item.get('tool') or ''}".strip()
        parts.append(f"<div><strong>Waiting for approval:</strong> {_e(first_line(what))}</div>")
    if failure:
        parts.append(f"<div><strong>{_e(status)}:</strong> {_e(failure)}</div>")
    if result:
        parts.append(f'<div class="stg-static-result">{render_markdown(result)}</div>')
    hint = (
        f"Run %stagent task {tid} for the live card."
        if status not in ACTIVE
        else f"The task may still be running: %stagent task {tid} shows where it is now."
    )
    html = _div("card", "".join(parts) + _note("a stagent task", hint), task_id=tid)

    badge = f" · **offline demo** ({runtime_label(runtime)})" if offline else ""
    md = [
        f"**{title}** — {status}{badge}",
        "",
        " · ".join(f"{k} `{v}`" for k, v in meta if k != "runtime" or not offline),
        "",
        " · ".join(numbers),
    ]
    plain = [f"{title} [{status}]", " | ".join(f"{k} {v}" for k, v in meta), " | ".join(numbers)]
    for item in waiting:
        what = item.get("question") or f"{item.get('kind')} {item.get('tool') or ''}".strip()
        md += ["", f"Waiting for approval: {first_line(what)}"]
        plain.append(f"waiting for approval: {first_line(what)}")
    if failure:
        md += ["", f"{status}: {failure}"]
        plain.append(f"{status}: {failure}")
    if result:
        md += ["", "---", "", result]
        plain += ["", result]
    return _bundle(html, "\n".join(md), "\n".join(plain))


def _bundle(html: str, markdown: str, plain: str) -> dict[str, str]:
    return {"text/html": html, "text/markdown": markdown, "text/plain": plain}


# ---- inbox, monitor, profiles, memory -----------------------------------------------------


def inbox(items: Sequence[dict[str, Any]], recent: Sequence[dict[str, Any]]) -> dict[str, str]:
    head = f'<h4>Inbox<span class="stg-static-badge">{len(items)} pending</span></h4>'
    rows = [
        (
            i.get("kind"),
            i.get("tool") or "",
            i.get("title") or i.get("task") or "",
            first_line(i.get("question") or i.get("input") or i.get("body") or "", 120),
        )
        for i in items
    ]
    done = [
        (
            r.get("title") or r.get("task") or "",
            f"{r.get('kind')} {r.get('tool') or ''}".strip(),
            r.get("decision") or r.get("status"),
            r.get("decided_by") or "",
            first_line(r.get("response") or "", 80),
        )
        for r in recent
    ]
    body = head
    if rows:
        body += _table(["kind", "tool", "task", "what"], rows, wrap=3)
    else:
        body += '<div class="stg-static-muted">Nothing was waiting.</div>'
    if done:
        body += '<div style="margin-top:6px"><strong>Recent decisions</strong></div>'
        body += _table(["task", "item", "decision", "by", "message"], done, wrap=4)
    html = _div("inbox", body + _note("the inbox", "Run %stagent inbox for the live inbox."))
    md = f"**Inbox** — {len(items)} pending\n\n"
    md += _md_table(["kind", "tool", "task", "what"], rows) if rows else "Nothing was waiting."
    if done:
        md += "\n\nRecent decisions\n\n" + _md_table(["task", "item", "decision", "by"], done)
    plain = f"Inbox: {len(items)} pending" + "".join(
        f"\n- {k} {t} ({task}): {w}" for k, t, task, w in rows
    )
    return _bundle(html, md, plain)


def monitor(
    stats: dict[str, Any],
    agents: Sequence[dict[str, Any]],
    sections: dict[str, list[dict[str, Any]]] | None = None,
) -> dict[str, str]:
    rate = stats.get("success_rate")
    tiles = [
        ("active agents", str(stats.get("active") or 0)),
        ("success rate", "–" if rate is None else f"{round(rate * 100)}%"),
        ("today", fmt.plural(int(stats.get("tasks_today") or 0), "task")),
        ("cost today", fmt.usd(stats.get("cost_today") or 0)),
        ("waiting for you", str(stats.get("pending_inbox") or 0)),
    ]
    body = "<h4>Monitor</h4>" + _table([t[0] for t in tiles], [[t[1] for t in tiles]])
    rows = [
        (
            a.get("title") or a.get("id"),
            a.get("profile"),
            a.get("runtime"),
            a.get("status"),
            fmt.turns_of(a.get("turns"), a.get("max_turns")),
            fmt.cost_of(a.get("cost_usd"), a.get("max_budget_usd")),
        )
        for a in agents
    ]
    cols = ["task", "profile", "runtime", "status", "turns", "cost"]
    if rows:
        body += '<div style="margin-top:6px"><strong>Active agents</strong></div>'
        body += _table(cols, rows, wrap=0)
    md = "**Monitor** — " + " · ".join(f"{k}: {v}" for k, v in tiles)
    if rows:
        md += "\n\n" + _md_table(cols, rows)
    for name, section_rows in (sections or {}).items():
        columns, values = section_table(section_rows)
        body += f'<div style="margin-top:6px"><strong>{_e(section_title(name))}</strong></div>'
        body += _table(columns, values) if values else '<div class="stg-static-muted">none</div>'
        if values:
            md += f"\n\n{section_title(name)}\n\n" + _md_table(columns, values)
    html = _div("monitor", body + _note("the monitor", "Run %stagent monitor for the live one."))
    plain = "Monitor: " + ", ".join(f"{k} {v}" for k, v in tiles)
    return _bundle(html, md, plain)


def section_title(name: str) -> str:
    """``workflow_runs`` → ``Workflow runs`` (feature panels are named by their feature)."""
    text = name.replace("_", " ").replace("-", " ").strip()
    return text[:1].upper() + text[1:]


def section_table(rows: Sequence[dict[str, Any]]) -> tuple[list[str], list[list[Any]]]:
    """Columns (in first-seen order) and cell values of a feature panel's rows."""
    columns: list[str] = []
    for row in rows:
        for key in row:
            if key not in columns:
                columns.append(key)
    return columns, [[_cell(row.get(c)) for c in columns] for row in rows]


def _cell(value: Any) -> Any:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list | tuple):
        return ", ".join(str(v) for v in value)
    if isinstance(value, dict):
        return ", ".join(f"{k}={v}" for k, v in value.items())
    return value


def profiles(cards: Sequence[dict[str, Any]]) -> dict[str, str]:
    def runtimes(c: dict[str, Any]) -> str:
        marks = [r["id"] + ("" if r.get("usable") else " (not usable)") for r in c["runtimes"]]
        return ", ".join(marks)

    rows = [(c["id"], c.get("name"), runtimes(c), ", ".join(c.get("tools") or [])) for c in cards]
    cols = ["profile", "name", "runtimes", "tools"]
    body = f'<h4>Profiles<span class="stg-static-badge">{len(rows)}</span></h4>'
    body += _table(cols, rows, wrap=3)
    html = _div("profiles", body + _note("the profiles", "Run %stagent profiles for details."))
    return _bundle(html, "**Profiles**\n\n" + _md_table(cols, rows), f"{len(rows)} profiles")


def memories(rows: Sequence[dict[str, Any]], total: int, shown: int = 50) -> dict[str, str]:
    table = [
        (r["profile"], r["category"], first_line(r["content"], 140), r["effective"], r["status"])
        for r in rows[:shown]
    ]
    cols = ["profile", "category", "content", "confidence", "status"]
    more = f" (first {len(table)} shown)" if total > len(table) else ""
    body = f'<h4>Memory<span class="stg-static-badge">{total} matching</span></h4>'
    body += _table(cols, table, wrap=2) + (f'<div class="stg-static-muted">{_e(more)}</div>')
    html = _div("memory", body + _note("the memory browser", "Run %stagent memory to browse."))
    md = f"**Memory** — {total} matching{more}\n\n" + _md_table(cols, table)
    return _bundle(html, md, f"Memory: {total} matching{more}")


def chat(session: dict[str, Any], messages: Sequence[dict[str, Any]]) -> dict[str, str]:
    """The conversation as it stands: each message, each reply rendered, cost per turn."""
    runtime = session.get("runtime")
    offline = ' <span class="stg-static-badge stg-static-offline">offline demo</span>'
    head = (
        f"<h4>{_e(session.get('title') or 'Chat')}"
        f'<span class="stg-static-badge">{_e(session.get("profile"))}</span>'
        + (offline if runtime == "scripted" else "")
        + "</h4>"
    )
    parts, md, plain = [head], [f"**{session.get('title') or 'Chat'}**"], []
    total = 0.0
    for m in messages:
        role, content = m.get("role"), str(m.get("content") or "")
        if role == "note":
            note = m.get("content_html") or _e(content)
            parts.append(f'<div class="stg-static-muted">{note}</div>')
            md.append(f"_{content}_")
            continue
        who = "Operator" if role == "user" else "Background task"
        ctx = ", ".join(f"@{c.get('kind')}:{c.get('ref')}" for c in m.get("context") or [])
        parts.append(
            f'<div style="margin-top:8px"><strong>{who}:</strong> {_e(content)}'
            + (f' <span class="stg-static-muted">[{_e(ctx)}]</span>' if ctx else "")
            + "</div>"
        )
        md.append(f"**{who}:** {content}")
        plain.append(f"{who}: {content}")
        total += float(m.get("cost_usd") or 0.0)
        numbers = f"{m.get('status') or 'queued'} · {fmt.turns_of(m.get('turns'))} · "
        numbers += fmt.usd(m.get("cost_usd") or 0.0)
        if m.get("reply_html"):
            parts.append(f'<div class="stg-static-result">{m["reply_html"]}</div>')
        elif m.get("failure"):
            parts.append(f"<div><strong>{_e(m.get('status'))}:</strong> {_e(m['failure'])}</div>")
        parts.append(f'<div class="stg-static-muted" style="font-size:.85em">{_e(numbers)}</div>')
        md.append(f"({numbers})")
    footer = f"{fmt.plural(len(plain), 'message')} · {fmt.usd(total)} in all"
    parts.append(f"<div>{_e(footer)}</div>")
    hint = f"Run %stagent chat --session {session.get('id')} to continue it."
    html = _div("chat", "".join(parts) + _note("a chat", hint), session_id=session.get("id"))
    return _bundle(html, "\n\n".join([*md, footer]), "\n".join([*plain, footer]))


__all__ = [
    "HIDE_RULES",
    "STATIC_CLASS",
    "card",
    "chat",
    "inbox",
    "memories",
    "monitor",
    "profiles",
    "runtime_label",
    "section_table",
    "section_title",
]
