"""The best-child column and the goal switch, in a browser, on the demo's challenge experiment."""

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import ARTIFACTS
from tracker.demo import CHALLENGE_EXPERIMENT
from tracker.models import Experiment, Run, RunSummary

pytestmark = pytest.mark.browser


def test_switching_a_goal_to_max_changes_the_best_child_shown(page, demo):
    experiment = Experiment.objects.get(name=CHALLENGE_EXPERIMENT)
    parent = Run.objects.filter(experiment=experiment, depth=0).order_by("start_time").first()
    summary = RunSummary.objects.select_related("best_run").get(run=parent, key="metric1")
    page.goto(f"/experiments/{experiment.id}/")
    # Pick metric1 for the column (the first metric with summaries, loss, is the default).
    page.locator(".js-best-form select").select_option("metric1")
    expect(page.locator("th.best-col")).to_contain_text("metric1")
    cell = page.locator(f'tr[data-run-id="{parent.run_id}"] td.best')
    expect(cell).to_contain_text("↓")
    expect(cell.locator("a.best-run")).to_have_text(summary.best_run.name)
    before = cell.inner_text()
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=ARTIFACTS / "summaries-min.png", full_page=False)

    page.locator('.goal-switch[data-metric="metric1"] button[value="max"]').click()

    expect(page.locator('.goal-switch[data-metric="metric1"] button[value="max"]')).to_have_attribute(
        "aria-pressed", "true"
    )
    expect(cell).to_contain_text("↑")
    assert cell.inner_text() != before
    summary.refresh_from_db()
    assert summary.goal == "max"
    expect(cell.locator("a.best-run")).to_have_text(summary.best_run.name)
    # Back to the same view: the column still shows metric1.
    assert "best=metric1" in page.url
    page.screenshot(path=ARTIFACTS / "summaries-max.png", full_page=False)
