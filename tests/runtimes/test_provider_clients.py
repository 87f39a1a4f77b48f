"""The SDK clients a direct runtime makes per task: one SSL context per process, not per task
(loading the CA bundle cost the engine loop 50-55 ms on every task)."""

from __future__ import annotations

import asyncio
import sys

import pytest

from stagent_lab.runtimes import providers


@pytest.mark.parametrize("cls", [providers.AnthropicProvider, providers.OpenAIProvider])
def test_each_task_gets_its_own_client_on_one_shared_ssl_context(cls, monkeypatch):
    sdk = pytest.importorskip(cls.module)
    http = sys.modules[sdk.DefaultAsyncHttpxClient.__mro__[1].__module__.split(".")[0]]
    made: list[int] = []
    real = http.create_ssl_context

    def counting(*args, **kwargs):
        made.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(http, "create_ssl_context", counting)
    monkeypatch.setattr(providers, "_SSL_CONTEXTS", {})
    options = {"api_key": "sk-test-not-real", "base_url": "http://127.0.0.1:9"}
    provider = cls("direct", lambda name, default=None: options.get(name, default))

    async def two_tasks():
        out = []
        for _ in range(2):
            conn = await provider.connect(stall_s=5.0)
            out.append(conn.client)
            await conn.close()
        return out

    first, second = asyncio.run(two_tasks())
    assert first is not second  # a client per task, closed with it
    assert made == [1]  # one SSL context for both
    assert isinstance(first._client, sdk.DefaultAsyncHttpxClient)  # the SDK's defaults kept
