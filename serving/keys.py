"""API keys: `la_<id>_<secret>`, stored as the SHA-256 of the whole key.

Why the id travels inside the key: the server finds the row by primary key and compares one
digest in constant time, instead of searching by digest (which leaks nothing, but makes
revocation and "who did this" need a second name for the key).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

_KEY = re.compile(r"^la_([a-z0-9]{8,32})_([A-Za-z0-9_-]{20,128})$")


@dataclass(frozen=True)
class Principal:
    """Who is calling: the key, its tenant, and whether it sees every tenant."""

    key_id: str
    tenant: str
    is_admin: bool


@dataclass(frozen=True)
class NewKey:
    key_id: str
    secret_key: str
    digest: bytes


def digest(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


def new_key() -> NewKey:
    """A fresh key: 12 random id characters, 256 random secret bits."""
    key_id = secrets.token_hex(6)
    key = f"la_{key_id}_{secrets.token_urlsafe(32)}"
    return NewKey(key_id, key, digest(key))


def key_id_of(key: str) -> str | None:
    """The id part of a well-formed key, else None (the caller answers 401 without a query)."""
    m = _KEY.match(key)
    return m.group(1) if m else None


def matches(key: str, stored_digest: bytes) -> bool:
    return hmac.compare_digest(digest(key), stored_digest)


def store_new_key(conn: Any, tenant: str, is_admin: bool, label: str) -> NewKey:
    """Create a key and store its digest (the key itself is returned once, never stored).
    `conn` is a psycopg connection; raises psycopg's UndefinedTable before migrations ran."""
    key = new_key()
    conn.execute(
        "INSERT INTO api_keys (id, tenant, is_admin, key_sha256, label) VALUES (%s, %s, %s, %s, %s)",
        (key.key_id, tenant, is_admin, key.digest, label),
    )
    return key


@dataclass(frozen=True)
class RotatedKey:
    tenant: str
    new: NewKey
    old_expires_at: datetime


def rotate_key(conn: Any, key_id: str, grace_seconds: float) -> RotatedKey | None:
    """Replace a working key: its successor gets the same tenant, admin flag and label, and the old
    key expires after `grace_seconds` (never later than it already would). None when the key is
    unknown, revoked or expired. One transaction: both rows or neither."""
    with conn.transaction():
        row = conn.execute(
            "SELECT tenant, is_admin, label FROM api_keys WHERE id = %s AND revoked_at IS NULL "
            "AND (expires_at IS NULL OR expires_at > now()) FOR UPDATE",
            (key_id,),
        ).fetchone()
        if row is None:
            return None
        tenant, is_admin, label = str(row[0]), bool(row[1]), str(row[2])
        new = store_new_key(conn, tenant, is_admin, f"{label} (rotated from {key_id})".strip())
        expires = conn.execute(
            "UPDATE api_keys SET replaced_by = %s, expires_at = least(expires_at, "
            "now() + make_interval(secs => %s)) WHERE id = %s RETURNING expires_at",
            (new.key_id, grace_seconds, key_id),
        ).fetchone()
    return RotatedKey(tenant, new, expires[0])
