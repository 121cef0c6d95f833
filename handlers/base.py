"""What every handler receives and returns, and the services it may use besides the store.

Handlers never import ``ingest``: the worker builds their context, and the settings and the
W&B client it passes in are named here by what handlers use of them (protocols that
``ingest.settings.Settings`` and ``ingest.wandb_api.WandbClient`` meet).
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, Protocol, TypeVar

from pydantic import BaseModel

import store


class Outcome(enum.StrEnum):
    APPLIED = "applied"
    UNCHANGED = "unchanged"
    IGNORED = "ignored"


class HandlerSettings(Protocol):
    """The settings handlers read."""

    @property
    def crash_report_prefix(self) -> str: ...

    @property
    def sns_confirm_subscriptions(self) -> bool: ...

    @property
    def wandb_sync_overlap(self) -> float: ...

    def history_policy(self) -> store.HistoryPolicy: ...


class WandbRun(Protocol):
    """One W&B run as the W&B client reports it."""

    @property
    def entity(self) -> str: ...

    @property
    def project(self) -> str: ...

    @property
    def run_id(self) -> str: ...

    @property
    def display_name(self) -> str | None: ...

    @property
    def state(self) -> str: ...

    @property
    def config(self) -> dict[str, Any]: ...

    @property
    def summary(self) -> dict[str, Any]: ...

    @property
    def created_at(self) -> datetime | None: ...

    @property
    def history_lines(self) -> int: ...

    @property
    def history_keys(self) -> tuple[str, ...]: ...


class WandbClient(Protocol):
    """Reads a W&B project's runs."""

    def runs(self, entity: str, project: str, updated_since: datetime | None = None) -> Iterable[WandbRun]: ...

    def sampled_history(
        self, entity: str, project: str, run_id: str, keys: list[str], samples: int
    ) -> list[dict[str, Any]]: ...


@dataclass
class Context:
    """The services handlers may use besides the store."""

    settings: HandlerSettings
    wandb_client: Callable[[], WandbClient] | None = None
    # Visits a verified SubscriptionConfirmation's SubscribeURL (the web process checked it first).
    confirm_subscription: Callable[[dict[str, Any]], None] | None = None


Event = TypeVar("Event", bound=BaseModel)

# A handler of one event kind: it takes that kind's model.
Handler = Callable[[Event, Context], Outcome]


@dataclass(frozen=True)
class Route(Generic[Event]):
    """An event kind's model and its handler, which the type checker sees agree."""

    model: type[Event]
    handler: Handler[Event]
    # Work done before the event's unit of work begins, outside any transaction.
    prepare: Callable[[Event], None] | None = None

    def __call__(self, event: BaseModel, context: Context) -> Outcome:
        """Run the handler on ``event``, which must be the model of the route's kind."""
        if not isinstance(event, self.model):
            raise TypeError(
                f"{self.handler.__name__} takes a {self.model.__name__}, not a {type(event).__name__}"
            )
        return self.handler(event, context)

    def prepare_event(self, event: BaseModel) -> None:
        """Do the work ``prepare`` does ahead of the handler, if any."""
        if self.prepare is not None and isinstance(event, self.model):
            self.prepare(event)


def outcome(changed: bool) -> Outcome:
    return Outcome.APPLIED if changed else Outcome.UNCHANGED
