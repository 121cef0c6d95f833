"""Real S3 -> SNS -> HTTP delivery through moto's server on loopback, into the real app and worker."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from urllib.parse import urlsplit

import boto3
import pytest
import requests
from moto.server import ThreadedMotoServer
from werkzeug.serving import make_server

import store
from ingest import create_app
from store import inbox

BUCKET = "mango-crash-reports"


@pytest.fixture
def moto_url() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    url = f"http://{host}:{port}"
    # moto keeps its backends per process: forget the topics and buckets of earlier tests.
    requests.post(f"{url}/moto-api/reset", timeout=5).raise_for_status()
    yield url
    server.stop()


def _fetch_pem_from(moto_url: str):
    """Fetch the signing certificate from moto, which serves it only to a request that looks signed."""

    def fetch(url: str) -> bytes:
        path = urlsplit(url).path
        headers = {
            "Authorization": "AWS4-HMAC-SHA256 Credential=x/20200101/us-east-1/sns/aws4_request, SignedHeaders=host, Signature=0"
        }
        response = requests.get(moto_url + path, headers=headers, timeout=5)
        response.raise_for_status()
        return response.content

    return fetch


def test_crash_reports_uploaded_to_s3_reach_the_run_through_sns(settings, moto_url, monkeypatch, worker):
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    sns = boto3.client("sns", endpoint_url=moto_url)
    s3 = boto3.client("s3", endpoint_url=moto_url)
    topic_arn = sns.create_topic(Name="crash-reports")["TopicArn"]
    app = create_app(
        settings.model_copy(update={"sns_topic_arns": [topic_arn]}), fetch_pem=_fetch_pem_from(moto_url)
    )
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever)
    thread.start()
    try:
        sns.subscribe(
            TopicArn=topic_arn, Protocol="http", Endpoint=f"http://127.0.0.1:{server.server_port}/webhooks/s3"
        )
        s3.create_bucket(Bucket=BUCKET)
        s3.put_bucket_notification_configuration(
            Bucket=BUCKET,
            NotificationConfiguration={
                "TopicConfigurations": [
                    {
                        "TopicArn": topic_arn,
                        "Events": ["s3:ObjectCreated:*"],
                        "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": "crash-reports/"}]}},
                    }
                ]
            },
        )
        for name in ("error.log", "report.md", "analysis.md"):
            s3.put_object(Bucket=BUCKET, Key=f"crash-reports/run-7-b.x/{name}", Body=b"trace")
        s3.put_object(Bucket=BUCKET, Key="checkpoints/run-7-b.x/latest.pt", Body=b"weights")
        deadline = time.monotonic() + 10
        while len(inbox.list_deliveries()) < 4 and time.monotonic() < deadline:
            time.sleep(0.05)
        worker.run_once()
    finally:
        server.shutdown()
        thread.join()
        server.server_close()

    run = store.get_run("run-7-b.x")
    assert run["error_log_s3_key"] == "crash-reports/run-7-b.x/error.log"
    assert run["crash_report_s3_key"] == "crash-reports/run-7-b.x/report.md"
    assert run["crash_analysis_s3_key"] == "crash-reports/run-7-b.x/analysis.md"
    statuses = sorted(d.kind for d in inbox.list_deliveries())
    assert statuses == ["s3.objects"] * 3 + ["s3.test_event"]
