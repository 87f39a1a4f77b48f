"""SQLite access. One connection per request; callers commit."""

import json
import os
import sqlite3
from datetime import date

from app.models import Customer, Invoice

DB_PATH = os.environ.get("INVOICELY_DB", "invoicely.db")

SCHEMA = """
CREATE TABLE IF NOT EXISTS customers (
    id INTEGER PRIMARY KEY, name TEXT NOT NULL, email TEXT NOT NULL, country TEXT DEFAULT 'US'
);
CREATE TABLE IF NOT EXISTS invoices (
    id INTEGER PRIMARY KEY, customer_id INTEGER NOT NULL REFERENCES customers(id),
    issued_on TEXT NOT NULL, due_on TEXT NOT NULL, lines TEXT NOT NULL, paid INTEGER DEFAULT 0
);
CREATE TABLE IF NOT EXISTS users (
    id INTEGER PRIMARY KEY, username TEXT UNIQUE NOT NULL, password_hash TEXT NOT NULL,
    is_admin INTEGER DEFAULT 0
);
"""


def connect(path: str = DB_PATH) -> sqlite3.Connection:
    conn = sqlite3.connect(path)
    conn.row_factory = sqlite3.Row
    return conn


def init_schema(conn: sqlite3.Connection) -> None:
    conn.executescript(SCHEMA)


def _invoice_from_row(row: sqlite3.Row) -> Invoice:
    return Invoice(
        id=row["id"],
        customer_id=row["customer_id"],
        issued_on=date.fromisoformat(row["issued_on"]),
        due_on=date.fromisoformat(row["due_on"]),
        lines=[tuple(line) for line in json.loads(row["lines"])],
        paid=bool(row["paid"]),
    )


def all_invoices(conn: sqlite3.Connection) -> list[Invoice]:
    rows = conn.execute("SELECT * FROM invoices ORDER BY issued_on").fetchall()
    return [_invoice_from_row(r) for r in rows]


def all_customers(conn: sqlite3.Connection) -> list[Customer]:
    rows = conn.execute("SELECT id, name, email, country FROM customers").fetchall()
    return [Customer(**dict(r)) for r in rows]


def insert_invoice(conn: sqlite3.Connection, invoice: Invoice) -> int:
    cur = conn.execute(
        "INSERT INTO invoices (customer_id, issued_on, due_on, lines, paid) VALUES (?, ?, ?, ?, ?)",
        (
            invoice.customer_id,
            invoice.issued_on.isoformat(),
            invoice.due_on.isoformat(),
            json.dumps([list(line) for line in invoice.lines]),
            int(invoice.paid),
        ),
    )
    return cur.lastrowid


def mark_paid(conn: sqlite3.Connection, invoice_id: int) -> None:
    conn.execute("UPDATE invoices SET paid = 1 WHERE id = ?", (invoice_id,))
