"""Molecules with RDKit: canonical SMILES, Bemis-Murcko scaffolds, substructure search, depictions.

The only module that imports RDKit. A molecule is parsed once and sanitized; what cannot be
parsed is reported as ``None``, never raised: a generated batch holds invalid SMILES as a
matter of course.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from functools import lru_cache
from typing import NamedTuple

from rdkit import Chem, rdBase
from rdkit.Chem import rdSubstructLibrary
from rdkit.Chem.Draw import rdMolDraw2D
from rdkit.Chem.Scaffolds import MurckoScaffold

# RDKit logs every SMILES it cannot parse to stderr; an invalid molecule is counted instead.
rdBase.DisableLog("rdApp.*")

# Scaffolds are far fewer than molecules: a few in a thousand (store/analyses.py keeps the
# molecules' analyses).
GENERIC_CACHE_SIZE = 65_536
DEPICTION_CACHE_SIZE = 4_096


class Structure(NamedTuple):
    """A valid molecule: its canonical SMILES and its Bemis-Murcko scaffold ("" when acyclic)."""

    smiles: str
    scaffold: str


def analyse(smiles: str) -> Structure | None:
    """Return the molecule's canonical SMILES and scaffold, or None when RDKit cannot parse it."""
    molecule = Chem.MolFromSmiles(smiles)
    if molecule is None or molecule.GetNumAtoms() == 0:
        return None
    return Structure(Chem.MolToSmiles(molecule), _scaffold(molecule))


def _scaffold(molecule: Chem.Mol) -> str:
    # Without stereochemistry, as RDKit's own MurckoScaffoldSmiles: the enantiomers of a
    # molecule share one framework. (RDKit's stubs leave its Python MurckoScaffold module unannotated.)
    scaffold = MurckoScaffold.GetScaffoldForMol(molecule)  # type: ignore[no-untyped-call]
    return Chem.MolToSmiles(scaffold, isomericSmiles=False)


@lru_cache(maxsize=GENERIC_CACHE_SIZE)
def generic_scaffold(scaffold: str) -> str | None:
    """Return the scaffold with every atom a carbon and every bond single ("" for ""; None if RDKit fails)."""
    if not scaffold:
        return ""
    molecule = Chem.MolFromSmiles(scaffold)
    if molecule is None:
        return None
    try:
        # RDKit's stubs leave its Python MurckoScaffold module unannotated.
        generic = MurckoScaffold.MakeScaffoldGeneric(molecule)  # type: ignore[no-untyped-call]
        return Chem.MolToSmiles(generic)
    except (RuntimeError, ValueError):
        # Valences a carbon cannot hold (a hypervalent sulfur made carbon) fail to sanitize.
        return None


def scaffold_of(smiles: str) -> str:
    """Return the scaffold of a molecule or of a scaffold, as stored; ValueError if it cannot be parsed."""
    structure = analyse(smiles)
    if structure is None:
        raise ValueError(f"RDKit cannot parse the SMILES {smiles!r}")
    return structure.scaffold


# Written only in SMARTS: atom lists and logic, any bond, any atom, an atomic number.
_SMARTS_ONLY = ("~", "*", ",", ";", "&", "!", "$(", "[#")


def pattern(text: str) -> Chem.Mol:
    """Return a substructure query from SMARTS when ``text`` uses SMARTS' own syntax, else from
    SMILES (aromaticity perceived: C1=CC=CC=C1 finds benzene rings), else SMARTS; ValueError if none.

    RDKit reads "[#6]" as SMILES too, as a carbon radical that matches no aromatic carbon.
    """
    query = None
    if text and not any(token in text for token in _SMARTS_ONLY):
        query = Chem.MolFromSmiles(text)
    if query is None and text:
        query = Chem.MolFromSmarts(text)
    if query is None or query.GetNumAtoms() == 0:
        raise ValueError(f"RDKit reads {text!r} neither as SMILES nor as SMARTS")
    return query


def contains(smiles: str, query: Chem.Mol) -> bool:
    """Tell whether the molecule ``smiles`` contains ``query`` (no screening: for checks)."""
    molecule = Chem.MolFromSmiles(smiles)
    return molecule is not None and molecule.HasSubstructMatch(query)


class ScaffoldLibrary:
    """Scaffolds held for substructure search: pattern fingerprints screen, then atoms are matched.

    Scaffolds are added as they appear in the database; the library is never rebuilt.
    """

    def __init__(self) -> None:
        self.molecules = rdSubstructLibrary.CachedTrustedSmilesMolHolder()
        self.fingerprints = rdSubstructLibrary.PatternHolder()
        self.library = rdSubstructLibrary.SubstructLibrary(self.molecules, self.fingerprints)
        self.smiles: list[str] = []
        self.index: dict[str, int] = {}
        # Every scaffold offered, held or not (RDKit may fail to read one back).
        self.known: set[str] = set()
        # Held while scaffolds are added and while a search sets the library's search order.
        self.searching = threading.Lock()

    def add(self, scaffolds: Iterable[str]) -> None:
        """Add scaffolds not held yet (canonical SMILES, as stored)."""
        for smiles in scaffolds:
            if smiles in self.known:
                continue
            self.known.add(smiles)
            molecule = _trusted(smiles)
            if molecule is None:
                continue
            fingerprint = self.fingerprints.MakeFingerprint(molecule)
            with self.searching:
                self.index[smiles] = len(self.smiles)
                self.molecules.AddSmiles(smiles)
                self.fingerprints.AddFingerprint(fingerprint)
                self.smiles.append(smiles)

    def matches(self, query: Chem.Mol) -> list[str]:
        """Return every held scaffold that contains ``query``."""
        if not self.smiles:
            return []
        with self.searching:
            found = self.library.GetMatches(query, maxResults=len(self.smiles))
        return [self.smiles[index] for index in found]

    def first_matches(self, query: Chem.Mol, among: Sequence[str], most: int) -> list[str]:
        """Return the first ``most`` scaffolds of ``among``, in its order, that contain ``query``.

        The search stops at the ``most``-th match: a common pattern is answered from the first
        few hundred scaffolds instead of every one held.
        """
        order = [self.index[smiles] for smiles in among if smiles in self.index]
        if not order or most <= 0:
            return []
        with self.searching:
            self.library.SetSearchOrder(order)
            try:
                # One thread: several would each stop at ``most`` in their own stride of the order.
                found = self.library.GetMatches(query, 0, len(order), numThreads=1, maxResults=most)
            finally:
                self.library.SetSearchOrder([])
        return [self.smiles[index] for index in found]


def _trusted(smiles: str) -> Chem.Mol | None:
    """Read a SMILES RDKit wrote itself as the trusted holder reads it back, without sanitizing.

    Sanitizing took a large share of building the library (bench/RESULTS.md, "Figures from the
    code"); the pattern fingerprints of every scaffold came out identical without it.
    """
    molecule = Chem.MolFromSmiles(smiles, sanitize=False)
    if molecule is None:
        return None
    molecule.UpdatePropertyCache(strict=False)
    Chem.FastFindRings(molecule)
    return molecule


@lru_cache(maxsize=DEPICTION_CACHE_SIZE)
def depiction(smiles: str, width: int = 300, height: int = 200) -> str:
    """Return a 2-D depiction of the molecule as SVG text; ValueError if it cannot be parsed."""
    molecule = Chem.MolFromSmiles(smiles) if smiles else None
    if molecule is None:
        raise ValueError(f"RDKit cannot parse the SMILES {smiles!r}")
    drawer = rdMolDraw2D.MolDraw2DSVG(width, height)
    rdMolDraw2D.PrepareAndDrawMolecule(drawer, molecule)
    drawer.FinishDrawing()
    return drawer.GetDrawingText()
