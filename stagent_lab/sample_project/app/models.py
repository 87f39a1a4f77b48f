"""Plain data objects shared by the database layer, the API and the reports."""

from dataclasses import dataclass, field
from datetime import date
from decimal import ROUND_HALF_UP, Decimal

CENT = Decimal("0.01")


def money(value) -> Decimal:
    """Round to cents the way the accountants do (half up, never banker's rounding)."""
    return Decimal(str(value)).quantize(CENT, rounding=ROUND_HALF_UP)


@dataclass
class Customer:
    id: int
    name: str
    email: str
    country: str = "US"


@dataclass
class Invoice:
    id: int
    customer_id: int
    issued_on: date
    due_on: date
    lines: list = field(default_factory=list)  # [(description, quantity, unit_price)]
    paid: bool = False

    @property
    def total(self) -> Decimal:
        return money(sum(Decimal(str(q)) * Decimal(str(p)) for _, q, p in self.lines))

    def is_overdue(self, today: date) -> bool:
        return not self.paid and today > self.due_on
