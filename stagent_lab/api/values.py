"""Validated value types for everything that crosses the contract.

Each value from outside is checked (or repaired) here, once, before it can reach the engine or
the store: integers stay inside the column's range, numbers are finite, text encodes as UTF-8
(lone surrogates are replaced, never dropped) and has a length cap. A failure names the field.
"""

from __future__ import annotations

import math
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, Field

from stagent_lab._text import repair_text

INT32_MAX = 2**31 - 1


def _text(value: Any) -> Any:
    if isinstance(value, str):
        return repair_text(value)
    return value


def _finite(value: float) -> float:
    if not math.isfinite(value):
        raise ValueError("must be a finite number")
    return value


def _not_bool(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError("must be a number, not true/false")
    return value


Text = Annotated[str, BeforeValidator(_text)]
ShortText = Annotated[str, BeforeValidator(_text), Field(max_length=500)]
Name = Annotated[str, BeforeValidator(_text), Field(min_length=1, max_length=200)]
Identifier = Annotated[
    str, BeforeValidator(_text), Field(min_length=1, max_length=128, pattern=r"^[\w.:@/+-]+$")
]
Prompt = Annotated[str, BeforeValidator(_text), Field(min_length=1, max_length=2_000_000)]
Message = Annotated[str, BeforeValidator(_text), Field(max_length=100_000)]
PositiveInt = Annotated[int, BeforeValidator(_not_bool), Field(ge=1, le=INT32_MAX)]
Turns = Annotated[int, BeforeValidator(_not_bool), Field(ge=1, le=10_000)]
Count = Annotated[int, BeforeValidator(_not_bool), Field(ge=0, le=INT32_MAX)]
Usd = Annotated[
    float, BeforeValidator(_not_bool), Field(gt=0, le=1_000_000), AfterValidator(_finite)
]
Seconds = Annotated[
    float, BeforeValidator(_not_bool), Field(gt=0, le=30 * 86400), AfterValidator(_finite)
]
