"""The registry in Chromium: from /models/ to a model, from its versions to their runs, and the
run page's registration; a viewer sees no edit controls, a writer moves an alias."""

import pytest
from playwright.sync_api import expect

from registry import services
from registry.models import ModelVersion
from tests.factories import build_tree
from tests.trust.conftest import PASSWORD, make_user
from tracker.models import LatestMetric

pytestmark = pytest.mark.browser


@pytest.fixture
def fraud(transactional_db):
    """A sweep of three children; model 'fraud' has a version from each of the first two."""
    parent, *children = build_tree([1, 3])
    for index, child in enumerate(children):
        LatestMetric.objects.create(run=child, key="rmse", value=0.3 + index / 10, timestamp=1, step=0)
    model = services.registered_model_create(name="fraud", description="boosted trees")
    for child in children[:2]:
        source = services.resolve_source(source=f"runs:/{child.run_id}/model", run_id=child.run_id)
        services.model_version_create(model=model, source=source)
    return parent, children


def log_in(page, username):
    page.goto("/accounts/login/")
    page.get_by_label("User name").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()


def test_from_the_models_list_to_a_version_to_its_run(page, fraud):
    parent, children = fraud
    page.goto("/")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Models").click()
    page.get_by_role("link", name="fraud", exact=True).click()
    expect(page.get_by_role("heading", name="fraud", exact=True)).to_be_visible()
    for number, child in [("1", children[0]), ("2", children[1])]:
        row = page.locator(f'tr[data-version="{number}"]')
        expect(row.get_by_role("link", name=child.name)).to_have_attribute("href", f"/runs/{child.run_id}/")
        expect(row.get_by_role("link", name=parent.name)).to_have_attribute("href", f"/runs/{parent.run_id}/")
    page.locator('tr[data-version="2"]').get_by_role("link", name=children[1].name).click()
    expect(page.locator(".registrations")).to_have_text("registered as fraud v2")


def test_a_writer_sets_and_moves_an_alias(page, fraud, settings):
    settings.RUNTREE_AUTH = "required"
    make_user("wanda", "writer")
    log_in(page, "wanda")
    page.goto("/models/fraud/")
    form = page.locator("form.alias-form")
    form.get_by_label("Alias").fill("champion")
    form.get_by_label("on version").select_option("1")
    form.get_by_role("button", name="Set alias").click()
    expect(page.locator('li[data-alias="champion"]')).to_contain_text("version 1")

    page.locator("form.alias-form").get_by_label("Alias").fill("champion")
    page.locator("form.alias-form").get_by_label("on version").select_option("2")
    page.locator("form.alias-form").get_by_role("button", name="Set alias").click()
    expect(page.locator('li[data-alias="champion"]')).to_contain_text("version 2")
    expect(page.locator('tr[data-version="2"] .chip.alias')).to_have_text("@champion")
    assert ModelVersion.objects.get_by_alias("fraud", "champion").version == 2


def test_a_viewer_sees_no_edit_controls(page, fraud, settings):
    settings.RUNTREE_AUTH = "required"
    make_user("victor", "viewer")
    log_in(page, "victor")
    for url in ["/models/fraud/", "/models/fraud/versions/1/"]:
        page.goto(url)
        expect(page.locator("main h1")).to_contain_text("fraud")
        expect(page.locator("main form")).to_have_count(0)
        expect(page.locator("main select, main textarea, main input")).to_have_count(0)


def test_mlflow_ui_links_to_a_model_and_a_version_land_on_their_pages(page, fraud):
    page.goto("/#/models/fraud")
    page.wait_for_url("**/models/fraud/")
    page.goto("/#/models/fraud/versions/2")
    page.wait_for_url("**/models/fraud/versions/2/")
    expect(page.get_by_role("heading", name="fraud v2")).to_be_visible()
