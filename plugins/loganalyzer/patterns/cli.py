"""`loganalyzer patterns mine`: one message per line in, one JSON object per line out, same order."""

from __future__ import annotations

import sys
from typing import Annotated, BinaryIO

import orjson
import typer

from loganalyzer.patterns.miner import MinerConfig, TemplateMiner

patterns_app = typer.Typer(help="Log template mining.", no_args_is_help=True)


def mine_stream(
    source: BinaryIO, sink: BinaryIO, final_templates: bool = False, config: MinerConfig | None = None
) -> int:
    """Mine `source` line by line into `sink`. Returns the number of lines.

    Streaming: each output line is written as its input line is read, so it works on inputs of
    any size and in a pipe. Invalid UTF-8 is replaced, never fatal. With `final_templates`, the
    output waits for the end of input and gives each line its group's final template and id
    (groups generalise as more messages arrive). `config`: the miner each service of the consumer
    gets (DetectionConfig.miner_config), so that what this shows is what detection sees.
    """
    miner = TemplateMiner(config)
    n = 0
    held: list[str] = []
    for raw in source:
        line = raw.rstrip(b"\n").rstrip(b"\r").decode("utf-8", errors="replace")
        match = miner.add(line)
        n += 1
        if final_templates:
            held.append(match.pattern_id)
            continue
        sink.write(
            orjson.dumps({"pattern_id": match.pattern_id, "template": match.template, "is_new": match.is_new})
            + b"\n"
        )
        if n % 1000 == 0:
            sink.flush()
    for pid in held:
        final = miner.resolve(pid)
        sink.write(orjson.dumps({"pattern_id": final, "template": miner.template(final)}) + b"\n")
    sink.flush()
    return n


@patterns_app.command("mine")
def mine(
    stream: Annotated[
        bool,
        typer.Option(
            "--stream",
            help="Write each line's group as soon as the line is read (for pipes that never end); "
            "groups that merge later stay apart in the output.",
        ),
    ] = False,
) -> None:
    """Read messages (one per line) on stdin; write {"pattern_id", "template"} per line, same order.

    By default each line gets its group's FINAL id and template, written once the input ends
    (groups generalise as more messages arrive). The miner is the one each service of the
    consumer runs, with the consumer's limits (DETECTION_CONFIG's pattern_max_templates and
    pattern_cache_size when it is set), so the groups are the ones detection sees."""
    from loganalyzer.detection.config import DetectionConfigError, load_detection_config
    from loganalyzer.settings import SettingsError, load_settings

    try:
        config = load_detection_config(load_settings().detection.config_file)
    except (SettingsError, DetectionConfigError) as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        raise typer.Exit(2) from None
    mine_stream(sys.stdin.buffer, sys.stdout.buffer, final_templates=not stream, config=config.miner_config())
