"""Plugging the handoff bus into a Lab: tool service, inbox handler, finish hook, expiry."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from stagent_lab.handoffs.bus import HandoffBus
from stagent_lab.handoffs.errors import HandoffError
from stagent_lab.handoffs.tool import HandoffTool
from stagent_lab.tools import register_tool

if TYPE_CHECKING:
    from stagent_lab.engine.engine import TaskState
    from stagent_lab.lab import Lab


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
            self._bus.engine.log(
                st,
                "handoff_refused",
                tool_name="Handoff",
                to_profile=to_profile,
                reason=exc.reason,
                message=str(exc),
            )
            raise


def attach(lab: Lab) -> HandoffBus:
    """Wire handoffs into a Lab's engine (call before the engine starts). Returns the bus."""
    register_tool(HandoffTool())
    bus = HandoffBus(lab)
    engine = lab.engine
    engine.tool_service_hooks.append(lambda st: {"handoff": TaskHandoffs(bus, st)})
    engine.finish_hooks.append(bus.on_finish)
    engine.inbox_handlers["handoff"] = bus.on_decision
    if engine.writer is None:  # not started: this thread still owns the connection
        bus.expire()
    return bus


__all__ = ["TaskHandoffs", "attach"]
