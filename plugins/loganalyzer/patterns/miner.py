"""An online template miner: exact masked-signature cache in front of a similarity search.

1. The message is tokenised and every digit-bearing token masked (tokens.py). Messages of one
   event usually share the masked signature exactly: a dict lookup finds their group (the fast
   path that makes repeats cheap).
2. A new signature is compared with the groups of the same token count: the share of positions
   where the group's template equals the token (or is already a wildcard). At or above
   `similarity` it joins the best group, whose template generalises (differing positions become
   wildcards); below, it starts a new group.
3. When generalisation makes two groups' templates identical, they merge; the younger one's id
   becomes an alias of the older (`resolve`), so ids handed out earlier keep meaning something.

Ids are stable: a short hash of the first template of the group, so a replay of the same
messages gives the same ids.
"""

from __future__ import annotations

import hashlib
import re
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from loganalyzer.patterns.tokens import WILDCARD, mask, tokenize

_FAST_KEY = re.compile(r"[0-9a-fA-F]*\d[0-9a-fA-F]*")


@dataclass(frozen=True)
class MinerConfig:
    #: share of positions that must agree for a new signature to join a same-length group
    similarity: float = 0.9
    #: share of constant tokens a sequence alignment must match to join a group of another
    #: length (variables that span several tokens: "0 bytes" vs "1190 bytes (1.16 KB)")
    alignment: float = 0.8
    #: masked signatures remembered for the fast path (LRU)
    cache_size: int = 100_000
    #: groups kept; beyond this the least recently seen group is forgotten
    max_patterns: int = 50_000


@dataclass(frozen=True, slots=True)
class Match:
    pattern_id: str
    template: str
    is_new: bool
    count: int


@dataclass(slots=True)
class _Group:
    id: str
    tokens: list[str]
    count: int = 0
    #: " ".join(tokens), kept in step with tokens (rendered once, not per message)
    template: str = ""

    def __post_init__(self) -> None:
        self.template = " ".join(self.tokens)

    def retemplate(self) -> None:
        self.template = " ".join(self.tokens)

    @property
    def token_set(self) -> frozenset[str]:
        return frozenset(self.tokens)


def _align(template: list[str], sig: tuple[str, ...]) -> tuple[int, list[str]]:
    """Longest common subsequence of constant tokens; every gap becomes one wildcard."""
    n, m = len(template), len(sig)
    dp = [[0] * (m + 1) for _ in range(n + 1)]
    for i in range(n - 1, -1, -1):
        row, below = dp[i], dp[i + 1]
        a = template[i]
        for j in range(m - 1, -1, -1):
            if a == sig[j] and a != WILDCARD:
                row[j] = below[j + 1] + 1
            else:
                row[j] = max(below[j], row[j + 1])
    merged: list[str] = []
    i = j = 0
    gap = False
    while i < n or j < m:
        if i < n and j < m and template[i] == sig[j] and template[i] != WILDCARD:
            if gap:
                merged.append(WILDCARD)
                gap = False
            merged.append(template[i])
            i += 1
            j += 1
        elif j < m and (i == n or dp[i][j + 1] >= dp[i + 1][j]):
            gap = True
            j += 1
        else:
            gap = True
            i += 1
    if gap:
        merged.append(WILDCARD)
    return dp[0][0], merged


@dataclass
class TemplateMiner:
    config: MinerConfig = field(default_factory=MinerConfig)

    def __post_init__(self) -> None:
        self._groups: OrderedDict[str, _Group] = OrderedDict()
        self._by_length: dict[int, list[str]] = {}
        self._signatures: OrderedDict[tuple[str, ...], str] = OrderedDict()
        self._aliases: dict[str, str] = {}
        self._fast: dict[str, str] = {}

    # -- public ---------------------------------------------------------------------------------
    def add(self, message: str) -> Match:
        """Learn from one message; returns its group."""
        # Fast path: the message with digit runs and long hex runs blanked out is a cheap key
        # (one C-level substitution) for messages that differ only in numbers and ids.
        key = _FAST_KEY.sub("0", message)
        gid = self._fast.get(key)
        if gid is not None:
            group = self._groups.get(self.resolve(gid))
            if group is not None:
                group.count += 1
                return Match(group.id, group.template, False, group.count)
        match = self._add(message)
        if len(self._fast) >= self.config.cache_size:
            self._fast.clear()
        self._fast[key] = match.pattern_id
        return match

    def _add(self, message: str) -> Match:
        sig = mask(tokenize(message))
        gid = self._signatures.get(sig)
        if gid is not None:
            gid = self.resolve(gid)
            group = self._groups.get(gid)
            if group is not None:
                self._signatures.move_to_end(sig)
                group.count += 1
                return Match(group.id, group.template, False, group.count)
        group, is_new = self._place(sig)
        group.count += 1
        self._remember(sig, group.id)
        return Match(group.id, group.template, is_new, group.count)

    def match(self, message: str) -> Match | None:
        """The group a message belongs to, without learning from it."""
        sig = mask(tokenize(message))
        gid = self._signatures.get(sig)
        if gid is not None and (group := self._groups.get(self.resolve(gid))) is not None:
            return Match(group.id, group.template, False, group.count)
        best = self._best(sig)
        if best is None:
            return None
        return Match(best.id, best.template, False, best.count)

    def resolve(self, pattern_id: str) -> str:
        """The current id of a group (groups merge; old ids stay valid as aliases)."""
        seen = pattern_id
        while seen in self._aliases:
            seen = self._aliases[seen]
        return seen

    def template(self, pattern_id: str) -> str | None:
        group = self._groups.get(self.resolve(pattern_id))
        return None if group is None else group.template

    def __len__(self) -> int:
        return len(self._groups)

    # -- state ----------------------------------------------------------------------------------
    def to_state(self) -> dict[str, Any]:
        return {
            "groups": [[g.id, g.tokens, g.count] for g in self._groups.values()],
            "aliases": dict(self._aliases),
        }

    @classmethod
    def from_state(cls, state: dict[str, Any], config: MinerConfig | None = None) -> TemplateMiner:
        miner = cls(config or MinerConfig())
        for gid, tokens, count in state["groups"]:
            group = _Group(gid, list(tokens), int(count))
            miner._groups[gid] = group
            miner._by_length.setdefault(len(tokens), []).append(gid)
        miner._aliases = dict(state.get("aliases", {}))
        return miner

    # -- internals ------------------------------------------------------------------------------
    def _remember(self, sig: tuple[str, ...], gid: str) -> None:
        self._signatures[sig] = gid
        if len(self._signatures) > self.config.cache_size:
            self._signatures.popitem(last=False)

    def _best(self, sig: tuple[str, ...]) -> _Group | None:
        best: _Group | None = None
        best_score = -1.0
        n = len(sig)
        if n == 0:
            return None
        for gid in self._by_length.get(n, ()):
            group = self._groups[gid]
            same = 0
            for a, b in zip(group.tokens, sig, strict=True):
                if a in (b, WILDCARD):
                    same += 1
            score = same / n
            if score > best_score:
                best, best_score = group, score
        if best is None or best_score < self.config.similarity:
            return None
        return best

    def _aligned(self, sig: tuple[str, ...]) -> tuple[_Group, list[str]] | None:
        """The group whose template aligns best with `sig` across lengths, and the merged template."""
        sig_set = frozenset(t for t in sig if t != WILDCARD)
        consts = sum(1 for t in sig if t != WILDCARD)
        if consts == 0:
            return None
        best: tuple[_Group, list[str]] | None = None
        best_score = 0.0
        need = self.config.alignment
        for group in self._groups.values():
            g_consts = sum(1 for t in group.tokens if t != WILDCARD)
            top = max(g_consts, consts)
            if g_consts == 0 or min(g_consts, consts) / top < need:
                continue
            # Cheap bound before the quadratic alignment: distinct shared words cap the match.
            shared = sum(1 for t in sig_set if t in group.token_set)
            if shared + (consts - len(sig_set)) < need * top:
                continue
            matched, merged = _align(group.tokens, sig)
            score = matched / max(g_consts, consts)
            if score > best_score:
                best, best_score = (group, merged), score
        if best is None or best_score < self.config.alignment:
            return None
        return best

    def _place(self, sig: tuple[str, ...]) -> tuple[_Group, bool]:
        best = self._best(sig)
        if best is None and (aligned := self._aligned(sig)) is not None:
            group, merged = aligned
            if len(merged) != len(group.tokens):
                self._by_length[len(group.tokens)].remove(group.id)
                self._by_length.setdefault(len(merged), []).append(group.id)
            group.tokens = merged
            group.retemplate()
            self._groups.move_to_end(group.id)
            self._merge_duplicates(group)
            return self._groups[self.resolve(group.id)], False
        if best is None:
            gid = hashlib.blake2b(" ".join(sig).encode(), digest_size=6).hexdigest()
            while gid in self._groups or gid in self._aliases:
                gid = hashlib.blake2b(gid.encode(), digest_size=6).hexdigest()
            group = _Group(gid, list(sig))
            self._groups[gid] = group
            self._by_length.setdefault(len(sig), []).append(gid)
            self._evict()
            return group, True
        changed = False
        for i, (a, b) in enumerate(zip(best.tokens, sig, strict=True)):
            if a != b and a != WILDCARD:
                best.tokens[i] = WILDCARD
                changed = True
        if changed:
            best.retemplate()
        self._groups.move_to_end(best.id)
        if changed:
            self._merge_duplicates(best)
        return self._groups[self.resolve(best.id)], False

    def _merge_duplicates(self, group: _Group) -> None:
        """After generalising `group`, fold any same-length group with an identical template."""
        siblings = self._by_length[len(group.tokens)]
        for gid in list(siblings):
            other = self._groups.get(gid)
            if other is None or other is group or other.tokens != group.tokens:
                continue
            keep, drop = (group, other) if group.id in self._order_index(group, other) else (other, group)
            keep.count += drop.count
            self._aliases[drop.id] = keep.id
            del self._groups[drop.id]
            siblings.remove(drop.id)
            group = keep

    def _order_index(self, a: _Group, b: _Group) -> set[str]:
        """The id of the older of two groups (insertion order of creation is not kept, so use ids
        deterministically: the smaller id wins, which is stable across replays)."""
        return {min(a.id, b.id)}

    def _evict(self) -> None:
        while len(self._groups) > self.config.max_patterns:
            gid, group = self._groups.popitem(last=False)
            self._by_length[len(group.tokens)].remove(gid)
