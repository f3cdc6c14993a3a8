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
