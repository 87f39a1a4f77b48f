"""invoicely: a small invoice service (customers, invoices, payments, reports)."""

__version__ = "0.3.1"
