"""Molecule analyses shared through the database: RDKit analyses each distinct SMILES once."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

import store
from store import analyses, chemistry
from store.database import connect
from store.schema import molecule_analyses
from tests.molecules import ASPIRIN, BENZENE, CAFFEINE, NICOTINE, NICOTINE_SCAFFOLD, OCTANOIC_ACID


@pytest.fixture(autouse=True)
def fresh_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    """Start each test as a worker just started: nothing analysed in its memory."""
    monkeypatch.setattr(analyses, "_recent", {})


@pytest.fixture
def rdkit_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record the SMILES RDKit is asked to analyse."""
    calls: list[str] = []
    analyse = chemistry.analyse

    def counted(smiles: str) -> chemistry.Structure | None:
        calls.append(smiles)
        return analyse(smiles)

    monkeypatch.setattr(chemistry, "analyse", counted)
    return calls


def kept_rows() -> int:
    with connect() as connection:
        return connection.execute(select(func.count()).select_from(molecule_analyses)).scalar_one()


def test_a_molecule_another_worker_analysed_is_read_not_analysed_again(db, monkeypatch, rdkit_calls):
    assert store.record_molecules("r1", "b1", 10, [{"smiles": s} for s in (ASPIRIN, NICOTINE, "xyz")])
    assert sorted(rdkit_calls) == sorted([ASPIRIN, NICOTINE, "xyz"])
    # Another process: its memory is empty, the database is the same.
    monkeypatch.setattr(analyses, "_recent", {})
    rdkit_calls.clear()

    molecules = [{"smiles": s} for s in (ASPIRIN, NICOTINE, "xyz", CAFFEINE, ASPIRIN)]
    assert store.record_molecules("r2", "b1", 10, molecules)

    assert rdkit_calls == [CAFFEINE]
    assert store.get_run_molecules("r2")["invalid"] == 1
    rows = {row["scaffold"]: row["molecules"] for row in store.get_run_scaffolds("r2")}
    assert rows[BENZENE] == 2
    assert rows[NICOTINE_SCAFFOLD] == 1
    assert kept_rows() == 4


def test_what_a_process_analysed_it_answers_from_memory(db, rdkit_calls):
    assert (
        analyses.analyse_all([OCTANOIC_ACID, ASPIRIN]) == analyses.analyse_all([ASPIRIN, OCTANOIC_ACID])[::-1]
    )
    assert sorted(rdkit_calls) == sorted([OCTANOIC_ACID, ASPIRIN])
    assert analyses.analyse_all([OCTANOIC_ACID])[0] == chemistry.Structure("CCCCCCCC(=O)O", "")


@pytest.fixture
def kept():
    """Set how many analyses the database keeps; back to the default after the test."""
    yield analyses.configure_kept
    analyses.configure_kept(analyses.DEFAULT_KEPT)


def test_the_database_keeps_only_the_newest_analyses(db, monkeypatch, kept):
    kept(3)
    analyses.analyse_all([ASPIRIN, NICOTINE])
    analyses.analyse_all([CAFFEINE, OCTANOIC_ACID])
    assert kept_rows() == 3

    monkeypatch.setattr(analyses, "_recent", {})
    calls: list[str] = []
    monkeypatch.setattr(chemistry, "analyse", lambda smiles: calls.append(smiles) or None)
    analyses.analyse_all([CAFFEINE, OCTANOIC_ACID])
    # The two newest are kept: the second batch's.
    assert calls == []


def test_another_rdkit_version_analyses_anew(db, monkeypatch, rdkit_calls):
    analyses.analyse_all([ASPIRIN])
    monkeypatch.setattr(analyses, "_recent", {})
    monkeypatch.setattr(analyses, "_version", b"9999.99.9\n")

    analyses.analyse_all([ASPIRIN])

    assert rdkit_calls == [ASPIRIN, ASPIRIN]
    assert kept_rows() == 2


def test_memory_keeps_a_bounded_number_of_analyses(db, monkeypatch):
    monkeypatch.setattr(analyses, "IN_MEMORY", 4)
    smiles = [f"C{'C' * n}O" for n in range(10)]
    for text in smiles:
        analyses.analyse_all([text])
        assert len(analyses._recent) <= 4
    assert smiles[-1] in analyses._recent


def test_with_none_kept_each_worker_analyses_for_itself(db, monkeypatch, rdkit_calls, kept):
    kept(0)
    analyses.analyse_all([ASPIRIN, "xyz"])
    monkeypatch.setattr(analyses, "_recent", {})

    assert analyses.analyse_all([ASPIRIN, "xyz"]) == [chemistry.Structure("CC(=O)Oc1ccccc1C(=O)O", BENZENE), None]
    assert sorted(rdkit_calls) == sorted([ASPIRIN, "xyz"] * 2)
    assert kept_rows() == 0


@pytest.mark.parametrize("rows", [-1, 1.5, True, "10"])
def test_the_number_kept_is_a_non_negative_integer(rows):
    with pytest.raises(ValueError, match="non-negative integer"):
        analyses.configure_kept(rows)
