"""WebFetch: GET one http(s) URL and hand the model readable text.

The response body is streamed and cut at 100 KiB (after decompression, so a gzip bomb cannot
blow up memory), and the whole call ends after ``ToolContext.tool_timeout_s`` however slowly the
server drips bytes. HTML is reduced to rough text with the stdlib parser: scripts, styles and
other non-content elements are dropped, block elements become line breaks. Whether a URL may be
fetched at all is a governance question (``WebFetch(domain:...)`` rules), not this tool's.
"""

from __future__ import annotations

import asyncio
import codecs
import re
from html.parser import HTMLParser
from typing import Any, ClassVar
from urllib.parse import urlsplit

import httpx

from stagent_lab.tools.base import Tool, ToolContext, ToolResult
from stagent_lab.tools.paths import check_input, error

FETCH_TIMEOUT_S = 20.0
MAX_REDIRECTS = 5
MAX_BODY_BYTES = 100 * 1024
USER_AGENT = "stagent-lab-webfetch/0.1"

_SKIP_TAGS = frozenset({"script", "style", "noscript", "template", "svg", "iframe"})
_BLOCK_TAGS = frozenset(
    {
        "address", "article", "aside", "blockquote", "br", "dd", "details", "div", "dl", "dt",
        "fieldset", "figcaption", "figure", "footer", "form", "h1", "h2", "h3", "h4", "h5",
        "h6", "header", "hr", "li", "main", "nav", "ol", "p", "pre", "section", "summary",
        "table", "tbody", "td", "tfoot", "th", "thead", "title", "tr", "ul",
    }
)  # fmt: skip
_VOID_TAGS = frozenset({"br", "hr", "img", "input", "meta", "link", "area", "base", "col", "wbr"})


class _TextExtractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skip_depth = 0
        self.title: list[str] = []
        self.in_title = False
        self.in_head = False  # sloppy pages omit </head>; <body> ends it too

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "title":
            self.in_title = True
        elif tag == "head":
            self.in_head = True
        elif tag == "body":
            self.in_head = False
        if tag in _SKIP_TAGS and tag not in _VOID_TAGS:
            self.skip_depth += 1
        elif tag in _BLOCK_TAGS:
            self.parts.append("\n")
            if tag == "li":
                self.parts.append("- ")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _BLOCK_TAGS:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self.in_title = False
        elif tag == "head":
            self.in_head = False
        if tag in _SKIP_TAGS:
            self.skip_depth = max(self.skip_depth - 1, 0)
        elif tag in _BLOCK_TAGS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if self.in_title:
            self.title.append(data)
        if not self.skip_depth and not self.in_head:
            self.parts.append(data)


def html_to_text(html: str) -> str:
    """Rough readable text from HTML: no tags, scripts or styles; one blank line max."""
    parser = _TextExtractor()
    parser.feed(html)
    parser.close()
    raw_lines = "".join(parser.parts).replace("\xa0", " ").split("\n")
    lines = [re.sub(r"[ \t\r\f\v]+", " ", line).strip() for line in raw_lines]
    text = re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()
    title = re.sub(r"\s+", " ", "".join(parser.title)).strip()
    if title and not text.startswith(title):
        text = f"{title}\n\n{text}"
    return text


def _looks_like_html(content_type: str, body: str) -> bool:
    if "html" in content_type:
        return True
    head = body[:512].lstrip().lower()
    return head.startswith(("<!doctype html", "<html"))


def _is_textual(content_type: str) -> bool:
    if not content_type:
        return True
    kind = content_type.split(";")[0].strip().lower()
    return kind.startswith("text/") or any(
        marker in kind for marker in ("json", "xml", "javascript", "yaml", "csv", "x-www-form")
    )


class WebFetchTool(Tool):
    name = "WebFetch"
    main_field = "url"
    read_only = True
    description = (
        "Fetch a web page or text resource over http(s) and return its status and text (HTML "
        "is converted to plain text; at most 100 KB is read). Follows up to 5 redirects. "
        "`prompt` says what you are looking for in the page; it is echoed with the result."
    )
    input_schema: ClassVar[dict[str, Any]] = {
        "type": "object",
        "properties": {
            "url": {"type": "string", "description": "http:// or https:// URL.", "minLength": 1},
            "prompt": {"type": "string", "description": "What to look for in the page."},
        },
        "required": ["url"],
        "additionalProperties": False,
    }

    # None means httpx's default transport (honouring proxy env vars); set an
    # httpx.MockTransport or a custom transport to route requests elsewhere.
    transport: httpx.AsyncBaseTransport | None = None

    async def run(self, tool_input: dict[str, Any], ctx: ToolContext) -> ToolResult:
        problem = check_input(self.name, tool_input, self.input_schema)
        if problem:
            return error(problem)
        url = tool_input["url"].strip()
        parts = urlsplit(url)
        if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
            return error(
                f"WebFetch: only http:// and https:// URLs can be fetched, got {url!r}", url=url
            )
        # httpx's timeout bounds each connect/read; the call as a whole (a server dripping a
        # byte every few seconds) is bounded by the context's per-call limit.
        limit = ctx.tool_timeout_s if ctx.tool_timeout_s > 0 else None
        per_step = min(FETCH_TIMEOUT_S, limit) if limit else FETCH_TIMEOUT_S
        try:
            status, reason, final_url, content_type, body, truncated = await asyncio.wait_for(
                self._get(url, per_step), limit
            )
        except TimeoutError:
            return error(
                f"WebFetch: timed out after {limit:g} s fetching {url}", url=url, timed_out=True
            )
        except httpx.TooManyRedirects:
            return error(f"WebFetch: more than {MAX_REDIRECTS} redirects fetching {url}", url=url)
        except httpx.TimeoutException:
            return error(
                f"WebFetch: timed out after {per_step:g} s fetching {url}", url=url, timed_out=True
            )
        except httpx.UnsupportedProtocol as exc:
            return error(f"WebFetch: refused non-http(s) URL while fetching {url}: {exc}", url=url)
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            return error(f"WebFetch: could not fetch {url}: {type(exc).__name__}: {exc}", url=url)
        meta: dict[str, Any] = {
            "url": url,
            "final_url": final_url,
            "status": status,
            "content_type": content_type,
            "bytes": len(body),
            "truncated": truncated,
        }
        header = [f"URL: {final_url}", f"Status: {status} {reason}".rstrip()]
        if content_type:
            header.append(f"Content-Type: {content_type}")
        if tool_input.get("prompt"):
            header.append(f"Prompt: {tool_input['prompt']}")
        if not _is_textual(content_type):
            header.append(f"\n[binary content ({len(body)} bytes) not shown]")
            return ToolResult(output="\n".join(header), is_error=status >= 400, meta=meta)
        text = body.decode(_charset(content_type), errors="replace")
        if _looks_like_html(content_type, text):
            text = html_to_text(text)
        if truncated:
            text += f"\n\n[response cut at {MAX_BODY_BYTES // 1024} KB]"
        if len(text) > ctx.output_cap_chars:
            text = text[: ctx.output_cap_chars] + (
                f"\n\n[text capped at {ctx.output_cap_chars} characters]"
            )
            meta["truncated"] = True
        output = "\n".join(header) + "\n\n" + text
        return ToolResult(output=output, is_error=status >= 400, meta=meta)

    async def _get(self, url: str, timeout_s: float) -> tuple[int, str, str, str, bytes, bool]:
        async with (
            httpx.AsyncClient(
                timeout=timeout_s,
                follow_redirects=True,
                max_redirects=MAX_REDIRECTS,
                headers={"User-Agent": USER_AGENT},
                transport=self.transport,
            ) as client,
            client.stream("GET", url) as response,
        ):
            chunks: list[bytes] = []
            size = 0
            truncated = False
            async for chunk in response.aiter_bytes():
                chunks.append(chunk)
                size += len(chunk)
                if size > MAX_BODY_BYTES:
                    truncated = True
                    break
            body = b"".join(chunks)[:MAX_BODY_BYTES]
            return (
                response.status_code,
                response.reason_phrase,
                str(response.url),
                response.headers.get("content-type", ""),
                body,
                truncated,
            )


def _charset(content_type: str) -> str:
    match = re.search(r"charset=[\"']?([\w.:-]+)", content_type, re.IGNORECASE)
    if match:
        try:
            return codecs.lookup(match.group(1)).name
        except LookupError:
            pass
    return "utf-8"


__all__ = ["MAX_BODY_BYTES", "WebFetchTool", "html_to_text"]
