"""Fixtures for the read side: the real app with read and admin tokens, on each backend."""

from __future__ import annotations

import pytest

from ingest.settings import Settings

READ_TOKEN = "read-token-for-tests"
ADMIN_TOKEN = "admin-token-for-tests"
READ = {"Authorization": f"Bearer {READ_TOKEN}"}
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """Every webhook source configured, and both API tokens set."""
    return settings.model_copy(
        update={
            "read_api_token": READ_TOKEN,
            "admin_api_token": ADMIN_TOKEN,
            "secret_key": "secret-for-tests",
        }
    )
