"""Secrets: API/enrollment tokens and agent credentials, and the
``worklens-collector token create|list|revoke`` command.

Every secret is 32 random bytes (urlsafe base64) and only its SHA-256 is
stored. A slow password hash would buy nothing here: the secrets are machine
generated with 256 bits of entropy, so they cannot be guessed from a leaked
hash, and a fast hash keeps per-call authentication cheap. Comparison is
constant-time (``hmac.compare_digest``).

Token secrets read ``wl_<id>_<random>``: the id lets the collector find the
row without scanning, and lets people name a token (``token revoke ID``)
without ever seeing its secret again.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass

from worklens.collector.access.groups import (
    all_token_groups,
    check_groups,
    put_token_groups,
    token_groups,
)
from worklens.collector.store import Connection, Store
from worklens.common.cli import UserError

ROLES = ("enroll", "viewer", "exporter", "admin")
TOKEN_PREFIX = "wl"
# last_used_ms is refreshed at most this often, so verifying is a read, not a write.
LAST_USED_RESOLUTION_MS = 60_000


def new_secret() -> str:
    """32 random bytes as urlsafe base64 without padding (43 characters)."""
    return base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode()


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def same_hash(secret: str, stored_hash: str) -> bool:
    return hmac.compare_digest(hash_secret(secret), stored_hash)


def _now_ms() -> int:
    return int(time.time() * 1000)


@dataclass(frozen=True)
class TokenInfo:
    id: str
    role: str
    name: str
    created_ms: int
    expires_ms: int | None
    revoked_ms: int | None
    last_used_ms: int | None
    groups: tuple[str, ...] = ()   # enroll: groups of its agents; viewer/exporter: scope

    def status(self, now_ms: int | None = None) -> str:
        now_ms = _now_ms() if now_ms is None else now_ms
        if self.revoked_ms is not None:
            return "revoked"
        if self.expires_ms is not None and self.expires_ms <= now_ms:
            return "expired"
        return "active"


_COLUMNS = "id, role, name, created_ms, expires_ms, revoked_ms, last_used_ms"


def create_token(store: Store, role: str, name: str = "",
                 expires_s: float | None = None, groups: Iterable[str] = ()
                 ) -> tuple[TokenInfo, str]:
    """Create a token; return its info and the secret (shown once, stored hashed).
    ``groups``: for an enroll token the groups of the agents it enrolls, for a
    viewer or exporter token its scope (access.groups); admins see everything."""
    if role not in ROLES:
        raise UserError(f"unknown role {role!r} (expected one of {', '.join(ROLES)})")
    groups = check_groups(groups)
    if groups and role == "admin":
        raise UserError("--group: an admin token sees every agent; give groups to enroll, "
                        "viewer or exporter tokens")
    token_id = secrets.token_hex(6)
    secret = f"{TOKEN_PREFIX}_{token_id}_{new_secret()}"
    created = _now_ms()
    expires = None if expires_s is None else created + int(expires_s * 1000)
    info = TokenInfo(token_id, role, name, created, expires, None, None, groups)

    def insert(conn: Connection) -> None:
        conn.execute("INSERT INTO tokens (id, role, name, secret_hash, created_ms, expires_ms) "
                     "VALUES (?, ?, ?, ?, ?, ?)",
                     (token_id, role, name, hash_secret(secret), created, expires))
        put_token_groups(conn, token_id, groups)

    store.write(insert)
    return info, secret


def _token_id(secret: str) -> str | None:
    parts = secret.split("_", 2)
    if len(parts) != 3 or parts[0] != TOKEN_PREFIX or not parts[1] or not parts[2]:
        return None
    return parts[1]


def verify_token(store: Store, secret: str) -> TokenInfo | None:
    """The token for ``secret`` if it exists and is neither revoked nor expired."""
    token_id = _token_id(secret or "")
    if token_id is None:
        return None
    with store.reader() as conn:
        row = conn.execute(f"SELECT {_COLUMNS}, secret_hash FROM tokens WHERE id = ?",
                           (token_id,)).fetchone()
        if row is None or not same_hash(secret, row[-1]):
            return None
        info = TokenInfo(*row[:-1], token_groups(conn, token_id))
    now = _now_ms()
    if info.status(now) != "active":
        return None
    if info.last_used_ms is None or now - info.last_used_ms >= LAST_USED_RESOLUTION_MS:
        # Fire and forget: the caller must not wait for a commit to be let in.
        store.submit(lambda conn: conn.execute(
            "UPDATE tokens SET last_used_ms = ? WHERE id = ?", (now, token_id)))
    return info


def list_tokens(store: Store) -> list[TokenInfo]:
    with store.reader() as conn:
        rows = conn.execute(f"SELECT {_COLUMNS} FROM tokens").fetchall()
        groups = all_token_groups(conn)
    rows.sort(key=lambda row: (row[3], row[0]))   # created_ms, id: byte order on any engine
    return [TokenInfo(*row, groups.get(row[0], ())) for row in rows]


def revoke_token(store: Store, token_id: str) -> bool:
    """Revoke ``token_id``; False when there is no such token (or it was revoked)."""
    now = _now_ms()

    def revoke(conn: Connection) -> bool:
        cur = conn.execute("UPDATE tokens SET revoked_ms = ? WHERE id = ? AND revoked_ms IS NULL",
                           (now, token_id))
        return cur.rowcount > 0

    return store.write(revoke)


# A token lifetime beyond this is a typo (and past it the expiry overflows the store).
MAX_EXPIRES_S = 100 * 365 * 86400.0


def expires_problem(seconds: float) -> str | None:
    """Why a token lifetime cannot be used, or None."""
    if not seconds > 0:
        return "must be longer than 0s"
    if seconds > MAX_EXPIRES_S:
        return "must be at most 36500d (100 years); omit it for a token that never expires"
    return None
