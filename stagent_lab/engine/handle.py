"""TaskHandle: the caller's grip on a background task."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pandas as pd

from stagent_lab.engine.states import TERMINAL

if TYPE_CHECKING:
    from stagent_lab.lab import Lab


class TaskHandle:
    """Returned by ``Lab.submit``. Every property reads live state; nothing blocks but ``wait``."""

    def __init__(self, lab: Lab, task_id: str) -> None:
        self._lab = lab
        self.id = task_id

    # ---- state --------------------------------------------------------------------------

    @property
    def status(self) -> str:
        st = self._lab.engine.tasks.get(self.id)
        if st is not None:
            return str(st.status)
        return self.info()["status"]

    @property
    def result(self) -> str | None:
        st = self._lab.engine.tasks.get(self.id)
        return st.result if st is not None else self.info()["result"]

    @property
    def failure_reason(self) -> str | None:
        st = self._lab.engine.tasks.get(self.id)
        return st.failure_reason if st is not None else self.info()["failure_reason"]

    @property
    def done(self) -> bool:
        return self.status in TERMINAL

    def info(self) -> dict[str, Any]:
        """The task's row from the store, as a dict."""
        self._lab._fresh()
        df = self._lab.store.query_df("SELECT * FROM tasks WHERE id = ?", [self.id])
        if df.empty:
            raise KeyError(f"no task with id {self.id!r}")
        return df.iloc[0].to_dict()

    # ---- waiting ------------------------------------------------------------------------

    def wait(self, timeout: float | None = None) -> TaskHandle:
        """Block until the task is completed, failed or cancelled (or paused)."""
        return self.wait_for(*TERMINAL, "paused", timeout=timeout)

    def wait_for(self, *statuses: str, timeout: float | None = None) -> TaskHandle:
        """Block until the task reaches one of ``statuses``; TimeoutError names where it is."""
        wanted = {str(s) for s in statuses}
        engine = self._lab.engine
        with engine.cond:
            ok = engine.cond.wait_for(lambda: self.status in wanted, timeout)
        if not ok:
            raise TimeoutError(
                f"task {self.id} is still {self.status} after {timeout}s "
                f"(waiting for {', '.join(sorted(wanted))})"
            )
        return self

    # ---- control ------------------------------------------------------------------------

    def cancel(self) -> TaskHandle:
        """Stop the task (kills any tool subprocess). Returns at once; status turns cancelled."""
        self._lab.engine.call(self._lab.engine.cancel, self.id)
        return self

    def resume(self, script: Any = None) -> TaskHandle:
        """Continue a failed, cancelled or paused task from its saved session/transcript.

        ``script`` re-supplies a scripted task's Python callable after a restart.
        """
        self._lab.engine.call(self._lab.engine.resume, self.id, script)
        return self

    # ---- what happened ------------------------------------------------------------------

    def logs(self) -> pd.DataFrame:
        return self._lab.logs(task=self.id)

    def usage(self) -> pd.DataFrame:
        self._lab.engine.call(self._lab.engine.flush)
        return self._lab.store.query_df(
            "SELECT * FROM usage_ledger WHERE task_id = ? ORDER BY started_at", [self.id]
        )

    def inbox(self, status: str = "pending") -> pd.DataFrame:
        df = self._lab.inbox(status=status)
        return df[df["task_id"] == self.id].reset_index(drop=True)

    def __repr__(self) -> str:
        st = self._lab.engine.tasks.get(self.id)
        if st is None:
            return f"<TaskHandle {self.id}>"
        return f"<TaskHandle {self.id} {st.profile_id}/{st.runtime_id} {st.status}>"
