from datetime import date
from decimal import Decimal

from app.models import Customer, Invoice
from app.report import find_duplicates, overdue, revenue_by_customer, revenue_by_month


def make(id, customer_id, day, amount, paid=True, due=None):
    return Invoice(
        id=id,
        customer_id=customer_id,
        issued_on=day,
        due_on=due or day,
        lines=[("consulting", 1, amount)],
        paid=paid,
    )


def test_revenue_by_month_counts_only_paid_invoices():
    invoices = [
        make(1, 1, date(2024, 1, 5), "100.00"),
        make(2, 1, date(2024, 1, 20), "50.50"),
        make(3, 2, date(2024, 2, 1), "999.99", paid=False),
        make(4, 2, date(2024, 2, 3), "10"),
    ]
    assert revenue_by_month(invoices) == {
        "2024-01": Decimal("150.50"),
        "2024-02": Decimal("10.00"),
    }


def test_revenue_by_customer_sorted_biggest_first():
    customers = [Customer(1, "Acme", "ap@acme.test"), Customer(2, "Globex", "billing@globex.test")]
    invoices = [make(1, 1, date(2024, 1, 5), "20"), make(2, 2, date(2024, 1, 6), "30")]
    assert revenue_by_customer(invoices, customers) == [
        ("Globex", Decimal("30.00")),
        ("Acme", Decimal("20.00")),
    ]


def test_find_duplicates_pairs_same_customer_day_and_amount():
    day = date(2024, 3, 1)
    invoices = [make(1, 7, day, "42"), make(2, 7, day, "42"), make(3, 8, day, "42")]
    assert find_duplicates(invoices) == [(1, 2)]


def test_overdue_sorted_by_due_date():
    invoices = [
        make(1, 1, date(2024, 1, 1), "5", paid=False, due=date(2024, 2, 1)),
        make(2, 1, date(2024, 1, 1), "5", paid=False, due=date(2024, 1, 15)),
        make(3, 1, date(2024, 1, 1), "5", paid=True, due=date(2024, 1, 10)),
    ]
    assert [inv.id for inv in overdue(invoices, date(2024, 3, 1))] == [2, 1]
