"""The experiment and model lists on a phone: the page never scrolls sideways, whatever it holds."""

import pytest

from tracker import services
from tracker.models import DELETED


@pytest.fixture
def empty_store(transactional_db):
    """What a newcomer sees first: the Default experiment, no runs, no registered models."""


@pytest.fixture
def one_experiment(transactional_db):
    services.experiment_create(name="a-rather-long-experiment-name-for-a-narrow-screen")


@pytest.mark.parametrize("path", ["/", "/models/", "/models/?q=none-match"])
def test_an_empty_list_fits_a_phone(page, empty_store, path):
    # The model list's first-use snippet and the experiment list's search button each pushed
    # the page wider than the screen.
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(path)

    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    search = page.get_by_role("button", name="Search")
    box = search.bounding_box()
    assert box["x"] + box["width"] <= 390


def test_the_first_use_hint_replaces_the_empty_model_table(page, empty_store):
    page.goto("/models/")

    assert page.get_by_text("No registered models yet.").is_visible()
    assert page.locator("table.models").count() == 0


def test_the_experiment_list_fits_a_phone_with_an_experiment(page, one_experiment):
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto("/")

    assert page.get_by_role("link", name="a-rather-long-experiment-name-for-a-narrow-screen").is_visible()
    assert page.evaluate("document.documentElement.scrollWidth") <= 390


def test_on_a_phone_a_long_deleted_name_keeps_its_end_its_badge_and_its_row_on_screen(page, transactional_db):
    experiment = services.experiment_create(name="customer-churn-weekly-retrain-deleted-2026-11")
    services.experiment_set_lifecycle(experiment=experiment, stage=DELETED)
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto("/?show_deleted=1")
    row = page.locator("tr", has=page.get_by_role("link", name="customer-churn-weekly-retrain-deleted-2026-11"))
    for part in (row.locator(".tail"), row.locator(".badge-deleted"), row.locator("td.num")):
        box = part.bounding_box()
        assert box["width"] > 0 and box["x"] + box["width"] <= 390, part  # on screen, not cut off
    assert row.locator(".tail").text_content() == "2026-11"
