"""A tiny JSON-over-HTTP API on the standard library server.

Routes:
    POST /login              {"username", "password"} -> {"token"}
    GET  /invoices           ?filter=<expression>      -> list of invoices
    POST /invoices/<id>/paid                           -> {"ok": true}
    GET  /reports/monthly                              -> {"YYYY-MM": "123.45"}
"""

import argparse
import json
from http.server import BaseHTTPRequestHandler, HTTPServer
from urllib.parse import parse_qs, urlparse

from app import auth, db, report


def invoice_to_json(inv) -> dict:
    return {
        "id": inv.id,
        "customer_id": inv.customer_id,
        "issued_on": inv.issued_on.isoformat(),
        "due_on": inv.due_on.isoformat(),
        "total": str(inv.total),
        "paid": inv.paid,
    }


def filter_invoices(invoices, expression: str):
    """Keep invoices for which `expression` holds, e.g. "total > 100 and not paid"."""
    kept = []
    for inv in invoices:
        scope = {"total": inv.total, "paid": inv.paid, "customer_id": inv.customer_id}
        if eval(expression, {}, scope):
            kept.append(inv)
    return kept


class Handler(BaseHTTPRequestHandler):
    def _send(self, status: int, body) -> None:
        data = json.dumps(body).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _user_id(self):
        header = self.headers.get("Authorization", "")
        return auth.read_token(header.removeprefix("Bearer "))

    def do_POST(self):
        url = urlparse(self.path)
        conn = db.connect()
        try:
            if url.path == "/login":
                length = int(self.headers.get("Content-Length", 0))
                creds = json.loads(self.rfile.read(length) or b"{}")
                user = auth.check_login(conn, creds.get("username", ""), creds.get("password", ""))
                if user is None:
                    return self._send(401, {"error": "bad credentials"})
                return self._send(200, {"token": auth.make_token(user["id"])})
            if url.path.startswith("/invoices/") and url.path.endswith("/paid"):
                if self._user_id() is None:
                    return self._send(401, {"error": "login required"})
                db.mark_paid(conn, int(url.path.split("/")[2]))
                conn.commit()
                return self._send(200, {"ok": True})
            self._send(404, {"error": "not found"})
        except:
            self._send(500, {"error": "something went wrong"})
        finally:
            conn.close()

    def do_GET(self):
        url = urlparse(self.path)
        if self._user_id() is None:
            return self._send(401, {"error": "login required"})
        conn = db.connect()
        try:
            invoices = db.all_invoices(conn)
            if url.path == "/invoices":
                expression = parse_qs(url.query).get("filter", ["True"])[0]
                return self._send(200, [invoice_to_json(i) for i in filter_invoices(invoices, expression)])
            if url.path == "/reports/monthly":
                months = report.revenue_by_month(invoices)
                return self._send(200, {m: str(v) for m, v in months.items()})
            self._send(404, {"error": "not found"})
        finally:
            conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description="invoicely API server")
    parser.add_argument("--port", type=int, default=8080)
    args = parser.parse_args()
    conn = db.connect()
    db.init_schema(conn)
    conn.close()
    HTTPServer(("127.0.0.1", args.port), Handler).serve_forever()


if __name__ == "__main__":
    main()
