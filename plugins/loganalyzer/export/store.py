"""Where exported objects go: one small adapter over S3 (and a local folder for benchmarks).

Why an adapter: the export's logic (what to write, what to delete, when the manifest goes) is
the same for S3 and a folder; only these five operations touch the outside world.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

#: multipart from 16 MB, in 16 MB parts: a service-day file of a few hundred MB goes up in
#: parallel parts, and a small one in a single PUT.
_PART_BYTES = 16 * 1024 * 1024


class StoreError(RuntimeError):
    """The object store refused or could not be reached; the message names the setting to check."""


class ObjectStore(Protocol):
    def put_file(self, key: str, path: Path, metadata: Mapping[str, str]) -> None: ...
    def put_bytes(self, key: str, data: bytes, content_type: str) -> None: ...
    def exists(self, key: str) -> bool: ...
    def list_keys(self, prefix: str) -> list[str]: ...
    def delete(self, keys: list[str]) -> None: ...


def _endpoint(client: Any) -> str:
    return str(getattr(client.meta, "endpoint_url", "?"))


class S3Store:
    """A bucket through a boto3 S3 client (real AWS or a local endpoint)."""

    def __init__(self, client: Any, bucket: str, part_bytes: int = _PART_BYTES) -> None:
        from boto3.s3.transfer import TransferConfig

        self.client = client
        self.bucket = bucket
        self._transfer = TransferConfig(
            multipart_threshold=part_bytes, multipart_chunksize=part_bytes, max_concurrency=4
        )

    def _fail(self, what: str, exc: Exception) -> StoreError:
        from botocore.exceptions import ClientError

        endpoint = _endpoint(self.client)
        if isinstance(exc, ClientError):
            code = exc.response.get("Error", {}).get("Code", "?")
            hint = ""
            if code in ("NoSuchBucket", "404"):
                hint = " (create it with `loganalyzer aws bootstrap`; the name comes from S3_BUCKET)"
            return StoreError(f"S3 {what} in bucket {self.bucket!r} at {endpoint} failed: {code}{hint}")
        return StoreError(
            f"cannot reach S3 at {endpoint} for {what} in bucket {self.bucket!r}: {exc} "
            "(check AWS_ENDPOINT_URL, or endpoint_url in the AWS connection's extra)"
        )

    def put_file(self, key: str, path: Path, metadata: Mapping[str, str]) -> None:
        """Upload a file; `metadata` becomes the object's user metadata (x-amz-meta-*)."""
        try:
            self.client.upload_file(
                str(path), self.bucket, key, Config=self._transfer, ExtraArgs={"Metadata": dict(metadata)}
            )
        except Exception as exc:
            raise self._fail(f"upload of {key}", exc) from exc

    def put_bytes(self, key: str, data: bytes, content_type: str) -> None:
        try:
            self.client.put_object(Bucket=self.bucket, Key=key, Body=data, ContentType=content_type)
        except Exception as exc:
            raise self._fail(f"put of {key}", exc) from exc

    def exists(self, key: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            self.client.head_object(Bucket=self.bucket, Key=key)
            return True
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return False
            raise self._fail(f"head of {key}", exc) from exc
        except Exception as exc:
            raise self._fail(f"head of {key}", exc) from exc

    def list_keys(self, prefix: str) -> list[str]:
        keys: list[str] = []
        try:
            for page in self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=prefix
            ):
                keys.extend(o["Key"] for o in page.get("Contents", []))
        except Exception as exc:
            raise self._fail(f"listing of {prefix}", exc) from exc
        return keys

    def delete(self, keys: list[str]) -> None:
        for i in range(0, len(keys), 1000):  # DeleteObjects takes at most 1000 keys
            chunk = keys[i : i + 1000]
            try:
                resp = self.client.delete_objects(
                    Bucket=self.bucket, Delete={"Objects": [{"Key": k} for k in chunk], "Quiet": True}
                )
            except Exception as exc:
                raise self._fail(f"delete of {len(chunk)} objects", exc) from exc
            if resp.get("Errors"):
                first = resp["Errors"][0]
                raise StoreError(f"S3 refused to delete {first.get('Key')}: {first.get('Code')}")


class LocalStore:
    """A folder laid out like the bucket (benchmarks, and exports without S3)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, key: str) -> Path:
        return self.root / key

    def put_file(self, key: str, path: Path, metadata: Mapping[str, str]) -> None:
        dest = self._path(key)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, dest)

    def put_bytes(self, key: str, data: bytes, content_type: str) -> None:
        dest = self._path(key)
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(data)

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def list_keys(self, prefix: str) -> list[str]:
        base = self.root
        if not base.exists():
            return []
        out = []
        for dirpath, _dirs, files in os.walk(base):
            for name in files:
                key = Path(dirpath, name).relative_to(base).as_posix()
                if key.startswith(prefix):
                    out.append(key)
        return sorted(out)

    def delete(self, keys: list[str]) -> None:
        for k in keys:
            self._path(k).unlink(missing_ok=True)
