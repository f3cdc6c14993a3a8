"""Splitting a message into tokens and recognising tokens that are variables (pure functions).

Why split on punctuation as well as spaces: `key=value`, `host:port` and `name(id)` carry their
variable part inside one whitespace token; splitting keeps the constant part comparable.
Why a token with a digit is a variable: across the Loghub systems (and our own generator) ids,
counts, sizes, addresses, times and versions carry digits, while the words that tell events apart
almost never do. This one rule does most of the work without any per-system regex.
"""

from __future__ import annotations

import re

WILDCARD = "<*>"

# Words joined by ':' without spaces stay one token ("host:443", "12:04:59"); a ':' that ends a
# word ("error:") or stands alone is punctuation.
_TOKEN = re.compile(r"""[^\s=:,;()\[\]{}"'<>|]+(?::[^\s=:,;()\[\]{}"'<>|]+)*|[=:,;()\[\]{}"'<>|]""")
_HEXISH = re.compile(r"^(?:0x)?[0-9a-fA-F]{8,}$")
_DIGIT = re.compile(r"\d")


def tokenize(message: str) -> list[str]:
    return _TOKEN.findall(message)


_DOTTED = re.compile(r"^[\w-]+(?:\.[\w-]+){2,}$")  # host.domain.tld, a.b.c.Class


#: Day and month names are parts of dates, hence variables, wherever a log writes a date.
_CALENDAR = frozenset(
    (
        *("mon", "tue", "wed", "thu", "fri", "sat", "sun"),
        *("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"),
        *("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "sept", "oct", "nov", "dec"),
        *("january", "february", "march", "april", "june", "july", "august", "september"),
        *("october", "november", "december"),
    )
)


def is_variable(token: str) -> bool:
    return bool(
        _DIGIT.search(token)
        or _HEXISH.match(token)
        or "/" in token
        or _DOTTED.match(token)
        or token.lower() in _CALENDAR
    )


#: punctuation that joins the parts of one variable ("10:04", "a, b"); brackets are structure
_JOINERS = frozenset(":,;|")


def mask(tokens: list[str]) -> tuple[str, ...]:
    """Replace variables by WILDCARD and collapse a run of variables (with the joining punctuation
    between them, as in `Jun 20 03:40:59 2005` or `a, b`) into one WILDCARD: a timestamp or an address is one
    variable however many tokens it splits into."""
    out: list[str] = []
    pending: list[str] = []  # punctuation seen right after a wildcard
    for t in tokens:
        if is_variable(t):
            if out and out[-1] == WILDCARD:
                pending.clear()  # the punctuation was inside the variable
                continue
            out.extend(pending)
            pending.clear()
            out.append(WILDCARD)
        elif t in _JOINERS and out and out[-1] == WILDCARD:
            pending.append(t)
        else:
            out.extend(pending)
            pending.clear()
            out.append(t)
    out.extend(pending)
    return tuple(out)
