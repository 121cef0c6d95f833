"""/api/runs/<id>/scaffolds, /api/scaffolds, /api/diversity and /api/scaffold.svg through the real app."""

from __future__ import annotations

from typing import Any

import pytest
from flask.testing import FlaskClient
from rdkit import Chem

import store
from store import scaffolds
from testkit.factory import generate_scaffolds, molecule_batches
from tests.molecules import ASPIRIN, BENZENE, CAFFEINE, NICOTINE, NICOTINE_SCAFFOLD, XANTHINE_SCAFFOLD
from tests.web.conftest import READ


@pytest.fixture(autouse=True)
def fresh_library(monkeypatch: pytest.MonkeyPatch) -> None:
    """Give each test its own substructure library: tests empty the database, production never does."""
    monkeypatch.setattr(scaffolds, "_libraries", {})


@pytest.fixture
def three_runs(client: FlaskClient) -> None:
    for run_id, method in (("r1", "mgda"), ("r2", "mgda"), ("r3", "pcgrad")):
        store.insert_run(run_id, config_dict={"training": {"gradient_method": method}})
    for run_id, reward in (("r1", 0.3), ("r2", 0.8), ("r3", 0.5)):
        store.record_molecules(run_id, "b1", 0, [{"smiles": ASPIRIN, "reward": reward}, {"smiles": NICOTINE}])
    store.record_molecules("r1", "b2", 10, [{"smiles": CAFFEINE, "reward": 0.95}, {"smiles": "CCCC"}])


def get(client: FlaskClient, path: str, status: int = 200, **params: Any) -> Any:
    response = client.get(path, query_string=params, headers=READ)
    assert response.status_code == status, response.get_json()
    return response.get_json()


def test_a_runs_scaffolds_come_with_its_counts_in_each_order(client: FlaskClient, three_runs: None) -> None:
    body = get(client, "/api/runs/r1/scaffolds")
    assert body["molecules"]["valid"] == 4 and body["molecules"]["distinct_scaffolds"] == 3
    assert {row["scaffold"]: row["molecules"] for row in body["scaffolds"]} == {
        BENZENE: 1,
        NICOTINE_SCAFFOLD: 1,
        XANTHINE_SCAFFOLD: 1,
        "": 1,
    }
    by_reward = get(client, "/api/runs/r1/scaffolds", order_by="best_reward", limit=2)["scaffolds"]
    assert [(row["scaffold"], row["best_reward"]) for row in by_reward] == [
        (XANTHINE_SCAFFOLD, 0.95),
        (BENZENE, 0.3),
    ]
    by_step = get(client, "/api/runs/r1/scaffolds", order_by="first_step")["scaffolds"]
    assert by_step[-1]["first_step"] == 10


def test_a_run_without_molecules_has_none_and_an_unknown_run_is_404(
    client: FlaskClient, three_runs: None
) -> None:
    store.insert_run("quiet")
    assert get(client, "/api/runs/quiet/scaffolds") | {"query_ms": 0} == {
        "run_id": "quiet",
        "molecules": None,
        "order_by": "molecules",
        "scaffolds": [],
        "query_ms": 0,
    }
    assert get(client, "/api/runs/nobody/scaffolds", 404)["error"] == "not_found"


def test_scaffolds_across_runs_follow_filter_order_and_min_runs(
    client: FlaskClient, three_runs: None
) -> None:
    top = get(client, "/api/scaffolds")["scaffolds"]
    assert [(row["scaffold"], row["runs"]) for row in top] == [
        (BENZENE, 3),
        (NICOTINE_SCAFFOLD, 3),
        (XANTHINE_SCAFFOLD, 1),
    ]
    assert (top[0]["best_reward"], top[0]["best_run_id"]) == (0.8, "r2")
    assert [
        row["scaffold"]
        for row in get(client, "/api/scaffolds", min_runs=2, order_by="best_reward")["scaffolds"]
    ] == [BENZENE]
    mgda = get(client, "/api/scaffolds", filter="gradient_method = 'pcgrad'")["scaffolds"]
    assert [(row["scaffold"], row["runs"], row["best_run_id"]) for row in mgda] == [
        (BENZENE, 1, "r3"),
        (NICOTINE_SCAFFOLD, 1, None),
    ]


def test_contains_finds_what_a_brute_force_match_finds(client: FlaskClient) -> None:
    pool = generate_scaffolds(200, seed=5)
    for index in range(4):
        run_id = f"run-{index}"
        for batch in molecule_batches(run_id, 2, size=50, scaffolds=pool, seed=index):
            store.record_molecules(run_id, batch["batch_id"], batch["step"], batch["molecules"])
    stored = {row["scaffold"] for row in store.query_scaffolds(limit=None)}
    for pattern, query in (
        ("c1ccncc1", Chem.MolFromSmiles("c1ccncc1")),
        ("C1CCNCC1", Chem.MolFromSmiles("C1CCNCC1")),
        ("[#7]1:[#6]:[#6]:[#6]:[#6]:1", Chem.MolFromSmarts("[#7]1:[#6]:[#6]:[#6]:[#6]:1")),
    ):
        expected = {s for s in stored if Chem.MolFromSmiles(s).HasSubstructMatch(query)}
        found = get(client, "/api/scaffolds", contains=pattern, limit=1000)["scaffolds"]
        assert {row["scaffold"] for row in found} == expected, pattern
        assert all(row["found_by"] for row in found)
        runs = [row["runs"] for row in found]
        assert runs == sorted(runs, reverse=True)


def test_diversity_groups_runs_by_gradient_method(client: FlaskClient, three_runs: None) -> None:
    body = get(client, "/api/diversity")
    assert body["by"] == "gradient_method"
    groups = {group["key"]: group for group in body["groups"]}
    assert groups["mgda"]["runs"] == 2 and groups["mgda"]["valid_molecules"] == 6
    assert groups["mgda"]["mean_scaffolds_per_run"] == 2.5
    assert groups["pcgrad"]["scaffolds_per_1000_valid"] == 1000.0
    only = get(client, "/api/diversity", filter="run_id = 'r3'")["groups"]
    assert [group["key"] for group in only] == ["pcgrad"]


def test_a_scaffold_is_served_as_svg_with_caching_headers(client: FlaskClient) -> None:
    response = client.get("/api/scaffold.svg", query_string={"smiles": XANTHINE_SCAFFOLD}, headers=READ)
    assert response.status_code == 200 and response.mimetype == "image/svg+xml"
    assert "</svg>" in response.get_data(as_text=True)
    assert response.headers["Cache-Control"] == "private, max-age=86400"
    again = client.get(
        "/api/scaffold.svg",
        query_string={"smiles": XANTHINE_SCAFFOLD},
        headers={**READ, "If-None-Match": response.headers["ETag"]},
    )
    assert again.status_code == 304


def test_the_depiction_needs_a_reader(client: FlaskClient) -> None:
    response = client.get("/api/scaffold.svg", query_string={"smiles": BENZENE})
    assert response.status_code == 401 and response.get_json()["error"] == "missing_token"


@pytest.mark.parametrize(
    ("path", "params", "parameter", "words"),
    [
        ("/api/scaffolds", {"contains": "C1CC(("}, "contains", "neither as SMILES nor as SMARTS"),
        (
            "/api/scaffolds",
            {"contains": "c1ccccc1", "filter": "status = 'running'"},
            "contains",
            "without filter",
        ),
        ("/api/scaffolds", {"order_by": "molecules"}, "order_by", "runs, best_reward"),
        ("/api/scaffolds", {"min_runs": "0"}, "min_runs", "from 1"),
        ("/api/scaffolds", {"filter": "gradient_method =="}, "filter", "filter:"),
        ("/api/runs/r1/scaffolds", {"order_by": "runs"}, "order_by", "first_step"),
        ("/api/runs/r1/scaffolds", {"limit": "1001"}, "limit", "1000"),
        ("/api/diversity", {"by": "colour"}, "by", "unknown field"),
        ("/api/diversity", {"by": "config.a.b"}, "by", "not a JSON path"),
        ("/api/scaffold.svg", {"smiles": "C1CC"}, "smiles", "cannot parse"),
        ("/api/scaffold.svg", {}, "smiles", "name the scaffold"),
    ],
)
def test_bad_parameters_are_400_naming_the_problem(
    client: FlaskClient, three_runs: None, path: str, params: dict[str, str], parameter: str, words: str
) -> None:
    body = get(client, path, 400, **params)
    assert body["error"] == "bad_parameter" and body["parameter"] == parameter
    assert words in body["message"]
