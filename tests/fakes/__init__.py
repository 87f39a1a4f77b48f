"""Loopback servers that speak the providers' real wire formats, with fault injection.

Each fake is a context manager that serves on 127.0.0.1 (ephemeral port) in a background
thread, records every request, and plays a script of replies and faults per endpoint.
"""

from tests.fakes.anthropic_server import AnthropicFake
from tests.fakes.base import (
    FakeServer,
    RecordedRequest,
    cut_after,
    http_error,
    malformed,
    stall,
    stream_error,
)
from tests.fakes.ollama_server import OllamaFake
from tests.fakes.openai_server import OpenAIFake

__all__ = [
    "AnthropicFake",
    "FakeServer",
    "OllamaFake",
    "OpenAIFake",
    "RecordedRequest",
    "cut_after",
    "http_error",
    "malformed",
    "stall",
    "stream_error",
]
