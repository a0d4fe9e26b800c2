import os
import re
from urllib.parse import parse_qs, urlparse

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import ARTIFACTS
from tracker.models import Experiment, Run

DOCS = ARTIFACTS.parent / "docs"


def open_experiment(page, name, query=""):
    experiment = Experiment.objects.get(name=name)
    page.goto(f"/experiments/{experiment.id}/{query}")
    return experiment


def row(page, run):
    return page.locator(f'tr[data-run-id="{run.run_id}"]')


def query_of(page) -> dict:
    return {k: v[0] for k, v in parse_qs(urlparse(page.url).query).items()}


def shown_text(element) -> str:
    """The characters of a name's part drawn inside its box (a character under the part's own
    ellipsis may count as drawn)."""
    return element.evaluate(
        """e => {
            const box = e.getBoundingClientRect(), text = e.firstChild, range = document.createRange();
            let shown = "";
            for (let i = 0; i < text.length; i++) {
                range.setStart(text, i);
                range.setEnd(text, i + 1);
                const r = range.getBoundingClientRect();
                if (r.left >= box.left - 0.5 && r.right <= box.right + 0.5) shown += text.data[i];
            }
            return shown;
        }"""
    )


def test_from_the_list_a_parent_expands_in_place(page, demo):
    page.goto("/")
    page.get_by_role("link", name="Nested Child Association").click()
    # The click returns once the tree page starts loading; a twisty clicked before tree.js (deferred)
    # has run does nothing, which a loaded machine showed.
    page.wait_for_load_state()
    parent = Run.objects.get(name="parent_run_test_default_0")
    button = row(page, parent).locator("button[aria-expanded]")
    expect(button).to_have_attribute("aria-expanded", "false")
    button.click()
    expect(button).to_have_attribute("aria-expanded", "true")
    children = page.locator(f'tr[data-parent="{parent.run_id}"]')
    expect(children).to_have_count(5)
    expect(children.first).to_be_visible()
    assert parent.run_id in query_of(page)["expanded"]
    # Collapsing hides them again, with no request.
    button.click()
    expect(children.first).to_be_hidden()
    assert "expanded" not in query_of(page)


def test_a_grandchild_expands_in_the_three_level_tree_and_a_reload_keeps_it(page, demo):
    open_experiment(page, "explorer_history")
    parent, child_1, sub_child = (Run.objects.get(name=n) for n in ("parent_run_name", "child_1", "sub_child_1"))
    row(page, parent).locator("button[aria-expanded]").click()
    row(page, child_1).locator("button[aria-expanded]").click()
    expect(row(page, sub_child)).to_be_visible()
    expect(row(page, sub_child)).to_have_attribute("data-level", "2")
    expanded_url = page.url
    page.reload()
    assert page.url == expanded_url
    expect(row(page, sub_child)).to_be_visible()
    expect(row(page, child_1).locator("button[aria-expanded]")).to_have_attribute("aria-expanded", "true")


def test_a_tag_filter_shows_matches_inside_their_parents(page, demo):
    open_experiment(page, "Parent Child Association Challenge")
    page.locator("input[name=filter]").fill("tags.test_identifier = 'subset_test' AND metrics.metric1 < 0.1")
    page.locator("input[name=filter]").press("Enter")
    expect(page.locator(".match-count")).to_contain_text("matching run")
    matches = page.locator("tr.is-match")
    assert matches.count() > 0
    for i in range(matches.count()):
        match = matches.nth(i)
        parent_id = match.get_attribute("data-parent")
        context = page.locator(f'tr[data-run-id="{parent_id}"]')
        expect(context).to_have_class(re.compile("is-context"))
        expect(context).to_have_attribute("aria-label", re.compile("context"))
    count = int(re.search(r"(\d+) matching", page.locator(".match-count").inner_text()).group(1))
    assert count == matches.count()


def test_a_tag_chip_adds_its_clause_to_the_filter(page, demo):
    open_experiment(page, "Nested Child Association")
    page.locator("a.chip", has_text="params_test_3").click()
    expect(page.locator("input[name=filter]")).to_have_value("tags.test_identifier = 'params_test_3'")
    expect(page.locator(".match-count")).to_have_text("30 matching runs")
    parents = page.locator('tr.run-row[data-level="0"]')
    expect(parents).to_have_count(5)


def test_a_bad_filter_shows_the_message_next_to_the_box(page, demo):
    open_experiment(page, "Nested Child Association", "?filter=metrics.metric1+%3C")
    expect(page.locator("#filter-error")).to_contain_text("Invalid filter at position")
    expect(page.locator("input[name=filter]")).to_have_value("metrics.metric1 <")


def test_a_breadcrumb_leads_back_up_the_tree(page, demo):
    sub_child = Run.objects.get(name="sub_child_1")
    page.goto(f"/runs/{sub_child.run_id}/")
    expect(page.locator("h1")).to_have_text("sub_child_1")
    page.locator(".crumbs").get_by_role("link", name="child_1").click()
    expect(page.locator("h1")).to_have_text("child_1")
    page.locator(".crumbs").get_by_role("link", name="parent_run_name").click()
    expect(page.locator("h1")).to_have_text("parent_run_name")
    page.get_by_role("link", name="Open in experiment tree").click()
    expect(page.locator("tr.is-match")).to_have_count(1)


def test_the_run_pages_children_expand_in_place_with_their_metrics(page, demo):
    parent, child_1, sub_child = (Run.objects.get(name=n) for n in ("parent_run_name", "child_1", "sub_child_1"))
    page.goto(f"/runs/{parent.run_id}/")
    row(page, child_1).locator("button[aria-expanded]").click()
    expect(row(page, sub_child)).to_be_visible()
    # The grandchild's row has the same metric column as its parent's.
    expect(row(page, sub_child).locator("td.num")).to_have_count(row(page, child_1).locator("td.num").count())
    assert "expanded" not in page.url  # the run page keeps no tree state in its URL


def test_the_run_page_draws_metric_history_with_plotly(page, demo):
    run = Run.objects.get(name="child_1")
    page.goto(f"/runs/{run.run_id}/")
    # Its own history, and (child_1 is a parent) its children's band.
    expect(page.locator(".chart-history.js-plotly-plot")).to_have_count(1)
    expect(page.locator(".chart-history.js-plotly-plot .main-svg").first).to_be_visible()


def test_selection_updates_the_compare_link_and_survives_a_reload(page, demo):
    open_experiment(page, "Nested Child Association")
    parent = Run.objects.get(name="parent_run_test_default_1")
    row(page, parent).locator("button[aria-expanded]").click()
    children = list(Run.objects.filter(parent=parent).order_by("-start_time")[:2])
    for child in children:
        page.locator(f'input[type=checkbox][name=run][value="{child.run_id}"]').check()
    compare = page.get_by_role("link", name=re.compile(r"^Compare"))
    expect(compare).to_have_text("Compare (2)")
    assert compare.get_attribute("href") == "/compare/?runs=" + ",".join(c.run_id for c in children)
    page.reload()
    expect(page.get_by_role("link", name=re.compile(r"^Compare"))).to_have_text("Compare (2)")
    for child in children:
        expect(page.locator(f'input[name=run][value="{child.run_id}"]')).to_be_checked()


def test_show_more_loads_the_next_page_of_children(page, demo):
    open_experiment(page, "Parent Child Association Challenge", "?per_page=10")
    parent = Run.objects.filter(experiment__name="Parent Child Association Challenge", depth=0).first()
    row(page, parent).locator("button[aria-expanded]").click()
    children = page.locator(f'tr.run-row[data-parent="{parent.run_id}"]')
    expect(children).to_have_count(10)
    page.locator(f'tr.more-row[data-parent="{parent.run_id}"] button').click()
    expect(children).to_have_count(20)
    page.locator(f'tr.more-row[data-parent="{parent.run_id}"] button').click()
    expect(children).to_have_count(25)
    expect(page.locator(f'tr.more-row[data-parent="{parent.run_id}"]')).to_have_count(0)


def test_expand_all_and_collapse_all_work_on_the_visible_page(page, demo):
    open_experiment(page, "Nested Child Association")
    page.get_by_role("button", name="Expand all").click()
    expect(page.locator('tr.run-row[data-level="1"]')).to_have_count(75)
    assert len(query_of(page)["expanded"].split(",")) == 15
    page.get_by_role("button", name="Collapse all").click()
    expect(page.locator('tr.run-row[data-level="1"]:visible')).to_have_count(0)
    assert "expanded" not in query_of(page)


def test_sorting_by_a_metric_column_keeps_the_tree(page, demo):
    parent = Run.objects.get(name="parent_run_test_params_test_2_0")
    open_experiment(page, "Nested Child Association", f"?columns=metrics.metric1&expanded={parent.run_id}")
    page.get_by_role("link", name=re.compile("metric1")).click()
    # metric1's goal is min, so the first click sorts it best first: ascending (#17).
    expect(page.locator("th[aria-sort=ascending]")).to_contain_text("metric1")
    # The 6th cell: select, run, status, started, duration, then metric1.
    values = page.locator(f'tr[data-parent="{parent.run_id}"] td.num:nth-child(6)').all_inner_texts()
    numbers = [float(v) for v in values]
    assert len(numbers) == 5 and numbers == sorted(numbers)


def test_screenshot_of_the_tree_page(page, demo):
    """Saved for people to look at; docs/tree.png is refreshed with RUNTREE_UPDATE_DOCS=1."""
    open_experiment(
        page,
        "Nested Child Association",
        "?columns=params.param1,params.param2,metrics.metric1,metrics.metric2&sort=metrics.metric1"
        "&filter=tags.test_identifier+%3D+%27params_test_2%27+AND+metrics.metric1+%3C+0.5",
    )
    matches = page.locator("tr.is-match")
    expect(matches.first).to_be_visible()
    for i in (0, 1):
        matches.nth(i).locator("input[name=run]").check()
    expect(page.get_by_role("link", name=re.compile(r"^Compare"))).to_have_text("Compare (2)")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=ARTIFACTS / "tree.png", full_page=False)
    if os.environ.get("RUNTREE_UPDATE_DOCS") == "1":
        page.screenshot(path=DOCS / "tree.png", full_page=False)


@pytest.mark.parametrize("path", ["/", "/experiments/{id}/", "/experiments/{id}/?filter=(("])
def test_pages_load_without_script_errors(page, demo, path):
    experiment = Experiment.objects.get(name="explorer_history")
    page.goto(path.format(id=experiment.id))
    expect(page.locator("h1")).to_be_visible()


def test_at_390_px_sweep_runs_that_share_a_start_are_told_apart_by_their_ends(page, demo):
    page.set_viewport_size({"width": 390, "height": 844})
    experiment = open_experiment(page, "Nested Child Association")
    names = page.locator("tr.run-row .run-link")
    expect(names.first).to_be_visible()
    seen = []
    for name in names.all():
        run = Run.objects.get(experiment=experiment, run_id=name.evaluate("link => link.closest('tr').dataset.runId"))
        assert name.text_content() == run.name  # read whole by screen readers and copying
        link, tail = name.bounding_box(), name.locator(".tail").bounding_box()
        # The end is drawn in full inside the link: only the head gives way.
        assert (
            tail["width"] > 30
            and link["x"] <= tail["x"]
            and tail["x"] + tail["width"] <= link["x"] + link["width"] + 0.5
        )
        seen.append(name.locator(".tail").text_content())
    assert len(seen) == 15 and len(set(seen)) == 15
    page.screenshot(path=ARTIFACTS / "tree-names-390.png")


def test_at_390_px_children_named_alike_at_both_ends_show_where_they_differ(page, transactional_db):
    from tracker import services
    from tracker.services import KeyValue

    experiment = services.experiment_create(name="bert finetune")
    parent = services.run_create(experiment=experiment, name="lr-sweep")
    for lr in ("1e-5", "3e-5", "5e-5"):
        services.run_create(
            experiment=experiment,
            name=f"bert-base-uncased-lr{lr}-bs32-squad-v2",
            tags=[KeyValue("mlflow.parentRunId", parent.run_id)],
        )
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(f"/experiments/{experiment.id}/")
    row(page, parent).locator(".twisty").click()
    children = page.locator(f'tr.run-row[data-parent="{parent.run_id}"] .run-link')
    expect(children).to_have_count(3)
    shown = []
    for link in children.all():
        box, tail = link.bounding_box(), link.locator(".tail")
        tail_box = tail.bounding_box()
        assert tail_box["x"] + tail_box["width"] <= box["x"] + box["width"] + 0.5  # inside the cell's link
        shown.append(shown_text(tail))  # up to where its own ellipsis begins, if it has one
    # Before, each tail was "squad-v2": three rows that read alike.
    assert all(text.startswith("lr") for text in shown) and len({text[:6] for text in shown}) == 3, shown
    page.screenshot(path=ARTIFACTS / "tree-names-differing-in-the-middle-390.png")


def test_at_1280_px_with_more_columns_than_fit_the_best_child_and_the_names_stay_readable(page, demo):
    page.set_viewport_size({"width": 1280, "height": 800})
    open_experiment(page, "Parent Child Association Challenge")
    box = page.locator(".table-wrap")
    assert box.evaluate("w => w.scrollWidth > w.clientWidth")  # seven value columns: the table scrolls
    bests = page.locator("tr.run-row td.best")
    expect(bests.first).to_contain_text("run_")
    for scrolled in ("w => w.scrollLeft = 0", "w => w.scrollLeft = w.scrollWidth"):
        box.evaluate(scrolled)
        edge = box.bounding_box()
        for cell in bests.all():
            cell_box = cell.bounding_box()
            assert cell_box["x"] >= edge["x"] and cell_box["x"] + cell_box["width"] <= edge["x"] + edge["width"] + 0.5
    box.evaluate("w => w.scrollLeft = 0")
    # The parents' names end where they differ ("…subset_test_3"): the compare link gave up its words.
    tails = [shown_text(link.locator(".tail")) for link in page.locator("tr.run-row .run-link").all()]
    assert len(tails) == 5 and len(set(tails)) == 5, tails
    assert page.locator("tr.run-row .compare-children .wide-only").first.is_hidden()
    page.screenshot(path=ARTIFACTS / "tree-many-columns-1280.png")


def test_at_390_px_parents_whose_names_end_in_a_counter_keep_the_counter_in_sight(page, demo):
    page.set_viewport_size({"width": 390, "height": 844})
    open_experiment(page, "Parent Child Association Challenge")
    tails = [shown_text(link.locator(".tail")) for link in page.locator("tr.run-row .run-link").all()]
    # Before, each read "subse" (the tail cut at its end): five rows alike.
    assert len(tails) == 5 and len(set(tails)) == 5, tails
    assert sorted(tail[-1] for tail in tails) == ["0", "1", "2", "3", "4"], tails
    page.screenshot(path=ARTIFACTS / "tree-counters-390.png")
