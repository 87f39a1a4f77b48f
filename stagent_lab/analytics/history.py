"""A realistic multi-day history, made by running real tasks and then back-dating them.

The engine stamps every row with the current time, so a new workspace holds minutes of
history, not weeks. ``simulate_history`` runs real tasks through the whole governed path (the
engine, the permission cascade, the usage ledger, genai-prices) on the offline scripted
runtime, with real model names so calls are priced, and a realistic mix of successes and
failures (turn limits, budgets, upstream errors, a question nobody answered). When they have
finished, each task's rows in ``tasks``, ``usage_ledger``, ``agent_logs``, ``inbox_items`` and
``task_transcripts`` are moved to a simulated start time on a simulated day, with elapsed time
stretched by ``time_scale`` (a 0.1 s scripted run reads as 30 s).

The back-dating is a **simulation device** for demos, notebooks and tests. Nothing in normal
operation rewrites a time stamp; the rewrite (the ``BackdateTasks`` request) runs on the engine
thread, the store's single writer, in one transaction.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pandas as pd

from stagent_lab.api.requests import BackdateTasks
from stagent_lab.store.history import simulated_tasks_sql

if TYPE_CHECKING:
    from stagent_lab.client.lab import Lab

Steps = list[dict[str, Any]]

# ---- the simulated projects -----------------------------------------------------------------


def _payments_csv() -> str:
    rng = random.Random(7)
    rows = ["date,customer,plan,amount_usd,status"]
    for i in range(60):
        day = dt.date(2026, 1, 1) + dt.timedelta(days=i // 2)
        plan = rng.choice(["starter", "team", "enterprise"])
        amount = {"starter": 29, "team": 199, "enterprise": 1490}[plan]
        status = "refunded" if rng.random() < 0.07 else "paid"
        rows.append(f"{day},cust-{rng.randint(100, 999)},{plan},{amount},{status}")
    return "\n".join(rows) + "\n"


PROJECTS: dict[str, dict[str, str]] = {
    "billing-api": {
        "README.md": "# billing-api\nInvoices, payments and refunds for the SaaS plans.\n",
        "app/auth.py": (
            "import hashlib\n\n"
            "def check_password(user, password):\n"
            "    # TODO: md5 is not a password hash; move to argon2\n"
            "    return user.password_md5 == hashlib.md5(password.encode()).hexdigest()\n\n"
            "def session_token(user):\n"
            "    return f'{user.id}-{user.email}'  # predictable token\n"
        ),
        "app/invoices.py": (
            "def total(lines):\n"
            "    return sum(line.qty * line.unit_price for line in lines)\n\n"
            "def find_invoice(con, number):\n"
            "    return con.execute(f\"SELECT * FROM invoices WHERE number = '{number}'\")\n"
        ),
        "data/payments.csv": _payments_csv(),
    },
    "marketing-site": {
        "README.md": "# marketing-site\nLanding pages, launch posts and traffic exports.\n",
        "content/launch-post.md": (
            "# Introducing Team plans\n\nShared workspaces, audit logs and SSO for teams of "
            "five to fifty. Pricing starts at $199 a month.\n"
        ),
        "data/traffic.csv": "week,visits,signups\n"
        + "".join(f"2026-W{w:02d},{1800 + 90 * w},{40 + 3 * w}\n" for w in range(1, 13)),
    },
}


def _ensure_projects(lab: Lab) -> None:
    """Create the simulated projects' folders and register them (idempotent)."""
    existing = set(lab.projects()["name"])
    for name, files in PROJECTS.items():
        root = lab.home / "projects" / name
        for rel, text in files.items():
            path = root / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            if not path.exists():
                path.write_text(text)
        if name not in existing:
            lab.add_project(name, root, instructions=f"Work only inside the {name} repository.")


# ---- scenarios ------------------------------------------------------------------------------

_FINDINGS = [
    "check_password compares an unsalted MD5 digest; use argon2id with a per-user salt.",
    "session_token is built from the user id and e-mail, so anyone can forge it.",
    "find_invoice formats the invoice number into SQL: parameterize the query.",
    "No rate limit protects the login endpoint; add one before the launch.",
    "Refunds are not re-checked against the original payment amount.",
]
_RESEARCH = [
    "Competitors price team plans between $149 and $249 a month.",
    "Buyers in the 5-50 seat range rank SSO and audit logs above price.",
    "Launch posts with a customer quote convert about 20% better.",
    "Weekly signups grew steadily; the conversion rate held near 2.2%.",
]
_ANALYSIS = [
    "Revenue is concentrated in enterprise plans, about 70% of the total.",
    "Refunds run near 7% of payments, mostly on starter plans.",
    "Team plan revenue grew every week of the period.",
    "Median payment is $199; the mean is pulled up by enterprise invoices.",
]
_DOCS = [
    "Release 2.4 adds team workspaces and an audit log.",
    "Invoices now show the tax breakdown per line.",
    "The refunds API is idempotent; retries are safe.",
]


def _prose(rng: random.Random, sentences: list[str], n_chars: int) -> str:
    out: list[str] = []
    while sum(len(s) + 1 for s in out) < n_chars:
        out.append(rng.choice(sentences))
    return " ".join(out)


def _think(rng: random.Random, lo: float, hi: float) -> dict[str, Any]:
    return {"sleep": round(rng.uniform(lo, hi), 3)}


@dataclass(frozen=True)
class Plan:
    """One task to run: what to submit and how the simulation expects it to end."""

    prompt: str
    steps: Steps
    submit: dict[str, Any] = field(default_factory=dict)  # extra submit() keywords
    cancel_when_waiting: bool = False  # the operator cancels it while it waits on the inbox


@dataclass(frozen=True)
class Scenario:
    name: str
    profile: str
    project: str | None
    models: tuple[str, ...]
    weight: float
    build: Callable[[random.Random], Plan]


def _security_review(rng: random.Random) -> Plan:
    steps: Steps = [
        _think(rng, 0.01, 0.04),
        {"tool": "Read", "input": {"file_path": "app/auth.py"}},
        {"tool": "Grep", "input": {"pattern": "execute\\(f", "path": "app"}},
    ]
    roll = rng.random()
    if roll < 0.2:  # tries the network, the profile's autoDeny refuses, it carries on
        steps.append({"tool": "Bash", "input": {"command": "curl -s https://cve.example/api"}})
        steps.append({"say": "curl is not allowed for this profile; continuing from the code."})
    if roll > 0.85:  # a deep review that runs out of turns
        steps += [{"say": _prose(rng, _FINDINGS, 600)} for _ in range(4)]
        return Plan("Review the whole billing-api for security issues", steps, {"max_turns": 4})
    steps += [_think(rng, 0.01, 0.05), {"say": _prose(rng, _FINDINGS, rng.randint(900, 2400))}]
    steps.append({"result": "Findings: " + _prose(rng, _FINDINGS, 300)})
    return Plan("Review app/auth.py for security issues", steps)


def _market_research(rng: random.Random) -> Plan:
    steps: Steps = [
        _think(rng, 0.01, 0.05),
        {"tool": "Read", "input": {"file_path": "content/launch-post.md"}},
        {"tool": "Glob", "input": {"pattern": "data/*.csv"}},
    ]
    roll = rng.random()
    if roll < 0.2:
        steps.append({"fail": "upstream source unavailable: HTTP 503 from the pricing index"})
        return Plan("Compare our Team plan pricing with competitors", steps)
    if roll < 0.3:  # a long report on the big model blows through a small budget
        steps += [{"say": _prose(rng, _RESEARCH, 3000)} for _ in range(5)]
        steps.append({"result": "Report attached."})
        return Plan(
            "Write the full competitor report",
            steps,
            {"max_budget_usd": 0.01, "model": "claude-sonnet-4-5"},
        )
    steps += [
        {"say": _prose(rng, _RESEARCH, rng.randint(600, 1800))},
        {"result": _prose(rng, _RESEARCH, 200)},
    ]
    return Plan("Research what buyers value in team plans", steps)


def _revenue_analysis(rng: random.Random) -> Plan:
    steps: Steps = [
        {"tool": "Read", "input": {"file_path": "data/payments.csv"}},
        {"tool": "Bash", "input": {"command": "wc -l data/payments.csv"}},
        _think(rng, 0.005, 0.03),
        {"say": _prose(rng, _ANALYSIS, rng.randint(500, 1500))},
    ]
    if rng.random() < 0.15:  # the analysis keeps digging past its turn limit
        steps += [{"say": _prose(rng, _ANALYSIS, 400)} for _ in range(3)]
        return Plan("Break revenue down by plan, week and refund status", steps, {"max_turns": 3})
    steps.append({"result": _prose(rng, _ANALYSIS, 200)})
    return Plan("Report monthly revenue and the refund rate", steps)


def _quick_answer(rng: random.Random) -> Plan:
    steps: Steps = [
        _think(rng, 0.001, 0.01),
        {"say": _prose(rng, _RESEARCH + _ANALYSIS, rng.randint(200, 600))},
        {"result": "Answered."},
    ]
    return Plan("Summarize this week's numbers in three bullets", steps)


def _release_notes(rng: random.Random) -> Plan:
    steps: Steps = [
        {"tool": "Read", "input": {"file_path": "README.md"}},
        _think(rng, 0.01, 0.03),
    ]
    if rng.random() < 0.25:  # asks which release to cover; nobody answers; cancelled
        steps += [
            {"ask": "Which release should the notes cover, 2.4 or 2.5?"},
            {"result": "unreachable"},
        ]
        return Plan("Draft the release notes", steps, cancel_when_waiting=True)
    steps += [
        {"say": _prose(rng, _DOCS, rng.randint(800, 2000))},
        {"result": "Draft ready for review."},
    ]
    return Plan("Draft the release notes for 2.4", steps)


SCENARIOS: tuple[Scenario, ...] = (
    Scenario(
        "security-review",
        "code-reviewer",
        "billing-api",
        ("claude-sonnet-4-5",),
        3.0,
        _security_review,
    ),
    Scenario(
        "market-research",
        "researcher",
        "marketing-site",
        ("claude-haiku-4-5", "claude-sonnet-4-5"),
        2.0,
        _market_research,
    ),
    Scenario(
        "revenue-analysis", "data-analyst", "billing-api", ("gpt-5-mini",), 2.0, _revenue_analysis
    ),
    Scenario("quick-answer", "general", None, ("claude-haiku-4-5",), 2.0, _quick_answer),
    Scenario(
        "release-notes", "document-writer", "marketing-site", ("gpt-5-mini",), 1.0, _release_notes
    ),
)


# ---- running and back-dating ----------------------------------------------------------------


def simulate_history(
    lab: Lab,
    days: int = 14,
    tasks_per_day: int = 8,
    seed: int = 0,
    *,
    end: dt.date | str | None = None,
    time_scale: float = 300.0,
    timeout: float = 120.0,
) -> pd.DataFrame:
    """Run ``days * tasks_per_day`` scripted tasks and back-date them over ``days`` days.

    The last simulated day is ``end`` (default: yesterday, UTC); tasks start between 08:00
    and 19:00. The same ``seed`` gives the same tasks, scripts and outcomes. Returns one row
    per task: task_id, scenario, profile_id, model, project, day, status, failure_reason,
    started_at, finished_at, duration_s, cost_usd (all after back-dating).
    """
    if days < 1 or tasks_per_day < 1:
        raise ValueError("days and tasks_per_day must be at least 1")
    if not time_scale > 0:
        raise ValueError(f"time_scale must be > 0, got {time_scale!r}")
    missing = sorted({s.profile for s in SCENARIOS} - set(lab.profiles.ids()))
    if missing:
        raise ValueError(f"simulate_history needs the built-in profiles {', '.join(missing)}")
    last = (
        pd.Timestamp(end).date()
        if end is not None
        else dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)
    )
    first = last - dt.timedelta(days=days - 1)
    _ensure_projects(lab)
    rng = random.Random(seed)
    weights = [s.weight for s in SCENARIOS]

    planned: list[tuple[Scenario, Plan, str, dt.datetime]] = []
    for d in range(days):
        day = first + dt.timedelta(days=d)
        offsets = sorted(rng.uniform(8 * 3600, 19 * 3600) for _ in range(tasks_per_day))
        for off in offsets:
            scenario = rng.choices(SCENARIOS, weights)[0]
            plan = scenario.build(rng)
            model = plan.submit.get("model") or rng.choice(scenario.models)
            start = dt.datetime.combine(day, dt.time()) + dt.timedelta(seconds=round(off, 3))
            planned.append((scenario, plan, model, start))

    handles = []
    for scenario, plan, model, _ in planned:
        extra = {k: v for k, v in plan.submit.items() if k != "model"}
        handles.append(
            lab.submit(
                plan.prompt,
                profile=scenario.profile,
                project=scenario.project,
                script=plan.steps,
                model=model,
                title=f"[sim] {plan.prompt}",
                **extra,
            )
        )
    # In submission order, so a task waiting on the inbox never starves the ones behind it.
    for handle, (_, plan, _, _) in zip(handles, planned, strict=True):
        if plan.cancel_when_waiting:
            handle.wait_for("waiting", "completed", "failed", "cancelled", timeout=timeout)
            if handle.status == "waiting":
                handle.cancel()
        handle.wait(timeout)

    moves = [(h.id, start) for h, (_, _, _, start) in zip(handles, planned, strict=True)]
    lab.call(BackdateTasks(moves=moves, time_scale=float(time_scale)))

    ids = [h.id for h in handles]
    df = lab.sql(simulated_tasks_sql(len(ids)), ids)
    names = pd.DataFrame({"task_id": ids, "scenario": [p[0].name for p in planned]})
    df = names.merge(df, on="task_id", how="left")
    cols = ["task_id", "scenario", *[c for c in df.columns if c not in ("task_id", "scenario")]]
    return df[cols].sort_values("started_at", kind="stable").reset_index(drop=True)
