"""Read runs from the W&B GraphQL API, the way the official SDK's `wandb.Api().runs()` does."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import requests

# Same operation shape as the SDK's `Runs` query (wandb/apis/public/runs.py, `_create_runs_query`
# and `RUN_FRAGMENT`), trimmed to the fields we store. W&B's Run type has no `updatedAt`: the SDK's
# run fragments only read `createdAt` and `heartbeatAt`, and asking for an unknown field fails the
# whole query.
RUNS_QUERY = """
query Runs($project: String!, $entity: String!, $cursor: String, $perPage: Int = 50, $order: String,
           $filters: JSONString) {
  project(name: $project, entityName: $entity) {
    runs(filters: $filters, after: $cursor, first: $perPage, order: $order) {
      edges {
        node { ...RunFragment }
        cursor
      }
      pageInfo { endCursor hasNextPage }
    }
  }
}
fragment RunFragment on Run {
  id name displayName state config summaryMetrics createdAt heartbeatAt tags commit
  historyLineCount historyKeys
  user { name username }
}
"""

# The SDK's query for a sample of a run's history (wandb/apis/public/runs.py, `_sampled_history`).
# The answer holds one list of rows per spec, each row `{"_step": ..., key: value, ...}`.
SAMPLED_HISTORY_QUERY = """
query RunSampledHistory($project: String!, $entity: String!, $name: String!, $specs: [JSONString!]!) {
  project(name: $project, entityName: $entity) {
    run(name: $name) { sampledHistory(specs: $specs) }
  }
}
"""

# The SDK's default order, chosen by W&B so pages stay stable while runs change (wandb/wandb#7675,
# #10130). Ordering by heartbeat would move every live run to the end between two page requests.
RUNS_ORDER = "+created_at"

# Keys the SDK moves out of `run.config` into `run.rawconfig` (runs.py, WANDB_INTERNAL_KEYS).
INTERNAL_CONFIG_KEYS = frozenset({"_wandb", "wandb_version"})

MAX_RETRY_AFTER = 60.0


@dataclass(frozen=True)
class WandbRun:
    """One W&B run as the API reports it, with config and summary decoded."""

    entity: str
    project: str
    run_id: str
    display_name: str | None
    state: str
    config: dict[str, Any]
    summary: dict[str, Any]
    created_at: datetime | None
    heartbeat_at: datetime | None
    # The latest of heartbeat_at and created_at: the instant the updated-since filter compares.
    updated_at: datetime | None
    tags: tuple[str, ...]
    commit: str | None
    user: str | None
    # How many rows the run logged to its history, and the keys they hold.
    history_lines: int = 0
    history_keys: tuple[str, ...] = ()


class WandbApiError(Exception):
    """The W&B API could not be reached or answered with an error."""


class WandbClient:
    """Query the W&B GraphQL API with retries."""

    def __init__(
        self,
        base_url: str = "https://api.wandb.ai",
        api_key: str | None = None,
        session: requests.Session | None = None,
        timeout: float = 30.0,
        per_page: int = 50,
        *,
        retries: int = 4,
        backoff: float = 0.5,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.url = base_url.rstrip("/") + "/graphql"
        self.api_key = api_key
        self.session = session or requests.Session()
        self._owns_session = session is None
        self.timeout = timeout
        self.per_page = per_page
        self.retries = retries
        self.backoff = backoff
        self.sleep = sleep

    def __enter__(self) -> WandbClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the HTTP session if this client created it."""
        if self._owns_session:
            self.session.close()

    def runs(self, entity: str, project: str, updated_since: datetime | None = None) -> Iterator[WandbRun]:
        """Yield every run of the project, or those updated at or after `updated_since`."""
        variables: dict[str, Any] = {
            "entity": entity,
            "project": project,
            "perPage": self.per_page,
            "order": RUNS_ORDER,
            "filters": json.dumps(updated_since_filter(updated_since) if updated_since else {}),
            "cursor": None,
        }
        while True:
            data = self.execute(RUNS_QUERY, variables)
            if data.get("project") is None:
                raise WandbApiError(f"W&B project {entity}/{project} not found")
            page = data["project"]["runs"]
            for edge in page["edges"]:
                yield parse_run(entity, project, edge["node"])
            info = page["pageInfo"]
            if not info["hasNextPage"]:
                return
            if not info["endCursor"] or info["endCursor"] == variables["cursor"]:
                raise WandbApiError(f"W&B paging of {entity}/{project} did not advance")
            variables["cursor"] = info["endCursor"]

    def sampled_history(
        self, entity: str, project: str, run_id: str, keys: list[str], samples: int
    ) -> list[dict[str, Any]]:
        """Return a sample of at most ``samples`` rows of the run's history per key, merged by step.

        One spec per key: W&B samples the rows that hold every key of a spec, and keys logged at
        different steps would otherwise leave nothing in common.
        """
        if not keys:
            return []
        specs = [json.dumps({"keys": ["_step", "_timestamp", key], "samples": samples}) for key in keys]
        variables = {"entity": entity, "project": project, "name": run_id, "specs": specs}
        run = (self.execute(SAMPLED_HISTORY_QUERY, variables).get("project") or {}).get("run")
        if run is None:
            raise WandbApiError(f"W&B run {entity}/{project}/{run_id} not found")
        answers = run.get("sampledHistory")
        if not isinstance(answers, list) or len(answers) != len(specs):
            raise WandbApiError("W&B answered sampledHistory without one list of rows per spec")
        rows: dict[Any, dict[str, Any]] = {}
        for key, answer in zip(keys, answers, strict=True):
            for row in answer if isinstance(answer, list) else []:
                step = row.get("_step") if isinstance(row, dict) else None
                if isinstance(step, bool) or not isinstance(step, int | float) or step != step:
                    continue
                merged = rows.setdefault(step, {"_step": step})
                if "_timestamp" in row:
                    merged.setdefault("_timestamp", row["_timestamp"])
                if key in row:
                    merged[key] = row[key]
        return [rows[step] for step in sorted(rows)]

    def execute(self, query: str, variables: dict[str, Any]) -> dict[str, Any]:
        """Run one GraphQL operation and return its `data`."""
        response = self._post({"query": query, "variables": variables})
        if response.status_code in (401, 403):
            raise WandbApiError(f"W&B rejected the API key (HTTP {response.status_code})")
        try:
            body = response.json()
        except ValueError as exc:
            raise WandbApiError(
                f"W&B answered HTTP {response.status_code} with a non-JSON body: {response.text[:200]!r}"
            ) from exc
        errors = body.get("errors") if isinstance(body, dict) else None
        if errors:
            messages = "; ".join(str(error.get("message", error)) for error in errors)
            raise WandbApiError(f"W&B GraphQL error (HTTP {response.status_code}): {messages}")
        if not response.ok:
            raise WandbApiError(f"W&B answered HTTP {response.status_code}: {response.text[:200]}")
        if not isinstance(body, dict) or not isinstance(body.get("data"), dict):
            raise WandbApiError("W&B answered without a GraphQL `data` object")
        return body["data"]

    def _post(self, payload: dict[str, Any]) -> requests.Response:
        auth = ("api", self.api_key) if self.api_key else None
        attempt = 0
        while True:
            try:
                response = self.session.post(self.url, json=payload, auth=auth, timeout=self.timeout)
            except (requests.ConnectionError, requests.Timeout) as exc:
                failure, asked_delay = f"unreachable ({exc})", 0.0
            else:
                if response.status_code != 429 and response.status_code < 500:
                    return response
                failure = f"answered HTTP {response.status_code}: {response.text[:200]}"
                asked_delay = _retry_after(response)
            if attempt == self.retries:
                raise WandbApiError(f"W&B {failure}; gave up after {attempt + 1} attempts")
            self.sleep(max(self.backoff * 2**attempt, asked_delay))
            attempt += 1


def updated_since_filter(since: datetime) -> dict[str, Any]:
    """Build the Mongo-style filter for runs created or heartbeating at or after `since`."""
    if since.tzinfo is None:
        raise ValueError("updated_since must be timezone-aware")
    # `createdAt` is a documented filter field (wandb/apis/public/api.py, Api.runs docstring), and
    # `heartbeatAt` is honoured by the server (PostHog's W&B source verified it against the live
    # API). A run's heartbeat advances while it reports and when it ends; a pending run may have
    # none yet, hence the `$or`. W&B matches ISO timestamps with a `Z` suffix, so send exactly
    # that; seconds are floored because W&B stores none and a wider window is harmless.
    stamp = since.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {"$or": [{"createdAt": {"$gte": stamp}}, {"heartbeatAt": {"$gte": stamp}}]}


def parse_run(entity: str, project: str, node: dict[str, Any]) -> WandbRun:
    """Decode one `Run` node of the GraphQL answer."""
    created_at = parse_timestamp(node.get("createdAt"))
    heartbeat_at = parse_timestamp(node.get("heartbeatAt"))
    stamps = [stamp for stamp in (created_at, heartbeat_at) if stamp is not None]
    user = node.get("user") or {}
    return WandbRun(
        entity=entity,
        project=project,
        run_id=node["name"],
        display_name=node.get("displayName"),
        state=str(node.get("state") or "").lower(),
        config=unwrap_config(parse_json_object(node.get("config"), "config")),
        summary=parse_json_object(node.get("summaryMetrics"), "summaryMetrics"),
        created_at=created_at,
        heartbeat_at=heartbeat_at,
        updated_at=max(stamps, default=None),
        tags=tuple(node.get("tags") or ()),
        commit=node.get("commit") or None,
        user=user.get("username") or user.get("name"),
        history_lines=node.get("historyLineCount") or 0,
        history_keys=history_keys(node.get("historyKeys")),
    )


def history_keys(value: Any) -> tuple[str, ...]:
    """Return the keys of a run's history from its `historyKeys`: `{"keys": {name: ...}, "lastStep": n}`,
    sent as an object or as a JSON string."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise WandbApiError(f"W&B sent undecodable historyKeys: {exc}") from exc
    keys = value.get("keys") if isinstance(value, dict) else None
    return tuple(sorted(key for key in keys if isinstance(key, str))) if isinstance(keys, dict) else ()


def parse_json_object(value: Any, field: str) -> dict[str, Any]:
    """Decode a JSONString field as the SDK does, accepting NaN and Infinity tokens."""
    if not value:
        return {}
    try:
        try:
            parsed = json.loads(value)
        except json.JSONDecodeError:
            # The SDK retries non-strict: raw control characters inside strings are tolerated.
            parsed = json.loads(value, strict=False)
    except (TypeError, json.JSONDecodeError) as exc:
        raise WandbApiError(f"W&B sent an undecodable run {field}: {exc}") from exc
    if not isinstance(parsed, dict):
        raise WandbApiError(f"W&B sent a run {field} that is not a JSON object")
    return parsed


def unwrap_config(raw: dict[str, Any]) -> dict[str, Any]:
    """Drop W&B's internal keys and take each `{"desc": ..., "value": ...}` wrapper's value."""
    return {
        key: value["value"] if isinstance(value, dict) and "value" in value else value
        for key, value in raw.items()
        if key not in INTERNAL_CONFIG_KEYS
    }


def parse_timestamp(value: str | None) -> datetime | None:
    """Parse a W&B timestamp as aware UTC; W&B omits the zone on UTC times."""
    if not value:
        return None
    try:
        stamp = datetime.fromisoformat(value)
    except ValueError as exc:
        raise WandbApiError(f"W&B sent an unparseable timestamp {value!r}") from exc
    if stamp.tzinfo is None:
        return stamp.replace(tzinfo=UTC)
    return stamp.astimezone(UTC)


def _retry_after(response: requests.Response) -> float:
    """Read a 429's Retry-After seconds, capped so one answer cannot stall the worker."""
    try:
        return min(float(response.headers.get("Retry-After", 0)), MAX_RETRY_AFTER)
    except ValueError:
        return 0.0
