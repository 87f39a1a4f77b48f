"""The contract between a workspace and its clients.

* ``requests`` — every request, typed (pydantic, ``extra="forbid"``), with its result type
* ``views``    — what clients read: TaskView, InboxItemView, ProfileView, RuntimeView, …
* ``values``   — validated value types (bounded integers, finite numbers, repaired text)
* ``workspace``— the ``Workspace`` protocol (call / subscribe / wait_status) and the event shape

Nothing here imports the engine or the store: clients depend on this package alone.
"""

from stagent_lab.api.requests import REQUESTS, ArrowTable, Request, build, parse_request, request
from stagent_lab.api.views import (
    DecisionView,
    InboxItemView,
    ProfileView,
    ProjectView,
    RuleView,
    RuntimeView,
    TaskView,
)
from stagent_lab.api.workspace import Event, Workspace

__all__ = [
    "REQUESTS",
    "ArrowTable",
    "DecisionView",
    "Event",
    "InboxItemView",
    "ProfileView",
    "ProjectView",
    "Request",
    "RuleView",
    "RuntimeView",
    "TaskView",
    "Workspace",
    "build",
    "parse_request",
    "request",
]
