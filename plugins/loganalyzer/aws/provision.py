"""Creating the platform's AWS resources, idempotently (`loganalyzer aws bootstrap`).

Why here and not in a DAG: the export writes into a bucket that must exist with its
notification already configured, or the first day's objects would never reach the summary
function. Running this again changes nothing that is already as configured.

What it creates: the export bucket; the queue the bucket notifies of new `PREFIX/…parquet`
objects and its dead-letter queue (a message received LAMBDA_MAX_RECEIVES times without being
deleted moves there); the bucket's ObjectCreated notification to that queue; the DynamoDB table
`anomaly_summaries` (partition key `date`, sort key `tenant_service` = "tenant#service",
on-demand capacity). In AWS, the queue would be the summary function's event source (or S3
would invoke it directly); locally, `loganalyzer lambda-runner` reads it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from loganalyzer.settings import AwsResources

NOTIFICATION_ID = "loganalyzer-export-parts"


@dataclass(frozen=True)
class Provisioned:
    bucket: str
    queue_url: str
    queue_arn: str
    dlq_url: str
    dlq_arn: str
    table: str


def _code(exc: Exception) -> str:
    return str(getattr(exc, "response", {}).get("Error", {}).get("Code", ""))


def ensure_bucket(s3: Any, bucket: str, region: str) -> None:
    from botocore.exceptions import ClientError

    kwargs: dict[str, Any] = {"Bucket": bucket}
    if region != "us-east-1":  # us-east-1 refuses an explicit location constraint
        kwargs["CreateBucketConfiguration"] = {"LocationConstraint": region}
    try:
        s3.create_bucket(**kwargs)
    except ClientError as exc:
        if _code(exc) not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
            raise


def ensure_queue(sqs: Any, name: str, attributes: dict[str, str]) -> tuple[str, str]:
    """(url, arn) of the queue, its attributes set as given (create_queue alone refuses changes)."""
    url = str(sqs.create_queue(QueueName=name)["QueueUrl"])
    if attributes:
        sqs.set_queue_attributes(QueueUrl=url, Attributes=attributes)
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    return url, str(arn)


def ensure_table(dynamodb: Any, table: str) -> None:
    from botocore.exceptions import ClientError

    try:
        dynamodb.create_table(
            TableName=table,
            KeySchema=[
                {"AttributeName": "date", "KeyType": "HASH"},
                {"AttributeName": "tenant_service", "KeyType": "RANGE"},
            ],
            AttributeDefinitions=[
                {"AttributeName": "date", "AttributeType": "S"},
                {"AttributeName": "tenant_service", "AttributeType": "S"},
            ],
            BillingMode="PAY_PER_REQUEST",
        )
    except ClientError as exc:
        if _code(exc) != "ResourceInUseException":
            raise
    dynamodb.get_waiter("table_exists").wait(TableName=table, WaiterConfig={"Delay": 1, "MaxAttempts": 60})


def ensure_resources(s3: Any, sqs: Any, dynamodb: Any, names: AwsResources, region: str) -> Provisioned:
    """Bucket, queues, notification and table as `names` says; safe to run any number of times."""
    ensure_bucket(s3, names.s3_bucket, region)
    dlq_url, dlq_arn = ensure_queue(sqs, names.lambda_dlq, {"MessageRetentionPeriod": str(14 * 24 * 3600)})
    queue_url, queue_arn = ensure_queue(sqs, names.lambda_queue, {})
    bucket_arn = f"arn:aws:s3:::{names.s3_bucket}"
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "bucket-notifications",
                "Effect": "Allow",
                "Principal": {"Service": "s3.amazonaws.com"},
                "Action": "sqs:SendMessage",
                "Resource": queue_arn,
                "Condition": {"ArnLike": {"aws:SourceArn": bucket_arn}},
            }
        ],
    }
    sqs.set_queue_attributes(
        QueueUrl=queue_url,
        Attributes={
            "RedrivePolicy": json.dumps(
                {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(names.lambda_max_receives)}
            ),
            "VisibilityTimeout": str(names.lambda_visibility_timeout_seconds),
            "Policy": json.dumps(policy),
        },
    )
    prefix = names.export_prefix.strip("/") + "/" if names.export_prefix.strip("/") else ""
    s3.put_bucket_notification_configuration(
        Bucket=names.s3_bucket,
        NotificationConfiguration={
            "QueueConfigurations": [
                {
                    "Id": NOTIFICATION_ID,
                    "QueueArn": queue_arn,
                    "Events": ["s3:ObjectCreated:*"],
                    "Filter": {
                        "Key": {
                            "FilterRules": [
                                {"Name": "prefix", "Value": prefix},
                                {"Name": "suffix", "Value": ".parquet"},
                            ]
                        }
                    },
                }
            ]
        },
    )
    ensure_table(dynamodb, names.dynamodb_table)
    return Provisioned(names.s3_bucket, queue_url, queue_arn, dlq_url, dlq_arn, names.dynamodb_table)
