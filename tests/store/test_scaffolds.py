"""Per-scaffold tracking through the store API: known scaffolds, merging, directions, search."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as examples
from hypothesis import strategies as st
from rdkit import Chem

import store
from store import scaffolds
from store.models import Base
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


@pytest.fixture(autouse=True)
def fresh_library(monkeypatch: pytest.MonkeyPatch) -> None:
    """Give each test its own substructure library: tests empty the database, production never does."""
    monkeypatch.setattr(scaffolds, "_libraries", {})


def by_scaffold(run_id: str) -> dict[str, dict[str, Any]]:
    return {row["scaffold"]: row for row in store.get_run_scaffolds(run_id, limit=None)}


def test_known_molecules_have_their_known_scaffolds(db):
    molecules = [{"smiles": s} for s in (ASPIRIN, NICOTINE, CAFFEINE, OCTANOIC_ACID)]
    assert store.record_molecules("r1", "b1", 10, molecules)

    found = by_scaffold("r1")
    assert set(found) == {BENZENE, NICOTINE_SCAFFOLD, XANTHINE_SCAFFOLD, ""}
    assert found[BENZENE]["generic_scaffold"] == "C1CCCCC1"
    assert found[NICOTINE_SCAFFOLD]["generic_scaffold"] == "C1CCC(C2CCCC2)CC1"
    assert found[""]["best_smiles"] is None
    assert store.get_run_molecules("r1") == {
        "run_id": "r1",
        "molecules": 4,
        "valid": 4,
        "invalid": 0,
        "acyclic": 1,
        "distinct_scaffolds": 3,
        "batches": 1,
    }


def test_invalid_smiles_are_counted_and_never_fail_the_batch(db):
    molecules = [{"smiles": s, "reward": 0.5} for s in ("C1CC", "c1cccc1", "xyz", "", "CC(C", ASPIRIN)]

    assert store.record_molecules("r1", "b1", 0, molecules)

    counts = store.get_run_molecules("r1")
    assert (counts["molecules"], counts["valid"], counts["invalid"]) == (6, 1, 5)
    assert list(by_scaffold("r1")) == [BENZENE]


def test_a_batch_applied_twice_changes_nothing(db):
    batch = next(molecule_batches("r1", 1, size=50))

    assert store.record_molecules("r1", batch["batch_id"], batch["step"], batch["molecules"])
    before = (store.get_run_scaffolds("r1", limit=None), store.get_run_molecules("r1"), store.query_scaffolds())
    assert not store.record_molecules("r1", batch["batch_id"], batch["step"], batch["molecules"])

    after = (store.get_run_scaffolds("r1", limit=None), store.get_run_molecules("r1"), store.query_scaffolds())
    assert after == before


def test_batches_merge_counts_steps_and_the_best_molecule(db):
    store.record_molecules("r1", "b2", 200, [{"smiles": "Oc1ccccc1", "reward": 0.4}])
    store.record_molecules("r1", "b1", 100, [{"smiles": ASPIRIN, "reward": 0.9}, {"smiles": ASPIRIN}])
    store.record_molecules("r1", "b3", 300, [{"smiles": "Nc1ccccc1", "reward": 0.9}])

    benzene = by_scaffold("r1")[BENZENE]
    assert (benzene["molecules"], benzene["first_step"], benzene["last_step"]) == (4, 100, 300)
    # A tie goes to the smaller canonical SMILES, whatever the order of arrival.
    assert (benzene["best_reward"], benzene["best_smiles"]) == (0.9, "CC(=O)Oc1ccccc1C(=O)O")


def test_each_objectives_best_follows_its_direction_even_when_the_launch_comes_later(db):
    molecules = [
        {"smiles": "Oc1ccccc1", "scores": {"QED": 0.2, "SA_score": 1.5}},
        {"smiles": "Nc1ccccc1", "scores": {"QED": 0.8, "SA_score": 4.5}},
        {"smiles": "Fc1ccccc1", "scores": {"QED": 0.5}},
    ]
    store.record_molecules("r1", "b1", 0, molecules)
    config = {
        "objectives": [
            {"name": "QED", "alias": "QED_maximize", "direction": "maximize"},
            {"name": "SA_score", "alias": "SA_score_minimize", "direction": "minimize"},
        ]
    }
    store.insert_run("r1", config_dict=config)

    objectives = by_scaffold("r1")[BENZENE]["objectives"]
    assert objectives["QED"] == {"best": 0.8, "mean": pytest.approx(0.5), "count": 3, "direction": "maximize"}
    assert objectives["SA_score"] == {"best": 1.5, "mean": 3.0, "count": 2, "direction": "minimize"}


def test_a_run_with_no_objective_declared_takes_the_highest_score_as_best(db):
    store.record_molecules("r1", "b1", 0, [{"smiles": "Oc1ccccc1", "scores": {"x": -1}}, {"smiles": "c1ccccc1", "scores": {"x": 2}}])

    assert by_scaffold("r1")[BENZENE]["objectives"]["x"]["best"] == 2


@pytest.mark.parametrize(
    ("molecules", "message"),
    [
        ("CCO", "molecules must be a list"),
        ([{"reward": 1}], r"molecules\[0\].smiles must be a string"),
        ([{"smiles": "CCO", "reward": float("nan")}], r"molecules\[0\].reward must be a finite number"),
        ([{"smiles": "CCO", "reward": True}], r"molecules\[0\].reward must be a finite number"),
        ([{"smiles": "CCO", "scores": {"QED": "high"}}], r"molecules\[0\].scores.QED must be a finite number"),
        ([{"smiles": "CCO", "scores": [1]}], r"molecules\[0\].scores must map"),
        # The whole batch is checked at once; its problem is still named by the molecule's index.
        ([{"smiles": "CCO"}] * 3 + [{"smiles": "CCO", "scores": {"QED": float("inf")}}], r"molecules\[3\].scores.QED"),
        ([{"smiles": "CCO", "scores": {"QED": 0.5}}, {"smiles": "CCO", "scores": {"QED": False}}], r"molecules\[1\]"),
        ([{"smiles": "CCO", "scores": {"": 0.5}}], r"molecules\[0\].scores has an invalid objective name"),
        ([{"smiles": "C" * 4097}], r"molecules\[0\].smiles must be a string of at most"),
        ([{"smiles": "CCO"}, "CCO"], r"molecules\[1\] must be an object"),
    ],
)
def test_a_batch_of_the_wrong_shape_is_refused_with_its_problem(db, molecules, message):
    with pytest.raises(ValueError, match=message):
        store.record_molecules("r1", "b1", 0, molecules)
    assert store.get_run_molecules("r1") is None


def rows_of(run_id: str) -> list[dict[str, Any]]:
    return sorted(by_scaffold(run_id).values(), key=lambda row: row["scaffold"])


def test_a_batch_sums_many_molecules_of_one_scaffold_as_they_would_add_up_one_by_one(db):
    molecules = next(molecule_batches("r1", 1, size=300, scaffolds=[BENZENE, "c1ccncc1"], seed=4))["molecules"]
    molecules += [{"smiles": ASPIRIN, "reward": 2.0}, {"smiles": "Oc1ccccc1", "reward": 2.0}]

    store.record_molecules("whole", "b1", 7, molecules)
    for index, molecule in enumerate(molecules):
        store.record_molecules("one-by-one", f"b{index}", 7, [molecule])

    assert rows_of("whole") == rows_of("one-by-one")
    benzene = by_scaffold("whole")[BENZENE]
    assert benzene["molecules"] > 50
    assert (benzene["best_reward"], benzene["best_smiles"]) == (2.0, "CC(=O)Oc1ccccc1C(=O)O")
    counts = store.get_run_molecules("whole")
    assert {**counts, "run_id": None, "batches": None} == {
        **store.get_run_molecules("one-by-one"),
        "run_id": None,
        "batches": None,
    }


def test_a_batch_of_scaffolds_another_run_has_adds_to_their_totals_once_per_run(db):
    store.record_molecules("r1", "b1", 0, [{"smiles": ASPIRIN, "reward": 0.5}, {"smiles": NICOTINE, "reward": 0.9}])
    store.record_molecules("r2", "b1", 0, [{"smiles": "Oc1ccccc1", "reward": 0.7}, {"smiles": "Nc1ccccc1"}])
    store.record_molecules("r2", "b2", 5, [{"smiles": ASPIRIN, "reward": 0.6}, {"smiles": CAFFEINE}])

    totals = {row["scaffold"]: row for row in store.query_scaffolds(limit=None)}
    assert (totals[BENZENE]["runs"], totals[BENZENE]["molecules"]) == (2, 4)
    assert (totals[BENZENE]["best_reward"], totals[BENZENE]["best_run_id"]) == (0.7, "r2")
    assert (totals[NICOTINE_SCAFFOLD]["runs"], totals[XANTHINE_SCAFFOLD]["runs"]) == (1, 1)
    assert by_scaffold("r2")[BENZENE]["molecules"] == 3
    assert store.get_run_molecules("r2")["distinct_scaffolds"] == 2
    assert store.get_run_molecules("r1")["distinct_scaffolds"] == 2


def test_a_batch_of_more_scaffolds_than_a_statement_takes_merges_them_all(db, monkeypatch):
    monkeypatch.setattr(scaffolds, "_CHUNK", 7)
    pool = generate_scaffolds(40, seed=3)
    store.record_molecules("r1", "b1", 1, [{"smiles": smiles, "reward": 0.5} for smiles in pool])
    store.record_molecules("r1", "b2", 2, [{"smiles": smiles, "scores": {"QED": 1.0}} for smiles in pool])

    rows = by_scaffold("r1")
    assert len(rows) == 40
    assert {(row["molecules"], row["first_step"], row["last_step"], row["best_reward"]) for row in rows.values()} == {
        (2, 1, 2, 0.5)
    }
    assert store.get_run_molecules("r1")["distinct_scaffolds"] == 40
    assert {row["runs"] for row in store.query_scaffolds(limit=None)} == {1}


def test_a_batch_of_other_mappings_and_integers_is_taken_as_the_same_batch_of_json(db):
    from types import MappingProxyType

    plain = [{"smiles": ASPIRIN, "reward": 1.0, "scores": {"QED": 2.0, "SA": None}}, {"smiles": "C1CC"}]
    other = (MappingProxyType({"smiles": ASPIRIN, "reward": 1, "scores": {"QED": 2, "SA": None}}), {"smiles": "C1CC"})

    store.record_molecules("plain", "b1", 0, plain)
    store.record_molecules("other", "b1", 0, other)

    assert rows_of("plain") == rows_of("other")
    assert list(by_scaffold("plain")[BENZENE]["objectives"]) == ["QED"]


_number = st.one_of(st.none(), st.integers(-1000, 1000), st.floats(-1e6, 1e6, allow_nan=False))
_molecule = st.fixed_dictionaries(
    {"smiles": st.sampled_from([ASPIRIN, NICOTINE, CAFFEINE, OCTANOIC_ACID, "Oc1ccccc1", "C1CC", "CCO"])},
    optional={
        "reward": _number,
        "scores": st.one_of(st.none(), st.dictionaries(st.sampled_from(["QED", "SA_score", "DRD5"]), _number)),
    },
)


def test_a_batch_as_json_gives_it_lands_as_the_same_batch_checked_molecule_by_molecule(db):
    """Plain lists and dicts are checked and summed a field at a time, any other sequence of
    mappings one molecule at a time: integers, None and molecules scored on fewer objectives end
    in the same rows either way."""
    from types import MappingProxyType

    @given(st.lists(_molecule, max_size=40))
    @examples(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    def check(molecules: list[dict[str, Any]]) -> None:
        with store.get_engine().begin() as connection:
            for table in reversed(Base.metadata.sorted_tables):
                connection.execute(table.delete())
        store.record_molecules("plain", "b1", 3, molecules)
        store.record_molecules("other", "b1", 3, tuple(map(MappingProxyType, molecules)))
        assert rows_of("plain") == rows_of("other")
        assert {**store.get_run_molecules("plain"), "run_id": None} == {**store.get_run_molecules("other"), "run_id": None}

    check()


def test_deleting_a_run_deletes_its_scaffolds_and_counts(db):
    store.record_molecules("r1", "b1", 0, [{"smiles": ASPIRIN}])
    with store.get_engine().begin() as connection:
        connection.execute(Base.metadata.tables["training_runs"].delete())

    assert store.get_run_scaffolds("r1") == []
    assert store.get_run_molecules("r1") is None


def test_runs_converging_on_a_scaffold_are_counted_across_runs(db):
    for run_id, reward in (("r1", 0.3), ("r2", 0.8), ("r3", 0.5)):
        store.record_molecules(run_id, "b1", 0, [{"smiles": ASPIRIN, "reward": reward}, {"smiles": NICOTINE}])
    store.record_molecules("r1", "b2", 10, [{"smiles": CAFFEINE, "reward": 0.95}])
    store.insert_run("r2", config_dict={"training": {"gradient_method": "mgda"}})

    top = store.query_scaffolds()
    assert [(row["scaffold"], row["runs"], row["molecules"]) for row in top] == [
        (BENZENE, 3, 3),
        (NICOTINE_SCAFFOLD, 3, 3),
        (XANTHINE_SCAFFOLD, 1, 1),
    ]
    assert (top[0]["best_reward"], top[0]["best_run_id"]) == (0.8, "r2")
    assert [row["scaffold"] for row in store.query_scaffolds(min_runs=2, order_by="best_reward")] == [BENZENE]
    assert [row["scaffold"] for row in store.query_scaffolds(order_by="best_reward", limit=1)] == [
        XANTHINE_SCAFFOLD
    ]
    for mgda in ({"gradient_method": "mgda"}, "gradient_method = 'mgda'"):
        assert [(row["scaffold"], row["runs"], row["best_run_id"]) for row in store.query_scaffolds(mgda)] == [
            (BENZENE, 1, "r2"),
            (NICOTINE_SCAFFOLD, 1, None),
        ]
    with pytest.raises(ValueError):
        store.query_scaffolds("gradient_method ==")


def test_diversity_compares_gradient_methods_on_distinct_scaffolds_per_run(db):
    store.insert_run("a", config_dict={"training": {"gradient_method": "mgda"}})
    store.insert_run("b", config_dict={"training": {"gradient_method": "mgda"}})
    store.insert_run("c", config_dict={"training": {"gradient_method": "pcgrad"}})
    store.record_molecules("a", "b1", 0, [{"smiles": s} for s in (ASPIRIN, NICOTINE, CAFFEINE, "C1CC")])
    store.record_molecules("b", "b1", 0, [{"smiles": ASPIRIN}, {"smiles": "Oc1ccccc1"}])
    store.record_molecules("c", "b1", 0, [{"smiles": ASPIRIN}, {"smiles": OCTANOIC_ACID}])

    groups = {row["gradient_method"]: row for row in store.scaffold_diversity()}
    assert groups["mgda"] == {
        "gradient_method": "mgda",
        "runs": 2,
        "valid_molecules": 5,
        "mean_scaffolds_per_run": 2.0,
        "median_scaffolds_per_run": 2.0,
        "scaffolds_per_1000_valid": 800.0,
    }
    assert groups["pcgrad"]["scaffolds_per_1000_valid"] == 500.0
    assert [row["gradient_method"] for row in store.scaffold_diversity(filter={"run_id": "c"})] == ["pcgrad"]
    assert [row["gradient_method"] for row in store.scaffold_diversity(filter="run_id in ('a', 'c')")] == [
        "mgda",
        "pcgrad",
    ]
    with pytest.raises(ValueError, match="unknown field"):
        store.scaffold_diversity(by="colour")


def test_exact_search_reduces_a_molecule_to_its_scaffold(db):
    store.record_molecules("r1", "b1", 0, [{"smiles": ASPIRIN}])
    store.record_molecules("r2", "b1", 0, [{"smiles": "Oc1ccccc1", "reward": 0.5}, {"smiles": NICOTINE}])

    for query in ("c1ccccc1", "Cc1ccccc1", "C1=CC=CC=C1"):
        found = store.find_runs_with_scaffold(query)
        assert [row["scaffold"] for row in found] == [BENZENE]
        assert [run["run_id"] for run in found[0]["found_by"]] == ["r1", "r2"]
    assert store.find_runs_with_scaffold(CAFFEINE) == []
    with pytest.raises(ValueError, match="cannot parse"):
        store.find_runs_with_scaffold("C1CC")


def test_substructure_search_finds_what_a_brute_force_match_finds(db):
    pool = generate_scaffolds(300, seed=3)
    for index in range(6):
        run_id = f"run-{index}"
        for batch in molecule_batches(run_id, 2, size=60, scaffolds=pool, seed=index):
            store.record_molecules(run_id, batch["batch_id"], batch["step"], batch["molecules"])
    stored = {row["scaffold"] for row in store.query_scaffolds(limit=None)}

    smiles = ("c1ccncc1", "C1CCNCC1", "C(=O)N", "c1ccc2ccccc2c1", "C1=CC=CC=C1", "c1ccsc1")
    smarts = ("[#7]1:[#6]:[#6]:[#6]:[#6]:1", "[#16]", "[N,O]~[#6](=O)", "[R2]")
    patterns = [(p, Chem.MolFromSmiles(p)) for p in smiles] + [(p, Chem.MolFromSmarts(p)) for p in smarts]
    for pattern, query in patterns:
        expected = {s for s in stored if Chem.MolFromSmiles(s).HasSubstructMatch(query)}
        found = store.find_runs_with_scaffold(pattern, substructure=True, limit=None)
        assert {row["scaffold"] for row in found} == expected, pattern
        assert all(row["found_by"] for row in found)


def test_a_limited_substructure_search_returns_the_first_matches_by_runs_across_pages(db, monkeypatch):
    monkeypatch.setattr(scaffolds, "_SEARCH_PAGE", 3)
    pool = generate_scaffolds(120, seed=4)
    for index in range(5):
        run_id = f"run-{index}"
        for batch in molecule_batches(run_id, 2, size=50, scaffolds=pool, seed=index):
            store.record_molecules(run_id, batch["batch_id"], batch["step"], batch["molecules"])
    runs = {row["scaffold"]: row["runs"] for row in store.query_scaffolds(limit=None)}

    for pattern in ("c1ccncc1", "C(=O)N", "c1ccccc1", "[#16]", "[R2]", "C1CCCCCCCCCCC1"):
        query = Chem.MolFromSmarts(pattern) if "#" in pattern or "R" in pattern else Chem.MolFromSmiles(pattern)
        matching = [s for s in runs if s and Chem.MolFromSmiles(s).HasSubstructMatch(query)]
        for limit in (1, 4, 25):
            expected = sorted(matching, key=lambda smiles: (-runs[smiles], smiles))[:limit]
            found = store.find_runs_with_scaffold(pattern, substructure=True, limit=limit)
            assert [row["scaffold"] for row in found] == expected, (pattern, limit)


def test_the_substructure_library_takes_in_scaffolds_recorded_after_it_was_built(db):
    store.record_molecules("r1", "b1", 0, [{"smiles": ASPIRIN}])
    assert [row["scaffold"] for row in store.find_runs_with_scaffold("c1ccccc1", substructure=True)] == [BENZENE]

    store.record_molecules("r2", "b1", 0, [{"smiles": "c1ccc(-c2ccccc2)cc1"}])

    found = store.find_runs_with_scaffold("c1ccccc1", substructure=True)
    assert [row["scaffold"] for row in found] == ["c1ccc(-c2ccccc2)cc1", BENZENE]


def test_a_scaffold_is_drawn_as_svg(db):
    svg = store.scaffold_svg(XANTHINE_SCAFFOLD)
    assert svg.startswith("<?xml") and "</svg>" in svg
    assert store.scaffold_svg(XANTHINE_SCAFFOLD) is svg
    with pytest.raises(ValueError, match="cannot parse"):
        store.scaffold_svg("C1CC")


def snapshot(run_ids: list[str]) -> Any:
    """Every row the batches produced, means rounded: float sums may differ in the last bit by order."""
    result = {
        run_id: {
            "counts": store.get_run_molecules(run_id),
            "scaffolds": store.get_run_scaffolds(run_id, limit=None),
        }
        for run_id in run_ids
    }
    top = [{k: v for k, v in row.items() if k != "first_seen_at"} for row in store.query_scaffolds(limit=None)]
    text = json.dumps({"runs": result, "top": top}, sort_keys=True, default=str)
    return json.loads(text, parse_float=lambda value: round(float(value), 9))


def test_batches_applied_in_any_order_and_repeated_end_in_the_same_rows(db):
    pool = generate_scaffolds(40, seed=1)
    batches = [
        (run_id, batch)
        for run_id in ("r1", "r2")
        for batch in molecule_batches(run_id, 3, size=15, scaffolds=pool, seed=2)
    ]

    def apply(order: list[int]) -> None:
        for index in order:
            run_id, batch = batches[index]
            store.record_molecules(run_id, batch["batch_id"], batch["step"], batch["molecules"])

    apply(list(range(len(batches))))
    expected = snapshot(["r1", "r2"])

    @given(st.data())
    @examples(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    def check(data: st.DataObject) -> None:
        with store.get_engine().begin() as connection:
            for table in reversed(Base.metadata.sorted_tables):
                connection.execute(table.delete())
        copies = data.draw(st.lists(st.integers(1, 3), min_size=len(batches), max_size=len(batches)))
        order = data.draw(st.permutations([i for i, n in enumerate(copies) for _ in range(n)]))
        apply(order)
        assert snapshot(["r1", "r2"]) == expected

    check()


def test_a_pattern_matching_more_scaffolds_than_a_statement_takes_parameters_finds_them_all(db, monkeypatch):
    monkeypatch.setattr(scaffolds, "_SEARCH_CHUNK", 7)
    pool = generate_scaffolds(40, seed=6)
    store.record_molecules("r1", "b1", 0, [{"smiles": smiles} for smiles in pool])
    store.record_molecules("r2", "b1", 0, [{"smiles": smiles} for smiles in pool[:3]])
    query = Chem.MolFromSmarts("[#6]")
    expected = {s for s in pool if Chem.MolFromSmiles(s).HasSubstructMatch(query)}

    found = store.find_runs_with_scaffold("[#6]", substructure=True, limit=None)

    assert {row["scaffold"] for row in found} == expected
    assert [row["runs"] for row in found[:3]] == [2, 2, 2]
    assert [row["scaffold"] for row in store.find_runs_with_scaffold("[#6]", substructure=True, limit=5)] == [
        row["scaffold"] for row in found[:5]
    ]
