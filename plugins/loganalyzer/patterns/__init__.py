"""Log template mining: which messages are the same event with different variable parts.

`TemplateMiner` is online (one message at a time), uses one configuration for every kind of log,
and is cheap on repeats. docs/template-miner.md explains the algorithm and its measured quality.
"""

from loganalyzer.patterns.miner import Match, MatchResult, MinerConfig, TemplateMiner

__all__ = ["Match", "MatchResult", "MinerConfig", "TemplateMiner"]
