"""run.molecules through the real app and worker: signed batches in, scaffolds out."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as examples
from hypothesis import strategies as st
from sqlalchemy import func, select

import store
from ingest.worker import Worker
from store import analyses, database, inbox
from store.models import Base
from store.schema import molecule_analyses
from testkit.factory import generate_scaffolds, molecule_batches
from tests.webhooks import fixture, fixture_json, pipeline_event, post_pipeline

RUN_ID = "run-000-0000042"


def drain(worker: Worker) -> None:
    while worker.run_once():
        pass


def test_a_batch_is_accepted_then_its_molecules_become_the_runs_scaffolds(client, worker):
    response = post_pipeline(client, fixture("pipeline", "run_molecules__batch"))

    assert response.status_code == 202
    assert response.json["status"] == "accepted"
    drain(worker)
    assert {row["scaffold"]: row["best_smiles"] for row in store.get_run_scaffolds(RUN_ID)} == {
        "c1ccccc1": "CC(=O)Oc1ccccc1C(=O)O",
        "O=c1[nH]c(=O)c2[nH]cnc2[nH]1": "Cn1c(=O)c2c(ncn2C)n(C)c1=O",
        "c1cncc(C2CCCN2)c1": "CN1CCC[C@H]1c1cccnc1",
        "": "CCCCCCCC(=O)O",
    }
    counts = store.get_run_molecules(RUN_ID)
    assert (counts["molecules"], counts["valid"], counts["invalid"], counts["acyclic"]) == (6, 5, 1, 1)
    assert counts["distinct_scaffolds"] == 3


@pytest.mark.parametrize(("kept", "rows"), [(None, 6), (0, 0)], ids=["default", "none kept"])
def test_the_workers_share_the_batchs_analyses_unless_told_to_keep_none(client, settings, monkeypatch, kept, rows):
    monkeypatch.setattr(analyses, "_recent", {})
    if kept is not None:
        settings = settings.model_copy(update={"molecule_analyses_kept": kept})
    worker = Worker(settings)
    try:
        post_pipeline(client, fixture("pipeline", "run_molecules__batch"))
        drain(worker)
    finally:
        analyses.configure_kept(analyses.DEFAULT_KEPT)

    assert store.get_run_molecules(RUN_ID)["valid"] == 5
    with store.get_engine().connect() as connection:
        assert connection.execute(select(func.count()).select_from(molecule_analyses)).scalar_one() == rows


def test_a_batch_sent_again_under_a_new_delivery_id_is_done_and_changes_nothing(client, worker):
    body = fixture("pipeline", "run_molecules__batch")
    post_pipeline(client, body, webhook_id="msg_first")
    drain(worker)
    before = store.get_run_scaffolds(RUN_ID), store.get_run_molecules(RUN_ID)

    post_pipeline(client, body, webhook_id="msg_second")
    drain(worker)

    assert (store.get_run_scaffolds(RUN_ID), store.get_run_molecules(RUN_ID)) == before
    assert dict(inbox.counts()) == {("pipeline", "done"): 2}


@pytest.mark.parametrize(
    ("data", "location"),
    [
        ({"step": 1, "molecules": []}, ["run.molecules", "data", "batch_id"]),
        ({"batch_id": "b", "step": -5, "molecules": []}, ["run.molecules", "data", "step"]),
        ({"batch_id": "b", "step": 1, "molecules": "CCO"}, ["run.molecules", "data", "molecules"]),
        (
            {"batch_id": "b", "step": 1, "molecules": [{"smiles": "CCO", "reward": "high"}]},
            ["run.molecules", "data", "molecules", "0", "reward"],
        ),
        # Numbers as strings or booleans, which pydantic would convert and the worker refuses.
        (
            {"batch_id": "b", "step": 1, "molecules": [{"smiles": "CCO", "reward": "0.5"}]},
            ["run.molecules", "data", "molecules", "0", "reward"],
        ),
        (
            {"batch_id": "b", "step": 1, "molecules": [{"smiles": "CCO"}, {"smiles": "CCO", "reward": True}]},
            ["run.molecules", "data", "molecules", "1", "reward"],
        ),
        (
            {"batch_id": "b", "step": 1, "molecules": [{"smiles": "CCO", "scores": {"QED": "1e3"}}]},
            ["run.molecules", "data", "molecules", "0", "scores", "QED"],
        ),
    ],
)
def test_a_batch_of_the_wrong_shape_gets_422_naming_the_field(client, data, location):
    response = post_pipeline(client, pipeline_event("run.molecules", RUN_ID, **data))

    assert response.status_code == 422
    assert location in [error["loc"] for error in response.json["details"]]
    assert inbox.counts() == {("pipeline", "invalid"): 1}


def test_a_nan_reward_gets_422(client):
    body = json.dumps(pipeline_event("run.molecules", RUN_ID, batch_id="b", step=1,
                                     molecules=[{"smiles": "CCO", "reward": float("nan")}]))  # fmt: skip

    response = post_pipeline(client, body)

    assert response.status_code == 422


def stored_batch(molecules: list[dict[str, Any]], key: str) -> int:
    """Store a batch in the inbox as the web would have, bypassing its check (as after a schema change)."""
    body = json.dumps(pipeline_event("run.molecules", RUN_ID, batch_id=key, step=1, molecules=molecules))
    event_id, _ = inbox.record_delivery("pipeline", "run.molecules", key, body.encode(), {}, run_id=RUN_ID)
    return event_id


def test_a_stored_batch_with_a_molecule_the_store_refuses_is_kept_invalid_naming_it(worker):
    event_id = stored_batch([{"smiles": "CCO"}, {"smiles": "c1ccccc1", "scores": {"QED": "high"}}], "b-1")

    drain(worker)

    delivery = inbox.get_delivery(event_id)
    assert delivery is not None and delivery.status == "invalid"
    assert "molecules[1].scores.QED must be a finite number" in (delivery.last_error or "")
    assert store.get_run_molecules(RUN_ID) is None


def test_a_stored_batch_with_a_number_beyond_64_bits_is_applied(client, worker):
    # orjson reads no integer beyond 64 bits; pydantic, which the web checked the batch with, does.
    molecules = [{"smiles": "c1ccccc1O", "reward": 0.5, "sampler_seed": 2**70}]
    response = post_pipeline(client, pipeline_event("run.molecules", RUN_ID, batch_id="b", step=1, molecules=molecules))
    assert response.status_code == 202

    drain(worker)

    assert inbox.get_delivery(response.json["event_id"]).status == "done"
    assert [row["best_smiles"] for row in store.get_run_scaffolds(RUN_ID)] == ["Oc1ccccc1"]


def rows(run_ids: list[str]) -> Any:
    """What the store answers for the runs, means rounded: float sums may differ in the last bit by order."""
    answer = {
        "runs": {run_id: [store.get_run_molecules(run_id), store.get_run_scaffolds(run_id, limit=None)]
                 for run_id in run_ids},
        "top": [{k: v for k, v in row.items() if k != "first_seen_at"} for row in store.query_scaffolds(limit=None)],
    }  # fmt: skip
    return json.loads(json.dumps(answer, sort_keys=True), parse_float=lambda value: round(float(value), 9))


def test_batches_redelivered_in_any_order_end_in_the_rows_of_one_ordered_delivery(client, settings):
    pool = generate_scaffolds(30, seed=4)
    run_ids = ["run-a", "run-b"]
    bodies = [
        json.dumps({"type": "run.molecules", "timestamp": "2026-11-20T10:00:00Z", "data": data})
        for run_id in run_ids
        for data in molecule_batches(run_id, 3, size=12, scaffolds=pool, seed=8)
    ]
    worker = Worker(settings.model_copy(update={"worker_batch_size": 2}))
    for index, body in enumerate(bodies):
        assert post_pipeline(client, body, webhook_id=f"msg-{index}").status_code == 202
    drain(worker)
    expected = rows(run_ids)

    @given(st.data())
    @examples(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    def check(data: st.DataObject) -> None:
        with store.get_engine().begin() as connection:
            for table in reversed(Base.metadata.sorted_tables):
                connection.execute(table.delete())
        copies = data.draw(st.lists(st.integers(1, 3), min_size=len(bodies), max_size=len(bodies)))
        deliveries = data.draw(st.permutations([i for i, n in enumerate(copies) for _ in range(n)]))
        process_after = data.draw(st.lists(st.booleans(), min_size=len(deliveries), max_size=len(deliveries)))
        for number, (index, process) in enumerate(zip(deliveries, process_after, strict=True)):
            # A new delivery id each time: the sender sent the batch again, it is not a retry.
            assert post_pipeline(client, bodies[index], webhook_id=f"msg-{index}-{number}").status_code == 202
            if process:
                worker.run_once()
        drain(worker)
        assert rows(run_ids) == expected

    check()


def test_a_batch_is_analysed_before_the_unit_of_work_that_applies_it_with_the_events_claimed_with_it(
    client, worker, monkeypatch
):
    post_pipeline(client, fixture("pipeline", "run_molecules__batch"))
    post_pipeline(client, fixture("pipeline", "run_launched__basic"))
    analysed = []
    analyse_all = analyses.analyse_all

    def analysing(smiles: list[str]) -> list[Any]:
        in_unit_of_work = database._unit_of_work.get() is not None
        analysed.append("in the unit of work" if in_unit_of_work else dict(inbox.counts()))
        return analyse_all(smiles)

    monkeypatch.setattr(analyses, "analyse_all", analysing)
    assert worker.run_once() == 2

    # Claimed, ahead of the unit of work; then in it, where recording finds every SMILES analysed.
    assert analysed == [{("pipeline", "processing"): 2}, "in the unit of work"]
    assert dict(inbox.counts()) == {("pipeline", "done"): 2}
    assert store.get_run_molecules(RUN_ID)["molecules"] == 6
    assert store.get_run(RUN_ID)["status"] == "launched"


def test_in_one_claim_batches_land_beside_the_events_of_their_runs_whatever_their_runs_state(client, worker):
    batch = fixture_json("pipeline", "run_molecules__batch")
    launched = fixture_json("pipeline", "run_launched__basic")

    def molecules(run_id: str) -> dict[str, Any]:
        return {**batch, "data": {**batch["data"], "run_id": run_id}}

    post_pipeline(client, {**launched, "data": {**launched["data"], "run_id": "run-stored"}})
    drain(worker)
    deliveries = [
        molecules("run-stored"),  # its run stored, and finished later in the claim
        {**launched, "data": {**launched["data"], "run_id": "run-launched"}},
        molecules("run-launched"),  # its run launched earlier in the claim
        pipeline_event("run.finished", "run-stored"),
        molecules("run-unknown"),  # its run known to no other event
    ]
    for body in deliveries:
        assert post_pipeline(client, body).status_code == 202
    assert worker.run_once() == len(deliveries)

    assert dict(inbox.counts()) == {("pipeline", "done"): len(deliveries) + 1}
    for run_id in ("run-stored", "run-launched", "run-unknown"):
        assert store.get_run_molecules(run_id)["molecules"] == 6, run_id
        assert len(store.get_run_scaffolds(run_id)) == 4, run_id
    assert store.get_run("run-stored")["status"] == "completed"
    assert store.get_run("run-launched")["status"] == "launched"
    assert store.query_scaffolds(limit=None)[0]["runs"] == 3
