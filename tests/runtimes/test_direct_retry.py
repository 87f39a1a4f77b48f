"""The shared retry/stall helpers of the direct runtimes, and their cheap imports."""

from __future__ import annotations

import asyncio
import random
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from types import SimpleNamespace

import httpx
import pytest

from stagent_lab.errors import RuntimeFailure
from stagent_lab.runtimes import _retry
from stagent_lab.runtimes.base import Notice


def test_backoff_doubles_up_to_the_cap_without_jitter():
    policy = _retry.RetryPolicy(base_s=1.0, max_backoff_s=4.0, jitter=0.0)
    assert [policy.delay(n) for n in (1, 2, 3, 4)] == [1.0, 2.0, 4.0, 4.0]


def test_jitter_stays_within_its_band():
    policy = _retry.RetryPolicy(base_s=2.0, max_backoff_s=60.0, rng=random.Random(7))
    delays = [policy.delay(3) for _ in range(200)]
    assert all(4.0 <= d <= 8.0 for d in delays)
    assert len(set(delays)) > 100  # it really varies


def test_retry_after_wins_and_is_capped():
    policy = _retry.RetryPolicy(base_s=5.0, retry_after_cap_s=10.0)
    assert policy.delay(1, retry_after_s=0.25) == 0.25
    assert policy.delay(1, retry_after_s=3600) == 10.0
    assert policy.delay(1, retry_after_s=-3) == 0.0


def test_attempts_are_retries_plus_one():
    assert _retry.RetryPolicy(max_retries=3).max_attempts == 4
    assert _retry.RetryPolicy(max_retries=0).max_attempts == 1


def test_parse_retry_after_forms():
    assert _retry.parse_retry_after({"retry-after": "2"}) == 2.0
    assert _retry.parse_retry_after({"retry-after": "0.5"}) == 0.5
    assert _retry.parse_retry_after({"retry-after-ms": "250", "retry-after": "9"}) == 0.25
    assert _retry.parse_retry_after({"retry-after": "soon"}) is None
    assert _retry.parse_retry_after({}) is None
    assert _retry.parse_retry_after(None) is None
    later = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    assert 20 < _retry.parse_retry_after({"retry-after": later}) <= 30


def test_redact_hides_keys_but_not_short_noise():
    text = "bad key sk-ant-abc123 (sk-ant-abc123)"
    assert _retry.redact(text, ["sk-ant-abc123", None, "a"]) == "bad key [redacted] ([redacted])"


def test_status_fault_classification():
    assert _retry.status_fault(401, "no").retryable is False
    assert _retry.status_fault(403, "no").reason == "http 403"
    assert _retry.status_fault(429, "slow", 1.5).retry_after_s == 1.5
    assert all(_retry.status_fault(s, "x").retryable for s in (500, 502, 503, 504, 529))
    assert _retry.status_fault(400, "bad").retryable is False


def test_transport_errors_are_recognised_from_either_httpx():
    import httpx2

    assert _retry.is_transport_error(httpx.RemoteProtocolError("cut"))
    assert _retry.is_transport_error(httpx2.ReadError("reset"))
    assert not _retry.is_transport_error(ValueError("nope"))


def _collect(agen) -> list:
    async def go():
        return [item async for item in agen]

    return asyncio.run(go())


def _classify(exc: BaseException) -> _retry.Fault | None:
    if isinstance(exc, ConnectionError):
        return _retry.Fault(True, "flaky", f"flaky link {exc}")
    if isinstance(exc, PermissionError):
        return _retry.Fault(False, "denied", f"denied with key {exc}")
    return None


def test_call_with_retries_yields_notices_then_the_result():
    failures = [ConnectionError("1"), ConnectionError("2")]

    async def attempt():
        yield "partial"
        if failures:
            raise failures.pop(0)
        yield _retry.CallDone("answer")

    items = _collect(
        _retry.call_with_retries(
            attempt,
            classify=_classify,
            policy=_retry.RetryPolicy(base_s=0.001, jitter=0.0),
            provider="acme",
        )
    )

    assert items[-1] == _retry.CallDone("answer")
    notices = [i for i in items if isinstance(i, Notice)]
    assert [n.data["attempt"] for n in notices] == [2, 3]
    assert [n.data["reason"] for n in notices] == ["flaky", "flaky"]
    assert items.count("partial") == 3


def test_fatal_fault_raises_runtime_failure_with_redaction():
    async def attempt():
        raise PermissionError("sk-secret-999")
        yield

    with pytest.raises(RuntimeFailure) as info:
        _collect(
            _retry.call_with_retries(
                attempt,
                classify=_classify,
                policy=_retry.RetryPolicy(),
                provider="acme",
                secrets=["sk-secret-999"],
            )
        )
    assert str(info.value) == "acme: denied with key [redacted]"
    assert info.value.retryable is False


def test_unclassified_errors_propagate_unchanged():
    async def attempt():
        raise KeyError("our bug")
        yield

    with pytest.raises(KeyError):
        _collect(
            _retry.call_with_retries(
                attempt, classify=_classify, policy=_retry.RetryPolicy(), provider="acme"
            )
        )


def test_iter_with_stall_raises_on_a_long_gap():
    async def slow():
        yield 1
        await asyncio.sleep(10)
        yield 2

    async def go():
        seen = []
        with pytest.raises(_retry.StreamStalled) as info:
            async for item in _retry.iter_with_stall(slow(), 0.05):
                seen.append(item)
        return seen, info.value

    seen, exc = asyncio.run(go())
    assert seen == [1]
    assert exc.seconds == 0.05
    assert _retry.generic_fault(exc).retryable is False


def test_iter_with_stall_keeps_foreign_timeouts():
    async def broken():
        raise TimeoutError("from the transport")
        yield

    async def go():
        return [i async for i in _retry.iter_with_stall(broken(), 5)]

    with pytest.raises(TimeoutError, match="from the transport"):
        asyncio.run(go())


def test_capability_overrides_from_objects_and_dicts():
    obj = SimpleNamespace(
        capability_overrides={
            "anthropic-direct": SimpleNamespace(
                model="claude-opus-4-5",
                extended_thinking=SimpleNamespace(enabled=True, budget_tokens=5000),
                reasoning_effort=None,
            )
        }
    )
    plain = {"profile": None}
    as_dict = SimpleNamespace(
        profile=SimpleNamespace(capability_overrides={"openai-direct": {"reasoning_effort": "low"}})
    )

    got = _retry.capability_overrides(SimpleNamespace(profile=obj), "anthropic-direct")
    assert got == _retry.Overrides("claude-opus-4-5", True, 5000, None)
    assert _retry.capability_overrides(SimpleNamespace(**plain), "x") == _retry.Overrides()
    assert _retry.capability_overrides(as_dict, "openai-direct").reasoning_effort == "low"


def test_check_transcript():
    assert _retry.check_transcript(None, "f/1") is None
    assert _retry.check_transcript({"format": "f/1", "messages": []}, "f/1") is None
    msgs = [{"role": "user", "content": "hi"}]
    assert _retry.check_transcript({"format": "f/1", "messages": msgs}, "f/1") == msgs
    with pytest.raises(RuntimeFailure, match="'list'"):
        _retry.check_transcript(msgs, "f/1")


def test_option_reader_prefers_task_options():
    read = _retry.option_reader({"a": 1, "b": None}, {"a": 2, "b": 3})
    assert (read("a"), read("b"), read("c", 9)) == (1, 3, 9)


def test_runtime_modules_do_not_import_vendor_sdks():
    code = (
        "import sys\n"
        "import stagent_lab.runtimes.anthropic_direct, stagent_lab.runtimes.openai_direct\n"
        "import stagent_lab.runtimes.ollama\n"
        "print(sorted(m for m in ('anthropic', 'openai') if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "[]"


def test_capability_overrides_read_the_real_profile_model():
    model = pytest.importorskip("stagent_lab.profiles.model")
    override = model.CapabilityOverride(
        model="claude-opus-4-5",
        extended_thinking=model.ExtendedThinking(budget_tokens=2048),
        reasoning_effort="high",
    )
    ctx = SimpleNamespace(profile=SimpleNamespace(capability_overrides={"x": override}))

    assert _retry.capability_overrides(ctx, "x") == _retry.Overrides(
        "claude-opus-4-5", True, 2048, "high"
    )
