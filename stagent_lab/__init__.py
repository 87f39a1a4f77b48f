"""stagent_lab: Jupyter as the control room for governed AI agents.

    import stagent_lab
    lab = stagent_lab.Lab()
    task = lab.submit("Review this project for injection bugs", profile="code-reviewer",
                      project="path/to/repo")
    lab.inbox()                      # tool requests waiting for a human
    lab.decide(item_id, "allow")     # or "always" / "deny" (with message=) / "answer"
    task.wait().result
    lab.sql("SELECT profile_id, sum(cost_usd) FROM usage_ledger GROUP BY 1")

Importing this package does not import any provider SDK.
"""

from stagent_lab.engine.handle import TaskHandle
from stagent_lab.engine.states import TaskStatus
from stagent_lab.errors import (
    InboxError,
    LimitExceeded,
    ProfileError,
    ProfileNotFoundError,
    ResumeLimitError,
    RuleSyntaxError,
    RuntimeFailure,
    RuntimeNotAvailableError,
    ScriptError,
    StagentError,
    TaskStateError,
    WorkspaceError,
    WorkspaceLockedError,
)
from stagent_lab.handoffs.errors import HandoffError
from stagent_lab.lab import Lab

__version__ = "0.1.0"


def load_ipython_extension(ipython: object) -> None:
    """``%load_ext stagent_lab``: register the ``%stagent`` magics.

    IPython is imported here, not when the package is imported; widgets load on first use.
    """
    from stagent_lab._ipython import load_ipython_extension as load

    load(ipython)


__all__ = [
    "HandoffError",
    "InboxError",
    "Lab",
    "LimitExceeded",
    "ProfileError",
    "ProfileNotFoundError",
    "ResumeLimitError",
    "RuleSyntaxError",
    "RuntimeFailure",
    "RuntimeNotAvailableError",
    "ScriptError",
    "StagentError",
    "TaskHandle",
    "TaskStateError",
    "TaskStatus",
    "WorkspaceError",
    "WorkspaceLockedError",
    "__version__",
    "load_ipython_extension",
]
