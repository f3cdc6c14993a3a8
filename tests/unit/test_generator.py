"""The generator's pure model: determinism, seasonality, incidents and their ground truth."""

from __future__ import annotations

import itertools
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest

from loganalyzer.events import LogEvent, ParseLimits, parse_event
from loganalyzer.generator.incidents import (
    DEFAULT_MAGNITUDE,
    INCIDENT_TYPES,
    Incident,
    ScenarioError,
    demo_incidents,
    incidents_from_mapping,
    load_scenario,
    parse_duration,
    random_scenario,
)
from loganalyzer.generator.services import CATALOGUE, NOVEL_ERRORS, Template, service_by_name
from loganalyzer.generator.traffic import TrafficModel, seasonality

MONDAY_NOON = datetime(2026, 11, 23, 12, tzinfo=UTC)
LIMITS = ParseLimits(max_age=timedelta(days=3650))


def events(model: TrafficModel, start: datetime, seconds: int) -> list[LogEvent]:
    out = []
    for rec in model.records(start, start + timedelta(seconds=seconds)):
        ev = parse_event(rec.value, LIMITS, start + timedelta(days=1))
        assert isinstance(ev, LogEvent), ev
        out.append(ev)
    return out


def test_same_seed_same_traffic_and_time_ordered_within_bounds() -> None:
    a = [
        r.value
        for r in TrafficModel(CATALOGUE, 100, seed=7).records(
            MONDAY_NOON, MONDAY_NOON + timedelta(seconds=30)
        )
    ]
    b = [
        r.value
        for r in TrafficModel(CATALOGUE, 100, seed=7).records(
            MONDAY_NOON, MONDAY_NOON + timedelta(seconds=30)
        )
    ]
    c = [
        r.value
        for r in TrafficModel(CATALOGUE, 100, seed=8).records(
            MONDAY_NOON, MONDAY_NOON + timedelta(seconds=30)
        )
    ]
    assert a == b and a != c
    evs = events(TrafficModel(CATALOGUE, 100, seed=7), MONDAY_NOON, 30)
    stamps = [e.timestamp for e in evs]
    assert stamps == sorted(stamps)
    assert stamps[0] >= MONDAY_NOON and stamps[-1] < MONDAY_NOON + timedelta(seconds=30)


def test_every_record_is_valid_and_keyed_by_tenant_and_service() -> None:
    model = TrafficModel(CATALOGUE, 300, seed=1)
    for rec in model.records(MONDAY_NOON, MONDAY_NOON + timedelta(seconds=20)):
        ev = parse_event(rec.value, LIMITS, MONDAY_NOON + timedelta(days=1))
        assert isinstance(ev, LogEvent)
        assert rec.key == f"{ev.tenant}/{ev.service}".encode()
        assert "duration_ms" in ev.metadata and "request_id" in ev.metadata


def test_rate_and_level_mix_are_realistic() -> None:
    evs = events(TrafficModel(CATALOGUE, 200, seed=3), MONDAY_NOON, 120)
    expected = 200 * 120 * seasonality(MONDAY_NOON)
    assert 0.9 * expected < len(evs) < 1.1 * expected
    levels = Counter(e.level for e in evs)
    assert 0.005 < levels["ERROR"] / len(evs) < 0.02
    assert levels["INFO"] > levels["DEBUG"] > 0 and levels["WARN"] > 0
    assert len({e.service for e in evs}) == len(CATALOGUE)
    assert len({e.host for e in evs}) > 2 * len(CATALOGUE)


@pytest.mark.parametrize(
    ("t", "low", "high"),
    [
        (datetime(2026, 11, 24, 2, tzinfo=UTC), 0.1, 0.3),  # Tuesday night
        (datetime(2026, 11, 24, 14, tzinfo=UTC), 1.6, 2.2),  # Tuesday afternoon
        (datetime(2026, 11, 28, 14, tzinfo=UTC), 0.9, 1.3),  # Saturday afternoon
    ],
)
def test_seasonality_daily_and_weekly(t: datetime, low: float, high: float) -> None:
    assert low < seasonality(t) < high


def test_seasonality_averages_one_over_a_week() -> None:
    start = datetime(2026, 11, 23, tzinfo=UTC)
    hours = [seasonality(start + timedelta(minutes=10 * i)) for i in range(7 * 24 * 6)]
    assert sum(hours) / len(hours) == pytest.approx(1.0, abs=0.02)


def _with(kind: str, magnitude: float | None = None) -> tuple[list[LogEvent], Incident]:
    spec = service_by_name("payments")
    inc = Incident(
        kind,
        spec.tenant,
        spec.name,
        MONDAY_NOON + timedelta(seconds=60),
        MONDAY_NOON + timedelta(seconds=120),
        magnitude if magnitude is not None else DEFAULT_MAGNITUDE[kind],
    )
    seen: list[Incident] = []
    model = TrafficModel(CATALOGUE, 150, seed=5, incidents=[inc], on_incident=seen.append)
    evs = events(model, MONDAY_NOON, 180)
    assert seen == [inc]
    return evs, inc


def _split(
    evs: list[LogEvent], inc: Incident, service: str = "payments"
) -> tuple[list[LogEvent], list[LogEvent]]:
    mine = [e for e in evs if e.service == service]
    during = [e for e in mine if inc.start <= e.timestamp < inc.end]
    outside = [e for e in mine if not inc.start <= e.timestamp < inc.end]
    return during, outside


def _error_share(evs: list[LogEvent]) -> float:
    return sum(e.level == "ERROR" for e in evs) / max(1, len(evs))


def test_error_burst_raises_error_share_only_during_the_incident() -> None:
    evs, inc = _with("error_burst")
    during, outside = _split(evs, inc)
    assert _error_share(during) > 0.2
    assert _error_share(outside) < 0.05
    other = [e for e in evs if e.service == "orders" and inc.start <= e.timestamp < inc.end]
    assert _error_share(other) < 0.05


def test_traffic_spike_multiplies_volume() -> None:
    evs, inc = _with("traffic_spike")
    during, outside = _split(evs, inc)
    assert len(during) > 5 * len(outside) / 2  # outside spans two minutes, during one


@pytest.mark.parametrize("magnitude", [0.0, 0.02])
def test_outage_drops_volume_or_silences_the_service(magnitude: float) -> None:
    evs, inc = _with("outage", magnitude)
    during, outside = _split(evs, inc)
    if magnitude == 0:
        assert during == []
    else:
        assert len(during) < 0.1 * len(outside) / 2
    assert len(outside) > 100


def test_new_error_pattern_uses_a_template_never_seen_before() -> None:
    evs, inc = _with("new_error_pattern")
    during, outside = _split(evs, inc)
    novel_prefixes = {t.text.split("{")[0] for t in NOVEL_ERRORS}
    novel = [e for e in during if any(e.message.startswith(p) for p in novel_prefixes if p)]
    assert len(novel) > 0.05 * len(during)
    assert all(e.level == "ERROR" for e in novel)
    assert not any(any(e.message.startswith(p) for p in novel_prefixes if p) for e in outside)


def test_latency_degradation_multiplies_durations_and_adds_slow_warnings() -> None:
    evs, inc = _with("latency_degradation")
    during, outside = _split(evs, inc)

    def mean(xs: list[LogEvent]) -> float:
        return sum(e.metadata["duration_ms"] for e in xs) / len(xs)

    assert mean(during) > 3 * mean(outside)
    assert any(e.message.startswith("slow request") for e in during)
    assert not any(e.message.startswith("slow request") for e in outside)


def test_invalid_rate_produces_records_the_contract_rejects() -> None:
    model = TrafficModel(CATALOGUE, 300, seed=2, invalid_rate=0.2)
    results = [
        parse_event(r.value, LIMITS, MONDAY_NOON + timedelta(days=1))
        for r in model.records(MONDAY_NOON, MONDAY_NOON + timedelta(seconds=10))
    ]
    bad = [r for r in results if not isinstance(r, LogEvent)]
    assert 0.1 < len(bad) / len(results) < 0.3
    assert len({r.reason for r in bad}) >= 5  # type: ignore[union-attr]


def test_random_scenario_places_every_type_without_overlaps() -> None:
    start = MONDAY_NOON
    end = start + timedelta(hours=24)
    incs = random_scenario(CATALOGUE, start, end, 20, seed=4)
    assert Counter(i.type for i in incs) == dict.fromkeys(INCIDENT_TYPES, 20)
    gap = timedelta(minutes=30)
    for s in CATALOGUE:
        mine = sorted((i for i in incs if i.service == s.name), key=lambda i: i.start)
        for a, b in itertools.pairwise(mine):
            assert b.start >= a.end + gap
    assert all(start <= i.start and i.end <= end for i in incs)
    with pytest.raises(ValueError, match="could place only"):
        random_scenario(CATALOGUE[:1], start, start + timedelta(hours=2), 20)


def test_demo_rotation_cycles_through_every_type() -> None:
    first = [i for _, i in zip(range(10), demo_incidents(MONDAY_NOON), strict=False)]
    assert [i.type for i in first[:5]] == list(INCIDENT_TYPES)
    assert all(b.start > a.start for a, b in itertools.pairwise(first))


def test_scenario_file_with_offsets_and_absolute_times(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(
        "incidents:\n"
        "  - {type: error_burst, service: payments, start: 15m, duration: 10m}\n"
        "  - {type: outage, service: search, start: '2026-11-23T13:00:00Z', duration: 1h, magnitude: 0}\n"
    )
    incs = load_scenario(path, MONDAY_NOON)
    assert [(i.type, i.start, i.end) for i in incs] == [
        ("error_burst", MONDAY_NOON + timedelta(minutes=15), MONDAY_NOON + timedelta(minutes=25)),
        ("outage", MONDAY_NOON + timedelta(hours=1), MONDAY_NOON + timedelta(hours=2)),
    ]
    assert incs[0].tenant == "acme" and incs[0].magnitude == DEFAULT_MAGNITUDE["error_burst"]
    truth = incs[1].ground_truth()
    assert truth["start"] == "2026-11-23T13:00:00Z" and truth["expected_anomaly"] == "log_volume_drop"
    assert orjson.loads(orjson.dumps(truth)) == truth


def test_the_shipped_example_scenario_is_valid() -> None:
    root = Path(__file__).resolve().parents[2]
    assert load_scenario(root / "docs" / "scenarios" / "example.yaml", MONDAY_NOON)


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({}, "list under 'incidents'"),
        (
            {"incidents": [{"type": "meteor", "service": "payments", "start": "1m", "duration": "1m"}]},
            "is not one of",
        ),
        (
            {"incidents": [{"type": "outage", "service": "nope", "start": "1m", "duration": "1m"}]},
            "unknown service 'nope'; known services: api-gateway",
        ),
        (
            {"incidents": [{"type": "outage", "service": "payments", "start": "soon", "duration": "1m"}]},
            "start",
        ),
        (
            {"incidents": [{"type": "outage", "service": "payments", "start": "1m", "duration": "long"}]},
            "duration",
        ),
        ({"incidents": [{"type": "outage", "service": "payments", "duration": "1m"}]}, "required"),
        (
            {
                "incidents": [
                    {
                        "type": "error_burst",
                        "service": "payments",
                        "start": "1m",
                        "duration": "1m",
                        "magnitude": 300,
                    }
                ]
            },
            "out of range; error_burst takes",
        ),
        (
            {
                "incidents": [
                    {"type": "outage", "service": "payments", "start": "1m", "duration": "1m", "x": 1}
                ]
            },
            "unknown keys",
        ),
    ],
)
def test_scenario_errors_say_what_to_fix(doc: object, message: str) -> None:
    with pytest.raises(ScenarioError, match=message):
        incidents_from_mapping(doc, MONDAY_NOON)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90s", timedelta(seconds=90)),
        ("15m", timedelta(minutes=15)),
        ("2h30m", timedelta(hours=2, minutes=30)),
        ("1d", timedelta(days=1)),
    ],
)
def test_durations(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "10", "m", "1x", "-5m"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ScenarioError):
        parse_duration(text)


def test_templates_refuse_unknown_placeholders() -> None:
    with pytest.raises(ValueError, match="unknown placeholder"):
        Template.compile("hello {nobody}")


# -- the fleet: bursty traffic, ramps, deploys, quiet services ------------------------------------


def _per_minute(evs: list[LogEvent], service: str) -> list[int]:
    counts = Counter(e.timestamp.replace(second=0, microsecond=0) for e in evs if e.service == service)
    return list(counts.values())


@pytest.mark.parametrize(("burstiness", "low", "high"), [(0.0, 0.0, 0.2), (0.5, 0.35, 0.65)])
def test_burstiness_sets_the_per_minute_coefficient_of_variation(
    burstiness: float, low: float, high: float
) -> None:
    spec = service_by_name("api-gateway")
    model = TrafficModel([spec], 20, seed=3, burstiness=burstiness)
    counts = _per_minute(list(model.events(MONDAY_NOON, MONDAY_NOON + timedelta(hours=2))), spec.name)
    mean = sum(counts) / len(counts)
    var = sum((c - mean) ** 2 for c in counts) / (len(counts) - 1)
    extra = max(0.0, var - mean) ** 0.5 / mean  # the gamma factor's CV, Poisson noise removed
    assert low <= extra <= high


def test_error_ramp_climbs_from_two_percent_to_its_magnitude() -> None:
    spec = service_by_name("orders")
    inc = Incident(
        "error_ramp", spec.tenant, spec.name, MONDAY_NOON, MONDAY_NOON + timedelta(minutes=90), 0.2
    )
    evs = list(TrafficModel([spec], 30, seed=4, incidents=[inc]).events(MONDAY_NOON, inc.end))

    def share(lo: int, hi: int) -> float:
        part = [
            e
            for e in evs
            if MONDAY_NOON + timedelta(minutes=lo) <= e.timestamp < MONDAY_NOON + timedelta(minutes=hi)
        ]
        return sum(e.level == "ERROR" for e in part) / len(part)

    assert 0.01 < share(0, 10) < 0.05
    assert 0.08 < share(40, 50) < 0.14
    assert 0.16 < share(80, 90) < 0.23


def test_deploy_raises_volume_for_good_and_adds_new_info_templates() -> None:
    from loganalyzer.generator.services import DEPLOY_INFO

    spec = service_by_name("orders")
    at = MONDAY_NOON + timedelta(minutes=10)
    inc = Incident("deploy", spec.tenant, spec.name, at, at + timedelta(days=1), 1.5)
    evs = list(
        TrafficModel([spec], 30, seed=5, incidents=[inc]).events(MONDAY_NOON, at + timedelta(minutes=10))
    )
    before = [e for e in evs if e.timestamp < at]
    after = [e for e in evs if e.timestamp >= at]
    assert 1.3 < len(after) / len(before) < 1.7
    prefixes = [t.text.split("{")[0] for t in DEPLOY_INFO]
    assert not any(e.message.startswith(p) for e in before for p in prefixes)
    assert any(e.message.startswith(p) and e.level == "INFO" for e in after for p in prefixes)


def test_fleet_scenario_places_every_family_on_services_that_fit() -> None:
    from loganalyzer.generator.fleet import fleet_scenario, fleet_services, quiet_services

    services = fleet_services()
    quiet = {s.name for s in quiet_services()}
    end = MONDAY_NOON + timedelta(days=1)
    fleet = fleet_scenario(services, MONDAY_NOON, end, 4, deploys=2, seed=1)
    assert Counter(f.label for f in fleet) == {
        "error_ramp": 4,
        "sustained_errors": 4,
        "quiet_silence": 4,
        "deploy": 2,
    }
    weights = {s.name: s.weight for s in services}
    for f in fleet:
        inc = f.incident
        if f.label == "quiet_silence":
            assert (
                inc.service in quiet and inc.magnitude == 0 and inc.end - inc.start == timedelta(minutes=30)
            )
        if f.label == "sustained_errors":
            assert weights[inc.service] <= 1.5 and inc.magnitude == 4.0
        if f.label == "deploy":
            assert inc.end == end and inc.service not in quiet
    by_service: dict[str, list[Incident]] = {}
    for f in fleet:
        by_service.setdefault(f.incident.service, []).append(f.incident)
    for incs in by_service.values():
        incs.sort(key=lambda i: i.start)
        assert all(b.start >= a.end for a, b in itertools.pairwise(incs))


def test_fleet_types_are_valid_in_scenario_files() -> None:
    incs = incidents_from_mapping(
        [
            {"type": "error_ramp", "service": "orders", "start": "10m", "duration": "90m", "magnitude": 0.2},
            {"type": "deploy", "service": "search", "start": "1h", "duration": "1d"},
        ],
        MONDAY_NOON,
    )
    assert [i.type for i in incs] == ["error_ramp", "deploy"]
    with pytest.raises(ScenarioError, match="error_ramp takes"):
        incidents_from_mapping(
            [{"type": "error_ramp", "service": "orders", "start": "0m", "duration": "1h", "magnitude": 0.01}],
            MONDAY_NOON,
        )
