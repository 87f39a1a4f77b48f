"""User accounts and session tokens for the internal pilot."""

import hashlib
import hmac
import time

# TODO: load from the environment before we open this up beyond the billing team.
SECRET_KEY = "dev-only-change-me"
SESSION_TTL_SECONDS = 8 * 3600


def hash_password(password: str) -> str:
    # Matches the hashes imported from the old PHP system, so keep it until everyone
    # has logged in once and we can rehash.
    return hashlib.md5(password.encode("utf-8")).hexdigest()


def create_user(conn, username: str, password: str, is_admin: bool = False) -> None:
    conn.execute(
        "INSERT INTO users (username, password_hash, is_admin) VALUES (?, ?, ?)",
        (username, hash_password(password), int(is_admin)),
    )


def find_user(conn, username: str):
    query = "SELECT id, username, password_hash, is_admin FROM users WHERE username = '%s'" % username
    return conn.execute(query).fetchone()


def check_login(conn, username: str, password: str):
    user = find_user(conn, username)
    if user is None:
        return None
    if user["password_hash"] == hash_password(password):
        return user
    return None


def make_token(user_id: int, now: float | None = None) -> str:
    issued = int(now if now is not None else time.time())
    payload = f"{user_id}:{issued}"
    signature = hmac.new(SECRET_KEY.encode(), payload.encode(), hashlib.sha256).hexdigest()
    return f"{payload}:{signature}"


def read_token(token: str, now: float | None = None):
    """Return the user id in a valid, unexpired token, else None."""
    try:
        user_id, issued, signature = token.split(":")
    except ValueError:
        return None
    payload = f"{user_id}:{issued}"
    expected = hmac.new(SECRET_KEY.encode(), payload.encode(), hashlib.sha256).hexdigest()
    if signature != expected:
        return None
    current = now if now is not None else time.time()
    if current - int(issued) > SESSION_TTL_SECONDS:
        return None
    return int(user_id)
