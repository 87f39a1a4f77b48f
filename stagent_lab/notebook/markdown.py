"""Agent text as safe HTML: Markdown rendered by markdown-it-py, then sanitised by nh3.

Results and chat replies are written by a model (or copied from files it read), so they are
untrusted. Raw HTML in the text is escaped (``html=False``), and the rendered HTML keeps only
formatting tags: no scripts, styles, event handlers, images or links (a link keeps its text),
so a rendered result never fetches anything and never navigates anywhere. The same HTML goes
into the live card and into the static copy saved with the notebook.
"""

from __future__ import annotations

from functools import cache
from typing import Any

ALLOWED_TAGS = frozenset(
    {
        "p", "br", "hr", "h1", "h2", "h3", "h4", "h5", "h6", "strong", "em", "del", "s",
        "code", "pre", "blockquote", "ul", "ol", "li", "table", "thead", "tbody", "tr", "th",
        "td", "span", "div", "sub", "sup", "kbd",
    }
)  # fmt: skip
ALLOWED_ATTRIBUTES = {"ol": {"start"}, "th": {"style"}, "td": {"style"}}
# Table cells keep only their alignment from the Markdown source.
_ALIGN_STYLES = {"text-align"}
MAX_CHARS = 200_000  # longer text is cut before rendering (the store keeps all of it)


@cache
def _parser() -> Any:
    from markdown_it import MarkdownIt

    md = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False})
    return md.enable(["table", "strikethrough"])


def render_markdown(text: str | None) -> str:
    """Sanitised HTML for ``text`` (Markdown); "" for empty text."""
    if not text:
        return ""
    import nh3

    source = text if len(text) <= MAX_CHARS else text[:MAX_CHARS] + "\n\n…"
    html = _parser().render(source)
    return nh3.clean(
        html,
        tags=set(ALLOWED_TAGS),
        attributes={k: set(v) for k, v in ALLOWED_ATTRIBUTES.items()},
        filter_style_properties=set(_ALIGN_STYLES),
        link_rel=None,
        strip_comments=True,
        url_schemes=set(),
    ).strip()


def first_line(text: str | None, limit: int = 160) -> str:
    """A one-line summary: the first non-empty line, Markdown markers trimmed, capped."""
    for line in (text or "").splitlines():
        line = line.strip().lstrip("#>*-+ ").strip()
        if line:
            return line if len(line) <= limit else line[: limit - 1] + "…"
    return ""


__all__ = ["first_line", "render_markdown"]
