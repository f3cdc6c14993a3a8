"""Port settings and binding: a default port is a first guess, a chosen one is a promise."""

from __future__ import annotations

import socket
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from loganalyzer.platform.ports import PortUnavailable, bind, first_free, is_free, parse_port
from loganalyzer.settings import SettingsError, load_settings
from streaming.metrics import ConsumerMetrics


@contextmanager
def listening() -> Iterator[int]:
    """A port held by a listener, as another consumer's /metrics would hold it."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield int(s.getsockname()[1])


@pytest.mark.parametrize(
    ("raw", "port"),
    [("9108", 9108), ("0", 0), (" 1 ", 1), ("65535", 65535), ("off", None), ("OFF", None), ("-1", None)],
)
def test_port_settings(raw: str, port: int | None) -> None:
    assert parse_port(raw, "X") == port


@pytest.mark.parametrize("raw", ["65536", "-2", "http", "9108.5", ""])
def test_bad_port_settings_name_the_setting(raw: str) -> None:
    with pytest.raises(ValueError, match=r"^CONSUMER_METRICS_PORT="):
        parse_port(raw, "CONSUMER_METRICS_PORT")


def test_metrics_port_settings() -> None:
    default = load_settings({}).consumer
    assert (default.metrics_port, default.metrics_port_explicit) == (9108, False)
    moved = load_settings({"CONSUMER_METRICS_FIRST_PORT": "9300"}).consumer
    assert (moved.metrics_port, moved.metrics_port_explicit) == (9300, False)
    for raw, port in (("9200", 9200), ("0", 0), ("off", None), ("-1", None)):
        chosen = load_settings({"CONSUMER_METRICS_PORT": raw}).consumer
        assert (chosen.metrics_port, chosen.metrics_port_explicit) == (port, True)
    with pytest.raises(SettingsError, match="CONSUMER_METRICS_PORT='x' is not a port"):
        load_settings({"CONSUMER_METRICS_PORT": "x"})


def test_metadata_depth_setting_is_bounded() -> None:
    assert load_settings({}).consumer.parse_limits.max_metadata_depth == 64
    assert load_settings({"LOG_MAX_METADATA_DEPTH": "8"}).consumer.parse_limits.max_metadata_depth == 8
    with pytest.raises(SettingsError, match="LOG_MAX_METADATA_DEPTH=251 must be <= 250"):
        load_settings({"LOG_MAX_METADATA_DEPTH": "251"})
    with pytest.raises(SettingsError, match="LOG_MAX_METADATA_DEPTH=0 must be >= 1"):
        load_settings({"LOG_MAX_METADATA_DEPTH": "0"})


def _open(port: int) -> socket.socket:
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.bind(("127.0.0.1", port))
        s.listen()
    except OSError:
        s.close()
        raise
    return s


def test_a_taken_default_port_falls_back_and_a_chosen_one_does_not() -> None:
    with listening() as taken:
        s = bind(_open, taken, fallback=True)
        try:
            assert s.getsockname()[1] != taken
        finally:
            s.close()
        with pytest.raises(PortUnavailable) as info:
            bind(_open, taken, fallback=False)
    assert info.value.port == taken and info.value.reason == "taken"
    line = info.value.explain("the consumer's /metrics", "CONSUMER_METRICS_PORT")
    assert line == (
        f"port {taken} for the consumer's /metrics is taken: stop what runs there, or set "
        "CONSUMER_METRICS_PORT to another port"
    )


def test_is_free_and_first_free() -> None:
    with listening() as taken:
        why = is_free(taken)
        assert why is not None and why.port == taken and why.reason == "taken"
        assert first_free(taken) != taken
        assert is_free(first_free(taken)) is None


def _scrape(port: int) -> str:
    body: bytes = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read()
    return body.decode()


def test_metrics_serve_on_a_taken_port() -> None:
    with listening() as taken:
        second = ConsumerMetrics()
        served = second.serve(taken, fallback=True)
        assert served is not None and served != taken
        assert "loganalyzer_events_consumed_total" in _scrape(served)
        with pytest.raises(PortUnavailable):
            ConsumerMetrics().serve(taken, fallback=False)
    anywhere = ConsumerMetrics().serve(0)
    assert anywhere and "loganalyzer_events_consumed_total" in _scrape(anywhere)
    assert ConsumerMetrics().serve(None) is None
