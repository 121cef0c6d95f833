"""Molecule analyses shared by every worker: RDKit analyses each distinct SMILES once.

Reinforcement-learning runs generate the same molecules again and again, within a run and across
runs started from the same prior. A batch's SMILES are looked up first in this process's memory
(the most recent ``IN_MEMORY``), then in the database's ``molecule_analyses`` table, where every
process keeps what it analysed; only the rest go to RDKit. So a molecule that one worker analysed
is not analysed again by another, nor by a worker started since (a deploy, a restart).

The table is a cache, not data: it keeps its newest rows, as many as ``configure_kept`` says
(``MOLECULE_ANALYSES_KEPT``; 0 shares nothing), and a row is found by a digest of the RDKit
version and the SMILES as given, so that another RDKit version analyses anew (its canonical
SMILES may differ) while the old version's rows age out.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from itertools import islice, repeat
from operator import is_
from typing import TYPE_CHECKING, Any

from sqlalchemy import LargeBinary, any_, bindparam, delete, func, select
from sqlalchemy.dialects import postgresql, sqlite

from store.database import connect
from store.direct import Direct, insert_from_arrays
from store.schema import molecule_analyses

if TYPE_CHECKING:
    from store.chemistry import Structure

# An analysis takes about 320 bytes of this process's memory (21 MB when full) and a row about
# 170 bytes of the database's, indexes included (170 MB when full): bench/RESULTS.md, "Figures
# from the code".
IN_MEMORY = 65_536
DEFAULT_KEPT = 1_000_000
# Digests per statement: SQLite takes at most 32,766 parameters in one.
_CHUNK = 500

_table = molecule_analyses
_recent: dict[str, Structure | None] = {}
_UNKNOWN: Any = object()
_version: bytes | None = None
_kept = DEFAULT_KEPT


def configure_kept(rows: int) -> None:
    """Keep the newest ``rows`` analyses in the database for every worker; 0 keeps none there."""
    global _kept
    if isinstance(rows, bool) or not isinstance(rows, int) or rows < 0:
        raise ValueError(f"the molecule analyses kept must be a non-negative integer, not {rows!r}")
    _kept = rows


def _digest(smiles: str) -> bytes:
    global _version
    if _version is None:
        from rdkit import rdBase

        _version = rdBase.rdkitVersion.encode() + b"\n"
    return hashlib.blake2b(_version + smiles.encode(), digest_size=16).digest()


def analyse_all(smiles: Sequence[str]) -> list[Structure | None]:
    """Return each molecule's canonical SMILES and scaffold, None where RDKit cannot parse it."""
    from store import chemistry

    # Every SMILES looked up in C: RL runs repeat theirs, and a batch all in memory is done.
    found = list(map(_recent.get, smiles, repeat(_UNKNOWN)))
    if not any(map(is_, found, repeat(_UNKNOWN))):
        return found
    missing = list({text for text, structure in zip(smiles, found, strict=True) if structure is _UNKNOWN})
    if _kept:
        known = _shared(missing)
    else:
        known = {text: chemistry.analyse(text) for text in missing}
    _remember(known)
    return [
        known[text] if structure is _UNKNOWN else structure
        for text, structure in zip(smiles, found, strict=True)
    ]


def _shared(missing: list[str]) -> dict[str, Structure | None]:
    """The analyses other processes kept in the database, and RDKit's of the rest, kept there too."""
    from store import chemistry

    by_digest = {_digest(text): text for text in missing}
    found = dict(_read(by_digest))
    new = {digest: text for digest, text in by_digest.items() if text not in found}
    if new:
        analysed = {digest: chemistry.analyse(text) for digest, text in new.items()}
        _write(analysed)
        found.update((new[digest], structure) for digest, structure in analysed.items())
    return found


def _read(missing: dict[bytes, str]) -> Iterable[tuple[str, Structure | None]]:
    from store.chemistry import Structure

    digests = list(missing)
    with connect(begin=False) as connection:
        found: list[tuple[Any, ...]]
        if connection.dialect.name == "postgresql":
            found = [
                tuple(row.values()) for row in _FOUND_ON_POSTGRESQL.execute(connection, {"digests": digests})
            ]
        else:
            found = [
                tuple(row)
                for start in range(0, len(digests), _CHUNK)
                for row in connection.execute(_FOUND, {"digests": digests[start : start + _CHUNK]})
            ]
    for digest, canonical, scaffold in found:
        yield missing[digest], None if canonical is None else Structure(canonical, scaffold)


def _write(analysed: dict[bytes, Structure | None]) -> None:
    """Keep new analyses for every process, then drop the oldest beyond the number kept.

    Another process may have written some of them meanwhile: its row stays, the same analysis.
    """
    # In digest order, as every process writes: two that write the same new SMILES at once wait
    # for each other's row in the same order, never each for the other's.
    analysed = dict(sorted(analysed.items()))
    rows = {
        "digest": list(analysed),
        "smiles": [None if structure is None else structure.smiles for structure in analysed.values()],
        "scaffold": [None if structure is None else structure.scaffold for structure in analysed.values()],
    }
    with connect() as connection:
        if connection.dialect.name == "postgresql":
            _KEEP_ON_POSTGRESQL.execute(connection, rows)
        else:
            listed = [dict(zip(rows, values, strict=True)) for values in zip(*rows.values(), strict=True)]
            for start in range(0, len(listed), _CHUNK):
                connection.execute(_KEEP_ON_SQLITE, listed[start : start + _CHUNK])
        connection.execute(_PRUNE, {"kept": _kept})


_COLUMNS = (_table.c.digest, _table.c.smiles, _table.c.scaffold)
_FOUND = select(*_COLUMNS).where(_table.c.digest.in_(bindparam("digests", expanding=True)))
_FOUND_ON_POSTGRESQL = Direct(
    select(*_COLUMNS).where(
        _table.c.digest == any_(bindparam("digests", type_=postgresql.ARRAY(LargeBinary)))
    )
)
_KEEP_ON_POSTGRESQL = Direct(
    insert_from_arrays(_table, [column.key for column in _COLUMNS]).on_conflict_do_nothing()
)
_KEEP_ON_SQLITE = sqlite.insert(_table).on_conflict_do_nothing()
_PRUNE = delete(_table).where(
    _table.c.seq <= select(func.max(_table.c.seq)).scalar_subquery() - bindparam("kept")
)


def _remember(known: dict[str, Structure | None]) -> None:
    _recent.update(known)
    if len(_recent) > IN_MEMORY:
        # The oldest quarter goes: the database still has them.
        for text in list(islice(_recent, len(_recent) - IN_MEMORY * 3 // 4)):
            _recent.pop(text, None)
