"""Replays and backfills: stored events, S3 listings, W&B projects, captured deliveries, an SQS queue.

Every replay is idempotent (the handlers and the inbox's dedupe keys make it so) and
ends by printing what it did: seen, applied, unchanged, ignored and failed, with reasons.
"""

from __future__ import annotations

import base64
import gzip
import io
import json
import logging
import re
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import IO, Any, TypeVar

import boto3
import click
from botocore.exceptions import BotoCoreError, ClientError

import store
from handlers import Outcome
from handlers.s3 import objects_changed
from handlers.wandb import default_since, history_of, store_run
from ingest import auth
from ingest.cli.common import load_settings, progress
from ingest.events import S3ObjectEvent, S3Objects, Source
from ingest.intake import Intake, Receipt
from ingest.wandb_api import WandbApiError, WandbClient
from ingest.worker import make_context, replay_delivery
from store import inbox
from store.database import DatabaseUnavailable

log = logging.getLogger("sqs")

T = TypeVar("T")

REPLAYABLE = inbox.REPLAYABLE
SOURCES = [source.value for source in Source]
# What a listed object is recorded as: a listing has no notification, hence no sequencer.
LISTED_EVENT_NAME = "ObjectCreated:Listed"
# SQS hands over no HTTP headers: name the consumer, so the inbox shows how a delivery came in.
SQS_HEADERS = {"user-agent": "training-db consume-sqs"}


@dataclass
class Tally:
    """What one replay did: counts by outcome, and why each failure failed."""

    applied: int = 0
    unchanged: int = 0
    ignored: int = 0
    failures: list[str] = field(default_factory=list)

    @property
    def seen(self) -> int:
        return self.applied + self.unchanged + self.ignored + len(self.failures)

    def count(self, outcome: Outcome) -> None:
        if outcome is Outcome.APPLIED:
            self.applied += 1
        elif outcome is Outcome.UNCHANGED:
            self.unchanged += 1
        else:
            self.ignored += 1

    def fail(self, item: str, reason: object) -> None:
        lines = str(reason).strip().splitlines() or [repr(reason)]
        self.failures.append(f"{item}: {lines[0]}")

    def count_receipt(self, item: str, receipt: Receipt) -> None:
        """Count one delivery handed to the intake: new, duplicate, ignored, or refused."""
        status = receipt.body.get("status")
        if status == "accepted":
            self.count(Outcome.APPLIED)
        elif status == "duplicate":
            self.count(Outcome.UNCHANGED)
        elif status == "ignored":
            self.count(Outcome.IGNORED)
        elif "event_id" in receipt.body:  # stored, but as invalid: kept for a replay after a fix
            self.fail(
                item, f"stored as invalid (event {receipt.body['event_id']}): {receipt.body['message']}"
            )
        else:
            self.fail(item, f"{receipt.status} {receipt.body.get('error')}: {receipt.body.get('message')}")

    def summary(self) -> str:
        return (
            f"seen {self.seen}: applied {self.applied}, unchanged {self.unchanged}, "
            f"ignored {self.ignored}, failed {len(self.failures)}"
        )

    def report(self, hint: str = "") -> None:
        """Print the counts and the failures; exit non-zero when anything failed, ``hint`` saying what to do."""
        click.echo(self.summary())
        for failure in self.failures:
            click.echo(f"  failed {failure}")
        if self.failures:
            raise click.ClickException(
                f"{len(self.failures)} of {self.seen} failed (first: {self.failures[0]}){hint}"
            )


class Moment(click.ParamType):
    """A point in time: ISO-8601 (UTC unless it names a zone), or a span ago such as 90m, 12h or 7d."""

    name = "TIME"
    SPANS = {"m": "minutes", "h": "hours", "d": "days"}

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> datetime:
        if isinstance(value, datetime):
            return value
        span = re.fullmatch(r"(\d+)([mhd])", value.strip())
        if span:
            return store.utcnow() - timedelta(**{self.SPANS[span[2]]: int(span[1])})
        try:
            moment = datetime.fromisoformat(value.strip())
        except ValueError:
            self.fail(f"{value!r} is neither an ISO-8601 time nor a span such as 12h or 7d", param, ctx)
        return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@click.group()
def replay() -> None:
    """Replay stored or captured events; running one twice changes nothing.

    TIME options take ISO-8601 (UTC unless it names a zone) or a span ago such as 90m, 12h or 7d.
    """


@replay.command("inbox")
@click.option(
    "--status",
    "statuses",
    multiple=True,
    type=click.Choice([*REPLAYABLE, "all"]),
    help="Events of this status; repeatable. `all` is every status but pending and processing, "
    "which the worker owns. Default: failed and dead, or all with --event-id.",
)
@click.option("--source", type=click.Choice(SOURCES), help="Only events from this source.")
@click.option("--since", type=Moment(), help="Only events received at or after this time.")
@click.option("--until", type=Moment(), help="Only events received before this time.")
@click.option("--event-id", "event_ids", type=int, multiple=True, help="Only this event; repeatable.")
@click.option("--dry-run", is_flag=True, help="List the events that would run, and run none.")
def replay_inbox(
    statuses: tuple[str, ...],
    source: str | None,
    since: datetime | None,
    until: datetime | None,
    event_ids: tuple[int, ...],
    dry_run: bool,
) -> None:
    """Run stored events through the handlers again, e.g. after a fix.

    The current code handles each event again, and the attempt is recorded on the event: done or
    ignored (with any warnings), invalid (the handler refuses it for good), dead (it failed in a way
    that repeats) or failed (the worker retries it), with the error. Exits 1 when any failed.
    """
    settings = load_settings()
    if "all" in statuses or (event_ids and not statuses):
        statuses = REPLAYABLE
    wanted = statuses or ("failed", "dead")
    ids = inbox.requeue_ids(wanted, source, since, until, event_ids)
    if dry_run:
        for event_id in ids:
            delivery = inbox.get_delivery(event_id)
            if delivery is not None:
                click.echo(
                    f"would replay event {delivery.id}: {delivery.source} {delivery.kind} {delivery.status}, "
                    f"received {delivery.received_at:%Y-%m-%d %H:%M:%S}, {delivery.attempts} attempt(s)"
                    + (f", last error: {delivery.last_error}" if delivery.last_error else "")
                    + (f", warnings: {'; '.join(delivery.warnings)}" if delivery.warnings else "")
                )
        click.echo(f"would replay {len(ids)} event(s)")
        return
    context = make_context(settings)
    tally = Tally()
    for event_id in progress(ids, "replaying events", total=len(ids)):
        delivery = inbox.get_delivery(event_id)
        # The worker may have claimed it since it was listed: then it is the worker's.
        if delivery is None or delivery.status not in wanted:
            continue
        replayed = replay_delivery(delivery, context)
        if replayed.outcome is None:
            tally.fail(f"event {delivery.id} ({delivery.kind})", replayed.error)
        else:
            tally.count(replayed.outcome)
    tally.report()


def _listed_objects(bucket: str, prefix: str, since: datetime | None) -> Iterator[S3ObjectEvent]:
    pages = boto3.client("s3").get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    for page in pages:
        for listed in page.get("Contents", []):
            if since is None or listed["LastModified"] >= since:
                yield S3ObjectEvent(
                    bucket=bucket,
                    key=listed["Key"],
                    created=True,
                    event_name=LISTED_EVENT_NAME,
                    etag=listed["ETag"].strip('"'),
                    size=listed["Size"],
                )


@replay.command("s3")
@click.option("--bucket", required=True, help="The bucket holding the crash reports.")
@click.option("--prefix", help="Where the crash reports live in it (default: $CRASH_REPORT_PREFIX).")
@click.option("--since", type=Moment(), help="Only objects last modified at or after this time.")
def replay_s3(bucket: str, prefix: str | None, since: datetime | None) -> None:
    """Attach every crash report in a bucket to its run.

    As if each object's notification had arrived: lists the bucket (AWS credentials, region and AWS_ENDPOINT_URL from the environment)
    and gives each object to the S3 handler; objects that are no crash report are ignored.
    """
    settings = load_settings()
    if prefix is not None:
        settings = settings.model_copy(update={"crash_report_prefix": prefix})
    context = make_context(settings)
    tally = Tally()
    try:
        for obj in progress(_listed_objects(bucket, settings.crash_report_prefix, since), "listing objects"):
            try:
                tally.count(objects_changed(S3Objects(objects=[obj]), context))
            except DatabaseUnavailable:
                raise
            except Exception as error:
                tally.fail(f"s3://{bucket}/{obj.key}", error)
    except (BotoCoreError, ClientError) as error:
        tally.fail(f"s3://{bucket}", error)
    tally.report()


def _project(value: str) -> tuple[str, str]:
    entity, _, project = value.partition("/")
    if not entity or not project or "/" in project:
        raise click.BadParameter(f"{value!r} must be written ENTITY/PROJECT", param_hint="--project")
    return entity, project


@replay.command("wandb")
@click.option("--project", "path", required=True, metavar="ENTITY/PROJECT", help="The W&B project.")
@click.option(
    "--since",
    type=Moment(),
    help="Only runs created or heartbeating since this time (default: since the worker's last sync).",
)
def replay_wandb(path: str, since: datetime | None) -> None:
    """Upsert a W&B project's runs, as the worker's sync does.

    Pages through the project's runs in the W&B API. Reads WANDB_API_KEY and WANDB_BASE_URL. The worker's sync cursor is left as it is:
    a replay of an older window must not make the worker skip newer runs.
    """
    entity, project = _project(path)
    settings = load_settings()
    if not settings.wandb_api_key:
        raise click.ClickException("replay wandb needs WANDB_API_KEY")
    if since is None:
        since = default_since(entity, project, settings)
    tally = Tally()
    policy = settings.history_policy()
    with WandbClient(settings.wandb_base_url, settings.wandb_api_key) as client:
        try:
            for run in progress(client.runs(entity, project, updated_since=since), f"syncing {path}"):
                try:
                    changed = store_run(run, history_of(client, run, policy), policy)
                except (ValueError, WandbApiError) as error:
                    tally.fail(f"W&B run {run.run_id}", error)
                    continue
                tally.count(Outcome.APPLIED if changed else Outcome.UNCHANGED)
        except WandbApiError as error:
            tally.fail("listing runs", error)
    tally.report()


def _captured_delivery(line: str) -> tuple[Source, dict[str, str], bytes]:
    """Read one captured delivery, or raise ValueError saying what is wrong with it."""
    try:
        capture = json.loads(line)
    except ValueError as error:
        raise ValueError(f"not JSON: {error}") from None
    if not isinstance(capture, dict):
        raise ValueError("not a JSON object")
    if capture.get("source") not in SOURCES:
        raise ValueError(f"source must be one of {', '.join(SOURCES)}, not {capture.get('source')!r}")
    headers = capture.get("headers", {})
    if not isinstance(headers, dict) or not all(isinstance(v, str) for v in headers.values()):
        raise ValueError("headers must be an object of strings")
    if "body_base64" in capture:
        try:
            return Source(capture["source"]), headers, base64.b64decode(capture["body_base64"], validate=True)
        except (TypeError, ValueError):
            raise ValueError("body_base64 must be base64") from None
    body = capture.get("body")
    if isinstance(body, dict):
        body = json.dumps(body)
    if not isinstance(body, str):
        raise ValueError("body must be the raw body as a string, or a JSON object")
    return Source(capture["source"]), headers, body.encode()


@contextmanager
def open_lines(location: str) -> Iterator[IO[str]]:
    """Open a capture or an archive for its lines: a path, - for stdin, or s3://bucket/key; .gz is decompressed."""
    if location == "-":
        yield click.get_text_stream("stdin", encoding="utf-8")
        return
    compressed = location.endswith(".gz")
    if location.startswith("s3://"):
        bucket, _, key = location[len("s3://") :].partition("/")
        try:
            data = boto3.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()
            text = (gzip.decompress(data) if compressed else data).decode("utf-8")
        except (BotoCoreError, ClientError, OSError, EOFError, UnicodeDecodeError) as error:
            raise click.ClickException(f"{location}: {error}") from None
        # Lines end at \n only: a JSON string may hold U+2028, which splitlines() would cut at.
        yield io.StringIO(text, newline="\n")
        return
    try:
        file = gzip.open(location, "rt", encoding="utf-8") if compressed else open(location, encoding="utf-8")
    except OSError as error:
        raise click.BadParameter(f"{location}: {error.strerror}", param_hint="EVENTS") from None
    with file:
        yield file


@replay.command("file")
@click.argument("events")
@click.option(
    "--trusted",
    is_flag=True,
    help="Skip authentication, for captures whose signatures no longer verify: pipeline signatures "
    "expire 5 minutes after they were made, and a body given as an object is re-serialised. "
    "Use it only on captures you trust.",
)
def replay_file(events: str, trusted: bool) -> None:
    """Re-ingest captured or archived deliveries from EVENTS (- for stdin).

    EVENTS is a .jsonl file, or a .jsonl.gz inbox archive, a path or s3://bucket/key. They go through the webhook intake, as over HTTP. One JSON object a line: {"source": "pipeline|wandb|s3", "headers": {...}, "body": "<raw body>"}
    ("body" may also be a JSON object, or "body_base64" the raw body in base64). Each delivery is
    authenticated with its original headers unless --trusted (archives keep no credentials: replay
    them --trusted), deduplicated like an HTTP delivery, and stored for the worker to process.
    Bad lines are reported with their number and skipped; the exit status is then 1.
    """
    settings = load_settings()
    intake = Intake(settings, auth.SnsVerifier(settings.sns_topic_arns))
    tally = Tally()
    number = 0
    with open_lines(events) as lines:
        try:
            for number, line in enumerate(progress(lines, "replaying deliveries"), start=1):
                if not line.strip():
                    continue
                try:
                    source, headers, body = _captured_delivery(line)
                except ValueError as error:
                    tally.fail(f"line {number}", error)
                    continue
                tally.count_receipt(f"line {number}", intake.receive(source, body, headers, trusted=trusted))
        except (OSError, EOFError, UnicodeDecodeError) as error:
            tally.fail(events, f"unreadable after line {number}: {error}")
    expired = not trusted and any("timestamp_out_of_tolerance" in failure for failure in tally.failures)
    tally.report(
        "; signatures expire minutes after they are made (WEBHOOK_TOLERANCE_SECONDS): replay a capture "
        "you trust with --trusted"
        if expired
        else ""
    )


@click.command("consume-sqs")
@click.argument("queue_url")
@click.option(
    "--max-messages", type=click.IntRange(1, 10), default=10, show_default=True, help="Messages per receive."
)
@click.option(
    "--wait-seconds",
    type=click.IntRange(0, 20),
    default=20,
    show_default=True,
    help="How long one receive waits for messages (long polling).",
)
@click.option("--once", is_flag=True, help="Receive once, store what came, then exit.")
def consume_sqs(queue_url: str, max_messages: int, wait_seconds: int, once: bool) -> None:
    """Pull S3 notifications from an SQS queue into the inbox.

    The pull alternative to SNS over HTTP; runs until SIGTERM or Ctrl-C unless --once. Takes S3 events and SNS envelopes alike; the queue's policy authenticates the sender, so
    signatures are not checked. A message is deleted once it is in the inbox; when the database
    is down it stays on the queue and comes back after its visibility timeout. AWS credentials,
    region and AWS_ENDPOINT_URL come from the environment.
    """
    settings = load_settings()
    intake = Intake(settings, auth.SnsVerifier(settings.sns_topic_arns))
    sqs = boto3.client("sqs")
    stop = threading.Event()
    if not once:
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        signal.signal(signal.SIGINT, lambda *_: stop.set())
    while not stop.is_set():
        tally = Tally()
        try:
            answer = sqs.receive_message(
                QueueUrl=queue_url, MaxNumberOfMessages=max_messages, WaitTimeSeconds=wait_seconds
            )
            for message in answer.get("Messages", []):
                _consume(sqs, queue_url, message, intake, tally)
        except (BotoCoreError, ClientError) as error:
            if once:
                raise click.ClickException(f"SQS: {error}") from None
            log.error("sqs.unavailable queue=%s error=%s", queue_url, error)
            stop.wait(5.0)
        if once:
            tally.report()
            return
        if tally.seen:
            log.info("sqs.received queue=%s %s", queue_url, tally.summary())


def _consume(sqs: Any, queue_url: str, message: dict[str, Any], intake: Intake, tally: Tally) -> None:
    receipt = intake.receive(Source.S3, message["Body"].encode(), SQS_HEADERS, trusted=True)
    item = f"message {message['MessageId']}"
    # Whatever the intake stored has an event id: only then may the queue forget the message.
    if "event_id" in receipt.body:
        sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
        tally.count_receipt(item, receipt)
        log.info("sqs.stored message=%s event=%s", message["MessageId"], receipt.body["event_id"])
    else:
        tally.fail(item, f"left on the queue: {receipt.body.get('message')}")
        log.warning("sqs.left message=%s status=%d", message["MessageId"], receipt.status)


COMMANDS = [replay, consume_sqs]
