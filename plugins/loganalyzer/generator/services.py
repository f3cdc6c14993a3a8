"""A catalogue of realistic services: hosts, traffic weights and message templates.

Templates use `{name}` placeholders filled by `fill()` with values of the named kind (ids,
users, durations, paths...), so a service's messages share a few templates with variable parts,
as real logs do; that is what the template miner and the pattern detector work on.
"""

from __future__ import annotations

import random
import string
from collections.abc import Callable
from dataclasses import dataclass


def _hex(rng: random.Random, n: int) -> str:
    return f"{rng.getrandbits(4 * n):0{n}x}"


_PATHS = ("/api/v1/items", "/api/v1/cart", "/api/v2/search", "/healthz", "/api/v1/users")

#: placeholder name -> value maker
FILLERS: dict[str, Callable[[random.Random], str]] = {
    "rid": lambda r: _hex(r, 16),
    "user": lambda r: f"u{r.randrange(1, 250_000)}",
    "order": lambda r: f"ord-{r.randrange(10**7, 10**8)}",
    "sku": lambda r: f"SKU-{r.randrange(1000, 99999)}",
    "ms": lambda r: str(int(r.lognormvariate(3.6, 0.7))),
    "n": lambda r: str(r.randrange(1, 500)),
    "amount": lambda r: f"{r.randrange(100, 50_000) / 100:.2f}",
    "ip": lambda r: f"10.{r.randrange(256)}.{r.randrange(256)}.{r.randrange(1, 255)}",
    "path": lambda r: (
        r.choice(["/api/v1/items", "/api/v1/cart", "/api/v2/search", "/healthz", "/api/v1/users"])
        + f"/{r.randrange(1, 10**6)}"
    ),
    "status": lambda r: r.choice(["200", "200", "200", "201", "204", "304"]),
    "code": lambda r: r.choice(["400", "401", "403", "404", "409", "422"]),
    "token": lambda r: "".join(r.choices(string.ascii_letters + string.digits, k=12)),
    "queue": lambda r: r.choice(["emails", "sms", "push", "webhooks"]),
    "region": lambda r: r.choice(["eu-west-1", "us-east-1", "ap-south-1"]),
    "pct": lambda r: str(r.randrange(1, 100)),
}


@dataclass(frozen=True)
class Template:
    """A message template compiled into literal/placeholder parts, for fast filling."""

    text: str
    parts: tuple[tuple[str, str | None], ...]

    @classmethod
    def compile(cls, text: str) -> Template:
        parts: list[tuple[str, str | None]] = []
        for literal, name, _, _ in string.Formatter().parse(text):
            if name is not None and name not in FILLERS:
                raise ValueError(f"unknown placeholder {{{name}}} in template {text!r}")
            parts.append((literal, name or None))
        return cls(text, tuple(parts))

    def fill(self, rng: random.Random) -> str:
        out = []
        for literal, name in self.parts:
            out.append(literal)
            if name is not None:
                out.append(FILLERS[name](rng))
        return "".join(out)


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    tenant: str
    weight: float
    hosts: tuple[str, ...]
    debug: tuple[Template, ...]
    info: tuple[Template, ...]
    warn: tuple[Template, ...]
    error: tuple[Template, ...]
    #: share of each level in normal traffic
    error_share: float = 0.01
    warn_share: float = 0.03
    debug_share: float = 0.06


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
) -> ServiceSpec:
    rng = random.Random(name)
    hosts = tuple(f"{name}-{_hex(rng, 4)}-{i}" for i in range(n_hosts))
    return ServiceSpec(
        name=name,
        tenant=tenant,
        weight=weight,
        hosts=hosts,
        debug=_t(*(debug or ("cache lookup key={token} hit={pct}%", "span {rid} started"))),
        info=_t(*info),
        warn=_t(*warn),
        error=_t(*error),
    )


CATALOGUE: tuple[ServiceSpec, ...] = (
    _service(
        "api-gateway",
        "acme",
        weight=3.0,
        n_hosts=4,
        info=(
            "GET {path} {status} {ms}ms",
            "POST {path} {status} {ms}ms user={user}",
            "request {rid} completed in {ms}ms",
            "routed {path} to upstream in {ms}ms",
        ),
        warn=(
            "rate limit close for client {ip}: {pct}% of quota",
            "slow upstream response {ms}ms on {path}",
        ),
        error=(
            "upstream timeout after {ms}ms on {path}",
            "502 from upstream for request {rid}",
        ),
    ),
    _service(
        "auth",
        "acme",
        weight=1.5,
        n_hosts=3,
        info=(
            "user {user} logged in from {ip}",
            "token issued for {user} ttl={n}s",
            "session {token} refreshed",
        ),
        warn=(
            "failed login for {user} from {ip}",
            "token {token} close to expiry",
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
        info=(
            "charged {amount} EUR for order {order}",
            "refund {amount} EUR for {order}",
            "payment {rid} authorised in {ms}ms",
        ),
        warn=(
            "retrying charge for {order}: attempt {n}",
            "3-D Secure challenge slow: {ms}ms",
        ),
        error=(
            "charge failed for order {order}: card declined",
            "PSP returned {code} for payment {rid}",
        ),
    ),
    _service(
        "orders",
        "acme",
        weight=1.4,
        n_hosts=3,
        info=(
            "order {order} created by {user} with {n} items",
            "order {order} shipped",
            "order {order} status changed to paid",
        ),
        warn=("order {order} waiting for stock of {sku}",),
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
        info=(
            "reserved {n} of {sku} for {order}",
            "stock level for {sku} is {n}",
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
        info=(
            "query '{token}' returned {n} hits in {ms}ms",
            "index segment {n} merged",
        ),
        warn=("slow query '{token}' took {ms}ms",),
        error=(
            "search shard {n} unavailable",
            "query '{token}' failed: too many clauses",
        ),
    ),
    _service(
        "notifications",
        "globex",
        weight=0.8,
        n_hosts=2,
        info=(
            "sent {queue} notification to {user}",
            "queue {queue} depth {n}",
        ),
        warn=("{queue} provider throttling: retry in {n}s",),
        error=("failed to deliver {queue} to {user}: provider {code}",),
    ),
    _service(
        "checkout",
        "acme",
        weight=1.0,
        n_hosts=3,
        info=(
            "checkout {rid} started for {user}",
            "checkout {rid} completed in {ms}ms",
        ),
        warn=("checkout {rid} slow: {ms}ms",),
        error=("checkout {rid} failed: payment service returned {code}",),
    ),
    _service(
        "user-profile",
        "initech",
        weight=0.9,
        n_hosts=2,
        info=(
            "profile of {user} read in {ms}ms",
            "profile of {user} updated",
        ),
        warn=("profile cache miss ratio {pct}%",),
        error=("profile of {user} could not be loaded: {code}",),
    ),
    _service(
        "recommendations",
        "initech",
        weight=0.7,
        n_hosts=2,
        info=(
            "{n} recommendations for {user} in {ms}ms",
            "model refreshed in region {region}",
        ),
        warn=("fallback recommendations for {user}: model slow {ms}ms",),
        error=("feature store timeout after {ms}ms for {user}",),
    ),
    _service(
        "shipping",
        "initech",
        weight=0.6,
        n_hosts=2,
        info=(
            "label created for {order} in {region}",
            "tracking update for {order}",
        ),
        warn=("carrier API slow in {region}: {ms}ms",),
        error=("carrier rejected shipment {order}: {code}",),
    ),
    _service(
        "billing",
        "default",
        weight=0.5,
        n_hosts=2,
        info=(
            "invoice {rid} generated for {user}: {amount} EUR",
            "billing run processed {n} accounts",
        ),
        warn=("invoice {rid} delayed: tax service slow {ms}ms",),
        error=("invoice {rid} failed: ledger write conflict",),
    ),
)

#: Error templates no service produces normally: the `new_error_pattern` incidents draw from them.
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

SLOW_REQUEST = Template.compile("slow request {rid}: {ms}ms (threshold 500ms)")


def service_by_name(name: str) -> ServiceSpec:
    for s in CATALOGUE:
        if s.name == name:
            return s
    known = ", ".join(s.name for s in CATALOGUE)
    raise KeyError(f"unknown service {name!r}; known services: {known}")
