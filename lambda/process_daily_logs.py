"""Entry point of the `process-daily-logs` Lambda function (handler: process_daily_logs.handler).

The logic lives in loganalyzer.lambda_fn (one implementation, shared with the local
`loganalyzer lambda-runner`); this file only gives Lambda a top-level module to load.
"""

from loganalyzer.lambda_fn.handler import handler

__all__ = ["handler"]
