"""Keep secrets out of logs and the store, whole or in part.

The redactor knows the values of environment variables whose names look secret (API keys,
tokens, passwords), keys handed over as runtime options, and channel secrets resolved at use.
Before any text is stored or published, every run of 8 or more characters that also occurs in a
known secret is replaced by ``[redacted:NAME]``: a tool that prints the environment, a model that
echoes a key, or ``head -c 68`` of a 69-character key all leave nothing usable behind.

``refresh()`` re-reads the environment (the engine calls it with each timed batch, every
~0.1 s, and before each task starts), so a key exported after the workspace opened is
covered from then on.

How: every 8-character window of every secret is looked for with ``str.find`` (a fast C scan;
about 60 windows for a 69-character key). Each hit is then grown left and right while the text
keeps following the same secret, so the whole leaked run is replaced, not just 8 characters.
"""

from __future__ import annotations

import os
import re
import threading
import time

_SECRET_NAME = re.compile(r"(KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL|AUTH)", re.IGNORECASE)
MIN_SECRET_LEN = 8
WINDOW = 8  # the shortest part of a secret that is redacted
ANCHOR = 4
REFRESH_EVERY_S = 0.1  # the engine checks with each timed batch


class Redactor:
    def __init__(self, extra: dict[str, str] | None = None, *, environ: bool = True) -> None:
        self._lock = threading.Lock()
        self._named: dict[str, str] = {}  # name -> value, from options and channels
        self._env: dict[str, str] = {}
        self._use_env = environ
        self._env_key: tuple[tuple[str, str], ...] = ()
        self._checked = 0.0
        self._secrets: dict[str, str] = {}  # value -> name
        self._windows: dict[str, list[tuple[str, int]]] = {}
        self._anchors: dict[str, list[str]] = {}
        self.add(extra or {})
        self.refresh(force=True)

    @property
    def secrets(self) -> dict[str, str]:
        return dict(self._secrets)

    def add(self, named: dict[str, str]) -> None:
        """Also redact these values (name → secret value)."""
        with self._lock:
            changed = False
            for name, value in named.items():
                ok = isinstance(value, str) and len(value) >= MIN_SECRET_LEN
                if ok and self._named.get(name) != value:
                    self._named[name] = value
                    changed = True
            if changed:
                self._rebuild()

    def refresh(self, *, force: bool = False) -> bool:
        """Re-read secret-looking environment variables; True when the set changed."""
        if not self._use_env:
            return False
        now = time.monotonic()
        if not force and now - self._checked < REFRESH_EVERY_S:
            return False
        self._checked = now
        env = tuple(
            sorted(
                (name, value)
                for name, value in os.environ.items()
                if len(value) >= MIN_SECRET_LEN and _SECRET_NAME.search(name)
            )
        )
        if env == self._env_key:
            return False
        with self._lock:
            self._env_key = env
            self._env = dict(env)
            self._rebuild()
        return True

    def _rebuild(self) -> None:
        secrets: dict[str, str] = {}
        for name, value in {**self._env, **self._named}.items():
            secrets.setdefault(value, name)
        windows: dict[str, list[tuple[str, int]]] = {}
        anchors: dict[str, list[str]] = {}
        for value in secrets:
            for i in range(len(value) - WINDOW + 1):
                windows.setdefault(value[i : i + WINDOW], []).append((value, i))
            # Every 8-character run of the secret contains one of these 4-grams, so a text
            # without any of them holds no run: one cheap scan per anchor instead of per window.
            for i in range(0, len(value) - ANCHOR + 1, ANCHOR):
                grams = anchors.setdefault(value[i : i + ANCHOR], [])
                for j in range(max(0, i - WINDOW + ANCHOR), min(i, len(value) - WINDOW) + 1):
                    grams.append(value[j : j + WINDOW])
        self._secrets = secrets
        self._windows = windows
        self._anchors = {a: sorted(set(ws)) for a, ws in anchors.items()}

    def __call__(self, text: str) -> str:
        windows = self._windows
        if not windows or not text or len(text) < WINDOW:
            return text
        secrets = self._secrets
        spans: list[tuple[int, int, str]] = []
        seen: set[str] = set()
        for anchor, candidates in self._anchors.items():
            if anchor not in text:
                continue
            for window in candidates:
                if window in seen:
                    continue
                seen.add(window)
                at = text.find(window)
                while at >= 0:
                    spans.append(self._grow(text, at, windows[window], secrets))
                    at = text.find(window, at + 1)
        if not spans:
            return text
        spans.sort()
        out, last = [], 0
        for start, end, name in spans:
            start = max(start, last)
            if end <= start:
                continue
            out.append(text[last:start])
            out.append(f"[redacted:{name}]")
            last = end
        out.append(text[last:])
        return "".join(out)

    @staticmethod
    def _grow(
        text: str, at: int, places: list[tuple[str, int]], secrets: dict[str, str]
    ) -> tuple[int, int, str]:
        """The longest run around ``text[at:at+WINDOW]`` that follows one secret."""
        best = (at, at + WINDOW, secrets[places[0][0]])
        for value, i in places:
            left, j = at, i
            while left > 0 and j > 0 and text[left - 1] == value[j - 1]:
                left -= 1
                j -= 1
            right, k = at + WINDOW, i + WINDOW
            while right < len(text) and k < len(value) and text[right] == value[k]:
                right += 1
                k += 1
            if right - left > best[1] - best[0]:
                best = (left, right, secrets[value])
        return best
