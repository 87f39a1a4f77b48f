"""TaskHandle: the caller's grip on a background task (a client of the contract)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from stagent_lab.api import requests as rq
from stagent_lab.api.views import TaskView

if TYPE_CHECKING:
    from stagent_lab.client.lab import Lab

TERMINAL = frozenset({"completed", "failed", "cancelled"})


class TaskHandle:
    """Returned by ``Lab.submit``. Properties read live state; nothing blocks but ``wait``."""

    def __init__(self, lab: Lab, task_id: str, view: TaskView | None = None) -> None:
        self._lab = lab
        self.id = task_id
        self._view = view

    # ---- state --------------------------------------------------------------------------

    def view(self) -> TaskView:
        """Where the task is now (from the engine's memory when it runs, else the store).

        After the Lab is closed, the last state this handle saw."""
        if self._lab.closed and self._view is not None:
            return self._view
        self._view = self._lab._req(rq.TaskStatus, task_id=self.id)
        return self._view

    @property
    def status(self) -> str:
        return self.view().status

    @property
    def result(self) -> str | None:
        return self.view().result

    @property
    def failure_reason(self) -> str | None:
        return self.view().failure_reason

    @property
    def done(self) -> bool:
        return self.status in TERMINAL

    @property
    def notes(self) -> list[str]:
        """Routing notes from submit (which profile or runtime was chosen, and why)."""
        return list(self._view.notes) if self._view is not None else []

    def info(self) -> dict[str, Any]:
        """The task's row from the store (overlaid with the engine's latest), as a dict."""
        return self._lab._req(rq.GetTask, task_id=self.id).model_dump()

    # ---- waiting ------------------------------------------------------------------------

    def wait(self, timeout: float | None = None) -> TaskHandle:
        """Block until the task is completed, failed or cancelled (or paused)."""
        return self.wait_for(*TERMINAL, "paused", timeout=timeout)

    def wait_for(self, *statuses: str, timeout: float | None = None) -> TaskHandle:
        """Block until the task reaches one of ``statuses``; TimeoutError names where it is."""
        wanted = frozenset(str(s) for s in statuses)
        got = self._lab.workspace.wait_status(self.id, wanted, timeout)
        self.view()
        if got is None or got not in wanted:
            now = got or self.status
            raise TimeoutError(
                f"task {self.id} is still {now} after {timeout}s "
                f"(waiting for {', '.join(sorted(wanted))})"
            )
        return self

    # ---- control ------------------------------------------------------------------------

    def cancel(self) -> TaskHandle:
        """Stop the task (kills any tool subprocess). Returns at once; status turns cancelled."""
        self._lab._req(rq.CancelTask, task_id=self.id)
        return self

    def pause(self, reason: str = "paused by the operator") -> TaskHandle:
        """Stop the task so it can be resumed later (status ``paused``)."""
        self._lab._req(rq.PauseTask, task_id=self.id, reason=reason)
        return self

    def resume(self, script: Any = None) -> TaskHandle:
        """Continue a failed, cancelled or paused task from its saved session/transcript.

        ``script`` re-supplies a scripted task's Python callable after a restart.
        """
        self._lab._req(rq.ResumeTask, task_id=self.id, script=script)
        return self

    # ---- what happened ------------------------------------------------------------------

    def logs(self) -> Any:
        return self._lab.logs(task=self.id)

    def usage(self) -> Any:
        return self._lab.usage(task=self.id)

    def inbox(self, status: str = "pending") -> Any:
        df = self._lab.inbox(status=status)
        return df[df["task_id"] == self.id].reset_index(drop=True)

    def __repr__(self) -> str:
        try:
            v = self.view()
        except Exception:
            v = self._view
        if v is None:
            return f"<TaskHandle {self.id}>"
        return f"<TaskHandle {self.id} {v.profile_id}/{v.runtime_id} {v.status}>"
