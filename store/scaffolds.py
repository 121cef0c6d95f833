"""Per-scaffold tracking: the molecules runs generate, reduced to their Bemis-Murcko scaffolds.

A batch of molecules is checked and analysed (store/chemistry.py) before its transaction
begins, then merged under its run's lock into the run's scaffold rows and counts. What a batch
adds to a scaffold's totals over every run is written once, at the commit, for every scaffold of
the transaction in SMILES order (on PostgreSQL in one statement): two transactions adding to the
same scaffolds wait for each other in the same order, and no totals row is held for longer than
the commit.
"""

from __future__ import annotations

import math
import statistics
import threading
from collections import defaultdict, deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from itertools import count, repeat
from operator import itemgetter, methodcaller
from typing import TYPE_CHECKING, Any, NamedTuple

from sqlalchemy import (
    BigInteger,
    Row,
    and_,
    case,
    cast,
    event,
    func,
    or_,
    select,
)
from sqlalchemy.dialects import sqlite
from sqlalchemy.orm import Session

from store import jsoncodec
from store.database import get_engine, read_transaction, transaction
from store.direct import execute_sql
from store.fields import resolve
from store.filters import compile_filter
from store.locking import check_run_id
from store.models import RunMoleculeBatch, RunMolecules, RunObjective, RunScaffold, Scaffold, TrainingRun
from store.query import check_limit, conditions_of
from store.records import RunRecord, changes, write_changes
from store.runs import RunState
from store.schema import utcnow

if TYPE_CHECKING:
    from store.chemistry import ScaffoldLibrary, Structure

MAX_SMILES_LENGTH = 4096
MAX_BATCH_ID_LENGTH = 255
RUN_ORDERS = ("molecules", "best_reward", "first_step")
CROSS_RUN_ORDERS = ("runs", "best_reward")
_SCAFFOLDS = Scaffold.__table__
_RUN_SCAFFOLDS = RunScaffold.__table__
_RUN_MOLECULES = RunMolecules.__table__
_BATCHES = RunMoleculeBatch.__table__
# Rows per statement: SQLite takes at most 32,766 parameters in one.
_CHUNK = 500

# store.chemistry is imported by the functions that use it, on first use: RDKit takes memory in a
# process that imports it (bench/RESULTS.md); the web processes, which import the store but never see
# a molecule, do without it.


@dataclass
class _Tally:
    """What one batch knows of one scaffold."""

    molecules: int
    step: int
    best_reward: float | None
    best_smiles: str | None
    # objective -> {"count", "sum", "min", "max"}
    objectives: dict[str, dict[str, float]]


def _better(reward: float | None, smiles: str | None, best: float | None, best_smiles: str | None) -> bool:
    """Tell whether a reward beats the best so far; ties go to the smaller SMILES, in any order."""
    if reward is None:
        return False
    if best is None:
        return True
    return reward > best or (reward == best and (best_smiles is None or (smiles or "") < best_smiles))


def _merge_objective(into: dict[str, dict[str, float]], name: str, stats: Mapping[str, float]) -> None:
    current = into.get(name)
    if current is None:
        into[name] = dict(stats)
        return
    current["count"] += stats["count"]
    current["sum"] += stats["sum"]
    current["min"] = min(current["min"], stats["min"])
    current["max"] = max(current["max"], stats["max"])


def _number(value: Any, what: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{what} must be a finite number, not {value!r}")
    return float(value)


def _checked(molecules: Any) -> list[tuple[str, float | None, dict[str, float]]]:
    """Return each molecule as (SMILES, reward, scores), or raise ValueError naming the first problem."""
    if isinstance(molecules, str | bytes) or not isinstance(molecules, Sequence):
        raise ValueError("molecules must be a list of {smiles, reward?, scores?}")
    checked = []
    for index, molecule in enumerate(molecules):
        if not isinstance(molecule, Mapping):
            raise ValueError(f"molecules[{index}] must be an object with smiles")
        smiles = molecule.get("smiles")
        if not isinstance(smiles, str) or len(smiles) > MAX_SMILES_LENGTH:
            raise ValueError(f"molecules[{index}].smiles must be a string of at most {MAX_SMILES_LENGTH}")
        reward = _number(molecule.get("reward"), f"molecules[{index}].reward")
        scores = molecule.get("scores") or {}
        if not isinstance(scores, Mapping):
            raise ValueError(f"molecules[{index}].scores must map objective names to numbers")
        numbers = {}
        for name, value in scores.items():
            if not isinstance(name, str) or not name or len(name) > 255:
                raise ValueError(f"molecules[{index}].scores has an invalid objective name {name!r}")
            number = _number(value, f"molecules[{index}].scores.{name}")
            if number is not None:
                numbers[name] = number
        checked.append((smiles, reward, numbers))
    return checked


class _Column(NamedTuple):
    """A field of every molecule, in order: a float, or None where the molecule has none."""

    values: Sequence[float | None]
    # Whether every molecule has one, so that no None need be looked for.
    complete: bool


class _Columns(NamedTuple):
    """A checked batch, one column per field, molecule by molecule."""

    smiles: list[str]
    rewards: _Column
    # objective -> its scores
    scores: dict[str, _Column]


_get_smiles = itemgetter("smiles")
_get_reward = methodcaller("get", "reward")
_get_scores = methodcaller("get", "scores")
_NONE = type(None)
_NUMBERS_OR_NONE = {float, int, _NONE}


def _columns(molecules: Any) -> _Columns:
    """Return the batch by field, or raise ValueError naming its first problem.

    A batch as JSON gives it (a list of dicts of str, float and int) is checked and split a
    field at a time over the whole batch, by builtins: checked molecule by molecule in Python,
    the check cost a worker more than the rest of applying a batch whose molecules it had
    analysed before (bench/RESULTS.md). Anything else is checked one molecule at a time, which
    names the problem.
    """
    if type(molecules) is list and (not molecules or set(map(type, molecules)) == {dict}):
        try:
            smiles = list(map(_get_smiles, molecules))
        except KeyError:
            smiles = None
        if smiles is not None and (
            not smiles or (set(map(type, smiles)) == {str} and max(map(len, smiles)) <= MAX_SMILES_LENGTH)
        ):
            rewards = _column(list(map(_get_reward, molecules)))
            scores = _score_columns(list(map(_get_scores, molecules)))
            if rewards is not None and scores is not None:
                return _Columns(smiles, rewards, scores)
    checked = _checked(molecules)
    names = sorted(set().union(*(numbers for _, _, numbers in checked)))
    return _Columns(
        [smiles for smiles, _, _ in checked],
        _listed([reward for _, reward, _ in checked]),
        {name: _listed([numbers.get(name) for _, _, numbers in checked]) for name in names},
    )


def _listed(values: list[float | None]) -> _Column:
    return _Column(values, None not in values)


def _column(values: list[Any]) -> _Column | None:
    """The values as a column, or None unless each is None or a finite int or float (not a bool).

    A NaN or an infinity makes a float sum NaN or infinite; so can an overflow, which sends the
    batch to the check that names the value.
    """
    types = set(map(type, values))
    if not types <= _NUMBERS_OR_NONE:
        return None
    complete = _NONE not in types
    given = values if complete else [value for value in values if value is not None]
    try:
        if given and not math.isfinite(sum(given)):
            return None
    except OverflowError:
        return None
    if int in types:
        values = [value if value is None else float(value) for value in values]
    return _Column(values, complete)


def _score_columns(scores: list[Any]) -> dict[str, _Column] | None:
    """Each objective's scores, molecule by molecule, or None unless every molecule's scores map
    names of 1 to 255 characters to finite numbers or None.

    Molecules are scored on the same objectives, as a rule: then each column is read by builtins.
    """
    types = set(map(type, scores))
    if not types <= {dict, _NONE}:
        return None
    names = set().union(*filter(None, scores))
    if names and (
        set(map(type, names)) != {str} or not 1 <= min(map(len, names)) <= max(map(len, names)) <= 255
    ):
        return None
    columns = {}
    for name in sorted(names):
        try:
            values = list(map(itemgetter(name), scores))
        except (KeyError, TypeError):
            values = [score.get(name) if score else None for score in scores]
        if (column := _column(values)) is None:
            return None
        columns[name] = column
    return columns


@dataclass
class _Batch:
    tallies: dict[str, _Tally]
    molecules: int
    invalid: int
    acyclic: int


def _analyse(molecules: _Columns, step: int) -> _Batch:
    """Reduce a batch to what it adds to each of its scaffolds.

    The molecules are grouped by scaffold, then each group's rewards and scores are gathered
    (itemgetter) and summed (sum, min, max), all by builtins: Python's own work is per scaffold,
    a few in a batch, not per molecule.
    """
    from store.analyses import analyse_all

    structures = analyse_all(molecules.smiles)
    groups: defaultdict[str | None, list[int]] = defaultdict(list)
    # Each molecule's index appended to its scaffold's group (None: invalid), in C.
    scaffolds = map(getattr, structures, repeat("scaffold"), repeat(None))
    deque(map(list.append, map(groups.__getitem__, scaffolds), count()), maxlen=0)
    invalid = len(groups.pop(None, ()))
    rewards = molecules.rewards
    tallies = {}
    for scaffold, members in groups.items():
        assert scaffold is not None
        pick = _picker(members)
        best_reward = best_smiles = None
        picked = pick(rewards.values)
        if given := _given(picked, rewards.complete):
            best_reward = max(given)
            best_smiles = _best_smiles(members, picked, best_reward, structures)
        objectives = {}
        for name, column in molecules.scores.items():
            if values := _given(pick(column.values), column.complete):
                objectives[name] = {
                    "count": len(values),
                    "sum": sum(values),
                    "min": min(values),
                    "max": max(values),
                }
        tallies[scaffold] = _Tally(len(members), step, best_reward, best_smiles, objectives)
    acyclic = len(groups.get("", ()))
    return _Batch(tallies, len(structures), invalid, acyclic)


def _best_smiles(
    members: list[int], rewards: Sequence[Any], best: float, structures: list[Structure | None]
) -> str:
    """The canonical SMILES of the group's molecule with the best reward; of those tied, the smallest."""
    if rewards.count(best) == 1:
        structure = structures[members[rewards.index(best)]]
        assert structure is not None
        return structure.smiles
    return min(
        structure.smiles
        for index, reward in zip(members, rewards, strict=True)
        if reward == best and (structure := structures[index]) is not None
    )


def _picker(indices: list[int]) -> Callable[[Sequence[Any]], Sequence[Any]]:
    """A function taking the items at ``indices`` of a sequence, in C."""
    if len(indices) == 1:
        index = indices[0]
        return lambda items: (items[index],)
    return itemgetter(*indices)


def _given(values: Sequence[Any], complete: bool) -> Sequence[float]:
    """The values that are not None."""
    return values if complete else [value for value in values if value is not None]


def load_rdkit() -> None:
    """Load RDKit into this process now rather than at its first batch: 0.2-0.4 s of CPU, once."""
    from store import chemistry  # noqa: F401


def analyse_molecules(molecules: Any) -> None:
    """Analyse a batch's SMILES ahead of recording it, outside any transaction.

    The worker records a batch in a unit of work with other events: RDKit's work on SMILES it
    has not seen (about a millisecond each) would hold their runs locked and their commit back,
    and is done here instead. What is not a molecule is left for record_molecules to refuse.
    """
    from store.analyses import analyse_all

    if isinstance(molecules, str | bytes) or not isinstance(molecules, Sequence):
        return
    try:
        smiles = list(map(itemgetter("smiles"), molecules))
    except (KeyError, TypeError):
        smiles = [molecule.get("smiles") for molecule in molecules if isinstance(molecule, Mapping)]
    if set(map(type, smiles)) != {str} or max(map(len, smiles)) > MAX_SMILES_LENGTH:
        smiles = [text for text in smiles if isinstance(text, str) and len(text) <= MAX_SMILES_LENGTH]
    analyse_all(smiles)


def record_molecules(run_id: str, batch_id: str, step: int, molecules: Sequence[Mapping[str, Any]]) -> bool:
    """Add a batch of generated molecules to the run's scaffolds; return False if the batch was applied before.

    Each molecule is ``{"smiles", "reward"?, "scores"?: {objective: number}}``. A SMILES RDKit
    cannot parse is counted as invalid. The run is created if it does not exist yet.
    """
    check_run_id(run_id)
    if not isinstance(batch_id, str) or not batch_id or len(batch_id) > MAX_BATCH_ID_LENGTH:
        raise ValueError(f"batch_id must be a non-empty string of at most {MAX_BATCH_ID_LENGTH} characters")
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        raise ValueError("step must be a non-negative integer")
    batch = _analyse(_columns(molecules), step)
    with transaction() as session, RunState(session, run_id, with_objectives=False) as state:
        if session.get_bind().dialect.name == "postgresql":
            new = _apply_on_postgresql(session, state.run, batch_id, step, batch)
        else:
            new = _apply_on_sqlite(session, run_id, batch_id, step, batch)
        if new is None:
            return False
        _pending_totals(session).add(run_id, batch.tallies, new)
    return True


def _apply_on_sqlite(
    session: Session, run_id: str, batch_id: str, step: int, batch: _Batch
) -> set[str] | None:
    """Claim the batch and merge it into the run's rows; return the scaffolds new to the run, or
    None when the batch was applied before."""
    # The batch's row is its claim: a batch applied before conflicts and changes nothing.
    claimed = session.execute(
        sqlite.insert(_BATCHES)
        .values(
            run_id=run_id,
            batch_id=batch_id,
            step=step,
            molecules=batch.molecules,
            invalid=batch.invalid,
            applied_at=utcnow(),
        )
        .on_conflict_do_nothing()
        .returning(_BATCHES.c.step)
    ).first()
    if claimed is None:
        return None
    new = _merge_run_scaffolds(session, run_id, batch.tallies)
    session.execute(_add_to_run_counts(sqlite.insert(_RUN_MOLECULES)), _run_counts(run_id, batch, new))
    return new


def _apply_on_postgresql(
    session: Session, run: RunRecord, batch_id: str, step: int, batch: _Batch
) -> set[str] | None:
    """As on SQLite, in one statement: the batch's claim, its merge into the run's scaffold rows
    and counts.

    A statement is a round trip and its share of the worker's CPU: four of them (the claim, the
    run's rows read, the merge written, the counts) cost more than the rest of applying a batch
    whose molecules the worker had analysed before (bench/RESULTS.md). It runs on the driver
    (store/direct.py), its rows sent as one JSON document: as an array per column, sending them
    cost the worker more than PostgreSQL took to run the statement.
    """
    from store import chemistry

    parameters = {
        "run_id": run.run_id,
        "batch_id": batch_id,
        "step": step,
        "applied_at": utcnow(),
        "molecules": batch.molecules,
        "valid": batch.molecules - batch.invalid,
        "invalid": batch.invalid,
        "acyclic": batch.acyclic,
        "scaffolds": jsoncodec.dumps(
            [
                {
                    "scaffold": name,
                    "generic_scaffold": chemistry.generic_scaffold(name),
                    "molecules": tally.molecules,
                    "best_reward": tally.best_reward,
                    "best_smiles": tally.best_smiles,
                    "objective_stats": _stats_json(tally.objectives),
                }
                for name, tally in sorted(batch.tallies.items())
            ]
        ),
    }
    # A run created for the batch, or earlier in the unit of work, is written first: the batch's
    # rows refer to it. The statement reads nothing else the transaction changed, and looking
    # for changes walks every record it holds, which a unit of a hundred events made cost
    # more than the statement.
    if not changes(session).stored(run):
        write_changes(session)
    [(claimed, new)] = execute_sql(session.connection(), _APPLY_ON_POSTGRESQL, parameters)
    return set(new) if claimed else None


def _stats_json(objectives: dict[str, dict[str, float]]) -> dict[str, Any] | None:
    return {name: dict(stats) for name, stats in sorted(objectives.items())} or None


def _merge_run_scaffolds(session: Session, run_id: str, tallies: dict[str, _Tally]) -> set[str]:
    """Merge a batch into the run's scaffold rows with one upsert; return the scaffolds new to the run.

    The run is locked: the rows read here are the rows the upsert replaces.
    """
    from store import chemistry

    if not tallies:
        return set()
    names = sorted(tallies)
    existing = _run_scaffolds(session, run_id, names)
    merged: list[dict[str, Any]] = []
    for scaffold in names:
        tally = tallies[scaffold]
        row = existing.get(scaffold)
        if row is None:
            merged.append(
                {
                    "run_id": run_id,
                    "scaffold": scaffold,
                    "generic_scaffold": chemistry.generic_scaffold(scaffold),
                    "molecules": tally.molecules,
                    "first_step": tally.step,
                    "last_step": tally.step,
                    "best_reward": tally.best_reward,
                    "best_smiles": tally.best_smiles,
                    "objective_stats_json": _stats_json(tally.objectives),
                }
            )
            continue
        objectives = {name: dict(stats) for name, stats in (row["objective_stats_json"] or {}).items()}
        for name, stats in tally.objectives.items():
            _merge_objective(objectives, name, stats)
        best_reward, best_smiles = row["best_reward"], row["best_smiles"]
        if _better(tally.best_reward, tally.best_smiles, best_reward, best_smiles):
            best_reward, best_smiles = tally.best_reward, tally.best_smiles
        merged.append(
            {
                "run_id": run_id,
                "scaffold": scaffold,
                "generic_scaffold": row["generic_scaffold"],
                "molecules": row["molecules"] + tally.molecules,
                "first_step": min(row["first_step"], tally.step),
                "last_step": max(row["last_step"], tally.step),
                "best_reward": best_reward,
                "best_smiles": best_smiles,
                "objective_stats_json": _stats_json(objectives),
            }
        )
    session.execute(_upsert_run_scaffolds(sqlite.insert(_RUN_SCAFFOLDS)), merged)
    return set(names) - set(existing)


def _run_scaffolds(session: Session, run_id: str, names: list[str]) -> dict[str, dict[str, Any]]:
    """The run's rows of these scaffolds, by scaffold."""
    existing: dict[str, dict[str, Any]] = {}
    for start in range(0, len(names), _CHUNK):
        found = session.execute(
            select(_RUN_SCAFFOLDS).where(
                _RUN_SCAFFOLDS.c.run_id == run_id,
                _RUN_SCAFFOLDS.c.scaffold.in_(names[start : start + _CHUNK]),
            )
        )
        existing.update((row.scaffold, dict(row._mapping)) for row in found)
    return existing


def _upsert_run_scaffolds(statement: Any) -> Any:
    return statement.on_conflict_do_update(
        index_elements=[_RUN_SCAFFOLDS.c.run_id, _RUN_SCAFFOLDS.c.scaffold],
        set_={
            column: statement.excluded[column]
            for column in (
                "molecules",
                "first_step",
                "last_step",
                "best_reward",
                "best_smiles",
                "objective_stats_json",
            )
        },
    )


_COUNTS = ("molecules", "valid", "invalid", "acyclic", "distinct_scaffolds", "batches")


def _add_to_run_counts(statement: Any) -> Any:
    return statement.on_conflict_do_update(
        index_elements=[_RUN_MOLECULES.c.run_id],
        set_={name: _RUN_MOLECULES.c[name] + statement.excluded[name] for name in _COUNTS},
    )


def _wins(tie: str) -> str:
    """SQL telling whether an upsert's row (excluded) has a better best reward than the stored one
    (old); ``tie`` decides between equal rewards."""
    return (
        "excluded.best_reward IS NOT NULL AND (old.best_reward IS NULL"
        " OR excluded.best_reward > old.best_reward"
        f" OR (excluded.best_reward = old.best_reward AND ({tie})))"
    )


# Ties go to the smaller SMILES, then (across runs) the smaller run id, in code point order as
# Python compares strings (_better, _better_of_runs), whatever the database's collation.
_SMALLER_SMILES = (
    "old.best_smiles IS NULL OR coalesce(excluded.best_smiles, '') < old.best_smiles COLLATE \"C\""
)
_SMALLER_RUN_THEN_SMILES = (
    'excluded.best_run_id < old.best_run_id COLLATE "C"'
    ' OR (excluded.best_run_id = old.best_run_id AND excluded.best_smiles < old.best_smiles COLLATE "C")'
)


# The batch's claim, then its merge, as on SQLite (_merge_run_scaffolds, _better, _merge_objective):
# sums added as floats, extremes and counts kept as JSON gives them. A scaffold is new to the run
# where its row was inserted (xmax = 0), not updated.
_APPLY_ON_POSTGRESQL = f"""
WITH claimed AS (
    INSERT INTO run_molecule_batches (run_id, batch_id, step, molecules, invalid, applied_at)
    VALUES (%(run_id)s, %(batch_id)s, %(step)s, %(molecules)s, %(invalid)s, %(applied_at)s)
    ON CONFLICT DO NOTHING
    RETURNING run_id
), merged AS (
    INSERT INTO run_scaffolds AS old (
        run_id, scaffold, generic_scaffold, molecules, first_step, last_step,
        best_reward, best_smiles, objective_stats_json
    )
    SELECT %(run_id)s, batch.scaffold, batch.generic_scaffold, batch.molecules, %(step)s, %(step)s,
        batch.best_reward, batch.best_smiles, batch.objective_stats
    FROM jsonb_to_recordset(%(scaffolds)s::jsonb) AS batch(
        scaffold text, generic_scaffold text, molecules bigint, best_reward float8, best_smiles text,
        objective_stats jsonb
    )
    WHERE EXISTS (SELECT FROM claimed)
    ON CONFLICT (run_id, scaffold) DO UPDATE SET
        molecules = old.molecules + excluded.molecules,
        first_step = least(old.first_step, excluded.first_step),
        last_step = greatest(old.last_step, excluded.last_step),
        (best_reward, best_smiles) = (
            SELECT CASE WHEN wins THEN excluded.best_reward ELSE old.best_reward END,
                CASE WHEN wins THEN excluded.best_smiles ELSE old.best_smiles END
            FROM (SELECT {_wins(_SMALLER_SMILES)} AS wins) AS outcome
        ),
        objective_stats_json = CASE
            WHEN old.objective_stats_json IS NULL THEN excluded.objective_stats_json
            WHEN excluded.objective_stats_json IS NULL THEN old.objective_stats_json
            ELSE (
                SELECT jsonb_object_agg(
                    name,
                    CASE
                        WHEN kept.stats IS NULL THEN added.stats
                        WHEN added.stats IS NULL THEN kept.stats
                        ELSE jsonb_build_object(
                            'count', (kept.stats -> 'count')::numeric + (added.stats -> 'count')::numeric,
                            'sum', (kept.stats ->> 'sum')::float8 + (added.stats ->> 'sum')::float8,
                            'min', least((kept.stats -> 'min')::numeric, (added.stats -> 'min')::numeric),
                            'max', greatest((kept.stats -> 'max')::numeric, (added.stats -> 'max')::numeric)
                        )
                    END
                )
                FROM jsonb_each(old.objective_stats_json) AS kept(name, stats)
                FULL JOIN jsonb_each(excluded.objective_stats_json) AS added(name, stats) USING (name)
            )
        END
    RETURNING old.scaffold, old.xmax = 0 AS inserted
), counted AS (
    INSERT INTO run_molecules AS old (
        run_id, molecules, valid, invalid, acyclic, distinct_scaffolds, batches
    )
    SELECT %(run_id)s, %(molecules)s, %(valid)s, %(invalid)s, %(acyclic)s,
        (SELECT count(*) FROM merged WHERE inserted AND scaffold <> ''), 1
    FROM claimed
    ON CONFLICT (run_id) DO UPDATE SET
        molecules = old.molecules + excluded.molecules,
        valid = old.valid + excluded.valid,
        invalid = old.invalid + excluded.invalid,
        acyclic = old.acyclic + excluded.acyclic,
        distinct_scaffolds = old.distinct_scaffolds + excluded.distinct_scaffolds,
        batches = old.batches + excluded.batches
)
SELECT EXISTS (SELECT FROM claimed), ARRAY(SELECT scaffold FROM merged WHERE inserted)
"""  # noqa: S608 (formatted from constants)


def _run_counts(run_id: str, batch: _Batch, new: set[str]) -> dict[str, Any]:
    return {
        "run_id": run_id,
        "molecules": batch.molecules,
        "valid": batch.molecules - batch.invalid,
        "invalid": batch.invalid,
        "acyclic": batch.acyclic,
        # The empty scaffold of acyclic molecules is no ring system: it is not counted.
        "distinct_scaffolds": len(new - {""}),
        "batches": 1,
    }


class _Totals:
    """What a transaction adds to each scaffold's totals over every run, written at its commit."""

    def __init__(self) -> None:
        # scaffold -> [runs, molecules, best_reward, best_run_id, best_smiles]
        self.added: dict[str, list[Any]] = {}

    def add(self, run_id: str, tallies: dict[str, _Tally], new: set[str]) -> None:
        for scaffold, tally in tallies.items():
            added = self.added.setdefault(scaffold, [0, 0, None, None, None])
            added[0] += scaffold in new
            added[1] += tally.molecules
            if _better_of_runs(tally.best_reward, run_id, tally.best_smiles, *added[2:]):
                added[2:] = [tally.best_reward, run_id, tally.best_smiles]

    def write(self, session: Session) -> None:
        if not self.added:
            return
        from store import chemistry

        now = utcnow()
        rows = [
            {
                "smiles": scaffold,
                "generic_smiles": chemistry.generic_scaffold(scaffold),
                "runs": runs,
                "molecules": molecules,
                "best_reward": best_reward,
                "best_run_id": best_run_id,
                "best_smiles": best_smiles,
            }
            for scaffold, (runs, molecules, best_reward, best_run_id, best_smiles) in sorted(
                self.added.items()
            )
        ]
        self.added = {}
        connection = session.connection()
        if connection.dialect.name == "postgresql":
            parameters = {"scaffolds": jsoncodec.dumps(rows), "first_seen_at": now}
            execute_sql(connection, _ADD_TOTALS_ON_POSTGRESQL, parameters)
        else:
            connection.execute(
                _add_totals(sqlite.insert(_SCAFFOLDS)), [{**row, "first_seen_at": now} for row in rows]
            )


def _better_of_runs(
    reward: float | None,
    run_id: str,
    smiles: str | None,
    best: float | None,
    best_run: str | None,
    best_smiles: str | None,
) -> bool:
    """Tell whether a run's best beats the best over runs so far; ties go to the smaller run id,
    then the smaller SMILES, so that the outcome is the same in any order."""
    if reward is None:
        return False
    if best is None or reward > best:
        return True
    return reward == best and (run_id, smiles or "") < (best_run or "", best_smiles or "")


def _add_totals(statement: Any) -> Any:
    new, old = statement.excluded, _SCAFFOLDS.c
    wins = and_(
        new.best_reward.is_not(None),
        or_(
            old.best_reward.is_(None),
            new.best_reward > old.best_reward,
            and_(new.best_reward == old.best_reward, new.best_run_id < old.best_run_id),
            and_(
                new.best_reward == old.best_reward,
                new.best_run_id == old.best_run_id,
                new.best_smiles < old.best_smiles,
            ),
        ),
    )
    return statement.on_conflict_do_update(
        index_elements=[old.smiles],
        set_={
            "runs": old.runs + new.runs,
            "molecules": old.molecules + new.molecules,
            "best_reward": case((wins, new.best_reward), else_=old.best_reward),
            "best_run_id": case((wins, new.best_run_id), else_=old.best_run_id),
            "best_smiles": case((wins, new.best_smiles), else_=old.best_smiles),
        },
    )


# As _add_totals, from one document of rows, in SMILES order.
_ADD_TOTALS_ON_POSTGRESQL = f"""
INSERT INTO scaffolds AS old (
    smiles, generic_smiles, runs, molecules, best_reward, best_run_id, best_smiles, first_seen_at
)
SELECT added.*, %(first_seen_at)s
FROM jsonb_to_recordset(%(scaffolds)s::jsonb) AS added(
    smiles text, generic_smiles text, runs integer, molecules bigint, best_reward float8,
    best_run_id text, best_smiles text
)
ON CONFLICT (smiles) DO UPDATE SET
    runs = old.runs + excluded.runs,
    molecules = old.molecules + excluded.molecules,
    (best_reward, best_run_id, best_smiles) = (
        SELECT CASE WHEN wins THEN excluded.best_reward ELSE old.best_reward END,
            CASE WHEN wins THEN excluded.best_run_id ELSE old.best_run_id END,
            CASE WHEN wins THEN excluded.best_smiles ELSE old.best_smiles END
        FROM (SELECT {_wins(_SMALLER_RUN_THEN_SMILES)} AS wins) AS outcome
    )
"""  # noqa: S608 (formatted from constants)

_TOTALS = "scaffold_totals"


def _pending_totals(session: Session) -> _Totals:
    totals = session.info.get(_TOTALS)
    if totals is None:
        totals = session.info[_TOTALS] = _Totals()
    return totals


@event.listens_for(Session, "before_commit")
def _write_totals(session: Session) -> None:
    totals = session.info.get(_TOTALS)
    if totals is not None:
        totals.write(session)


# --- reading ------------------------------------------------------------------------------


def _directions(session: Session, run_ids: Sequence[str]) -> dict[tuple[str, str], str]:
    rows = session.execute(
        select(RunObjective.run_id, RunObjective.objective_name, RunObjective.direction).where(
            RunObjective.run_id.in_(list(run_ids)), RunObjective.direction.is_not(None)
        )
    )
    return {(row.run_id, row.objective_name): row.direction for row in rows}


def _objectives(stats: Mapping[str, Any] | None, directions: Mapping[str, str]) -> dict[str, Any]:
    """Each objective's best (by its direction; maximize when the run declares none) and mean."""
    shown = {}
    for name, values in (stats or {}).items():
        direction = directions.get(name, "maximize")
        shown[name] = {
            "best": values["min"] if direction == "minimize" else values["max"],
            "mean": values["sum"] / values["count"],
            "count": values["count"],
            "direction": direction,
        }
    return shown


def get_run_molecules(run_id: str) -> dict[str, Any] | None:
    """Return a run's molecule counts (seen, valid, invalid, acyclic, distinct scaffolds, batches), or None."""
    with read_transaction() as session:
        row = session.execute(select(_RUN_MOLECULES).where(_RUN_MOLECULES.c.run_id == run_id)).first()
    return dict(row._mapping) if row is not None else None


def _finding(row: Any) -> dict[str, Any]:
    """What a run's row of a scaffold says of the run's molecules with it."""
    return {
        "molecules": row.molecules,
        "first_step": row.first_step,
        "last_step": row.last_step,
        "best_reward": row.best_reward,
        "best_smiles": row.best_smiles,
    }


def _found(row: Any) -> dict[str, Any]:
    """A run's row of a scaffold: the scaffold, its generic form, and the finding."""
    return {"scaffold": row.scaffold, "generic_scaffold": row.generic_scaffold, **_finding(row)}


def get_run_scaffolds(
    run_id: str, order_by: str = "molecules", limit: int | None = 50
) -> list[dict[str, Any]]:
    """Return a run's scaffolds: most molecules, best reward or earliest step first."""
    if order_by not in RUN_ORDERS:
        raise ValueError(f"unknown order_by {order_by!r}; expected one of {', '.join(RUN_ORDERS)}")
    limit = check_limit(limit)
    table = _RUN_SCAFFOLDS.c
    ordering = {
        "molecules": [table.molecules.desc()],
        "best_reward": [table.best_reward.desc().nulls_last()],
        "first_step": [table.first_step.asc()],
    }[order_by]
    with read_transaction() as session:
        rows = session.execute(
            select(_RUN_SCAFFOLDS)
            .where(table.run_id == run_id)
            .order_by(*ordering, table.scaffold)
            .limit(limit)
        ).all()
        directions = _directions(session, [run_id]) if rows else {}
    by_name = {name: direction for (_, name), direction in directions.items()}
    return [
        {
            **_found(row),
            "objectives": _objectives(row.objective_stats_json, by_name),
        }
        for row in rows
    ]


TOP_ORDERS = ("molecules", "best_reward")
MAX_TOP_PER_RUN = 50
# Run ids per statement: SQLite takes at most 32,766 parameters in one. A Pareto front or a
# set of compared runs is far smaller, so in practice this is one statement.
_RUN_ID_CHUNK = 10_000


def top_scaffolds_of_runs(
    run_ids: Sequence[str], per_run: int = 5, order_by: str = "molecules"
) -> dict[str, list[dict[str, Any]]]:
    """Return each run's top ``per_run`` scaffolds, most molecules or best reward first, in one query.

    Every given run id is a key, with an empty list when the run found no ring scaffold (or does
    not exist); the empty scaffold of acyclic molecules is left out. Ties go to the smaller SMILES.
    """
    if isinstance(run_ids, str | bytes) or not isinstance(run_ids, Sequence):
        raise ValueError("run_ids must be a list of run ids")
    if any(not isinstance(run_id, str) for run_id in run_ids):
        raise ValueError("run_ids must be strings")
    if order_by not in TOP_ORDERS:
        raise ValueError(f"unknown order_by {order_by!r}; expected one of {', '.join(TOP_ORDERS)}")
    if isinstance(per_run, bool) or not isinstance(per_run, int) or not 1 <= per_run <= MAX_TOP_PER_RUN:
        raise ValueError(f"per_run must be an integer from 1 to {MAX_TOP_PER_RUN}, not {per_run!r}")
    wanted = list(dict.fromkeys(run_ids))
    found: dict[str, list[dict[str, Any]]] = {run_id: [] for run_id in wanted}
    if not wanted:
        return found
    table = _RUN_SCAFFOLDS.c
    ordering = {
        "molecules": [table.molecules.desc()],
        "best_reward": [table.best_reward.desc().nulls_last()],
    }[order_by]
    # A window ranks each run's scaffolds where they lie together under the primary key
    # (run_id, scaffold): the runs' rows are read once, never those of other runs.
    rank = func.row_number().over(partition_by=table.run_id, order_by=[*ordering, table.scaffold])
    with read_transaction() as session:
        for start in range(0, len(wanted), _RUN_ID_CHUNK):
            ranked = (
                select(
                    table.run_id,
                    table.scaffold,
                    table.generic_scaffold,
                    table.molecules,
                    table.first_step,
                    table.last_step,
                    table.best_reward,
                    table.best_smiles,
                    rank.label("rank"),
                )
                .where(table.run_id.in_(wanted[start : start + _RUN_ID_CHUNK]), table.scaffold != "")
                .subquery("ranked")
            )
            rows = session.execute(
                select(ranked).where(ranked.c.rank <= per_run).order_by(ranked.c.run_id, ranked.c.rank)
            )
            for row in rows:
                found[row.run_id].append(_found(row))
    return found


RunFilter = str | Mapping[str, Any] | None


def _run_conditions(filter: RunFilter, dialect: str) -> list[Any]:
    """The conditions on training_runs of a filter string (the filter language) or a dict filter."""
    if isinstance(filter, str):
        return [compile_filter(filter, dialect)]
    return conditions_of(filter, dialect)


def _filtered_runs(filter: RunFilter, dialect: str) -> Any:
    return select(TrainingRun.run_id).where(*_run_conditions(filter, dialect))


def query_scaffolds(
    filter: RunFilter = None,
    min_runs: int = 1,
    order_by: str = "runs",
    limit: int | None = 50,
) -> list[dict[str, Any]]:
    """Return the scaffolds found by at least ``min_runs`` runs (of those ``filter`` selects: a
    filter string, or the dict filters of query_runs): most runs or best reward first.

    Each: scaffold, generic scaffold, runs, molecules, best reward with its run and molecule,
    and when the store first saw it. The empty scaffold of acyclic molecules is left out.
    """
    if order_by not in CROSS_RUN_ORDERS:
        raise ValueError(f"unknown order_by {order_by!r}; expected one of {', '.join(CROSS_RUN_ORDERS)}")
    if isinstance(min_runs, bool) or not isinstance(min_runs, int) or min_runs < 1:
        raise ValueError(f"min_runs must be a positive integer, not {min_runs!r}")
    limit = check_limit(limit)
    with read_transaction() as session:
        if filter is None:
            return _top_scaffolds(session, min_runs, order_by, limit)
        runs = _filtered_runs(filter, session.get_bind().dialect.name)
        return _top_scaffolds_of(session, runs, min_runs, order_by, limit)


def _scaffold_dict(row: Any) -> dict[str, Any]:
    return {
        "scaffold": row.smiles,
        "generic_scaffold": row.generic_smiles,
        "runs": row.runs,
        "molecules": row.molecules,
        "best_reward": row.best_reward,
        "best_run_id": row.best_run_id,
        "best_smiles": row.best_smiles,
        "first_seen_at": row.first_seen_at,
    }


def _top_scaffolds(session: Session, min_runs: int, order_by: str, limit: int | None) -> list[dict[str, Any]]:
    table = _SCAFFOLDS.c
    statement = select(_SCAFFOLDS).where(table.smiles != "", table.runs >= min_runs)
    if order_by == "runs":
        statement = statement.order_by(table.runs.desc(), table.smiles)
    else:
        # Read backwards along the (best_reward, smiles) index: scaffolds without a reward last.
        statement = statement.where(table.best_reward.is_not(None)).order_by(
            table.best_reward.desc(), table.smiles.desc()
        )
    return [_scaffold_dict(row) for row in session.execute(statement.limit(limit))]


def _top_scaffolds_of(
    session: Session, runs: Any, min_runs: int, order_by: str, limit: int | None
) -> list[dict[str, Any]]:
    table = _RUN_SCAFFOLDS.c
    count = func.count().label("runs")
    best = func.max(table.best_reward).label("best_reward")
    grouped = (
        select(table.scaffold, count, cast(func.sum(table.molecules), BigInteger).label("molecules"), best)
        .where(table.run_id.in_(runs), table.scaffold != "")
        .group_by(table.scaffold)
        .having(func.count() >= min_runs)
    )
    if order_by == "runs":
        grouped = grouped.order_by(count.desc(), table.scaffold)
    else:
        grouped = grouped.having(best.is_not(None)).order_by(best.desc(), table.scaffold.desc())
    top = session.execute(grouped.limit(limit)).all()
    if not top:
        return []
    names = [row.scaffold for row in top]
    found = session.execute(
        select(table.scaffold, table.run_id, table.best_reward, table.best_smiles).where(
            table.scaffold.in_(names), table.run_id.in_(runs), table.best_reward.is_not(None)
        )
    ).all()
    best_of: dict[str, tuple[float, str, str | None]] = {}
    for row in found:
        held = best_of.get(row.scaffold)
        if held is None or _better_of_runs(row.best_reward, row.run_id, row.best_smiles, *held):
            best_of[row.scaffold] = (row.best_reward, row.run_id, row.best_smiles)
    identity = {
        row.smiles: row
        for row in session.execute(
            select(_SCAFFOLDS.c.smiles, _SCAFFOLDS.c.generic_smiles, _SCAFFOLDS.c.first_seen_at).where(
                _SCAFFOLDS.c.smiles.in_(names)
            )
        )
    }
    return [
        {
            "scaffold": row.scaffold,
            "generic_scaffold": identity[row.scaffold].generic_smiles if row.scaffold in identity else None,
            "runs": row.runs,
            "molecules": row.molecules,
            "best_reward": best_of.get(row.scaffold, (None,))[0],
            "best_run_id": best_of.get(row.scaffold, (None, None))[1],
            "best_smiles": best_of.get(row.scaffold, (None, None, None))[2],
            "first_seen_at": identity[row.scaffold].first_seen_at if row.scaffold in identity else None,
        }
        for row in top
    ]


def scaffold_diversity(by: str = "gradient_method", filter: RunFilter = None) -> list[dict[str, Any]]:
    """Compare groups of runs (by a run field) on how many distinct scaffolds their runs found.

    Per group: runs with molecules, valid molecules, mean and median distinct scaffolds per run,
    and distinct scaffolds per 1,000 valid molecules (summed over the group's runs).
    """
    field = resolve(by)
    if field.is_json:
        raise ValueError(f"diversity groups runs by a run field, not a JSON path: {by!r}")
    with read_transaction() as session:
        dialect = session.get_bind().dialect.name
        rows = session.execute(
            select(field.column.label("group"), RunMolecules.distinct_scaffolds, RunMolecules.valid)
            .join(TrainingRun, TrainingRun.run_id == RunMolecules.run_id)
            .where(*_run_conditions(filter, dialect))
        ).all()
    groups: dict[Any, list[tuple[int, int]]] = {}
    for row in rows:
        groups.setdefault(row.group, []).append((row.distinct_scaffolds, row.valid))
    result = []
    for group, values in groups.items():
        distinct = [scaffolds for scaffolds, _ in values]
        valid = sum(count for _, count in values)
        result.append(
            {
                by: group,
                "runs": len(values),
                "valid_molecules": valid,
                "mean_scaffolds_per_run": statistics.fmean(distinct),
                "median_scaffolds_per_run": statistics.median(distinct),
                "scaffolds_per_1000_valid": 1000 * sum(distinct) / valid if valid else None,
            }
        )
    return sorted(result, key=lambda group: (group[by] is None, str(group[by])))


# --- search -------------------------------------------------------------------------------

_libraries: dict[str, ScaffoldLibrary] = {}
_library_lock = threading.Lock()


def _library(session: Session) -> ScaffoldLibrary:
    """Return the process's substructure library of this database's scaffolds, brought up to date.

    Scaffolds are never deleted, so a count equal to the library's says nothing is new.
    """
    from store import chemistry

    key = get_engine().url.render_as_string(hide_password=True)
    with _library_lock:
        library = _libraries.get(key)
        if library is None:
            library = _libraries[key] = chemistry.ScaffoldLibrary()
        stored = session.scalar(select(func.count()).select_from(_SCAFFOLDS).where(_SCAFFOLDS.c.smiles != ""))
        if stored != len(library.known):
            library.add(session.scalars(select(_SCAFFOLDS.c.smiles).where(_SCAFFOLDS.c.smiles != "")))
        return library


# A pattern as common as benzene matches most scaffolds: looked up this many at a time, as SQLite
# takes at most 32,766 parameters in one statement and PostgreSQL 65,535.
_SEARCH_CHUNK = 10_000
# Scaffolds searched in order of runs, this many first, four times as many in each page after.
_SEARCH_PAGE = 2_000


def _chunks(names: list[str]) -> list[list[str]]:
    return [names[start : start + _SEARCH_CHUNK] for start in range(0, len(names), _SEARCH_CHUNK)]


def _matching(session: Session, smiles: str, limit: int | None) -> list[str]:
    """Return the scaffolds containing the pattern, or with a limit the first ``limit`` by runs.

    With a limit the scaffolds are searched page by page in the order the answer takes (most
    runs first, then SMILES), and the search stops at the limit: a pattern most scaffolds contain
    is answered from the first page rather than matched against every scaffold.
    """
    from store import chemistry

    library = _library(session)
    query = chemistry.pattern(smiles)
    if limit is None:
        return library.matches(query)
    table = _SCAFFOLDS.c
    names: list[str] = []
    offset, page = 0, _SEARCH_PAGE
    while len(names) < limit:
        ranked = session.scalars(
            select(table.smiles)
            .where(table.runs > 0, table.smiles != "")
            .order_by(table.runs.desc(), table.smiles)
            .offset(offset)
            .limit(page)
        ).all()
        if not ranked:
            break
        names += library.first_matches(query, ranked, limit - len(names))
        offset, page = offset + len(ranked), page * 4
    return names


def find_runs_with_scaffold(
    smiles: str, substructure: bool = False, limit: int | None = 100
) -> list[dict[str, Any]]:
    """Return the scaffolds matching ``smiles``, each with the runs that found them.

    Exact (the default): ``smiles`` is a molecule or a scaffold, reduced to its scaffold; at most
    one scaffold comes back. ``substructure=True``: every scaffold containing the SMILES or
    SMARTS pattern, most runs first, at most ``limit``.
    """
    from store import chemistry

    if not isinstance(smiles, str) or len(smiles) > MAX_SMILES_LENGTH:
        raise ValueError(f"smiles must be a string of at most {MAX_SMILES_LENGTH} characters")
    limit = check_limit(limit)
    table = _SCAFFOLDS.c
    with read_transaction() as session:
        if substructure:
            names = _matching(session, smiles, limit)
        else:
            names = [chemistry.scaffold_of(smiles)]
        scaffolds: list[Row[Any]] = []
        for chunk in _chunks(names):
            scaffolds += session.execute(
                select(_SCAFFOLDS)
                .where(table.smiles.in_(chunk), table.runs > 0)
                .order_by(table.runs.desc(), table.smiles)
                .limit(limit)
            ).all()
        scaffolds = sorted(scaffolds, key=lambda row: (-row.runs, row.smiles))[:limit]
        runs_of: dict[str, list[dict[str, Any]]] = {row.smiles: [] for row in scaffolds}
        for chunk in _chunks(list(runs_of)):
            found = session.execute(
                select(_RUN_SCAFFOLDS)
                .where(_RUN_SCAFFOLDS.c.scaffold.in_(chunk))
                .order_by(_RUN_SCAFFOLDS.c.scaffold, _RUN_SCAFFOLDS.c.run_id)
            )
            for row in found:
                runs_of[row.scaffold].append({"run_id": row.run_id, **_finding(row)})
    return [{**_scaffold_dict(row), "found_by": runs_of[row.smiles]} for row in scaffolds]


def scaffold_svg(smiles: str) -> str:
    """Return a 2-D depiction of a scaffold or molecule as SVG (RDKit's drawer, cached)."""
    from store import chemistry

    if not isinstance(smiles, str) or len(smiles) > MAX_SMILES_LENGTH:
        raise ValueError(f"smiles must be a string of at most {MAX_SMILES_LENGTH} characters")
    return chemistry.depiction(smiles)
