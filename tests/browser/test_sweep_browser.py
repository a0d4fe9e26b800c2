"""Watching a sweep in the browser (issue #17): runs logged through the real mlflow client
against the live server, the pages read in Chromium."""

import re

import mlflow
from playwright.sync_api import expect

# The api tests' fixtures: the mlflow client pointed at the live server, and its connections
# closed at the end so PostgreSQL can drop the test database.
from tests.api.conftest import client_connections_closed_at_the_end, tracking_uri  # noqa: F401


def test_the_link_the_client_prints_after_a_run_lands_on_the_run_page(page, tracking_uri, capsys):  # noqa: F811
    mlflow.set_experiment("printed-links")
    with mlflow.start_run(run_name="linked-run") as run:
        mlflow.log_metric("loss", 0.5)
    printed = capsys.readouterr().out
    run_url = re.search(r"View run linked-run at: (\S+)", printed).group(1)
    experiment_url = re.search(r"View experiment at: (\S+)", printed).group(1)
    assert "/#/experiments/" in run_url

    page.goto(run_url)
    expect(page).to_have_url(re.compile(rf"/runs/{run.info.run_id}/$"))
    expect(page.locator("h1")).to_contain_text("linked-run")

    page.goto(experiment_url)
    expect(page).to_have_url(re.compile(rf"/experiments/{run.info.experiment_id}/$"))
    expect(page.locator(f'tr[data-run-id="{run.info.run_id}"]')).to_be_visible()
