"""The contract: every request a client can make of a workspace, as typed models.

A request is a pydantic model with ``extra="forbid"``: an unknown field, a value of the wrong
type or out of range is refused before anything runs, with an error naming the field. Each
request class has a ``kind`` (its name on the wire) and says whether it changes the workspace
(``mutates``) and what it returns (``result``: a pydantic view, a list of them, a plain JSON
value, or ``ArrowTable`` for tabular answers that arrive as DataFrames).

The same requests travel in-process (``LocalWorkspace``) and over the service's socket
(``RemoteWorkspace``); features (workflows, schedules, budgets, channels) add their own with
:func:`request`.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from stagent_lab.api.values import (
    Count,
    Identifier,
    Message,
    Name,
    PositiveInt,
    Prompt,
    Seconds,
    ShortText,
    Text,
    Turns,
    Usd,
)
from stagent_lab.api.views import (
    DecisionView,
    InboxItemView,
    ProfileView,
    ProjectView,
    RuleView,
    RuntimeView,
    TaskView,
)
from stagent_lab.errors import InvalidInput


class ArrowTable:
    """Marker: the result is a pyarrow Table (a DataFrame on the client)."""


Source = Literal[
    "manual", "handoff", "workflow", "schedule", "heartbeat", "channel", "profile_test", "chat"
]
Activity = Literal[
    "task_run",
    "task_resume",
    "workflow_step",
    "schedule_firing",
    "heartbeat",
    "heartbeat_action",
    "profile_test",
    "handoff",
]


class Request(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    kind: ClassVar[str] = ""
    mutates: ClassVar[bool] = True
    result: ClassVar[Any] = None


REQUESTS: dict[str, type[Request]] = {}


def request(cls: type[Request]) -> type[Request]:
    """Register a request class under its ``kind`` (snake_case of the class name if unset)."""
    if not cls.kind:
        name = cls.__name__
        cls.kind = "".join(f"_{c.lower()}" if c.isupper() else c for c in name).lstrip("_")
    current = REQUESTS.get(cls.kind)
    if current is not None and current is not cls:
        raise ValueError(f"a request named {cls.kind!r} is already registered")
    REQUESTS[cls.kind] = cls
    return cls


def parse_request(data: dict[str, Any]) -> Request:
    """A request from its wire form ``{"kind": ..., **fields}`` (InvalidInput if not valid)."""
    if not isinstance(data, dict):
        raise InvalidInput("a request is a JSON object with a 'kind'")
    fields = dict(data)
    kind = fields.pop("kind", None)
    cls = REQUESTS.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise InvalidInput(f"unknown request kind {kind!r}")
    return build(cls, **fields)


def build(cls: type[Request], **fields: Any) -> Request:
    """``cls(**fields)`` with validation errors turned into one InvalidInput naming each field."""
    try:
        return cls(**fields)
    except ValidationError as exc:
        raise InvalidInput(describe(exc, cls.kind)) from None


def describe(exc: ValidationError, what: str) -> str:
    problems = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or what
        value = err.get("input")
        shown = repr(value)
        if len(shown) > 80:
            shown = shown[:77] + "..."
        problems.append(f"{where}: {err['msg']} (got {shown})")
    return f"invalid {what}: " + "; ".join(problems)


# ---- tasks -------------------------------------------------------------------------------


@request
class SubmitTask(Request):
    prompt: Prompt
    profile: Identifier | None = None
    runtime: Identifier | None = None
    project: Text | None = Field(default=None, max_length=4096)
    max_turns: Turns | None = None
    max_budget_usd: Usd | None = None
    script: Any = None  # a scripted-runtime script: steps (JSON), YAML text, or a file path
    model: ShortText | None = None
    title: ShortText | None = None
    source: Source = "manual"
    parent_task_id: Identifier | None = None
    origin_id: Identifier | None = None
    activity: Activity = "task_run"
    unattended: bool = False
    priority: int = Field(default=0, ge=-1000, le=1000)
    timeout_s: Seconds | None = None
    pool: Identifier | None = None  # a slot pool with its own limit (schedule, channel …)
    channels: list[Identifier] = Field(default_factory=list, max_length=20)  # bound channels
    result: ClassVar[Any] = TaskView


@request
class CancelTask(Request):
    task_id: Identifier
    result: ClassVar[Any] = str


@request
class PauseTask(Request):
    task_id: Identifier
    reason: ShortText = "paused by the operator"
    result: ClassVar[Any] = str


@request
class ResumeTask(Request):
    task_id: Identifier
    script: Any = None
    result: ClassVar[Any] = TaskView


@request
class GetTask(Request):
    """The task's row (the store, overlaid with what the engine knows right now)."""

    task_id: Identifier
    mutates: ClassVar[bool] = False
    result: ClassVar[Any] = TaskView


@request
class TaskStatus(Request):
    """Where a task is, from the engine's memory when it runs here (no store read)."""

    task_id: Identifier
    mutates: ClassVar[bool] = False
    result: ClassVar[Any] = TaskView


@request
class ResolveTaskId(Request):
    """The full id of the task whose id starts with ``prefix`` (unique, else an error)."""

    prefix: Identifier
    mutates: ClassVar[bool] = False
    result: ClassVar[Any] = str


@request
class ListTasks(Request):
    status: Identifier | None = None
    source: Identifier | None = None
    limit: PositiveInt | None = None
    mutates: ClassVar[bool] = False
    result: ClassVar[Any] = ArrowTable


@request
class ListLogs(Request):
    task_id: Identifier | None = None
    event: Identifier | None = None
    subject: Identifier | None = None
    limit: PositiveInt | None = None
    mutates: ClassVar[bool] = False
    result: ClassVar[Any] = ArrowTable


@request
class ListUsage(Request):
    task_id: Identifier | None = None
    mutates: ClassVar[bool] = False
    result: ClassVar[Any] = ArrowTable


@request
class Sql(Request):
    """Read-only SQL over the workspace (SELECT, WITH, DESCRIBE, SHOW, EXPLAIN, SUMMARIZE,
    PRAGMA …); statements that change anything are refused."""

    query: Text = Field(min_length=1, max_length=1_000_000)
    params: list[Any] | dict[str, Any] | None = None
    mutates: ClassVar[bool] = False
    result: ClassVar[Any] = ArrowTable


# ---- inbox and rules ---------------------------------------------------------------------


@request
class ListInbox(Request):
    status: Literal["pending", "decided", "expired", "done", "all"] = "pending"
    task_id: Identifier | None = None
    limit: PositiveInt | None = None
    newest_first: bool = False
    mutates: ClassVar[bool] = False
    result: ClassVar[Any] = list[InboxItemView]


@request
class ResolveItemId(Request):
    prefix: Identifier
    mutates: ClassVar[bool] = False
    result: ClassVar[Any] = str


@request
class Decide(Request):
    item_id: Identifier
    decision: Literal["allow", "always", "deny", "answer"]
    message: Message | None = None
    rule: ShortText | None = None
    scope: Literal["global", "profile", "project"] | None = None
    decided_by: ShortText | None = None
    result: ClassVar[Any] = DecisionView


@request
class WaitInbox(Request):
    """Block until a pending item exists (for ``task_id`` when given), at most ``timeout``."""

    task_id: Identifier | None = None
    timeout: float = Field(default=30.0, ge=0, le=3600)
    mutates: ClassVar[bool] = False
    result: ClassVar[Any] = list[InboxItemView]


@request
class AddRule(Request):
    rule: ShortText
    effect: Literal["allow", "deny"] = "allow"
    scope: Literal["global", "profile", "project"] = "global"
    scope_id: Identifier | None = None
    result: ClassVar[Any] = RuleView


@request
class RemoveRule(Request):
    rule_id: Identifier
    result: ClassVar[Any] = None


@request
class ListRules(Request):
    mutates: ClassVar[bool] = False
    result: ClassVar[Any] = ArrowTable


# ---- projects, settings, profiles, runtimes ----------------------------------------------


@request
class AddProject(Request):
    name: Name
    working_directory: Text = Field(min_length=1, max_length=4096)
    instructions: Message | None = None
    result: ClassVar[Any] = ProjectView


@request
class ResolveProject(Request):
    """A project by name or folder (a new folder becomes a project); None: the default."""

    project: Text | None = Field(default=None, max_length=4096)
    result: ClassVar[Any] = ProjectView


@request
class ListProjects(Request):
    mutates: ClassVar[bool] = False
    result: ClassVar[Any] = ArrowTable


@request
class GetSettings(Request):
    mutates: ClassVar[bool] = False
    result: ClassVar[Any] = dict[str, str]


@request
class SetSetting(Request):
    key: ShortText
    value: str | int | float | bool | list[Any] | dict[str, Any] | None
    result: ClassVar[Any] = str

    @field_validator("value")
    @classmethod
    def _plain(cls, value: Any) -> Any:
        if isinstance(value, float) and value != value:  # NaN
            raise ValueError("must be a finite number")
        return value


@request
class ListProfiles(Request):
    mutates: ClassVar[bool] = False
    result: ClassVar[Any] = list[ProfileView]


@request
class GetProfile(Request):
    profile_id: Identifier
    mutates: ClassVar[bool] = False
    result: ClassVar[Any] = ProfileView


@request
class ProfileErrors(Request):
    mutates: ClassVar[bool] = False
    result: ClassVar[Any] = list[dict[str, Any]]


@request
class AddProfileDirs(Request):
    """Folders of user profiles this client brings (the service loads them too)."""

    dirs: list[Text] = Field(max_length=64)
    result: ClassVar[Any] = None


@request
class Classify(Request):
    text: Text = Field(max_length=200_000)
    mutates: ClassVar[bool] = False
    result: ClassVar[Any] = dict[str, Any]


@request
class ListRuntimes(Request):
    refresh: bool = False
    mutates: ClassVar[bool] = False
    result: ClassVar[Any] = list[RuntimeView]


@request
class ConfigureRuntime(Request):
    """Options (base_url, model, …) used whenever ``runtime_id`` is created. Keys passed here
    are held in memory only and join redaction; they are never stored."""

    runtime_id: Identifier
    options: dict[str, Any]
    result: ClassVar[Any] = None


@request
class RegisterRuntime(Request):
    """A runtime class of your own, by import path ``package.module:ClassName``."""

    import_path: ShortText
    result: ClassVar[Any] = None


@request
class SyncEnvironment(Request):
    """Provider variables of the client (keys, base URLs) the service should use from now on."""

    variables: dict[Identifier, Text]
    result: ClassVar[Any] = list[str]


# ---- memory ------------------------------------------------------------------------------


@request
class MemoryList(Request):
    profile_id: Identifier | None = None
    status: Literal["active", "decayed", "archived", "rejected"] | None = "active"
    project: Text | None = None
    category: Identifier | None = None
    mutates: ClassVar[bool] = False
    result: ClassVar[Any] = ArrowTable


@request
class MemoryGet(Request):
    memory_id: Identifier
    mutates: ClassVar[bool] = False
    result: ClassVar[Any] = dict[str, Any]


@request
class MemoryRecall(Request):
    profile_id: Identifier
    query: Text = Field(default="", max_length=100_000)
    k: int = Field(default=8, ge=1, le=1000)
    project: Text | None = None
    tags: list[ShortText] = Field(default_factory=list, max_length=100)
    mutates: ClassVar[bool] = False
    result: ClassVar[Any] = ArrowTable


@request
class MemoryPreview(Request):
    profile_id: Identifier
    prompt: Prompt
    project: Text | None = None
    title: ShortText | None = None
    mutates: ClassVar[bool] = False
    result: ClassVar[Any] = str | None


@request
class MemoryAdd(Request):
    profile_id: Identifier
    content: Message
    category: Identifier = "fact"
    tags: list[ShortText] | ShortText | None = None
    confidence: int | None = Field(default=None, ge=0, le=1000)
    decay_rate: int | None = Field(default=None, ge=0, le=1000)
    project: Text | None = None
    result: ClassVar[Any] = str


@request
class MemoryEdit(Request):
    memory_id: Identifier
    content: Message | None = None
    category: Identifier | None = None
    tags: list[ShortText] | ShortText | None = None
    confidence: int | None = Field(default=None, ge=0, le=1000)
    decay_rate: int | None = Field(default=None, ge=0, le=1000)
    status: Identifier | None = None
    result: ClassVar[Any] = dict[str, Any]


@request
class MemoryReject(Request):
    memory_id: Identifier
    result: ClassVar[Any] = dict[str, Any]


@request
class MemoryDelete(Request):
    memory_id: Identifier
    result: ClassVar[Any] = None


@request
class MemoryDecay(Request):
    result: ClassVar[Any] = dict[str, int]


@request
class MemoryProfiles(Request):
    """Profiles that have memories (for the memory browser's picker)."""

    mutates: ClassVar[bool] = False
    result: ClassVar[Any] = list[str]


# ---- handoffs ----------------------------------------------------------------------------


@request
class SendHandoff(Request):
    to_profile: Identifier
    subject: Text = Field(max_length=10_000)
    body: Text = Field(max_length=1_000_000)
    from_profile: Identifier | None = None
    source_task: Identifier | None = None
    require_approval: bool = False
    project: Text | None = None
    runtime: Identifier | None = None
    script: Any = None
    result: ClassVar[Any] = dict[str, Any]


@request
class ListHandoffs(Request):
    status: Identifier | None = None
    task_id: Identifier | None = None
    mutates: ClassVar[bool] = False
    result: ClassVar[Any] = ArrowTable


@request
class HandoffChain(Request):
    task_id: Identifier
    mutates: ClassVar[bool] = False
    result: ClassVar[Any] = list[dict[str, Any]]


# ---- notebook views ----------------------------------------------------------------------


@request
class TaskCardSnapshot(Request):
    """Everything a task card shows at first: header, the last events, tokens, pending items."""

    task_id: Identifier
    rows: int = Field(default=500, ge=1, le=100_000)
    mutates: ClassVar[bool] = False
    result: ClassVar[Any] = dict[str, Any]


@request
class MonitorSnapshot(Request):
    recent: int = Field(default=200, ge=0, le=10_000)
    since_local_midnight: Any = None
    mutates: ClassVar[bool] = False
    result: ClassVar[Any] = dict[str, Any]


@request
class MemoryBrowserRows(Request):
    profile_id: Identifier | None = None
    status: Identifier | None = None
    category: Identifier | None = None
    search: Text | None = Field(default=None, max_length=1000)
    limit: int = Field(default=500, ge=1, le=100_000)
    mutates: ClassVar[bool] = False
    result: ClassVar[Any] = list[dict[str, Any]]


# ---- workspace -------------------------------------------------------------------------


@request
class Ping(Request):
    mutates: ClassVar[bool] = False
    result: ClassVar[Any] = dict[str, Any]


@request
class RecordProfileTest(Request):
    profile_id: Identifier
    runtime_id: Identifier
    test_index: Count
    task: Text
    task_id: Identifier | None = None
    expected_keywords: list[Text]
    missing_keywords: list[Text]
    passed: bool
    result: ClassVar[Any] = None


@request
class BackdateTasks(Request):
    """Move finished tasks' rows to simulated start times (demo histories)."""

    moves: list[tuple[Identifier, Any]]
    time_scale: float = Field(default=1.0, gt=0, le=1e6)
    result: ClassVar[Any] = None
