"""A catalogue of realistic services: tenants, hosts, traffic weights, latencies and message templates.

A service's messages come from a few templates with variable parts (ids, users, durations,
paths...), as real logs do: that is what the template miner and the pattern detector work on.

Templates are compiled once into a %-format string plus one value maker per placeholder, and
their literal text is checked to need no JSON escaping: the traffic model writes messages straight
into a JSON string without escaping them, which is what makes it fast. Every value maker must
therefore only produce JSON-safe text (letters, digits and `-_./:'=@`), never a quote, backslash or
control character.
"""

from __future__ import annotations

import math
import random
import string
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from statistics import NormalDist

#: Tenants of the catalogue ("default" is the contract's implicit tenant: its events omit the field).
TENANTS = ("acme", "globex", "initech", "default")

#: A value maker: (rng, request id, duration in ms, HTTP status) -> text. The event's own request
#: id, duration and status are passed so that a message agrees with its metadata.
Filler = Callable[[random.Random, str, int, int], str]

_ALNUM = string.ascii_letters + string.digits
_PATHS = (
    "/api/v1/items",
    "/api/v1/cart",
    "/api/v2/search",
    "/api/v1/users",
    "/api/v1/orders",
    "/api/v1/checkout",
    "/healthz",
)
_QUEUES = ("emails", "sms", "push", "webhooks")
_REGIONS = ("eu-west-1", "us-east-1", "ap-south-1", "eu-central-1")
_CLIENT_CODES = ("400", "401", "403", "404", "409", "422")
_METHODS = ("GET", "GET", "GET", "GET", "POST", "POST", "PUT", "DELETE")
_WORDS = (
    "shoes",
    "red-dress",
    "laptop",
    "usb-c",
    "coffee",
    "headphones",
    "kettle",
    "desk-lamp",
    "backpack",
    "monitor",
    "garden-chair",
    "phone-case",
)


def _token(r: random.Random, rid: str, ms: int, st: int) -> str:
    rnd = r.random
    return "".join([_ALNUM[int(rnd() * 62)] for _ in range(12)])


FILLERS: dict[str, Filler] = {
    "rid": lambda r, rid, ms, st: rid,
    "ms": lambda r, rid, ms, st: str(ms),
    "status": lambda r, rid, ms, st: str(st or 200),
    "user": lambda r, rid, ms, st: f"u{int(r.random() * 250_000) + 1}",
    "order": lambda r, rid, ms, st: f"ord-{int(r.random() * 90_000_000) + 10_000_000}",
    "sku": lambda r, rid, ms, st: f"SKU-{int(r.random() * 99_000) + 1000}",
    "n": lambda r, rid, ms, st: str(int(r.random() * 500) + 1),
    "amount": lambda r, rid, ms, st: f"{int(r.random() * 49_900) / 100 + 1:.2f}",
    "ip": lambda r, rid, ms, st: f"10.{r.getrandbits(8)}.{r.getrandbits(8)}.{r.getrandbits(7) + 1}",
    "path": lambda r, rid, ms, st: f"{_PATHS[int(r.random() * 7)]}/{int(r.random() * 1_000_000)}",
    "method": lambda r, rid, ms, st: _METHODS[r.getrandbits(3)],
    "code": lambda r, rid, ms, st: _CLIENT_CODES[int(r.random() * 6)],
    "token": _token,
    "word": lambda r, rid, ms, st: _WORDS[int(r.random() * 12)],
    "queue": lambda r, rid, ms, st: _QUEUES[r.getrandbits(2)],
    "region": lambda r, rid, ms, st: _REGIONS[r.getrandbits(2)],
    "pct": lambda r, rid, ms, st: str(int(r.random() * 99) + 1),
}

#: Characters a template's literal text may not contain (it is written into JSON unescaped).
_JSON_UNSAFE = frozenset('"\\') | frozenset(chr(c) for c in range(0x20)) | {"\x7f"}


@dataclass(frozen=True, eq=False)
class Template:
    """A message template compiled into a %-format string and one value maker per placeholder."""

    text: str
    fmt: str
    fillers: tuple[Filler, ...]
    #: fill(rng, request_id, duration_ms, status) -> message, specialised by arity (hot loop)
    fill: Callable[[random.Random, str, int, int], str] = field(repr=False)

    @classmethod
    def compile(cls, text: str) -> Template:
        bad = sorted({c for c in text if c in _JSON_UNSAFE})
        if bad:
            raise ValueError(f"template {text!r} contains {bad!r}: templates must need no JSON escaping")
        fmt: list[str] = []
        fillers: list[Filler] = []
        for literal, name, spec, conv in string.Formatter().parse(text):
            fmt.append(literal.replace("%", "%%"))
            if name is None:
                continue
            if name not in FILLERS or spec or conv:
                raise ValueError(
                    f"unknown placeholder {{{name}}} in template {text!r}; known: {', '.join(FILLERS)}"
                )
            fmt.append("%s")
            fillers.append(FILLERS[name])
        return cls(text, "".join(fmt), tuple(fillers), _filler("".join(fmt), tuple(fillers)))


def _filler(fmt: str, fs: tuple[Filler, ...]) -> Callable[[random.Random, str, int, int], str]:
    """A closure per arity: a loop or a generator expression would double the cost per message."""
    if not fs:
        return lambda r, rid, ms, st: fmt
    if len(fs) == 1:
        (a,) = fs
        return lambda r, rid, ms, st: fmt % (a(r, rid, ms, st),)
    if len(fs) == 2:
        a, b = fs
        return lambda r, rid, ms, st: fmt % (a(r, rid, ms, st), b(r, rid, ms, st))
    if len(fs) == 3:
        a, b, c = fs
        return lambda r, rid, ms, st: fmt % (a(r, rid, ms, st), b(r, rid, ms, st), c(r, rid, ms, st))
    return lambda r, rid, ms, st: fmt % tuple([f(r, rid, ms, st) for f in fs])


#: Duration quantile table size: a duration is a table lookup by `getrandbits(DURATION_BITS)`,
#: ~10x cheaper than `lognormvariate` and just as log-normal at this resolution.
DURATION_BITS = 10


def _durations(median_ms: float, sigma: float) -> tuple[int, ...]:
    inv = NormalDist().inv_cdf
    n = 1 << DURATION_BITS
    return tuple(max(1, round(median_ms * math.exp(sigma * inv((i + 0.5) / n)))) for i in range(n))


def _status_table(weighted: dict[int, int]) -> tuple[int, ...]:
    """32 entries, so a status is `table[getrandbits(5)]`."""
    table = [code for code, w in weighted.items() for _ in range(w)]
    if len(table) != 32:
        raise AssertionError(f"status table has {len(table)} entries, expected 32")
    return tuple(table)


#: HTTP status by level, for services that serve requests (INFO/DEBUG, WARN, ERROR).
STATUS_OK = _status_table({200: 26, 201: 3, 204: 2, 304: 1})
STATUS_WARN = _status_table({400: 6, 401: 4, 403: 3, 404: 10, 409: 3, 422: 3, 429: 3})
STATUS_ERROR = _status_table({500: 14, 502: 8, 503: 6, 504: 4})


@dataclass(frozen=True, eq=False)
class ServiceSpec:
    name: str
    tenant: str
    weight: float
    hosts: tuple[str, ...]
    debug: tuple[Template, ...]
    info: tuple[Template, ...]
    warn: tuple[Template, ...]
    error: tuple[Template, ...]
    #: share of each level in normal traffic (the rest is INFO)
    error_share: float = 0.01
    warn_share: float = 0.03
    debug_share: float = 0.06
    #: serves HTTP-ish requests: its events carry metadata.status
    http: bool = True
    #: duration_ms quantiles (log-normal around the service's median)
    durations: tuple[int, ...] = field(default=(), repr=False)


def _t(*texts: str) -> tuple[Template, ...]:
    return tuple(Template.compile(t) for t in texts)


def _service(
    name: str,
    tenant: str,
    weight: float,
    n_hosts: int,
    info: tuple[str, ...],
    warn: tuple[str, ...],
    error: tuple[str, ...],
    debug: tuple[str, ...] = (),
    *,
    median_ms: float = 40.0,
    sigma: float = 0.7,
    error_share: float = 0.01,
    warn_share: float = 0.03,
    http: bool = True,
) -> ServiceSpec:
    rng = random.Random(zlib.crc32(name.encode()))  # host names stable across runs and versions
    hosts = tuple(f"{name}-{rng.getrandbits(16):04x}-{i}" for i in range(n_hosts))
    return ServiceSpec(
        name=name,
        tenant=tenant,
        weight=weight,
        hosts=hosts,
        debug=_t(*(debug or ("cache lookup key={token} hit={pct}%", "span {rid} started"))),
        info=_t(*info),
        warn=_t(*warn),
        error=_t(*error),
        error_share=error_share,
        warn_share=warn_share,
        http=http,
        durations=_durations(median_ms, sigma),
    )


CATALOGUE: tuple[ServiceSpec, ...] = (
    _service(
        "api-gateway",
        "acme",
        weight=3.0,
        n_hosts=4,
        median_ms=35,
        info=(
            "{method} {path} {status} {ms}ms",
            "POST {path} {status} {ms}ms user={user}",
            "request {rid} completed in {ms}ms",
            "routed {path} to upstream in {ms}ms",
            "client {ip} {method} {path} {status}",
        ),
        warn=(
            "rate limit close for client {ip}: {pct}% of quota",
            "slow upstream response {ms}ms on {path}",
            "{method} {path} {status} client error for {ip}",
        ),
        error=(
            "upstream timeout after {ms}ms on {path}",
            "{status} from upstream for request {rid}",
            "no healthy upstream for {path}",
        ),
        debug=("matched route {path} for request {rid}", "forwarding headers for {rid} to upstream"),
    ),
    _service(
        "auth",
        "acme",
        weight=1.5,
        n_hosts=3,
        median_ms=18,
        info=(
            "user {user} logged in from {ip}",
            "token issued for {user} ttl={n}s",
            "session {token} refreshed",
            "password check for {user} took {ms}ms",
        ),
        warn=(
            "failed login for {user} from {ip}",
            "token {token} close to expiry",
            "{n} failed logins from {ip} in the last minute",
        ),
        error=(
            "signature verification failed for token {token}",
            "LDAP bind failed: connection reset by {ip}",
        ),
    ),
    _service(
        "payments",
        "acme",
        weight=1.2,
        n_hosts=3,
        median_ms=120,
        sigma=0.6,
        info=(
            "charged {amount} EUR for order {order}",
            "refund {amount} EUR for {order}",
            "payment {rid} authorised in {ms}ms",
            "webhook from PSP acknowledged for {order}",
        ),
        warn=(
            "retrying charge for {order}: attempt {n}",
            "3-D Secure challenge slow: {ms}ms",
        ),
        error=(
            "charge failed for order {order}: card declined",
            "PSP returned {code} for payment {rid}",
            "idempotency key conflict for payment {rid}",
        ),
    ),
    _service(
        "orders",
        "acme",
        weight=1.4,
        n_hosts=3,
        median_ms=45,
        info=(
            "order {order} created by {user} with {n} items",
            "order {order} shipped",
            "order {order} status changed to paid",
            "order {order} loaded in {ms}ms",
        ),
        warn=("order {order} waiting for stock of {sku}", "order {order} total recalculated: {amount} EUR"),
        error=(
            "could not persist order {order}: deadlock detected",
            "order {order} rejected: inventory {code}",
        ),
    ),
    _service(
        "inventory",
        "globex",
        weight=1.0,
        n_hosts=2,
        median_ms=25,
        info=(
            "reserved {n} of {sku} for {order}",
            "stock level for {sku} is {n}",
            "released reservation {rid} for {sku}",
        ),
        warn=("stock of {sku} below threshold: {n} left",),
        error=(
            "reservation {rid} failed: {sku} out of stock",
            "stock sync with warehouse failed after {ms}ms",
        ),
    ),
    _service(
        "search",
        "globex",
        weight=2.0,
        n_hosts=4,
        median_ms=60,
        sigma=0.8,
        info=(
            "query '{word}' returned {n} hits in {ms}ms",
            "query '{word}' page {n} served from cache",
            "index segment {n} merged",
        ),
        warn=("slow query '{word}' took {ms}ms", "query '{word}' truncated at {n} clauses"),
        error=(
            "search shard {n} unavailable",
            "query '{word}' failed: too many clauses",
        ),
    ),
    _service(
        "notifications",
        "globex",
        weight=0.8,
        n_hosts=2,
        median_ms=90,
        http=False,
        info=(
            "sent {queue} notification to {user}",
            "queue {queue} depth {n}",
            "batch of {n} {queue} messages dispatched in {ms}ms",
        ),
        warn=("{queue} provider throttling: retry in {n}s",),
        error=("failed to deliver {queue} to {user}: provider {code}",),
    ),
    _service(
        "checkout",
        "acme",
        weight=1.0,
        n_hosts=3,
        median_ms=150,
        sigma=0.6,
        info=(
            "checkout {rid} started for {user}",
            "checkout {rid} completed in {ms}ms",
            "cart of {user} priced: {n} items {amount} EUR",
        ),
        warn=("checkout {rid} slow: {ms}ms", "coupon rejected for {user}: expired"),
        error=("checkout {rid} failed: payment service returned {code}",),
    ),
    _service(
        "user-profile",
        "initech",
        weight=0.9,
        n_hosts=2,
        median_ms=15,
        info=(
            "profile of {user} read in {ms}ms",
            "profile of {user} updated",
            "avatar of {user} resized",
        ),
        warn=("profile cache miss ratio {pct}%",),
        error=("profile of {user} could not be loaded: {code}",),
    ),
    _service(
        "recommendations",
        "initech",
        weight=0.7,
        n_hosts=2,
        median_ms=80,
        info=(
            "{n} recommendations for {user} in {ms}ms",
            "model refreshed in region {region}",
            "similar items for {sku}: {n} candidates",
        ),
        warn=("fallback recommendations for {user}: model slow {ms}ms",),
        error=("feature store timeout after {ms}ms for {user}",),
        error_share=0.015,
    ),
    _service(
        "shipping",
        "initech",
        weight=0.6,
        n_hosts=2,
        median_ms=200,
        info=(
            "label created for {order} in {region}",
            "tracking update for {order}",
            "rate quote for {order}: {amount} EUR",
        ),
        warn=("carrier API slow in {region}: {ms}ms",),
        error=("carrier rejected shipment {order}: {code}",),
        error_share=0.008,
    ),
    _service(
        "billing",
        "default",
        weight=0.5,
        n_hosts=2,
        median_ms=250,
        http=False,
        info=(
            "invoice {rid} generated for {user}: {amount} EUR",
            "billing run processed {n} accounts",
            "payment reminder sent to {user}",
        ),
        warn=("invoice {rid} delayed: tax service slow {ms}ms",),
        error=("invoice {rid} failed: ledger write conflict",),
        error_share=0.005,
        warn_share=0.02,
    ),
)

#: Error templates no service produces normally: each `new_error_pattern` incident takes the next
#: one its service has not used yet (then synthetic ones, see `novel_error`).
NOVEL_ERRORS: tuple[Template, ...] = _t(
    "NullPointerException in RequestHandler.process at line {n} for request {rid}",
    "OutOfMemoryError: Java heap space while handling {path}",
    "certificate verify failed: unable to get local issuer certificate for {ip}",
    "disk quota exceeded on /var/lib/data/{token}",
    "segmentation fault in worker {n}: core dumped",
    "connection refused to redis://{ip}:6379 after {n} retries",
    "schema validation failed: field amount_cents missing in message {rid}",
    "too many open files: accept() failed on port {n}",
    "deadline exceeded calling FraudService.Score after {ms}ms",
    "Kafka producer fenced: epoch {n} is older than current",
    "json decode error at byte {n} in upstream response {rid}",
    "circuit breaker OPEN for dependency {region}-db after {n} failures",
)

_EXCEPTIONS = (
    "IllegalStateException",
    "ConcurrentModificationException",
    "ArithmeticException",
    "ClassCastException",
    "StackOverflowError",
    "UnsupportedOperationException",
)
_COMPONENTS = ("LedgerWriter", "PriceCalculator", "SessionStore", "RetryScheduler", "TokenCache", "EventBus")


def novel_error(k: int) -> Template:
    """The k-th never-seen error template: the curated ones first, then synthetic combinations
    (36 more), so long runs of the demo keep injecting patterns that really are new."""
    if k < len(NOVEL_ERRORS):
        return NOVEL_ERRORS[k]
    k -= len(NOVEL_ERRORS)
    exc = _EXCEPTIONS[k % len(_EXCEPTIONS)]
    comp = _COMPONENTS[(k // len(_EXCEPTIONS)) % len(_COMPONENTS)]
    return Template.compile(f"unhandled {exc} in {comp}.run while processing {{rid}}")


#: INFO lines a release adds to a service (the "deploy" change): new, and not errors
DEPLOY_INFO: tuple[Template, ...] = _t(
    "feature flag {word} evaluated for {user}: enabled",
    "warmed connection pool to {region}-replica with {n} connections",
)

SLOW_REQUEST = Template.compile("slow request {rid}: {ms}ms (threshold 500ms)")


def service_by_name(name: str) -> ServiceSpec:
    for s in CATALOGUE:
        if s.name == name:
            return s
    known = ", ".join(s.name for s in CATALOGUE)
    raise KeyError(f"unknown service {name!r}; known services: {known}")
