"""The service's settings as a pydantic model; import Settings from ingest.settings."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from ingest.settings import DEFAULT_DATABASE_URL, DEFAULT_STALE_AFTER_SECONDS
from store import DEFAULT_HISTORY_POLICY, DEFAULT_MOLECULE_ANALYSES_KEPT, HistoryPolicy


class Settings(BaseSettings):
    """The service's settings; each field is read from the upper-cased environment variable."""

    model_config = SettingsConfigDict(env_file=None, extra="ignore")

    database_url: str = DEFAULT_DATABASE_URL
    # Each process's PostgreSQL connections for the store: kept open, and more at busy times.
    # A gevent web process also keeps up to 4 for the inbox's inserts.
    database_pool_size: int = Field(default=5, ge=1)
    database_max_overflow: int = Field(default=5, ge=0)

    pipeline_webhook_secret: str | None = None
    wandb_webhook_token: str | None = None
    wandb_webhook_secret: str | None = None
    s3_webhook_token: str | None = None
    sns_topic_arns: Annotated[list[str], NoDecode] = Field(default_factory=list)
    sns_confirm_subscriptions: bool = True
    crash_report_prefix: str = "crash-reports/"
    max_body_bytes: int = Field(default=1024 * 1024, gt=0)
    # A body with nothing more for this long gets 408. Senders post small bodies at once;
    # EventBridge itself gives up on an answer after 5 s.
    body_timeout_seconds: float = Field(default=5.0, gt=0)
    webhook_tolerance_seconds: int = Field(default=300, gt=0)

    wandb_base_url: str = "https://api.wandb.ai"
    wandb_api_key: str | None = None
    wandb_projects: Annotated[list[str], NoDecode] = Field(default_factory=list)
    wandb_sync_interval: float = Field(default=900.0, gt=0)
    # W&B marks a run crashed minutes after its heartbeat stops, without touching the heartbeat:
    # re-reading the last hour catches those state changes.
    wandb_sync_overlap: float = Field(default=3600.0, ge=0)

    # The read side (web/): bearer tokens for reading and for actions (the admin token reads too).
    # With neither token set the read API is closed unless read_api_open.
    read_api_token: str | None = None
    admin_api_token: str | None = None
    read_api_open: bool = False
    # Signs the login cookie; unset, each process makes its own (a restart logs everyone out).
    secret_key: str | None = None
    # Send the login cookie over HTTPS only; set it when a TLS proxy fronts the app.
    session_cookie_secure: bool = False
    # A read replica for the API and the pages; unset, they read DATABASE_URL.
    database_read_url: str | None = None
    # Where crash reports are stored: run pages link to them with presigned GET URLs.
    crash_report_bucket: str | None = None
    presigned_url_seconds: int = Field(default=3600, gt=0, le=7 * 24 * 3600)
    # A run still running with no event for this long is shown, and filtered, as stalled.
    stale_after_seconds: float = Field(default=DEFAULT_STALE_AFTER_SECONDS, gt=0)

    # Each run's metric history (store/history.py): the keys kept (glob patterns), at most how
    # many keys per run, and at most how many points, thinned evenly over the steps past it.
    history_keys: Annotated[list[str], NoDecode] = Field(default_factory=lambda: list(DEFAULT_HISTORY_POLICY.keys))
    history_max_keys: int = Field(default=DEFAULT_HISTORY_POLICY.max_keys, ge=1)
    history_max_points: int = Field(default=DEFAULT_HISTORY_POLICY.max_points, ge=4)

    # RDKit's analyses of molecules, shared by the workers through the database: at most this
    # many rows are kept (store/analyses.py); 0 shares none, each worker keeps its own in memory.
    molecule_analyses_kept: int = Field(default=DEFAULT_MOLECULE_ANALYSES_KEPT, ge=0)

    def history_policy(self) -> HistoryPolicy:
        """Return what the history of each run keeps, as the store takes it."""
        return HistoryPolicy(tuple(self.history_keys), self.history_max_keys, self.history_max_points)

    worker_max_attempts: int = Field(default=8, ge=1)
    worker_poll_interval: float = Field(default=0.05, gt=0)
    # Each run of a batch holds a slot of PostgreSQL's lock table until the commit (store.lock_creation).
    worker_batch_size: int = Field(default=100, ge=1, le=1000)
    # After a batch that was not full, wait this long before claiming again, so that under a
    # steady stream of events batches fill up: a batch costs a dozen statements whatever its size.
    # Every event of the next batch waits this long too: at half the end-to-end rate, runs were
    # queryable sooner with 5 ms than with 20 ms (bench/RESULTS.md, "A 5 ms linger").
    worker_linger: float = Field(default=0.005, ge=0)
    # A worker renews the claim on the events it holds every quarter of this; events whose claim
    # is older (their worker died) are claimed again by another: within it, plus a poll interval.
    worker_lease: float = Field(default=20.0, ge=1)

    def wandb_syncs_impossible(self) -> bool:
        """Tell whether W&B webhooks are taken while no API key lets the worker sync what they ask for."""
        return bool(self.wandb_webhook_token or self.wandb_webhook_secret) and not self.wandb_api_key

    # Processed and ignored deliveries older than this are archived, then deleted from the inbox.
    inbox_retention_days: float = Field(default=30.0, ge=0)
    # A folder, or s3://bucket/prefix. Unset, nothing is ever deleted from the inbox: deleting
    # what was written nowhere would lose the only copy of each delivery.
    inbox_archive: str | None = None

    @field_validator("sns_topic_arns", "wandb_projects", "history_keys", mode="before")
    @classmethod
    def _split_list(cls, value: object) -> object:
        if isinstance(value, str):
            return [item.strip() for item in value.replace(",", " ").split() if item.strip()]
        return value

    @field_validator("inbox_archive")
    @classmethod
    def _check_archive(cls, value: str | None) -> str | None:
        value = (value or "").strip()
        if value.startswith("s3://") and not value[len("s3://") :].split("/", 1)[0]:
            raise ValueError(f"S3 archive {value!r} must be written s3://BUCKET or s3://BUCKET/PREFIX")
        return value or None

    @field_validator("wandb_projects")
    @classmethod
    def _check_projects(cls, value: list[str]) -> list[str]:
        for project in value:
            entity, _, name = project.partition("/")
            if not entity or not name or "/" in name:
                raise ValueError(f"W&B project {project!r} must be written ENTITY/PROJECT")
        return value
