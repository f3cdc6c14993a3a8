"""deploy/aws/template.yaml deploys: CloudFormation (moto, the local AWS endpoint) creates every resource.

What this adds to cfn-lint and tests/unit/test_aws_template.py: the template's references
resolve and its resources create in dependency order (the bucket's trigger needs the function's
permission, which needs the function, whose role names the bucket: a cycle would stop here),
and the outputs the platform is configured from name what was created. moto applies only part
of the template: it skips the bucket policy, the event-invoke config and the alarm (with a
warning, silenced here) and ignores the bucket's notification, lifecycle and public access block,
the function's layers and architecture, and the table's point-in-time recovery, so those are
pinned by the static test.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from tests.support import moto_server

pytestmark = [
    pytest.mark.integration,
    pytest.mark.filterwarnings("ignore:Tried to parse AWS"),  # no colons: they split the filter
]
TEMPLATE = Path(__file__).resolve().parents[2] / "deploy" / "aws" / "template.yaml"


@pytest.fixture
def aws(tmp_path: Path) -> Iterator[dict[str, Any]]:
    with moto_server(tmp_path / "moto") as endpoint:
        yield {
            "endpoint_url": endpoint,
            "region_name": "eu-west-1",
            "aws_access_key_id": "test",
            "aws_secret_access_key": "test",
        }


def test_the_stack_creates_every_resource_and_its_outputs_name_them(aws: dict[str, Any]) -> None:
    s3 = boto3.client("s3", **aws)
    s3.create_bucket(Bucket="artifacts", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    code = io.BytesIO()
    with zipfile.ZipFile(code, "w") as z:
        z.writestr("process_daily_logs.py", "def handler(event, context):\n    return None\n")
    s3.put_object(Bucket="artifacts", Key="process-daily-logs/abc.zip", Body=code.getvalue())

    layer = io.BytesIO()
    with zipfile.ZipFile(layer, "w") as z:  # a stand-in for the pyarrow layer the stack requires
        z.writestr("python/pyarrow/__init__.py", "")
    lam = boto3.client("lambda", **aws)
    layer_arn = lam.publish_layer_version(
        LayerName="AWSSDKPandas-Python311",
        Content={"ZipFile": layer.getvalue()},
        CompatibleRuntimes=["python3.11"],
    )["LayerVersionArn"]

    cfn = boto3.client("cloudformation", **aws)
    params = {
        "BucketName": "loganalyzer-logs-test",
        "CodeBucket": "artifacts",
        "CodeKey": "process-daily-logs/abc.zip",
        "DependencyLayerArn": layer_arn,
    }
    cfn.create_stack(
        StackName="loganalyzer",
        TemplateBody=TEMPLATE.read_text(),
        Capabilities=["CAPABILITY_IAM"],
        Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in params.items()],
    )
    stack = cfn.describe_stacks(StackName="loganalyzer")["Stacks"][0]
    assert stack["StackStatus"] == "CREATE_COMPLETE", stack.get("StackStatusReason")
    created = {
        r["LogicalResourceId"]: r["ResourceStatus"]
        for r in cfn.list_stack_resources(StackName="loganalyzer")["StackResourceSummaries"]
    }
    for name in (
        "LogsBucket",
        "SummariesTable",
        "ProcessDailyLogs",
        "ProcessDailyLogsRole",
        "ProcessDailyLogsDLQ",
    ):
        assert created.get(name) == "CREATE_COMPLETE", f"{name}: {created.get(name)}"

    outputs = {o["OutputKey"]: o["OutputValue"] for o in stack["Outputs"]}
    assert outputs["BucketName"] == "loganalyzer-logs-test"
    assert outputs["TableName"] == "anomaly_summaries"
    s3.head_bucket(Bucket=outputs["BucketName"])
    encryption = s3.get_bucket_encryption(Bucket=outputs["BucketName"])["ServerSideEncryptionConfiguration"]
    assert encryption["Rules"][0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"

    table = boto3.client("dynamodb", **aws).describe_table(TableName=outputs["TableName"])["Table"]
    assert {k["AttributeName"]: k["KeyType"] for k in table["KeySchema"]} == {
        "date": "HASH",
        "tenant_service": "RANGE",
    }
    assert table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"

    fn = lam.get_function(FunctionName="process-daily-logs")["Configuration"]
    assert outputs["FunctionArn"] == fn["FunctionArn"]
    assert (fn["Runtime"], fn["Handler"]) == ("python3.11", "process_daily_logs.handler")
    assert (fn["MemorySize"], fn["Timeout"]) == (1024, 300)
    assert fn["Environment"]["Variables"]["DYNAMODB_TABLE"] == "anomaly_summaries"
    assert (
        lam.get_function_concurrency(FunctionName="process-daily-logs")["ReservedConcurrentExecutions"] == 5
    )
