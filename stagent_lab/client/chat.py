"""``lab.chat``: governed conversations with one agent, from Python or the chat widget.

    session = lab.chat.open(profile="data-analyst", runtime="scripted")
    turn = lab.chat.send(session.id, "What stands out in @df:sales?", namespace=globals())
    turn.task.wait(60)
    print(lab.chat.history(session.id)[-1].result)

Mentions (``@file:path``, ``@task:id``, ``@df:variable``) are expanded here, on the client,
where the files and DataFrames are (see :mod:`stagent_lab.chat.mentions`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from stagent_lab.api import chat as rq
from stagent_lab.api.requests import ResolveProject
from stagent_lab.api.views import TaskView
from stagent_lab.chat import mentions
from stagent_lab.client.handle import TaskHandle

if TYPE_CHECKING:
    from stagent_lab.client.lab import Lab

COST_COLUMNS = [
    "seq", "kind", "message", "status", "turns", "input_tokens", "output_tokens", "cost_usd",
    "task_id",
]  # fmt: skip


@dataclass(frozen=True)
class ChatTurn:
    """What ``send`` returns: the stored message and the handle of the turn's task."""

    message: rq.ChatMessageView
    task: TaskHandle


class ChatClient:
    def __init__(self, lab: Lab) -> None:
        self._lab = lab

    def open(
        self,
        session_id: str | None = None,
        *,
        profile: str | None = None,
        runtime: str | None = None,
        project: str | os.PathLike[str] | None = None,
        title: str | None = None,
    ) -> rq.ChatSessionView:
        """Reopen a session (a unique id prefix is enough) or start one."""
        return self._lab._req(
            rq.ChatOpen,
            session_id=session_id,
            profile=profile,
            runtime=runtime,
            project=None if project is None else os.fspath(project),
            title=title,
        )

    def sessions(self, limit: int | None = None) -> Any:
        """Sessions, most recently active first, with their turns and cost (a DataFrame)."""
        return self._lab._req(rq.ChatSessions, limit=limit)

    def history(self, session_id: str, limit: int | None = None) -> list[rq.ChatMessageView]:
        """Messages, oldest first; a turn carries its task's status, reply (``result``) and cost."""
        return self._lab._req(rq.ChatHistory, session_id=session_id, limit=limit)

    def context(
        self,
        session: rq.ChatSessionView | str,
        message: str,
        *,
        namespace: Mapping[str, Any] | None = None,
        base_dirs: Sequence[str | os.PathLike[str]] | None = None,
    ) -> list[dict[str, Any]]:
        """The context blocks the mentions in ``message`` attach (MentionError if one fails)."""
        if base_dirs is None:
            base_dirs = self._project_dirs(session)
        return mentions.expand(message, lab=self._lab, namespace=namespace, base_dirs=base_dirs)

    def send(
        self,
        session: rq.ChatSessionView | str,
        message: str,
        *,
        namespace: Mapping[str, Any] | None = None,
        script: Any = None,
        base_dirs: Sequence[str | os.PathLike[str]] | None = None,
        max_turns: int | None = None,
        max_budget_usd: float | None = None,
    ) -> ChatTurn:
        """One turn: expand the mentions, submit the turn's task, store the message."""
        sid = session if isinstance(session, str) else session.id
        blocks = self.context(session, message, namespace=namespace, base_dirs=base_dirs)
        out = self._lab._req(
            rq.ChatSend,
            session_id=sid,
            message=message,
            context=blocks,
            script=script,
            max_turns=max_turns,
            max_budget_usd=max_budget_usd,
        )
        task = TaskView.model_validate(out["task"])
        return ChatTurn(rq.ChatMessageView.model_validate(out["message"]), self._handle(task))

    def launch(
        self,
        session: rq.ChatSessionView | str,
        prompt: str,
        *,
        profile: str | None = None,
        script: Any = None,
    ) -> TaskHandle:
        """``/task``: start a background task from the conversation (``source="chat"``)."""
        sid = session if isinstance(session, str) else session.id
        view = self._lab._req(
            rq.ChatLaunch, session_id=sid, prompt=prompt, profile=profile, script=script
        )
        return self._handle(view)

    def configure(
        self,
        session: rq.ChatSessionView | str,
        *,
        profile: str | None = None,
        runtime: str | None = None,
        clear_runtime: bool = False,
    ) -> rq.ChatSessionView:
        """Change the profile or runtime of the next turns (``/profile``, ``/runtime``)."""
        sid = session if isinstance(session, str) else session.id
        return self._lab._req(
            rq.ChatConfigure,
            session_id=sid,
            profile=profile,
            runtime=runtime,
            clear_runtime=clear_runtime,
        )

    def cost(self, session: rq.ChatSessionView | str) -> Any:
        """Cost and tokens per turn and per /task of a session (a DataFrame)."""
        import pandas as pd

        sid = session if isinstance(session, str) else session.id
        rows = [
            {
                "seq": m.seq,
                "kind": "turn" if m.role == "user" else "task",
                "message": m.content if len(m.content) <= 60 else m.content[:59] + "…",
                "status": m.status,
                "turns": m.turns,
                "input_tokens": m.input_tokens,
                "output_tokens": m.output_tokens,
                "cost_usd": m.cost_usd,
                "task_id": m.task_id,
            }
            for m in self.history(sid)
            if m.task_id
        ]
        return pd.DataFrame(rows, columns=COST_COLUMNS)

    # ---- helpers -----------------------------------------------------------------------

    def _handle(self, view: TaskView) -> TaskHandle:
        return TaskHandle(self._lab, view.id, view)

    def _project_dirs(self, session: rq.ChatSessionView | str) -> list[str]:
        """Where ``@file:`` looks first: the session's project folder."""
        view = session if not isinstance(session, str) else self.open(session)
        if not view.project:
            return []
        try:
            project = self._lab._req(ResolveProject, project=view.project)
        except Exception:  # a project that went away: the notebook's folder still works
            return []
        return [project.working_directory]


__all__ = ["ChatClient", "ChatTurn"]
