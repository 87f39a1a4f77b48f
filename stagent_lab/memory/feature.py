"""Memory as a feature of the workspace service: what a run is told, what its tool may do,
what it leaves, and the operator's requests (``lab.memory``).

Engine hooks (all on the engine loop, none of them running memory SQL on it):

* instructions — ranks the profile's memories for the task on a reader cursor in a worker
  thread and builds the "## What you remember" section there, within a character budget; the
  access-count update is queued; logs ``memory_recalled``.
* tool services — gives the ``Memory`` tool a service bound to the task's profile: recall
  reads in a worker thread, remember is queued and answered when its batch is written.
* finish — queues one short ``outcome`` memory behind the task's final status, so it lands in
  the same batch and can never commit before the status it describes.

Queued memory writes (remembers, outcomes, accesses) of one writer batch are applied together
by one deferred operation (``MemoryWrites``): a few statements per batch whatever the number
of tasks, instead of several per task.

Settings: ``memory.enabled`` (true), ``memory.top_k`` (8), ``memory.max_chars`` (2000),
``memory.outcomes`` (true).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import pandas as pd

from stagent_lab.api import requests as rq
from stagent_lab.config import SettingSpec
from stagent_lab.errors import StagentError
from stagent_lab.memory.tool import MemoryTool
from stagent_lab.store import memory as memory_repo
from stagent_lab.store.memory import MemoryStore, Remembered, ScopeRows
from stagent_lab.store.memory_writes import NewMemory

if TYPE_CHECKING:
    from stagent_lab.engine.task import TaskState
    from stagent_lab.service.core import WorkspaceService

SECTION_TITLE = "## What you remember"
SECTION_INTRO = (
    "Notes kept from your earlier tasks (category, confidence out of 1000). Use them instead "
    "of redoing work; say so when one looks out of date."
)
MAX_LINE_CHARS = 400
SWEEP_EVERY = timedelta(hours=1)
REMEMBER_TIMEOUT_S = 60.0  # a queued remember is answered by the next batch (≤ ~0.1 s)
NO_MEMORY_SOURCES = frozenset({"profile_test"})


def run_query(title: str, prompt: str) -> str:
    """The text a run's memories are matched against: its title and the start of its prompt."""
    return f"{title}\n{prompt[:4000]}"


def summarize(text: str, limit: int = 200) -> str:
    """One line from a result: the first line of prose (headings and fences skipped)."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and ln.strip() != "```"]
    prose = [ln for ln in lines if not ln.startswith(("#", "```", "|", "---"))]
    line = (prose or lines or [""])[0].lstrip("#*->• ").strip()
    return line if len(line) <= limit else line[: limit - 1] + "…"


def format_line(category: str, confidence: float, content: str) -> str:
    """One memory as one line: newlines collapsed so stored text cannot add prompt structure."""
    text = " ".join(content.split())
    if len(text) > MAX_LINE_CHARS:
        text = text[: MAX_LINE_CHARS - 1] + "…"
    return f"- [{category} {round(confidence)}] {text}"


def build_section(memories: Any, max_chars: int) -> tuple[str | None, list[str]]:
    """The instruction section from scored memories, best first, within ``max_chars``.

    ``memories`` is a DataFrame from ``retrieve`` or the tuples of ``MemoryStore.top_lines``.
    A memory that does not fit is skipped and smaller ones after it may still fit. Returns the
    text (None when nothing fits) and the ids used.
    """
    if isinstance(memories, pd.DataFrame):
        memories = list(
            zip(
                memories["id"],
                memories["category"],
                memories["effective_confidence"],
                memories["content"],
                strict=True,
            )
        )
    head = f"{SECTION_TITLE}\n{SECTION_INTRO}"
    used: list[str] = []
    lines: list[str] = []
    size = len(head)
    for row in memories:
        mid, category, confidence, content = row[:4]
        line = format_line(category, confidence, content)
        if size + 1 + len(line) > max_chars:
            continue
        lines.append(line)
        used.append(mid)
        size += 1 + len(line)
    if not lines:
        return None, []
    return "\n".join([head, *lines]), used


class TaskMemory:
    """The ``Memory`` tool's view of the store: one task's profile, nothing else."""

    def __init__(self, feature: MemoryFeature, st: TaskState) -> None:
        self._feature = feature
        self._st = st

    async def remember(
        self,
        content: Any,
        *,
        category: str = "fact",
        tags: Iterable[str] | None = None,
        confidence: int | None = None,
    ) -> Remembered:
        """Queue the memory and wait for its batch (the loop is not held meanwhile)."""
        st, feature = self._st, self._feature
        item = feature.store(None).prepare(
            st.profile_id,
            content,
            category=category,
            tags=tags,
            confidence=confidence,
            source_task_id=st.id,
        )
        out = await asyncio.wait_for(feature.writes.remember(item), REMEMBER_TIMEOUT_S)
        feature.service.log_task(
            st,
            "memory_written",
            tool_name="Memory",
            memory_id=out.id,
            action=out.action,
            category=category,
            confidence=out.confidence,
            reason=out.reason,
        )
        return out

    async def recall(
        self, query: str, *, tags: Iterable[str] = (), k: int | None = None
    ) -> pd.DataFrame:
        """The best memories for ``query``, read in a worker thread; their use is queued."""
        feature, st = self._feature, self._st
        limit = k if k is not None else feature.setting("memory.top_k")
        now = feature.now()
        tag_list = list(tags)

        def read() -> pd.DataFrame:  # a reader cursor that sees this task's own writes
            feature.service.fresh()
            return feature.store(feature.service.reader()).retrieve(
                st.profile_id, query, project_id=st.project_id, tags=tag_list, k=limit, now=now
            )

        df = await asyncio.to_thread(read)
        feature.writes.touch(df["id"].tolist(), now)
        return df


class MemoryWrites:
    """Memory writes queued on the engine loop and applied together, once per writer batch.

    The first write after a batch queues one deferred operation; later ones join it until it
    runs. A remember's future is answered from inside that batch; a batch retried after a
    failed commit writes the same rows (ids are chosen when queued).
    """

    def __init__(self, feature: MemoryFeature) -> None:
        self._feature = feature
        self._batch: _WriteBatch | None = None

    def _current(self) -> _WriteBatch:
        batch = self._batch
        if batch is None:
            batch = self._batch = _WriteBatch()
            service = self._feature.service
            service.writer_defer(lambda con: self._apply(batch, con), "memory writes", None)
        return batch

    def remember(self, item: NewMemory) -> asyncio.Future[Remembered]:
        fut: asyncio.Future[Remembered] = asyncio.get_running_loop().create_future()
        self._current().items.append((item, fut))
        self._feature.service.commit_soon()  # a tool call waits for this batch
        return fut

    def add(self, item: NewMemory) -> None:
        self._current().items.append((item, None))

    def touch(self, ids: Iterable[str], now: datetime) -> None:
        ids = list(ids)
        if not ids:
            return
        accesses = self._current().accesses
        for mid in ids:
            at, n = accesses.get(mid, (now, 0))
            accesses[mid] = (max(at, now), n + 1)

    def _apply(self, batch: _WriteBatch, con: Any) -> None:
        if self._batch is batch:
            self._batch = None  # what is queued from now on goes into the next batch
        store = self._feature.store(con)
        try:
            results = store.write_many([item for item, _ in batch.items])
            store.touch_many(batch.accesses)
        except BaseException as exc:
            for _, fut in batch.items:
                if fut is not None and not fut.done():
                    fut.set_exception(
                        StagentError(f"the memory could not be written: {type(exc).__name__}")
                    )
            raise
        for (_, fut), out in zip(batch.items, results, strict=True):
            if fut is not None and not fut.done():
                fut.set_result(out)


class _WriteBatch:
    __slots__ = ("accesses", "items")

    def __init__(self) -> None:
        self.items: list[tuple[NewMemory, asyncio.Future[Remembered] | None]] = []
        self.accesses: dict[str, tuple[datetime, int]] = {}


class MemoryFeature:
    name = "memory"
    migrations = memory_repo.MIGRATIONS
    settings = (
        SettingSpec("memory.enabled", "bool", True, "feed memories into runs"),
        SettingSpec("memory.top_k", "int", 8, "memories per run", 0, 100),
        SettingSpec("memory.max_chars", "int", 2000, "size of the memory section", 0, 100_000),
        SettingSpec("memory.outcomes", "bool", True, "remember each task's outcome"),
    )

    def __init__(self) -> None:
        self.service: WorkspaceService
        self.writes = MemoryWrites(self)
        self._last_sweep: datetime | None = None
        # What "now" is for decay; replaced by tests through lab.memory.clock (in-process).
        self.clock: Callable[[], datetime] | None = None

    # ---- plumbing ----------------------------------------------------------------------

    def now(self) -> datetime:
        return self.clock() if self.clock is not None else self.service.clock.now()

    def setting(self, key: str) -> Any:
        return self.service.settings.value(key)

    def store(self, con: Any, *, scopes: ScopeRows | None = None) -> MemoryStore:
        """A MemoryStore on ``con`` (None: only for ``prepare``, which runs no SQL)."""
        return MemoryStore(con, clock=self.now, redact=self.service.redact, scopes=scopes)

    def write(self, fn: Callable[[MemoryStore], Any]) -> Any:
        """``fn(store)`` inside the writer's transaction, after everything queued (engine
        thread); its result is returned and its error raised."""
        out: list[Any] = []

        def run() -> Any:
            self.service.writer_flush(lambda con: out.append(fn(self.store(con))))
            if not out:
                raise StagentError(
                    "the workspace store cannot take writes right now (see the service log); "
                    "the memory was not written"
                )
            return out[0]

        return self.service.on_engine(run)

    def defer(self, fn: Callable[[MemoryStore], Any], label: str, task_id: str | None) -> None:
        self.service.writer_defer(lambda con: fn(self.store(con)), label, task_id)

    def read(self, fn: Callable[[MemoryStore], Any]) -> Any:
        self.service.fresh()
        return fn(self.store(self.service.reader()))

    # ---- wiring ------------------------------------------------------------------------

    def attach(self, service: WorkspaceService) -> None:
        self.service = service
        # The scopes runs rank, kept until the next commit (a reader cursor sees only
        # committed rows, and every memory write is committed by the service's writer).
        self.scopes = ScopeRows(service.commits)
        service.tools.register(MemoryTool())
        service.hooks.instructions.append(self.instructions)
        service.hooks.tool_services.append(lambda st: {"memory": TaskMemory(self, st)})
        service.hooks.finish.append(self.on_finish)
        service.hooks.started.append(lambda: self.maybe_sweep(self.now(), now_sync=True))
        on = service.on
        on(rq.MemoryList)(self._list)
        on(rq.MemoryGet)(lambda r: self.read(lambda s: s.get(r.memory_id)))
        on(rq.MemoryRecall)(self._recall)
        on(rq.MemoryPreview)(self._preview)
        on(rq.MemoryAdd)(self._add)
        on(rq.MemoryEdit)(self._edit)
        on(rq.MemoryReject)(lambda r: self.write(lambda s: s.reject(r.memory_id)))
        on(rq.MemoryDelete)(lambda r: self.write(lambda s: s.delete(r.memory_id)))
        on(rq.MemoryDecay)(lambda r: self.write(lambda s: s.apply_decay()))
        on(rq.MemoryProfiles)(
            lambda r: self.read(lambda s: memory_repo.profiles_with_memories(s.con))
        )
        on(rq.MemoryBrowserRows)(self._browser_rows)

    def maybe_sweep(self, now: datetime, *, now_sync: bool = False) -> None:
        """Apply decay thresholds at most hourly (queued in the batch; at start, at once)."""
        if self._last_sweep is not None and timedelta(0) <= now - self._last_sweep < SWEEP_EVERY:
            return
        self._last_sweep = now
        if now_sync:
            self.service.writer_flush(lambda con: self.store(con).apply_decay(now))
        else:
            self.defer(lambda store: store.apply_decay(now), "memory decay", None)

    # ---- engine hooks ------------------------------------------------------------------

    async def instructions(self, st: TaskState) -> str | None:
        if st.source in NO_MEMORY_SOURCES or not self.setting("memory.enabled"):
            return None
        top_k, max_chars = self.setting("memory.top_k"), self.setting("memory.max_chars")
        if top_k == 0 or max_chars == 0:
            return None
        now = self.now()
        self.maybe_sweep(now)
        query = run_query(st.title, st.prompt)

        def rank() -> tuple[list[tuple[str, str, float, str, float]], str | None, list[str]]:
            # A reader cursor in a worker thread: ranking and the section stay off the loop.
            found = self.store(self.service.store.reader(), scopes=self.scopes).top_lines(
                st.profile_id, query, project_id=st.project_id, k=top_k, now=now
            )
            return found, *build_section(found, max_chars)

        found, text, used = await asyncio.to_thread(rank)
        if text is None:
            return None
        self.writes.touch(used, now)
        scores = {row[0]: row[4] for row in found}
        self.service.log_task(
            st,
            "memory_recalled",
            memory_ids=used,
            count=len(used),
            chars=len(text),
            scores=[round(scores[i], 4) for i in used],
        )
        return text

    def on_finish(self, st: TaskState) -> None:
        status = str(st.status)
        if status not in ("completed", "failed") or st.source in NO_MEMORY_SOURCES:
            return
        if not (self.setting("memory.enabled") and self.setting("memory.outcomes")):
            return
        detail = st.result if status == "completed" else st.failure_reason
        summary = summarize(detail or "")
        title = " ".join(st.title.split())[:120]
        content = f'Task "{title}" {status}' + (f": {summary}" if summary else ".")
        try:
            item = self.store(None).prepare_outcome(
                st.profile_id, st.id, content, status=status, project_id=st.project_id
            )
        except ValueError:  # nothing storable (no words): no outcome memory
            return
        # Only a resumed task can have an outcome memory already (from an earlier run).
        item.replace_outcome = st.resume_count > 0
        self.writes.add(item)

    # ---- requests ----------------------------------------------------------------------

    def _project(self, project: str | None, *, run_default: bool = False) -> str | None:
        return self.service.project_id_of(project, run_default=run_default)

    def _list(self, r: rq.MemoryList) -> Any:
        project_id = self._project(r.project)
        df = self.read(
            lambda s: s.list(
                r.profile_id, status=r.status, project_id=project_id, category=r.category
            )
        )
        return _arrow(df)

    def _recall(self, r: rq.MemoryRecall) -> Any:
        self.service.profiles.get(r.profile_id)
        project_id = self._project(r.project, run_default=True)
        df = self.read(
            lambda s: s.retrieve(
                r.profile_id, r.query, project_id=project_id, tags=list(r.tags), k=r.k
            )
        )
        return _arrow(df)

    def _preview(self, r: rq.MemoryPreview) -> str | None:
        self.service.profiles.get(r.profile_id)
        project_id = self._project(r.project, run_default=True)
        query = run_query(r.title or "", r.prompt)
        top_k, max_chars = self.setting("memory.top_k"), self.setting("memory.max_chars")
        if top_k == 0 or max_chars == 0:
            return None
        df = self.read(lambda s: s.retrieve(r.profile_id, query, project_id=project_id, k=top_k))
        return build_section(df, max_chars)[0]

    def _add(self, r: rq.MemoryAdd) -> str:
        self.service.profiles.get(r.profile_id)  # unknown profile → ProfileNotFoundError
        project_id = self._project(r.project)
        out = self.write(
            lambda s: s.add(
                r.profile_id,
                r.content,
                category=r.category,
                tags=r.tags,
                confidence=r.confidence,
                decay_rate=r.decay_rate,
                project_id=project_id,
                allow_rejected=True,
            )
        )
        return out.id

    def _edit(self, r: rq.MemoryEdit) -> dict[str, Any]:
        return self.write(
            lambda s: s.edit(
                r.memory_id,
                content=r.content,
                category=r.category,
                tags=r.tags,
                confidence=r.confidence,
                decay_rate=r.decay_rate,
                status=r.status,
            )
        )

    def _browser_rows(self, r: rq.MemoryBrowserRows) -> list[dict[str, Any]]:
        now = self.now()
        return self.read(
            lambda s: memory_repo.browser_rows(
                s.con,
                now,
                profile=r.profile_id,
                category=r.category,
                status=r.status,
                search=r.search,
                limit=r.limit,
            )
        )


def _arrow(df: pd.DataFrame) -> Any:
    import pyarrow as pa

    return pa.Table.from_pandas(df, preserve_index=False)


__all__ = [
    "SECTION_TITLE",
    "MemoryFeature",
    "TaskMemory",
    "build_section",
    "run_query",
    "summarize",
]
