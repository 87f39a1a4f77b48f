"""How requests, answers, errors and events travel between a client and the workspace service.

* A request is JSON: ``{"kind": ..., **fields}`` (validated again on arrival).
* An answer is JSON (``{"result": ...}``, typed by the request's ``result``), or an Arrow IPC
  stream (``application/vnd.apache.arrow.stream``) for tabular answers.
* An error is JSON ``{"error": {"type", "message", "attrs"}}``; the client raises the same
  exception class (from ``stagent_lab.errors`` or the builtins below) with the same message.
* Events are JSON arrays of event dicts, sent over a WebSocket as they happen.
"""

from __future__ import annotations

import functools
import io
import json
from collections.abc import Iterable, Iterator
from typing import Any

from stagent_lab import errors as errors_module
from stagent_lab.api.requests import ArrowTable, Request

ARROW = "application/vnd.apache.arrow.stream"
BUILTIN_ERRORS: dict[str, type[BaseException]] = {
    "KeyError": KeyError,
    "ValueError": ValueError,
    "TypeError": TypeError,
    "FileNotFoundError": FileNotFoundError,
    "PermissionError": PermissionError,
    "TimeoutError": TimeoutError,
}
ERROR_STATUS = {
    "InvalidInput": 400,
    "SettingError": 400,
    "ValueError": 400,
    "TypeError": 400,
    "KeyError": 404,
    "FileNotFoundError": 404,
    "ProfileNotFoundError": 404,
    "TimeoutError": 504,
}


def encode_request(request: Request) -> bytes:
    data = request.model_dump(mode="json")
    data["kind"] = request.kind
    return json.dumps(data).encode()


@functools.cache
def _adapter(result_type: Any) -> Any:
    from pydantic import TypeAdapter

    return TypeAdapter(result_type)


def encode_result(request: Request, result: Any) -> tuple[bytes | memoryview, str]:
    """(body, media type) for a request's result."""
    rtype = type(request).result
    if rtype is ArrowTable:
        import pyarrow as pa

        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, result.schema) as writer:
            writer.write_table(result)
        # a view of Arrow's buffer, not a copy (tens of MB for a large answer)
        return memoryview(sink.getvalue()), ARROW
    if rtype is None:
        return b'{"result": null}', "application/json"
    payload = _adapter(rtype).dump_json(result, fallback=str).decode()
    return f'{{"result": {payload}}}'.encode(), "application/json"


def encode_batches(schema: Any, batches: Iterable[Any]) -> Iterator[bytes]:
    """An Arrow IPC stream written as it goes: the schema with the first batch, then one chunk
    per batch, then the end-of-stream marker (what ``decode_result`` reads back whole)."""
    import pyarrow as pa

    sink = _Chunks()
    with pa.ipc.new_stream(pa.PythonFile(sink, mode="w"), schema) as writer:
        for batch in batches:
            writer.write_batch(batch)
            yield sink.take()
    yield sink.take()


class _Chunks:
    """A write-only file that hands over what was written so far."""

    closed = False

    def __init__(self) -> None:
        self._parts: list[bytes] = []

    def write(self, data: Any) -> int:
        self._parts.append(bytes(data))
        return len(data)

    def flush(self) -> None:
        pass

    def take(self) -> bytes:
        out = b"".join(self._parts)
        self._parts.clear()
        return out


def read_stream(chunks: Iterable[bytes]) -> Any:
    """An Arrow IPC stream read while its chunks arrive (an HTTP body), as a pyarrow Table.
    An error raised while a chunk is read comes out unchanged."""
    import pyarrow as pa

    source = _ChunkFile(chunks)
    table = pa.ipc.open_stream(io.BufferedReader(source, 1 << 20)).read_all()
    for _ in source.rest():  # to the body's end, so its connection can serve the next call
        pass
    return table


class _ChunkFile(io.RawIOBase):
    """A read-only file over an iterable of byte chunks."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks = iter(chunks)
        self._view = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self._view:
            chunk = next(self._chunks, None)
            if chunk is None:
                return 0
            self._view = memoryview(chunk)
        n = min(len(buffer), len(self._view))
        buffer[:n] = self._view[:n]
        self._view = self._view[n:]
        return n

    def rest(self) -> Iterator[bytes]:
        return self._chunks


def decode_result(request: Request, body: bytes, media_type: str) -> Any:
    rtype = type(request).result
    if media_type.startswith(ARROW):
        import pyarrow as pa

        return pa.ipc.open_stream(body).read_all()
    data = json.loads(body)["result"]
    if rtype is None or data is None:
        return data
    return _adapter(rtype).validate_python(data)


def encode_error(exc: BaseException) -> tuple[bytes, int]:
    name = type(exc).__name__
    message = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
    attrs = {
        k: v
        for k, v in vars(exc).items()
        if not k.startswith("_") and isinstance(v, str | int | float | bool | list | type(None))
    }
    status = ERROR_STATUS.get(name, 409 if isinstance(exc, errors_module.StagentError) else 500)
    body = json.dumps({"error": {"type": name, "message": str(message), "attrs": attrs}})
    return body.encode(), status


def decode_error(body: bytes, status: int) -> BaseException:
    """The exception an error answer stands for (the same class when we know it)."""
    try:
        err = json.loads(body)["error"]
        name, message, attrs = err["type"], err["message"], err.get("attrs") or {}
    except (ValueError, KeyError, TypeError):
        return errors_module.ServiceError(
            f"the workspace service answered HTTP {status}: {body[:200]!r}"
        )
    cls = getattr(errors_module, name, None) or BUILTIN_ERRORS.get(name)
    if not (isinstance(cls, type) and issubclass(cls, BaseException)):
        return errors_module.ServiceError(f"{name}: {message}")
    exc = cls.__new__(cls)
    BaseException.__init__(exc, message)
    for key, value in attrs.items():
        try:
            setattr(exc, key, value)
        except (AttributeError, TypeError):
            pass
    return exc


def encode_events(events: list[dict[str, Any]]) -> str:
    return json.dumps(events, default=_default)


def _default(value: Any) -> Any:
    iso = getattr(value, "isoformat", None)
    return iso() if iso is not None else str(value)


def decode_events(text: str | bytes) -> list[dict[str, Any]]:
    return json.loads(text)
