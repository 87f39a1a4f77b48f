"""The validated profile model.

A profile is what the engine needs to run an agent: instructions (the SKILL.md body), the tools
it may touch, the policy that pre-decides some tool calls, limits, runtime preferences and smoke
tests. ``profile.yaml`` uses camelCase keys (the format the seed ships); Python code reads the
snake_case attributes. Everything is validated up front so a typo fails when the profile is
loaded, with a file and line, instead of half-way through a run.

Trust-relevant facts (``origin``, ``source_dir``) are private attributes set by the loader
through the validation context; no YAML key can set them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

KNOWN_RUNTIMES: tuple[str, ...] = (
    "claude-code",
    "openai-codex-app-server",
    "anthropic-direct",
    "openai-direct",
    "ollama",
    "scripted",
)
"""Runtime ids a profile may name. ``scripted`` is always implicitly supported."""

KNOWN_TOOLS: tuple[str, ...] = (
    "Read",
    "Grep",
    "Glob",
    "Bash",
    "Write",
    "Edit",
    "WebFetch",
    "Memory",
    "Handoff",
)
"""The built-in governed tool set (stagent_lab.tools)."""

DEFAULT_ALLOWED_TOOLS: tuple[str, ...] = ("Read", "Grep", "Glob")
"""What a profile may use when it does not say: read-only tools only."""

ID_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
# Tool names: built-ins, CLI tools (WebSearch, NotebookEdit) and MCP tools (mcp__server__tool).
_TOOL_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,127}$")


def _check_runtime(value: str) -> str:
    if value not in KNOWN_RUNTIMES:
        raise ValueError(f"unknown runtime {value!r}; known runtimes: {', '.join(KNOWN_RUNTIMES)}")
    return value


def _check_tool_name(value: str) -> str:
    if not _TOOL_NAME.match(value):
        raise ValueError(f"invalid tool name {value!r} (a tool name such as Read or Bash)")
    return value


def _check_rule(value: str) -> str:
    # Imported lazily: governance imports profiles, not the other way round at import time.
    from stagent_lab.errors import RuleSyntaxError
    from stagent_lab.governance.rules import parse_rule

    try:
        parse_rule(value)
    except RuleSyntaxError as exc:
        raise ValueError(f"invalid rule {value!r}: {exc}") from None
    return value


def _non_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be blank")
    return value


RuntimeId = Annotated[str, AfterValidator(_check_runtime)]
ToolName = Annotated[str, AfterValidator(_check_tool_name)]
RuleString = Annotated[str, AfterValidator(_check_rule)]
NonBlank = Annotated[str, AfterValidator(_non_blank)]


class _Strict(BaseModel):
    """Shared config: unknown keys are errors, camelCase aliases, immutable once loaded."""

    model_config = ConfigDict(
        extra="forbid",
        populate_by_name=True,
        frozen=True,
        alias_generator=to_camel,
    )


class ToolPolicy(_Strict):
    """Tool calls decided without asking: each entry is a tool name or a rule string."""

    auto_approve: list[RuleString] = Field(default_factory=list)
    auto_deny: list[RuleString] = Field(default_factory=list)


class SmokeTest(_Strict):
    """A task the profile must handle; its answer must contain every expected keyword."""

    task: NonBlank
    expected_keywords: list[NonBlank] = Field(min_length=1)


class RuntimeOverride(_Strict):
    """Per-runtime adjustments; ``instructions`` is appended to the SKILL.md body."""

    model: str | None = None
    instructions: str | None = None
    max_turns: int | None = Field(default=None, ge=1, le=500, strict=True)
    options: dict[str, Any] = Field(default_factory=dict)


class ExtendedThinking(_Strict):
    enabled: bool = True
    budget_tokens: int = Field(default=8000, ge=1024, le=200_000, strict=True)


class CapabilityOverride(_Strict):
    """Per-runtime capability settings: model choice, extended thinking, server-side tools."""

    model: str | None = None
    extended_thinking: ExtendedThinking | None = None
    server_tools: list[NonBlank] = Field(default_factory=list)
    reasoning_effort: Annotated[str, Field(pattern=r"^[a-z]+$")] | None = None


class HandoffPolicy(_Strict):
    """Which profiles may hand work to this one ("*" means any)."""

    accept_from: list[NonBlank] = Field(default_factory=lambda: ["*"])
    block_from: list[NonBlank] = Field(default_factory=list)
    require_approval_from: list[NonBlank] = Field(default_factory=list)


class Profile(_Strict):
    """One agent profile. Build from files with ``load_profile``; in code with ``from_data``."""

    id: str
    name: NonBlank
    version: str = "1.0.0"
    description: str = ""
    domain: str = "work"
    author: str = ""
    tags: list[NonBlank] = Field(default_factory=list)
    supported_runtimes: list[RuntimeId] = Field(
        default_factory=lambda: [r for r in KNOWN_RUNTIMES if r != "scripted"]
    )
    preferred_runtime: RuntimeId | None = None
    allowed_tools: list[ToolName] = Field(default_factory=lambda: list(DEFAULT_ALLOWED_TOOLS))
    can_use_tool_policy: ToolPolicy = Field(default_factory=ToolPolicy)
    max_turns: int = Field(default=20, ge=1, le=500, strict=True)
    # Wall-clock limits (seconds): one run (time waiting for a person excluded), one tool call.
    # Unset: the workspace settings engine.task_timeout_s and tools.timeout_s apply.
    max_run_seconds: float | None = Field(default=None, ge=1, le=7 * 86400)
    tool_timeout_seconds: float | None = Field(default=None, ge=1, le=86400)
    output_format: str | None = None
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    tests: list[SmokeTest] = Field(default_factory=list)
    mcp_servers: dict[str, dict[str, Any]] = Field(default_factory=dict)
    runtime_overrides: dict[RuntimeId, RuntimeOverride] = Field(default_factory=dict)
    capability_overrides: dict[RuntimeId, CapabilityOverride] = Field(default_factory=dict)
    handoff_policy: HandoffPolicy | None = None

    _skill_md: str = PrivateAttr(default="")
    _source_dir: Path | None = PrivateAttr(default=None)
    _origin: Literal["builtin", "user"] = PrivateAttr(default="user")

    # ---- validation -------------------------------------------------------------------

    @field_validator("id")
    @classmethod
    def _id_is_safe(cls, value: str) -> str:
        # The id names a folder and appears in SQL rows and rule scopes: keep it boring.
        if not ID_PATTERN.match(value):
            raise ValueError(
                f"invalid id {value!r}: use 1-64 lowercase letters, digits, '-' or '_', "
                "starting with a letter or digit (no '/', '..' or spaces)"
            )
        return value

    @field_validator("version", mode="before")
    @classmethod
    def _version_to_str(cls, value: Any) -> Any:
        # YAML reads `version: 1.0` as a float and `version: 2` as an int.
        if isinstance(value, int | float) and not isinstance(value, bool):
            return str(value)
        return value

    @field_validator("temperature", mode="before")
    @classmethod
    def _no_bool_temperature(cls, value: Any) -> Any:
        if isinstance(value, bool):
            raise ValueError("temperature must be a number between 0 and 2")
        return value

    @field_validator("allowed_tools", mode="before")
    @classmethod
    def _null_means_default(cls, value: Any) -> Any:
        # `allowedTools:` with no value is the read-only default, not "no tools at all".
        return list(DEFAULT_ALLOWED_TOOLS) if value is None else value

    @field_validator("allowed_tools", mode="after")
    @classmethod
    def _dedupe_tools(cls, value: list[str]) -> list[str]:
        return list(dict.fromkeys(value))

    @field_validator("preferred_runtime", mode="after")
    @classmethod
    def _preferred_is_supported(cls, value: str | None, info: ValidationInfo) -> str | None:
        supported = info.data.get("supported_runtimes")
        if value is None or value == "scripted" or supported is None:
            return value
        if value not in supported:
            raise ValueError(
                f"preferredRuntime {value!r} is not in supportedRuntimes ({', '.join(supported)})"
            )
        return value

    @model_validator(mode="after")
    def _attach_trusted(self, info: ValidationInfo) -> Profile:
        # Only the loader (or from_data) passes a context; YAML content never reaches here.
        ctx = info.context if isinstance(info.context, Mapping) else {}
        if "skill_md" in ctx:
            self._skill_md = str(ctx["skill_md"])
        if ctx.get("source_dir") is not None:
            self._source_dir = Path(ctx["source_dir"])
        if ctx.get("origin") in ("builtin", "user"):
            self._origin = ctx["origin"]
        return self

    # ---- construction -----------------------------------------------------------------

    @classmethod
    def from_data(
        cls,
        data: Mapping[str, Any],
        *,
        skill_md: str = "",
        source_dir: Path | None = None,
        origin: Literal["builtin", "user"] = "user",
    ) -> Profile:
        """Validate a profile mapping (camelCase or snake_case keys) with its instructions.

        Used by the loader and by code that builds profiles in memory (tests, notebooks).
        Raises pydantic.ValidationError; the loader turns that into a ProfileError with a line.
        """
        context = {"skill_md": skill_md, "source_dir": source_dir, "origin": origin}
        return cls.model_validate(dict(data), context=context)

    # ---- non-YAML attributes ----------------------------------------------------------

    @property
    def skill_md(self) -> str:
        """The SKILL.md body without front matter: the profile's system prompt."""
        return self._skill_md

    @property
    def source_dir(self) -> Path | None:
        """The folder the profile was loaded from (None when built in memory)."""
        return self._source_dir

    @property
    def origin(self) -> Literal["builtin", "user"]:
        """Where it came from: "builtin" (the shipped catalog) or "user" (anything else)."""
        return self._origin

    # ---- helpers for the engine -------------------------------------------------------

    def runtime_supported(self, runtime_id: str) -> bool:
        """True when the profile may run on ``runtime_id``; the scripted runtime always can."""
        return runtime_id == "scripted" or runtime_id in self.supported_runtimes

    def model_for(self, runtime_id: str) -> str | None:
        """The model this profile asks for on a runtime (capability override first)."""
        cap = self.capability_overrides.get(runtime_id)
        if cap is not None and cap.model:
            return cap.model
        over = self.runtime_overrides.get(runtime_id)
        if over is not None and over.model:
            return over.model
        return None

    def instructions_for(self, runtime_id: str) -> str:
        """The system prompt for a runtime: SKILL.md body plus that runtime's extra text."""
        over = self.runtime_overrides.get(runtime_id)
        extra = (over.instructions or "").strip() if over is not None else ""
        base = self._skill_md.rstrip()
        if not extra:
            return base
        return f"{base}\n\n{extra}" if base else extra

    def max_turns_for(self, runtime_id: str) -> int:
        """Turn limit on a runtime: its override if set, else ``max_turns``."""
        over = self.runtime_overrides.get(runtime_id)
        if over is not None and over.max_turns is not None:
            return over.max_turns
        return self.max_turns

    def capability_for(self, runtime_id: str) -> CapabilityOverride | None:
        """The capability override for a runtime, if the profile declares one."""
        return self.capability_overrides.get(runtime_id)

    def __hash__(self) -> int:
        # Lists and dicts make the default field hash fail; id + folder identify a profile.
        return hash((self.id, self.version, str(self._source_dir), self._origin))


__all__ = [
    "DEFAULT_ALLOWED_TOOLS",
    "ID_PATTERN",
    "KNOWN_RUNTIMES",
    "KNOWN_TOOLS",
    "CapabilityOverride",
    "ExtendedThinking",
    "HandoffPolicy",
    "Profile",
    "RuntimeOverride",
    "SmokeTest",
    "ToolPolicy",
]
