"""Revenue and overdue reports for the monthly close."""

from collections import defaultdict
from datetime import date
from decimal import Decimal

from app.models import Customer, Invoice, money


def revenue_by_month(invoices: list[Invoice]) -> dict[str, Decimal]:
    """Paid revenue per calendar month, keyed 'YYYY-MM', oldest first."""
    totals: dict[str, Decimal] = defaultdict(Decimal)
    for inv in invoices:
        if inv.paid:
            totals[inv.issued_on.strftime("%Y-%m")] += inv.total
    return {month: money(totals[month]) for month in sorted(totals)}


def revenue_by_customer(invoices: list[Invoice], customers: list[Customer]) -> list[tuple]:
    """(customer name, paid revenue) for every customer, biggest first."""
    rows = []
    for customer in customers:
        total = Decimal(0)
        for inv in invoices:
            if inv.customer_id == customer.id and inv.paid:
                total += inv.total
        rows.append((customer.name, money(total)))
    rows.sort(key=lambda row: row[1], reverse=True)
    return rows


def find_duplicates(invoices: list[Invoice]) -> list[tuple[int, int]]:
    """Pairs of invoice ids that look double-billed (same customer, day and amount)."""
    pairs = []
    for i, a in enumerate(invoices):
        for b in invoices[i + 1 :]:
            if (a.customer_id, a.issued_on, a.total) == (b.customer_id, b.issued_on, b.total):
                pairs.append((a.id, b.id))
    return pairs


def overdue(invoices: list[Invoice], today: date) -> list[Invoice]:
    # TODO: add a grace period per customer once sales agrees on the numbers.
    return sorted((inv for inv in invoices if inv.is_overdue(today)), key=lambda i: i.due_on)
