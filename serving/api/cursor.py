"""Opaque keyset cursors: the sort key of the last row of a page, base64url-encoded JSON.

Why keyset and not offset: a page is an index range scan from the cursor, as cheap on page
1,000 as on page 1, and rows inserted meanwhile never shift or repeat what the client sees.
"""

from __future__ import annotations

import base64
import binascii
from datetime import datetime

import orjson
from fastapi import HTTPException


def encode(*values: object) -> str:
    raw = orjson.dumps([v.isoformat() if isinstance(v, datetime) else v for v in values])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode(cursor: str, kinds: tuple[type, ...]) -> list[object]:
    """The values of a cursor this API made, typed per `kinds`; 422 for anything else."""
    bad = HTTPException(
        422,
        "cursor is not one this endpoint returned: pass next_cursor from the previous page unchanged",
    )
    try:
        values = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (binascii.Error, ValueError, orjson.JSONDecodeError):
        raise bad from None
    if not isinstance(values, list) or len(values) != len(kinds):
        raise bad
    out: list[object] = []
    for value, kind in zip(values, kinds, strict=True):
        if kind is datetime:
            if not isinstance(value, str):
                raise bad
            try:
                parsed = datetime.fromisoformat(value)
            except ValueError:
                raise bad from None
            if parsed.tzinfo is None:
                raise bad
            out.append(parsed)
        elif kind is int:
            if not isinstance(value, int) or isinstance(value, bool) or not -(2**63) <= value < 2**63:
                raise bad
            out.append(value)
        else:
            if not isinstance(value, str) or "\x00" in value:
                raise bad
            out.append(value)
    return out
