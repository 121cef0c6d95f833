"""`training-db scaffolds` and `diversity`: what a user reads back."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import time
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

import store
from ingest.cli import main
from store import scaffolds
from tests.faults.services import BIN, free_port, running, service_env, wait_until_ready

ASPIRIN = "CC(=O)Oc1ccccc1C(=O)O"
NICOTINE = "CN1CCC[C@H]1c1cccnc1"


def invoke(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


@pytest.fixture
def recorded(db: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Three runs of two methods; wide tables so that no cell is cut."""
    monkeypatch.setenv("COLUMNS", "250")
    monkeypatch.setattr(scaffolds, "_libraries", {})
    for run_id, method in (("r1", "mgda"), ("r2", "mgda"), ("r3", "pcgrad")):
        store.insert_run(run_id, config_dict={"training": {"gradient_method": method}})
    store.record_molecules("r1", "b1", 10, [{"smiles": ASPIRIN, "reward": 0.5, "scores": {"QED": 0.6}},
                                            {"smiles": NICOTINE, "reward": 0.2}, {"smiles": "C1CC"}])  # fmt: skip
    store.record_molecules("r2", "b1", 20, [{"smiles": "Oc1ccccc1", "reward": 0.9}])
    store.record_molecules("r3", "b1", 30, [{"smiles": NICOTINE, "reward": 0.4}, {"smiles": "CCO"}])


def test_a_runs_scaffolds_come_with_its_counts(recorded):
    result = invoke("scaffolds", "r1")

    assert result.exit_code == 0, result.output
    assert "run r1: 3 molecules, 2 valid, 1 invalid, 0 acyclic, 2 distinct scaffolds" in result.output
    assert "c1cncc(C2CCCN2)c1" in result.output
    assert "objective.QED.best" in result.output


def test_a_runs_scaffolds_as_json_and_csv(recorded):
    answer = json.loads(invoke("scaffolds", "r1", "--format", "json", "--order-by", "best_reward").output)
    assert answer["valid"] == 2
    assert [row["scaffold"] for row in answer["scaffolds"]] == ["c1ccccc1", "c1cncc(C2CCCN2)c1"]
    assert answer["scaffolds"][0]["objectives"]["QED"]["best"] == 0.6

    table = list(csv.DictReader(io.StringIO(invoke("scaffolds", "r1", "--format", "csv").output)))
    assert [row["scaffold"] for row in table] == ["c1ccccc1", "c1cncc(C2CCCN2)c1"]
    assert table[0]["objective.QED.mean"] == "0.6"


def test_top_scaffolds_across_runs_and_of_the_runs_a_filter_selects(recorded):
    top = json.loads(invoke("scaffolds", "--top", "--format", "json").output)
    assert [(row["scaffold"], row["runs"], row["best_run_id"]) for row in top] == [
        ("c1ccccc1", 2, "r2"),
        ("c1cncc(C2CCCN2)c1", 2, "r3"),
    ]

    result = invoke("scaffolds", "--top", "--where", "gradient_method=pcgrad", "--format", "csv")
    assert list(csv.DictReader(io.StringIO(result.output)))[0]["scaffold"] == "c1cncc(C2CCCN2)c1"
    assert len(result.output.splitlines()) == 2
    filtered = invoke("scaffolds", "--top", "--filter", "gradient_method = 'mgda' and run_id != 'r2'", "--format", "json")
    assert [(row["scaffold"], row["runs"]) for row in json.loads(filtered.output)] == [
        ("c1ccccc1", 1),
        ("c1cncc(C2CCCN2)c1", 1),
    ]


def test_contains_and_find_list_the_runs_that_found_the_scaffolds(recorded):
    result = invoke("scaffolds", "--contains", "c1ccncc1")
    assert result.exit_code == 0, result.output
    assert "r1 r3" in result.output
    assert "c1ccccc1 " not in result.output

    found = json.loads(invoke("scaffolds", "--find", "Cc1ccccc1", "--format", "json").output)
    assert [run["run_id"] for run in found[0]["found_by"]] == ["r1", "r2"]


def test_diversity_by_gradient_method(recorded):
    groups = json.loads(invoke("diversity", "--by", "gradient_method", "--format", "json").output)

    assert [(g["gradient_method"], g["runs"], g["mean_scaffolds_per_run"]) for g in groups] == [
        ("mgda", 2, 1.5),
        ("pcgrad", 1, 1.0),
    ]
    assert "scaffold diversity by gradient_method" in invoke("diversity").output
    pcgrad = json.loads(invoke("diversity", "--filter", "gradient_method = 'pcgrad'", "--format", "json").output)
    assert [group["gradient_method"] for group in pcgrad] == ["pcgrad"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("scaffolds", "nope"), "Error: no molecules recorded for run nope"),
        (("scaffolds", "--contains", "C(("), "Error: RDKit reads 'C((' neither as SMILES nor as SMARTS"),
        (("scaffolds", "--find", "C1CC"), "Error: RDKit cannot parse the SMILES 'C1CC'"),
        (("scaffolds",), "Error: give exactly one of RUN_ID, --top, --contains or --find"),
        (("scaffolds", "r1", "--top"), "Error: give exactly one of RUN_ID, --top, --contains or --find"),
        (("scaffolds", "--top", "--where", "colour=red"), "Error: unknown field 'colour'"),
        (("scaffolds", "r1", "--order-by", "runs"), "Error: --order-by for a run is one of"),
        (("diversity", "--by", "summary.loss"), "Error: diversity groups runs by a run field"),
        (("diversity", "--filter", "x", "--where", "status=completed"), "Error: give --where or --filter, not both"),
        (("scaffolds", "r1", "--filter", "status = 'completed'"), "Error: --where and --filter go with --top"),
        (("scaffolds", "--top", "--filter", "gradient_method = "), "Error: "),
    ],
)
def test_bad_input_is_one_line_and_a_non_zero_exit(recorded, args, message):
    result = invoke(*args)

    assert result.exit_code != 0
    assert message in result.output
    assert "Traceback" not in result.output


def test_send_posts_a_batch_file_that_a_served_worker_applies(tmp_path: Path) -> None:
    database_url = f"sqlite:///{tmp_path}/training_runs.db"
    env = service_env(database_url)
    subprocess.run([str(BIN / "training-db"), "migrate"], env=env, check=True, capture_output=True)
    url = f"http://127.0.0.1:{free_port()}"
    batch = tmp_path / "batch.json"
    batch.write_text(json.dumps({"run_id": "r1", "batch_id": "b1", "step": 5,
                                 "molecules": [{"smiles": ASPIRIN, "reward": 0.5}, {"smiles": "C1CC"}]}))  # fmt: skip
    serve = [str(BIN / "training-db"), "serve", "--with-worker", "--bind", url.removeprefix("http://")]
    send = [str(BIN / "training-db"), "send", "run.molecules", "--data", f"@{batch}", "--url", url]

    with running(serve, env, tmp_path / "serve.log"):
        wait_until_ready(url)
        sent = subprocess.run(send, env=env, capture_output=True, text=True, timeout=60)
        assert sent.returncode == 0, sent.stderr
        assert json.loads(sent.stdout)["status"] == "accepted"
        store.configure(database_url)
        deadline = time.monotonic() + 60
        while store.get_run_molecules("r1") is None and time.monotonic() < deadline:
            time.sleep(0.1)

    assert store.get_run_molecules("r1")["invalid"] == 1
    assert [row["scaffold"] for row in store.get_run_scaffolds("r1")] == ["c1ccccc1"]


def test_send_without_a_run_id_anywhere_is_refused_in_one_line():
    result = invoke("send", "run.molecules", "--data", '{"batch_id": "b1", "step": 0, "molecules": []}')

    assert result.exit_code == 2
    assert "Error: give --run-id, or a run_id in --data" in result.output
