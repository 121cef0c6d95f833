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
    # Visits a verified SubscriptionConfirmation's SubscribeURL (ingest.auth checks it first).
    confirm_subscription: Callable[[dict[str, Any]], None] | None = None


Handler = Callable[[Any, Context], Outcome]


def outcome(changed: bool) -> Outcome:
    return Outcome.APPLIED if changed else Outcome.UNCHANGED
