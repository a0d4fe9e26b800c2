"""Pages fit their screen in Chromium, at laptop width and on a phone: a long word in a run's
description, a logged-in user's bar, a summary's short keys; and the run page's children table
offers no checkboxes that would do nothing."""

import pytest
from playwright.sync_api import expect

from tests.browser.test_sweep_browser import logged_in_page
from tests.factories import ExperimentFactory, RunFactory
from tracker.models import RunTag
from tracker.services import MetricInput, run_log_batch
from tracker.summaries.refresh import refresh_tree

SIDEWAYS_SCROLL = "() => document.documentElement.scrollWidth - window.innerWidth"


@pytest.fixture
def sweep(transactional_db):
    """A parent with two children, the first with a child of its own, and values to summarise."""
    experiment = ExperimentFactory(name="fit")
    parent = RunFactory(experiment=experiment, name="sweep")
    children = [RunFactory(experiment=experiment, parent=parent, name=f"trial-{index}") for index in range(2)]
    RunFactory(experiment=experiment, parent=children[0], name="fold-0")
    for index, child in enumerate(children):
        metrics = [MetricInput("train_accuracy", 0.8 + index / 10, 1, 0), MetricInput("val_acc", 0.7, 1, 0)]
        run_log_batch(run=child, metrics=metrics)
    refresh_tree(root_pk=parent.pk)
    return parent


@pytest.mark.parametrize("width", [1400, 390])
def test_a_long_word_in_a_description_never_makes_the_run_page_scroll_sideways(page, sweep, width):
    RunTag.objects.create(run=sweep, key="mlflow.note.content", value="See https://example.com/" + "a" * 150)
    page.set_viewport_size({"width": width, "height": 900})
    page.goto(f"/runs/{sweep.run_id}/")
    expect(page.locator(".description")).to_contain_text("example.com")
    assert page.evaluate(SIDEWAYS_SCROLL) <= 0


def test_a_phone_keeps_a_summarys_short_keys_whole(page, sweep):
    # A key cell shrank to one character's width: "train_a/ccurac/y", "val_ac/c".
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(f"/runs/{sweep.run_id}/")
    key = page.locator(".kv th[scope=row]", has_text="val_acc").first
    expect(key).to_be_visible()
    line_height = page.evaluate("(cell) => parseFloat(getComputedStyle(cell).lineHeight)", key.element_handle())
    assert key.bounding_box()["height"] < 1.8 * line_height  # one line


def test_the_run_pages_children_table_offers_no_checkboxes_that_do_nothing(page, sweep):
    page.goto(f"/runs/{sweep.run_id}/")
    children = page.locator("[data-live-part=children] table")
    expect(children.locator("tr.run-row")).to_have_count(2)
    children.get_by_role("button", name="Child runs of trial-0").click()
    expect(children.locator("tr.run-row")).to_have_count(3)  # its child came in too
    assert children.locator("input[name=run]").count() == 3
    for box in children.locator("input[name=run]").all():
        expect(box).to_be_hidden()


def test_logged_in_on_a_phone_the_bar_keeps_log_out_on_screen(browser, live_server, settings, sweep):
    settings.RUNTREE_AUTH = "required"
    context, page = logged_in_page(browser, live_server, "viewer", "a-rather-long-user-name-from-the-directory")
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(f"/runs/{sweep.run_id}/")
    log_out = page.get_by_role("button", name="Log out")
    expect(log_out).to_be_visible()
    box = log_out.bounding_box()
    assert box["x"] >= 0 and box["x"] + box["width"] <= 390
    assert page.evaluate(SIDEWAYS_SCROLL) <= 0
    context.close()


def test_on_a_phone_a_long_run_name_in_the_heading_shows_its_end(page, transactional_db):
    # The heading cut the end off with an ellipsis: "parent_run_test_params_te…", where sweep runs differ.
    run = RunFactory(
        experiment=ExperimentFactory(name="names"), name="parent_run_test_params_tested_with_lr_0.001_bs_64"
    )
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(f"/runs/{run.run_id}/")
    heading = page.get_by_role("heading", level=1)
    expect(heading).to_have_text(run.name)
    assert heading.evaluate("(h) => h.scrollWidth <= h.clientWidth")
    assert page.evaluate(SIDEWAYS_SCROLL) <= 0


def test_on_a_touch_screen_the_trees_checkboxes_and_expanders_are_a_fingers_size(browser, live_server, sweep):
    phone = browser.new_context(
        base_url=live_server.url, viewport={"width": 390, "height": 844}, has_touch=True, is_mobile=True
    )
    page = phone.new_page()
    page.goto(f"/experiments/{sweep.experiment_id}/")
    row = page.locator(f'tr[data-run-id="{sweep.run_id}"]')
    for target in (row.locator("input[name=run]"), row.get_by_role("button", name="Child runs of sweep")):
        box = target.bounding_box()
        assert box["width"] >= 24 and box["height"] >= 24, box
    phone.close()
