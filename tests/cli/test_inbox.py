"""`training-db inbox stats` and `inbox archive`: what the inbox holds, and archiving it at once."""

from __future__ import annotations

import pytest
from click.testing import CliRunner, Result

from ingest.cli import main
from ingest.settings import Settings
from store import inbox
from tests.inbox import backdate, fill


@pytest.fixture
def env(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.delenv("INBOX_ARCHIVE", raising=False)
    monkeypatch.delenv("INBOX_RETENTION_DAYS", raising=False)
    return settings


def invoke(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


def test_stats_count_by_status_and_source_and_say_what_is_archivable(client, worker, env, db):
    by_status = fill(client, worker)
    backdate(by_status["done"][:2], days=40)

    result = invoke("inbox", "stats")

    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith("inbox: 7 deliveries")
    assert (" bytes (table, indexes and TOAST)" in lines[0]) == (db == "postgresql")
    assert any(line.split()[:3] == ["│", "done", "│"] and "3" in line for line in lines)
    for status in ("ignored", "invalid", "failed", "dead"):
        assert any(line.split()[:2] == ["│", status] for line in lines), status
    assert any(line.split()[:4] == ["│", "pipeline", "│", "6"] for line in lines)
    assert any(line.split()[:4] == ["│", "s3", "│", "1"] for line in lines)
    assert "archivable: 2 done or ignored deliveries received before " in result.output
    assert "(INBOX_RETENTION_DAYS 30)" in result.output
    assert lines[-1] == "archive: INBOX_ARCHIVE is unset, so nothing is archived or deleted"


def test_archive_without_an_archive_configured_refuses_in_one_line(env):
    result = invoke("inbox", "archive")

    assert result.exit_code == 1
    assert result.output == "Error: INBOX_ARCHIVE is unset: set it to a folder or s3://bucket/prefix\n"


def test_archive_respects_the_retention_and_older_than_overrides_it(
    client, worker, env, tmp_path, monkeypatch
):
    by_status = fill(client, worker)
    backdate(by_status["done"][:1], days=31)
    backdate(by_status["done"][1:2], days=8)
    monkeypatch.setenv("INBOX_ARCHIVE", str(tmp_path))

    default = invoke("inbox", "archive")
    again = invoke("inbox", "archive")
    week = invoke("inbox", "archive", "--older-than", "7")
    everything = invoke("inbox", "archive", "--older-than", "0", "--batch-size", "1")

    assert default.exit_code == 0, default.output
    assert default.output.startswith("archived 1 delivery in 1 file(s), ")
    assert default.output.rstrip().endswith(f"to {tmp_path} (received more than 30 day(s) ago)")
    assert again.output.startswith("archived 0 deliveries in 0 file(s), 0 bytes compressed")
    assert week.output.startswith("archived 1 delivery in 1 file(s)")
    assert everything.output.startswith("archived 2 deliveries in 2 file(s)")
    assert len(list(tmp_path.glob("inbox-*.jsonl.gz"))) == 4
    assert sorted(d.status for d in inbox.list_deliveries()) == ["dead", "failed", "invalid"]


def test_a_bad_s3_archive_setting_is_one_line(env, monkeypatch):
    monkeypatch.setenv("INBOX_ARCHIVE", "s3:///prefix")

    result = invoke("inbox", "archive")

    assert result.exit_code == 1
    assert result.output.startswith("Error: bad configuration: INBOX_ARCHIVE: Value error, S3 archive")
