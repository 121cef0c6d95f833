"""gunicorn settings for the web process (the Procfile's `web:` line and `training-db serve`)."""

from __future__ import annotations

import gc
import multiprocessing
import os
import shutil
import tempfile
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gunicorn.arbiter import Arbiter
    from gunicorn.http.message import Request
    from gunicorn.workers.base import Worker

bind = f"{os.environ.get('HOST', '0.0.0.0')}:{os.environ.get('PORT', '8000')}"
workers = int(os.environ.get("WEB_CONCURRENCY", multiprocessing.cpu_count() * 2 + 1))
# gevent, not sync or gthread: a sync worker, or a gthread thread once the first bytes have
# come, blocks reading a connection until the client finishes its headers and body, so a
# handful of slow or stalled clients held every worker. A gevent worker reads each connection
# in a greenlet of its own: a slow one costs a few KiB, and its headers must arrive within
# `keepalive` seconds (the worker's read timeout for each request's head). The body's read
# timeout is the app's (BODY_TIMEOUT_SECONDS, ingest/webhooks.py). psycopg 3 waits on
# gevent's patched select when it is imported after the patch, so a database write yields too.
worker_class = "gevent"
# Open connections per worker, slow ones included; past this a worker stops accepting.
worker_connections = int(os.environ.get("GUNICORN_WORKER_CONNECTIONS", "1000"))
# SNS waits 15 s and EventBridge 5 s for an answer; a worker whose loop has not run for this
# long (a request hogging the CPU, or blocked outside gevent) is restarted.
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "30"))
graceful_timeout = 20
# Idle time allowed between requests on a connection, and for each request's head to arrive.
keepalive = int(os.environ.get("GUNICORN_KEEPALIVE", "5"))
# Requests served on one keep-alive connection before the answer closes it (nginx's
# keepalive_requests). A gevent worker serves every connection it accepts until the client
# closes it, so a sender's long-lived connections stay wherever they first landed: with 16
# connections over 5 workers, one worker held none and the busiest queued a third more than
# their share. Closing one in a hundred costs the sender a reconnect on loopback or a LAN, and
# the worker that accepts the new connection is one waiting in its loop, not one busy serving.
keepalive_requests = int(os.environ.get("GUNICORN_KEEPALIVE_REQUESTS", "100"))
# A restarted worker builds the app anew, where a preloaded one was forked: once every 10,000
# requests, that would add a noticeable share to the web's CPU (bench/RESULTS.md, "Figures
# from the code").
max_requests = 100000
max_requests_jitter = 10000
accesslog = os.environ.get("GUNICORN_ACCESS_LOG", "-")
errorlog = "-"
loglevel = os.environ.get("LOG_LEVEL", "info")
wsgi_app = "ingest.wsgi:app"
# Each worker builds the app itself, after gevent has patched the standard library: built in
# the master, before the patch, psycopg would keep its blocking wait and the connection pools
# their thread locks, and a write would stop every greenlet of its worker (gunicorn's docs
# advise against preloading with gevent for this reason).
preload_app = False
# gunicorn's control socket (gunicornc) defaults to one path per user, which a second instance
# on the host takes over and removes when it stops. Only where a path is given, one each.
control_socket_disable = "GUNICORN_CONTROL_SOCKET" not in os.environ
if not control_socket_disable:
    control_socket = os.environ["GUNICORN_CONTROL_SOCKET"]


# The worker processes sum their Prometheus counters through a scratch folder; it must be
# named before prometheus_client is first imported, which building the app does.
_metrics_dir = None
if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    _metrics_dir = tempfile.mkdtemp(prefix="training-db-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = _metrics_dir


def on_exit(server: Arbiter) -> None:
    if _metrics_dir:
        shutil.rmtree(_metrics_dir, ignore_errors=True)


def child_exit(server: Arbiter, worker: Worker) -> None:
    from prometheus_client import multiprocess

    # prometheus_client leaves this function unannotated.
    multiprocess.mark_process_dead(worker.pid)  # type: ignore[no-untyped-call]


def pre_request(worker: Worker, req: Request) -> None:
    if keepalive_requests and req.req_number >= keepalive_requests:
        # The answer then says "Connection: close" and the worker closes the connection.
        req.must_close = True


def post_worker_init(worker: Worker) -> None:
    """Keep the app's long-lived objects out of the garbage collector's sweeps, and end the live
    pages' streams as soon as the worker is told to stop.

    A collection then scans only what the requests since the last one made. A stream would
    otherwise hold a stopping worker for its whole graceful timeout; the browsers reconnect to
    another (web/live.py).
    """
    from web import live

    live.serve_while(lambda: worker.alive)
    gc.freeze()
