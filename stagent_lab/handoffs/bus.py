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

Every method runs on the engine thread (the store's writer); ``Lab.handoff`` and
``Lab.handoffs`` hop there for you.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import pandas as pd

from stagent_lab.engine.engine import TaskState, new_id, utcnow
from stagent_lab.errors import ProfileNotFoundError, RuntimeNotAvailableError
from stagent_lab.handoffs.errors import HandoffError
from stagent_lab.handoffs.policy import check_policy

if TYPE_CHECKING:
    from stagent_lab.lab import Lab
    from stagent_lab.profiles.model import Profile

MAX_SUBJECT_CHARS = 200
MAX_BODY_CHARS = 20_000
_UNSET: Any = object()

MESSAGE_COLUMNS = (
    "id, from_profile_id, to_profile_id, source_task_id, target_task_id, subject, body, status, "
    "requires_approval, inbox_item_id, parent_message_id, chain_depth, reason, expires_at, "
    "created_at, updated_at"
)


def _truthy(value: Any) -> bool:
    return str(value).strip().lower() in ("1", "true", "yes", "on")


class HandoffBus:
    def __init__(self, lab: Lab, *, clock: Callable[[], datetime] | None = None) -> None:
        self.lab = lab
        self.engine = lab.engine
        self.clock: Callable[[], datetime] = clock or utcnow
        # How to start a child that waits for approval (runtime/script/project given to
        # lab.handoff); kept in memory, rebuilt from the source task after a restart.
        self._child_specs: dict[str, dict[str, Any]] = {}

    # ---- settings -----------------------------------------------------------------------

    def _setting_int(self, key: str, default: int) -> int:
        try:
            return int(str(self.engine.settings.get(key, default)).strip())
        except ValueError:
            return default

    @property
    def max_chain_depth(self) -> int:
        return max(1, self._setting_int("handoffs.max_chain_depth", 5))

    @property
    def ttl(self) -> timedelta:
        try:
            hours = float(self.engine.settings.get("handoffs.ttl_hours", 72))
        except ValueError:
            hours = 72.0
        return timedelta(hours=max(hours, 0.0))

    # ---- writing helpers ----------------------------------------------------------------

    def _write(self, fn: Callable[[Any], None]) -> None:
        """Run ``fn(con)`` in one transaction (with buffered log rows once the engine runs)."""
        if self.engine.writer is not None:
            self.engine.writer.flush(extra=fn)
            return
        with self.lab.store.transaction() as con:
            fn(con)

    def _con(self) -> Any:
        return self.lab.store.con

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
        approval = (
            check_policy(from_profile, receiver, self.engine.settings)
            or bool(require_approval)
            or _truthy(self.engine.settings.get("handoffs.require_approval", "false"))
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
            "subject": self.engine.redact(subject),
            "body": self.engine.redact(body),
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
            con.execute(
                f"INSERT INTO agent_messages ({MESSAGE_COLUMNS}) VALUES ({', '.join('?' * 16)})",
                [msg[c.strip()] for c in MESSAGE_COLUMNS.split(",")],
            )
            if approval:
                item_input = {
                    "message_id": msg["id"],
                    "from_profile": from_profile,
                    "to_profile": to_profile,
                    "subject": msg["subject"],
                    "body": msg["body"],
                    "chain_depth": depth,
                }
                con.execute(
                    "INSERT INTO inbox_items (id, task_id, kind, tool_name, tool_input, question, "
                    "suggested_rule, status, created_at) "
                    "VALUES (?, ?, 'handoff', 'Handoff', ?, ?, NULL, 'pending', ?)",
                    [
                        msg["inbox_item_id"],
                        source_task_id,
                        json.dumps(item_input),
                        f"{from_profile} wants to hand off to {to_profile}: {msg['subject']}",
                        now,
                    ],
                )

        self._write(insert)
        if approval:
            self._child_specs[msg["id"]] = spec
            with self.engine.cond:
                self.engine.cond.notify_all()
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

    def on_decision(self, item_id: str, decision: str, message: str | None) -> None:
        """Inbox handler for kind 'handoff' (called by engine.decide on the engine thread)."""
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
        rows = (
            self._con()
            .execute(
                "SELECT m.id, m.inbox_item_id, m.created_at, m.expires_at, i.status "
                "FROM agent_messages m LEFT JOIN inbox_items i ON i.id = m.inbox_item_id "
                "WHERE m.status = 'pending' AND ((m.expires_at IS NOT NULL AND m.expires_at <= ?) "
                "OR i.status = 'expired')",
                [now],
            )
            .fetchall()
        )
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
        def update(con: Any) -> None:
            for mid, item_id, reason in rows:
                con.execute(
                    "UPDATE agent_messages SET status = 'expired', reason = ?, updated_at = ? "
                    "WHERE id = ?",
                    [reason, now, mid],
                )
                if item_id:
                    con.execute(
                        "UPDATE inbox_items SET status = 'expired', decided_at = ? WHERE id = ? "
                        "AND status IN ('pending', 'decided')",
                        [now, item_id],
                    )

        self._write(update)
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

    def messages(self, status: str | None = None, task: str | None = None) -> pd.DataFrame:
        """Handoff messages (expired ones marked first), oldest first.

        ``task``: only messages sent by or creating that task.
        """
        self.expire()
        clauses, params = [], []
        if status:
            clauses.append("status = ?")
            params.append(status)
        if task:
            clauses.append("(source_task_id = ? OR target_task_id = ?)")
            params += [task, task]
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        return (
            self._con()
            .execute(
                f"SELECT {MESSAGE_COLUMNS} FROM agent_messages {where} ORDER BY created_at, id",
                params,
            )
            .df()
        )

    def chain(self, task_id: str) -> list[dict[str, Any]]:
        """The messages that led to ``task_id``, root first (empty for a task nobody sent)."""
        out: list[dict[str, Any]] = []
        row = self._parent_message(task_id)
        while row is not None and len(out) < 1000:
            out.append(row)
            pid = row["parent_message_id"]
            row = self._message_where("id = ?", [pid]) if pid else None
        return out[::-1]

    # ---- internals ----------------------------------------------------------------------

    def _profile(self, profile_id: str) -> Profile:
        try:
            return self.lab.profiles.get(profile_id)
        except ProfileNotFoundError as exc:
            raise HandoffError(str(exc), "unknown_profile") from None

    def _source(self, task_id: str) -> dict[str, Any]:
        st = self.engine.tasks.get(task_id)
        if st is not None:
            return {
                "profile_id": st.profile_id,
                "project_id": st.project_id,
                "working_dir": st.working_dir,
                "runtime_id": st.runtime_id,
                "runtime_options": dict(st.runtime_options),
            }
        row = (
            self._con()
            .execute(
                "SELECT t.profile_id, t.project_id, p.working_directory, t.runtime_id, t.options "
                "FROM tasks t LEFT JOIN projects p ON p.id = t.project_id WHERE t.id = ?",
                [task_id],
            )
            .fetchone()
        )
        if row is None:
            raise HandoffError(f"no task with id {task_id!r}", "unknown_task")
        options = json.loads(row[4]) if row[4] else {}
        return {
            "profile_id": row[0],
            "project_id": row[1],
            "working_dir": row[2],
            "runtime_id": row[3],
            "runtime_options": options,
        }

    def _message_where(self, where: str, params: list[Any]) -> dict[str, Any] | None:
        cur = self._con().execute(
            f"SELECT {MESSAGE_COLUMNS} FROM agent_messages WHERE {where} "
            "ORDER BY created_at DESC LIMIT 1",
            params,
        )
        row = cur.fetchone()
        if row is None:
            return None
        return dict(zip([d[0] for d in cur.description], row, strict=True))

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
            row = self._message_where("id = ?", [pid]) if pid else None
        return names[::-1]

    def _set(self, message_id: str, **fields: Any) -> None:
        cols = ", ".join(f"{k} = ?" for k in fields)

        def update(con: Any) -> None:
            con.execute(
                f"UPDATE agent_messages SET {cols} WHERE id = ?", [*fields.values(), message_id]
            )

        self._write(update)

    def _log_source(self, task_id: str | None, event: str, **payload: Any) -> None:
        st = self.engine.tasks.get(task_id) if task_id else None
        if st is not None:
            self.engine.log(st, event, tool_name="Handoff", **payload)

    def _start_child(self, msg: dict[str, Any], spec: dict[str, Any]) -> str:
        """Queue the receiver's task for an accepted message; returns its id."""
        try:
            st, notes = self._child_state(msg, spec)
            self.engine.create_task(st)
        except Exception as exc:
            reason = f"could not start the task: {exc}"
            self._set(msg["id"], status="failed", reason=reason, updated_at=self.clock())
            msg.update(status="failed", reason=reason)
            raise HandoffError(f"handoff {msg['id']} accepted but {reason}", "invalid") from exc
        for note in notes:
            self.engine.log(st, "notice", message=note)
        self.engine.log(
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
        catalog = self.lab.catalog
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
            row = (
                self._con()
                .execute("SELECT working_directory FROM projects WHERE id = ?", [project_id])
                .fetchone()
            )
            working_dir = row[0] if row else None
        if not working_dir:
            row = (
                self._con()
                .execute("SELECT id, working_directory FROM projects WHERE name = 'default'")
                .fetchone()
            )
            project_id, working_dir = (row[0], row[1]) if row else (None, str(self.lab.home))
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
