"""Chat as a feature of the workspace service: sessions, turns as governed tasks, history.

Each message becomes a task (``source="chat"``, ``origin_id`` = the session) submitted through
``service.submit`` like any other: queued, routed, governed by the permission cascade (its
approvals are ordinary inbox items), limited and priced. The feature stores only the
conversation (``store/chat.py``); replies, status and cost are read from the turn's task.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from stagent_lab.api.chat import (
    ChatConfigure,
    ChatHistory,
    ChatLaunch,
    ChatMessageView,
    ChatOpen,
    ChatSend,
    ChatSessions,
    ChatSessionView,
)
from stagent_lab.api.requests import SubmitTask, build
from stagent_lab.chat.prompt import compose, title_of
from stagent_lab.config import SettingSpec
from stagent_lab.engine.task import new_id
from stagent_lab.errors import InvalidInput
from stagent_lab.store import chat as repo

if TYPE_CHECKING:
    from stagent_lab.service.core import WorkspaceService

ACTIVE = ("queued", "running", "waiting")


class ChatFeature:
    name = "chat"
    migrations = repo.MIGRATIONS
    settings = (
        SettingSpec("chat.default_profile", "str", "general", "profile of a new chat session"),
    )

    def attach(self, service: WorkspaceService) -> None:
        self.service = service
        service.on(ChatOpen)(self._open)
        service.on(ChatSessions)(self._sessions)
        service.on(ChatHistory)(self._history)
        service.on(ChatSend)(self._send)
        service.on(ChatLaunch)(self._launch)
        service.on(ChatConfigure)(self._configure)

    # ---- reads -------------------------------------------------------------------------

    def _con(self) -> Any:
        self.service.fresh()
        return self.service.reader()

    def _session_id(self, given: str) -> str:
        con = self._con()
        if repo.get_session(con, given) is not None:
            return given
        ids = repo.session_ids_with_prefix(con, given)
        if len(ids) == 1:
            return ids[0]
        if len(ids) > 1:
            raise InvalidInput(f"{given!r} matches several chat sessions ({', '.join(ids)})")
        raise InvalidInput(
            f"no chat session with id {given!r} (%stagent chat --list shows the sessions)"
        )

    def _session(self, session_id: str) -> dict[str, Any]:
        row = repo.get_session(self._con(), session_id)
        if row is None:
            raise InvalidInput(f"no chat session with id {session_id!r}")
        return row

    def _view(self, session_id: str) -> ChatSessionView:
        return ChatSessionView(**self._session(session_id))

    def _sessions(self, r: ChatSessions) -> Any:
        return repo.sessions_arrow(self._con(), r.limit)

    def _history(self, r: ChatHistory) -> list[ChatMessageView]:
        sid = self._session_id(r.session_id)
        return [ChatMessageView(**row) for row in repo.messages(self._con(), sid, r.limit)]

    # ---- sessions ----------------------------------------------------------------------

    def _check(self, profile_id: str, runtime: str | None) -> Any:
        """The profile, after checking that it can use ``runtime`` here (when one is named)."""
        prof = self.service.profiles.get(profile_id)  # unknown id → error listing valid ones
        if runtime is not None:
            self.service.catalog.resolve(runtime, prof)  # unknown / unusable → why
        return prof

    def _open(self, r: ChatOpen) -> ChatSessionView:
        service = self.service
        if r.session_id is not None:
            return self._view(self._session_id(r.session_id))
        profile = r.profile or str(service.settings.value("chat.default_profile"))
        prof = self._check(profile, r.runtime)
        project_id, _ = service.resolve_project(r.project)
        now = service.clock.now()
        row = {
            "id": new_id(),
            "title": r.title or f"Chat with {prof.name}",
            "profile_id": prof.id,
            "runtime_id": r.runtime,
            "project_id": project_id,
            "created_at": now,
            "updated_at": now,
        }
        service.on_engine(lambda: service.writer_flush(lambda con: repo.insert_session(con, row)))
        return self._view(row["id"])

    def _configure(self, r: ChatConfigure) -> ChatSessionView:
        service = self.service
        sid = self._session_id(r.session_id)
        session = self._session(sid)
        profile = r.profile or session["profile_id"]
        runtime = None if r.clear_runtime else (r.runtime or session["runtime_id"])
        prof = self._check(profile, runtime)
        changes: dict[str, Any] = {}
        notes = []
        if prof.id != session["profile_id"]:
            changes["profile_id"] = prof.id
            notes.append(f"profile set to {prof.id}")
        if runtime != session["runtime_id"]:
            changes["runtime_id"] = runtime
            notes.append(f"runtime set to {runtime}" if runtime else "runtime: chosen by routing")
        if changes:
            changes["updated_at"] = service.clock.now()
            self._write(sid, "note", "; ".join(notes), None, [], changes)
        return self._view(sid)

    # ---- turns -------------------------------------------------------------------------

    def _running_turn(self, sid: str) -> tuple[str, str] | None:
        last = repo.last_turn(self._con(), sid)
        if not last or not last.get("task_id"):
            return None
        snap = self.service.task_snapshot(last["task_id"])
        status = snap["status"] if snap else last.get("status")
        return (last["task_id"], status) if status in ACTIVE else None

    def _send(self, r: ChatSend) -> dict[str, Any]:
        sid = self._session_id(r.session_id)
        session = self._session(sid)
        running = self._running_turn(sid)
        if running is not None:
            raise InvalidInput(
                f"the previous turn is still {running[1]} (task {running[0]}): wait for its "
                "answer, or cancel it"
            )
        turns = [m for m in repo.messages(self._con(), sid) if m["role"] == "user"]
        blocks = [b.model_dump() for b in r.context]
        task = self.service.submit(
            build(
                SubmitTask,
                prompt=compose(r.message, turns, blocks),
                profile=session["profile_id"],
                runtime=session["runtime_id"],
                project=session["project"],
                script=r.script,
                title=title_of(r.message),
                source="chat",
                origin_id=sid,
                max_turns=r.max_turns,
                max_budget_usd=r.max_budget_usd,
            )
        )
        context = [
            {"kind": b["kind"], "ref": b["ref"], "note": b.get("note"), "chars": len(b["text"])}
            for b in blocks
        ]
        message = self._write(sid, "user", r.message, task.id, context)
        return {"message": message.model_dump(mode="json"), "task": task.model_dump(mode="json")}

    def _launch(self, r: ChatLaunch) -> Any:
        sid = self._session_id(r.session_id)
        session = self._session(sid)
        task = self.service.submit(
            build(
                SubmitTask,
                prompt=r.prompt,
                profile=r.profile or session["profile_id"],
                runtime=session["runtime_id"],
                project=session["project"],
                script=r.script,
                title=title_of(r.prompt).replace("chat: ", "", 1),
                source="chat",
                origin_id=sid,
            )
        )
        self._write(sid, "task", r.prompt, task.id, [])
        return task

    def _write(
        self,
        sid: str,
        role: str,
        content: str,
        task_id: str | None,
        context: list[dict[str, Any]],
        session_changes: dict[str, Any] | None = None,
    ) -> ChatMessageView:
        """Store a message (and any session change) in one transaction, on the engine."""
        service = self.service
        now = service.clock.now()
        row: dict[str, Any] = {
            "id": new_id(),
            "session_id": sid,
            "role": role,
            "content": content,
            "task_id": task_id,
            "context": context,
            "created_at": now,
        }

        def write(con: Any) -> None:
            row["seq"] = repo.next_seq(con, sid)
            repo.insert_message(con, row)
            repo.update_session(con, sid, session_changes or {"updated_at": now})

        service.on_engine(lambda: service.writer_flush(write))
        return ChatMessageView(**row)


__all__ = ["ChatFeature"]
