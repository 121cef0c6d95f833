"""The top scaffolds of a set of runs in one query (the Pareto and compare pages' scaffold view)."""

from __future__ import annotations

from typing import Any

import pytest

import store
from store.chemistry import analyse
from testkit.factory import generate_scaffolds, molecule_batches
from tests.molecules import (
    ASPIRIN,
    BENZENE,
    CAFFEINE,
    NICOTINE,
    NICOTINE_SCAFFOLD,
    OCTANOIC_ACID,
    XANTHINE_SCAFFOLD,
)

RUNS = [f"run-{index}" for index in range(6)]


def recorded(runs: list[str]) -> dict[str, dict[str, dict[str, Any]]]:
    """Record generated batches for the runs; return what a brute force makes of them: run -> scaffold -> tally."""
    pool = generate_scaffolds(40, seed=3)
    tallies: dict[str, dict[str, dict[str, Any]]] = {}
    for index, run_id in enumerate(runs):
        tally = tallies.setdefault(run_id, {})
        for batch in molecule_batches(run_id, 3, size=40, scaffolds=pool, seed=index):
            store.record_molecules(run_id, batch["batch_id"], batch["step"], batch["molecules"])
            for molecule in batch["molecules"]:
                structure = analyse(molecule["smiles"])
                if structure is None or not structure.scaffold:
                    continue
                seen = tally.setdefault(structure.scaffold, {"molecules": 0, "best_reward": None})
                seen["molecules"] += 1
                if seen["best_reward"] is None or molecule["reward"] > seen["best_reward"]:
                    seen["best_reward"] = molecule["reward"]
    return tallies


def brute_force(tallies: dict[str, dict[str, Any]], per_run: int, order_by: str) -> list[tuple[str, Any]]:
    if order_by == "molecules":
        ranked = sorted(tallies.items(), key=lambda item: (-item[1]["molecules"], item[0]))
    else:
        ranked = sorted(
            tallies.items(),
            key=lambda item: (item[1]["best_reward"] is None, -(item[1]["best_reward"] or 0), item[0]),
        )
    return [(scaffold, seen[order_by]) for scaffold, seen in ranked[:per_run]]


@pytest.mark.parametrize("order_by", ["molecules", "best_reward"])
@pytest.mark.parametrize("per_run", [1, 3, 50])
def test_each_runs_top_scaffolds_are_what_a_brute_force_ranking_finds(db, order_by, per_run):
    tallies = recorded(RUNS)

    found = store.top_scaffolds_of_runs(RUNS[::-1], per_run, order_by)

    assert list(found) == RUNS[::-1]
    for run_id in RUNS:
        assert [(row["scaffold"], row[order_by]) for row in found[run_id]] == brute_force(
            tallies[run_id], per_run, order_by
        ), run_id
    # The same rows as the run page's, acyclic molecules aside.
    whole = [row for row in store.get_run_scaffolds(RUNS[0], order_by, limit=None) if row["scaffold"]]
    assert found[RUNS[0]] == [{key: row[key] for key in found[RUNS[0]][0]} for row in whole[:per_run]]


def test_only_the_asked_runs_are_read_and_acyclic_or_unknown_runs_have_none(db):
    tallies = recorded(RUNS[:3])
    store.record_molecules("acyclic", "b1", 0, [{"smiles": OCTANOIC_ACID, "reward": 0.9}])

    found = store.top_scaffolds_of_runs([RUNS[1], "acyclic", "nobody", RUNS[1]], 2)

    assert list(found) == [RUNS[1], "acyclic", "nobody"]
    assert [row["scaffold"] for row in found[RUNS[1]]] == [
        scaffold for scaffold, _ in brute_force(tallies[RUNS[1]], 2, "molecules")
    ]
    assert found["acyclic"] == found["nobody"] == []
    assert store.top_scaffolds_of_runs([]) == {}


def test_scaffolds_without_a_reward_come_last_by_best_reward(db):
    store.record_molecules(
        "r1", "b1", 0, [{"smiles": NICOTINE}, {"smiles": NICOTINE}, {"smiles": ASPIRIN, "reward": 0.1}]
    )
    store.record_molecules("r1", "b2", 5, [{"smiles": CAFFEINE, "reward": 0.7}])

    by_molecules = store.top_scaffolds_of_runs(["r1"], 2)["r1"]
    by_reward = store.top_scaffolds_of_runs(["r1"], 5, "best_reward")["r1"]

    # A tie on molecules goes to the smaller SMILES: "O=c1..." sorts before "c1ccccc1".
    assert [(row["scaffold"], row["molecules"]) for row in by_molecules] == [
        (NICOTINE_SCAFFOLD, 2),
        (XANTHINE_SCAFFOLD, 1),
    ]
    assert [row["best_reward"] for row in by_reward] == [0.7, 0.1, None]
    assert by_reward[1] | {"generic_scaffold": None} == {
        "scaffold": BENZENE,
        "generic_scaffold": None,
        "molecules": 1,
        "first_step": 0,
        "last_step": 0,
        "best_reward": 0.1,
        "best_smiles": ASPIRIN,
    }


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (("r1",), "run_ids must be a list"),
        (([1],), "run_ids must be strings"),
        ((["r1"], 0), "per_run must be an integer from 1 to 50"),
        ((["r1"], 51), "per_run must be an integer from 1 to 50"),
        ((["r1"], True), "per_run must be an integer"),
        ((["r1"], 3, "runs"), "unknown order_by 'runs'"),
    ],
)
def test_bad_arguments_are_refused_with_their_problem(db, arguments, message):
    with pytest.raises(ValueError, match=message):
        store.top_scaffolds_of_runs(*arguments)
