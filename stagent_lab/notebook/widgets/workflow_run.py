"""The run card: a live view of one workflow run, with its approvals and controls inline.

It shows the run (status, stop reason, cost so far against its budget, output), each step
(status, attempt, its child task with that task's status and cost, result or error, the
operator's note), pending checkpoints with Allow / Deny and a message, and Pause / Resume /
Cancel / Retry. It follows the run's events and its children's events through the Lab's hub
(≤ 10 updates a second) and is polled every few seconds for the children's cost.

Besides the live widget the card publishes a static ``text/html`` form of the same facts, so a
saved notebook (nbconvert, GitHub) still shows the run without a kernel.
"""

from __future__ import annotations

import html
from typing import TYPE_CHECKING, Any

import traitlets

from stagent_lab.api import workflows as wq
from stagent_lab.notebook.live import hub_for
from stagent_lab.notebook.views import epoch_ms
from stagent_lab.notebook.widgets._base import LiveWidget, asset, bundle

if TYPE_CHECKING:
    from stagent_lab.client.lab import Lab

ACTIVE = ("running", "waiting", "delayed", "paused")
TIME_KEYS = ("started_at", "finished_at", "paused_at", "resume_at", "updated_at")


def _plain(data: dict[str, Any]) -> dict[str, Any]:
    """Times as epoch milliseconds (``*_ms``), everything else as is (JSON-ready)."""
    out = {}
    for key, value in data.items():
        if key in TIME_KEYS or key.endswith("_at"):
            out[key.removesuffix("_at") + "_ms"] = epoch_ms(value)
        elif key != "inputs":
            out[key] = value
    return out


def card_state(lab: Lab, run_id: str) -> dict[str, Any]:
    """The card's synced state from one ``WorkflowRunCard`` request."""
    snap = lab.call(wq.WorkflowRunCard(run_id=run_id))
    run = _plain(snap["run"])  # its cost grows with every model call of its children
    steps = [_plain(s) for s in snap["steps"]]
    pending = [
        {"id": i["id"], "body": i.get("body") or "", "created_ms": epoch_ms(i.get("created_at"))}
        for i in snap["pending"]
    ]
    return {"run": run, "steps": steps, "pending": pending, "outline": snap["definition"]}


class WorkflowRunCard(LiveWidget):
    """``WorkflowRunCard(run_id)``: the live card of a workflow run."""

    _esm = bundle("workflow_run.js")
    _css = asset("stagent.css") + "\n" + asset("workflow_run.css")
    run = traitlets.Dict().tag(sync=True)
    steps = traitlets.List().tag(sync=True)
    pending = traitlets.List().tag(sync=True)
    outline = traitlets.List().tag(sync=True)
    live_task_id = None  # every event: the run's own and its children's
    live_poll = True  # children's cost grows without a run event

    def __init__(self, run_id: str, lab: Lab | None = None, **kwargs: Any) -> None:
        lab = self._bind_lab(lab)
        self.run_id = run_id
        self._start_live(lab)
        try:
            initial = card_state(lab, run_id)
        except BaseException:
            self._hub.detach(self)
            raise
        self._tasks = {s["task_id"] for s in initial["steps"] if s.get("task_id")}
        super().__init__(**initial, **kwargs)
        self._go_live()

    @classmethod
    def for_run(cls, run_id: str, lab: Lab | None = None) -> WorkflowRunCard:
        """The card of a run: one widget model per run per kernel, shared by every view."""
        if lab is None:
            from stagent_lab.notebook import get_lab

            lab = get_lab()
        hub = hub_for(lab)
        key = f"workflow_run:{run_id}"
        card = hub.cards.get(key)
        if card is None or card.comm is None:
            card = cls(run_id, lab)
            hub.cards[key] = card
        return card

    # ---- state -------------------------------------------------------------------------

    def _relevant(self, events: list[dict[str, Any]]) -> bool:
        for ev in events:
            tid = ev.get("task_id")
            if tid == self.run_id or (tid in self._tasks and ev.get("event") != "assistant_delta"):
                return True
        return False

    def update_state(self, events: list[dict[str, Any]], *, poked: bool, polled: bool) -> None:
        live = self.run.get("status") in ACTIVE
        if not (poked or self._relevant(events) or (polled and live)):
            return
        state = self._hub.read(card_state, self.lab, self.run_id)
        self._tasks = {s["task_id"] for s in state["steps"] if s.get("task_id")}
        for key in ("run", "steps", "pending", "outline"):
            if state[key] != getattr(self, key):
                setattr(self, key, state[key])

    # ---- actions -----------------------------------------------------------------------

    def handle_action(self, kind: str, content: dict[str, Any]) -> str:
        run = self.lab.workflows.run_handle(self.run_id)
        if kind == "pause":
            run.pause(stop_tasks=bool(content.get("stop_tasks")))
        elif kind == "resume":
            run.resume()
        elif kind == "cancel":
            run.cancel()
        elif kind == "retry":
            run.retry()
        else:
            return super().handle_action(kind, content)
        return f"{kind}: the run is {run.status}"

    # ---- the static form ---------------------------------------------------------------

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        bundle_ = super()._repr_mimebundle_(**kwargs)
        if isinstance(bundle_, tuple):  # (data, metadata)
            data, meta = bundle_
            return {**data, "text/html": self.static_html()}, meta
        data = dict(bundle_ or {})
        data["text/html"] = self.static_html()
        return data

    def static_html(self) -> str:
        """The card as plain HTML (no script): what a saved notebook shows without a kernel."""
        return static_html(self.run, self.steps, self.pending)


def static_html(run: dict[str, Any], steps: list[dict[str, Any]], pending: list[dict]) -> str:
    e = html.escape
    head = (
        f"<strong>{e(str(run.get('workflow') or ''))}</strong> run #{e(str(run.get('run_number')))}"
        f" · <span data-status='{e(str(run.get('status')))}'>{e(str(run.get('status')))}</span>"
    )
    if run.get("stop_reason"):
        head += f" ({e(str(run['stop_reason']))})"
    head += f" · ${float(run.get('cost_usd') or 0.0):.4f}"
    if run.get("budget_usd"):
        head += f" of ${float(run['budget_usd']):.2f}"
    rows = []
    for s in steps:
        where = f" #{s['iteration']}" if s.get("iteration") else ""
        detail = s.get("error") or s.get("result") or ""
        cost = float(s.get("cost_usd") or 0.0)
        rows.append(
            "<tr>"
            f"<td>{e(str(s.get('name')))}{e(where)}</td><td>{e(str(s.get('status')))}</td>"
            f"<td>{e(str(s.get('task_id') or ''))}</td><td>${cost:.4f}</td>"
            f"<td>{e(str(detail)[:300])}</td></tr>"
        )
    parts = [
        f"<div class='stagent-run-static'><p>{head}</p>",
        "<table><thead><tr><th>step</th><th>status</th><th>task</th><th>cost</th>"
        "<th>result / error</th></tr></thead><tbody>" + "".join(rows) + "</tbody></table>",
    ]
    if run.get("failure_reason"):
        parts.append(f"<p>failed: {e(str(run['failure_reason']))}</p>")
    for item in pending:
        parts.append(f"<p>waiting for approval:</p><pre>{e(str(item.get('body') or ''))}</pre>")
    if run.get("output"):
        parts.append(
            f"<details><summary>output</summary><pre>{e(str(run['output']))}</pre></details>"
        )
    parts.append("</div>")
    return "".join(parts)


__all__ = ["WorkflowRunCard", "card_state", "static_html"]
