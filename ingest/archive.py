"""Inbox archives: old processed deliveries as gzip-compressed JSON lines, in a folder or on S3.

A file is named ``inbox-{first id}-{last id}-{UTC time written}.jsonl.gz`` (ids in 12 digits, so
names sort in id order); two never collide. Each line is one delivery: its id, source, kind,
dedupe key, status, attempts, last error, received_at and processed_at, its headers, and its raw
body, as text (``body``) when it is UTF-8, else base64 (``body_base64``).

So that a crash anywhere loses nothing and archives nothing twice, a batch is:
1. written under ``pending/`` and made durable (fsync, or an S3 put that succeeded);
2. deleted from the inbox, exactly its deliveries, in the transaction that selected them;
3. moved out of ``pending/``.
Every run first settles the pending files a crash left: one whose deliveries the inbox no longer
holds was committed, and is moved; one whose deliveries it still holds was rolled back, and is
removed (they are archived again). A write that never finished is a ``.part`` file under
``pending/`` (folders only; an S3 put is whole or absent): its deliveries are still in the inbox.
"""

from __future__ import annotations

import base64
import gzip
import os
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

import boto3
import orjson
from botocore.exceptions import ClientError

import store

PENDING = "pending/"
# Deliveries per file, and per transaction. Bodies are at most MAX_BODY_BYTES, but launch and
# finish bodies are small, and so is a file (bench/RESULTS.md, "Figures from the code").
BATCH_SIZE = 1000


def delivery_record(delivery: store.Delivery) -> dict[str, Any]:
    """Return one archive line's fields for a delivery."""
    record: dict[str, Any] = {
        "id": delivery.id,
        "source": delivery.source,
        "kind": delivery.kind,
        "dedupe_key": delivery.dedupe_key,
        "status": delivery.status,
        "attempts": delivery.attempts,
        "last_error": delivery.last_error,
        "received_at": delivery.received_at.isoformat(),
        "processed_at": delivery.processed_at.isoformat() if delivery.processed_at else None,
        "headers": delivery.headers,
    }
    try:
        record["body"] = delivery.body.decode("utf-8")
    except UnicodeDecodeError:
        record["body_base64"] = base64.b64encode(delivery.body).decode()
    return record


def archive_file(deliveries: list[store.Delivery]) -> bytes:
    """Return the gzip-compressed JSON lines of ``deliveries``."""
    lines = b"".join(orjson.dumps(delivery_record(d)) + b"\n" for d in deliveries)
    return gzip.compress(lines, compresslevel=6)


def ids_in(data: bytes) -> list[int]:
    """Return the delivery ids an archive file holds."""
    return [orjson.loads(line)["id"] for line in gzip.decompress(data).splitlines() if line.strip()]


class Target(Protocol):
    """Where archive files go: names are relative to the archive's root."""

    location: str

    def put(self, name: str, data: bytes) -> None: ...
    def get(self, name: str) -> bytes: ...
    def move(self, source: str, destination: str) -> None: ...
    def remove(self, name: str) -> None: ...
    def pending(self) -> list[str]: ...


class Folder:
    """A local folder."""

    def __init__(self, path: str) -> None:
        self.root = Path(path)
        self.location = str(self.root)

    def put(self, name: str, data: bytes) -> None:
        path = self.root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(path.name + ".part")
        with partial.open("wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(partial, path)
        _sync_folder(path.parent)

    def get(self, name: str) -> bytes:
        return (self.root / name).read_bytes()

    def move(self, source: str, destination: str) -> None:
        try:
            os.replace(self.root / source, self.root / destination)
        except FileNotFoundError:
            if not (self.root / destination).exists():
                raise
            return  # another archiver settled it first
        _sync_folder(self.root)

    def remove(self, name: str) -> None:
        (self.root / name).unlink(missing_ok=True)

    def pending(self) -> list[str]:
        folder = self.root / PENDING
        if not folder.is_dir():
            return []
        return sorted(PENDING + path.name for path in folder.glob("*.jsonl.gz"))


def _sync_folder(path: Path) -> None:
    # A rename is durable once its folder is.
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


class Bucket:
    """An S3 bucket and prefix, written with boto3 (credentials, region, AWS_ENDPOINT_URL from the environment)."""

    def __init__(self, location: str) -> None:
        bucket, _, prefix = location[len("s3://") :].partition("/")
        self.bucket = bucket
        self.prefix = prefix if not prefix or prefix.endswith("/") else prefix + "/"
        self.location = f"s3://{bucket}/{self.prefix}"
        self.s3 = boto3.client("s3")

    def put(self, name: str, data: bytes) -> None:
        self.s3.put_object(
            Bucket=self.bucket, Key=self.prefix + name, Body=data, ContentType="application/gzip"
        )

    def get(self, name: str) -> bytes:
        try:
            return bytes(self.s3.get_object(Bucket=self.bucket, Key=self.prefix + name)["Body"].read())
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") == "NoSuchKey":
                raise FileNotFoundError(f"{self.location}{name}") from None
            raise

    def move(self, source: str, destination: str) -> None:
        try:
            self.s3.copy_object(
                Bucket=self.bucket,
                Key=self.prefix + destination,
                CopySource={"Bucket": self.bucket, "Key": self.prefix + source},
            )
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") != "NoSuchKey":
                raise
            return  # another archiver settled it first
        self.s3.delete_object(Bucket=self.bucket, Key=self.prefix + source)

    def remove(self, name: str) -> None:
        self.s3.delete_object(Bucket=self.bucket, Key=self.prefix + name)

    def pending(self) -> list[str]:
        pages = self.s3.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=self.prefix + PENDING
        )
        keys = [listed["Key"] for page in pages for listed in page.get("Contents", [])]
        return sorted(key[len(self.prefix) :] for key in keys if key.endswith(".jsonl.gz"))


def open_target(location: str) -> Target:
    """Return the archive at ``location``: s3://bucket/prefix or a folder."""
    return Bucket(location) if location.startswith("s3://") else Folder(location)


def file_name(deliveries: list[store.Delivery]) -> str:
    return (
        f"inbox-{deliveries[0].id:012d}-{deliveries[-1].id:012d}-{store.utcnow():%Y%m%dT%H%M%S%fZ}.jsonl.gz"
    )


@dataclass
class Archived:
    """What one archiving run did."""

    deliveries: int = 0
    files: list[str] = field(default_factory=list)
    compressed_bytes: int = 0
    settled: int = 0
    busy: bool = False
    full: bool = False

    def summary(self, location: str) -> str:
        deliveries = "1 delivery" if self.deliveries == 1 else f"{self.deliveries:,} deliveries"
        text = (
            f"archived {deliveries} in {len(self.files)} file(s), "
            f"{self.compressed_bytes:,} bytes compressed, to {location}"
        )
        if self.settled:
            text += f"; settled {self.settled} pending file(s) of an interrupted run"
        if self.busy:
            text += "; stopped: another archiver is running"
        return text


class Archiver:
    """Move old done and ignored deliveries from the inbox to an archive."""

    def __init__(self, location: str, batch_size: int = BATCH_SIZE, wait: bool = False) -> None:
        self.target = open_target(location)
        self.batch_size = batch_size
        self.wait = wait

    def settle(self) -> int:
        """Finish or undo the batches an interrupted run left pending; return how many."""
        settled = 0
        for name in self.target.pending():
            try:
                ids = ids_in(self.target.get(name))
            except FileNotFoundError:
                continue  # settled by another archiver since the listing
            held = store.deliveries_still_held(ids)
            if ids and held == set(ids):
                self.target.remove(name)
            else:
                self.target.move(name, name[len(PENDING) :])
            settled += 1
        return settled

    def archive(self, before: datetime, max_batches: int | None = None) -> Archived:
        """Archive, then delete, done and ignored deliveries received before ``before``, a batch at a time."""
        result = Archived(settled=self.settle())
        while max_batches is None or len(result.files) < max_batches:
            archived = self._archive_batch(before, result)
            if archived is None:
                result.busy = True
                break
            result.full = archived == self.batch_size
            if not result.full:
                break
        return result

    def _archive_batch(self, before: datetime, result: Archived) -> int | None:
        written: list[tuple[str, int]] = []

        def write(deliveries: list[store.Delivery]) -> None:
            name = file_name(deliveries)
            data = archive_file(deliveries)
            self.target.put(PENDING + name, data)
            written.append((name, len(data)))

        deliveries = store.archive_deliveries(before, self.batch_size, write, wait=self.wait)
        if deliveries is None:
            return None
        if deliveries:
            name, size = written[-1]
            self.target.move(PENDING + name, name)
            result.files.append(name)
            result.deliveries += len(deliveries)
            result.compressed_bytes += size
        return len(deliveries)
