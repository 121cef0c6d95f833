"""`training-db replay ...` and `consume-sqs`: each replay applies what is new, and changes nothing the second time."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from click.testing import CliRunner, Result

import store
from ingest.cli import main
from ingest.settings import Settings
from store import inbox
from tests.fake_wandb import FakeWandb
from tests.webhooks import fixture, fixture_json, pipeline_headers

RUN_ID = "run-000-0000042"
ENTITY, PROJECT = "mango-lab", "mango-moo"


@pytest.fixture
def env(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Give the commands, which read the environment, the test settings (DATABASE_URL is set by `db`)."""
    monkeypatch.setenv("PIPELINE_WEBHOOK_SECRET", settings.pipeline_webhook_secret or "")
    monkeypatch.setenv("WANDB_WEBHOOK_TOKEN", settings.wandb_webhook_token or "")
    monkeypatch.setenv("WANDB_WEBHOOK_SECRET", settings.wandb_webhook_secret or "")
    monkeypatch.setenv("S3_WEBHOOK_TOKEN", settings.s3_webhook_token or "")
    monkeypatch.setenv("SNS_TOPIC_ARNS", ",".join(settings.sns_topic_arns))
    return settings


def invoke(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


def runs_snapshot() -> list[dict[str, Any]]:
    """Every run with its objectives, as get_run returns them; NaN written out so that it equals itself."""
    runs = [store.get_run(run["run_id"]) for run in store.query_runs(order_by="run_id", limit=None)]
    return json.loads(json.dumps(runs, default=str), parse_constant=str)


def unique(name: str) -> str:
    # moto keeps its state for the module: each test gets its own bucket and queue.
    return f"{name}-{uuid.uuid4().hex[:12]}"


# --- replay inbox ------------------------------------------------------------------------------


def stored(name: str, status: str, source: str = "pipeline", kind: str = "run.launched") -> int:
    event_id, _ = inbox.record_delivery(
        source, kind, f"test:{name}", fixture(source, name), {}, status=status, last_error="boom"
    )
    return event_id


def test_replaying_the_inbox_applies_failed_and_dead_events_then_changes_nothing(env):
    launched = stored("run_launched__basic", "failed")
    finished = stored("run_finished__with_summary", "dead", kind="run.finished")

    first = invoke("replay", "inbox")
    after_first = runs_snapshot()
    second = invoke("replay", "inbox", "--status", "all")

    assert first.exit_code == 0, first.output
    assert "seen 2: applied 2, unchanged 0, ignored 0, failed 0" in first.output
    assert [inbox.get_delivery(i).status for i in (launched, finished)] == ["done", "done"]
    assert store.get_run(RUN_ID)["status"] == "completed"
    assert second.exit_code == 0, second.output
    assert "seen 2: applied 0, unchanged 2, ignored 0, failed 0" in second.output
    assert runs_snapshot() == after_first
    assert [inbox.get_delivery(i).attempts for i in (launched, finished)] == [2, 2]


def test_an_event_that_still_fails_is_recorded_invalid_with_its_reason_and_exits_non_zero(env):
    event_id, _ = inbox.record_delivery(
        "pipeline", "run.launched", "test:broken", b'{"type": "run.launched"}', {}, status="failed"
    )

    result = invoke("replay", "inbox")

    assert result.exit_code == 1
    assert f"failed event {event_id} (run.launched): stored body no longer validates" in result.output
    assert "Error: 1 of 1 failed" in result.output
    delivery = inbox.get_delivery(event_id)
    assert (delivery.status, delivery.attempts) == ("invalid", 1)
    assert delivery.last_error.startswith("stored body no longer validates")


def test_a_dry_run_lists_the_events_and_runs_none(env):
    event_id = stored("run_launched__basic", "failed")

    result = invoke("replay", "inbox", "--dry-run")

    assert result.exit_code == 0, result.output
    assert f"would replay event {event_id}: pipeline run.launched failed" in result.output
    assert "would replay 1 event(s)" in result.output
    assert inbox.get_delivery(event_id).status == "failed"
    assert store.get_run(RUN_ID) is None


def test_filters_choose_the_events(env):
    done = stored("run_launched__basic", "done")
    stored("run_started__basic", "failed", kind="run.started")

    by_id = invoke("replay", "inbox", "--event-id", str(done), "--dry-run")
    by_source = invoke("replay", "inbox", "--source", "wandb", "--dry-run")
    by_time = invoke("replay", "inbox", "--status", "all", "--until", "1h", "--dry-run")
    since = invoke("replay", "inbox", "--status", "all", "--since", "2000-01-01", "--dry-run")

    assert by_id.output.splitlines()[-1] == "would replay 1 event(s)"
    assert f"event {done}:" in by_id.output
    assert by_source.output.splitlines()[-1] == "would replay 0 event(s)"
    assert by_time.output.splitlines()[-1] == "would replay 0 event(s)"
    assert since.output.splitlines()[-1] == "would replay 2 event(s)"


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        (["--status", "pending"], "Invalid value for '--status'"),
        (["--since", "last tuesday"], "'last tuesday' is neither an ISO-8601 time nor a span"),
        (["--event-id", "x"], "'x' is not a valid integer"),
    ],
)
def test_bad_inbox_arguments_exit_2_with_the_reason(env, args, reason):
    result = invoke("replay", "inbox", *args)

    assert result.exit_code == 2
    assert reason in result.output


# --- replay s3 ---------------------------------------------------------------------------------


def test_replaying_a_bucket_attaches_its_crash_reports_then_changes_nothing(env, aws):
    bucket = unique("crashes")
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket=bucket)
    for key in (
        f"crash-reports/{RUN_ID}/error.log",
        f"crash-reports/{RUN_ID}/report.md",
        "crash-reports/README.txt",
        "elsewhere/run-1/error.log",
    ):
        s3.put_object(Bucket=bucket, Key=key, Body=b"Traceback...")

    first = invoke("replay", "s3", "--bucket", bucket)
    after_first = runs_snapshot()
    second = invoke("replay", "s3", "--bucket", bucket)

    assert first.exit_code == 0, first.output
    assert "seen 3: applied 2, unchanged 0, ignored 1, failed 0" in first.output
    run = store.get_run(RUN_ID)
    assert run["error_log_s3_key"] == f"crash-reports/{RUN_ID}/error.log"
    assert run["crash_report_s3_key"] == f"crash-reports/{RUN_ID}/report.md"
    assert second.exit_code == 0, second.output
    assert "seen 3: applied 0, unchanged 2, ignored 1, failed 0" in second.output
    assert runs_snapshot() == after_first


def test_since_skips_objects_modified_before_it(env, aws):
    bucket = unique("crashes")
    boto3.client("s3").create_bucket(Bucket=bucket)
    boto3.client("s3").put_object(Bucket=bucket, Key=f"crash-reports/{RUN_ID}/error.log", Body=b"x")
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).isoformat()

    result = invoke("replay", "s3", "--bucket", bucket, "--since", tomorrow)

    assert result.exit_code == 0, result.output
    assert "seen 0:" in result.output


def test_a_missing_bucket_exits_non_zero_with_s3s_reason(env, aws):
    result = invoke("replay", "s3", "--bucket", unique("missing"))

    assert result.exit_code == 1
    assert "NoSuchBucket" in result.output.splitlines()[-1]


# --- replay wandb ------------------------------------------------------------------------------


@pytest.fixture
def fake_wandb(env, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeWandb]:
    with FakeWandb(api_key="replay-key") as fake:
        monkeypatch.setenv("WANDB_BASE_URL", fake.url)
        monkeypatch.setenv("WANDB_API_KEY", "replay-key")
        yield fake


def add_wandb_run(fake: FakeWandb, run_id: str, created_at: datetime) -> None:
    config = fixture_json("pipeline", "run_launched__basic")["data"]["config"]
    fake.add_run(
        ENTITY,
        PROJECT,
        f"wb-{run_id}",
        config={**config, "run_id": run_id},
        summary={"_step": 100, "train/loss": 0.25, "eval/igd": float("nan")},
        state="finished",
        created_at=created_at,
    )


def test_replaying_a_wandb_project_upserts_its_runs_then_changes_nothing(fake_wandb):
    for index in range(3):
        add_wandb_run(fake_wandb, f"run-w{index}", datetime(2026, 1, 1 + index, tzinfo=UTC))

    first = invoke("replay", "wandb", "--project", f"{ENTITY}/{PROJECT}")
    after_first = runs_snapshot()
    second = invoke("replay", "wandb", "--project", f"{ENTITY}/{PROJECT}")

    assert first.exit_code == 0, first.output
    assert "seen 3: applied 3, unchanged 0, ignored 0, failed 0" in first.output
    assert store.get_run("run-w0")["status"] == "completed"
    assert store.get_run("run-w0")["final_loss"] == 0.25
    assert second.exit_code == 0, second.output
    assert "seen 3: applied 0, unchanged 3, ignored 0, failed 0" in second.output
    assert runs_snapshot() == after_first
    assert store.wandb_sync_cursor(ENTITY, PROJECT) is None


def test_since_pages_only_through_runs_updated_since(fake_wandb):
    add_wandb_run(fake_wandb, "run-old", datetime(2025, 1, 1, tzinfo=UTC))
    add_wandb_run(fake_wandb, "run-new", datetime(2026, 6, 1, tzinfo=UTC))

    result = invoke("replay", "wandb", "--project", f"{ENTITY}/{PROJECT}", "--since", "2026-01-01")

    assert result.exit_code == 0, result.output
    assert "seen 1: applied 1" in result.output
    assert [run["run_id"] for run in store.query_runs()] == ["run-new"]


@pytest.mark.parametrize(
    ("args", "code", "reason"),
    [
        (["--project", "just-a-project"], 2, "'just-a-project' must be written ENTITY/PROJECT"),
        ([], 2, "Missing option '--project'"),
        (["--project", f"{ENTITY}/no-such-project"], 1, f"W&B project {ENTITY}/no-such-project not found"),
    ],
)
def test_bad_wandb_arguments_exit_non_zero_with_the_reason(fake_wandb, args, code, reason):
    result = invoke("replay", "wandb", *args)

    assert result.exit_code == code
    assert reason in result.output.splitlines()[-1]


def test_replaying_wandb_without_an_api_key_says_so(env, monkeypatch):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)

    result = invoke("replay", "wandb", "--project", f"{ENTITY}/{PROJECT}")

    assert result.exit_code == 1
    assert result.output.splitlines()[-1] == "Error: replay wandb needs WANDB_API_KEY"


# --- replay file -------------------------------------------------------------------------------


def signed_pipeline_line(name: str, when: datetime | None = None) -> str:
    body = fixture("pipeline", name)
    headers = pipeline_headers(body, f"msg_{name}", when=when or datetime.now(UTC))
    return json.dumps({"source": "pipeline", "headers": headers, "body": body.decode()})


def write_lines(tmp_path: Path, *lines: str) -> str:
    path = tmp_path / "events.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def test_replaying_a_capture_file_stores_new_deliveries_reports_bad_lines_then_changes_nothing(env, tmp_path):
    s3_event = {
        "source": "s3",
        "headers": {"Authorization": f"Bearer {env.s3_webhook_token}"},
        "body": fixture_json("s3", "object_created__put"),
    }
    events = write_lines(
        tmp_path,
        signed_pipeline_line("run_launched__basic"),
        json.dumps(s3_event),
        "{not json",
        "",
        json.dumps({"source": "jenkins", "body": "{}"}),
    )

    first = invoke("replay", "file", events)
    inbox_after_first = inbox.list_deliveries()
    second = invoke("replay", "file", events)

    assert first.exit_code == 1
    assert "seen 4: applied 2, unchanged 0, ignored 0, failed 2" in first.output
    assert "failed line 3: not JSON" in first.output
    assert "failed line 5: source must be one of pipeline, wandb, s3, not 'jenkins'" in first.output
    assert first.output.splitlines()[-1].startswith("Error: 2 of 4 failed (first: line 3: not JSON")
    assert sorted(d.kind for d in inbox_after_first) == ["run.launched", "s3.objects"]
    assert "seen 4: applied 0, unchanged 2, ignored 0, failed 2" in second.output
    assert inbox.list_deliveries() == inbox_after_first


def test_an_expired_pipeline_signature_is_refused_unless_trusted(env, tmp_path):
    events = write_lines(
        tmp_path, signed_pipeline_line("run_launched__basic", when=datetime.now(UTC) - timedelta(hours=1))
    )

    refused = invoke("replay", "file", events)
    trusted = invoke("replay", "file", "--trusted", events)

    assert refused.exit_code == 1
    assert "failed line 1: 401 timestamp_out_of_tolerance" in refused.output
    assert refused.stderr.endswith("replay a capture you trust with --trusted\n")
    assert trusted.exit_code == 0, trusted.output
    assert "seen 1: applied 1" in trusted.output
    assert [d.headers["webhook-id"] for d in inbox.list_deliveries()] == ["msg_run_launched__basic"]


def test_a_missing_capture_file_exits_2(env, tmp_path):
    result = invoke("replay", "file", str(tmp_path / "nope.jsonl"))

    assert result.exit_code == 2
    assert "No such file or directory" in result.output


# --- consume-sqs -------------------------------------------------------------------------------


def sns_wrapped(message: dict[str, Any]) -> str:
    return json.dumps(
        {
            "Type": "Notification",
            "MessageId": str(uuid.uuid4()),
            "TopicArn": "arn:aws:sns:us-east-1:123456789012:crash-reports",
            "Message": json.dumps(message),
            "Timestamp": "2026-11-20T11:00:06.000Z",
            "SignatureVersion": "2",
            "Signature": "bm90IGNoZWNrZWQ=",
            "SigningCertURL": "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-x.pem",
        }
    )


@pytest.fixture
def queue(aws: str) -> str:
    # A message left on the queue is visible again at once: the test sees it without waiting.
    return boto3.client("sqs").create_queue(
        QueueName=unique("crash-reports"), Attributes={"VisibilityTimeout": "0"}
    )["QueueUrl"]


def waiting(queue_url: str) -> list[str]:
    answer = boto3.client("sqs").receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10)
    return [message["Body"] for message in answer.get("Messages", [])]


def test_consuming_stores_s3_events_and_sns_envelopes_deletes_them_and_deduplicates(env, queue):
    sqs = boto3.client("sqs")
    bare = fixture("s3", "object_created__put").decode()
    wrapped = sns_wrapped(fixture_json("s3", "eventbridge__object_created"))
    for body in (bare, wrapped):
        sqs.send_message(QueueUrl=queue, MessageBody=body)

    first = invoke("consume-sqs", queue, "--once", "--wait-seconds", "1")
    left_after_first = waiting(queue)
    for body in (bare, wrapped):
        sqs.send_message(QueueUrl=queue, MessageBody=body)
    second = invoke("consume-sqs", queue, "--once", "--wait-seconds", "1")

    assert first.exit_code == 0, first.output
    assert "seen 2: applied 2, unchanged 0, ignored 0, failed 0" in first.output
    assert left_after_first == []
    assert second.exit_code == 0, second.output
    assert "seen 2: applied 0, unchanged 2, ignored 0, failed 0" in second.output
    assert waiting(queue) == []
    deliveries = inbox.list_deliveries()
    assert len(deliveries) == 2
    assert {d.dedupe_key.split(":")[0] for d in deliveries} == {"records", "sns"}
    assert {d.headers["user-agent"] for d in deliveries} == {"training-db consume-sqs"}


def test_a_message_stays_on_the_queue_while_the_database_is_down(
    env, queue, database_url, monkeypatch, tmp_path
):
    body = fixture("s3", "object_created__put").decode()
    boto3.client("sqs").send_message(QueueUrl=queue, MessageBody=body)
    # A folder where the database file should be: SQLite cannot open it, as if it were down.
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path}")

    down = invoke("consume-sqs", queue, "--once", "--wait-seconds", "1")
    left = waiting(queue)
    monkeypatch.setenv("DATABASE_URL", database_url)
    up = invoke("consume-sqs", queue, "--once", "--wait-seconds", "1")

    assert down.exit_code == 1
    assert "left on the queue: the inbox database is unavailable; retry later" in down.output
    assert left == [body]
    assert up.exit_code == 0, up.output
    assert "seen 1: applied 1" in up.output
    assert waiting(queue) == []
    assert [d.kind for d in inbox.list_deliveries()] == ["s3.objects"]


@pytest.mark.parametrize(
    ("args", "code", "reason"),
    [
        (["--max-messages", "11"], 2, "11 is not in the range 1<=x<=10"),
        (["--wait-seconds", "21"], 2, "21 is not in the range 0<=x<=20"),
    ],
)
def test_bad_sqs_arguments_exit_2_with_the_reason(env, args, code, reason):
    result = invoke("consume-sqs", "http://127.0.0.1:9/queue", "--once", *args)

    assert result.exit_code == code
    assert reason in result.output


def test_a_missing_queue_exits_1_with_sqss_reason(env, aws):
    result = invoke("consume-sqs", f"{aws}/123456789012/{unique('missing')}", "--once", "--wait-seconds", "0")

    assert result.exit_code == 1
    assert "SQS:" in result.output.splitlines()[-1]
