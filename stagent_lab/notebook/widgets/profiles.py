"""The profiles view: identity, runtime coverage, tools and policy of every profile."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import traitlets

from stagent_lab.notebook import static, views
from stagent_lab.notebook.widgets._base import StagentWidget, bundle

if TYPE_CHECKING:
    from stagent_lab.client.lab import Lab


class ProfilesView(StagentWidget):
    """``ProfilesView()``: one card per profile; runtimes not usable here say why."""

    _esm = bundle("profiles.js")
    profiles = traitlets.List().tag(sync=True)
    errors = traitlets.List().tag(sync=True)

    def __init__(self, lab: Lab | None = None, **kwargs: Any) -> None:
        lab = self._bind_lab(lab)
        super().__init__(**self._read(lab), **kwargs)
        self._listen()

    @staticmethod
    def _read(lab: Lab) -> dict[str, Any]:
        return {
            "profiles": views.profile_cards(lab),
            "errors": [str(e) for e in lab.profile_errors()],
        }

    def refresh(self) -> None:
        """Reload from disk (the registry notices edited profile files)."""
        with self.hold_sync():
            for key, value in self._read(self.lab).items():
                setattr(self, key, value)

    def handle_action(self, kind: str, content: dict[str, Any]) -> str:
        if kind == "refresh":
            self.refresh()
            return f"{len(self.profiles)} profiles"
        return super().handle_action(kind, content)

    def static_bundle(self) -> dict[str, str]:
        return static.profiles(list(self.profiles))
