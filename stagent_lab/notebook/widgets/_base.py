"""Shared plumbing of the stagent widgets: JS bundling, front-end actions, hub wiring.

Buttons in the front end send custom messages (``model.send({type: "decide", ...})``) rather
than writing traits. A custom message is handled wherever the kernel handles comm messages -
the main shell, or a subshell thread when JupyterLab's ``commsOverSubshells`` is on - and the
handler calls the thread-safe Lab API at once, so an Allow click takes effect even while
another cell is busy. The handler never writes traits itself: it records the outcome and pokes
the hub, whose thread is the only one that writes this widget's state.

Displaying a widget shows two outputs: the live view and its static copy (``static.py``), a
mimebundle with a display id that is updated as the state changes, so a saved notebook, an
nbconvert export or GitHub shows the outcome without a kernel. The ``connection`` trait says
whether the workspace behind the widget still answers; the front end greys the widget out and
says what to do when it does not, or when the kernel that owns the widget is gone.
"""

from __future__ import annotations

import threading
import time
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING, Any

import anywidget
import traitlets

from stagent_lab.errors import StagentError
from stagent_lab.notebook.live import LiveHub, hub_for

if TYPE_CHECKING:
    from stagent_lab.client.lab import Lab

DECISIONS = ("allow", "always", "deny", "answer")
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
STATIC_MIN_INTERVAL_S = 2.0  # static copies of busy views are re-sent at most this often


@cache
def asset(name: str) -> str:
    return resources.files(__package__).joinpath(name).read_text(encoding="utf-8")


def bundle(name: str) -> str:
    """One ES module: the shared helpers followed by the widget's own code (no bundler)."""
    return asset("common.js") + "\n" + asset(name)


def operator_name() -> str:
    """``notebook:<kernel id>``: who decided, as recorded in ``decided_by``."""
    from stagent_lab.client.remote import client_identity

    return client_identity()


def _frontend_choice(_data: Any, default: str | None) -> str | None:
    return default


def keep_frontend_subshell(comm: Any) -> None:
    """Handle this comm's inbound messages on the subshell the front end sent them to.

    ipykernel 7 re-routes an inbound comm message to the subshell that last *sent* on the comm
    (``Comm._reply_subshell_for``, meant for request/reply over comms). A widget built in a
    cell, or updated from a background thread, has last sent from the main shell, so a click
    would queue behind a busy cell even with JupyterLab's ``commsOverSubshells`` on. Our
    messages are stateless and our handlers thread-safe, so the front end's choice stands.
    Kernels without that hook are left alone.
    """
    if comm is not None and hasattr(comm, "_reply_subshell_for"):
        comm._reply_subshell_for = _frontend_choice


def _shell() -> Any:
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - IPython is in the notebook extra
        return None
    return get_ipython()


def can_update_displays(shell: Any) -> bool:
    """A kernel's front end can update a display in place; a terminal would print it again
    (a capturing publisher, as in ``capture_output``, records the updates)."""
    if shell is None:
        return False
    if getattr(shell, "kernel", None) is not None:
        return True
    from IPython.core.displaypub import CapturingDisplayPublisher

    return isinstance(getattr(shell, "display_pub", None), CapturingDisplayPublisher)


class StagentWidget(anywidget.AnyWidget):
    """Base: the shared stylesheet, the action protocol (request id → ``last_action``), the
    static copy shown beside the live view, and the ``connection`` state."""

    _css = asset("stagent.css")
    # Outcome of the latest front-end action: {"req": id, "ok": bool, "message": text}.
    last_action = traitlets.Dict().tag(sync=True)
    # Whether the workspace answers: {"state": "live" | "lost" | "closed", "message", "transport"}
    connection = traitlets.Dict({"state": "live"}).tag(sync=True)

    def __init__(self, **kwargs: Any) -> None:
        lab = self.__dict__.get("_lab")
        if lab is not None:
            kwargs.setdefault("connection", {"state": "live", "transport": lab.transport})
        super().__init__(**kwargs)

    def _bind_lab(self, lab: Lab | None) -> Lab:
        if lab is None:
            from stagent_lab.notebook import get_lab

            lab = get_lab()
        self._lab = lab
        return lab

    @property
    def lab(self) -> Lab:
        return self._lab

    # ---- display: the live view, then its static copy ----------------------------------

    def static_bundle(self) -> dict[str, str]:
        """The static copy: ``text/html``, ``text/markdown``, ``text/plain`` (link-free)."""
        name = type(self).__name__
        return {"text/html": f'<div class="stg-static">{name}</div>', "text/plain": name}

    def static_key(self) -> Any:
        """A cheap summary of what the static copy shows; a change means re-send it."""
        return None

    @property
    def static_display_id(self) -> str:
        return f"stagent-{type(self).__name__.lower()}-{self.model_id}"

    def _ipython_display_(self) -> None:
        from IPython.display import display

        bundle = self._repr_mimebundle_() or ({}, {})
        live, meta = bundle if isinstance(bundle, tuple) else (bundle, {})
        # The live output carries no text of its own: exports show the static copy instead of
        # a repr, and JupyterLab hides this output's placeholder when its kernel is gone.
        live = {**live, "text/plain": ""}
        display(live, raw=True, metadata=meta or None)
        with self._static_lock:
            self._static_sent = self.static_key()
            self._static_at = time.monotonic()
            self._displayed = True
        display(self.static_bundle(), raw=True, display_id=self.static_display_id)

    @property
    def _static_lock(self) -> threading.Lock:
        lock = self.__dict__.get("_stg_static_lock")
        if lock is None:
            lock = self.__dict__.setdefault("_stg_static_lock", threading.Lock())
        return lock

    def refresh_static(self, *, force: bool = False) -> bool:
        """Re-send the static copy of every display of this widget when what it shows changed
        (at most every ``STATIC_MIN_INTERVAL_S`` unless ``force``). Returns True if sent."""
        if not getattr(self, "_displayed", False) or not can_update_displays(_shell()):
            return False
        key = self.static_key()
        now = time.monotonic()
        with self._static_lock:
            if key == getattr(self, "_static_sent", None):
                return False
            if not force and now - getattr(self, "_static_at", 0.0) < STATIC_MIN_INTERVAL_S:
                return False
            self._static_sent, self._static_at = key, now
        from IPython.display import update_display

        update_display(self.static_bundle(), raw=True, display_id=self.static_display_id)
        return True

    # ---- front-end actions (shell or subshell thread) ----------------------------------

    def _listen(self) -> None:
        self._outcome: dict[str, Any] | None = None
        self.on_msg(self._on_front_msg)
        keep_frontend_subshell(self.comm)

    def _on_front_msg(self, _widget: Any, content: Any, _buffers: Any) -> None:
        if not isinstance(content, dict):
            return
        req = str(content.get("req") or "")
        try:
            if getattr(self._lab, "closed", False):
                raise StagentError(
                    "this notebook's Lab is closed; open one (set_lab or %stagent use HOME) and "
                    "show this view again"
                )
            message = self.handle_action(str(content.get("type") or ""), content)
            outcome = {"req": req, "ok": True, "message": message}
        except (StagentError, ValueError, KeyError, TimeoutError, OSError) as exc:
            text = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
            outcome = {"req": req, "ok": False, "message": str(text)}
        self.report(outcome)

    def report(self, outcome: dict[str, Any]) -> None:
        """Publish an action's outcome (subclasses with a hub send it from the hub thread)."""
        self.last_action = outcome

    def handle_action(self, kind: str, content: dict[str, Any]) -> str:
        if kind == "decide":
            return self.decide(content)
        raise ValueError(f"unknown action {kind!r}")

    def decide(self, content: dict[str, Any]) -> str:
        item_id = str(content.get("item_id") or "")
        decision = str(content.get("decision") or "")
        if decision not in DECISIONS:
            raise ValueError(f"unknown decision {decision!r}")
        message = str(content.get("message") or "").strip() or None
        rule = str(content.get("rule") or "").strip() or None
        out = self.lab.decide(
            item_id,
            decision,
            message,
            rule if decision == "always" else None,
            decided_by=operator_name(),
        )
        text = {
            "allow": "allowed",
            "always": "always allowed",
            "deny": "denied",
            "answer": "answered",
        }[decision]
        if out.get("rule"):
            text += f"; saved rule {out['rule']}"
        return text


class LiveWidget(StagentWidget):
    """A widget fed by the Lab's hub: events in batches, ≤ 10 updates a second."""

    live_task_id: str | None = None
    live_poll: bool = False

    @classmethod
    def shared(cls, lab: Lab | None = None) -> Any:
        """The Lab's one instance of this view (re-running ``%stagent inbox`` shows the same
        model again instead of adding another widget that polls the store)."""
        if lab is None:
            from stagent_lab.notebook import get_lab

            lab = get_lab()
        hub = hub_for(lab)
        widget = hub.views.get(cls.__name__)
        if widget is None or widget.comm is None:
            widget = cls(lab)
            hub.views[cls.__name__] = widget
        return widget

    def _start_live(self, lab: Lab) -> LiveHub:
        self._ready = False
        self._early: list[dict[str, Any]] = []
        self._outcome = None
        self._hub = hub_for(lab)
        self._hub.attach(self)
        return self._hub

    def _go_live(self) -> None:
        self._listen()
        self._ready = True
        self._hub.poke(self)

    def report(self, outcome: dict[str, Any]) -> None:
        if not self._hub.alive:  # the hub stopped (a closed Lab): nobody else writes traits
            self.last_action = outcome
            return
        self._outcome = outcome
        self._hub.poke(self)

    def live_deliver(self, events: list[dict[str, Any]], *, poked: bool, polled: bool) -> None:
        if not self._ready:  # still being built: keep the events for the first real round
            self._early.extend(events)
            return
        if self._early:
            events, self._early = self._early + events, []
        outcome, self._outcome = self._outcome, None
        with self.hold_sync():
            try:
                self.update_state(events, poked=poked, polled=polled)
            except StagentError:
                if not getattr(self.lab, "_closed", False):
                    raise  # a closed Lab simply stops the updates
            finally:  # the button that asked always hears back
                if outcome is not None:
                    self.last_action = outcome
        self.refresh_static(force=self.static_final())

    def static_final(self) -> bool:
        """True when the static copy must be re-sent now (a task just ended)."""
        return False

    def live_connection(self, state: dict[str, Any]) -> None:
        """The hub's verdict on the workspace connection (hub thread)."""
        if state != self.connection:
            self.connection = dict(state)

    def update_state(self, events: list[dict[str, Any]], *, poked: bool, polled: bool) -> None:
        raise NotImplementedError

    def close(self) -> None:
        hub = getattr(self, "_hub", None)
        if hub is not None:
            hub.detach(self)
            if hub.cards.get(self.live_task_id or "") is self:
                hub.cards.pop(self.live_task_id or "", None)
            if hub.views.get(type(self).__name__) is self:
                hub.views.pop(type(self).__name__, None)
        super().close()
