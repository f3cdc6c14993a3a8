"""The `process-daily-logs` function: S3 events of exported parts in, DynamoDB summaries out.

`lambda/process_daily_logs.py` is the deployable entry point; locally `loganalyzer
lambda-runner` feeds the same code from the bucket's SQS notifications.
"""
