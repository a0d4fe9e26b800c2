"""A logged model's pages in Chromium: the link MLflow's UI uses lands on them, the list sorts
by a metric column, and the model's files open as previews."""

import re

import pytest
from playwright.sync_api import expect

from tests.dashboard.test_logged_model_pages import log_for, logged_model
from tracker import services
from tracker.services import KeyValue

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def trial():
    experiment = services.experiment_create(name="checkpoints")
    parent = services.run_create(experiment=experiment, name="sweep")
    parent_tag = KeyValue("mlflow.parentRunId", parent.run_id)
    return services.run_create(experiment=experiment, name="trial", tags=[parent_tag])


def test_mlflow_ui_links_land_on_the_models_and_the_list_sorts_by_a_metric(page, trial):
    first, second = logged_model(trial, "first"), logged_model(trial, "second")
    log_for(first, trial, "val_loss", 0.2, dataset="val")
    log_for(second, trial, "val_loss", 0.4, dataset="val")

    page.goto(f"/#/experiments/{trial.experiment_id}/models")
    page.wait_for_url(f"**/experiments/{trial.experiment_id}/models/")
    names = page.locator("table.logged-models tbody td.name > a")
    expect(names).to_have_text(["second", "first"])  # newest first
    page.get_by_role("link", name=re.compile("val_loss")).click()  # a loss: lowest first
    expect(names).to_have_text(["first", "second"])
    page.get_by_role("link", name=re.compile("val_loss")).click()
    expect(names).to_have_text(["second", "first"])

    page.goto(f"/#/experiments/{trial.experiment_id}/models/{first.model_id}")
    page.wait_for_url(f"**/experiments/{trial.experiment_id}/models/{first.model_id}/")
    expect(page.locator("main h1")).to_have_text("first")
    section = page.locator("section.artifacts")
    section.locator('[data-artifact-path="MLmodel"] summary').click()
    expect(section.locator("pre.artifact-text")).to_contain_text("sklearn_version: 1.9.1")
