"""Where a direct runtime's API is and how to authenticate: connection, never wire format.

This is the "providers" half of pydantic-ai's providers/models split. A Provider reads the key
(option, else the vendor's environment variable), the base URL, or an injected client, says
whether it can run here (``availability``), and opens a :class:`Connection` for one run. How
requests and stream events look is the wire's business (``anthropic_direct``, ``openai_direct``,
``ollama``); the loop that drives both is ``tool_loop``.

Every client is built so that a silent provider cannot hold a run: its own retries are off (our
retry loop logs each one) and its read timeout is the run's stall limit.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar
from urllib.parse import urlsplit

from stagent_lab.errors import RuntimeNotAvailableError
from stagent_lab.runtimes import _retry
from stagent_lab.runtimes.base import Availability

Option = Callable[[str, Any], Any]


@dataclass
class Connection:
    """One run's client. ``close`` is set when the run built the client (and must close it)."""

    client: Any
    sdk: Any = None  # the vendor module, for the wire's exception checks
    secrets: tuple[str | None, ...] = ()
    headers: dict[str, str] = field(default_factory=dict)  # sent with every request
    close: Callable[[], Awaitable[Any]] | None = None


class Provider:
    """Base class: ``availability()`` and ``connect()`` for one runtime's options."""

    name: ClassVar[str]

    def __init__(self, runtime_id: str, option: Option) -> None:
        self.runtime_id = runtime_id
        self.option = option

    def availability(self) -> Availability:
        raise NotImplementedError

    async def connect(self, stall_s: float) -> Connection:
        raise NotImplementedError


class SdkProvider(Provider):
    """A vendor SDK with an async client class, an API key and a base URL (anthropic, openai)."""

    module: ClassVar[str]
    client_class: ClassVar[str]
    key_env: ClassVar[str]
    base_url_env: ClassVar[str]

    @property
    def install_hint(self) -> str:
        return f"pip install 'stagent-lab[{self.module}]'"

    def sdk(self) -> Any:
        try:
            return importlib.import_module(self.module)
        except ImportError as exc:
            raise RuntimeNotAvailableError(
                f"{self.runtime_id} needs the {self.module} SDK: {self.install_hint}"
            ) from exc

    def api_key(self) -> str | None:
        return self.option("api_key", None) or os.environ.get(self.key_env) or None

    def availability(self) -> Availability:
        if importlib.util.find_spec(self.module) is None:
            return Availability(
                False, f"the {self.module} SDK is not installed: {self.install_hint}"
            )
        if self.option("client", None) is None and not self.api_key():
            return Availability(False, f"no API key: set {self.key_env} or pass api_key=")
        return Availability(True)

    async def connect(self, stall_s: float) -> Connection:
        sdk = self.sdk()
        key = self.api_key()
        request_s = float(self.option("request_timeout_s", _retry.DEFAULT_REQUEST_TIMEOUT_S))
        timeout = sdk.Timeout(request_s, read=stall_s)
        injected = self.option("client", None)
        if injected is not None:
            if not isinstance(injected, getattr(sdk, self.client_class)):
                raise RuntimeNotAvailableError(
                    f"{self.runtime_id} needs an {self.client_class} client"
                )
            client = injected.with_options(max_retries=0, timeout=timeout)
            return Connection(client, sdk, (key, getattr(client, "api_key", None)))
        if not key:
            raise RuntimeNotAvailableError(
                f"{self.runtime_id} has no API key: set {self.key_env} or pass api_key="
            )
        extra: dict[str, Any] = {}
        http_client = _http_client(sdk)
        if http_client is not None:
            extra["http_client"] = http_client
        client = getattr(sdk, self.client_class)(
            api_key=key,
            base_url=self.option("base_url", None) or os.environ.get(self.base_url_env) or None,
            max_retries=0,
            timeout=timeout,
            **extra,
        )
        return Connection(client, sdk, (key,), close=client.close)


_SSL_CONTEXTS: dict[str, Any] = {}


def _http_client(sdk: Any) -> Any | None:
    """The SDK's own default HTTP client, built on an SSL context made once per process.

    Each task gets its own SDK client (closed when the run ends), and building one builds a
    new SSL context: loading the CA bundle took 50-55 ms of the engine loop per task here, on
    every task, even for a plain-HTTP base URL. The context is made the way the SDK's HTTP
    library makes its default one (``create_ssl_context()``: the CA bundle, and the
    ``SSL_CERT_FILE`` / ``SSL_CERT_DIR`` variables as set when the first task ran), and only
    read afterwards, which is safe to share. None (the SDK's own default) when the SDK does
    not expose the pieces.
    """
    factory = getattr(sdk, "DefaultAsyncHttpxClient", None)
    if factory is None:
        return None
    http = sys.modules.get(factory.__mro__[1].__module__.split(".")[0])
    create = getattr(http, "create_ssl_context", None)
    if create is None:
        return None
    key = http.__name__
    ctx = _SSL_CONTEXTS.get(key)
    if ctx is None:
        ctx = _SSL_CONTEXTS[key] = create()
    return factory(verify=ctx)


class AnthropicProvider(SdkProvider):
    name = "anthropic"
    module = "anthropic"
    client_class = "AsyncAnthropic"
    key_env = "ANTHROPIC_API_KEY"
    base_url_env = "ANTHROPIC_BASE_URL"


class OpenAIProvider(SdkProvider):
    name = "openai"
    module = "openai"
    client_class = "AsyncOpenAI"
    key_env = "OPENAI_API_KEY"
    base_url_env = "OPENAI_BASE_URL"


# ---- Ollama: plain httpx, a host instead of a base URL ------------------------------------

OLLAMA_DEFAULT_HOST = "http://127.0.0.1:11434"
OLLAMA_HEALTH_TIMEOUT_S = 1.0


def normalize_host(value: str | None) -> str:
    """``OLLAMA_HOST`` → a base URL: add http:// and :11434 when missing; 0.0.0.0 → loopback."""
    if not value:
        return OLLAMA_DEFAULT_HOST
    raw = value.strip().rstrip("/")
    if "://" not in raw:
        raw = "http://" + raw
    parts = urlsplit(raw)
    host = parts.hostname or "127.0.0.1"
    if host in ("0.0.0.0", "::"):  # a bind-all address is not one a client can dial
        host = "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    port = parts.port or (443 if parts.scheme == "https" else 11434)
    return f"{parts.scheme}://{host}:{port}{parts.path}"


class OllamaProvider(Provider):
    """``base_url`` (else ``OLLAMA_HOST``) and an optional bearer key (``OLLAMA_API_KEY``) for
    hosted endpoints; usable when the server answers ``GET /api/version`` within a second."""

    name = "ollama"

    def host(self) -> str:
        return normalize_host(self.option("base_url", None) or os.environ.get("OLLAMA_HOST"))

    def api_key(self) -> str | None:
        return self.option("api_key", None) or os.environ.get("OLLAMA_API_KEY") or None

    def headers(self) -> dict[str, str]:
        key = self.api_key()
        return {"Authorization": f"Bearer {key}"} if key else {}

    def availability(self) -> Availability:
        import httpx

        host = self.host()
        try:
            response = httpx.get(
                host + "/api/version", headers=self.headers(), timeout=OLLAMA_HEALTH_TIMEOUT_S
            )
        except httpx.HTTPError as exc:
            return Availability(False, f"no Ollama server at {host} ({type(exc).__name__})")
        if response.status_code != 200:
            return Availability(False, f"Ollama at {host} answered HTTP {response.status_code}")
        try:
            version = response.json().get("version", "?")
        except ValueError:
            return Availability(False, f"{host} does not look like an Ollama server")
        return Availability(True, f"Ollama {version} at {host}")

    async def connect(self, stall_s: float) -> Connection:
        import httpx  # a core dependency, imported late to keep this module cheap

        secrets = (self.api_key(),)
        injected = self.option("client", None)
        if injected is not None:  # an httpx.AsyncClient whose base_url is the Ollama host
            return Connection(injected, secrets=secrets, headers=self.headers())
        request_s = float(self.option("request_timeout_s", _retry.DEFAULT_REQUEST_TIMEOUT_S))
        client = httpx.AsyncClient(
            base_url=self.host(), timeout=httpx.Timeout(request_s, read=stall_s)
        )
        return Connection(client, secrets=secrets, headers=self.headers(), close=client.aclose)


__all__ = [
    "AnthropicProvider",
    "Connection",
    "OllamaProvider",
    "OpenAIProvider",
    "Provider",
    "SdkProvider",
    "normalize_host",
]
