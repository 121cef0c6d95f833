"""/api/pareto and /api/compare with scaffolds=N: the front runs' and best runs' top scaffolds."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from flask.testing import FlaskClient

import store
from testkit.factory import generate_runs, generate_scaffolds, molecule_batches
from tests.web.conftest import READ

RUNS = 40


@pytest.fixture
def loaded(client: FlaskClient) -> list[str]:
    """Generated runs with objectives; every other run also generated molecules."""
    records = list(generate_runs(RUNS, seed=11))
    store.load_runs(records)
    pool = generate_scaffolds(30, seed=2)
    run_ids = [record["run_id"] for record in records]
    for index, run_id in enumerate(run_ids[::2]):
        for batch in molecule_batches(run_id, 2, size=30, scaffolds=pool, seed=index):
            store.record_molecules(run_id, batch["batch_id"], batch["step"], batch["molecules"])
    return run_ids


def get(client: FlaskClient, path: str, status: int = 200, **params: Any) -> Any:
    response = client.get(path, query_string=params, headers=READ)
    assert response.status_code == status, response.get_json()
    return response.get_json()


def expected(run_id: str, per_run: int, order_by: str = "molecules") -> list[tuple[str, int, Any]]:
    """A run's top scaffolds as the run's own scaffold list orders them, acyclic molecules aside."""
    rows = [row for row in store.get_run_scaffolds(run_id, order_by, limit=None) if row["scaffold"]]
    return [(row["scaffold"], row["molecules"], row["best_reward"]) for row in rows[:per_run]]


def shown(scaffolds: list[dict[str, Any]]) -> list[tuple[str, int, Any]]:
    return [(row["scaffold"], row["molecules"], row["best_reward"]) for row in scaffolds]


@pytest.mark.parametrize("order_by", ["molecules", "best_reward"])
def test_each_front_run_comes_with_its_top_scaffolds(
    client: FlaskClient, loaded: list[str], order_by: str
) -> None:
    plain = get(client, "/api/pareto", objectives="COMT_activity,DRD5_activity")
    answer = get(
        client,
        "/api/pareto",
        objectives="COMT_activity,DRD5_activity",
        scaffolds=3,
        scaffolds_order_by=order_by,
    )

    assert [member["run_id"] for member in answer["front"]] == [m["run_id"] for m in plain["front"]]
    assert any(member["scaffolds"] for member in answer["front"])
    for member in answer["front"]:
        assert shown(member["scaffolds"]) == expected(member["run_id"], 3, order_by)
    assert all("scaffolds" not in member for member in plain["front"])


def test_each_scaffold_links_to_its_depiction_which_the_app_draws(
    client: FlaskClient, loaded: list[str]
) -> None:
    answer = get(client, "/api/pareto", objectives="COMT_activity,DRD5_activity", scaffolds=5)
    scaffold = next(s for member in answer["front"] for s in member["scaffolds"])

    url = urlsplit(scaffold["depiction_url"])
    assert url.path == "/api/scaffold.svg" and parse_qs(url.query) == {"smiles": [scaffold["scaffold"]]}
    drawn = client.get(scaffold["depiction_url"], headers=READ)
    assert drawn.status_code == 200 and drawn.mimetype == "image/svg+xml"


def test_each_groups_best_run_comes_with_its_top_scaffolds(client: FlaskClient, loaded: list[str]) -> None:
    plain = get(client, "/api/compare", objective="DRD5_activity")
    answer = get(
        client, "/api/compare", objective="DRD5_activity", scaffolds=2, scaffolds_order_by="best_reward"
    )

    assert [group["best_run_id"] for group in answer["groups"]] == [g["best_run_id"] for g in plain["groups"]]
    for group in answer["groups"]:
        assert shown(group["best_run_scaffolds"]) == expected(group["best_run_id"], 2, "best_reward")
    with_molecules = set(loaded[::2])
    assert any(group["best_run_scaffolds"] for group in answer["groups"]) == any(
        group["best_run_id"] in with_molecules for group in answer["groups"]
    )
    assert all("best_run_scaffolds" not in group for group in plain["groups"])


def test_scaffolds_zero_adds_none(client: FlaskClient, loaded: list[str]) -> None:
    front = get(client, "/api/pareto", objectives="COMT_activity,DRD5_activity", scaffolds=0)["front"]
    groups = get(client, "/api/compare", objective="DRD5_activity", scaffolds=0)["groups"]

    assert all("scaffolds" not in member for member in front)
    assert all("best_run_scaffolds" not in group for group in groups)


@pytest.mark.parametrize("path", ["/api/pareto", "/api/compare"])
@pytest.mark.parametrize(
    ("params", "parameter", "message"),
    [
        ({"scaffolds": "-1"}, "scaffolds", "scaffolds: must be an integer from 0 to 50, not -1"),
        ({"scaffolds": "51"}, "scaffolds", "scaffolds: must be an integer from 0 to 50, not 51"),
        ({"scaffolds": "three"}, "scaffolds", "scaffolds: must be an integer from 0 to 50, not 'three'"),
        (
            {"scaffolds": "3", "scaffolds_order_by": "runs"},
            "scaffolds_order_by",
            "scaffolds_order_by: must be one of molecules, best_reward, not 'runs'",
        ),
    ],
)
def test_bad_scaffold_options_get_400_naming_them(
    client: FlaskClient, loaded: list[str], path: str, params: dict[str, str], parameter: str, message: str
) -> None:
    question = (
        {"objectives": "COMT_activity,DRD5_activity"} if path == "/api/pareto" else {"objective": "QED"}
    )

    body = get(client, path, 400, **question, **params)

    assert (body["error"], body["parameter"], body["message"]) == ("bad_parameter", parameter, message)


def test_the_openapi_document_describes_the_option(client: FlaskClient) -> None:
    document = client.get("/openapi.json").get_json()
    for path in ("/api/pareto", "/api/compare"):
        parameters = {p["name"]: p for p in document["paths"][path]["get"]["parameters"]}
        assert parameters["scaffolds"]["schema"] == {"type": "integer", "minimum": 0, "maximum": 50}
        assert parameters["scaffolds_order_by"]["schema"]["enum"] == ["molecules", "best_reward"]
