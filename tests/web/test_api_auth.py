"""Who may read and who may act: tokens, the login cookie and its CSRF token."""

from __future__ import annotations

import re

import pytest
from flask import Flask
from flask.testing import FlaskClient

from ingest import create_app
from ingest.settings import Settings
from tests.web.conftest import ADMIN, ADMIN_TOKEN, READ, READ_TOKEN


def csrf_of(page: bytes) -> str:
    found = re.search(rb'name="csrf_token" value="([^"]+)"', page)
    assert found is not None
    return found[1].decode()


def log_in(client: FlaskClient, token: str) -> str:
    """Log in through the form; return the session's CSRF token."""
    form = client.get("/login")
    response = client.post("/login", data={"token": token, "csrf_token": csrf_of(form.data), "next": "/"})
    assert response.status_code == 302
    return csrf_of(client.get("/login").data)


def test_a_read_without_a_token_is_refused_with_json(client: FlaskClient) -> None:
    response = client.get("/api/objectives")
    assert response.status_code == 401
    assert response.get_json()["error"] == "missing_token"
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_a_wrong_token_is_refused(client: FlaskClient) -> None:
    response = client.get("/api/objectives", headers={"Authorization": "Bearer nope"})
    assert response.status_code == 401
    assert response.get_json()["error"] == "bad_token"


def test_a_malformed_authorization_header_is_refused(client: FlaskClient) -> None:
    response = client.get("/api/objectives", headers={"Authorization": READ_TOKEN})
    assert response.status_code == 401


@pytest.mark.parametrize("headers", [READ, ADMIN], ids=["read", "admin"])
def test_the_read_and_the_admin_token_both_read(client: FlaskClient, headers: dict[str, str]) -> None:
    response = client.get("/api/objectives", headers=headers)
    assert response.status_code == 200
    assert response.get_json()["objectives"] == []


def test_the_read_token_may_not_replay(client: FlaskClient) -> None:
    response = client.post("/api/events/1/replay", headers=READ)
    assert response.status_code == 403
    assert response.get_json()["error"] == "forbidden"


def test_an_action_without_a_token_is_refused(client: FlaskClient) -> None:
    assert client.post("/api/events/1/replay").status_code == 401


def test_with_no_token_configured_reads_are_closed(settings: Settings) -> None:
    closed = settings.model_copy(update={"read_api_token": None, "admin_api_token": None})
    response = create_app(closed).test_client().get("/api/objectives")
    assert response.status_code == 401
    assert "READ_API_OPEN" in response.get_json()["message"]


def test_read_api_open_lets_anyone_read_but_not_act(settings: Settings) -> None:
    opened = settings.model_copy(
        update={"read_api_token": None, "admin_api_token": None, "read_api_open": True}
    )
    client = create_app(opened).test_client()
    assert client.get("/api/objectives").status_code == 200
    response = client.post("/api/events/1/replay")
    assert response.status_code == 401
    assert "ADMIN_API_TOKEN" in response.get_json()["message"]


def test_the_login_form_has_one_token_field(client: FlaskClient) -> None:
    page = client.get("/login")
    assert page.status_code == 200
    assert page.data.count(b"<input") == 3
    assert b'name="token"' in page.data


def test_logging_in_sets_a_signed_httponly_lax_cookie_that_reads(client: FlaskClient) -> None:
    form = client.get("/login")
    response = client.post(
        "/login", data={"token": READ_TOKEN, "csrf_token": csrf_of(form.data), "next": "/api/objectives"}
    )
    assert response.status_code == 302
    assert response.headers["Location"] == "/api/objectives"
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert client.get("/api/objectives").status_code == 200


def test_a_wrong_token_at_login_is_refused_and_sets_no_login(client: FlaskClient) -> None:
    form = client.get("/login")
    response = client.post("/login", data={"token": "nope", "csrf_token": csrf_of(form.data)})
    assert response.status_code == 401
    assert b"not valid" in response.data
    assert client.get("/api/objectives").status_code == 401


def test_a_login_without_the_csrf_token_is_refused(client: FlaskClient) -> None:
    client.get("/login")
    assert client.post("/login", data={"token": READ_TOKEN}).status_code == 403
    assert client.get("/api/objectives").status_code == 401


def test_login_never_redirects_to_another_site(client: FlaskClient) -> None:
    form = client.get("/login")
    response = client.post(
        "/login", data={"token": READ_TOKEN, "csrf_token": csrf_of(form.data), "next": "//evil.example/x"}
    )
    assert response.headers["Location"] == "/"


def test_an_admin_cookie_acts_only_with_the_csrf_token(client: FlaskClient) -> None:
    csrf = log_in(client, ADMIN_TOKEN)
    refused = client.post("/api/events/999999/replay")
    assert refused.status_code == 403
    assert refused.get_json()["error"] == "bad_csrf_token"
    assert client.post("/api/events/999999/replay", headers={"X-CSRF-Token": csrf}).status_code == 404


def test_a_read_cookie_may_not_act(client: FlaskClient) -> None:
    csrf = log_in(client, READ_TOKEN)
    assert client.post("/api/events/1/replay", headers={"X-CSRF-Token": csrf}).status_code == 403


def test_a_bearer_action_needs_no_csrf_token(client: FlaskClient) -> None:
    assert client.post("/api/events/999999/replay", headers=ADMIN).status_code == 404


def test_a_cookie_stops_working_when_its_token_is_rotated(settings: Settings) -> None:
    client = create_app(settings).test_client()
    log_in(client, READ_TOKEN)
    rotated = create_app(settings.model_copy(update={"read_api_token": "a-new-token"}))
    cookie = client.get_cookie("training_db_session")
    assert cookie is not None
    other = rotated.test_client()
    other.set_cookie("training_db_session", cookie.value)
    assert other.get("/api/objectives").status_code == 401


def test_logging_out_forgets_the_login(client: FlaskClient) -> None:
    csrf = log_in(client, READ_TOKEN)
    assert client.post("/logout", data={"csrf_token": csrf}).status_code == 302
    assert client.get("/api/objectives").status_code == 401


def test_page_views_can_redirect_to_login(app: Flask) -> None:
    from web.auth import login_required

    app.add_url_rule("/guarded", "guarded", login_required(lambda: "inside"))
    client = app.test_client()
    response = client.get("/guarded?x=1")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login?next=")
    assert client.get("/guarded", headers=READ).data == b"inside"


def test_a_request_without_a_cookie_never_builds_the_cookie_signer(
    client: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    from web.auth import CookieOnDemandSessions

    log_in(client, READ_TOKEN)
    built: list[str] = []
    original = CookieOnDemandSessions.get_signing_serializer

    def counted(self: CookieOnDemandSessions, app: Flask) -> object:
        built.append(app.name)
        return original(self, app)

    monkeypatch.setattr(CookieOnDemandSessions, "get_signing_serializer", counted)
    anonymous = client.application.test_client()
    assert anonymous.get("/api/objectives", headers=READ).status_code == 200
    assert anonymous.get("/api/objectives").status_code == 401
    assert built == []

    assert client.get("/api/objectives").status_code == 200
    assert built
