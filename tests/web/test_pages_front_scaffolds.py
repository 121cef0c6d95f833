"""The Pareto and compare pages' scaffold view through the real app on both databases."""

from __future__ import annotations

import re
from typing import Any

import pytest
from flask.testing import FlaskClient

import store
from tests.browser.seed import seed_database
from tests.molecules import ASPIRIN, BENZENE, CAFFEINE, NICOTINE, NICOTINE_SCAFFOLD, XANTHINE_SCAFFOLD
from tests.web.conftest import READ
from tests.web.test_pages import page

PARETO = "/pareto?objectives=COMT_activity,DRD5_activity"


def api(client: FlaskClient, path: str) -> Any:
    response = client.get(path, headers=READ)
    assert response.status_code == 200, response.get_json()
    return response.get_json()


@pytest.fixture
def front(client: FlaskClient) -> list[str]:
    """The seeded runs, and molecules for every front run but the last; return the front's run ids."""
    seed_database()
    run_ids = [m["run_id"] for m in api(client, f"/api{PARETO}")["front"]]
    for run_id in run_ids[:-1]:
        store.record_molecules(
            run_id,
            "b1",
            0,
            [{"smiles": NICOTINE, "reward": 0.2}, {"smiles": NICOTINE}, {"smiles": ASPIRIN, "reward": 0.9}],
        )
    store.record_molecules(run_ids[0], "b2", 10, [{"smiles": CAFFEINE, "reward": 0.5}, {"smiles": "CCCC"}])
    return run_ids


def thumbs(html: str) -> list[str]:
    return re.findall(r'<img src="/api/scaffold\.svg\?smiles=[^"]*" alt="scaffold ([^"]*)"', html)


def front_rows(html: str) -> list[str]:
    table = html[html.index('id="front-h"') :]
    return re.findall(r"<tr><th scope=\"row\">.*?</tr>", table[: table.index("</table>")], re.S)


def test_each_front_run_shows_its_top_scaffolds_linked_to_the_scaffolds_page(
    client: FlaskClient, front: list[str]
) -> None:
    html = page(client, PARETO)

    rows = front_rows(html)
    assert [re.search(r'href="/runs/([^"]+)"', row).group(1) for row in rows] == front
    # Most molecules first; a tie goes to the smaller SMILES ("O=c1..." before "c1ccccc1").
    assert thumbs(rows[0]) == [NICOTINE_SCAFFOLD, XANTHINE_SCAFFOLD, BENZENE]
    assert all(thumbs(row) == [NICOTINE_SCAFFOLD, BENZENE] for row in rows[1:-1])
    assert thumbs(rows[-1]) == [] and "no ring scaffolds recorded" in rows[-1]
    assert f'<a href="/scaffolds?contains={BENZENE}"' in rows[0]
    assert "2 mol., best 0.2" in rows[1] and "1 mol., best 0.9" in rows[1]


def test_the_front_scaffolds_follow_the_order_and_number_asked_for(
    client: FlaskClient, front: list[str]
) -> None:
    by_reward = front_rows(page(client, f"{PARETO}&scaffolds=2&scaffolds_order_by=best_reward"))
    none = page(client, f"{PARETO}&scaffolds=0")

    assert thumbs(by_reward[0]) == [BENZENE, XANTHINE_SCAFFOLD]
    assert '<option value="best_reward" selected>' in page(client, f"{PARETO}&scaffolds_order_by=best_reward")
    assert thumbs(none) == [] and "top scaffolds" not in none


def test_a_bad_scaffolds_value_is_a_400_naming_it_on_the_page(client: FlaskClient, front: list[str]) -> None:
    html = page(client, f"{PARETO}&scaffolds=many", status=400)

    assert "scaffolds: must be an integer from 0 to 50, not 'many'" in html
    assert '<option value="many" selected>' in html


def test_compare_shows_each_groups_best_run_and_its_top_scaffolds(
    client: FlaskClient, front: list[str]
) -> None:
    answer = api(client, "/api/compare?objective=DRD5_activity&scaffolds=3")
    html = page(client, "/compare?objective=DRD5_activity")

    section = html[html.index('id="best-scaffolds-h"') :]
    rows = re.findall(r"<tr><th scope=\"row\">.*?</tr>", section[: section.index("</table>")], re.S)
    assert len(rows) == len(answer["groups"])
    for row, group in zip(rows, answer["groups"], strict=True):
        assert f'href="/runs/{group["best_run_id"]}#scaffolds"' in row
        assert thumbs(row) == [s["scaffold"] for s in group["best_run_scaffolds"]]


def test_runs_side_by_side_show_their_top_scaffolds_and_whether_they_differ(
    client: FlaskClient, front: list[str]
) -> None:
    same = page(client, f"/compare?objective=QED&run={front[1]}&run={front[2]}")
    different = page(client, f"/compare?objective=QED&run={front[0]}&run={front[1]}&scaffolds=1")

    row = re.search(r'<tr class="(\w+) scaffolds-row"><th scope="row">([^<]*)</th>(.*?)</tr>', same, re.S)
    assert row.group(1, 2) == ("same", "top 3 by molecules")
    assert thumbs(row.group(3)) == [NICOTINE_SCAFFOLD, BENZENE] * 2
    row = re.search(
        r'<tr class="(\w+) scaffolds-row"><th scope="row">([^<]*)</th>(.*?)</tr>', different, re.S
    )
    assert row.group(1, 2) == ("same", "top 1 by molecules")
    with_reward = page(
        client, f"/compare?run={front[0]}&run={front[1]}&scaffolds=1&scaffolds_order_by=best_reward"
    )
    assert 'class="differs scaffolds-row"' not in with_reward
    assert 'class="differs scaffolds-row"' in page(client, f"/compare?run={front[0]}&run={front[-1]}")
