"""The chat contract: sessions, messages, turns.

A chat session is a conversation with one agent (a profile, optionally a runtime and a
project). Each operator message is a **turn**: a task with ``source="chat"`` and
``origin_id=<session id>``, submitted like any other (queued, governed by the cascade, priced),
whose prompt carries the recent conversation and the context the message attached (``@file``,
``@task``, ``@df``). The reply is that task's result. ``/task`` starts a background task from the
chat the same way, without waiting for it. Sessions and messages are stored (migration set
``chat``), so a conversation can be reopened from another notebook.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from stagent_lab.api.requests import ArrowTable, Request, request
from stagent_lab.api.values import Identifier, Message, PositiveInt, ShortText, Text, Turns, Usd
from stagent_lab.api.views import TaskView, View

MAX_CONTEXT_BLOCKS = 20
MAX_CONTEXT_CHARS = 200_000  # per block; the client caps files and frames well below this


class ChatContext(BaseModel):
    """One piece of context a message attaches: a file, a task, a DataFrame, or text."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    kind: Literal["file", "task", "df", "text"]
    ref: ShortText  # what the operator wrote after the @ (a path, a task id, a variable)
    text: Text = Field(max_length=MAX_CONTEXT_CHARS)
    note: ShortText | None = None  # e.g. "59 lines", "1,200 rows × 4 columns", "cut at 64 KB"


class ChatSessionView(View):
    id: str
    title: str | None = None
    profile_id: str
    runtime_id: str | None = None
    project: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    turns: int = 0
    cost_usd: float = 0.0


class ChatMessageView(View):
    """A stored message, with its task's outcome when it started one (turn or /task)."""

    id: str
    session_id: str
    seq: int
    role: str  # user | task | note
    content: str
    task_id: str | None = None
    context: list[dict[str, Any]] = []  # kind, ref, note of each attached block (not the text)
    created_at: datetime | None = None
    status: str | None = None  # the task's status
    result: str | None = None  # the reply (a turn) or the task's result
    failure_reason: str | None = None
    cost_usd: float = 0.0
    turns: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    runtime_id: str | None = None


@request
class ChatOpen(Request):
    """Reopen ``session_id``, or start a session (with ``profile``, default ``general``)."""

    session_id: Identifier | None = None
    profile: Identifier | None = None
    runtime: Identifier | None = None
    project: Text | None = Field(default=None, max_length=4096)
    title: ShortText | None = None
    result: ClassVar[Any] = ChatSessionView


@request
class ChatSessions(Request):
    limit: PositiveInt | None = None
    mutates: ClassVar[bool] = False
    result: ClassVar[Any] = ArrowTable


@request
class ChatHistory(Request):
    session_id: Identifier
    limit: PositiveInt | None = None  # the newest N messages
    mutates: ClassVar[bool] = False
    result: ClassVar[Any] = list[ChatMessageView]


@request
class ChatSend(Request):
    """One operator message: a turn of the conversation. Refused while the previous turn runs."""

    session_id: Identifier
    message: Message = Field(min_length=1)
    context: list[ChatContext] = Field(default_factory=list, max_length=MAX_CONTEXT_BLOCKS)
    script: Any = None  # for the scripted runtime (steps, YAML, or in-process a callable)
    max_turns: Turns | None = None
    max_budget_usd: Usd | None = None
    result: ClassVar[Any] = dict[str, Any]  # {"message": ChatMessageView, "task": TaskView}


@request
class ChatLaunch(Request):
    """``/task``: a background task started from the chat (not a turn; nobody waits for it)."""

    session_id: Identifier
    prompt: Message = Field(min_length=1)
    profile: Identifier | None = None
    script: Any = None
    result: ClassVar[Any] = TaskView


@request
class ChatConfigure(Request):
    """``/profile`` and ``/runtime``: the agent and runtime of the next turns."""

    session_id: Identifier
    profile: Identifier | None = None
    runtime: Identifier | None = None
    clear_runtime: bool = False  # back to routing (profile's preferred, workspace default …)
    result: ClassVar[Any] = ChatSessionView


__all__ = [
    "ChatConfigure",
    "ChatContext",
    "ChatHistory",
    "ChatLaunch",
    "ChatMessageView",
    "ChatOpen",
    "ChatSend",
    "ChatSessionView",
    "ChatSessions",
]
