"""boto3 clients built from Settings: the one place that knows about endpoints and credentials.

Why a factory: the same code talks to AWS and to the local endpoint (moto); only
AWS_ENDPOINT_URL and the credentials differ. Against a local endpoint without credentials, the
dummy pair moto accepts is used, so a developer needs no AWS account.
"""

from __future__ import annotations

from typing import Any

from loganalyzer.settings import Settings

_LOCAL_CREDENTIALS = ("testing", "testing")


class AwsConnectionError(RuntimeError):
    """The AWS endpoint could not be reached; the message names the setting that points at it."""


def client_kwargs(settings: Settings) -> dict[str, Any]:
    from botocore.config import Config

    kwargs: dict[str, Any] = {
        "region_name": settings.aws_region,
        # fail fast on a wrong endpoint instead of retrying for minutes
        "config": Config(connect_timeout=5, read_timeout=60, retries={"max_attempts": 3, "mode": "standard"}),
    }
    if settings.aws_endpoint_url:
        kwargs["endpoint_url"] = settings.aws_endpoint_url
    key, secret = settings.aws.access_key_id, settings.aws.secret_access_key
    if key and secret:
        kwargs["aws_access_key_id"] = key
        kwargs["aws_secret_access_key"] = secret
    elif settings.aws_endpoint_url:
        kwargs["aws_access_key_id"], kwargs["aws_secret_access_key"] = _LOCAL_CREDENTIALS
    return kwargs


def client(service: str, settings: Settings) -> Any:
    """A boto3 client for `service` ("s3", "sqs", "dynamodb") as the settings say."""
    import boto3

    return boto3.client(service, **client_kwargs(settings))  # type: ignore[call-overload]


def s3(settings: Settings) -> Any:
    return client("s3", settings)


def sqs(settings: Settings) -> Any:
    return client("sqs", settings)


def dynamodb(settings: Settings) -> Any:
    return client("dynamodb", settings)


def unreachable(settings: Settings, exc: Exception) -> AwsConnectionError:
    """A clear error for a failed call, naming where the endpoint came from."""
    from botocore.exceptions import ClientError

    where = (
        f"AWS_ENDPOINT_URL={settings.aws_endpoint_url}"
        if settings.aws_endpoint_url
        else f"AWS in region {settings.aws_region} (AWS_DEFAULT_REGION; AWS_ENDPOINT_URL is unset)"
    )
    if isinstance(exc, ClientError):  # reached, but refused: say what was refused
        return AwsConnectionError(f"{where} refused the request: {exc}")
    return AwsConnectionError(f"cannot reach {where}: {exc}")
