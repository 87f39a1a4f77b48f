"""Keep secrets out of logs and the store.

At engine start we collect the values of environment variables whose names look secret (API
keys, tokens, passwords). Any such value found in a log payload or transcript is replaced by
``[redacted:NAME]`` before it is written. This backs up the adapters' own rule of never logging
keys: a tool that prints the environment, or a model that echoes a key, still cannot leak it.
"""

from __future__ import annotations

import os
import re

_SECRET_NAME = re.compile(r"(KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL|AUTH)", re.IGNORECASE)
_MIN_LEN = 8


class Redactor:
    def __init__(self, extra: dict[str, str] | None = None) -> None:
        self.secrets: dict[str, str] = {}
        for name, value in os.environ.items():
            if _SECRET_NAME.search(name) and len(value) >= _MIN_LEN:
                self.secrets[value] = name
        self.add(extra or {})

    def add(self, named: dict[str, str]) -> None:
        """Also redact these values (name → secret value)."""
        for name, value in named.items():
            if len(value) >= _MIN_LEN:
                self.secrets[value] = name
        self._pattern = (
            re.compile("|".join(re.escape(v) for v in sorted(self.secrets, key=len, reverse=True)))
            if self.secrets
            else None
        )

    def __call__(self, text: str) -> str:
        if self._pattern is None or not text:
            return text
        return self._pattern.sub(lambda m: f"[redacted:{self.secrets[m.group(0)]}]", text)
