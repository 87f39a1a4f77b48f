"""A chatty agent cannot flood the front end: 10,000 events → a bounded number of updates."""

from __future__ import annotations

import time

from stagent_lab.notebook.live import FLUSH_INTERVAL_S, hub_for
from stagent_lab.notebook.widgets import Monitor, TaskCard
from stagent_lab.runtimes.base import AssistantText
from tests.conftest import engine_of

N = 10_000


def hold(prompt, profile):
    """Wait for the operator's answer, then finish: keeps the task alive during a burst."""
    yield {"ask": "go on?"}
    yield {"say": "bye"}


def count_updates(widget):
    """Record every comm message the widget sends from now on (the front end's inbound load)."""
    sent = []
    original = widget.comm.publish_msg

    def publish(msg_type, data=None, *args, **kwargs):
        if msg_type == "comm_msg" and (data or {}).get("method") == "update":
            sent.append(dict(data["state"]))
        return original(msg_type, data, *args, **kwargs)

    widget.comm.publish_msg = publish
    return sent


def front_end_saw(sent, text):
    """True once the newest log the front end was sent ends with ``text`` (give or take the
    assistant text a store read flushes after it)."""
    for state in reversed(sent):
        newest = state.get("log_tail") or state.get("log")
        if newest:
            return any(e["text"] == text for e in newest[-2:])
    return False


def entries(widget):
    return widget.log + widget.log_tail


def wait_until(predicate, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


def test_burst_of_10000_events_is_batched_into_few_updates(lab):
    handle = lab.submit("hold on", profile="tester", script=hold)
    lab.wait_inbox(timeout=20, task=handle.id)
    card = TaskCard(handle.id, lab)
    monitor = Monitor(lab)
    hub = hub_for(lab)
    assert wait_until(lambda: hub.rounds >= 1)  # the widgets' first round has run
    card_sent, monitor_sent = count_updates(card), count_updates(monitor)
    rounds_before = hub.rounds
    engine = engine_of(lab)
    st = engine.call(engine.task, handle.id)

    def burst():  # runs on the engine thread, like a runtime's event stream
        for i in range(N):
            engine.log(st, "notice", message=f"tick {i}")
            engine.runner._handle_event(st, AssistantText(f"{i % 10}", delta=True))

    started = time.monotonic()
    engine.call(burst, timeout=120)
    assert wait_until(lambda: front_end_saw(card_sent, f"tick {N - 1}"))
    assert wait_until(lambda: front_end_saw(monitor_sent, f"tick {N - 1}"))
    elapsed = time.monotonic() - started
    rounds = hub.rounds - rounds_before

    # Each widget sends at most one update per hub round, and rounds are ≥ 100 ms apart.
    assert 1 <= len(card_sent) <= rounds
    assert 1 <= len(monitor_sent) <= rounds
    assert rounds <= elapsed / FLUSH_INTERVAL_S + 2
    print(
        f"\n{N} log events + {N} deltas in {elapsed:.2f}s: card {len(card_sent)} updates, "
        f"monitor {len(monitor_sent)} updates, {rounds} hub rounds"
    )

    # The final state holds the newest events, capped, with an honest count of the rest.
    shown = entries(card)
    texts = [e["text"] for e in shown if e["event"] == "notice"]
    assert texts == [f"tick {i}" for i in range(N - len(texts), N)]
    assert 400 <= len(shown) < 500
    total_notices = N  # plus the few lifecycle entries before the burst
    assert card.dropped + len(shown) >= total_notices
    assert len(card.log_tail) < 100  # the part re-sent on every update stays small
    # Streamed text is capped; it is either still streaming or flushed into an entry.
    assert len(card.streaming) <= 4000
    assert card.streaming.endswith("9") or shown[-1]["text"].endswith("9")
    seqs = [e["seq"] for e in shown]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)

    lab.decide(lab.wait_inbox(timeout=5, task=handle.id).iloc[0]["id"], "answer", "yes")
    assert handle.wait(timeout=20).status == "completed", handle.failure_reason
    assert wait_until(lambda: card.info["status"] == "completed")
    card.close()
    monitor.close()


def test_quiet_task_sends_only_small_tail_updates(lab):
    handle = lab.submit("hold on", profile="tester", script=hold)
    lab.wait_inbox(timeout=20, task=handle.id)
    card = TaskCard(handle.id, lab)
    assert wait_until(lambda: card.pending != [])
    sent = count_updates(card)
    engine = engine_of(lab)
    st = engine.call(engine.task, handle.id)
    for i in range(5):
        engine.call(lambda i=i: engine.log(st, "notice", message=f"slow {i}"))
        assert wait_until(lambda i=i: len(sent) == i + 1)
        assert card.log_tail[-1]["text"] == f"slow {i}"
    # One event per round: each update carries the short tail, never the settled head.
    assert all("log" not in state and "log_tail" in state for state in sent)
    card.close()
