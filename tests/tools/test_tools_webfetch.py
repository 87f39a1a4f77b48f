"""WebFetch against a loopback http.server (never the internet)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from stagent_lab.tools.base import ToolContext, ToolResult
from stagent_lab.tools.web import MAX_BODY_BYTES, WebFetchTool, html_to_text

PAGE = b"""<!DOCTYPE html>
<html><head><title>Invoice  API</title><style>body { color: red }</style>
<script>var token = "do-not-show";</script></head>
<body><h1>Docs</h1><p>Use &lt;GET&gt; /invoices&nbsp;to list.</p>
<ul><li>one</li><li>two</li></ul><noscript>enable js</noscript></body></html>"""


class Handler(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # keep test output clean
        pass

    def _send(self, status: int, body: bytes, content_type: str, extra: dict | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for key, value in (extra or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)

    def _drip(self) -> None:
        """A byte at a time, each well inside httpx's read timeout: only a call limit ends it."""
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", "100000")
        self.end_headers()
        try:
            for _ in range(100_000):
                self.wfile.write(b"a")
                self.wfile.flush()
                time.sleep(0.05)
        except OSError:
            pass  # the client gave up, as it should

    def do_GET(self) -> None:
        routes = {
            "/page": (200, PAGE, "text/html; charset=utf-8"),
            "/plain": (200, "plain text café\n".encode(), "text/plain; charset=utf-8"),
            "/latin1": (200, "caf\xe9".encode("latin-1"), "text/plain; charset=iso-8859-1"),
            "/big": (200, b"a" * (MAX_BODY_BYTES * 2), "text/plain"),
            "/missing": (404, b"<html><body><p>no such page</p></body></html>", "text/html"),
            "/image": (200, b"\x89PNG\r\n\x1a\n\x00\x00", "image/png"),
            "/ua": (200, self.headers.get("User-Agent", "").encode(), "text/plain"),
        }
        if self.path in routes:
            self._send(*routes[self.path])
        elif self.path == "/redirect":
            self._send(302, b"", "text/plain", {"Location": "/plain"})
        elif self.path.startswith("/loop"):
            n = int(self.path.removeprefix("/loop") or 0)
            self._send(302, b"", "text/plain", {"Location": f"/loop{n + 1}"})
        elif self.path == "/drip":
            self._drip()
        elif self.path == "/to-file":
            self._send(302, b"", "text/plain", {"Location": "file:///etc/passwd"})
        else:
            self._send(500, b"unexpected", "text/plain")


@pytest.fixture()
def base_url(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture()
def ctx(tmp_path: Path) -> ToolContext:
    return ToolContext(working_dir=tmp_path)


def fetch(tool_input: Any, ctx: ToolContext) -> ToolResult:
    return asyncio.run(WebFetchTool().run(tool_input, ctx))


def test_html_page_becomes_text(base_url: str, ctx: ToolContext) -> None:
    result = fetch({"url": f"{base_url}/page", "prompt": "how do I list invoices?"}, ctx)
    assert not result.is_error
    header, _, text = result.output.partition("\n\n")
    assert header.split("\n") == [
        f"URL: {base_url}/page",
        "Status: 200 OK",
        "Content-Type: text/html; charset=utf-8",
        "Prompt: how do I list invoices?",
    ]
    assert text == "Invoice API\n\nDocs\n\nUse <GET> /invoices to list.\n\n- one\n\n- two"
    assert "do-not-show" not in result.output
    assert "color: red" not in result.output
    assert "enable js" not in result.output
    assert result.meta["status"] == 200


def test_plain_text_and_charset(base_url: str, ctx: ToolContext) -> None:
    assert fetch({"url": f"{base_url}/plain"}, ctx).output.endswith("\n\nplain text café\n")
    assert fetch({"url": f"{base_url}/latin1"}, ctx).output.endswith("\n\ncafé")


def test_redirect_is_followed(base_url: str, ctx: ToolContext) -> None:
    result = fetch({"url": f"{base_url}/redirect"}, ctx)
    assert result.output.startswith(f"URL: {base_url}/plain\nStatus: 200 OK")
    assert result.meta["final_url"] == f"{base_url}/plain"


def test_too_many_redirects_is_error(base_url: str, ctx: ToolContext) -> None:
    result = fetch({"url": f"{base_url}/loop"}, ctx)
    assert result.is_error
    assert result.output == f"WebFetch: more than 5 redirects fetching {base_url}/loop"


def test_redirect_to_file_scheme_is_refused(base_url: str, ctx: ToolContext) -> None:
    result = fetch({"url": f"{base_url}/to-file"}, ctx)
    assert result.is_error
    assert result.output.startswith("WebFetch: refused non-http(s) URL while fetching")
    assert "root:" not in result.output


def test_response_size_is_capped(base_url: str, ctx: ToolContext) -> None:
    result = fetch({"url": f"{base_url}/big"}, ToolContext(ctx.working_dir, output_cap_chars=10**6))
    assert result.meta["bytes"] == MAX_BODY_BYTES
    assert result.meta["truncated"] is True
    body = result.output.split("\n\n")[1]
    assert body == "a" * MAX_BODY_BYTES
    assert result.output.endswith("[response cut at 100 KB]")


def test_text_is_capped_to_context(base_url: str, ctx: ToolContext) -> None:
    result = fetch({"url": f"{base_url}/big"}, ToolContext(ctx.working_dir, output_cap_chars=50))
    assert result.output.endswith("a" * 50 + "\n\n[text capped at 50 characters]")


def test_http_error_status_is_error_with_text(base_url: str, ctx: ToolContext) -> None:
    result = fetch({"url": f"{base_url}/missing"}, ctx)
    assert result.is_error
    assert "Status: 404 Not Found" in result.output
    assert result.output.endswith("\n\nno such page")


def test_binary_content_not_shown(base_url: str, ctx: ToolContext) -> None:
    result = fetch({"url": f"{base_url}/image"}, ctx)
    assert result.output.endswith("[binary content (10 bytes) not shown]")
    assert "PNG" not in result.output


def test_sends_user_agent(base_url: str, ctx: ToolContext) -> None:
    assert fetch({"url": f"{base_url}/ua"}, ctx).output.endswith("\n\nstagent-lab-webfetch/0.1")


@pytest.mark.parametrize(
    "url", ["file:///etc/passwd", "ftp://example.com/x", "javascript:alert(1)", "example.com"]
)
def test_non_http_scheme_refused(url: str, ctx: ToolContext) -> None:
    result = fetch({"url": url}, ctx)
    assert result.is_error
    assert result.output == f"WebFetch: only http:// and https:// URLs can be fetched, got {url!r}"


def test_connection_refused_is_error(ctx: ToolContext) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    port = server.server_address[1]
    server.server_close()  # nothing listens on this port any more
    result = fetch({"url": f"http://127.0.0.1:{port}/"}, ctx)
    assert result.is_error and result.output.startswith("WebFetch: could not fetch")


def test_slow_drip_ends_at_the_call_limit(base_url: str, ctx: ToolContext) -> None:
    quick = ToolContext(ctx.working_dir, tool_timeout_s=0.5)
    result = fetch({"url": f"{base_url}/drip"}, quick)
    assert result.is_error
    assert result.output == f"WebFetch: timed out after 0.5 s fetching {base_url}/drip"
    assert result.meta["timed_out"] is True


def test_bad_input(ctx: ToolContext) -> None:
    assert "missing required field(s): url" in fetch({}, ctx).output
    result = fetch({"url": "http://x", "prompt": 3}, ctx)
    assert result.is_error and "field 'prompt' must be a string" in result.output


def test_html_to_text_handles_missing_head_close() -> None:
    html = "<html><head><title>T</title><body><p>kept</p><script>x()</script></body>"
    assert html_to_text(html) == "T\n\nkept"
