"""Web servers sharing a host never share, or remove, one another's gunicorn control socket."""

from __future__ import annotations

from pathlib import Path

import pytest
import requests

from tests.faults.services import web_server


@pytest.mark.slow
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_each_web_server_has_its_own_control_socket_or_none(database_url: str, tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    # Without XDG_RUNTIME_DIR, gunicorn's default is ~/.gunicorn/gunicorn.ctl, one for the user.
    user = {"HOME": str(home), "XDG_RUNTIME_DIR": ""}
    first, second = tmp_path / "first.ctl", tmp_path / "second.ctl"
    with (
        web_server(database_url, tmp_path, workers=1, GUNICORN_CONTROL_SOCKET=str(first), **user) as kept,
        web_server(database_url, tmp_path, workers=1, **user),
    ):
        with web_server(database_url, tmp_path, workers=1, GUNICORN_CONTROL_SOCKET=str(second), **user):
            assert first.is_socket() and second.is_socket()
        assert not second.exists()
        assert first.is_socket(), "stopping one server removed another's control socket"
        assert not (home / ".gunicorn").exists(), "a server without GUNICORN_CONTROL_SOCKET made one"
        assert requests.get(f"{kept.url}/healthz", timeout=5).status_code == 200
