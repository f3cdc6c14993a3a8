"""deploy/aws/template.yaml: cfn-lint passes, and the security properties docs/DEPLOYMENT.md promises hold.

cfn-lint checks the template against CloudFormation's resource schemas; the assertions below pin
what no linter knows we want: the function's role can do exactly its job and no more, the bucket
is private, encrypted and TLS-only, and the table keeps its backups."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from cfnlint.decode import cfn_yaml  # type: ignore[import-untyped]

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "deploy" / "aws" / "template.yaml"


@pytest.fixture(scope="module")
def resources() -> dict[str, Any]:
    return dict(cfn_yaml.load(str(TEMPLATE))["Resources"])


def _of_type(resources: dict[str, Any], kind: str) -> dict[str, Any]:
    found = [r for r in resources.values() if r["Type"] == kind]
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return dict(found[0]["Properties"])


def test_cfn_lint_passes() -> None:
    cfn_lint = Path(sys.executable).with_name("cfn-lint")
    result = subprocess.run([str(cfn_lint), str(TEMPLATE)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"cfn-lint found problems:\n{result.stdout}{result.stderr}"


def test_function_role_may_do_its_job_and_nothing_else(resources: dict[str, Any]) -> None:
    role = _of_type(resources, "AWS::IAM::Role")
    assert "ManagedPolicyArns" not in role, "no managed policy: they grant more than the function needs"
    statements = [s for p in role["Policies"] for s in p["PolicyDocument"]["Statement"]]
    assert all(s["Effect"] == "Allow" for s in statements)
    granted = {}
    for s in statements:
        actions = s["Action"] if isinstance(s["Action"], list) else [s["Action"]]
        for action in actions:
            assert "*" not in action, f"wildcard action {action}"
            granted[action] = s["Resource"]
    assert set(granted) == {
        "s3:GetObject",
        "s3:ListBucket",
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
        "sqs:SendMessage",
        "logs:CreateLogStream",
        "logs:PutLogEvents",
    }
    assert granted["s3:GetObject"] == {"Fn::Sub": "arn:${AWS::Partition}:s3:::${BucketName}/logs/*"}
    # the function lists its service-day's parts (loganalyzer.lambda_fn.process._list_parts)
    assert granted["s3:ListBucket"] == {"Fn::Sub": "arn:${AWS::Partition}:s3:::${BucketName}"}
    assert granted["dynamodb:PutItem"] == {"Fn::GetAtt": ["SummariesTable", "Arn"]}
    assert granted["sqs:SendMessage"] == {"Fn::GetAtt": ["ProcessDailyLogsDLQ", "Arn"]}


def test_function_is_triggered_by_new_parquet_objects_with_a_dlq(resources: dict[str, Any]) -> None:
    fn = _of_type(resources, "AWS::Lambda::Function")
    # the zip's orjson is a CPython 3.11 build (lambda/README.md), the layer AWSSDKPandas-Python311
    assert fn["Runtime"] == "python3.11"
    assert fn["DeadLetterConfig"] == {"TargetArn": {"Fn::GetAtt": ["ProcessDailyLogsDLQ", "Arn"]}}
    assert fn["ReservedConcurrentExecutions"] == {"Ref": "ReservedConcurrency"}
    bucket = _of_type(resources, "AWS::S3::Bucket")
    (trigger,) = bucket["NotificationConfiguration"]["LambdaConfigurations"]
    assert trigger["Event"] == "s3:ObjectCreated:*"
    assert trigger["Function"] == {"Fn::GetAtt": ["ProcessDailyLogs", "Arn"]}
    rules = {r["Name"]: r["Value"] for r in trigger["Filter"]["S3Key"]["Rules"]}
    assert rules == {"prefix": "logs/", "suffix": ".parquet"}
    permission = _of_type(resources, "AWS::Lambda::Permission")
    assert permission["Principal"] == "s3.amazonaws.com"
    assert "SourceAccount" in permission, "without it another account's bucket of the same name could invoke"


def test_bucket_is_private_encrypted_tls_only_and_ages_out(resources: dict[str, Any]) -> None:
    bucket = _of_type(resources, "AWS::S3::Bucket")
    assert all(bucket["PublicAccessBlockConfiguration"].values())
    assert len(bucket["PublicAccessBlockConfiguration"]) == 4
    (sse,) = bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert sse["ServerSideEncryptionByDefault"]["SSEAlgorithm"] in ("AES256", "aws:kms")
    rules = bucket["LifecycleConfiguration"]["Rules"]
    assert any("ExpirationInDays" in r and r.get("Prefix") == "logs/" for r in rules)
    assert any("AbortIncompleteMultipartUpload" in r for r in rules)
    policy = _of_type(resources, "AWS::S3::BucketPolicy")["PolicyDocument"]
    (deny,) = [s for s in policy["Statement"] if s["Effect"] == "Deny"]
    assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    assert deny["Action"] == "s3:*"


def test_table_is_on_demand_with_point_in_time_recovery(resources: dict[str, Any]) -> None:
    table = _of_type(resources, "AWS::DynamoDB::Table")
    assert table["BillingMode"] == "PAY_PER_REQUEST"
    keys = {k["KeyType"]: k["AttributeName"] for k in table["KeySchema"]}
    assert keys == {"HASH": "date", "RANGE": "tenant_service"}
    assert table["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert table["SSESpecification"]["SSEEnabled"] is True


def test_the_pyarrow_layer_is_required_and_attached(resources: dict[str, Any]) -> None:
    """The function imports pyarrow, which neither its zip nor the runtime holds: a stack
    without the layer would deploy a function that fails on every object."""
    parameters = dict(cfn_yaml.load(str(TEMPLATE))["Parameters"])
    layer = parameters["DependencyLayerArn"]
    assert "Default" not in layer, "a layer ARN depends on the region: the deployer must give it"
    pattern = re.compile(layer["AllowedPattern"])
    assert pattern.match("arn:aws:lambda:eu-west-1:336392948345:layer:AWSSDKPandas-Python311:30")
    assert not pattern.match("")
    fn = _of_type(resources, "AWS::Lambda::Function")
    assert fn["Layers"] == [{"Ref": "DependencyLayerArn"}]


def test_memory_and_timeout_defaults_are_the_ones_the_docs_give() -> None:
    parameters = dict(cfn_yaml.load(str(TEMPLATE))["Parameters"])
    memory, timeout = parameters["MemorySize"]["Default"], parameters["Timeout"]["Default"]
    assert (memory, timeout) == (1024, 300)
    for doc in (ROOT / "lambda" / "README.md", ROOT / "docs" / "DEPLOYMENT.md"):
        text = " ".join(doc.read_text().split())
        assert f"`MemorySize` ({memory} MB" in text and f"`Timeout` ({timeout} s" in text, doc
