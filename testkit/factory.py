"""Realistic training-run records, generated deterministically, and the pipeline that loads one.

A record is what the training pipeline knows about one run: the launch config
(the whole YAML, ~80 nested attributes), the final W&B summary (~120-170 flat
keys, ``objectives/<alias>/<stat>`` among them, NaN now and then), the final
W&B state, and the S3 keys of a crash report when it crashed::

    {"run_id", "wandb_run_id", "entity", "project", "chain_of_custody_id",
     "config", "state", "summary", "crash"}

Same ``n`` and ``seed`` give the same records on every machine (stdlib only).
"""

from __future__ import annotations

import argparse
import json
import math
import random
import string
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import store

ENTITY = "mango-lab"
PROJECT = "mango-moo"
CRASH_BUCKET = "mango-crash-reports"

# name -> (uniprot, direction, popularity): target activities are the common objectives.
OBJECTIVES: dict[str, tuple[str | None, str, float]] = {
    "COMT_activity": ("P21964", "maximize", 3.0),
    "DRD5_activity": ("P21918", "maximize", 3.0),
    "DRD2_activity": ("P14416", "maximize", 2.0),
    "ADRB2_activity": ("P07550", "maximize", 1.0),
    "HTR2A_activity": ("P28223", "maximize", 1.0),
    "JAK2_activity": ("O60674", "maximize", 1.0),
    "EGFR_activity": ("P00533", "maximize", 1.0),
    "hERG_liability": ("Q12809", "minimize", 1.5),
    "QED": (None, "maximize", 2.0),
    "SA_score": (None, "minimize", 1.5),
    "LogP": (None, "maximize", 0.5),
}
# How well each method does on average: compare_gradient_methods should have something to find.
GRADIENT_METHODS = {
    "mgda": 0.06,
    "pcgrad": 0.04,
    "cagrad": 0.05,
    "nash_mtl": 0.07,
    "imtl": 0.02,
    "linear_scalarization": 0.0,
    "aligned_mtl": 0.03,
}
# W&B run states, roughly as often as they show up in the project.
STATES = {"finished": 70, "crashed": 12, "failed": 6, "killed": 5, "running": 7}


def _sample_objectives(rng: random.Random) -> list[str]:
    # Weighted sampling without replacement (Efraimidis-Spirakis keys).
    count = rng.choice((2, 2, 3, 3, 3, 4, 4, 5, 6))
    keyed = sorted(OBJECTIVES, key=lambda name: -(rng.random() ** (1.0 / OBJECTIVES[name][2])))
    return keyed[:count]


def _objective_config(rng: random.Random, name: str) -> dict[str, Any]:
    uniprot, direction, _ = OBJECTIVES[name]
    params: dict[str, Any] = {"threshold": round(rng.uniform(0.3, 0.9), 2)}
    if uniprot is not None:
        params.update(
            uniprot=uniprot, checkpoint=f"s3://mango-models/{name.lower()}/v{rng.randint(1, 12)}.pt"
        )
    return {
        "name": name,
        "alias": f"{name}_{direction}",
        "weight": rng.choice((0.5, 1.0, 1.0, 1.0, 1.5, 2.0)),
        "direction": direction,
        "scorer": "oracle" if uniprot is None else "docking_surrogate",
        "params": params,
    }


def _training(rng: random.Random, method: str) -> dict[str, Any]:
    training: dict[str, Any] = {
        "batch_size": rng.choice((16, 32, 64, 64, 64, 128, 128, 256)),
        "learning_rate": rng.choice((1e-5, 3e-5, 1e-4, 1e-4, 3e-4, 1e-3)),
        "gradient_method": method,
        "gradient_accumulation_steps": rng.choice((1, 1, 2, 4, 8, 16)),
        "num_epochs": rng.randint(1, 40),
        "max_steps": rng.choice((2000, 5000, 10000, 20000, 50000)),
        "warmup_steps": rng.choice((0, 100, 500, 1000)),
        "weight_decay": rng.choice((0.0, 0.01, 0.05, 0.1)),
        "optimizer": rng.choice(("adamw", "adamw", "adam", "lion", "sgd")),
        "scheduler": rng.choice(("cosine", "linear", "constant_with_warmup", "polynomial")),
        "grad_clip": rng.choice((None, 0.5, 1.0, 5.0)),
        "mixed_precision": rng.choice(("bf16", "bf16", "fp16", "no")),
        "seed": rng.randrange(2**31),
        "eval_every": rng.choice((100, 250, 500)),
        "save_every": rng.choice((1000, 2500, 5000)),
        "log_every": rng.choice((1, 10, 10, 50)),
        "kl_coef": round(rng.uniform(0.0, 0.5), 3),
        "entropy_coef": round(rng.uniform(0.0, 0.05), 4),
        "sigma": rng.choice((60, 120, 240)),
        "num_samples_per_step": rng.choice((64, 128, 256, 512)),
        "replay_buffer_size": rng.choice((0, 1000, 10000)),
        "experience_replay": rng.random() < 0.5,
        "diversity_filter": rng.choice(("none", "identical_murcko", "scaffold_similarity")),
        "max_grad_norm": rng.choice((1.0, 10.0)),
        "adam_beta1": 0.9,
        "adam_beta2": rng.choice((0.95, 0.98, 0.999)),
        "adam_eps": rng.choice((1e-8, 1e-6)),
        "label_smoothing": rng.choice((0.0, 0.1)),
        "dropout": rng.choice((0.0, 0.1, 0.2)),
        "freeze_layers": rng.randint(0, 6),
        "ema_decay": rng.choice((None, 0.999, 0.9999)),
        "gradient_checkpointing": rng.random() < 0.3,
    }
    # Method-specific knobs appear only for their method, as in the real sweeps.
    if method == "mgda":
        training["mgda_normalization"] = rng.choice(("l2", "loss", "loss+", "none"))
    elif method == "cagrad":
        training["cagrad_c"] = rng.choice((0.2, 0.4, 0.5))
    elif method == "nash_mtl":
        training["nash_update_weights_every"] = rng.choice((1, 5, 25))
    elif method == "pcgrad":
        training["pcgrad_reduction"] = rng.choice(("mean", "sum"))
    return training


def _config(rng: random.Random, run_id: str) -> dict[str, Any]:
    method = rng.choice(list(GRADIENT_METHODS))
    objectives = [_objective_config(rng, name) for name in _sample_objectives(rng)]
    short_names = "-".join(o["name"].split("_")[0].lower() for o in objectives)
    return {
        "run_name": f"{method}-{short_names}-{run_id[-6:]}",
        "project": PROJECT,
        "tags": rng.sample(("baseline", "sweep", "ablation", "prod", "debug", "paper"), rng.randint(0, 3)),
        "git_commit": f"{rng.getrandbits(160):040x}",
        "training": _training(rng, method),
        "model": {
            "name": rng.choice(("reinvent-prior-v3", "chemgpt-1.2b", "molformer-xl", "smiles-lstm-large")),
            "hidden_size": rng.choice((256, 512, 1024, 2048)),
            "num_layers": rng.choice((3, 6, 12, 24)),
            "num_heads": rng.choice((4, 8, 16)),
            "vocab_size": rng.choice((64, 128, 512)),
            "max_length": rng.choice((128, 256)),
            "tokenizer": rng.choice(("smiles", "selfies")),
        },
        "objectives": objectives,
        "reward": {
            "aggregation": rng.choice(("weighted_sum", "geometric_mean", "chebyshev")),
            "normalization": rng.choice(("sigmoid", "minmax", "rank", "none")),
            "clip": rng.choice((None, [0.0, 1.0])),
            "penalty_invalid": -1.0,
        },
        "data": {
            "prior_dataset": rng.choice(("chembl33", "zinc250k", "guacamol")),
            "num_train": rng.choice((100_000, 250_000, 1_500_000)),
            "canonicalize": True,
        },
        "checkpoint": {
            "dir": f"s3://mango-checkpoints/{run_id}/",
            "keep_last": rng.choice((1, 3, 5)),
            "resume_from": rng.choice((None, None, "s3://mango-checkpoints/base/latest.pt")),
        },
        "logging": {
            "wandb_mode": "online",
            "log_gradients": rng.random() < 0.5,
            "log_molecules_every": rng.choice((100, 500)),
        },
        "infra": {
            "instance_type": rng.choice(("p4d.24xlarge", "p5.48xlarge", "g5.12xlarge", "g6e.xlarge")),
            "region": rng.choice(("us-east-1", "us-west-2", "eu-west-1")),
            "spot": rng.random() < 0.4,
            "num_gpus": rng.choice((1, 4, 8)),
            "docker_image": f"mango/train:{rng.randint(100, 400)}",
        },
    }


def _histogram(rng: random.Random, low: float, high: float, bins: int = 8) -> dict[str, Any]:
    width = (high - low) / bins
    return {
        "_type": "histogram",
        "bins": [round(low + i * width, 4) for i in range(bins + 1)],
        "values": [rng.randint(0, 500) for _ in range(bins)],
    }


def _objective_summary(rng: random.Random, objective: dict[str, Any], skill: float) -> dict[str, Any]:
    mean = min(0.99, max(0.05, rng.betavariate(4, 2.5) + skill))
    std = rng.uniform(0.01, 0.3)
    stats: dict[str, Any] = {
        "raw_mean": round(mean, 6),
        "normalized_mean": round(min(1.0, mean * rng.uniform(0.9, 1.1)), 6),
        # One sample in the final eval batch: W&B logs its std as NaN.
        "raw_std": math.nan if rng.random() < 0.01 else round(std, 6),
        "normalized_std": round(std * rng.uniform(0.8, 1.2), 6),
        "raw_max": round(min(1.0, mean + rng.uniform(0, 0.2)), 6),
        "raw_min": round(max(0.0, mean - rng.uniform(0, 0.4)), 6),
        "top10_mean": round(min(1.0, mean + rng.uniform(0.05, 0.3)), 4),
        "top100_mean": round(min(1.0, mean + rng.uniform(0.0, 0.15)), 4),
        "weight_effective": round(rng.uniform(0, 1), 4),
        "gradient_cosine": round(rng.uniform(-1, 1), 4),
        "fraction_above_threshold": round(rng.uniform(0, 1), 4),
    }
    return {f"objectives/{objective['alias']}/{stat}": value for stat, value in stats.items()}


def _summary(rng: random.Random, config: dict[str, Any], state: str) -> dict[str, Any]:
    training = config["training"]
    steps = training["max_steps"] if state == "finished" else rng.randint(1, training["max_steps"])
    runtime = steps * rng.uniform(0.2, 3.0)
    loss = round(rng.lognormvariate(-0.3, 0.7), 5)
    summary: dict[str, Any] = {
        "_step": steps,
        "_runtime": round(runtime, 3),
        "_timestamp": 1.75e9 + rng.uniform(0, 3e7),
        "_wandb": {"runtime": int(runtime)},
        "train/loss": loss,
        "train/lr": training["learning_rate"] * rng.uniform(0.0, 1.0),
        # An exploding gradient now and then: W&B keeps the infinity.
        "train/grad_norm": math.inf if rng.random() < 0.005 else round(rng.uniform(0.1, 20), 4),
        "train/kl": round(rng.uniform(0, 0.3), 5),
        "train/entropy": round(rng.uniform(0.5, 4), 4),
        "train/reward_mean": round(rng.uniform(0, 1), 5),
        "train/reward_std": round(rng.uniform(0, 0.4), 5),
        "train/valid_fraction": round(rng.uniform(0.6, 1.0), 4),
        "train/unique_fraction": round(rng.uniform(0.3, 1.0), 4),
        "train/novelty": round(rng.uniform(0.5, 1.0), 4),
        "train/scaffold_diversity": round(rng.uniform(0.1, 0.9), 4),
        "train/tokens_per_second": round(rng.uniform(1e3, 5e4), 1),
        "train/epoch": rng.randint(0, training["num_epochs"]),
        "train/loss_histogram": _histogram(rng, 0.0, 3.0),
        "train/reward_histogram": _histogram(rng, 0.0, 1.0),
        "eval/loss": round(loss * rng.uniform(0.9, 1.4), 5),
        "eval/hypervolume": round(rng.uniform(0, 1), 5),
        "eval/pareto_size": rng.randint(1, 500),
        "eval/igd": math.nan if rng.random() < 0.02 else round(rng.uniform(0, 0.5), 5),
        "eval/spacing": round(rng.uniform(0, 0.2), 5),
        "system/gpu_memory_allocated_gb": round(rng.uniform(5, 78), 2),
        "system/gpu_utilization": round(rng.uniform(20, 100), 1),
        "system/cpu_percent": round(rng.uniform(5, 100), 1),
        "system/disk_used_gb": round(rng.uniform(10, 400), 1),
    }
    for quantile in ("p10", "p50", "p90"):
        summary[f"train/reward_{quantile}"] = round(rng.uniform(0, 1), 5)
        summary[f"train/sequence_length_{quantile}"] = rng.randint(10, 120)
        summary[f"train/num_atoms_{quantile}"] = rng.randint(5, 60)
    for layer in range(rng.randint(48, 72)):
        summary[f"grad_norm/layer_{layer}"] = round(rng.uniform(0, 5), 4)
    skill = GRADIENT_METHODS[training["gradient_method"]]
    for objective in config["objectives"]:
        summary.update(_objective_summary(rng, objective, skill))
    return summary


def generate_runs(n: int, seed: int = 0) -> Iterator[dict[str, Any]]:
    """Yield ``n`` run records, the same ones for the same ``(n, seed)``."""
    rng = random.Random(seed)
    states, weights = list(STATES), list(STATES.values())
    for i in range(n):
        run_id = f"run-{seed:03d}-{i:07d}"
        config = _config(rng, run_id)
        state = rng.choices(states, weights)[0]
        record: dict[str, Any] = {
            "run_id": run_id,
            "wandb_run_id": "".join(rng.choices(string.ascii_lowercase + string.digits, k=8)),
            "entity": ENTITY,
            "project": config["project"],
            "chain_of_custody_id": f"coc-{rng.getrandbits(48):012x}",
            "config": config,
            "state": state,
            "summary": None if state == "running" else _summary(rng, config, state),
            "crash": None,
        }
        if state == "crashed":
            prefix = f"crash-reports/{run_id}"
            record["crash"] = {
                "bucket": CRASH_BUCKET,
                "keys": [f"{prefix}/error.log", f"{prefix}/report.md", f"{prefix}/analysis.md"],
            }
        yield record


def runs_file(text: str) -> Path:
    """The benchmarks' ``--runs-file`` argument: a file that exists."""
    path = Path(text)
    if not path.is_file():
        raise argparse.ArgumentTypeError(f"no such file: {text}")
    return path


def read_runs_file(path: str | Path) -> Iterator[dict[str, Any]]:
    """Yield the records of a JSONL file (bare NaN and Infinity tokens allowed).

    A line that is not a JSON object raises ValueError naming the file and the line.
    """
    with open(path, encoding="utf-8") as lines:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                raise ValueError(f"{path}, line {number}: not JSON ({error})") from None
            if not isinstance(record, dict):
                raise ValueError(f"{path}, line {number}: not a JSON object")
            yield record


def load_record(record: dict[str, Any]) -> None:
    """Feed one record through the public store API, call by call, as the pipeline does."""
    run_id = record["run_id"]
    store.insert_run(
        run_id,
        wandb_run_id=record["wandb_run_id"],
        config_dict=record["config"],
        chain_of_custody_id=record["chain_of_custody_id"],
        wandb_entity=record["entity"],
        wandb_project=record["project"],
    )
    store.update_run_status(run_id, record["state"], final_metrics_json=record["summary"])
    if record["crash"]:
        error_log, report, analysis = record["crash"]["keys"]
        store.attach_crash_data(
            run_id, error_log_s3_key=error_log, crash_report_s3_key=report, crash_analysis_s3_key=analysis
        )


# --- generated molecules, for run.molecules batches ------------------------------------------

# Real ring systems of drug-like molecules (benzene, pyridine, indole, piperidine, morpholine,
# quinoline, benzimidazole, ...), and substituents generative models put on them.
RING_SYSTEMS = (
    "c1ccccc1",
    "c1ccncc1",
    "c1cncnc1",
    "c1ccc2ccccc2c1",
    "c1ccc2[nH]ccc2c1",
    "c1ccc2ncccc2c1",
    "c1ccc2[nH]cnc2c1",
    "c1ccsc1",
    "c1ccoc1",
    "c1cn[nH]c1",
    "c1cscn1",
    "c1ncon1",
    "C1CCNCC1",
    "C1CCNC1",
    "C1COCCN1",
    "C1CNCCN1",
    "C1CCCCC1",
    "C1CC1",
    "O=C1CCCN1",
    "c1ccc2c(c1)CCN2",
)
LINKERS = ("", "C", "CC", "O", "N", "C(=O)N", "NC(=O)", "S(=O)(=O)N", "OC", "C=C")
SUBSTITUENTS = ("C", "CC", "O", "N", "F", "Cl", "Br", "OC", "C#N", "C(F)(F)F", "C(=O)O", "C(=O)N", "N(C)C", "CCO")
ACYCLIC = ("CCO", "CC(C)CO", "NCCCN", "CC(=O)OCC", "CCCCCCCC(=O)O", "OCC(O)CO")
# What a generator emits now and then that RDKit cannot read.
INVALID = ("C1CC", "c1cccc1", "CC(C", "C%99", "N(=O)(=O)(=O)C", "xyz")


def _attachable(molecule: Any, ring_only: bool = False) -> list[int]:
    return [
        atom.GetIdx()
        for atom in molecule.GetAtoms()
        if atom.GetTotalNumHs() > 0 and (atom.IsInRing() or not ring_only)
    ]


def _join(rng: random.Random, left: Any, right: Any, linker: str, ring_only: bool = False) -> Any:
    """Bond an atom of ``left`` to an atom of ``right`` through ``linker``; None when RDKit refuses."""
    from rdkit import Chem

    left_atoms, right_atoms = _attachable(left, ring_only), _attachable(right)
    if not left_atoms or not right_atoms:
        return None
    parts = [left] + ([Chem.MolFromSmiles(linker)] if linker else []) + [right]
    combined = parts[0]
    for part in parts[1:]:
        combined = Chem.CombineMols(combined, part)
    editable = Chem.RWMol(combined)
    offset = left.GetNumAtoms()
    a = rng.choice(left_atoms)
    if linker:
        linker_atoms = parts[1].GetNumAtoms()
        editable.AddBond(a, offset, Chem.BondType.SINGLE)
        end = offset + linker_atoms - 1 if linker_atoms > 1 else offset
        b = offset + linker_atoms + rng.choice(right_atoms)
        editable.AddBond(end, b, Chem.BondType.SINGLE)
    else:
        editable.AddBond(a, offset + rng.choice(right_atoms), Chem.BondType.SINGLE)
    molecule = editable.GetMol()
    try:
        Chem.SanitizeMol(molecule)
    except (ValueError, RuntimeError):
        return None
    return molecule


def generate_scaffolds(n: int, seed: int = 0) -> list[str]:
    """Return ``n`` distinct ring scaffolds (canonical SMILES): ring systems joined by linkers."""
    from rdkit import Chem

    from store.chemistry import analyse

    rng = random.Random(seed)
    rings = [Chem.MolFromSmiles(smiles) for smiles in RING_SYSTEMS]
    found: dict[str, None] = {}
    for ring in RING_SYSTEMS:
        found.setdefault(analyse(ring).scaffold)
    while len(found) < n:
        molecule = rng.choice(rings)
        for _ in range(rng.choice((1, 1, 2, 2, 3))):
            joined = _join(rng, molecule, rng.choice(rings), rng.choice(LINKERS))
            molecule = joined if joined is not None else molecule
        structure = analyse(Chem.MolToSmiles(molecule))
        if structure is not None and structure.scaffold:
            found.setdefault(structure.scaffold)
    return list(found)[:n]


def decorate(rng: random.Random, scaffold: str) -> str:
    """Return a molecule of ``scaffold``: one to three substituents on its ring atoms."""
    from rdkit import Chem

    molecule = Chem.MolFromSmiles(scaffold)
    for _ in range(rng.choice((1, 1, 2, 3))):
        substituent = Chem.MolFromSmiles(rng.choice(SUBSTITUENTS))
        joined = _join(rng, molecule, substituent, "", ring_only=True)
        molecule = joined if joined is not None else molecule
    return Chem.MolToSmiles(molecule)


def molecule_batches(
    run_id: str,
    batches: int,
    size: int = 100,
    seed: int = 0,
    scaffolds: list[str] | None = None,
    objectives: tuple[str, ...] = ("QED", "SA_score"),
) -> Iterator[dict[str, Any]]:
    """Yield a run's ``run.molecules`` data, as an RL run generates them, the same for the same arguments.

    The run favours a few scaffolds (drawn from ``scaffolds``, or the ring systems) more and more
    as it trains, repeats molecules it already made, and now and then emits an acyclic molecule
    or a SMILES RDKit cannot read.
    """
    rng = random.Random(f"{seed}:{run_id}")
    pool = scaffolds or [RING_SYSTEMS[i] for i in range(len(RING_SYSTEMS))]
    favourites = rng.sample(pool, min(len(pool), rng.randint(3, 12)))
    made: list[str] = []
    for index in range(batches):
        step = (index + 1) * 50
        molecules = []
        for _ in range(size):
            draw = rng.random()
            if draw < 0.02:
                smiles = rng.choice(INVALID)
            elif draw < 0.05:
                smiles = rng.choice(ACYCLIC)
            elif made and draw < 0.35:
                smiles = rng.choice(made)
            else:
                weights = [1.0 / (rank + 1) ** (1 + index / max(batches, 1)) for rank in range(len(favourites))]
                smiles = decorate(rng, rng.choices(favourites, weights)[0])
                made.append(smiles)
            molecule: dict[str, Any] = {"smiles": smiles, "reward": round(rng.random(), 4)}
            molecule["scores"] = {name: round(rng.random(), 4) for name in objectives}
            molecules.append(molecule)
        yield {"run_id": run_id, "batch_id": f"{run_id}-batch-{index:05d}", "step": step, "molecules": molecules}
