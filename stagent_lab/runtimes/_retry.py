"""Retry, backoff and stall detection for the direct (HTTP) runtimes' model calls.

Why our own loop instead of the SDKs' retries: the SDKs retry silently, so a task log would
never show that a call was rate limited or cut. The direct runtimes therefore build their
clients with ``max_retries=0`` and run every model call through :func:`call_with_retries`,
which yields a ``Notice`` per retry (attempt, reason, delay) so the operator sees it.

Each runtime supplies a ``classify`` function that turns a vendor exception into a
:class:`Fault` (retryable or not, a short reason, the provider's message, any
``retry-after``); anything it does not recognise propagates unchanged (our own bugs and
``LimitExceeded`` are not network faults). Stalls are measured here, between stream events,
with ``asyncio.timeout`` in the consuming task, so they work the same for every transport; a
stall is never retried (the total time must stay bounded by the stall limit) and fails the run
with the shared "stream stalled" message of ``faults``.

The module also holds the few helpers the three runtimes share (option lookup, capability
overrides, key redaction), because they are part of the same "run one call safely" plumbing.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import math
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from stagent_lab.errors import RuntimeFailure
from stagent_lab.runtimes.base import Notice
from stagent_lab.runtimes.faults import AUTH_STATUSES, DEFAULT_STALL_TIMEOUT_S, stall_failure

T = TypeVar("T")

# HTTP statuses worth retrying: rate limit, and transient server-side failures
# (529 is Anthropic's "overloaded").
RETRY_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504, 529})

DEFAULT_MAX_RETRIES = 3  # four attempts in all
DEFAULT_REQUEST_TIMEOUT_S = 600.0
# Upper bounds on the retry options, so no setting can make a failing call retry for hours.
MAX_RETRIES_LIMIT = 10
MAX_DELAY_LIMIT_S = 300.0


@dataclass(frozen=True)
class Fault:
    """What went wrong with one model call, in provider-neutral terms."""

    retryable: bool
    reason: str  # short and stable: "http 429", "connection dropped", "stalled"
    message: str  # the provider's own words (redacted before use)
    retry_after_s: float | None = None
    status: int | None = None


class StreamStalled(Exception):
    """No stream event arrived within the stall timeout."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"stream stalled: no event for {seconds:g} s")
        self.seconds = seconds


class StreamIncomplete(Exception):
    """The stream ended cleanly but before its terminal event (a silent cut)."""


@dataclass
class CallDone(Generic[T]):
    """The last item an attempt yields: the call's accumulated result."""

    value: T


@dataclass
class RetryPolicy:
    """Bounded exponential backoff with jitter; a server's ``retry-after`` wins, capped."""

    max_retries: int = DEFAULT_MAX_RETRIES
    base_s: float = 0.5
    max_backoff_s: float = 20.0
    retry_after_cap_s: float = 60.0
    jitter: float = 0.5  # the delay is drawn from [(1 - jitter) * d, d]
    rng: random.Random = field(default_factory=random.Random, repr=False)

    @property
    def max_attempts(self) -> int:
        return max(0, self.max_retries) + 1

    def delay(self, attempt: int, retry_after_s: float | None = None) -> float:
        """Seconds to wait before attempt ``attempt + 1`` (``attempt`` counts from 1)."""
        if retry_after_s is not None:
            return min(max(retry_after_s, 0.0), self.retry_after_cap_s)
        backoff = min(self.max_backoff_s, self.base_s * 2 ** (attempt - 1))
        return backoff * (1.0 - self.jitter * self.rng.random())

    @classmethod
    def from_options(cls, opts: Callable[[str, Any], Any]) -> RetryPolicy:
        """The policy from the runtime's options; out-of-range values fail the run clearly."""
        return cls(
            max_retries=int(_bounded(opts, "max_retries", DEFAULT_MAX_RETRIES, MAX_RETRIES_LIMIT)),
            base_s=_bounded(opts, "retry_base_s", 0.5, MAX_DELAY_LIMIT_S),
            max_backoff_s=_bounded(opts, "retry_max_s", 20.0, MAX_DELAY_LIMIT_S),
            retry_after_cap_s=_bounded(opts, "retry_after_cap_s", 60.0, MAX_DELAY_LIMIT_S),
        )


def _bounded(opts: Callable[[str, Any], Any], name: str, default: float, upper: float) -> float:
    value = opts(name, default)
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or not 0 <= value <= upper
    ):
        raise RuntimeFailure(f"option {name} must be a number from 0 to {upper:g}, got {value!r}")
    return float(value)


def parse_retry_after(headers: Mapping[str, str] | None) -> float | None:
    """``retry-after-ms``, then ``retry-after`` as seconds or as an HTTP date."""
    if not headers:
        return None
    raw_ms = headers.get("retry-after-ms")
    if raw_ms:
        with contextlib.suppress(ValueError):
            return float(raw_ms) / 1000.0
    raw = headers.get("retry-after")
    if not raw:
        return None
    try:
        return float(raw)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def redact(text: str, secrets: Iterable[str | None]) -> str:
    """Replace every secret (API key) in ``text``; keys must never reach logs or errors."""
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "[redacted]")
    return text


async def first_within(awaitable: Awaitable[T], seconds: float) -> T:
    """Await ``awaitable`` but give up with StreamStalled after ``seconds``."""
    window = asyncio.timeout(seconds)
    try:
        async with window:
            return await awaitable
    except TimeoutError:
        if window.expired():
            raise StreamStalled(seconds) from None
        raise


async def iter_with_stall(items: AsyncIterator[T], seconds: float) -> AsyncIterator[T]:
    """Re-yield ``items``; raise StreamStalled when the gap between two exceeds ``seconds``."""
    iterator = aiter(items)
    while True:
        window = asyncio.timeout(seconds)
        try:
            async with window:
                item = await anext(iterator)
        except StopAsyncIteration:
            return
        except TimeoutError:
            if window.expired():
                raise StreamStalled(seconds) from None
            raise
        yield item


def is_transport_error(exc: BaseException) -> bool:
    """A dropped or refused connection from httpx or httpx2 (the SDKs use either).

    Matched by class name so this module imports neither library.
    """
    return any(
        cls.__name__ == "TransportError" and cls.__module__.split(".")[0] in ("httpx", "httpx2")
        for cls in type(exc).__mro__
    )


def is_read_timeout(exc: BaseException) -> bool:
    """The HTTP client's own read timeout (set to the stall limit) or the SDK's wrapper of it.

    Matched by class name so this module imports no HTTP library or SDK.
    """
    for cls in type(exc).__mro__:
        root = cls.__module__.split(".")[0]
        if cls.__name__ == "ReadTimeout" and root in ("httpx", "httpx2"):
            return True
        if cls.__name__ == "APITimeoutError" and root in ("anthropic", "openai"):
            return True
    return False


def generic_fault(exc: BaseException) -> Fault | None:
    """Faults every runtime classifies the same way (our own stream checks, bad JSON)."""
    if isinstance(exc, StreamStalled):
        return Fault(False, "stalled", f"{exc}; raise stall_timeout_s if the model needs longer")
    if isinstance(exc, StreamIncomplete):
        return Fault(True, "stream ended early", str(exc) or "stream ended before completion")
    if is_transport_error(exc):
        return Fault(True, "connection dropped", f"connection dropped: {exc}")
    if isinstance(exc, ValueError):  # json.JSONDecodeError and the SDKs' partial-JSON errors
        return Fault(False, "malformed frame", f"malformed stream frame: {exc}")
    return None


def status_fault(status: int, message: str, retry_after_s: float | None = None) -> Fault:
    """Classify an HTTP error status: auth fails at once, transient ones are retried."""
    if status in AUTH_STATUSES:
        return Fault(False, f"http {status}", f"authentication failed (HTTP {status}): {message}")
    if status in RETRY_STATUSES:
        return Fault(True, f"http {status}", f"HTTP {status}: {message}", retry_after_s, status)
    return Fault(False, f"http {status}", f"HTTP {status}: {message}", None, status)


async def call_with_retries(
    attempt: Callable[[], AsyncIterator[Any]],
    *,
    classify: Callable[[BaseException], Fault | None],
    policy: RetryPolicy,
    provider: str,
    secrets: Iterable[str | None] = (),
) -> AsyncIterator[Any]:
    """Run ``attempt()`` (an async generator of events ending in CallDone) until it succeeds.

    Events an attempt yields pass straight through, so streamed text reaches the log at once;
    text from an attempt that later fails stays yielded, and the Notice explains the restart.
    Non-retryable faults and exhausted attempts raise RuntimeFailure("<provider>: ..."); a
    stall (StreamStalled) is never retried and raises the shared "stream stalled" failure.
    """
    secrets = tuple(secrets)
    for n in range(1, policy.max_attempts + 1):
        fault: Fault | None = None
        try:
            async with contextlib.aclosing(attempt()) as events:
                async for item in events:
                    yield item
            return
        except StreamStalled as exc:
            raise stall_failure(provider, exc.seconds) from None
        except Exception as exc:
            fault = classify(exc)
            if fault is None:
                raise
        if not fault.retryable or n >= policy.max_attempts:
            message = f"{provider}: {fault.message}"
            if fault.retryable:
                message += f" (gave up after {n} attempts)"
            raise RuntimeFailure(redact(message, secrets), retryable=fault.retryable)
        delay = policy.delay(n, fault.retry_after_s)
        data: dict[str, Any] = {
            "attempt": n + 1,
            "max_attempts": policy.max_attempts,
            "reason": fault.reason,
            "delay_s": round(delay, 3),
        }
        if fault.status is not None:
            data["status"] = fault.status
        if fault.retry_after_s is not None:
            data["retry_after_s"] = fault.retry_after_s
        yield Notice(
            redact(
                f"retrying {provider} call in {delay:.2f} s "
                f"(attempt {n + 1} of {policy.max_attempts}): {fault.message}",
                secrets,
            ),
            data,
        )
        await asyncio.sleep(delay)


# ---- shared plumbing for the direct runtimes -----------------------------------------------


def option_reader(
    run_options: Mapping[str, Any] | None, runtime_options: Mapping[str, Any]
) -> Callable[[str, Any], Any]:
    """Look an option up in the task's options, then the runtime's, then use the default."""

    def read(name: str, default: Any = None) -> Any:
        for source in (run_options or {}, runtime_options):
            value = source.get(name)
            if value is not None:
                return value
        return default

    return read


def _field(obj: Any, name: str) -> Any:
    if obj is None:
        return None
    if isinstance(obj, Mapping):
        return obj.get(name)
    return getattr(obj, name, None)


@dataclass(frozen=True)
class Overrides:
    """The parts of a profile's capability override a direct runtime understands."""

    model: str | None = None
    thinking_enabled: bool = False
    thinking_budget: int | None = None
    reasoning_effort: str | None = None


def capability_overrides(ctx: Any, runtime_id: str) -> Overrides:
    """Read ``ctx.profile.capability_overrides[runtime_id]`` (pydantic object or dict)."""
    table = _field(getattr(ctx, "profile", None), "capability_overrides") or {}
    entry = _field(table, runtime_id)
    if entry is None:
        return Overrides()
    thinking = _field(entry, "extended_thinking")
    budget = _field(thinking, "budget_tokens")
    return Overrides(
        model=_field(entry, "model"),
        thinking_enabled=bool(_field(thinking, "enabled")),
        thinking_budget=int(budget) if budget is not None else None,
        reasoning_effort=_field(entry, "reasoning_effort"),
    )


def check_transcript(data: Any, fmt: str) -> list[dict[str, Any]] | None:
    """Messages from a saved transcript, or None when there is none.

    Transcripts are saved as ``{"format": fmt, "messages": [...]}`` so a runtime never feeds
    another provider's message shapes to its API (a task resumed on a different runtime).
    """
    if data is None:
        return None
    if isinstance(data, dict) and data.get("format") == fmt:
        messages = data.get("messages")
        if isinstance(messages, list) and messages:
            return [dict(m) for m in messages]
        return None
    found = data.get("format") if isinstance(data, dict) else type(data).__name__
    raise RuntimeFailure(
        f"cannot resume: the saved transcript has format {found!r}, this runtime needs {fmt!r}"
    )


__all__ = [
    "AUTH_STATUSES",
    "DEFAULT_STALL_TIMEOUT_S",
    "RETRY_STATUSES",
    "CallDone",
    "Fault",
    "Overrides",
    "RetryPolicy",
    "StreamIncomplete",
    "StreamStalled",
    "call_with_retries",
    "capability_overrides",
    "check_transcript",
    "first_within",
    "generic_fault",
    "is_read_timeout",
    "is_transport_error",
    "iter_with_stall",
    "option_reader",
    "parse_retry_after",
    "redact",
    "status_fault",
]
