"""The pages through the real app on both databases: what a person sees in the HTML."""

from __future__ import annotations

import csv
import gzip
import io
import re
from html import unescape

import orjson
import pytest
from flask.testing import FlaskClient

import store
from store import scaffolds
from tests.browser.seed import RUNS, seed_database
from tests.web.conftest import ADMIN, READ

FIRST_RUN = "run-017-0000000"
SECOND_RUN = "run-017-0000015"


@pytest.fixture
def seeded(client: FlaskClient) -> dict[str, int]:
    return seed_database()


def page(client: FlaskClient, path: str, headers: dict[str, str] = READ, status: int = 200) -> str:
    response = client.get(path, headers=headers)
    assert response.status_code == status, response.get_data(as_text=True)[:500]
    assert response.mimetype == "text/html"
    return unescape(response.get_data(as_text=True))


def rows(html: str, table_class: str) -> list[str]:
    body = re.search(rf'<table[^>]*class="{table_class}[^"]*".*?<tbody>(.*?)</tbody>', html, re.S)
    assert body, f"no table.{table_class}"
    return re.findall(r"<tr.*?</tr>", body.group(1), re.S)


def test_a_visitor_without_a_login_is_sent_to_the_login_page(client: FlaskClient) -> None:
    response = client.get("/compare?objective=QED")

    assert response.status_code == 302
    assert response.headers["Location"] == "/login?next=/compare?objective%3DQED"


def test_the_login_page_has_one_token_field_and_the_sites_stylesheet(client: FlaskClient) -> None:
    html = page(client, "/login", headers={})

    assert html.count("<input") == 3  # the token, the CSRF token and where to go next
    assert 'name="token"' in html
    assert '<link rel="stylesheet" href="/assets/app.css">' in html
    with client.get("/assets/app.css") as stylesheet:
        assert stylesheet.status_code == 200


def test_the_runs_page_shows_the_total_a_page_of_runs_and_a_link_to_the_next(
    client: FlaskClient, seeded: dict[str, int]
) -> None:
    html = page(client, "/")

    assert f"<strong>{RUNS}</strong> runs match" in html
    assert len(rows(html, "runs")) == 50
    assert re.search(r'<a rel="next" href="/\?cursor=[^"]+">Next page', html)
    assert re.search(r'href="/api/runs\?[^"]*format=jsonl" download', html)
    assert re.search(r'href="/runs.csv\?[^"]*" download', html)


def test_a_filter_narrows_the_runs_to_its_matches(client: FlaskClient, seeded: dict[str, int]) -> None:
    expected = len(store.query_runs({"gradient_method": "mgda"}, limit=None))

    html = page(client, "/?filter=gradient_method+%3D+%27mgda%27&limit=250")

    assert f"<strong>{expected}</strong> runs match" in html
    assert len(rows(html, "runs")) == expected
    assert "imtl" not in "".join(rows(html, "runs"))


def test_a_mistyped_field_is_shown_inline_with_its_position_and_the_closest_field(
    client: FlaskClient, seeded: dict[str, int]
) -> None:
    html = page(client, "/?filter=batchsize+%3D+64", status=400)

    assert 'aria-invalid="true"' in html
    alert = re.search(r'<p class="error" id="filter-error" role="alert">(.*?)</p>', html, re.S)
    assert alert, html
    assert "batchsize" in alert.group(1) and "batch_size" in alert.group(1)
    assert "1:1" in alert.group(1)
    assert "Fix the filter to see runs." in html


def test_the_csv_download_holds_every_match_with_the_chosen_columns(
    client: FlaskClient, seeded: dict[str, int]
) -> None:
    expected = store.query_runs({"status": "crashed"}, order_by="run_id", limit=None)

    response = client.get(
        "/runs.csv?filter=status+%3D+%27crashed%27&order_by=run_id&columns=status,objective.QED.raw_mean",
        headers=READ,
    )

    assert response.status_code == 200
    assert response.headers["Content-Disposition"] == 'attachment; filename="runs.csv"'
    table = list(csv.reader(io.StringIO(response.get_data(as_text=True))))
    assert table[0] == ["run_id", "status", "objective.QED.raw_mean"]
    assert [row[:2] for row in table[1:]] == [[run["run_id"], "crashed"] for run in expected]


def test_a_csv_download_with_a_bad_filter_is_a_400_naming_the_problem(
    client: FlaskClient, seeded: dict[str, int]
) -> None:
    response = client.get("/runs.csv?filter=batchsize+%3D+64", headers=READ)

    assert response.status_code == 400
    assert "batch_size" in response.get_json()["message"]


@pytest.mark.parametrize(
    ("path", "named"),
    [
        ("/?limit=5000", "limit"),
        ("/?order_by=nonsense", "nonsense"),
        ("/compare?objective=QED&by=config.", "config."),
        ("/pareto?objectives=QED", "objectives"),
        ("/stats?filter=status+%3D", "1:9"),
        ("/events?status=exploded", "exploded"),
    ],
)
def test_a_page_with_a_bad_parameter_is_a_400_that_names_it_above_the_form_as_sent(
    client: FlaskClient, seeded: dict[str, int], path: str, named: str
) -> None:
    html = page(client, path, status=400)

    alert = re.search(r'<p class="error"[^>]*role="alert">(.*?)</p>', html, re.S)
    assert alert and named in alert.group(1), html[-3000:]


def test_a_column_header_sorts_by_that_column_and_says_which_way(
    client: FlaskClient, seeded: dict[str, int]
) -> None:
    html = page(client, "/?order_by=-batch_size")

    assert re.search(r'<th scope="col" aria-sort="descending">\s*<a href="/\?order_by=batch_size"', html)
    sizes = [
        int(cell) for cell in re.findall(r'<td class="num">(\d+)</td>', "".join(rows(html, "runs")))[:50]
    ]
    assert sizes == sorted(sizes, reverse=True)


def test_the_column_picker_shows_json_paths_and_objectives(
    client: FlaskClient, seeded: dict[str, int]
) -> None:
    html = page(client, "/?columns=status,config.training.gradient_accumulation_steps,objective.QED.raw_mean")

    headers = re.findall(r'title="Sort by ([^"]+)"', html)
    assert headers == [
        "run_id",
        "status",
        "config.training.gradient_accumulation_steps",
        "objective.QED.raw_mean",
    ]
    assert '<option value="objective.QED.raw_mean">' in html


def test_a_run_page_shows_its_fields_objectives_config_tree_and_summary(
    client: FlaskClient, seeded: dict[str, int]
) -> None:
    run = store.get_run(FIRST_RUN)

    html = page(client, f"/runs/{FIRST_RUN}")

    assert f"<code>{FIRST_RUN}</code>" in html
    assert f'href="https://wandb.ai/mango-lab/mango-moo/runs/{run["wandb_run_id"]}"' in html
    assert html.count("<details") > 5 and '<summary><span class="key">training</span></summary>' in html
    assert '<th scope="row">train/loss</th>' in html
    for objective in store.get_run_objectives(FIRST_RUN):
        assert f">{objective['objective_name']}</a>" in html


def test_a_running_run_shows_its_latest_progress_and_reloads_itself_only_without_javascript(
    client: FlaskClient, seeded: dict[str, int]
) -> None:
    store.record_progress("run-017-0000015", 1200, {"train/loss": 0.4321, "train/reward_mean": 0.61})

    html = page(client, "/runs/run-017-0000015")

    assert "Latest progress" in html and 'Step <strong id="live-step">1,200</strong>' in html
    assert '<th scope="row">train/loss</th><td>0.4321</td>' in html
    # With JavaScript the curves follow the run (curves.js); without it the page reloads.
    assert '<noscript><meta http-equiv="refresh" content="30"></noscript>' in html
    assert "Latest progress" not in page(client, f"/runs/{FIRST_RUN}")


def test_a_run_that_does_not_exist_is_a_404_page(client: FlaskClient, seeded: dict[str, int]) -> None:
    response = client.get("/runs/no-such-run", headers=READ)

    assert response.status_code == 404
    assert "run no-such-run does not exist" in response.get_data(as_text=True)


def test_compare_has_a_row_per_group_over_every_run_and_links_each_best_run(
    client: FlaskClient, seeded: dict[str, int]
) -> None:
    expected = {r["gradient_method"]: r for r in store.compare_gradient_methods("DRD5_activity", status=None)}

    html = page(client, "/compare?objective=DRD5_activity&by=gradient_method")

    groups = rows(html, "groups")
    assert len(groups) == len(expected)
    for row in groups:
        method = re.search(r'<th scope="row">(.*?)</th>', row).group(1)
        assert f'<td class="num">{expected[method]["num_runs"]}</td>' in row
        assert f'href="/runs/{expected[method]["best_run_id"]}"' in row
    assert 'id="compare-data"' in html


def test_runs_side_by_side_mark_what_differs(client: FlaskClient, seeded: dict[str, int]) -> None:
    ids = [FIRST_RUN, "run-017-0000001", "run-017-0000002"]

    html = page(client, "/compare?objective=QED&" + "&".join(f"run={i}" for i in ids) + "&only_differences=1")

    table = re.search(
        r'<table id="side-by-side" class="side only-differences">(.*?)</table>', html, re.S
    ).group(1)
    assert all(f">{i}</a></th>" in table for i in ids)
    assert re.search(r'<tr class="differs"><th scope="row">gradient_method</th>', table)
    assert re.search(r'<tr class="same"><th scope="row">data.canonicalize</th>', table)


@pytest.mark.parametrize("count", [1, 11])
def test_side_by_side_takes_two_to_ten_runs(client: FlaskClient, seeded: dict[str, int], count: int) -> None:
    html = page(client, "/compare?" + "&".join(f"run=run-017-{i:07d}" for i in range(count)), status=400)

    assert f"Pick 2 to 10 runs to see them side by side ({count} picked)." in html


def test_pareto_lists_the_front_and_writes_every_considered_run_into_the_page(
    client: FlaskClient, seeded: dict[str, int]
) -> None:
    answer = client.get("/api/pareto?objectives=COMT_activity,DRD5_activity", headers=READ).get_json()

    html = page(client, "/pareto?objectives=COMT_activity,DRD5_activity")

    assert f"{len(answer['front'])} runs on the front of {answer['considered']} considered" in html
    for run in answer["front"]:
        assert f'href="/runs/{run["run_id"]}"' in html
    chart = orjson.loads(re.search(r'id="pareto-data">([^<]*)</script>', html).group(1))
    points = chart["points"]
    assert chart["front"] == answer["front"]
    assert len(points["run_id"]) == len(points["gradient_method"]) == answer["considered"]
    assert {run["run_id"] for run in answer["front"]} <= set(points["run_id"])
    for name in ("COMT_activity", "DRD5_activity"):
        assert len(points["values"][name]) == answer["considered"] and None not in points["values"][name]


def test_the_pareto_page_is_gzipped_for_a_browser_that_takes_it(
    client: FlaskClient, seeded: dict[str, int]
) -> None:
    plain = page(client, "/pareto?objectives=COMT_activity,DRD5_activity")

    response = client.get(
        "/pareto?objectives=COMT_activity,DRD5_activity", headers={**READ, "Accept-Encoding": "gzip"}
    )

    assert response.status_code == 200
    assert response.headers["Content-Encoding"] == "gzip"
    assert gzip.decompress(response.get_data()).decode() == plain


def test_stats_counts_runs_by_status_and_crash_rate_by_method(
    client: FlaskClient, seeded: dict[str, int]
) -> None:
    stats = store.get_stats()

    html = page(client, "/stats")

    assert f"<strong>{RUNS}</strong> runs" in html
    for status, count in stats["runs_by_status"].items():
        assert re.search(rf">{status}</a></th><td class=\"num\">{count}</td>", html)
    assert 'id="stats-data"' in html


def test_events_lists_failed_and_dead_deliveries_with_replay_for_the_admin(
    client: FlaskClient, seeded: dict[str, int]
) -> None:
    as_reader = page(client, "/events")
    as_admin = page(client, "/events", headers=ADMIN)

    for html in (as_reader, as_admin):
        assert f'id="event-{seeded["failed"]}"' in html and f'id="event-{seeded["dead"]}"' in html
        assert "the database was restarting" in html
    assert "data-replay" not in as_reader
    assert as_admin.count("data-replay") == 2
    assert 'name="csrf_token"' in as_admin


def test_plotly_is_served_from_the_installed_package_gzipped_and_cached_for_good(client: FlaskClient) -> None:
    html = page(client, "/compare", headers=READ)
    src = re.search(r'<script src="(/assets/vendor/plotly-[0-9a-f]+\.min\.js)"></script>', html).group(1)

    plain = client.get(src)
    zipped = client.get(src, headers={"Accept-Encoding": "gzip, br"})

    assert plain.status_code == zipped.status_code == 200
    assert plain.data.startswith(b"/**\n* plotly.js v")
    assert zipped.headers["Content-Encoding"] == "gzip"
    assert gzip.decompress(zipped.data) == plain.data
    assert "immutable" in plain.headers["Cache-Control"]
    assert client.get("/assets/vendor/plotly-0000.min.js").status_code == 404


def test_every_control_has_a_label_and_every_asset_is_served_by_the_app(
    client: FlaskClient, seeded: dict[str, int]
) -> None:
    for path in ("/", f"/runs/{FIRST_RUN}", "/compare", "/pareto", "/stats", "/events"):
        html = page(client, path, headers=ADMIN)
        for control in re.finditer(r"(<label>)?\s*<(input|select)\b([^>]*)>", html):
            wrapped, _, attributes = control.groups()
            if 'type="hidden"' in attributes or wrapped or "aria-label=" in attributes:
                continue
            control_id = re.search(r'\bid="([^"]+)"', attributes)
            assert control_id and f'for="{control_id.group(1)}"' in html, (path, control.group(0))
        linked = re.findall(r'(?:src|href)="([^"]+)"', html)
        assert [url for url in linked if "://" in url and not url.startswith("https://wandb.ai/")] == []


@pytest.fixture
def with_molecules(seeded: dict[str, int], monkeypatch: pytest.MonkeyPatch) -> None:
    """Two runs with molecules, and a fresh substructure library (tests empty the database)."""
    monkeypatch.setattr(scaffolds, "_libraries", {})
    aspirin, nicotine = "CC(=O)Oc1ccccc1C(=O)O", "CN1CCC[C@H]1c1cccnc1"
    store.record_molecules(FIRST_RUN, "b1", 0, [{"smiles": aspirin, "reward": 0.4}, {"smiles": "CCCC"}])
    store.record_molecules(FIRST_RUN, "b2", 5, [{"smiles": nicotine, "reward": 0.9}, {"smiles": "C1CC"}])
    store.record_molecules(SECOND_RUN, "b1", 0, [{"smiles": aspirin, "reward": 0.7}])


def test_a_run_page_shows_its_scaffolds_drawn(client: FlaskClient, with_molecules: None) -> None:
    html = page(client, f"/runs/{FIRST_RUN}")
    section = html[html.index('id="scaffolds-h"') :]
    assert "2 distinct scaffolds in 3 valid molecules (1 invalid, 1 acyclic)" in re.sub(
        r"<[^>]+>", "", section
    )
    assert '<img src="/api/scaffold.svg?smiles=c1ccccc1"' in section
    assert "acyclic (no ring)" in section
    assert "No molecules recorded." in page(client, "/runs/run-017-0000003")


def test_the_scaffolds_page_draws_top_scaffolds_searches_and_charts_diversity(
    client: FlaskClient, with_molecules: None
) -> None:
    html = page(client, "/scaffolds")
    assert 'href="/scaffolds" aria-current="page"' in html
    top = html[html.index('id="top-h"') :]
    assert top.index("<code>c1ccccc1</code>") < top.index("<code>c1cncc(C2CCCN2)c1</code>")
    assert f'href="/runs/{FIRST_RUN}#scaffolds"' in top
    chart = orjson.loads(re.search(r'id="diversity-data">(.*?)</script>', html, re.S).group(1))
    assert sum(group["runs"] for group in chart["groups"]) == 2
    found = page(client, "/scaffolds?contains=c1ccncc1")
    assert "<code>c1cncc(C2CCCN2)c1</code>" in found and "<code>c1ccccc1</code>" not in found


def test_a_bad_pattern_on_the_scaffolds_page_is_a_400_naming_it(
    client: FlaskClient, with_molecules: None
) -> None:
    html = page(client, "/scaffolds?contains=C1CC((", status=400)
    assert "contains: RDKit reads 'C1CC((' neither as SMILES nor as SMARTS" in html
    assert 'value="C1CC(("' in html
