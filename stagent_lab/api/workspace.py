"""The ``Workspace`` protocol: the one interface every client speaks.

Implementations: ``service.local.LocalWorkspace`` (the engine in this process) and
``client.remote.RemoteWorkspace`` (the workspace service, over its Unix socket). ``Lab``, the
notebook widgets, the CLI and the analytics helpers use nothing else.

Events are dicts with these keys (the shape of an ``agent_logs`` row plus two live fields):

``id``          the event's position in the workspace stream (``agent_logs.id``); ``None`` for
                streamed text fragments (``assistant_delta``), which are not stored
``task_id``     the subject's id (a task id unless ``subject`` says otherwise)
``subject``     task | workflow_run | schedule | budget | channel | workspace
``seq``         the event's number within its subject
``ts``          when (naive UTC datetime in-process; ISO text over the socket)
``event``       status, tool_request, tool_decision, tool_result, assistant_text, usage, inbox, …
``tool_name``, ``runtime_id``, ``payload`` (JSON text), ``profile_id``, ``status``
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

from stagent_lab.api.requests import Request

Event = dict[str, Any]


@runtime_checkable
class Workspace(Protocol):
    home: str
    """The workspace folder."""

    transport: str
    """``"in-process"`` or ``"service"``."""

    def call(self, request: Request) -> Any:
        """Run one request; returns its typed result (a pyarrow Table for tabular answers)."""
        ...

    def subscribe(
        self, fn: Callable[[Event], None], since: int | None = None
    ) -> Callable[[], None]:
        """Call ``fn`` for every event from now on (with ``since``: first every stored event
        after that position, with no gap and no repeat). Returns an unsubscribe function."""
        ...

    def wait_status(
        self, task_id: str, statuses: frozenset[str], timeout: float | None
    ) -> str | None:
        """Block until the task's status is in ``statuses``; returns it (None on timeout)."""
        ...

    @property
    def closed(self) -> bool: ...

    def close(self) -> None: ...
