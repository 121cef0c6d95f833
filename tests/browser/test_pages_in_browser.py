"""The pages in real headless Chromium: log in, filter, sort, page, open a run, charts, replay."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qs, urlsplit

from rdkit import Chem

import store
from tests.browser.conftest import PHONE, READ_TOKEN, Site, Watch, log_in, open_page, screenshot
from tests.browser.seed import MOLECULE_RUNS, RUNS


def query_of(page: Any) -> dict[str, list[str]]:
    return parse_qs(urlsplit(page.url).query)


def total_shown(page: Any) -> int:
    return int(page.locator(".total strong").inner_text().replace(",", ""))


def column_values(page: Any, column: str) -> list[str]:
    headers = [h.strip(" ▲▼") for h in page.locator("table.runs thead th").all_inner_texts()]
    index = headers.index(column) + 1
    return page.locator(f"table.runs tbody tr > :nth-child({index})").all_inner_texts()


def test_a_visitor_logs_in_with_the_read_token_and_sees_every_run(
    browser: Any, site: Site, watch: Watch
) -> None:
    page = open_page(browser, site, watch)
    page.goto(f"{site.url}/")
    assert urlsplit(page.url).path == "/login"
    screenshot(page, "login")

    log_in(page, site, READ_TOKEN)

    assert page.get_by_role("heading", name="Runs").is_visible()
    assert total_shown(page) == RUNS
    assert page.locator("table.runs tbody tr").count() == 50
    assert all(url.startswith(site.url) for url in watch.requests)
    page.context.close()


def test_a_filter_narrows_the_runs_and_a_mistake_is_shown_inline(page: Any, site: Site, watch: Watch) -> None:
    page.get_by_label("Filter").fill("gradient_method = 'mgda' and batch_size >= 64")
    page.get_by_label("Filter").press("Enter")
    page.wait_for_url(re.compile(r"filter="))

    assert query_of(page)["filter"] == ["gradient_method = 'mgda' and batch_size >= 64"]
    narrowed = total_shown(page)
    assert 0 < narrowed < RUNS
    assert set(column_values(page, "gradient_method")) == {"mgda"}
    assert all(int(v) >= 64 for v in column_values(page, "batch_size"))
    screenshot(page, "runs")

    watch.expected_400.append("batchsize")
    page.get_by_label("Filter").fill("batchsize = 64")
    with page.expect_response(re.compile(r"batchsize")) as refused:
        page.get_by_label("Filter").press("Enter")
    assert refused.value.status == 400

    error = page.get_by_role("alert")
    assert "batch_size" in error.inner_text()
    assert "1:1" in error.inner_text() or "position" in error.inner_text()
    assert page.get_by_label("Filter").get_attribute("aria-invalid") == "true"
    screenshot(page, "runs-filter-error")


def test_a_column_header_sorts_the_runs_both_ways(page: Any) -> None:
    page.get_by_role("link", name="batch_size", exact=True).click()
    page.wait_for_url(re.compile(r"order_by=-batch_size"))
    descending = [int(v) for v in column_values(page, "batch_size") if v]
    assert descending == sorted(descending, reverse=True)

    page.get_by_role("link", name=re.compile(r"^batch_size")).click()
    page.wait_for_url(re.compile(r"order_by=batch_size"))
    ascending = [int(v) for v in column_values(page, "batch_size") if v]
    assert ascending == sorted(ascending)
    assert page.locator("th[aria-sort='ascending']").inner_text().startswith("batch_size")


def test_the_pages_of_runs_hold_every_run_once_with_the_total(page: Any, site: Site) -> None:
    page.goto(f"{site.url}/?limit=100")
    seen: list[str] = []
    while True:
        assert total_shown(page) == RUNS
        seen += column_values(page, "run_id")
        following = page.get_by_role("link", name="Next page »")
        if not following.count():
            break
        following.click()
        page.wait_for_load_state()
    assert len(seen) == len(set(seen)) == RUNS


def test_the_column_picker_adds_a_json_path_and_an_objective(page: Any) -> None:
    page.get_by_text("Columns (").click()
    page.get_by_label("JSON paths and objectives, comma-separated").fill(
        "config.training.gradient_accumulation_steps, objective.QED.raw_mean"
    )
    page.get_by_role("button", name="Apply").click()
    page.wait_for_url(re.compile(r"columns="))
    headers = page.locator("table.runs thead th").all_inner_texts()
    assert "config.training.gradient_accumulation_steps" in [h.strip(" ▲▼") for h in headers]
    assert any(v.strip() for v in column_values(page, "objective.QED.raw_mean"))


def test_a_run_page_shows_its_fields_config_tree_and_a_searchable_summary(page: Any, site: Site) -> None:
    first = page.locator("table.runs tbody th a").first
    run_id = first.inner_text()
    first.click()
    page.wait_for_url(re.compile(r"/runs/"))

    assert run_id in page.get_by_role("heading", level=1).inner_text()
    assert page.locator(".tree details").count() > 3
    rows = page.locator("#summary-table tr")
    everything = rows.count()
    page.get_by_label("Search the summary").fill("train/loss")
    visible = page.locator("#summary-table tr:visible").count()
    assert 0 < visible < everything
    assert page.get_by_role("link", name="Open in W&B").get_attribute("href").startswith("https://wandb.ai/")
    page.get_by_label("Search the summary").fill("")
    screenshot(page, "run")


def test_compare_draws_a_box_per_group_from_every_matching_run(page: Any, site: Site) -> None:
    page.goto(f"{site.url}/compare?objective=DRD5_activity&by=gradient_method")
    chart = page.locator("#box-chart[data-drawn='true']")
    chart.wait_for()
    runs_in_groups = sum(
        int(n.replace(",", "")) for n in page.locator("table.groups tbody td:nth-child(2)").all_inner_texts()
    )
    assert int(chart.get_attribute("data-points")) == runs_in_groups
    assert (
        page.locator("#box-chart .boxlayer .trace path.box").count()
        == page.locator("table.groups tbody tr").count()
    )
    best = page.locator("table.groups tbody td:last-child a").first
    assert best.get_attribute("href").startswith("/runs/")
    screenshot(page, "compare")


def test_runs_ticked_on_the_runs_page_show_side_by_side_with_only_their_differences(page: Any) -> None:
    boxes = page.locator("table.runs tbody input[type=checkbox]")
    for index in range(3):
        boxes.nth(index).check()
    page.get_by_role("button", name=re.compile("Side by side")).click()
    page.wait_for_url(re.compile(r"/compare\?.*run="))
    assert len(query_of(page)["run"]) == 3
    table = page.locator("#side-by-side")
    every_row = table.locator("tbody tr:visible").count()

    page.get_by_label("Only differences").check()

    assert query_of(page)["only_differences"] == ["1"]
    assert 0 < table.locator("tbody tr.differs:visible").count() < every_row
    assert table.locator("tbody tr.same:visible").count() == 0
    screenshot(page, "side-by-side")


def test_pareto_draws_every_considered_run_and_joins_the_front(page: Any, site: Site) -> None:
    page.goto(f"{site.url}/pareto?objectives=COMT_activity,DRD5_activity")
    chart = page.locator("#pareto-chart[data-drawn='true']")
    chart.wait_for()
    heading = page.get_by_role("heading", name=re.compile("runs on the front of")).inner_text()
    front, considered = (int(n.replace(",", "")) for n in re.findall(r"[\d,]+", heading)[:2])
    assert int(chart.get_attribute("data-points")) == considered
    assert page.locator("#front-h + .scroll tbody tr").count() == front
    screenshot(page, "pareto")


def test_pareto_of_three_objectives_draws_a_scatter_matrix(page: Any, site: Site) -> None:
    page.goto(f"{site.url}/pareto?objectives=COMT_activity,DRD5_activity:max,QED")
    chart = page.locator("#pareto-chart[data-drawn='true']")
    chart.wait_for()
    assert int(chart.get_attribute("data-points")) > 0
    screenshot(page, "pareto-3")


def api_answer(page: Any, site: Site, path: str) -> Any:
    """What the read API answers the logged-in browser."""
    response = page.request.get(f"{site.url}{path}")
    assert response.ok, response.text()
    return response.json()


def alts(row: Any) -> list[str]:
    return row.locator("ul.thumbs img").evaluate_all("images => images.map(i => i.alt)")


def wait_until_drawn(page: Any, images: Any) -> list[int]:
    """Bring the (lazily loaded) depictions into view; return their drawn widths."""
    images.first.scroll_into_view_if_needed()
    images.evaluate_all("images => images.forEach(i => { i.loading = 'eager'; })")
    page.wait_for_function(
        "selector => [...document.querySelectorAll(selector)].every(i => i.complete)", arg="ul.thumbs img"
    )
    return images.evaluate_all("images => images.map(i => i.naturalWidth)")


def test_the_front_runs_show_their_top_scaffolds_reached_by_keyboard(page: Any, site: Site) -> None:
    page.goto(f"{site.url}/pareto?objectives=COMT_activity,DRD5_activity")
    page.locator("#pareto-chart[data-drawn='true']").wait_for()
    answer = api_answer(page, site, "/api/pareto?objectives=COMT_activity,DRD5_activity&scaffolds=3")
    assert page.get_by_label("Scaffolds per front run").input_value() == "3"

    rows = page.locator("#front-h ~ .scroll tbody tr")
    assert rows.count() == len(answer["front"])
    for index, member in enumerate(answer["front"]):
        assert alts(rows.nth(index)) == [f"scaffold {s['scaffold']}" for s in member["scaffolds"]]
    assert any(member["scaffolds"] for member in answer["front"])
    assert any(not member["scaffolds"] for member in answer["front"]) == (
        page.get_by_text("no ring scaffolds recorded").count() > 0
    )
    assert set(wait_until_drawn(page, page.locator("ul.thumbs img"))) == {300}
    page.locator("#front-h").scroll_into_view_if_needed()
    screenshot(page, "pareto-scaffolds")

    first = next(s for member in answer["front"] for s in member["scaffolds"])
    page.locator("#filter").focus()
    for _ in range(80):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.closest('ul.thumbs') !== null"):
            break
    assert page.evaluate("document.activeElement.querySelector('img').alt") == f"scaffold {first['scaffold']}"
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"/scaffolds\?contains="))
    assert query_of(page)["contains"] == [first["scaffold"]]
    assert first["scaffold"] in page.locator("figure.scaffold figcaption").all_inner_texts()


def test_the_front_runs_top_scaffolds_follow_the_chosen_order(page: Any, site: Site) -> None:
    page.goto(f"{site.url}/pareto?objectives=COMT_activity,DRD5_activity")
    page.get_by_label("Scaffolds per front run").select_option("5")
    page.get_by_label("Top scaffolds by").select_option("best_reward")
    page.get_by_role("button", name="Find the front").click()
    page.wait_for_url(re.compile(r"scaffolds_order_by=best_reward"))

    answer = api_answer(
        page,
        site,
        "/api/pareto?objectives=COMT_activity,DRD5_activity&scaffolds=5&scaffolds_order_by=best_reward",
    )
    rows = page.locator("#front-h ~ .scroll tbody tr")
    for index, member in enumerate(answer["front"]):
        assert alts(rows.nth(index)) == [f"scaffold {s['scaffold']}" for s in member["scaffolds"]]
        rewards = [s["best_reward"] for s in member["scaffolds"]]
        assert rewards == sorted(rewards, reverse=True)


def test_compare_shows_each_groups_best_run_with_its_top_scaffolds(page: Any, site: Site) -> None:
    page.goto(f"{site.url}/compare?objective=DRD5_activity&by=gradient_method")
    page.locator("#box-chart[data-drawn='true']").wait_for()
    answer = api_answer(page, site, "/api/compare?objective=DRD5_activity&by=gradient_method&scaffolds=3")

    rows = page.locator("table.best-scaffolds tbody tr")
    assert rows.count() == len(answer["groups"])
    for index, group in enumerate(answer["groups"]):
        row = rows.nth(index)
        assert row.get_by_role("link", name=group["best_run_id"]).get_attribute("href") == (
            f"/runs/{group['best_run_id']}#scaffolds"
        )
        assert alts(row) == [f"scaffold {s['scaffold']}" for s in group["best_run_scaffolds"]]
    assert any(group["best_run_scaffolds"] for group in answer["groups"])
    section = page.locator("section[aria-labelledby='best-scaffolds-h']")
    assert set(wait_until_drawn(page, section.locator("ul.thumbs img"))) == {300}
    screenshot(page, "compare-scaffolds", section)


def test_runs_side_by_side_show_their_top_scaffolds(page: Any, site: Site) -> None:
    chosen = MOLECULE_RUNS[:3]
    page.goto(f"{site.url}/compare?objective=QED&" + "&".join(f"run={run_id}" for run_id in chosen))

    row = page.locator("#side-by-side tr.scaffolds-row")
    assert row.locator("th").inner_text() == "top 3 by molecules"
    for index, run_id in enumerate(chosen):
        found = api_answer(page, site, f"/api/runs/{run_id}/scaffolds?limit=10")["scaffolds"]
        expected = [f"scaffold {s['scaffold']}" for s in found if s["scaffold"]][:3]
        assert alts(row.locator("td").nth(index)) == expected
        assert expected


def test_stats_draws_runs_per_day_and_crash_rates(page: Any, site: Site) -> None:
    page.goto(f"{site.url}/stats")
    page.locator("#day-chart[data-drawn='true']").wait_for()
    page.locator("#crash-chart[data-drawn='true']").wait_for()
    assert total_shown(page) == RUNS
    screenshot(page, "stats")


def test_the_filter_is_reached_and_sent_by_keyboard(page: Any) -> None:
    for _ in range(20):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.id") == "filter":
            break
    page.keyboard.type("status = 'crashed'")
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"filter="))
    assert set(column_values(page, "status")) == {"crashed"}


def test_the_runs_page_fits_a_phone(browser: Any, site: Site, watch: Watch) -> None:
    phone = open_page(browser, site, watch, viewport=PHONE)
    log_in(phone, site)
    overflow = phone.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0
    assert phone.get_by_role("link", name="Pareto").is_visible()
    screenshot(phone, "runs-phone")
    phone.context.close()


def test_the_watch_refuses_a_request_to_another_host_and_notes_console_errors(
    browser: Any, site: Site
) -> None:
    watch = Watch()
    page = open_page(browser, site, watch)
    page.goto(f"{site.url}/login")

    page.evaluate("fetch('http://203.0.113.9/x').catch(() => null); console.error('boom')")
    page.wait_for_timeout(500)

    assert any("request to another host: http://203.0.113.9/x" in p for p in watch.problems)
    assert any("console error: boom" in p for p in watch.problems)
    page.context.close()


# Last: a replay adds its run to the database that the other tests count.
def test_an_admin_replays_a_failed_event_from_its_row(page: Any, site: Site) -> None:
    page.goto(f"{site.url}/events")
    row = page.locator(f"#event-{site.events['failed']}")
    assert "database was restarting" in row.inner_text()
    screenshot(page, "events")

    row.get_by_role("button", name=re.compile("Replay")).click()

    row.get_by_text("Replayed: done").wait_for()
    page.reload()
    assert page.locator(f"#event-{site.events['failed']}").count() == 0
    assert page.locator(f"#event-{site.events['dead']}").count() == 1


def test_the_scaffolds_page_draws_each_scaffold_and_diversity_and_searches(page: Any, site: Site) -> None:
    store.configure(site.database_url)
    for index, smiles in enumerate(
        ("CC(=O)Oc1ccccc1C(=O)O", "CN1CCC[C@H]1c1cccnc1", "Cn1c(=O)c2c(ncn2C)n(C)c1=O")
    ):
        store.record_molecules(
            "run-017-0000000", f"browser-{index}", index, [{"smiles": smiles, "reward": 0.5}]
        )
    store.record_molecules("run-017-0000015", "browser-0", 0, [{"smiles": "c1ccccc1O", "reward": 0.2}])
    store.get_engine().dispose()

    store.configure(site.database_url)
    top = [row["scaffold"] for row in store.query_scaffolds(limit=30)]
    with_pyridine = [
        row["scaffold"] for row in store.find_runs_with_scaffold("c1ccncc1", substructure=True, limit=30)
    ]
    store.get_engine().dispose()

    page.get_by_role("link", name="Scaffolds").click()
    page.wait_for_url(f"{site.url}/scaffolds")
    page.locator("#diversity-chart[data-drawn='true']").wait_for()
    assert page.locator("figure.scaffold figcaption").all_inner_texts() == top
    page.wait_for_function("[...document.querySelectorAll('figure.scaffold img')].every(i => i.complete)")
    assert page.evaluate(
        "[...document.querySelectorAll('figure.scaffold img')].map(i => i.naturalWidth)"
    ) == [300] * len(top)
    screenshot(page, "scaffolds")

    page.get_by_label("Containing (SMILES or SMARTS; searches every run)").fill("c1ccncc1")
    page.get_by_label("Containing (SMILES or SMARTS; searches every run)").press("Enter")
    page.wait_for_url(re.compile(r"contains="))
    assert page.locator("figure.scaffold figcaption").all_inner_texts() == with_pyridine
    assert "c1cncc(C2CCCN2)c1" in with_pyridine
    pyridine = Chem.MolFromSmiles("c1ccncc1")
    assert all(Chem.MolFromSmiles(smiles).HasSubstructMatch(pyridine) for smiles in with_pyridine)

    page.goto(f"{site.url}/runs/run-017-0000000")
    page.wait_for_function("[...document.querySelectorAll('figure.scaffold img')].every(i => i.complete)")
    assert page.locator("#scaffolds figure.scaffold img").count() == 3
