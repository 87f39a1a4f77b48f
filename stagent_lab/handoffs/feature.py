"""Handoffs as a feature of the workspace service: the tool service, the inbox handler for
approvals, the finish hook that closes a message, expiry, and the requests behind
``lab.handoff`` / ``lab.handoffs``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from stagent_lab.api import requests as rq
from stagent_lab.config import SettingSpec
from stagent_lab.handoffs.bus import HandoffBus
from stagent_lab.handoffs.errors import HandoffError
from stagent_lab.handoffs.tool import HandoffTool
from stagent_lab.runtimes.scripted import load_script
from stagent_lab.store import handoffs as repo

if TYPE_CHECKING:
    from stagent_lab.engine.task import TaskState
    from stagent_lab.service.core import WorkspaceService


def _check_policy(value: Any) -> None:
    from stagent_lab.profiles.model import HandoffPolicy

    if not isinstance(value, dict):
        raise ValueError(
            "a handoff policy is a JSON object with acceptFrom, blockFrom, requireApprovalFrom"
        )
    HandoffPolicy.model_validate(value)


class TaskHandoffs:
    """The ``Handoff`` tool's view of the bus: sends always come from this task."""

    def __init__(self, bus: HandoffBus, st: TaskState) -> None:
        self._bus = bus
        self._st = st

    def send(
        self, to_profile: Any, subject: Any, body: Any, *, requires_approval: bool = False
    ) -> dict[str, Any]:
        st = self._st
        try:
            return self._bus.send(
                to_profile=to_profile,
                subject=subject,
                body=body,
                from_profile=st.profile_id,
                source_task_id=st.id,
                require_approval=requires_approval,
            )
        except HandoffError as exc:
            self._bus.service.log_task(
                st,
                "handoff_refused",
                tool_name="Handoff",
                to_profile=to_profile,
                reason=exc.reason,
                message=str(exc),
            )
            raise


class HandoffsFeature:
    name = "handoffs"
    migrations = repo.MIGRATIONS
    settings = (
        SettingSpec("handoffs.max_chain_depth", "int", 5, "handoffs in a row", 1, 100),
        SettingSpec("handoffs.ttl_hours", "float", 72.0, "approval wait before expiry", 0, 8760),
        SettingSpec("handoffs.require_approval", "bool", False, "approve every handoff"),
        SettingSpec(
            "handoffs.policy.*", "json", None, "a receiver's policy (JSON)", check=_check_policy
        ),
    )

    def attach(self, service: WorkspaceService) -> None:
        self.service = service
        self.bus = bus = HandoffBus(service)
        service.tools.register(HandoffTool())
        service.hooks.tool_services.append(lambda st: {"handoff": TaskHandoffs(bus, st)})
        service.hooks.finish.append(bus.on_finish)
        service.hooks.inbox_handlers["handoff"] = bus.on_decision
        service.hooks.started.append(bus.expire)
        service.on(rq.SendHandoff)(self._send)
        service.on(rq.ListHandoffs)(lambda r: service.on_engine(bus.messages, r.status, r.task_id))
        service.on(rq.HandoffChain)(lambda r: service.on_engine(bus.chain, r.task_id))

    def _send(self, r: rq.SendHandoff) -> dict[str, Any]:
        service = self.service
        project_id = working_dir = None
        if r.project is not None or r.source_task is None:
            project_id, working_dir = service.resolve_project(r.project)
        kw: dict[str, Any] = {}
        if r.script is not None:
            load_script(r.script)  # a bad script fails here, not in the child
            kw["script"] = r.script
        return service.on_engine(
            lambda: self.bus.send(
                to_profile=r.to_profile,
                subject=r.subject,
                body=r.body,
                from_profile=r.from_profile,
                source_task_id=r.source_task,
                require_approval=r.require_approval,
                project_id=project_id,
                working_dir=working_dir,
                runtime=r.runtime,
                **kw,
            )
        )


__all__ = ["HandoffsFeature", "TaskHandoffs"]
