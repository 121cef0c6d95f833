"""gunicorn settings for the web process (the Procfile's `web:` line and `training-db serve`)."""

import gc
import multiprocessing
import os
import shutil
import tempfile

bind = f"{os.environ.get('HOST', '0.0.0.0')}:{os.environ.get('PORT', '8000')}"
workers = int(os.environ.get("WEB_CONCURRENCY", multiprocessing.cpu_count() * 2 + 1))
worker_class = "sync"
# SNS waits 15 s and EventBridge 5 s for an answer; a request that takes longer is stuck.
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "30"))
graceful_timeout = 20
keepalive = 5
max_requests = 10000
max_requests_jitter = 1000
accesslog = os.environ.get("GUNICORN_ACCESS_LOG", "-")
errorlog = "-"
loglevel = os.environ.get("LOG_LEVEL", "info")
wsgi_app = "ingest.wsgi:app"
# Build the app once in the master (one start-up log, one config check); each worker then
# opens its own database connections (post_fork).
preload_app = True


# The worker processes sum their Prometheus counters through a scratch folder; it must be
# named before prometheus_client is first imported, which preloading the app does.
_metrics_dir = None
if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    _metrics_dir = tempfile.mkdtemp(prefix="training-db-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = _metrics_dir


def on_exit(server):  # type: ignore[no-untyped-def]
    if _metrics_dir:
        shutil.rmtree(_metrics_dir, ignore_errors=True)


def child_exit(server, worker):  # type: ignore[no-untyped-def]
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def pre_fork(server, worker):  # type: ignore[no-untyped-def]
    """Keep the preloaded app out of the garbage collector's sweeps.

    A worker's collections would otherwise walk (and so copy, page by page) every object
    it shares with the master.
    """
    gc.freeze()


def post_fork(server, worker):  # type: ignore[no-untyped-def]
    """Give each worker its own connection pool: sockets must not be shared across a fork."""
    from store.database import get_engine

    get_engine().dispose(close=False)
