"""Watching a sweep in the browser (issue #17): runs logged through the real mlflow client
against the live server, the pages read in Chromium."""

import re
from urllib.parse import urlencode

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


def log_sweep(name: str, rows: list[dict], *, parent_name: str = "sweep") -> tuple[str, list[str]]:
    """A parent with one child per row of {param: value, ..., "metrics": {key: value}}, through
    the mlflow client; returns (parent run id, child run ids)."""
    mlflow.set_experiment(name)
    children = []
    with mlflow.start_run(run_name=parent_name) as parent:
        for i, row in enumerate(rows):
            with mlflow.start_run(run_name=f"trial-{i}", nested=True) as child:
                mlflow.log_params({key: value for key, value in row.items() if key != "metrics"})
                mlflow.log_metrics(row["metrics"])
                children.append(child.info.run_id)
    return parent.info.run_id, children


def test_a_sweep_shows_its_metric_values_on_child_rows_without_choosing_columns(page, tracking_uri):  # noqa: F811
    rows = [
        {"alpha": a, "fit_intercept": "True", "metrics": {"r2": r2, "rmse": 1 - r2}}
        for a, r2 in [(0.1, 0.81), (1.0, 0.5), (10.0, 0.1773)]
    ]
    parent_id, children = log_sweep("sklearn-sweep", rows)
    experiment_id = mlflow.get_experiment_by_name("sklearn-sweep").experiment_id
    page.goto(f"/experiments/{experiment_id}/")
    page.locator(f'tr[data-run-id="{parent_id}"] button[aria-expanded]').click()
    child = page.locator(f'tr[data-run-id="{children[0]}"]')
    expect(child).to_be_visible()
    expect(child).to_contain_text("0.8100")  # r2
    expect(child).to_contain_text("0.1900")  # rmse
    expect(child).to_contain_text("0.1")  # alpha varies; fit_intercept does not
    headers = page.locator("table.tree thead th").all_inner_texts()
    assert any("r2" in text for text in headers) and any("alpha" in text for text in headers)
    assert not any("fit_intercept" in text for text in headers)

    # The column picker takes several keys in one go, and keeps the expanded row.
    page.locator(".js-columns-menu summary").click()
    page.get_by_label("fit_intercept").check()
    page.get_by_label("rmse").uncheck()
    page.get_by_role("button", name="Show columns").click()
    expect(page).to_have_url(re.compile(r"columns=metrics.r2,params.alpha,params.fit_intercept"))
    expect(child).to_be_visible()
    expect(child).to_contain_text("True")


def test_accuracy_is_best_when_highest_in_the_tree_the_run_page_and_the_best_tag(page, tracking_uri):  # noqa: F811
    rows = [{"C": c, "metrics": {"accuracy": acc}} for c, acc in [(0.1, 0.61), (1.0, 0.94), (10.0, 0.72)]]
    parent_id, children = log_sweep("accuracy-sweep", rows)
    client = mlflow.MlflowClient()
    experiment_id = client.get_run(parent_id).info.experiment_id
    best = client.get_run(parent_id).data.tags
    assert best["runtree.best.accuracy"] == "0.94"
    assert best["runtree.best.accuracy.run_id"] == children[1]

    page.goto(f"/experiments/{experiment_id}/")
    best_cell = page.locator(f'tr[data-run-id="{parent_id}"] td.best')
    expect(best_cell).to_contain_text("0.9400")
    expect(best_cell).to_contain_text("trial-1")
    expect(page.locator(".goal-switch[data-metric=accuracy]")).to_contain_text("from name")

    page.goto(f"/runs/{parent_id}/")
    summary = page.locator("tr.summary-row[data-metric=accuracy]")
    expect(summary).to_contain_text("↑ max")
    expect(summary).to_contain_text("trial-1")

    # An explicit goal, set by a client, wins over the name; the tree says it is set.
    client.set_experiment_tag(experiment_id, "runtree.goal.accuracy", "min")
    assert client.get_run(parent_id).data.tags["runtree.best.accuracy.run_id"] == children[0]
    page.goto(f"/experiments/{experiment_id}/")
    expect(best_cell).to_contain_text("trial-0")
    expect(page.locator(".goal-switch[data-metric=accuracy]")).to_contain_text("set")
    page.goto(f"/runs/{parent_id}/")
    expect(summary).to_contain_text("↓ min")


def test_children_logged_while_the_page_is_open_appear_and_the_parent_finishes(page, tracking_uri):  # noqa: F811
    mlflow.set_experiment("live-sweep")
    parent = mlflow.start_run(run_name="slow-sweep")
    with mlflow.start_run(run_name="trial-0", nested=True) as first:
        mlflow.log_metric("val_loss", 0.9)
    page.goto(f"/experiments/{parent.info.experiment_id}/")
    expect(page.locator(".js-live")).to_have_attribute("data-state", "on")
    parent_row = page.locator(f'tr[data-run-id="{parent.info.run_id}"]')
    parent_row.locator("button[aria-expanded]").click()
    first_row = page.locator(f'tr[data-run-id="{first.info.run_id}"]')
    first_row.locator("input[name=run]").check()
    scroll_before = page.evaluate("window.scrollY")

    later = []
    for i in (1, 2):
        with mlflow.start_run(run_name=f"trial-{i}", nested=True) as child:
            mlflow.log_metric("val_loss", 0.9 - i / 10)
        later.append(child.info.run_id)
    for run_id in later:
        expect(page.locator(f'tr[data-run-id="{run_id}"]')).to_be_visible(timeout=15_000)
    expect(page.locator(f'tr[data-run-id="{later[1]}"]')).to_contain_text("0.7000")
    expect(parent_row.locator(".count")).to_have_text("3")

    mlflow.end_run()  # the parent
    expect(parent_row.locator(".status")).to_have_text("finished", timeout=15_000)
    # Nothing the viewer did was undone: the parent is open, the box still ticked, in the URL too.
    expect(parent_row.locator("button[aria-expanded]")).to_have_attribute("aria-expanded", "true")
    expect(first_row.locator("input[name=run]")).to_be_checked()
    assert first.info.run_id in page.url
    assert page.evaluate("window.scrollY") == scroll_before
    expect(page.locator(".js-compare")).to_have_text("Compare (1)")


def test_the_run_page_shows_metrics_and_children_logged_while_it_is_open(page, tracking_uri):  # noqa: F811
    mlflow.set_experiment("live-run-page")
    parent = mlflow.start_run(run_name="watched")
    mlflow.log_metric("val_loss", 0.9, step=0)
    page.goto(f"/runs/{parent.info.run_id}/")
    expect(page.locator(".js-live")).to_have_attribute("data-state", "on")
    mlflow.log_metric("val_loss", 0.5, step=1)
    with mlflow.start_run(run_name="late-child", nested=True) as child:
        mlflow.log_metric("val_loss", 0.4)
    metrics = page.locator("[data-live-part=metrics]")
    expect(metrics).to_contain_text("0.5000", timeout=15_000)
    expect(page.locator(f'[data-live-part=children] tr[data-run-id="{child.info.run_id}"]')).to_be_visible()
    mlflow.end_run()
    expect(page.locator("[data-live-part=status]")).to_have_text("finished", timeout=15_000)


def test_a_run_that_leaves_a_live_filtered_view_goes_and_the_count_follows(page, tracking_uri):  # noqa: F811
    # Rows were only ever added or updated: a finished run stayed in a view of running ones,
    # "1 matching run" over two rows, and a deleted run stayed listed.
    client = mlflow.MlflowClient()
    experiment_id = client.create_experiment("live-filtered")
    first = client.create_run(experiment_id, run_name="first").info.run_id
    page.goto(f"/experiments/{experiment_id}/?" + urlencode({"filter": "attributes.status = 'RUNNING'"}))
    expect(page.locator(".js-live")).to_have_attribute("data-state", "on")
    expect(page.locator(".js-tree-summary")).to_contain_text("1 matching run")

    second = client.create_run(experiment_id, run_name="second").info.run_id
    expect(page.locator(f'tr[data-run-id="{second}"]')).to_be_visible(timeout=15_000)
    expect(page.locator(".js-tree-summary")).to_contain_text("2 matching runs")

    client.set_terminated(first)
    expect(page.locator(f'tr[data-run-id="{first}"]')).to_have_count(0, timeout=15_000)
    expect(page.locator(".js-tree-summary")).to_contain_text("1 matching run")
    expect(page.locator(f'tr[data-run-id="{second}"]')).to_be_visible()

    page.goto(f"/experiments/{experiment_id}/")
    expect(page.locator("tr.run-row")).to_have_count(2)
    client.delete_run(first)
    expect(page.locator(f'tr[data-run-id="{first}"]')).to_have_count(0, timeout=15_000)
    expect(page.locator(".js-tree-summary")).to_contain_text("1 top-level run")


def logged_in_page(browser, live_server, role: str, username: str | None = None):
    """A browser context logged in as a new user (named `role` unless `username` is given) with
    `role` (its session cookie set)."""
    from django.contrib.auth.models import User
    from django.test import Client

    from tracker.web.auth import user_set_role

    user = User.objects.create_user(username or role, password="pw-123456789")
    user_set_role(user=user, role=role)
    client = Client()
    client.force_login(user)
    context = browser.new_context(base_url=live_server.url, viewport={"width": 1400, "height": 900})
    context.set_default_timeout(10_000)
    host = live_server.url.split("//")[1].split(":")[0]
    context.add_cookies(
        [{"name": "sessionid", "value": client.cookies["sessionid"].value, "domain": host, "path": "/"}]
    )
    return context, context.new_page()


def test_a_writer_tags_and_deletes_two_selected_runs_and_a_viewer_sees_no_controls(
    browser,
    live_server,
    settings,
    transactional_db,  # noqa: ARG001
):
    from tests.factories import ExperimentFactory, RunFactory
    from tracker.models import DELETED, Run, RunTag

    settings.RUNTREE_AUTH = "required"
    experiment = ExperimentFactory(name="acting-in-the-browser")
    runs = [RunFactory(experiment=experiment, name=f"run-{i}") for i in range(3)]

    context, page = logged_in_page(browser, live_server, "writer")
    page.goto(f"/experiments/{experiment.id}/")
    for run in runs[:2]:
        page.locator(f'tr[data-run-id="{run.run_id}"] input[name=run]').check()
    menu = page.locator(".js-act-menu")
    menu.locator("summary").click()
    expect(menu.locator("summary")).to_contain_text("(2)")
    menu.get_by_label("Tag").fill("reviewed")
    menu.get_by_label("Value").fill("yes")
    menu.get_by_role("button", name="Add tag").click()
    page.wait_for_load_state()
    assert set(RunTag.objects.filter(key="reviewed").values_list("run__name", flat=True)) == {"run-0", "run-1"}
    # The same view came back, the two still ticked.
    expect(page.locator(f'tr[data-run-id="{runs[0].run_id}"] input[name=run]')).to_be_checked()

    page.once("dialog", lambda dialog: dialog.accept())
    page.locator(".js-act-menu summary").click()
    page.locator(".js-act-menu").get_by_role("button", name="Delete").click()
    expect(page.locator(f'tr[data-run-id="{runs[0].run_id}"]')).to_have_count(0)
    assert set(Run.objects.filter(lifecycle_stage=DELETED).values_list("name", flat=True)) == {"run-0", "run-1"}
    expect(page.locator(f'tr[data-run-id="{runs[2].run_id}"]')).to_be_visible()
    context.close()

    context, page = logged_in_page(browser, live_server, "viewer")
    page.goto(f"/experiments/{experiment.id}/")
    expect(page.locator(f'tr[data-run-id="{runs[2].run_id}"]')).to_be_visible()
    expect(page.locator(".js-act-menu")).to_have_count(0)
    page.goto(f"/runs/{runs[2].run_id}/")
    expect(page.locator(".edit-run")).to_have_count(0)
    context.close()


def test_expand_all_opens_every_level_and_says_when_it_stops(page, demo):
    from tracker.models import Experiment, Run

    experiment = Experiment.objects.get(name="explorer_history")
    page.goto(f"/experiments/{experiment.id}/")
    page.get_by_role("button", name="Expand all").click()
    grandchild = Run.objects.get(name="sub_child_1")
    expect(page.locator(f'tr[data-run-id="{grandchild.run_id}"]')).to_be_visible()
    expect(page.locator(".js-expand-note")).to_be_hidden()

    # Bounded: with room for one parent only, it opens one and says it stopped.
    page.goto(f"/experiments/{experiment.id}/")
    page.locator(".js-expand-all").evaluate("button => { button.dataset.maxParents = '1'; }")
    page.get_by_role("button", name="Expand all").click()
    expect(page.locator(".js-expand-note")).to_contain_text("Stopped after opening 1 parents")
    expect(page.locator(f'tr[data-run-id="{grandchild.run_id}"]')).to_be_hidden()


def test_the_tree_at_390_px_keeps_names_visible_and_the_page_from_scrolling_sideways(page, demo):
    from tracker.models import Experiment, Run

    experiment = Experiment.objects.get(name="Parent Child Association Challenge")
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(f"/experiments/{experiment.id}/")
    parent = Run.objects.filter(experiment=experiment, depth=0).order_by("-start_time").first()
    row = page.locator(f'tr[data-run-id="{parent.run_id}"]')
    row.locator("button[aria-expanded]").click()
    expect(page.locator(f'tr[data-parent="{parent.run_id}"]').first).to_be_visible()
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    for name in page.locator("tr.run-row:visible .run-link").all()[:10]:
        assert name.bounding_box()["width"] >= 60  # a name, not an ellipsis alone
    expect(row.locator(".compare-children")).to_be_visible()  # no hover on a phone
    page.goto(f"/compare/?parent={parent.run_id}")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390


def test_the_compare_page_of_a_running_sweep_shows_children_and_values_as_they_come(page, tracking_uri):  # noqa: F811
    mlflow.set_experiment("live-compare")
    parent = mlflow.start_run(run_name="watched-sweep")
    for lr in ("0.1", "0.01"):
        with mlflow.start_run(run_name=f"lr-{lr}", nested=True):
            mlflow.log_param("lr", lr)
            for step in range(3):
                mlflow.log_metric("val_loss", 1 / (step + 1), step=step)
    page.goto(f"/compare/?parent={parent.info.run_id}")
    expect(page.locator(".js-live")).to_have_attribute("data-state", "on")
    expect(page.locator(".compare-table tbody tr")).to_have_count(2)
    bars = page.locator(".js-plotly-plot").nth(2)  # parallel coordinates, scatter, bars
    expect(bars).to_be_visible(timeout=30_000)
    assert bars.evaluate("graph => graph.data[0].x.length") == 2
    page.locator("select[name=history]").wait_for()
    with mlflow.start_run(run_name="lr-0.001", nested=True) as late:
        mlflow.log_param("lr", "0.001")
        for step in range(3):
            mlflow.log_metric("val_loss", 0.5 / (step + 1), step=step)
    # No reload: the count, the table, the bars and the history take the new child in.
    expect(page.locator("[data-live-part=count]")).to_have_text("3 runs", timeout=20_000)
    expect(page.locator(f'.compare-table tr[data-run-id="{late.info.run_id}"]')).to_be_visible()
    page.wait_for_function("graph => graph.data[0].x.length === 3", arg=bars.element_handle(), timeout=20_000)
    history = page.locator(".chart-history.js-plotly-plot")
    page.wait_for_function(
        "graph => graph.data.filter(trace => trace.showlegend !== false).length === 3",
        arg=history.element_handle(),
        timeout=20_000,
    )
    mlflow.end_run()
    # Polling goes on a minute after the last change (static/js/live.js), then stops.
    expect(page.locator(".js-live-text")).to_have_text("Live: 0 running", timeout=20_000)


def test_compare_sweeps_takes_in_a_trial_logged_while_it_is_open(page, tracking_uri):  # noqa: F811
    mlflow.set_experiment("live-sweeps")
    with mlflow.start_run(run_name="finished-sweep") as finished:
        with mlflow.start_run(run_name="old-trial", nested=True):
            mlflow.log_metric("val_loss", 0.8)
    running = mlflow.start_run(run_name="running-sweep")
    with mlflow.start_run(run_name="first-trial", nested=True):
        mlflow.log_metric("val_loss", 0.6)
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(f"/compare/?parents={finished.info.run_id},{running.info.run_id}")
    expect(page.locator(".js-live")).to_have_attribute("data-state", "on")
    expect(page.locator(".compare-table tbody tr")).to_have_count(2)
    # On a phone the heading wraps to name both sweeps (it used to end "finished-sweep, r…").
    heading, last_sweep = page.locator("h1").bounding_box(), page.locator("h1 a").last.bounding_box()
    assert last_sweep["x"] + last_sweep["width"] <= heading["x"] + heading["width"] + 0.5
    with mlflow.start_run(run_name="late-trial", nested=True) as late:
        mlflow.log_metric("val_loss", 0.4)
    # No reload: the new trial of the running sweep arrives in the count and the table.
    expect(page.locator("[data-live-part=count]")).to_have_text("3 runs", timeout=20_000)
    expect(page.locator(f'.compare-table tr[data-run-id="{late.info.run_id}"]')).to_be_visible()
    mlflow.end_run()
    expect(page.locator(".js-live-text")).to_have_text("Live: 0 running", timeout=20_000)
