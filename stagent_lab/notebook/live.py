"""One engine subscription per Lab, fanned out to widgets and flushed at most 10 times a second.

The engine calls subscribers on its own thread for every event, and a chatty agent can emit
thousands a second. The subscriber here only appends the event to the buffers of the widgets
that want it (a dict lookup and a list append, so the engine is never slowed by the front end).
A single daemon thread drains the buffers: it wakes when something arrives, waits until at
least ``interval`` seconds have passed since its previous round, then asks each dirty widget to
fold its batch into state and send it as one update. However many events arrive, each widget
sends at most one state message per round.

Widgets that show store-wide facts (inbox, monitor) also ask to be polled every
``poll_interval`` seconds, for changes no event announces (e.g. a handoff waiting for approval).
All trait writes happen on this one thread, so widgets never race with themselves.

The hub also watches the connection to the workspace: once a second it asks its
``connection`` callable (by default :func:`connection_state`, which reads whether the Lab is
closed and whether its transport still reaches the workspace) and hands any change to every
widget (``live_connection``), which greys itself out in the page and says what to do.
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from stagent_lab.client.lab import Lab

log = logging.getLogger(__name__)

FLUSH_INTERVAL_S = 0.1  # ≤ 10 Hz per widget
POLL_INTERVAL_S = 2.0
BACKLOG_EVENTS = 4096  # recent events of every task, so a new card needs no store read
CONNECTION_CHECK_S = 1.0  # how often the workspace connection is asked for


class Sink(Protocol):
    """What the hub needs from a widget."""

    live_task_id: str | None  # the task it follows, or None for every task
    live_poll: bool  # wants a refresh every poll interval

    def live_deliver(self, events: list[dict[str, Any]], *, poked: bool, polled: bool) -> None:
        """Fold ``events`` into state and push it (called on the hub thread only)."""

    def live_connection(self, state: dict[str, Any]) -> None:
        """The workspace connection changed (hub thread): ``{"state": "live" | "lost" |
        "closed", "message": text, "transport": ...}``."""


CLOSED_MESSAGE = (
    "This notebook's Lab is closed, so this view no longer follows the workspace. Open one "
    "(set_lab(Lab(...)) or %stagent use HOME) and show the view again."
)
LOST_MESSAGE = (
    "The workspace service does not answer{reason}. The next %stagent command reconnects "
    "(starting the service if needed); then show the view again."
)


def connection_state(lab: Lab) -> dict[str, Any]:
    """Whether ``lab`` still reaches its workspace, as the widgets show it.

    A transport may expose ``connected`` (a bool or a callable returning one) and
    ``connection_error`` (text); the in-process transport needs neither.
    """
    transport = getattr(getattr(lab, "workspace", None), "transport", "")
    if getattr(lab, "closed", False):
        return {"state": "closed", "message": CLOSED_MESSAGE, "transport": transport}
    ws = lab.workspace
    probe = getattr(ws, "connected", True)
    try:
        alive = probe() if callable(probe) else probe
    except Exception:  # a probe that fails is a connection that does not answer
        alive = False
    if alive is False or getattr(ws, "closed", False):
        reason = getattr(ws, "connection_error", None)
        text = LOST_MESSAGE.format(reason=f" ({reason})" if reason else "")
        return {"state": "lost", "message": text, "transport": transport}
    return {"state": "live", "transport": transport}


class LiveHub:
    def __init__(
        self,
        lab: Lab,
        *,
        interval: float = FLUSH_INTERVAL_S,
        poll_interval: float = POLL_INTERVAL_S,
        connection: Callable[[], dict[str, Any]] | None = None,
    ) -> None:
        self.lab = lab
        self.interval = interval
        self.poll_interval = poll_interval
        self._connection_probe = connection or (lambda: connection_state(lab))
        self.connection: dict[str, Any] = {"state": "live", "transport": ""}
        self.rounds = 0  # flush rounds started so far (diagnostics and tests)
        self.cards: dict[str, Any] = {}  # task id → its TaskCard (one model per task)
        self.views: dict[str, Any] = {}  # "Inbox" / "Monitor" → the Lab's shared instance
        self._lock = threading.Lock()
        self._by_task: dict[str, list[Sink]] = {}
        self._everything: list[Sink] = []
        self._buffers: dict[int, list[dict[str, Any]]] = {}
        self._dirty: dict[int, Sink] = {}
        self._poked: set[int] = set()
        self._recent: deque[dict[str, Any]] = deque(maxlen=BACKLOG_EVENTS)
        self._launched: set[str] = set()  # tasks submitted while this hub was listening
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._unsubscribe: Callable[[], None] = lab.subscribe(self._on_event)
        self._thread = threading.Thread(target=self._run, name="stagent-widgets", daemon=True)
        self._thread.start()

    # ---- registration (any thread) -----------------------------------------------------

    def attach(self, sink: Sink) -> None:
        if self.connection.get("state") != "live":
            sink.live_connection(self.connection)
        with self._lock:
            self._buffers.setdefault(id(sink), [])
            if sink.live_task_id is None:
                if sink not in self._everything:
                    self._everything.append(sink)
            else:
                group = self._by_task.setdefault(sink.live_task_id, [])
                if sink not in group:
                    group.append(sink)
        self._wake.set()

    def detach(self, sink: Sink) -> None:
        with self._lock:
            if sink in self._everything:
                self._everything.remove(sink)
            group = self._by_task.get(sink.live_task_id or "", [])
            if sink in group:
                group.remove(sink)
            self._buffers.pop(id(sink), None)
            self._dirty.pop(id(sink), None)
            self._poked.discard(id(sink))

    def poke(self, sink: Sink) -> None:
        """Ask for a refresh of ``sink`` in the next round (e.g. after a button's action)."""
        with self._lock:
            if id(sink) in self._buffers:
                self._dirty[id(sink)] = sink
                self._poked.add(id(sink))
        self._wake.set()

    # ---- the engine side ---------------------------------------------------------------

    def _on_event(self, event: dict[str, Any]) -> None:
        """Engine thread: buffer and wake; nothing slow happens here."""
        group = self._by_task.get(event.get("task_id") or "")
        with self._lock:
            if event.get("seq") is not None:
                self._recent.append(event)
            if not group and not self._everything:
                return
            for sink in (*(group or ()), *self._everything):
                key = id(sink)
                buf = self._buffers.get(key)
                if buf is not None:
                    buf.append(event)
                    self._dirty[key] = sink
        self._wake.set()

    def backlog(self, task_id: str) -> list[dict[str, Any]] | None:
        """Every logged event of ``task_id`` so far, if the recent window still holds its
        first one (then it holds all of them); None when the store has to be read instead."""
        with self._lock:
            events = [e for e in self._recent if e.get("task_id") == task_id]
        if events and events[0].get("seq") == 1:
            return events
        # A task submitted after this hub started listening has every event in the window
        # (possibly none yet): its backlog is complete.
        if task_id in self._launched:
            return events
        return None

    def launched(self, task_id: str) -> None:
        """``task_id`` was submitted after this hub subscribed (so no event was missed)."""
        with self._lock:
            self._launched.add(task_id)

    # ---- the flushing thread -----------------------------------------------------------

    def check_connection(self) -> dict[str, Any]:
        """Ask the probe now; tell every widget when the answer changed. Returns it."""
        try:
            state = dict(self._connection_probe())
        except Exception as exc:  # the probe itself failing means no answer
            state = {"state": "lost", "message": LOST_MESSAGE.format(reason=f" ({exc})")}
        if state != self.connection:
            self.connection = state
            with self._lock:
                sinks = [*self._everything, *(s for g in self._by_task.values() for s in g)]
            for sink in sinks:
                try:
                    sink.live_connection(state)
                except Exception:  # one broken view must not stop the others
                    log.exception("stagent widget connection update failed")
        return state

    def _run(self) -> None:
        last_round = 0.0
        last_poll = time.monotonic()
        last_check = 0.0
        while not self._stop.is_set():
            with self._lock:
                pollers = any(s.live_poll for s in self._everything)
            # Wake at least once a second to check the connection (and notice a closed Lab).
            timeout = 1.0
            if pollers:
                timeout = min(timeout, last_poll + self.poll_interval - time.monotonic())
            woken = self._wake.wait(max(0.0, timeout))
            if self._stop.is_set():
                break
            if time.monotonic() - last_check >= CONNECTION_CHECK_S:
                last_check = time.monotonic()
                if self.check_connection().get("state") == "closed":
                    break  # the widgets now say so; nothing more will arrive
            if not woken and not (pollers and time.monotonic() - last_poll >= self.poll_interval):
                continue
            gap = last_round + self.interval - time.monotonic()
            if gap > 0 and self._stop.wait(gap):
                break
            self._wake.clear()
            now = time.monotonic()
            due = now - last_poll >= self.poll_interval
            with self._lock:
                dirty, self._dirty = self._dirty, {}
                poked, self._poked = self._poked, set()
                batches = {}
                for key in dirty:
                    batches[key] = self._buffers.get(key, [])
                    if key in self._buffers:
                        self._buffers[key] = []
                polled = [s for s in self._everything if s.live_poll] if due else []
            if due:
                last_poll = now
            work: dict[int, Sink] = dict(dirty)
            for sink in polled:
                work.setdefault(id(sink), sink)
            if work:
                self.rounds += 1  # counted first: an update seen implies its round is counted
            for key, sink in work.items():
                try:
                    sink.live_deliver(
                        batches.get(key, []), poked=key in poked, polled=sink in polled
                    )
                except Exception:  # one broken view must not stop the others
                    log.exception("stagent widget update failed")
            last_round = time.monotonic()
        self._unsubscribe()

    def read(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run a workspace read for a widget (on the hub thread). Reads through the contract
        flush the writer first, so they see every row the events so far refer to."""
        return fn(*args)

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not threading.current_thread():
            self._thread.join(2.0)
        self._unsubscribe()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive() and not self._stop.is_set()


_hubs: weakref.WeakKeyDictionary[Any, LiveHub] = weakref.WeakKeyDictionary()
_hubs_lock = threading.Lock()


def hub_for(lab: Lab) -> LiveHub:
    """The Lab's hub, started on first use."""
    with _hubs_lock:
        hub = _hubs.get(lab)
        if hub is None or not hub.alive:
            hub = LiveHub(lab)
            _hubs[lab] = hub
        return hub


@atexit.register
def _stop_all() -> None:
    with _hubs_lock:
        hubs = list(_hubs.values())
        _hubs.clear()
    for hub in hubs:
        hub.stop()


def stop_hub(lab: Lab) -> None:
    with _hubs_lock:
        hub = _hubs.pop(lab, None)
    if hub is not None:
        hub.stop()
