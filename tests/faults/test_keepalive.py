"""A sender's keep-alive connection is closed after a bounded number of requests, so that its
connections spread over the web workers instead of staying wherever they were first accepted."""

from __future__ import annotations

import http.client
import json
from pathlib import Path
from urllib.parse import urlsplit

from tests.faults.services import web_server
from tests.webhooks import pipeline_event, pipeline_headers


def test_the_answer_to_the_last_request_a_connection_may_carry_closes_it(
    database_url: str, tmp_path: Path
) -> None:
    with web_server(database_url, tmp_path, GUNICORN_KEEPALIVE_REQUESTS="3") as server:
        address = urlsplit(server.url)
        connection = http.client.HTTPConnection(address.hostname or "", address.port, timeout=10)
        answers = []
        for index in range(3):
            body = json.dumps(pipeline_event("run.started", f"keepalive-{index}")).encode()
            headers = {"Content-Type": "application/json", **pipeline_headers(body, f"msg_keepalive_{index}")}
            connection.request("POST", "/webhooks/pipeline", body, headers)
            response = connection.getresponse()
            response.read()
            answers.append((response.status, response.getheader("Connection")))
        closed = connection.sock is None
        connection.close()

    assert answers == [(202, "keep-alive"), (202, "keep-alive"), (202, "close")]
    assert closed

