"""What every handler receives and returns."""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ingest.settings import Settings


class Outcome(enum.StrEnum):
    APPLIED = "applied"
    UNCHANGED = "unchanged"
    IGNORED = "ignored"


@dataclass
class Context:
    """The services handlers may use besides the store."""

    settings: Settings
    wandb_client: Callable[[], Any] | None = None
    http_get: Callable[[str], Any] | None = None


Handler = Callable[[Any, Context], Outcome]


def outcome(changed: bool) -> Outcome:
    return Outcome.APPLIED if changed else Outcome.UNCHANGED
