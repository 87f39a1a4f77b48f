"""Turning token counts into dollars with genai-prices.

genai-prices (maintained by Pydantic) tracks every major provider's list prices, including
cache-read/cache-write tiers, so we do not keep a price table of our own. Its ``input_tokens``
is the *total* input including cached tokens, while our ledger stores uncached input, cache
reads and cache writes separately (as Anthropic reports them), so we add them back here.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from stagent_lab.runtimes.base import UsageReport

FREE_PROVIDERS = {"ollama", "scripted"}
KNOWN_PROVIDERS = {"anthropic", "openai", "google", "mistral", "groq", "deepseek", "x-ai"}


@dataclass(frozen=True)
class PriceQuote:
    cost_usd: float | None
    pricing_source: str  # genai-prices | runtime | free | none
    status: str  # ok | unknown_pricing


def price_usage(report: UsageReport) -> PriceQuote:
    if report.provider == "ollama":  # local models cost nothing per token
        return PriceQuote(0.0, "free", "ok")
    if report.cost_usd is not None:
        return PriceQuote(float(report.cost_usd), "runtime", "ok")
    if report.provider in FREE_PROVIDERS and (report.model in ("", "scripted") or not report.model):
        return PriceQuote(0.0, "free", "ok")
    provider = report.provider if report.provider in KNOWN_PROVIDERS else None
    calc = _calculator()
    if calc is None:
        return PriceQuote(None, "none", "unknown_pricing")
    total_in = report.input_tokens + report.cache_read_tokens + report.cache_write_tokens
    try:
        cost = calc(
            report.model,
            provider,
            total_in,
            report.output_tokens,
            report.cache_read_tokens,
            report.cache_write_tokens,
        )
    except LookupError:
        return PriceQuote(None, "none", "unknown_pricing")
    return PriceQuote(cost, "genai-prices", "ok")


@functools.cache
def _calculator():
    try:
        from genai_prices import Usage, calc_price
    except ImportError:  # pragma: no cover - a core dependency
        return None

    def calc(model, provider, total_in, out, cache_read, cache_write) -> float:
        usage = Usage(
            input_tokens=total_in,
            output_tokens=out,
            cache_read_tokens=cache_read or None,
            cache_write_tokens=cache_write or None,
        )
        result = calc_price(usage, model_ref=model, provider_id=provider)
        return float(result.total_price)

    return calc
