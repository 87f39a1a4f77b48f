"""The in-process transport: a ``Workspace`` whose service runs in this process.

Used by ``Lab(in_process=True)`` (one-shot scripts, unit tests) and inside the workspace service
itself. Requests are passed as objects (a Python callable script works here, not over the
socket); results come back as the handlers return them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from stagent_lab.api.requests import Request
from stagent_lab.service.core import WorkspaceService


class LocalWorkspace:
    transport = "in-process"

    def __init__(self, service: WorkspaceService) -> None:
        self.service = service
        self.home = str(service.home)

    def call(self, request: Request) -> Any:
        return self.service.handle(request)

    def subscribe(
        self, fn: Callable[[dict[str, Any]], None], since: int | None = None
    ) -> Callable[[], None]:
        return self.service.subscribe(fn, since)

    def wait_status(
        self, task_id: str, statuses: frozenset[str], timeout: float | None
    ) -> str | None:
        return self.service.wait_status(task_id, statuses, timeout)

    @property
    def closed(self) -> bool:
        return self.service.closed

    def close(self) -> None:
        self.service.close()
