"""Splitting a message into tokens and masking the tokens that look like variables (pure functions).

Why split on punctuation as well as spaces: `key=value`, `name(id)` and `"quoted"` carry their
variable part inside one whitespace token; splitting keeps the constant part comparable.

Why a token with a digit is a variable: ids, counts, sizes, addresses, times and versions carry
digits, while the words that tell events apart almost never do. This one rule does most of the
work without any per-system regex; the miner finds word-valued variables from evidence instead.
"""

from __future__ import annotations

import re

WILDCARD = "<*>"

# Words joined by ':' without spaces stay one token ("host:443", "12:04:59", IPv6 addresses); a
# ':' that ends a word ("error:") or stands alone is punctuation.
_SEP = r"""\s=:,;()\[\]{}"'<>|"""
_TOKEN = re.compile(rf"[^{_SEP}]+(?::[^{_SEP}]+)*|[=:,;()\[\]{{}}\"'<>|]")
_HEXISH = re.compile(r"(?:0x)?[0-9a-fA-F]{8,}")
_DOTTED = re.compile(r"[\w-]+(?:\.[\w-]+){2,}")  # host.domain.tld, a.b.c.Class
_DIGIT = re.compile(r"\d")

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

#: punctuation that joins the parts of one variable ("10:04", "a, b"); brackets are structure
_JOINERS = frozenset(":,;|")

#: tokens that carry no word (punctuation); they never count as evidence of an event's identity
PUNCTUATION = frozenset("=:,;()[]{}\"'<>|")


def tokenize(message: str) -> list[str]:
    return _TOKEN.findall(message)


def is_variable(token: str) -> bool:
    return bool(
        _DIGIT.search(token)
        or "/" in token
        or _HEXISH.fullmatch(token)
        or _DOTTED.fullmatch(token)
        or token.lower() in _CALENDAR
    )


def mask(tokens: list[str]) -> tuple[str, ...]:
    """Replace variables by WILDCARD, collapsing a run of variables into one.

    A run includes the joining punctuation between its parts (`Jun 20 03:40:59 2005`, `a, b`):
    a timestamp or a list is one variable however many tokens it splits into, so two messages of
    one event keep the same token count.
    """
    out: list[str] = []
    pending: list[str] = []  # joiners seen right after a wildcard
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


def signature(message: str) -> tuple[str, ...]:
    return mask(tokenize(message))


def is_word(token: str) -> bool:
    """A constant that can identify an event (not a wildcard, not punctuation)."""
    return token != WILDCARD and token not in PUNCTUATION
