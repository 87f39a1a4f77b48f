"""Runtimes: one module per provider, behind the contract in ``base``."""

from stagent_lab.runtimes.base import (
    AssistantText,
    Availability,
    Capabilities,
    Notice,
    PermissionDecision,
    Result,
    RunContext,
    Runtime,
    RuntimeEvent,
    SessionStarted,
    ToolOutcome,
    UsageReport,
)
from stagent_lab.runtimes.catalog import RUNTIME_IDS, RuntimeCatalog

__all__ = [
    "RUNTIME_IDS",
    "AssistantText",
    "Availability",
    "Capabilities",
    "Notice",
    "PermissionDecision",
    "Result",
    "RunContext",
    "Runtime",
    "RuntimeCatalog",
    "RuntimeEvent",
    "SessionStarted",
    "ToolOutcome",
    "UsageReport",
]
