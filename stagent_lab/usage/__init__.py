"""Usage ledger and pricing."""

from stagent_lab.usage.pricing import PriceQuote, price_usage

__all__ = ["PriceQuote", "price_usage"]
