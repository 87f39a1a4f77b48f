"""stagent_lab: Jupyter as the control room for governed AI agents.

    import stagent_lab
    lab = stagent_lab.Lab()
    task = lab.submit("Review this project for injection bugs", profile="code-reviewer",
                      project="path/to/repo")
    lab.inbox()                      # tool requests waiting for a human
    lab.decide(item_id, "allow")     # or "always" / "deny" (with message=) / "answer"
    task.wait().result
    lab.cost_by("profile")           # or any read-only query: lab.sql(...)

Importing this package does not import any provider SDK, pandas or DuckDB.
"""

from stagent_lab._version import __version__
from stagent_lab.engine.states import TaskStatus
from stagent_lab.errors import (
    HandoffError,
    InboxError,
    InvalidInput,
    LimitExceeded,
    ProfileError,
    ProfileNotFoundError,
    ResumeLimitError,
    RuleSyntaxError,
    RuntimeFailure,
    RuntimeNotAvailableError,
    ScriptError,
    ServiceError,
    SettingError,
    StagentError,
    TaskStateError,
    WorkspaceError,
    WorkspaceLockedError,
)


def __getattr__(name: str) -> object:
    # Lab and TaskHandle pull in the contract (pydantic models); load them on first use so
    # `import stagent_lab` and `%load_ext stagent_lab` stay fast.
    if name == "Lab":
        from stagent_lab.client.lab import Lab

        return Lab
    if name == "TaskHandle":
        from stagent_lab.client.handle import TaskHandle

        return TaskHandle
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def load_ipython_extension(ipython: object) -> None:
    """``%load_ext stagent_lab``: register the ``%stagent`` magics.

    IPython is imported here, not when the package is imported; widgets load on first use.
    """
    from stagent_lab._ipython import load_ipython_extension as load

    load(ipython)


__all__ = [
    "HandoffError",
    "InboxError",
    "InvalidInput",
    "Lab",
    "LimitExceeded",
    "ProfileError",
    "ProfileNotFoundError",
    "ResumeLimitError",
    "RuleSyntaxError",
    "RuntimeFailure",
    "RuntimeNotAvailableError",
    "ScriptError",
    "ServiceError",
    "SettingError",
    "StagentError",
    "TaskHandle",
    "TaskStateError",
    "TaskStatus",
    "WorkspaceError",
    "WorkspaceLockedError",
    "__version__",
    "load_ipython_extension",
]
