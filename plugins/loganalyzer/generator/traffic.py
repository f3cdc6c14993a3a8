"""The event-time traffic model: seasonal, Poisson arrivals per service, incidents applied.

`TrafficModel.records(start, end)` yields encoded, keyed records in event-time order and
`TrafficModel.events(start, end)` the same traffic as `LogEvent`s. Both work one second of event
time at a time, so memory stays flat for a day of traffic at any rate, and both are deterministic
for a seed (the same seed gives the same events through either).

Why the hot loop looks the way it does (≥ 200k encoded records/s on one core is the target):
time is integer microseconds (no datetime per event), a second's arrivals are drawn at once and
sorted, the service of each arrival is a bisection on cumulative rates (Poisson splitting: one
draw instead of one per service), durations and statuses are table lookups, and the JSON is one
%-format per service: messages need no escaping (services.py guarantees it).
"""

from __future__ import annotations

import itertools
import math
import random
import time
import zlib
from bisect import bisect_right
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

import orjson

from loganalyzer.events import DEFAULT_TENANT, LogEvent, partition_key
from loganalyzer.generator.incidents import RAMP_START_SHARE, Incident
from loganalyzer.generator.services import (
    DEPLOY_INFO,
    SLOW_REQUEST,
    STATUS_ERROR,
    STATUS_OK,
    STATUS_WARN,
    ServiceSpec,
    Template,
    novel_error,
)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = 1_000_000
_WEEKLY_MEAN = (5 + 2 * 0.6) / 7
_DAILY_MEAN = 0.55
#: share of lines that are WARN "slow request" during a latency degradation
SLOW_WARN_SHARE = 0.1
#: ERROR share never exceeds this (an error burst with a multiplier)
MAX_ERROR_SHARE = 0.95


def _seasonality(hour: float, weekday: int) -> float:
    daily = _DAILY_MEAN + 0.45 * math.sin(2 * math.pi * (hour - 8) / 24)
    weekly = 0.6 if weekday >= 5 else 1.0
    return (daily / _DAILY_MEAN) * (weekly / _WEEKLY_MEAN)


def seasonality(t: datetime) -> float:
    """Traffic multiplier for an event time; its mean over a week is 1.

    Daily: lowest around 02:00 UTC (~0.18 of the mean), highest around 14:00 (~1.8).
    Weekly: Saturdays and Sundays carry 60 % of a weekday's traffic.
    """
    t = t.astimezone(UTC)
    return _seasonality(t.hour + t.minute / 60, t.weekday())


def _seasonality_at(second: int) -> float:
    """seasonality() of an epoch second (same minute resolution), without a datetime."""
    day, rest = divmod(second, 86_400)
    return _seasonality((rest // 60) / 60, (day + 3) % 7)  # 1970-01-01 was a Thursday


def poisson(rng: random.Random, lam: float) -> int:
    if lam <= 0:
        return 0
    if lam > 30:  # normal approximation: exact enough, and O(1)
        return max(0, round(rng.gauss(lam, math.sqrt(lam))))
    threshold, k, p = math.exp(-lam), 0, 1.0
    while True:
        p *= rng.random()
        if p <= threshold:
            return k
        k += 1


def to_us(t: datetime) -> int:
    """Epoch microseconds of an aware datetime, exactly (float seconds lose microseconds)."""
    if t.tzinfo is None:
        raise ValueError(f"{t} has no timezone; use an aware UTC datetime")
    return (t - _EPOCH) // timedelta(microseconds=1)


def from_us(us: int) -> datetime:
    return _EPOCH + timedelta(microseconds=us)


class Record(NamedTuple):
    """An encoded event and its Kafka key. `time_us` is its event time in epoch microseconds."""

    time_us: int
    key: bytes
    value: bytes

    @property
    def timestamp(self) -> datetime:
        return from_us(self.time_us)


def invalid_record(kind: int, ts: str, service: str, host: str) -> bytes:
    """A deliberately malformed record (for --invalid-rate): kind cycles through what the contract
    rejects, each shaped like a plausible mistake of a real producer."""
    good = f'"timestamp":"{ts}","service":"{service}","host":"{host}"'
    k = kind % len(INVALID_KINDS)
    if k == 0:  # invalid_json: a plain-text log line
        return f"{ts} ERROR {service} {host} not a JSON record".encode()
    if k == 1:  # invalid_json: truncated by a buggy writer
        return f'{{{good},"level":"INFO","message":"truncated'.encode()
    if k == 2:  # not_an_object
        return f'["{ts}","INFO","{service}"]'.encode()
    if k == 3:  # missing_field: no message
        return f'{{{good},"level":"INFO"}}'.encode()
    if k == 4:  # bad_timestamp: no offset
        bad = f'"timestamp":"{ts[:19]}","level":"INFO","service":"{service}","host":"{host}"'
        return f'{{{bad},"message":"m"}}'.encode()
    if k == 5:  # wrong_type: a numeric level
        return f'{{{good},"level":3,"message":"numeric level"}}'.encode()
    if k == 6:  # invalid_utf8: Latin-1 bytes in the message
        return f'{{{good},"level":"INFO","message":"caf'.encode() + b'\xe9 cr\xe8me"}'
    # oversized: a stack trace far above the 64 KiB limit
    return (
        f'{{{good},"level":"ERROR","message":"'.encode()
        + b"at com.example.Foo.bar(Foo.java:42) " * 2000
        + b'"}'
    )


#: The rejection reason each kind of invalid record triggers (for tests and docs).
INVALID_KINDS = (
    "invalid_json",
    "invalid_json",
    "not_an_object",
    "missing_field",
    "bad_timestamp",
    "wrong_type",
    "invalid_utf8",
    "oversized",
)


class _Service:
    """A service compiled for the hot loop (fields read by plain attribute access)."""

    __slots__ = ("debug", "durations", "error", "hosts", "info", "json_fmt", "key", "name", "spec", "warn")

    def __init__(self, spec: ServiceSpec) -> None:
        self.spec = spec
        self.name = spec.name
        self.hosts = spec.hosts
        self.info = spec.info
        self.debug = spec.debug
        self.warn = spec.warn
        self.error = spec.error
        self.durations = spec.durations or tuple(range(20, 20 + 1024))
        self.key = partition_key(spec.tenant, spec.name)
        name = orjson.dumps(spec.name).decode().replace("%", "%%")
        tenant = "" if spec.tenant == DEFAULT_TENANT else f',"tenant":{orjson.dumps(spec.tenant).decode()}'
        tenant = tenant.replace("%", "%%")
        status = ',"status":%d}' if spec.http else "%.0s}"  # %.0s swallows the status argument
        self.json_fmt = (
            '{"timestamp":"%s.%06dZ","level":"%s","service":' + name + ',"host":"%s","message":"%s",'
            '"metadata":{"request_id":"%s","duration_ms":%d' + status + tenant + "}"
        )


#: Per-service parameters while incidents are active: cumulative level thresholds and effects.
class _Params(NamedTuple):
    novel: float  # r < novel: the incident's new error
    error: float  # r < error: an ERROR
    slow: float  # r < slow: a WARN "slow request"
    warn: float  # r < warn: a WARN
    debug: float  # r < debug: a DEBUG, else INFO
    latency: float  # duration multiplier
    volume: float  # traffic multiplier
    novel_template: Template | None
    info: tuple[Template, ...]  # the INFO templates (a deploy adds some)


class TrafficModel:
    def __init__(
        self,
        services: Sequence[ServiceSpec],
        rate: float,
        seed: int = 0,
        incidents: Iterable[Incident] = (),
        invalid_rate: float = 0.0,
        on_incident: Callable[[Incident], None] | None = None,
        burstiness: float = 0.0,
    ) -> None:
        """`incidents` must be in start order when it is an iterator (it may be endless); a list
        or tuple is sorted here.

        `burstiness` > 0: each service's rate is multiplied, minute by minute, by an independent
        gamma factor of mean 1 and this coefficient of variation (0.5 is what busy production
        services show), so per-minute counts are overdispersed (negative binomial) instead of
        Poisson. 0 keeps the Poisson traffic and the random stream of earlier versions."""
        if not services:
            raise ValueError("at least one service is needed")
        if rate <= 0:
            raise ValueError("rate must be > 0 events per second")
        if not 0 <= invalid_rate < 1:
            raise ValueError("invalid_rate must be in [0, 1)")
        if not 0 <= burstiness <= 3:
            raise ValueError("burstiness must be in [0, 3] (a coefficient of variation)")
        names = [s.name for s in services]
        if len(set(names)) != len(names):
            raise ValueError("service names must be unique")
        self.services = list(services)
        self._svc = [_Service(s) for s in self.services]
        self._index = {s.name: i for i, s in enumerate(self.services)}
        total = sum(s.weight for s in self.services)
        self._share = [s.weight / total for s in self.services]
        self.rate = rate
        self.rng = random.Random(seed)
        if isinstance(incidents, list | tuple):
            incidents = sorted(incidents, key=lambda inc: inc.start)
        self._incidents = iter(incidents)
        self._upcoming: list[tuple[int, int, Incident]] = []  # pulled, not started: (start, end, inc)
        self._active: list[tuple[int, int, Incident]] = []
        self._exhausted = False
        self.invalid_rate = invalid_rate
        self.on_incident = on_incident
        self.by_level: dict[str, int] = {}
        self.injected: list[Incident] = []
        self._novel: dict[int, Template] = {}  # id(incident) -> its new template
        self._novel_used: dict[str, int] = {}
        self._params: list[_Params] = []
        self._cum: list[float] = []
        self.burstiness = burstiness
        self._burst = [1.0] * len(self.services)
        #: event time (µs) the parameters were computed for (ramps depend on it)
        self._clock = 0
        self._recompute()

    @property
    def produced(self) -> int:
        """Records generated so far (valid and invalid)."""
        return sum(self.by_level.values())

    # -- incidents ------------------------------------------------------------------------------
    def _pull(self, horizon: int) -> None:
        """Pull incidents starting before `horizon` (µs) from the schedule: it may be endless."""
        while not self._exhausted and (not self._upcoming or self._upcoming[-1][0] < horizon):
            inc = next(self._incidents, None)
            if inc is None:
                self._exhausted = True
                break
            if inc.service not in self._index:
                raise ValueError(f"incident on unknown service {inc.service!r}")
            self._upcoming.append((to_us(inc.start), to_us(inc.end), inc))

    def _boundaries(self, lo: int, hi: int) -> list[int]:
        """Incident starts and ends strictly inside (lo, hi): where a second must be split."""
        self._pull(hi)
        cuts = {s for s, _, _ in self._upcoming if lo < s < hi}
        cuts.update(e for s, e, _ in self._upcoming if lo < e < hi and s < hi)
        cuts.update(e for _, e, _ in self._active if lo < e < hi)
        return sorted(cuts)

    def _new_minute(self, t: int) -> None:
        """Draw the minute's burst factors and move ramps on (only when either exists, so that
        Poisson traffic keeps its random stream)."""
        changed = False
        if self.burstiness > 0:
            k = 1.0 / (self.burstiness * self.burstiness)
            gamma = self.rng.gammavariate
            self._burst = [gamma(k, 1.0 / k) for _ in self._svc]
            changed = True
        if any(inc.type == "error_ramp" for _, _, inc in self._active):
            changed = True
        if changed:
            self._clock = t
            self._recompute()

    def _advance(self, t: int) -> None:
        """Start the incidents due at `t` (µs), end the finished ones, refresh the parameters."""
        self._clock = t
        changed = False
        if self._active and any(e <= t for _, e, _ in self._active):
            self._active = [a for a in self._active if a[1] > t]
            changed = True
        if self._upcoming and self._upcoming[0][0] <= t:
            due = [u for u in self._upcoming if u[0] <= t]
            self._upcoming = [u for u in self._upcoming if u[0] > t]
            for s, e, inc in due:
                if e <= t:  # entirely before the generated span: never injected, never reported
                    continue
                self._start_incident(inc)
                self._active.append((s, e, inc))
            changed = True
        if changed:
            self._recompute()

    def _start_incident(self, inc: Incident) -> None:
        if inc.type == "new_error_pattern":
            # A template this service has not produced yet, chosen deterministically (str hashes
            # differ per process, crc32 does not).
            used = self._novel_used.get(inc.service, 0)
            first = zlib.crc32(inc.service.encode()) % 12
            self._novel[id(inc)] = novel_error(first + used if first + used < 12 else 12 + used)
            self._novel_used[inc.service] = used + 1
        self.injected.append(inc)
        if self.on_incident is not None:
            self.on_incident(inc)

    def _recompute(self) -> None:
        params: list[_Params] = []
        cum: list[float] = []
        acc = 0.0
        for i, spec in enumerate(self.services):
            novel = slow = 0.0
            error = spec.error_share
            latency = volume = 1.0
            template: Template | None = None
            info = spec.info
            for s_us, e_us, inc in self._active:
                if inc.service != spec.name:
                    continue
                if inc.type == "traffic_spike" or inc.type == "outage":
                    volume *= inc.magnitude
                elif inc.type == "error_burst":
                    m = inc.magnitude
                    error = min(MAX_ERROR_SHARE, m if m <= 1 else spec.error_share * m)
                elif inc.type == "new_error_pattern":
                    novel, template = inc.magnitude, self._novel[id(inc)]
                elif inc.type == "latency_degradation":
                    latency, slow = inc.magnitude, SLOW_WARN_SHARE
                elif inc.type == "error_ramp":
                    done = min(1.0, max(0.0, (self._clock - s_us) / max(1, e_us - s_us)))
                    error = RAMP_START_SHARE + (inc.magnitude - RAMP_START_SHARE) * done
                elif inc.type == "deploy":
                    volume *= inc.magnitude
                    info = info + DEPLOY_INFO
            # cumulative thresholds; the normal mix shares what the incident leaves
            rest = 1.0 - novel
            e = novel + error * rest
            s = e + slow * rest
            w = s + spec.warn_share * rest
            d = w + spec.debug_share * rest
            params.append(_Params(novel, e, s, w, d, latency, volume, template, info))
            acc += self._share[i] * volume * self._burst[i]
            cum.append(acc)
        self._params = params
        self._cum = cum

    # -- traffic ---------------------------------------------------------------------------------
    def records(self, start: datetime, end: datetime | None = None) -> Iterator[Record]:
        """Encoded records with event time in [start, end) (end None: forever), in event-time order."""
        return self._generate(start, end, True)  # type: ignore[return-value]

    def events(self, start: datetime, end: datetime | None = None) -> Iterator[LogEvent]:
        """The same traffic as `records` for the same seed, as LogEvents (invalid records, which
        have no LogEvent, are skipped: they still use the random stream, so both stay in step)."""
        return self._generate(start, end, False)  # type: ignore[return-value]

    def _generate(self, start: datetime, end: datetime | None, encode: bool) -> Iterator[Record | LogEvent]:
        rng = self.rng
        rnd = rng.random
        bits = rng.getrandbits
        by_level = self.by_level
        for level in ("DEBUG", "INFO", "WARN", "ERROR"):
            by_level.setdefault(level, 0)
        invalid_rate = self.invalid_rate
        services = self._svc
        new_record = tuple.__new__
        start_us = to_us(start)
        end_us = to_us(end) if end is not None else None
        second = start_us // _US
        minute = None
        while True:
            s_lo = second * _US
            lo = max(s_lo, start_us)
            hi = s_lo + _US if end_us is None else min(s_lo + _US, end_us)
            if lo >= hi:
                return
            prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
            lam_second = self.rate * _seasonality_at(second)
            if second // 60 != minute:
                minute = second // 60
                self._new_minute(max(lo, minute * 60 * _US))
            cuts = self._boundaries(lo, hi)
            edges = [lo, *cuts, hi]
            for a, b in itertools.pairwise(edges):
                self._advance(a)
                cum = self._cum
                total = cum[-1]
                n = poisson(rng, lam_second * total * (b - a) / _US)
                if n == 0:
                    continue
                params = self._params
                width = b - a
                base = a - s_lo
                offsets = [int(rnd() * width) for _ in range(n)]
                offsets.sort()
                for off in offsets:
                    i = bisect_right(cum, rnd() * total)
                    svc = services[i]
                    p = params[i]
                    us = base + off
                    host = svc.hosts[int(rnd() * len(svc.hosts))]
                    if invalid_rate and rnd() < invalid_rate:
                        by_level["INVALID"] = by_level.get("INVALID", 0) + 1
                        if encode:
                            ts = f"{prefix}.{us:06d}Z"
                            value = invalid_record(bits(3), ts, svc.name, host)
                            yield new_record(Record, (s_lo + us, svc.key, value))
                        else:
                            bits(3)
                        continue
                    rid = f"{bits(64):016x}"
                    ms = svc.durations[bits(10)]
                    r = rnd()
                    if r >= p.debug:
                        level = "INFO"
                        tpls = p.info
                        status = STATUS_OK[bits(5)]
                    elif r >= p.warn:
                        level = "DEBUG"
                        tpls = svc.debug
                        status = STATUS_OK[bits(5)]
                    elif r >= p.slow:
                        level = "WARN"
                        tpls = svc.warn
                        status = STATUS_WARN[bits(5)]
                    elif r >= p.error:
                        level = "WARN"
                        tpls = (SLOW_REQUEST,)
                        status = STATUS_OK[bits(5)]
                    elif r >= p.novel:
                        level = "ERROR"
                        tpls = svc.error
                        status = STATUS_ERROR[bits(5)]
                    else:
                        level = "ERROR"
                        tpls = (p.novel_template,)  # type: ignore[assignment]
                        status = STATUS_ERROR[bits(5)]
                    if p.latency != 1.0:
                        ms = int(ms * p.latency)
                    by_level[level] += 1
                    message = tpls[int(rnd() * len(tpls))].fill(rng, rid, ms, status)
                    if encode:
                        value = (svc.json_fmt % (prefix, us, level, host, message, rid, ms, status)).encode()
                        yield new_record(Record, (s_lo + us, svc.key, value))
                    else:
                        metadata: dict[str, Any] = {"request_id": rid, "duration_ms": ms}
                        if svc.spec.http:
                            metadata["status"] = status
                        yield LogEvent(
                            from_us(s_lo + us), svc.spec.tenant, svc.name, host, level, message, metadata
                        )
            second += 1
