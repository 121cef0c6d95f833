"""Inbox archiving under faults: to a folder and to S3 (moto), failing writes, crashes mid-batch, and replays of an archive."""

from __future__ import annotations

import gzip
import json
import uuid
from pathlib import Path
from typing import Any

import boto3
import pytest
from click.testing import CliRunner, Result

import store
from ingest.archive import PENDING, Archiver
from ingest.cli import main
from ingest.settings import Settings
from ingest.worker import Worker
from store import inbox
from store.models import TrainingRun
from tests.inbox import KEPT, backdate, fill
from tests.webhooks import fixture

RUN_ID = "run-000-0000042"


@pytest.fixture
def bucket(aws: str) -> str:
    """A new bucket on moto, with boto3 pointed at it in the tests and in the code."""
    name = f"archive-{uuid.uuid4().hex[:12]}"
    boto3.client("s3").create_bucket(Bucket=name)
    return name


@pytest.fixture
def env(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Give the commands the test settings through the environment."""
    monkeypatch.setenv("PIPELINE_WEBHOOK_SECRET", settings.pipeline_webhook_secret or "")
    monkeypatch.setenv("S3_WEBHOOK_TOKEN", settings.s3_webhook_token or "")
    return settings


def invoke(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


def aged_inbox(client, worker) -> dict[str, list[int]]:
    by_status = fill(client, worker)
    backdate([i for ids in by_status.values() for i in ids], days=31)
    return by_status


def lines_of(data: bytes) -> list[dict[str, Any]]:
    return [json.loads(line) for line in gzip.decompress(data).decode().split("\n") if line]


def archived_in(folder: Path) -> list[dict[str, Any]]:
    return [line for path in sorted(folder.glob("*.jsonl.gz")) for line in lines_of(path.read_bytes())]


def runs_snapshot() -> list[dict[str, Any]]:
    """Every run with its objectives, but the times it was processed at."""
    runs = [store.get_run(run["run_id"]) for run in store.query_runs(order_by="run_id", limit=None)]
    for run in runs:
        del run["updated_at"], run["completed_at"]
    return json.loads(json.dumps(runs, default=str), parse_constant=str)


def test_archiving_to_a_folder_moves_done_and_ignored_deliveries_byte_for_byte_and_keeps_the_rest(
    client, worker, env, tmp_path, monkeypatch
):
    by_status = aged_inbox(client, worker)
    originals = {d.id: d for d in inbox.list_deliveries(limit=100)}
    monkeypatch.setenv("INBOX_ARCHIVE", str(tmp_path / "archive"))

    result = invoke("inbox", "archive")

    archivable = sorted(by_status["done"] + by_status["ignored"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"archived {len(archivable)} deliveries in 1 file(s), ")
    lines = archived_in(tmp_path / "archive")
    assert [line["id"] for line in lines] == archivable
    for line in lines:
        original = originals[line["id"]]
        assert line["body"].encode() == original.body
        assert line["headers"] == original.headers
        assert (line["source"], line["kind"], line["status"]) == (
            original.source,
            original.kind,
            original.status,
        )
    assert sorted(d.status for d in inbox.list_deliveries(limit=100)) == sorted(
        status for status in KEPT for _ in by_status[status]
    )
    assert list((tmp_path / "archive" / "pending").iterdir()) == []


def test_the_worker_archives_to_s3_and_keeps_what_is_within_the_retention(client, settings, bucket):
    worker = Worker(settings.model_copy(update={"inbox_archive": f"s3://{bucket}/inbox"}))
    old = aged_inbox(client, worker)
    young = {i for ids in fill(client, worker, run_id="run-young").values() for i in ids} - {
        i for ids in old.values() for i in ids
    }

    worker.archive()

    s3 = boto3.client("s3")
    keys = [item["Key"] for item in s3.list_objects_v2(Bucket=bucket)["Contents"]]
    assert len(keys) == 1 and keys[0].startswith("inbox/inbox-") and keys[0].endswith(".jsonl.gz")
    lines = lines_of(s3.get_object(Bucket=bucket, Key=keys[0])["Body"].read())
    assert [line["id"] for line in lines] == sorted(old["done"] + old["ignored"])
    left = {d.id for d in inbox.list_deliveries(limit=100)}
    assert left == {i for status in KEPT for i in old[status]} | young


def test_a_failing_write_deletes_nothing(client, worker, env, tmp_path, monkeypatch):
    aged_inbox(client, worker)
    before = inbox.list_deliveries(limit=100)
    (tmp_path / "not-a-folder").write_text("")
    monkeypatch.setenv("INBOX_ARCHIVE", str(tmp_path / "not-a-folder" / "archive"))

    result = invoke("inbox", "archive")

    assert result.exit_code == 1
    assert "Error: archive " in result.output and "Not a directory" in result.output
    assert inbox.list_deliveries(limit=100) == before


def test_a_failing_s3_put_deletes_nothing(client, settings, bucket):
    worker = Worker(settings.model_copy(update={"inbox_archive": f"s3://{bucket}-missing/inbox"}))
    aged_inbox(client, worker)
    before = inbox.list_deliveries(limit=100)

    worker.archive()

    assert inbox.list_deliveries(limit=100) == before


def test_a_crash_between_the_write_and_the_delete_archives_each_delivery_once(client, worker, tmp_path):
    by_status = aged_inbox(client, worker)
    archiver = Archiver(str(tmp_path), batch_size=2)
    cutoff = store.utcnow()
    put = archiver.target.put

    def write_then_crash(name: str, data: bytes) -> None:
        put(name, data)
        raise SystemExit("killed after the write")

    archiver.target.put = write_then_crash  # type: ignore[method-assign]
    with pytest.raises(SystemExit):
        archiver.archive(cutoff)
    archiver.target.put = put  # type: ignore[method-assign]
    assert len(list((tmp_path / "pending").glob("*.jsonl.gz"))) == 1

    archived = archiver.archive(cutoff)

    ids = [line["id"] for line in archived_in(tmp_path)]
    assert ids == sorted(by_status["done"] + by_status["ignored"])
    assert archived.deliveries == len(ids) and archived.settled == 1
    assert list((tmp_path / "pending").iterdir()) == []


def test_a_crash_between_the_delete_and_the_move_archives_each_delivery_once(client, worker, tmp_path):
    by_status = aged_inbox(client, worker)
    archiver = Archiver(str(tmp_path), batch_size=2)
    archiver.target.move = lambda source, destination: None  # type: ignore[method-assign]
    archiver.archive(store.utcnow(), max_batches=1)
    assert len(list((tmp_path / "pending").glob("*.jsonl.gz"))) == 1

    archived = Archiver(str(tmp_path), batch_size=2).archive(store.utcnow())

    assert archived.settled == 1
    assert [line["id"] for line in archived_in(tmp_path)] == sorted(by_status["done"] + by_status["ignored"])
    assert list((tmp_path / "pending").iterdir()) == []


def test_replaying_an_archive_rebuilds_lost_runs_then_changes_nothing(
    client, worker, env, tmp_path, monkeypatch
):
    aged_inbox(client, worker)
    built = runs_snapshot()
    monkeypatch.setenv("INBOX_ARCHIVE", str(tmp_path))
    assert invoke("inbox", "archive").exit_code == 0
    (archive,) = tmp_path.glob("*.jsonl.gz")
    with store.get_engine().begin() as connection:
        connection.execute(TrainingRun.__table__.delete())

    refused = invoke("replay", "file", str(archive))
    first = invoke("replay", "file", "--trusted", str(archive))
    while worker.run_once():
        pass
    second = invoke("replay", "file", "--trusted", str(archive))

    # Archives keep no signatures: only --trusted takes them.
    assert refused.exit_code == 1 and "failed line 1: 401 missing_signature" in refused.output
    assert first.exit_code == 0, first.output
    assert "seen 4: applied 3, unchanged 0, ignored 1, failed 0" in first.output
    assert runs_snapshot() == built
    assert "seen 4: applied 0, unchanged 4, ignored 0, failed 0" in second.output


def test_replaying_an_archive_from_s3_reapplies_its_events_idempotently(client, settings, env, bucket):
    worker = Worker(settings.model_copy(update={"inbox_archive": f"s3://{bucket}"}))
    aged_inbox(client, worker)
    built = runs_snapshot()
    worker.archive()
    (key,) = [item["Key"] for item in boto3.client("s3").list_objects_v2(Bucket=bucket)["Contents"]]

    first = invoke("replay", "file", "--trusted", f"s3://{bucket}/{key}")
    while worker.run_once():
        pass
    second = invoke("replay", "file", "--trusted", f"s3://{bucket}/{key}")

    assert first.exit_code == 0, first.output
    assert runs_snapshot() == built
    assert "unchanged 4" in second.output
    assert PENDING not in key


def test_a_body_that_is_not_utf8_is_archived_in_base64_and_replayed_byte_for_byte(env, tmp_path, monkeypatch):
    body = b'{"Records": []}\xff\xfe'
    inbox.record_delivery("s3", "s3.objects", "body:not-utf8", body, {"user-agent": "x"}, status="done")
    monkeypatch.setenv("INBOX_ARCHIVE", str(tmp_path))
    assert invoke("inbox", "archive", "--older-than", "0").exit_code == 0
    (archive,) = tmp_path.glob("*.jsonl.gz")
    (line,) = lines_of(archive.read_bytes())

    result = invoke("replay", "file", "--trusted", str(archive))

    assert "body" not in line and line["body_base64"] == "eyJSZWNvcmRzIjogW119//4="
    assert "failed line 1: stored as invalid" in result.output
    (stored,) = inbox.list_deliveries()
    assert (stored.status, stored.body) == ("invalid", body)


def test_a_truncated_or_missing_archive_is_reported_in_one_line(env, tmp_path, bucket):
    line = json.dumps({"source": "s3", "headers": {}, "body": fixture("s3", "test_event").decode()})
    whole = gzip.compress((line + "\n").encode() * 2000)
    (tmp_path / "cut.jsonl.gz").write_bytes(whole[: len(whole) // 2])

    cut = invoke("replay", "file", "--trusted", str(tmp_path / "cut.jsonl.gz"))
    missing = invoke("replay", "file", f"s3://{bucket}/nope.jsonl.gz")

    assert cut.exit_code == 1
    assert ", ignored 1, failed 1" in cut.output
    assert "unreadable after line " in cut.output
    assert cut.output.splitlines()[-1].endswith(
        "Compressed file ended before the end-of-stream marker was reached)"
    )
    assert missing.exit_code == 1
    assert missing.output.startswith(f"Error: s3://{bucket}/nope.jsonl.gz: An error occurred (NoSuchKey)")
