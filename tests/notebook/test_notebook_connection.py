"""Widgets know when their workspace stops answering, and say what to do.

The kernel side of "gone" (a restarted or dead kernel) is detected in the page and covered by
the browser test; here the hub's ``connection`` hook: a closed Lab, and a transport that says
it lost the service, reach every widget as its ``connection`` trait, and actions then answer
with a message instead of hanging.
"""

from __future__ import annotations

import threading
import time

from stagent_lab.notebook.live import LiveHub, connection_state
from stagent_lab.notebook.widgets import Inbox, Monitor, TaskCard


def wait_until(predicate, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


def click(widget, **content):
    req = f"r{time.monotonic_ns()}"
    t = threading.Thread(target=widget._on_front_msg, args=(widget, {**content, "req": req}, []))
    t.start()
    t.join(30)
    assert not t.is_alive(), "the action did not answer"
    assert wait_until(lambda: widget.last_action.get("req") == req), widget.last_action
    return widget.last_action


def test_connection_state_reads_the_lab_and_its_transport(lab):
    assert connection_state(lab) == {"state": "live", "transport": "in-process"}

    class Lost:
        transport = "service"
        closed = False
        connected = False
        connection_error = "connection refused"

    class Probe:
        workspace = Lost()
        closed = False

    lost = connection_state(Probe())
    assert lost["state"] == "lost" and "(connection refused)" in lost["message"]
    assert "%stagent command reconnects" in lost["message"]

    class Raising(Lost):
        def connected(self):
            raise OSError("socket gone")

    Probe.workspace = Raising()
    assert connection_state(Probe())["state"] == "lost"
    Probe.workspace.connected = lambda: True
    assert connection_state(Probe())["state"] == "live"


def test_closing_the_lab_greys_out_every_view_and_actions_say_so(lab):
    h = lab.run("done", profile="tester", script=[{"result": "ok"}], timeout=20)
    card, inbox, monitor = TaskCard(h.id, lab), Inbox(lab), Monitor(lab)
    assert card.connection == {"state": "live", "transport": "in-process"}
    lab.close()
    for widget in (card, inbox, monitor):
        assert wait_until(lambda w=widget: w.connection.get("state") == "closed"), widget
        assert "Lab is closed" in widget.connection["message"]
    answer = click(card, type="resume")
    assert answer["ok"] is False and "Lab is closed" in answer["message"]


def test_a_lost_service_reaches_the_views_and_they_recover(lab):
    state = {"value": {"state": "live", "transport": "service"}}
    hub = LiveHub(lab, connection=lambda: state["value"])
    try:

        class Sink:
            live_task_id = None
            live_poll = False
            seen: list = []

            def live_deliver(self, events, *, poked, polled):
                pass

            def live_connection(self, value):
                self.seen.append(value["state"])

        sink = Sink()
        hub.attach(sink)
        state["value"] = {"state": "lost", "message": "no answer", "transport": "service"}
        assert wait_until(lambda: sink.seen == ["lost"])
        state["value"] = {"state": "live", "transport": "service"}
        assert wait_until(lambda: sink.seen == ["lost", "live"])
        # A probe that raises counts as no answer, never as a crash of the hub thread.
        state["value"] = None
        assert wait_until(lambda: sink.seen[-1] == "lost") and hub.alive
    finally:
        hub.stop()


def test_a_view_built_after_the_loss_starts_greyed(lab):
    hub = LiveHub(lab, connection=lambda: {"state": "lost", "message": "gone"})
    try:
        assert wait_until(lambda: hub.connection["state"] == "lost")

        class Sink:
            live_task_id = None
            live_poll = False
            state = None

            def live_deliver(self, events, *, poked, polled):
                pass

            def live_connection(self, value):
                self.state = value["state"]

        sink = Sink()
        hub.attach(sink)
        assert sink.state == "lost"
    finally:
        hub.stop()
