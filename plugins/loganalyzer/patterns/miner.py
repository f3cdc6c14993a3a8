"""An online template miner: caches in front of a search that trusts evidence, not a threshold alone.

1. The message is tokenised and its digit-bearing (and other value-looking) tokens are masked
   (tokens.py): most messages of one event then share their masked *signature* exactly, and two
   caches (the raw message with digit runs blanked, then the signature) find their group with a
   dict lookup. That is what makes repeats cheap.
2. A new signature joins a group of the same length whose template covers it (equal tokens, or a
   wildcard there).
3. Otherwise it joins a group of another length when an alignment leaves only variable-shaped
   differences (align.py): a variable that spans a different number of tokens.
4. Otherwise, if it differs from a group only in a few word positions, those positions *might*
   be word-valued variables (`user alice` / `user bob`) or might name different events
   (`Acquiring` / `Releasing`, `true` / `false`). A fixed similarity threshold cannot tell; the
   number of distinct values can: a binary choice is two events, an open set is a variable. The
   signature starts its own group, recorded as a variant of the generalised template; when
   `min_distinct` groups are variants of one generalised template, they merge into it. Plain
   words (letters only) need more: a few of them in one position are usually what tells events
   apart (`GET`/`POST`/`DELETE`, `VM Started`/`Stopped`/`Paused`/`Resumed`), so they merge only
   from `min_distinct_plain` values on, and never into a template left with a single word;
   unless the position plainly holds a name (after `user`, `host`, `file`…, or in quotes).
5. Merged groups keep the oldest id; the others become aliases (`resolve`), so an id handed out
   earlier keeps meaning something.
"""

from __future__ import annotations

import hashlib
import re
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from loganalyzer.patterns.align import align
from loganalyzer.patterns.tokens import WILDCARD, is_word, signature

# Replacing a run of hex characters that starts with an ASCII digit by "0" never changes a
# message's signature: separators are untouched, a token with a digit keeps one (so stays a
# variable) and a token without a digit is not touched. So the blanked message is an exact,
# cheap (one C-level pass) cache key. Why this exact pattern: starting with a plain [0-9] lets
# the regex engine skip to candidate positions (1.1 µs per message against 2.5 µs for
# "[0-9a-fA-F]*\d[0-9a-fA-F]*", which tried a match at every letter a-f); a hex id that starts
# with letters ("ef8a…") keeps them ("ef0"), which costs a few more cache entries, not accuracy.
_FAST_KEY = re.compile(r"[0-9][0-9a-fA-F]*")


@dataclass(frozen=True, slots=True)
class MinerConfig:
    """The ONE configuration; the defaults were chosen on Loghub-2k and are meant for every log."""

    #: share of a group's word positions a signature must share to count as its variant
    similarity: float = 0.5
    #: distinct values that make a word position a variable (2 would merge binary choices)
    min_distinct: int = 3
    #: the same when every value is a plain word (letters only: `GET`/`POST`, `Started`/`Stopped`,
    #: `root`/`guest`): a small vocabulary of words names events, so it takes more of them
    min_distinct_plain: int = 5
    #: distinct words allowed in a stretch that only one side of an alignment has
    max_gap_words: int = 1
    #: signatures longer than this are not aligned across lengths (quadratic cost)
    max_align_tokens: int = 120
    #: messages and signatures remembered by each cache (LRU)
    cache_size: int = 100_000
    #: groups kept; beyond this the least recently seen group is forgotten
    max_patterns: int = 20_000


class MatchResult(NamedTuple):
    """The group of one message. Immutable and without a running count, so that a cache hit
    (most messages) returns the group's one prebuilt result instead of building a new one."""

    pattern_id: str
    template: str
    is_new: bool
    #: for a new group: the group it is a near variant of (it may merge into it later)
    variant_of: str | None = None


#: the name the detection engine imports
Match = MatchResult


@dataclass(slots=True)
class _Group:
    id: str
    seq: int
    tokens: tuple[str, ...]
    count: int = 0
    template: str = field(init=False)
    words: frozenset[str] = field(init=False)
    n_words: int = field(init=False)
    #: what matching this group returns (rebuilt when the template changes)
    seen: MatchResult = field(init=False)

    def __post_init__(self) -> None:
        self.set_tokens(self.tokens)

    def set_tokens(self, tokens: tuple[str, ...]) -> None:
        self.tokens = tokens
        self.template = " ".join(tokens)
        self.seen = MatchResult(self.id, self.template, False)
        self.words = frozenset(t for t in tokens if is_word(t))
        self.n_words = sum(1 for t in tokens if is_word(t))


def _is_plain(token: str) -> bool:
    """A word of letters only: what names an event, unlike the values a log prints."""
    return token.isalpha()


#: Nouns that introduce a name in running text ("for user alice", "on host db"): a plain word
#: right after one is a value, whatever it spells. General English, not any one system's words.
NAMING_NOUNS = frozenset(
    (
        *("user", "username", "login", "account", "owner", "group", "tenant", "customer"),
        *("host", "hostname", "node", "server", "client", "peer", "domain", "realm"),
        *("service", "app", "application", "component", "module", "plugin", "driver"),
        *("job", "task", "worker", "process", "thread", "container", "pod", "namespace"),
        *("file", "filename", "directory", "folder", "volume", "disk", "device", "bucket"),
        *("table", "database", "schema", "index", "queue", "topic", "channel", "stream"),
    )
)


def _names_a_value(key: tuple[str, ...], i: int) -> bool:
    """Whether position `i` holds a value whatever it spells: it follows a naming noun (`for user
    alice`) or it is quoted (`query 'laptop' failed`)."""
    before = key[i - 1] if i else ""
    after = key[i + 1] if i + 1 < len(key) else ""
    return before.lower() in NAMING_NOUNS or (before in ("'", '"') and after == before)


def _plain_words_only(key: tuple[str, ...], groups: Iterable[_Group]) -> bool:
    """Whether every value the groups hold where `key` generalises them is a plain word in a
    position that may name the event itself."""
    spots = [i for i, t in enumerate(key) if t == WILDCARD]
    if any(_names_a_value(key, i) for i in spots):
        return False
    return all(g.tokens[i] == WILDCARD or _is_plain(g.tokens[i]) for g in groups for i in spots)


def _covers(template: tuple[str, ...], sig: tuple[str, ...]) -> bool:
    return all(a in (b, WILDCARD) for a, b in zip(template, sig, strict=True))


class TemplateMiner:
    """Streaming template miner; state grows with the number of patterns, not of messages."""

    def __init__(self, config: MinerConfig | None = None) -> None:
        self.config = config or MinerConfig()
        self._groups: OrderedDict[str, _Group] = OrderedDict()  # least recently seen first
        self._by_len: dict[int, dict[str, None]] = {}  # ordered sets of ids
        self._aliases: dict[str, str] = {}
        self._variants: OrderedDict[tuple[str, ...], list[str]] = OrderedDict()
        self._fast: OrderedDict[str, str] = OrderedDict()
        self._sigs: OrderedDict[tuple[str, ...], str] = OrderedDict()
        self._seq = 0

    # -- public ---------------------------------------------------------------------------------
    def add(self, message: str) -> MatchResult:
        """Learn from one message; returns its group as it stands after this message."""
        key = _FAST_KEY.sub("0", message)
        fast = self._fast
        gid = fast.get(key)
        if gid is not None:
            group = self._groups.get(gid) or self._groups.get(self.resolve(gid))
            if group is not None:
                group.count += 1
                fast.move_to_end(key)
                self._groups.move_to_end(group.id)
                return group.seen
        result = self._add_signature(signature(message))
        fast[key] = result.pattern_id
        if len(fast) > self.config.cache_size:
            fast.popitem(last=False)
        return result

    def learn(self, pattern_id: str, template: str, count: int = 0) -> None:
        """Know a group found earlier (a warm start from log_patterns), under its own id.

        Why not `add()` its sample message: one message makes a group of exactly that message,
        and the next message of the pattern with another value would be a new group, a "new"
        error. The template is the group's tokens joined by spaces (`<*>`: a wildcard), so it is
        the group itself. Ignored when the id is already known."""
        if pattern_id in self._groups or pattern_id in self._aliases:
            return
        self._seq += 1
        self._register(_Group(pattern_id, self._seq, tuple(template.split(" ")), count))
        self._evict()

    def match(self, message: str) -> MatchResult | None:
        """The group a message belongs to, without learning from it (None: no known group)."""
        sig = signature(message)
        group = self._cached(sig) or self._covering(sig)
        if group is None and len(sig) <= self.config.max_align_tokens:
            aligned = self._aligned(sig)
            group = aligned[0] if aligned else None
        return None if group is None else group.seen

    def resolve(self, pattern_id: str) -> str:
        """The current id of a group: groups merge, and old ids stay valid as aliases."""
        root = pattern_id
        aliases = self._aliases
        while root in aliases:
            root = aliases[root]
        while pattern_id != root:  # path compression: later look-ups are one step
            parent = aliases[pattern_id]
            aliases[pattern_id] = root
            pattern_id = parent
        return root

    def count(self, pattern_id: str) -> int:
        """Messages the group has matched so far (0: no such group)."""
        group = self._groups.get(self.resolve(pattern_id))
        return 0 if group is None else group.count

    def template(self, pattern_id: str) -> str | None:
        group = self._groups.get(self.resolve(pattern_id))
        return None if group is None else group.template

    def templates(self) -> dict[str, str]:
        return {gid: g.template for gid, g in self._groups.items()}

    def __len__(self) -> int:
        return len(self._groups)

    # -- state ----------------------------------------------------------------------------------
    def to_state(self) -> dict[str, Any]:
        """A JSON-serialisable checkpoint. Caches are left out: they are rebuilt on demand."""
        return {
            "version": 1,
            "seq": self._seq,
            "groups": [[g.id, g.seq, list(g.tokens), g.count] for g in self._groups.values()],
            "aliases": dict(self._aliases),
            "variants": [[list(k), list(v)] for k, v in self._variants.items()],
        }

    @classmethod
    def from_state(cls, state: dict[str, Any], config: MinerConfig | None = None) -> TemplateMiner:
        if state.get("version") != 1:
            raise ValueError(
                "unknown template miner state (no 'version': 1); it was written by another "
                "release: start from an empty miner with TemplateMiner()"
            )
        miner = cls(config)
        miner._seq = int(state["seq"])
        for gid, seq, tokens, count in state["groups"]:
            miner._register(_Group(gid, int(seq), tuple(tokens), int(count)))
        miner._aliases = dict(state["aliases"])
        for key, ids in state["variants"]:
            miner._variants[tuple(key)] = list(ids)
        return miner

    # -- placing a new signature ----------------------------------------------------------------
    def _add_signature(self, sig: tuple[str, ...]) -> MatchResult:
        group = self._cached(sig)
        if group is not None:
            self._sigs.move_to_end(sig)
            return self._hit(group, False)
        group = self._covering(sig)
        if group is None and len(sig) <= self.config.max_align_tokens:
            aligned = self._aligned(sig)
            if aligned is not None:
                group = self._generalise(aligned[0], aligned[1])
        if group is not None:
            self._remember(sig, group.id)
            return self._hit(group, False)
        near = self._nearest(sig)
        group = self._create(sig)
        if WILDCARD in sig:
            merged_into = self._absorb_covered(group)
            if merged_into is not group:  # it was newest: anything folded swaps the keeper
                self._remember(sig, merged_into.id)
                return self._hit(merged_into, False)
        self._remember(sig, group.id)
        if near is None:
            return self._hit(group, True)
        merged = self._record_variant(near, group)
        if merged is not None:
            return self._hit(merged, False)
        return self._hit(group, True, variant_of=near.id)

    def _hit(self, group: _Group, is_new: bool, variant_of: str | None = None) -> MatchResult:
        group.count += 1
        self._groups.move_to_end(group.id)
        if not is_new and variant_of is None:
            return group.seen
        return MatchResult(group.id, group.template, is_new, variant_of)

    def _cached(self, sig: tuple[str, ...]) -> _Group | None:
        gid = self._sigs.get(sig)
        return None if gid is None else self._groups.get(self.resolve(gid))

    def _remember(self, sig: tuple[str, ...], gid: str) -> None:
        self._sigs[sig] = gid
        if len(self._sigs) > self.config.cache_size:
            self._sigs.popitem(last=False)

    def _covering(self, sig: tuple[str, ...]) -> _Group | None:
        """The most specific same-length group whose template covers `sig` (oldest on ties).

        A template without words covers only its own signature: `<*>` must not swallow every
        one-word message.
        """
        best: _Group | None = None
        for gid in self._by_len.get(len(sig), ()):
            group = self._groups[gid]
            if group.n_words == 0 and group.tokens != sig:
                continue
            if _covers(group.tokens, sig) and (
                best is None
                or group.n_words > best.n_words
                or (group.n_words == best.n_words and group.seq < best.seq)
            ):
                best = group
        return best

    def _aligned(self, sig: tuple[str, ...]) -> tuple[_Group, tuple[str, ...]] | None:
        """The group of another length that aligns with `sig`, and their common template."""
        words = {t for t in sig if is_word(t)}
        if not words:
            return None
        cfg = self.config
        best: tuple[_Group, tuple[str, ...]] | None = None
        best_shared = 0
        n = len(sig)
        for length, ids in self._by_len.items():
            if length == n or length > cfg.max_align_tokens:
                continue
            for gid in ids:
                group = self._groups[gid]
                shared = len(words & group.words)
                # each unaligned stretch holds at most max_gap_words words: cheap bound first
                if shared <= best_shared or shared < cfg.similarity * max(len(words), len(group.words)):
                    continue
                merged = align(group.tokens, sig, cfg.max_gap_words, cfg.similarity)
                if merged is not None:
                    best, best_shared = (group, merged), shared
        return best

    def _nearest(self, sig: tuple[str, ...]) -> _Group | None:
        """The same-length group `sig` differs from in the fewest word positions, if similar.

        The first token is never a variant position: it is usually the verb or the component
        that names the event, and a value there is already masked when it looks like one.
        """
        best: _Group | None = None
        best_diff = 0
        for gid in self._by_len.get(len(sig), ()):
            group = self._groups[gid]
            if group.n_words == 0:
                continue
            tokens = group.tokens
            if tokens[0] != sig[0] and tokens[0] != WILDCARD:
                continue
            diff = 0
            for a, b in zip(tokens, sig, strict=True):
                if a != b and a != WILDCARD:
                    diff += 1
            if (group.n_words - diff) < self.config.similarity * group.n_words:
                continue
            if best is None or diff < best_diff or (diff == best_diff and group.count > best.count):
                best, best_diff = group, diff
        return best

    # -- groups ---------------------------------------------------------------------------------
    def _create(self, sig: tuple[str, ...]) -> _Group:
        gid = hashlib.blake2b(" ".join(sig).encode(), digest_size=6).hexdigest()
        while gid in self._groups or gid in self._aliases:
            gid = hashlib.blake2b(gid.encode(), digest_size=6).hexdigest()
        self._seq += 1
        group = _Group(gid, self._seq, sig)
        self._register(group)
        self._evict()
        return group

    def _register(self, group: _Group) -> None:
        """Make a group known (newest): by id, and by length for `_covering`."""
        self._groups[group.id] = group
        self._by_len.setdefault(len(group.tokens), {})[group.id] = None

    def _record_variant(self, near: _Group, group: _Group) -> _Group | None:
        """Note `group` as a variant of `near`; merge the variants once there are enough."""
        key = tuple(WILDCARD if a != b else a for a, b in zip(near.tokens, group.tokens, strict=True))
        ids = self._variants.get(key)
        if ids is None:
            ids = self._variants[key] = [near.id]
        ids.append(group.id)
        self._variants.move_to_end(key)
        if len(self._variants) > self.config.max_patterns:
            self._variants.popitem(last=False)
        live: dict[str, _Group] = {}
        for gid in ids:
            g = self._groups.get(self.resolve(gid))
            if g is not None and len(g.tokens) == len(key):
                live[g.id] = g
        ids[:] = list(live)
        if len(live) < self.config.min_distinct:
            return None
        if _plain_words_only(key, live.values()) and (
            len(live) < self.config.min_distinct_plain or sum(map(is_word, key)) < 2
        ):
            return None  # (a one-word template, `VM <*>`, would say nothing but the component)
        del self._variants[key]
        members = sorted(live.values(), key=lambda g: g.seq)
        tokens = list(key)
        for g in members:
            for i, t in enumerate(g.tokens):
                if t != tokens[i]:
                    tokens[i] = WILDCARD
        keep = members[0]
        for g in members[1:]:
            self._fold(keep, g)
        return self._generalise(keep, tuple(tokens))

    def _generalise(self, group: _Group, tokens: tuple[str, ...]) -> _Group:
        """Give `group` a more general template, then fold in the groups it now covers."""
        if tokens == group.tokens:
            return group
        old_len = len(group.tokens)
        if len(tokens) != old_len:
            del self._by_len[old_len][group.id]
            self._by_len.setdefault(len(tokens), {})[group.id] = None
        group.set_tokens(tokens)
        return self._absorb_covered(group)

    def _absorb_covered(self, group: _Group) -> _Group:
        """Fold into `group` the same-length groups its template covers; the oldest id stays.

        Why also for a brand-new group: `user <*>` (a value that was masked) covering an older
        `user webmaster` is evidence that the position is an open set, as three distinct words are.
        """
        tokens = group.tokens
        if group.n_words == 0:
            return group  # `<*>` must not swallow every one-word group
        for gid in list(self._by_len[len(tokens)]):
            other = self._groups.get(gid)  # None: folded earlier in this loop
            if other is not None and other is not group and _covers(tokens, other.tokens):
                if other.seq < group.seq:
                    other.set_tokens(tokens)
                    group, other = other, group
                self._fold(group, other)
        return group

    def _fold(self, keep: _Group, drop: _Group) -> None:
        keep.count += drop.count
        self._aliases[drop.id] = keep.id
        del self._groups[drop.id]
        del self._by_len[len(drop.tokens)][drop.id]

    def _evict(self) -> None:
        while len(self._groups) > self.config.max_patterns:
            gid, group = self._groups.popitem(last=False)
            del self._by_len[len(group.tokens)][gid]
        if len(self._aliases) > 4 * self.config.max_patterns:
            # aliases of forgotten groups resolve to nothing: drop them
            self._aliases = {a: r for a in list(self._aliases) if (r := self.resolve(a)) in self._groups}
