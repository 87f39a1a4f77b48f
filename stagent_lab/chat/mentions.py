"""``@file:``, ``@task:`` and ``@df:`` mentions: context a chat message attaches (client side).

They are expanded where the things live: files next to the notebook or in the session's
project, tasks through the workspace, DataFrames in the kernel's namespace. Each becomes a
:class:`~stagent_lab.api.chat.ChatContext` block sent with the message; the message text keeps
the mention as written, and the agent sees the block under the same name.

Limits keep a prompt reasonable: a file is read up to ``FILE_MAX_BYTES`` (binary files and
anything but regular files are refused), a DataFrame is described by its schema, null counts
and first rows, a task by its title, status and result. A mention that cannot be expanded is an
error naming it (``MentionError``), and nothing is sent.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

FILE_MAX_BYTES = 64 * 1024
TASK_RESULT_CHARS = 8_000
DF_HEAD_ROWS = 5
DF_MAX_COLUMNS = 60
DF_MAX_CHARS = 8_000
MAX_MENTIONS = 10
MENTION = re.compile(r"""@(file|task|df):(?:"([^"\n]+)"|([^\s"'`,;()<>\[\]{}]+))""")
_TRAILING = ".:!?"


class MentionError(ValueError):
    """A mention that cannot be expanded (the message names which and why)."""


def find(text: str) -> list[tuple[str, str]]:
    """The mentions in ``text`` as (kind, ref), in order, without repeats."""
    found: list[tuple[str, str]] = []
    for m in MENTION.finditer(text):
        ref = m.group(2) or m.group(3).rstrip(_TRAILING)
        if ref and (m.group(1), ref) not in found:
            found.append((m.group(1), ref))
    return found


def expand(
    text: str,
    *,
    lab: Any,
    namespace: Mapping[str, Any] | None = None,
    base_dirs: Sequence[str | os.PathLike[str]] = (),
) -> list[dict[str, Any]]:
    """Context blocks (``kind``, ``ref``, ``text``, ``note``) for every mention in ``text``."""
    mentions = find(text)
    if len(mentions) > MAX_MENTIONS:
        raise MentionError(f"at most {MAX_MENTIONS} mentions per message, got {len(mentions)}")
    blocks = []
    for kind, ref in mentions:
        if kind == "file":
            blocks.append(file_block(ref, base_dirs))
        elif kind == "task":
            blocks.append(task_block(lab, ref))
        else:
            blocks.append(df_block(ref, namespace))
    return blocks


def file_block(ref: str, base_dirs: Sequence[str | os.PathLike[str]] = ()) -> dict[str, Any]:
    path = Path(ref).expanduser()
    tried = [path] if path.is_absolute() else [Path(b) / path for b in (*base_dirs, Path.cwd())]
    found = next((p for p in tried if p.exists()), None)
    if found is None:
        where = ", ".join(str(Path(b)) for b in (*base_dirs, Path.cwd()))
        raise MentionError(f"@file:{ref}: no such file (looked in {where})")
    if not found.is_file():
        raise MentionError(f"@file:{ref}: {found} is not a regular file")
    with found.open("rb") as fh:
        data = fh.read(FILE_MAX_BYTES + 1)
    if b"\x00" in data[:8192]:
        raise MentionError(f"@file:{ref}: {found} looks binary; attach text files only")
    cut = len(data) > FILE_MAX_BYTES
    text = data[:FILE_MAX_BYTES].decode("utf-8", errors="replace")
    lines = text.count("\n") + (0 if text.endswith("\n") or not text else 1)
    note = f"{lines} lines" + (f", cut at {FILE_MAX_BYTES // 1024} KB" if cut else "")
    return {"kind": "file", "ref": ref, "text": text, "note": note}


def task_block(lab: Any, ref: str) -> dict[str, Any]:
    try:
        handle = lab.task(ref)
    except KeyError as exc:
        raise MentionError(f"@task:{ref}: {exc.args[0] if exc.args else exc}") from None
    view = handle.info()
    result = view.get("result") or ""
    if len(result) > TASK_RESULT_CHARS:
        result = result[: TASK_RESULT_CHARS - 1] + "…"
    lines = [
        f"title: {view.get('title')}",
        f"status: {view.get('status')}",
        f"profile: {view.get('profile_id')}, runtime: {view.get('runtime_id')}",
    ]
    if view.get("failure_reason"):
        lines.append(f"failure: {view['failure_reason']}")
    if result:
        lines += ["result:", result]
    return {"kind": "task", "ref": handle.id, "text": "\n".join(lines), "note": view.get("status")}


def df_block(ref: str, namespace: Mapping[str, Any] | None) -> dict[str, Any]:
    if namespace is None or ref not in namespace:
        raise MentionError(f"@df:{ref}: no variable named {ref} in the notebook")
    value = namespace[ref]
    if hasattr(value, "to_frame") and not hasattr(value, "columns"):  # a pandas Series
        value = value.to_frame()
    if not (hasattr(value, "columns") and hasattr(value, "dtypes") and hasattr(value, "head")):
        kind = type(value).__name__
        raise MentionError(f"@df:{ref}: {ref} is a {kind}, not a DataFrame")
    text, note = describe_frame(value)
    return {"kind": "df", "ref": ref, "text": text, "note": note}


def describe_frame(df: Any) -> tuple[str, str]:
    """A compact description: shape, each column's dtype and non-null count, the first rows."""
    rows, cols = df.shape
    note = f"{rows:,} rows × {cols:,} columns"
    counts = df.notna().sum() if rows else None
    lines = ["columns (dtype, non-null):"]
    for i, (name, dtype) in enumerate(df.dtypes.items()):
        if i >= DF_MAX_COLUMNS:
            lines.append(f"- … {cols - DF_MAX_COLUMNS} more columns")
            break
        filled = int(counts.iloc[i]) if counts is not None else 0
        lines.append(f"- {name}: {dtype}, {filled:,} non-null")
    head = df.head(DF_HEAD_ROWS)
    if cols > DF_MAX_COLUMNS:
        head = head.iloc[:, :DF_MAX_COLUMNS]
    lines += [f"first {min(rows, DF_HEAD_ROWS)} rows:", head.to_string(max_colwidth=40)]
    text = "\n".join(lines)
    if len(text) > DF_MAX_CHARS:
        text = text[: DF_MAX_CHARS - 1] + "…"
    return text, note


__all__ = ["MentionError", "describe_frame", "expand", "find"]
