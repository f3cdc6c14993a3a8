"""Aligning two token sequences of different lengths (pure functions).

Why: a variable can span a different number of tokens from one message to the next
(`0 bytes` vs `1190 bytes (1.16 KB)`, a list of nodes, an optional annotation). Positional
comparison cannot see that those are one event; a longest common subsequence can.

Why the gap rule: an unrestricted alignment would also join events that differ by an extra
clause (`... rhost=<*>` vs `... rhost=<*> user=root`). A difference between two messages of one
event is a *variable* of varying shape, so every unaligned stretch must contain a variable and at
most `max_gap_words` distinct words (a unit such as `KB` or `sec`, a marker such as `ok`).
"""

from __future__ import annotations

from collections.abc import Sequence

from loganalyzer.patterns.tokens import WILDCARD, is_word

#: marks that wrap or qualify a value (`(1.2 KB)`, `<1 sec`, `[3 retries]`)
_BRACKETS = frozenset("()[]{}<>")


def _lcs_table(a: Sequence[str], b: Sequence[str]) -> list[list[int]]:
    n, m = len(a), len(b)
    table = [[0] * (m + 1) for _ in range(n + 1)]
    for i in range(n - 1, -1, -1):
        row, below = table[i], table[i + 1]
        x = a[i]
        for j in range(m - 1, -1, -1):
            if x == b[j]:
                row[j] = below[j + 1] + 1
            else:
                r, d = row[j + 1], below[j]
                row[j] = r if r > d else d
    return table


def _gap_ok(gap: list[str], shared_wildcard: bool, max_gap_words: int) -> bool:
    """Is an unaligned stretch one variable of varying shape?

    `gap` holds the tokens only one side has; `shared_wildcard` says a wildcard both sides have
    sits inside the stretch. Accepted: the stretch holds a variable of its own (`1190 bytes
    <*> sent`), or it annotates the shared variable with brackets (`( <*> KB )`, `< <*> sec`).
    A bare extra word next to a shared variable (`proxy <*> HTTPS` vs `proxy <*>`) is not: that
    word is what tells two events apart, and so is an extra `key=` field (`rhost=<*> user=<*>`).
    """
    if not gap:
        return shared_wildcard
    if "=" in gap:  # an extra `key=value` field is another shape of message, not a value
        return False
    if len({t for t in gap if is_word(t)}) > max_gap_words:
        return False
    if WILDCARD in gap:
        return True
    return shared_wildcard and any(t in _BRACKETS for t in gap)


def align(
    template: Sequence[str], sig: Sequence[str], max_gap_words: int = 1, min_shared: float = 0.5
) -> tuple[str, ...] | None:
    """The template generalised to cover `sig`, or None when they are not one event.

    Every unaligned stretch becomes one wildcard. `min_shared` is the share of the words of the
    wordier side that must be aligned: a long message is not one event with a short one just
    because the short one's few words occur in it.
    """
    table = _lcs_table(template, sig)
    n, m = len(template), len(sig)
    merged: list[str] = []
    gap: list[str] = []
    shared_wildcard = False  # a wildcard both sides have lies inside the current stretch
    shared_words = 0
    i = j = 0
    while i < n or j < m:
        if i < n and j < m and template[i] == sig[j] == WILDCARD:
            # a shared wildcard belongs to the stretch around it: `( <*> KB )` vs `<*>` is one
            # variable, not two gaps split by a coincidental match
            shared_wildcard = True
            i += 1
            j += 1
        elif i < n and j < m and template[i] == sig[j]:
            if gap or shared_wildcard:
                if not _gap_ok(gap, shared_wildcard, max_gap_words):
                    return None
                gap.clear()
                shared_wildcard = False
                if not merged or merged[-1] != WILDCARD:
                    merged.append(WILDCARD)
            tok = template[i]
            merged.append(tok)
            shared_words += is_word(tok)
            i += 1
            j += 1
        elif j < m and (i == n or table[i][j + 1] >= table[i + 1][j]):
            gap.append(sig[j])
            j += 1
        else:
            gap.append(template[i])
            i += 1
    if gap or shared_wildcard:
        if not _gap_ok(gap, shared_wildcard, max_gap_words):
            return None
        if not merged or merged[-1] != WILDCARD:
            merged.append(WILDCARD)
    words = max(sum(map(is_word, template)), sum(map(is_word, sig)))
    if shared_words == 0 or shared_words < min_shared * words:
        return None
    return tuple(merged)
