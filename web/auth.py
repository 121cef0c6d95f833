"""Who may read and who may act: bearer tokens, the login cookie, and CSRF tokens for forms.

Reads take ``Authorization: Bearer <READ_API_TOKEN>`` (or the admin token) or the login
cookie; POST actions take the admin token, or the cookie of a login made with it plus the
session's CSRF token. With neither token set the read side is closed, unless
``READ_API_OPEN=true`` opens reading to anyone (actions stay closed).
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import logging
import secrets
from collections.abc import Callable
from typing import Any, Literal
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    Flask,
    Response,
    current_app,
    g,
    jsonify,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface
from flask.wrappers import Request

from ingest.settings import Settings

log = logging.getLogger("web")

Role = Literal["admin", "read", "open"]
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"

blueprint = Blueprint("auth", __name__, template_folder="templates")


class Denied(Exception):
    """The request may not do what it asks: 401 without credentials, 403 with too few."""

    def __init__(self, status: int, error: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.error = error
        self.message = message


def _settings() -> Settings:
    settings: Settings = current_app.config["SETTINGS"]
    return settings


def _matches(candidate: str, expected: str | None) -> bool:
    if not expected:
        return False
    return hmac.compare_digest(candidate.encode(), expected.encode())


def role_of_token(token: str, settings: Settings) -> Role | None:
    """Return what a token may do, comparing in constant time with both configured tokens."""
    # Both comparisons always run (| not `or`), so the time does not tell which token matched.
    admin = _matches(token, settings.admin_api_token)
    read = _matches(token, settings.read_api_token)
    if admin | read:
        return "admin" if admin else "read"
    return None


def _fingerprint(token: str) -> str:
    # The cookie names the token it was made with, not the token itself: rotating a token
    # logs out every session made with the old one.
    key = current_app.secret_key
    assert isinstance(key, str | bytes)
    return hmac.new(
        key if isinstance(key, bytes) else key.encode(), token.encode(), hashlib.sha256
    ).hexdigest()


def _session_role(settings: Settings) -> Role | None:
    role = session.get("role")
    fingerprint = session.get("token")
    if role not in ("admin", "read") or not isinstance(fingerprint, str):
        return None
    # Checked above to be one of the two roles a login cookie holds.
    checked: Role = role
    token = settings.admin_api_token if role == "admin" else settings.read_api_token
    if not token or not hmac.compare_digest(fingerprint, _fingerprint(token)):
        return None
    return checked


def identify() -> tuple[Role | None, bool]:
    """Return the request's role and whether it came from the cookie (cached per request)."""
    if "auth" in g:
        cached: tuple[Role | None, bool] = g.auth
        return cached
    settings = _settings()
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if header:
        if scheme.lower() != "bearer" or not token.strip():
            raise Denied(401, "missing_token", "Authorization must be `Bearer <token>`.")
        role = role_of_token(token.strip(), settings)
        if role is None:
            raise Denied(401, "bad_token", "The bearer token is not valid.")
        auth: tuple[Role | None, bool] = (role, False)
    elif (cookie_role := _session_role(settings)) is not None:
        auth = (cookie_role, True)
    else:
        auth = ("open" if settings.read_api_open else None, False)
    g.auth = auth
    return auth


def check_read() -> Role:
    """Raise Denied unless the request may read."""
    role, _ = identify()
    if role is not None:
        return role
    settings = _settings()
    if not (settings.read_api_token or settings.admin_api_token):
        raise Denied(
            401,
            "not_configured",
            "The read API is closed: set READ_API_TOKEN (or ADMIN_API_TOKEN), or READ_API_OPEN=true.",
        )
    raise Denied(401, "missing_token", "Log in, or send Authorization: Bearer <READ_API_TOKEN>.")


def check_admin() -> None:
    """Raise Denied unless the request may act: the admin token, or its login's cookie and CSRF token."""
    role, from_cookie = identify()
    if role is None or role == "open":
        if not _settings().admin_api_token:
            raise Denied(401, "not_configured", "Actions are closed: ADMIN_API_TOKEN is not set.")
        raise Denied(401, "missing_token", "Log in with the admin token, or send it as a bearer token.")
    if role != "admin":
        raise Denied(403, "forbidden", "This action needs the admin token; the read token may only read.")
    if from_cookie:
        check_csrf()


def csrf_token() -> str:
    """Return the session's CSRF token, making one on first use."""
    token = session.get("csrf")
    if not isinstance(token, str):
        token = secrets.token_urlsafe(32)
        session["csrf"] = token
    return token


def check_csrf() -> None:
    """Raise Denied unless the form field or the X-CSRF-Token header carries the session's CSRF token."""
    expected = session.get("csrf")
    sent = request.headers.get(CSRF_HEADER) or request.form.get(CSRF_FIELD) or ""
    if not isinstance(expected, str) or not hmac.compare_digest(sent.encode(), expected.encode()):
        raise Denied(403, "bad_csrf_token", "The form's CSRF token is missing or stale: reload the page.")


def denied_json(error: Denied) -> tuple[Response, int]:
    """Answer a refused API request with JSON naming why."""
    response = jsonify(error=error.error, message=error.message)
    if error.status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="training-db"'
    return response, error.status


def api_guard() -> tuple[Response, int] | None:
    """A before_request hook for JSON blueprints: reads need read access, other methods admin."""
    try:
        if request.method in ("GET", "HEAD", "OPTIONS"):
            check_read()
        else:
            check_admin()
    except Denied as error:
        return denied_json(error)
    return None


def page_guard() -> Any:
    """A before_request hook for page blueprints: send a visitor who may not read to /login."""
    try:
        if request.method in ("GET", "HEAD"):
            check_read()
        else:
            check_admin()
    except Denied as error:
        if error.status == 401:
            return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))
        return denied_json(error)
    return None


def login_required(view: Callable[..., Any]) -> Callable[..., Any]:
    """Decorate a page view so that it redirects to /login when the visitor may not read."""

    @functools.wraps(view)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        return page_guard() or view(*args, **kwargs)

    return guarded


def _safe_next(target: str | None) -> str:
    # Only a path on this site: an absolute URL here would make /login an open redirect.
    if not target or not target.startswith("/") or target.startswith("//") or urlsplit(target).netloc:
        return "/"
    return target


@blueprint.route("/login", methods=["GET", "POST"])
def login() -> Any:
    """Show the token form, or log in with the token it sends."""
    target = _safe_next(request.values.get("next"))
    if request.method == "GET":
        return render_template("login.html", next=target, csrf_token=csrf_token(), error=None)
    try:
        check_csrf()
    except Denied as error:
        return render_template("login.html", next=target, csrf_token=csrf_token(), error=error.message), 403
    token = request.form.get("token", "").strip()
    role = role_of_token(token, _settings()) if token else None
    if role is None:
        log.info("login.refused")
        return render_template(
            "login.html", next=target, csrf_token=csrf_token(), error="That token is not valid."
        ), 401
    session.clear()
    session.permanent = True
    session.update(role=role, token=_fingerprint(token), csrf=secrets.token_urlsafe(32))
    return redirect(target)


@blueprint.post("/logout")
def logout() -> Any:
    """Forget the login (a POST with the CSRF token, so that no other site can log anyone out)."""
    try:
        check_csrf()
    except Denied as error:
        return denied_json(error)
    session.clear()
    return redirect(url_for("auth.login"))


class CookieOnDemandSessions(SecureCookieSessionInterface):
    """Flask's signed cookie sessions, the signer built only for a request that brings a cookie.

    Flask builds it for every request, and the webhooks, which never carry one, spent a tenth of
    their web CPU on it (cProfile of bench/web_instructions.py's requests: 95 of about 650 us).
    """

    def open_session(self, app: Flask, request: Request) -> SecureCookieSession | None:
        # The environ first: parsing the cookies of a request that has none costs as much again.
        if app.secret_key and (
            "HTTP_COOKIE" not in request.environ or not request.cookies.get(self.get_cookie_name(app))
        ):
            return self.session_class()
        return super().open_session(app, request)


def init_app(app: Flask, settings: Settings) -> None:
    """Set up the signed login cookie and the login pages."""
    if settings.secret_key:
        app.secret_key = settings.secret_key
    else:
        # Made before gunicorn forks (preload_app), so every web process of this server shares it.
        app.secret_key = secrets.token_hex(32)
        if settings.read_api_token or settings.admin_api_token:
            log.warning("config.unset SECRET_KEY: logins last until the server restarts")
    app.config.update(
        SESSION_COOKIE_NAME="training_db_session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.session_cookie_secure,
    )
    app.session_interface = CookieOnDemandSessions()
    app.jinja_env.globals["csrf_token"] = csrf_token
    app.register_blueprint(blueprint)
