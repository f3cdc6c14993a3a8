"""The consumer's suppression matching (pure): exact tenant/service/template, ends honoured by time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from streaming.suppressions import Suppression, SuppressionCache, SuppressionSet

T0 = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
names = st.sampled_from(["acme", "globex", "a", "A", "checkout", "search", ""])
templates = st.sampled_from(["card <*> refused", "disk <*> full", "card <*> refused ", "timeout"])
untils = st.one_of(st.none(), st.integers(-120, 120).map(lambda s: T0 + timedelta(seconds=s)))
suppressions = st.builds(Suppression, names, names, templates, untils, st.integers(1, 10**6))


def _reference(
    subs: list[Suppression], tenant: str, service: str, template: str | None, now: datetime
) -> bool:
    """The rule in words: muted when some suppression of exactly this tenant, service and
    template has not ended at `now` (no end: for good)."""
    return template is not None and any(
        (s.tenant, s.service, s.pattern_template) == (tenant, service, template)
        and (s.until is None or s.until > now)
        for s in subs
    )


@given(
    st.lists(suppressions, max_size=12),
    names,
    names,
    st.one_of(st.none(), templates),
    st.integers(-180, 180).map(lambda s: T0 + timedelta(seconds=s)),
)
def test_matches_exactly_what_the_rule_says(
    subs: list[Suppression], tenant: str, service: str, template: str | None, now: datetime
) -> None:
    found = SuppressionSet(subs).match(tenant, service, template, now)
    assert (found is not None) == _reference(subs, tenant, service, template, now)
    if found is not None:
        # the one returned is of this pattern, active, and the longest of its pattern
        assert (found.tenant, found.service, found.pattern_template) == (tenant, service, template)
        same = [s for s in subs if (s.tenant, s.service, s.pattern_template) == (tenant, service, template)]
        if any(s.until is None for s in same):
            assert found.until is None
        else:
            assert found.until == max(s.until for s in same if s.until is not None)


@given(st.lists(suppressions, min_size=1, max_size=12), st.data())
def test_another_tenant_or_service_is_never_muted(subs: list[Suppression], data: st.DataObject) -> None:
    """A suppression of tenant A never mutes tenant B's service of the same name (nor another
    service of A), even for good and at any time."""
    s = data.draw(st.sampled_from(subs))
    active = SuppressionSet([*subs, Suppression(s.tenant, s.service, s.pattern_template, None, 0)])
    assert active.match(s.tenant, s.service, s.pattern_template, T0) is not None
    for tenant, service in ((s.tenant + "-other", s.service), (s.tenant, s.service + "-other")):
        assert active.match(tenant, service, s.pattern_template, T0 - timedelta(days=1)) is None


def test_a_suppression_ends_at_its_until_without_a_reload() -> None:
    clock = [0.0]
    cache = SuppressionCache(refresh_seconds=5.0, clock=lambda: clock[0])
    loads: list[int] = []

    def load() -> list[Suppression]:
        loads.append(1)
        return [Suppression("acme", "checkout", "card <*> refused", T0 + timedelta(seconds=3), 7)]

    active = cache.current(load)
    assert active.match("acme", "checkout", "card <*> refused", T0) is not None
    clock[0] = 4.0  # not reloaded yet: the same set, but its end has passed on the wall clock
    assert cache.current(load) is active and len(loads) == 1
    assert active.match("acme", "checkout", "card <*> refused", T0 + timedelta(seconds=3)) is None
    clock[0] = 5.0
    cache.current(load)
    assert len(loads) == 2 and cache.loads == 2


def test_no_template_is_never_muted() -> None:
    active = SuppressionSet([Suppression("acme", "checkout", "x", None, 1)])
    assert active.match("acme", "checkout", None, T0) is None
    assert active.match("acme", "checkout", "x", T0) is not None
