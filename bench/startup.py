"""CLI start-up benchmark: how long each `training-db` call takes against Python importing its libraries.

Runs every command and its baseline in the same run, interleaved round by round so that the
machine's load weighs on both alike, and prints each median (wall clock, and CPU time), its ratio
to the baseline and whether the target (on the wall clock) is met:

- `training-db --help` within 3x of `python -c "import click"`;
- `training-db runs --limit 1` on SQLite within 1.5x of `python -c "import sqlalchemy, click"`.

The other commands are timed against the same baselines, without a target. Read commands run on
an SQLite database migrated in a temporary folder, with 100 runs in it. The checkout's packages
are compiled to bytecode first, as an installed package's are: the libraries of the baselines
are, and with PYTHONDONTWRITEBYTECODE set (as in some sandboxes) every call would otherwise
compile the project's modules anew. Uses the checkout's .venv (`make install`):

    .venv/bin/python bench/startup.py               # 30 rounds, about a minute
    .venv/bin/python bench/startup.py --rounds 100

Exit status 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = ROOT / ".venv" / "bin"
PACKAGES = ("ingest", "store", "handlers", "web")
CLICK = "import click"
SQLALCHEMY = "import sqlalchemy, click"
# (what is run, its baseline, the target ratio or None)
CASES: list[tuple[str, str, float | None]] = [
    ("--help", CLICK, 3.0),
    ("--version", CLICK, None),
    ("runs --help", CLICK, None),
    ("runs --limit 1", SQLALCHEMY, 1.5),
    ("run bench-0", SQLALCHEMY, None),
    ("stats", SQLALCHEMY, None),
    ("events --limit 1", SQLALCHEMY, None),
    ("info", SQLALCHEMY, None),
]


def timed(command: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Return the wall-clock seconds ``command`` takes and the CPU seconds it used; fail loudly if it fails."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(command, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime


def prepare(folder: Path) -> dict[str, str]:
    """Migrate an SQLite database in ``folder``, load 100 runs, and return the environment that points at it."""
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{folder / 'runs.db'}"}
    subprocess.run([str(BIN / "training-db"), "migrate"], env=env, check=True, capture_output=True)
    load = (
        "import store; from ingest.settings import database_url; store.configure(database_url()); "
        "store.load_runs([{'run_id': f'bench-{i}', 'state': 'finished', "
        "'config': {'gradient_method': 'adam', 'batch_size': 32}, 'summary': {'loss': 0.5}} for i in range(100)])"
    )
    subprocess.run([str(BIN / "python"), "-c", load], env=env, check=True, cwd=folder)
    return env


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--rounds", type=int, default=30, help="Times each command and baseline runs (default 30)."
    )
    args = parser.parse_args()
    if not (BIN / "training-db").exists():
        sys.exit(f"{BIN / 'training-db'} is missing: run `make install` first")
    # By the interpreter the commands run on: bytecode files are named after it.
    packages = [str(ROOT / package) for package in PACKAGES]
    subprocess.run([str(BIN / "python"), "-m", "compileall", "-q", *packages], check=True)

    with tempfile.TemporaryDirectory() as folder:
        env = prepare(Path(folder))
        runs: dict[str, list[str]] = {
            CLICK: [str(BIN / "python"), "-c", CLICK],
            SQLALCHEMY: [str(BIN / "python"), "-c", SQLALCHEMY],
        }
        runs.update({case: [str(BIN / "training-db"), *case.split()] for case, _, _ in CASES})
        times: dict[str, list[float]] = {name: [] for name in runs}
        cpu: dict[str, list[float]] = {name: [] for name in runs}
        for _ in range(args.rounds):
            for name, command in runs.items():
                wall, used = timed(command, env)
                times[name].append(wall)
                cpu[name].append(used)

    median = {name: statistics.median(values) for name, values in times.items()}
    median_cpu = {name: statistics.median(values) for name, values in cpu.items()}
    print(f"{args.rounds} rounds; load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    # The verdict is on wall-clock time; the CPU time is shown beside it because, on a loaded
    # machine, waiting for a core weighs on the wall clock of each call differently.
    print(f"{'command':<34} {'median ms':>9} {'cpu ms':>6} {'baseline':>26} {'ratio':>6} {'cpu':>5}  target")
    for baseline in (CLICK, SQLALCHEMY):
        print(
            f"{'python -c ' + repr(baseline):<34} {median[baseline] * 1000:>9.0f} "
            f"{median_cpu[baseline] * 1000:>6.0f} {'(baseline)':>26}"
        )
    missed = 0
    for case, baseline, target in CASES:
        ratio = median[case] / median[baseline]
        cpu_ratio = median_cpu[case] / median_cpu[baseline]
        verdict = ""
        if target is not None:
            met = ratio <= target
            missed += not met
            verdict = f"<= {target:g}x: {'met' if met else 'MISSED'}"
        print(
            f"{'training-db ' + case:<34} {median[case] * 1000:>9.0f} {median_cpu[case] * 1000:>6.0f} "
            f"{baseline:>26} {ratio:>6.2f} {cpu_ratio:>5.2f}  {verdict}"
        )
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
