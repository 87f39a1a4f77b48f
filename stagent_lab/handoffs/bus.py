"""The handoff bus: agent-to-agent messages in ``agent_messages``, governed end to end.

A handoff is validated completely before anything is written: text present, no self-handoff,
both profiles exist, the chain is not too deep (``handoffs.max_chain_depth``, default 5), and
the receiver's policy accepts the sender. Then either

* approval is needed (the receiver's ``requireApprovalFrom``, the sender asked for it, or the
  setting ``handoffs.require_approval``): the message waits as ``pending`` with an inbox item
  of kind ``handoff``; "allow" starts the child task, "deny" rejects it, and after
  ``handoffs.ttl_hours`` (default 72) it expires; or
* it is accepted at once and a child task is queued for the receiver.

The child task has ``source='handoff'`` and ``parent_task_id`` = the sending task; the message
then moves ``in_progress`` → ``completed`` / ``failed`` when the child ends. The chain depth of a
message is one more than that of the message that created the sending task, so A→B→C→A... is
cut off at the limit however the profiles loop.

Every method runs on the engine thread (the store's writer); the feature's request handlers
hop there for you. The bus talks to the workspace service (never to ``Lab``).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from stagent_lab._text import repair_text
from stagent_lab.engine.task import TaskState, new_id
from stagent_lab.errors import ProfileNotFoundError, RuntimeNotAvailableError
from stagent_lab.handoffs.errors import HandoffError
from stagent_lab.handoffs.policy import check_policy
from stagent_lab.store import handoffs as repo
from stagent_lab.store import projects as projects_repo

if TYPE_CHECKING:
    from stagent_lab.profiles.model import Profile
    from stagent_lab.service.core import WorkspaceService

MAX_SUBJECT_CHARS = 200
MAX_BODY_CHARS = 20_000
_UNSET: Any = object()


class HandoffBus:
    def __init__(
        self, service: WorkspaceService, *, clock: Callable[[], datetime] | None = None
    ) -> None:
        self.service = service
        self._clock = clock
        # How to start a child that waits for approval (runtime/script/project given to
        # lab.handoff); kept in memory, rebuilt from the source task after a restart.
        self._child_specs: dict[str, dict[str, Any]] = {}

    @property
    def clock(self) -> Callable[[], datetime]:
        return self._clock or self.service.clock.now

    @clock.setter
    def clock(self, fn: Callable[[], datetime] | None) -> None:
        self._clock = fn

    # ---- settings -----------------------------------------------------------------------

    @property
    def max_chain_depth(self) -> int:
        return max(1, int(self.service.settings.value("handoffs.max_chain_depth")))

    @property
    def ttl(self) -> timedelta:
        return timedelta(hours=max(float(self.service.settings.value("handoffs.ttl_hours")), 0.0))

    # ---- writing helpers ----------------------------------------------------------------

    def _write(self, fn: Callable[[Any], None]) -> None:
        """Run ``fn(con)`` in one transaction, after the rows queued before it (engine thread)."""
        self.service.writer_flush(fn)

    def _con(self) -> Any:
        return self.service.store.con

    # ---- sending ------------------------------------------------------------------------

    def send(
        self,
        *,
        to_profile: str,
        subject: str,
        body: str,
        from_profile: str | None = None,
        source_task_id: str | None = None,
        require_approval: bool = False,
        project_id: str | None = None,
        working_dir: str | None = None,
        runtime: str | None = None,
        script: Any = _UNSET,
    ) -> dict[str, Any]:
        """Validate and send one handoff; returns the message as a dict (see module doc)."""
        now = self.clock()
        self.expire(now)
        subject = subject.strip() if isinstance(subject, str) else ""
        body = body.strip() if isinstance(body, str) else ""
        if not subject:
            raise HandoffError("a handoff needs a subject (what the work is, in a line)", "invalid")
        if not body:
            raise HandoffError("a handoff needs a body (the work and what you found)", "invalid")
        if len(subject) > MAX_SUBJECT_CHARS or len(body) > MAX_BODY_CHARS:
            raise HandoffError(
                f"subject is limited to {MAX_SUBJECT_CHARS} and body to {MAX_BODY_CHARS} "
                "characters",
                "invalid",
            )
        source = self._source(source_task_id) if source_task_id else None
        if source is not None:
            if from_profile is not None and from_profile != source["profile_id"]:
                raise HandoffError(
                    f"task {source_task_id} belongs to profile {source['profile_id']}, not "
                    f"{from_profile}",
                    "unknown_task",
                )
            from_profile = source["profile_id"]
        if not from_profile:
            raise HandoffError("say who hands off: from_profile= or source_task=", "invalid")
        if not isinstance(to_profile, str) or not to_profile.strip():
            raise HandoffError("a handoff needs to_profile (the receiving profile id)", "invalid")
        to_profile = to_profile.strip()
        if to_profile == from_profile:
            raise HandoffError(
                f"{from_profile} cannot hand off to itself; do the work or pick another profile",
                "self_handoff",
            )
        self._profile(from_profile)
        receiver = self._profile(to_profile)
        parent = self._parent_message(source_task_id) if source_task_id else None
        depth = parent["chain_depth"] + 1 if parent else 0
        limit = self.max_chain_depth
        if depth >= limit:
            path = " → ".join([*self._chain_profiles(parent), to_profile])
            raise HandoffError(
                f"handoff chain too deep: this would be handoff {depth + 1} in a row "
                f"({path}); the limit is {limit} (setting handoffs.max_chain_depth). Finish "
                "the work here or report back instead of handing it on.",
                "chain_depth",
            )
        settings = self.service.settings
        approval = (
            check_policy(from_profile, receiver, settings)
            or bool(require_approval)
            or bool(settings.value("handoffs.require_approval"))
        )
        spec = {
            "project_id": project_id or (source or {}).get("project_id"),
            "working_dir": working_dir or (source or {}).get("working_dir"),
            "runtime": runtime,
            "script": script,
        }
        msg = {
            "id": new_id(),
            "from_profile_id": from_profile,
            "to_profile_id": to_profile,
            "source_task_id": source_task_id,
            "target_task_id": None,
            "subject": self.service.redact(repair_text(subject)),
            "body": self.service.redact(repair_text(body)),
            "status": "pending" if approval else "accepted",
            "requires_approval": approval,
            "inbox_item_id": new_id() if approval else None,
            "parent_message_id": parent["id"] if parent else None,
            "chain_depth": depth,
            "reason": None,
            "expires_at": now + self.ttl if approval else None,
            "created_at": now,
            "updated_at": now,
        }

        def insert(con: Any) -> None:
            repo.insert(con, msg)
            if approval:
                item_input = {
                    "message_id": msg["id"],
                    "from_profile": from_profile,
                    "to_profile": to_profile,
                    "subject": msg["subject"],
                    "body": msg["body"],
                    "chain_depth": depth,
                }
                repo.insert_approval_item(
                    con,
                    msg["inbox_item_id"],
                    source_task_id,
                    item_input,
                    f"{from_profile} wants to hand off to {to_profile}: {msg['subject']}",
                    now,
                )

        self._write(insert)
        if approval:
            self._child_specs[msg["id"]] = spec
            self.service.notify()
        else:
            self._start_child(msg, spec)
        self._log_source(
            source_task_id,
            "handoff_sent",
            message_id=msg["id"],
            to_profile=to_profile,
            subject=msg["subject"],
            status=msg["status"],
            chain_depth=depth,
            inbox_item_id=msg["inbox_item_id"],
            target_task_id=msg["target_task_id"],
        )
        return dict(msg)

    # ---- decisions, expiry, completion -----------------------------------------------------

    def on_decision(self, outcome: Any) -> None:
        """Inbox handler for kind 'handoff' (called when the item is decided, engine thread)."""
        item_id, decision, message = outcome.item_id, outcome.decision, outcome.message
        now = self.clock()
        row = self._message_where("inbox_item_id = ?", [item_id])
        if row is None:
            raise HandoffError(f"no handoff waits on inbox item {item_id}", "not_found")
        if row["status"] != "pending":
            raise HandoffError(f"handoff {row['id']} is already {row['status']}", "not_pending")
        if row["expires_at"] is not None and now >= row["expires_at"]:
            hours = (row["expires_at"] - row["created_at"]).total_seconds() / 3600
            self._expire_ids([(row["id"], item_id, f"no decision within {hours:g} h")], now)
            raise HandoffError(
                f"handoff {row['id']} expired at {row['expires_at']:%Y-%m-%d %H:%M} UTC before "
                "the decision; ask the agent to send it again",
                "expired",
            )
        if decision == "allow":
            self._set(row["id"], status="accepted", updated_at=now)
            row["status"] = "accepted"
            spec = self._child_specs.pop(row["id"], None) or {}
            self._start_child(row, spec)
        else:
            self._child_specs.pop(row["id"], None)
            reason = message or "denied by the operator"
            self._set(row["id"], status="rejected", reason=reason, updated_at=now)
            row.update(status="rejected", reason=reason)
        self._log_source(
            row["source_task_id"],
            "handoff_decided",
            message_id=row["id"],
            decision=decision,
            status=row["status"],
            target_task_id=row["target_task_id"],
            reason=row["reason"],
        )

    def expire(self, now: datetime | None = None) -> int:
        """Expire handoffs pending approval past their ``expires_at`` (or whose inbox item
        was expired elsewhere, e.g. by crash recovery); returns how many."""
        now = now or self.clock()
        rows = repo.due_for_expiry(self._con(), now)
        expired = []
        for mid, item_id, created, expires, item_status in rows:
            if expires is not None and expires <= now:
                hours = (expires - created).total_seconds() / 3600
                reason = f"no decision within {hours:g} h"
            else:
                reason = f"its inbox item was {item_status} before a decision"
            expired.append((mid, item_id, reason))
        if expired:
            self._expire_ids(expired, now)
        return len(expired)

    def _expire_ids(self, rows: list[tuple[str, str | None, str]], now: datetime) -> None:
        self._write(lambda con: repo.expire(con, rows, now))
        for mid, _, _ in rows:
            self._child_specs.pop(mid, None)

    def on_finish(self, st: TaskState) -> None:
        """Finish hook: a child's end closes its message and tells the sending task."""
        if st.source != "handoff":
            return
        status = str(st.status)
        if status == "paused":
            return
        row = self._message_where("target_task_id = ?", [st.id])
        if row is None:
            return
        new = "completed" if status == "completed" else "failed"
        reason = None if new == "completed" else (st.failure_reason or status)
        self._set(row["id"], status=new, reason=reason, updated_at=self.clock())
        summary = (st.result or st.failure_reason or "").strip().splitlines()
        self._log_source(
            row["source_task_id"],
            "handoff_result",
            message_id=row["id"],
            target_task_id=st.id,
            to_profile=row["to_profile_id"],
            status=new,
            summary=summary[0][:300] if summary else None,
        )

    # ---- reading ------------------------------------------------------------------------

    def messages(self, status: str | None = None, task: str | None = None) -> Any:
        """Handoff messages (expired ones marked first), oldest first, as an Arrow table.

        ``task``: only messages sent by or creating that task.
        """
        self.expire()
        return repo.messages_arrow(self._con(), status, task)

    def chain(self, task_id: str) -> list[dict[str, Any]]:
        """The messages that led to ``task_id``, root first (empty for a task nobody sent)."""
        out: list[dict[str, Any]] = []
        row = self._parent_message(task_id)
        while row is not None and len(out) < 1000:
            out.append(row)
            pid = row["parent_message_id"]
            row = repo.by_id(self._con(), pid) if pid else None
        return out[::-1]

    # ---- internals ----------------------------------------------------------------------

    def _profile(self, profile_id: str) -> Profile:
        try:
            return self.service.profiles.get(profile_id)
        except ProfileNotFoundError as exc:
            raise HandoffError(str(exc), "unknown_profile") from None

    def _source(self, task_id: str) -> dict[str, Any]:
        st = self.service.live_task(task_id)
        if st is not None:
            return {
                "profile_id": st.profile_id,
                "project_id": st.project_id,
                "working_dir": st.working_dir,
                "runtime_id": st.runtime_id,
                "runtime_options": dict(st.runtime_options),
            }
        self._write(None)
        row = repo.source_task(self._con(), task_id)
        if row is None:
            raise HandoffError(f"no task with id {task_id!r}", "unknown_task")
        return row

    def _message_where(self, where: str, params: list[Any]) -> dict[str, Any] | None:
        return repo.where(self._con(), where, params)

    def _parent_message(self, task_id: str) -> dict[str, Any] | None:
        return self._message_where("target_task_id = ?", [task_id])

    def _chain_profiles(self, parent: dict[str, Any] | None) -> list[str]:
        if parent is None:
            return []
        names = [parent["to_profile_id"]]
        row: dict[str, Any] | None = parent
        while row is not None and len(names) < 1000:
            names.append(row["from_profile_id"])
            pid = row["parent_message_id"]
            row = repo.by_id(self._con(), pid) if pid else None
        return names[::-1]

    def _set(self, message_id: str, **fields: Any) -> None:
        self._write(lambda con: repo.update(con, message_id, fields))

    def _log_source(self, task_id: str | None, event: str, **payload: Any) -> None:
        self.service.log_task_id(task_id, event, tool_name="Handoff", **payload)

    def _start_child(self, msg: dict[str, Any], spec: dict[str, Any]) -> str:
        """Queue the receiver's task for an accepted message; returns its id."""
        try:
            st, notes = self._child_state(msg, spec)
            st.notes = notes
            self.service.start_task(st)
        except Exception as exc:
            reason = f"could not start the task: {exc}"
            self._set(msg["id"], status="failed", reason=reason, updated_at=self.clock())
            msg.update(status="failed", reason=reason)
            raise HandoffError(f"handoff {msg['id']} accepted but {reason}", "invalid") from exc
        self.service.log_task(
            st,
            "handoff_received",
            tool_name="Handoff",
            message_id=msg["id"],
            from_profile=msg["from_profile_id"],
            source_task_id=msg["source_task_id"],
            subject=msg["subject"],
            chain_depth=msg["chain_depth"],
        )
        self._set(msg["id"], status="in_progress", target_task_id=st.id, updated_at=self.clock())
        msg.update(status="in_progress", target_task_id=st.id)
        return st.id

    def _child_state(
        self, msg: dict[str, Any], spec: dict[str, Any]
    ) -> tuple[TaskState, list[str]]:
        prof = self._profile(msg["to_profile_id"])
        source = None
        if msg["source_task_id"]:
            try:
                source = self._source(msg["source_task_id"])
            except HandoffError:
                source = None
        catalog = self.service.catalog
        notes: list[str] = []
        options: dict[str, Any] = {}
        script = spec.get("script", _UNSET)
        if script is not _UNSET and script is not None:
            rid, options = "scripted", {"script": script}
        elif spec.get("runtime"):
            rid, notes = catalog.resolve(spec["runtime"], prof)
        else:
            rid = ""
            if source is not None:
                # Stay on the sender's runtime when the receiver can use it (a scripted chain
                # plays the sender's script under each profile, which tests rely on).
                try:
                    rid, notes = catalog.resolve(source["runtime_id"], prof)
                    options = {
                        k: v
                        for k, v in source["runtime_options"].items()
                        if k != "script_is_callable"
                    }
                except RuntimeNotAvailableError:
                    rid = ""
            if not rid:
                rid, notes = catalog.resolve(None, prof)
        project_id = spec.get("project_id") or (source or {}).get("project_id")
        working_dir = spec.get("working_dir") or (source or {}).get("working_dir")
        if project_id and not working_dir:
            row = projects_repo.by_id(self._con(), project_id)
            working_dir = row["working_directory"] if row else None
        if not working_dir:
            found = projects_repo.by_name(self._con(), "default")
            project_id, working_dir = found if found else (None, str(self.service.home))
        sender = msg["from_profile_id"]
        origin = f" (task {msg['source_task_id']})" if msg["source_task_id"] else ""
        prompt = (
            f"{msg['body']}\n\n---\nHanded off to you by the {sender} agent{origin}, subject "
            f'"{msg["subject"]}" (handoff {msg["chain_depth"] + 1} in this chain). Do the '
            "work yourself; hand it on only if it is clearly outside your expertise."
        )
        subject = msg["subject"]
        st = TaskState(
            id=new_id(),
            title=subject if len(subject) <= 80 else subject[:77] + "…",
            prompt=prompt,
            profile=prof,
            runtime_id=rid,
            model=prof.model_for(rid),
            project_id=project_id,
            working_dir=working_dir,
            max_turns=prof.max_turns_for(rid),
            max_budget_usd=None,
            runtime_options=options,
            source="handoff",
            parent_task_id=msg["source_task_id"],
            activity="handoff",
        )
        return st, notes


__all__ = ["MAX_BODY_CHARS", "MAX_SUBJECT_CHARS", "HandoffBus"]
