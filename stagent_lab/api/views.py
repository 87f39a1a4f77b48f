"""Typed views: what clients read about tasks, inbox items, profiles, runtimes, projects.

Views are plain data (pydantic models, JSON-friendly), the same in-process and over the
socket. Tabular reads (task lists, logs, the ledger, SQL) travel as Arrow instead.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict


class View(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class TaskView(View):
    id: str
    title: str | None = None
    status: str
    profile_id: str | None = None
    runtime_id: str | None = None
    model: str | None = None
    project_id: str | None = None
    project: str | None = None
    source: str | None = None
    prompt: str | None = None
    result: str | None = None
    failure_reason: str | None = None
    turns: int = 0
    max_turns: int | None = None
    cost_usd: float = 0.0
    max_budget_usd: float | None = None
    resume_count: int = 0
    session_id: str | None = None
    parent_task_id: str | None = None
    origin_id: str | None = None
    pending_inbox: int = 0
    created_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    notes: list[str] = []

    @property
    def done(self) -> bool:
        return self.status in ("completed", "failed", "cancelled")


class InboxItemView(View):
    id: str
    task_id: str | None = None
    profile_id: str | None = None
    title: str | None = None
    kind: str
    tool_name: str | None = None
    tool_input: Any = None
    question: str | None = None
    suggested_rule: str | None = None
    status: str
    decision: str | None = None
    response: str | None = None
    decided_by: str | None = None
    created_at: datetime | None = None
    decided_at: datetime | None = None
    subject: str = "task"
    subject_id: str | None = None
    body: str | None = None


class DecisionView(View):
    item_id: str
    decision: str
    rule: str | None = None
    rule_id: str | None = None


class RuleView(View):
    id: str
    rule: str
    effect: str
    scope: str
    scope_id: str | None = None


class ProjectView(View):
    id: str
    name: str
    working_directory: str


class RuntimeView(View):
    runtime: str
    label: str = ""
    provider: str = ""
    usable: bool
    reason: str = ""
    default_model: str | None = None
    resume: bool = False
    cancel: bool = True
    approvals: bool = True
    mcp_servers: bool = False
    profile_tests: bool = True
    auth_health_check: bool = False
    builtin_tools: bool = True


class ProfileView(View):
    id: str
    name: str
    description: str = ""
    domain: str = ""
    version: str = ""
    author: str = ""
    origin: str = ""
    tags: list[str] = []
    supported_runtimes: list[str] = []
    preferred_runtime: str | None = None
    allowed_tools: list[str] = []
    auto_approve: list[str] = []
    auto_deny: list[str] = []
    max_turns: int = 20
    output_format: str | None = None
    tests: int = 0
    smoke_tests: list[dict[str, Any]] = []  # [{task, expected_keywords}]
    source_dir: str | None = None
    skill_md: str = ""
