"""A fake W&B GraphQL API on 127.0.0.1 that answers the SDK's `Runs` query like the real server."""

from __future__ import annotations

import base64
import json
import operator
import re
import threading
from datetime import UTC, datetime
from typing import Any

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

# The Run fields the real schema offers (the SDK's RUN_FRAGMENT, wandb/apis/public/runs.py). Asking
# for any other, `updatedAt` included, fails the query as the real server does.
RUN_FIELDS = frozenset(
    "id tags name displayName sweepName state config group jobType commit readOnly createdAt heartbeatAt"
    " description notes systemMetrics summaryMetrics historyLineCount user historyKeys projectId".split()
)
FILTER_FIELDS = frozenset({"name", "displayName", "state", "createdAt", "heartbeatAt"})
TIME_FIELDS = frozenset({"createdAt", "heartbeatAt"})
ORDER_FIELDS = {"created_at": "createdAt", "heartbeat_at": "heartbeatAt"}
RANGE_OPERATORS = {"$gt": operator.gt, "$gte": operator.ge, "$lt": operator.lt, "$lte": operator.le}


class GraphQLError(Exception):
    """A query the fake refuses, reported in the answer's `errors` array."""


class FakeWandb:
    """Serve runs added with `add_run` through W&B's GraphQL endpoint."""

    def __init__(self, api_key: str = "test-key") -> None:
        self.api_key = api_key
        self.url = ""
        self.requests: list[dict[str, Any]] = []
        self._runs: dict[tuple[str, str, str], dict[str, Any]] = {}
        self._histories: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
        self._failures: list[int] = []
        self._holds = 0
        self.holding = threading.Event()
        self._released = threading.Event()
        self._lock = threading.Lock()
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None

    def __enter__(self) -> FakeWandb:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def start(self) -> FakeWandb:
        """Listen on an ephemeral port in a daemon thread."""
        # Threaded: a request held back (hold_next) must not keep the others waiting.
        self._server = make_server("127.0.0.1", 0, self._wsgi, threaded=True, request_handler=_QuietHandler)
        self.url = f"http://127.0.0.1:{self._server.port}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the listening socket."""
        if self._server is None or self._thread is None:
            return
        self.release()
        self._server.shutdown()
        self._thread.join()
        self._server.server_close()
        self._server = self._thread = None

    def add_run(
        self,
        entity: str,
        project: str,
        run_id: str,
        *,
        config: dict[str, Any],
        summary: dict[str, Any] | None = None,
        state: str = "finished",
        display_name: str | None = None,
        created_at: datetime | None = None,
        updated_at: datetime | None = None,
        tags: tuple[str, ...] | list[str] = (),
        commit: str | None = None,
        history: list[dict[str, Any]] | None = None,
    ) -> None:
        """Add or replace a run; `updated_at` becomes its heartbeat, W&B's only update time.

        `history` is the rows the run logged, each `{"_step": n, "_timestamp": t, key: value...}`.
        """
        created = _whole_seconds(created_at or datetime.now(UTC))
        raw_config = {key: {"desc": None, "value": value} for key, value in config.items()}
        raw_config["_wandb"] = {"desc": None, "value": {"cli_version": "0.17.0", "python_version": "3.11"}}
        node = {
            "id": base64.b64encode(f"Run:v1:{run_id}:{project}:{entity}".encode()).decode(),
            "name": run_id,
            "displayName": display_name,
            "state": state,
            # W&B sends both as JSON strings; json.dumps writes NaN and Infinity as bare tokens.
            "config": json.dumps({**raw_config, "wandb_version": 1}),
            "summaryMetrics": json.dumps(summary or {}),
            "createdAt": created,
            "heartbeatAt": _whole_seconds(updated_at) if updated_at else created,
            "tags": list(tags),
            "commit": commit,
            "user": {"name": entity, "username": entity},
            "historyLineCount": len(history or []),
            "historyKeys": _history_keys(history or []),
        }
        with self._lock:
            self._runs[(entity, project, run_id)] = node
            self._histories[(entity, project, run_id)] = list(history or [])

    def fail_next(self, count: int, status: int = 500) -> None:
        """Answer the next `count` requests with HTTP `status` before looking at them."""
        with self._lock:
            self._failures.extend([status] * count)

    def hold_next(self, count: int = 1) -> None:
        """Keep the next `count` requests waiting, unanswered, until `release` (a slow W&B)."""
        with self._lock:
            self._holds += count

    def release(self) -> None:
        """Let every held request be answered, and those to come."""
        self._released.set()

    def _wsgi(self, environ: dict[str, Any], start_response: Any) -> Any:
        return self._respond(Request(environ))(environ, start_response)

    def _respond(self, request: Request) -> Response:
        if request.path != "/graphql" or request.method != "POST":
            return _json({"errors": [{"message": "not found"}]}, 404)
        try:
            body = json.loads(request.get_data())
            query, variables = body["query"], body.get("variables") or {}
        except (ValueError, KeyError, TypeError):
            return _json({"errors": [{"message": "request body must be a GraphQL JSON object"}]}, 400)
        with self._lock:
            held, self._holds = self._holds > 0, max(self._holds - 1, 0)
        if held:
            self.holding.set()
            self._released.wait(120)
        with self._lock:
            self.requests.append({"query": query, "variables": variables})
            failure = self._failures.pop(0) if self._failures else None
        if failure is not None:
            return _json({"errors": [{"message": f"injected failure {failure}"}]}, failure)
        expected = "Basic " + base64.b64encode(f"api:{self.api_key}".encode()).decode()
        if request.headers.get("Authorization") != expected:
            return _json({"errors": [{"message": "user is not logged in"}]}, 401)
        try:
            if "sampledHistory" in query:
                return _json({"data": self._sampled_history_query(query, variables)}, 200)
            return _json({"data": self._runs_query(query, variables)}, 200)
        except GraphQLError as exc:
            return _json({"errors": [{"message": str(exc)}], "data": None}, 200)

    def _runs_query(self, query: str, variables: dict[str, Any]) -> dict[str, Any]:
        if not re.search(r"project\s*\(\s*name:\s*\$project\s*,\s*entityName:\s*\$entity\s*\)", query):
            raise GraphQLError("the fake only answers project(name: $project, entityName: $entity)")
        if not re.search(
            r"runs\s*\(\s*filters:\s*\$filters\s*,\s*after:\s*\$cursor\s*,\s*first:\s*\$perPage\s*,"
            r"\s*order:\s*\$order\s*\)",
            query,
        ):
            raise GraphQLError("the fake only answers runs(filters:, after:, first:, order:)")
        fields = _run_selection(query)
        entity, project = variables["entity"], variables["project"]
        with self._lock:
            runs = [node for (e, p, _), node in self._runs.items() if (e, p) == (entity, project)]
        # W&B answers a missing project with `project: null`; here a project exists once it has a run.
        if not runs:
            return {"project": None}
        runs = [node for node in runs if _matches(node, json.loads(variables.get("filters") or "{}"))]
        runs = _ordered(runs, variables.get("order") or "+created_at")
        start = int(base64.b64decode(variables["cursor"])) if variables.get("cursor") else 0
        page = runs[start : start + int(variables.get("perPage") or 50)]
        edges = [
            {"node": {field: node.get(field) for field in fields}, "cursor": _cursor(start + i + 1)}
            for i, node in enumerate(page)
        ]
        end = start + len(page)
        info = {"endCursor": _cursor(end) if page else None, "hasNextPage": end < len(runs)}
        return {"project": {"runs": {"edges": edges, "pageInfo": info}}}

    def _sampled_history_query(self, query: str, variables: dict[str, Any]) -> dict[str, Any]:
        """Answer the SDK's RunSampledHistory query: per spec, the rows holding all its keys, at most
        `samples` of them spread evenly (W&B picks its own sample; the first and last are kept here)."""
        if not re.search(
            r"project\s*\(\s*name:\s*\$project\s*,\s*entityName:\s*\$entity\s*\)\s*\{\s*"
            r"run\s*\(\s*name:\s*\$name\s*\)\s*\{\s*sampledHistory\s*\(\s*specs:\s*\$specs\s*\)\s*\}",
            query,
        ):
            raise GraphQLError(
                "the fake only answers project(...) { run(name: $name) { sampledHistory(specs: $specs) } }"
            )
        key = (variables["entity"], variables["project"], variables["name"])
        with self._lock:
            if not any((e, p) == key[:2] for e, p, _ in self._runs):
                return {"project": None}
            if key not in self._runs:
                return {"project": {"run": None}}
            history = list(self._histories[key])
        answers = []
        for text in variables["specs"]:
            spec = json.loads(text)
            keys, samples = spec["keys"], int(spec.get("samples", 500))
            rows = [{k: row[k] for k in keys} for row in history if all(k in row for k in keys)]
            if len(rows) > samples:
                picks = sorted({round(i * (len(rows) - 1) / max(samples - 1, 1)) for i in range(samples)})
                rows = [rows[i] for i in picks]
            answers.append(rows)
        return {"project": {"run": {"sampledHistory": answers}}}


def _history_keys(history: list[dict[str, Any]]) -> dict[str, Any]:
    """Describe the keys of a run's history as W&B's `historyKeys` does."""
    counts: dict[str, int] = {}
    for row in history:
        for key in row:
            counts[key] = counts.get(key, 0) + 1
    steps = [row["_step"] for row in history if "_step" in row]
    return {
        "keys": {key: {"typeCounts": [{"type": "number", "count": n}]} for key, n in counts.items()},
        "lastStep": max(steps, default=0),
    }


class _QuietHandler(WSGIRequestHandler):
    def log(self, type: str, message: str, *args: Any) -> None:
        """Keep werkzeug's per-request log lines out of test output."""


def _json(payload: dict[str, Any], status: int) -> Response:
    return Response(json.dumps(payload), status=status, mimetype="application/json")


def _whole_seconds(stamp: datetime) -> str:
    """Format like W&B: UTC, whole seconds, no zone designator."""
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=UTC)
    return stamp.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")


def _cursor(offset: int) -> str:
    return base64.b64encode(str(offset).encode()).decode()


def _run_selection(query: str) -> set[str]:
    """Return the Run fields the query selects on `node`, following fragment spreads."""
    node = re.search(r"\bnode\s*\{", query)
    if node is None:
        raise GraphQLError("runs must select edges { node { ... } }")
    fields: set[str] = set()
    for name in _top_level_names(_braced(query, node.end())):
        if name.startswith("..."):
            fragment = re.search(rf"fragment\s+{re.escape(name[3:])}\s+on\s+Run\s*\{{", query)
            if fragment is None:
                raise GraphQLError(f"unknown fragment {name[3:]}")
            fields |= set(_top_level_names(_braced(query, fragment.end())))
        else:
            fields.add(name)
    unknown = fields - RUN_FIELDS
    if unknown:
        raise GraphQLError(f'Cannot query field "{sorted(unknown)[0]}" on type "Run".')
    return fields


def _braced(text: str, start: int) -> str:
    """Return the text from `start` up to the brace closing the one just before it."""
    depth = 1
    for index in range(start, len(text)):
        depth += {"{": 1, "}": -1}.get(text[index], 0)
        if depth == 0:
            return text[start:index]
    raise GraphQLError("unbalanced braces")


def _top_level_names(selection: str) -> list[str]:
    flat = selection
    while re.search(r"\{[^{}]*\}", flat):
        flat = re.sub(r"\{[^{}]*\}", " ", flat)
    return re.findall(r"(?:\.\.\.\s*)?[A-Za-z_]\w*", re.sub(r"\.\.\.\s+", "...", flat))


def _matches(node: dict[str, Any], condition: dict[str, Any]) -> bool:
    """Evaluate the Mongo-style subset of W&B run filters that the fake supports."""
    for key, expected in condition.items():
        if key == "$and":
            ok = all(_matches(node, part) for part in expected)
        elif key == "$or":
            ok = any(_matches(node, part) for part in expected)
        elif key in FILTER_FIELDS:
            ok = _compare(key, node[key], expected)
        else:
            raise GraphQLError(f"unsupported filter field {key!r}")
        if not ok:
            return False
    return True


def _compare(field: str, value: Any, expected: Any) -> bool:
    if not isinstance(expected, dict):
        expected = {"$eq": expected}
    if field in TIME_FIELDS:
        value = _filter_time(value + "Z") if value else None
    for op, operand in expected.items():
        if field in TIME_FIELDS:
            operand = [_filter_time(o) for o in operand] if op in ("$in", "$nin") else _filter_time(operand)
        if op == "$eq":
            ok = value == operand
        elif op == "$ne":
            ok = value != operand
        elif op == "$in":
            ok = value in operand
        elif op == "$nin":
            ok = value not in operand
        elif op in RANGE_OPERATORS:
            # As in MongoDB, a missing value satisfies no range comparison.
            ok = value is not None and RANGE_OPERATORS[op](value, operand)
        else:
            raise GraphQLError(f"unsupported filter operator {op!r}")
        if not ok:
            return False
    return True


def _filter_time(text: str) -> datetime:
    """Parse a filter timestamp; a zoneless one is refused, where W&B silently matches nothing."""
    try:
        stamp = datetime.fromisoformat(text)
    except (TypeError, ValueError) as exc:
        raise GraphQLError(f"invalid timestamp {text!r}") from exc
    if stamp.tzinfo is None:
        raise GraphQLError(f"timestamp {text!r} has no zone")
    return stamp


def _ordered(runs: list[dict[str, Any]], order: str) -> list[dict[str, Any]]:
    descending = order.startswith("-")
    field = ORDER_FIELDS.get(order.lstrip("+-"))
    if field is None:
        raise GraphQLError(f"unsupported order {order!r}")
    # Ties break on the run name so that paging is deterministic.
    return sorted(runs, key=lambda node: (node[field] or "", node["name"]), reverse=descending)
