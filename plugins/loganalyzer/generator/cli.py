"""`loganalyzer generate`: realistic traffic with labelled incidents, produced to Kafka."""

from __future__ import annotations

import heapq
import signal
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Annotated

import orjson
import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from loganalyzer.generator.incidents import (
    Incident,
    ScenarioError,
    demo_incidents,
    load_scenario,
    parse_duration,
    random_scenario,
)
from loganalyzer.generator.producer import DeliveryFailed, KafkaSink
from loganalyzer.generator.services import CATALOGUE
from loganalyzer.generator.traffic import TrafficModel
from loganalyzer.settings import SettingsError, kafka_client_config, load_settings

generate_app = typer.Typer(help="Generate realistic log traffic with labelled incidents into Kafka.")
console = Console(stderr=True)


@generate_app.callback(invoke_without_command=True)
def generate(
    rate: Annotated[
        float, typer.Option(min=0.001, help="Mean events per second of EVENT time, all services.")
    ] = 200.0,
    duration: Annotated[
        str | None, typer.Option(help="Event-time span, e.g. 10m, 24h (default: forever).")
    ] = None,
    speedup: Annotated[
        float, typer.Option(min=0.0, help="Event time / wall time: 1 = real time, 0 = as fast as possible.")
    ] = 1.0,
    start: Annotated[
        str | None,
        typer.Option(
            help="Event-time start (RFC 3339). Default: now, or now - duration when the span would "
            "otherwise run into the future."
        ),
    ] = None,
    scenario: Annotated[
        Path | None, typer.Option(help="YAML scenario of incidents (docs/generator.md).")
    ] = None,
    random_incidents: Annotated[int, typer.Option(min=0, help="N random incidents of every type.")] = 0,
    demo_incidents_: Annotated[
        bool, typer.Option("--demo-incidents", help="An incident of a rotating type every 4 minutes.")
    ] = False,
    ground_truth: Annotated[Path, typer.Option(help="JSONL file of injected incidents.")] = Path(
        ".state/ground_truth.jsonl"
    ),
    seed: Annotated[int, typer.Option(help="Random seed: the same seed gives the same traffic.")] = 1,
    count: Annotated[int, typer.Option(min=0, help="Stop after this many events (0: no limit).")] = 0,
    invalid_rate: Annotated[
        float, typer.Option(min=0.0, max=0.99, help="Share of deliberately malformed records.")
    ] = 0.0,
    quiet: Annotated[bool, typer.Option(help="No progress display.")] = False,
    catch_up: Annotated[
        bool,
        typer.Option(
            "--catch-up",
            help="With a --start in the past: produce at full speed until event time reaches now, "
            "then at --speedup (what `up` does after seeding history).",
        ),
    ] = False,
) -> None:
    """Produce seasonal multi-service traffic to KAFKA_TOPIC, injecting labelled incidents."""
    try:
        settings = load_settings()
        span = parse_duration(duration) if duration else None
    except (SettingsError, ScenarioError) as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None
    now = datetime.now(UTC)
    if start:
        try:
            t0 = datetime.fromisoformat(start.replace("Z", "+00:00"))
        except ValueError:
            console.print(f"[red]error:[/red] --start {start!r} is not an RFC 3339 time")
            raise typer.Exit(2) from None
        t0 = t0 if t0.tzinfo else t0.replace(tzinfo=UTC)
    elif span is not None and speedup != 1:
        t0 = now - span  # the whole span ends by now: no event from the future
    elif span is None and speedup > 1:
        console.print("[red]error:[/red] --speedup above 1 needs --duration (events would be in the future)")
        raise typer.Exit(2)
    else:
        t0 = now
    t1 = t0 + span if span is not None else None

    incidents: list[Incident] = []
    try:
        if scenario is not None:
            incidents += load_scenario(scenario, t0)
        if random_incidents:
            if t1 is None:
                raise ScenarioError("--random-incidents needs --duration")
            incidents += random_scenario(CATALOGUE, t0, t1, random_incidents, seed=seed)
    except (ScenarioError, ValueError) as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None
    source: Iterable[Incident] = sorted(incidents, key=lambda i: i.start)
    if demo_incidents_:  # endless: merged lazily, in start order
        source = heapq.merge(source, demo_incidents(t0), key=lambda i: i.start)

    ground_truth.parent.mkdir(parents=True, exist_ok=True)
    truth = open(ground_truth, "ab")  # noqa: SIM115  # appended as incidents are scheduled
    injected: list[Incident] = []

    def record_incident(inc: Incident) -> None:
        truth.write(orjson.dumps(inc.ground_truth()) + b"\n")
        truth.flush()
        injected.append(inc)

    model = TrafficModel(
        CATALOGUE, rate, seed=seed, incidents=source, invalid_rate=invalid_rate, on_incident=record_incident
    )
    sink = KafkaSink(kafka_client_config(settings.kafka), settings.kafka.topic)
    stopping = False

    def on_signal(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    show = not quiet and console.is_terminal
    progress = Progress(
        TextColumn("[bold]generate[/bold]"),
        BarColumn(),
        TextColumn("event time {task.fields[event_time]}"),
        TextColumn("{task.fields[events]:,} events ({task.fields[rate]:,.0f}/s)"),
        TextColumn("incidents {task.fields[incidents]}"),
        TimeElapsedColumn(),
        console=console,
        disable=not show,
    )
    total = span.total_seconds() if span is not None else None
    task = progress.add_task("generate", total=total, event_time="-", events=0, rate=0.0, incidents=0)
    wall0 = time.monotonic()
    # the event time that wall0 stands for: the start, or now when the past is caught up first
    origin = max(t0, datetime.now(UTC)) if catch_up else t0
    last_show = 0.0
    n = 0
    try:
        with progress:
            for rec in model.records(t0, t1):
                if stopping or (count and n >= count):
                    break
                if speedup > 0:
                    due = wall0 + (rec.timestamp - origin).total_seconds() / speedup
                    delay = due - time.monotonic()
                    if delay > 0.005:
                        sink.poll()
                        time.sleep(delay)
                sink.send(rec.key, rec.value)
                n += 1
                if n % 5000 == 0:
                    sink.poll()
                if show and time.monotonic() - last_show > 0.25:
                    last_show = time.monotonic()
                    progress.update(
                        task,
                        completed=(rec.timestamp - t0).total_seconds(),
                        event_time=f"{rec.timestamp:%Y-%m-%d %H:%M:%S}",
                        events=n,
                        rate=n / max(last_show - wall0, 1e-9),
                        incidents=len(injected),
                    )
            sink.flush()
    except DeliveryFailed as exc:
        console.print(f"[red]delivery failed:[/red] {exc}")
        raise typer.Exit(1) from None
    finally:
        truth.close()
    levels = ", ".join(f"{k} {v:,}" for k, v in sorted(model.by_level.items()))
    console.print(
        f"produced {n:,} events to {settings.kafka.topic} ({levels}); "
        f"{len(injected)} incident(s) injected, ground truth in {ground_truth}",
        soft_wrap=True,
    )
