"""The webhook ingester: authenticated deliveries into a durable inbox, over HTTP."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from flask import Flask, Response

    from ingest.settings import Settings

log = logging.getLogger("ingest")
WANDB_API_KEY_UNSET = "config.unset WANDB_API_KEY: W&B webhooks are stored but their syncs fail until dead"


def create_app(settings: Settings | None = None, fetch_pem: Callable[[str], bytes] | None = None) -> Flask:
    """Create the ingester's Flask app; tests pass their own settings and certificate fetcher."""
    # Imported here, not at the top: gunicorn's config (ingest.gunicorn_conf) must set up
    # Prometheus' multiprocess folder before prometheus_client is first imported, and the CLI
    # (ingest.cli, inside this package) starts without Flask.
    from flask import Flask, jsonify, request
    from werkzeug.exceptions import HTTPException, MethodNotAllowed

    import store
    import web
    from ingest import auth, metrics, openapi, webhooks
    from ingest.intake import Intake
    from ingest.settings import Settings

    settings = settings or Settings()
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    app.config["SETTINGS"] = settings
    store.configure(settings.database_url, settings.database_pool_size, settings.database_max_overflow)
    store.configure_stale_after(settings.stale_after_seconds)
    # The store's parts load on first use (store/__init__.py); a web process loads them all now,
    # as it did before they were lazy, so that no request pays for one (Alembic, for /healthz).
    for name in store.__all__:
        getattr(store, name)
    app.extensions["intake"] = Intake(
        settings, auth.SnsVerifier(settings.sns_topic_arns, fetch_pem=fetch_pem)
    )
    _warn_unconfigured(settings)

    app.register_blueprint(webhooks.blueprint)
    app.register_blueprint(openapi.blueprint)
    web.init_app(app, settings)

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException) -> tuple[Response, int]:
        # Every error is JSON naming the problem, 404s and 413s included.
        code = error.code or 500
        name = (error.name or "error").lower().replace(" ", "_")
        if code == 413:
            metrics.rejected(_source_of(request.path), "body_too_large")
            message = f"body is larger than MAX_BODY_BYTES ({settings.max_body_bytes} bytes)"
        else:
            message = error.description or name
        response = jsonify(error=name, message=message)
        if isinstance(error, MethodNotAllowed) and error.valid_methods:
            # RFC 9110 requires it on a 405: the methods the resource does take.
            response.headers["Allow"] = ", ".join(error.valid_methods)
        return response, code

    @app.errorhandler(Exception)
    def unexpected_error(error: Exception) -> tuple[Response, int]:
        if store.schema_missing(error):
            return webhooks.schema_missing()
        log.exception("request.failed path=%s", request.path)
        return jsonify(error="internal_error", message="unexpected error; nothing was stored"), 500

    return app


def _source_of(path: str) -> str:
    return path.rstrip("/").rsplit("/", 1)[-1]


def _warn_unconfigured(settings: Settings) -> None:
    if not settings.pipeline_webhook_secret:
        log.warning("config.unset PIPELINE_WEBHOOK_SECRET: /webhooks/pipeline refuses every request")
    if not (settings.wandb_webhook_token or settings.wandb_webhook_secret):
        log.warning(
            "config.unset WANDB_WEBHOOK_TOKEN/WANDB_WEBHOOK_SECRET: /webhooks/wandb refuses every request"
        )
    if settings.wandb_syncs_impossible():
        log.warning(WANDB_API_KEY_UNSET)
    if not settings.s3_webhook_token:
        log.warning("config.unset S3_WEBHOOK_TOKEN: /webhooks/s3 refuses EventBridge and bare S3 events")
    if not settings.sns_topic_arns:
        log.warning("config.unset SNS_TOPIC_ARNS: /webhooks/s3 refuses every SNS message")
