"""One error hierarchy for stagent_lab.

    StagentError
    ├── WorkspaceError
    │   ├── WorkspaceLockedError      another process holds the workspace (names its PID)
    │   └── ServiceError              the workspace service cannot be reached or refused a call
    ├── SettingError                  unknown setting key or a value out of its range
    ├── InvalidInput                  a value from outside failed validation (names the field)
    ├── ProfileError                  a profile file is invalid (file, line, reason)
    │   └── ProfileNotFoundError      unknown profile id (lists the valid ones)
    ├── RuntimeNotAvailableError      unknown or unusable runtime (says why, names the extra)
    ├── RuntimeFailure                a runtime failed during a run (vendor errors become this)
    ├── ScriptError                   a scripted-runtime script is malformed (step index, reason)
    ├── RuleSyntaxError               a permission rule does not parse
    ├── TaskStateError                an illegal task state transition
    ├── ResumeLimitError              a task was resumed too many times
    ├── InboxError                    unknown inbox item or a decision that does not fit it
    ├── HandoffError                  a handoff was refused (machine-readable ``reason``)
    ├── IntervalError                 a schedule's ``when`` text does not parse (gives examples)
    ├── ScheduleError                 a schedule or heartbeat definition or operation is refused
    ├── BudgetError                   a spend cap definition or operation is refused
    └── LimitExceeded                 max turns or budget reached during a run

Vendor SDK exceptions never cross an adapter boundary; adapters translate them into
RuntimeFailure with the provider's message (and never a key).
"""

from __future__ import annotations


class StagentError(Exception):
    """Base class of every error stagent_lab raises on purpose."""


class WorkspaceError(StagentError):
    """The workspace (DuckDB file and folder) cannot be used."""


class WorkspaceLockedError(WorkspaceError):
    """Another live process holds the workspace read-write."""

    def __init__(self, path: str, pid: int | None, detail: str = "") -> None:
        who = f"process {pid}" if pid else "another process"
        msg = (
            f"workspace {path} is in use by {who}. DuckDB allows one writer per file. "
            f"Close that Lab (lab.close()) or stop the process"
            + (f" (kill {pid})" if pid else "")
            + ", or open a different workspace with Lab(home=...) / STAGENT_HOME."
        )
        if detail:
            msg += f" [{detail}]"
        super().__init__(msg)
        self.path = path
        self.pid = pid


class ServiceError(WorkspaceError):
    """The workspace service is not running, unreachable, of another version, or refused."""


class SettingError(StagentError, ValueError):
    """An unknown setting key, or a value of the wrong type or out of range."""


class InvalidInput(StagentError, ValueError):
    """A value from outside (an API argument) failed validation; the message names the field."""


class ProfileError(StagentError):
    """A profile on disk is invalid. Carries file, line (1-based, or None) and reason."""

    def __init__(self, file: str, line: int | None, reason: str, profile_id: str | None = None):
        loc = f"{file}:{line}" if line else file
        super().__init__(f"{loc}: {reason}")
        self.file = file
        self.line = line
        self.reason = reason
        self.profile_id = profile_id


class ProfileNotFoundError(ProfileError, KeyError):
    def __init__(self, profile_id: str, valid: list[str]):
        StagentError.__init__(
            self, f"unknown profile {profile_id!r}; valid profiles: {', '.join(sorted(valid))}"
        )
        self.file = ""
        self.line = None
        self.reason = "unknown profile"
        self.profile_id = profile_id
        self.valid = sorted(valid)

    def __str__(self) -> str:  # KeyError would otherwise add quotes
        return str(self.args[0])


class RuntimeNotAvailableError(StagentError):
    """Unknown runtime id, or a runtime that cannot run here (missing SDK, key, binary)."""


class RuntimeFailure(StagentError):
    """A runtime failed while running a task."""

    def __init__(self, message: str, *, retryable: bool = False):
        super().__init__(message)
        self.retryable = retryable


class ScriptError(StagentError):
    """A scripted-runtime script is malformed."""


class RuleSyntaxError(StagentError, ValueError):
    """A permission rule string does not parse."""


class TaskStateError(StagentError):
    """An illegal task state transition was attempted."""


class ResumeLimitError(StagentError):
    """The task has been resumed the maximum number of times."""


class InboxError(StagentError):
    """Unknown inbox item, or a decision that does not fit it."""


class LimitExceeded(StagentError):
    """Max turns or the task budget was reached."""


class HandoffError(StagentError):
    """A handoff was refused or cannot proceed. ``reason`` is one of
    ``stagent_lab.handoffs.errors.REASONS``."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


class IntervalError(StagentError, ValueError):
    """A schedule's ``when`` text (English phrase, shorthand or cron) does not parse."""


class ScheduleError(StagentError):
    """A schedule or heartbeat definition, or an operation on one, is refused."""


class BudgetError(StagentError):
    """A spend cap definition, or an operation on one, is refused."""
