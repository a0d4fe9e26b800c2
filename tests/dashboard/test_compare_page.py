"""The compare page: /compare/?runs=... and ?parent=..., its table, CSV, charts and errors."""

import csv
import io
import json
import math

import pytest
from django.urls import reverse

from dashboard.diff_table import TABLE_ROWS
from tests.factories import ExperimentFactory, RunFactory, bulk_children
from tracker.constants import GOAL_TAG_PREFIX
from tracker.models import LatestMetric, Metric, Run, RunStatus
from tracker.services import KeyValue, MetricInput, experiment_set_tag, run_log_batch

URL = reverse("dashboard:compare")
HISTORY_URL = reverse("dashboard:compare-history")


def log(run, params=(), metrics=(), history=()):
    """Params and latest metrics at step 0, plus a `loss` history (one value per step)."""
    run_log_batch(
        run=run,
        params=[KeyValue(k, v) for k, v in params],
        metrics=[MetricInput(k, v, 1_700_000_000_000, 0) for k, v in metrics]
        + [MetricInput("loss", v, 1_700_000_000_000 + step, step) for step, v in enumerate(history)],
    )


@pytest.fixture
def sweep(db):
    """Two parents: p0 with children c00, c01, c02; p1 with c10. `seed` is the same everywhere."""
    experiment = ExperimentFactory(name="sweep")
    p0 = RunFactory(experiment=experiment, name="p0")
    p1 = RunFactory(experiment=experiment, name="p1")
    runs = {}
    for parent, name, lr, opt, acc, history in [
        (p0, "c00", "0.1", "adam", 0.70, [1.0, 0.8, 0.6]),
        (p0, "c01", "0.01", "sgd", 0.90, [1.0, 0.5, 0.3]),
        (p0, "c02", "0.001", "adam", math.nan, [1.0, 0.9, 0.85]),
        (p1, "c10", "0.1", "sgd", 0.80, [1.2, 0.7, 0.4]),
    ]:
        runs[name] = RunFactory(experiment=experiment, parent=parent, name=name)
        log(runs[name], params=[("lr", lr), ("opt", opt), ("seed", "7")], metrics=[("acc", acc)], history=history)
    runs.update(p0=p0, p1=p1)
    return runs


def ids(*runs) -> str:
    return ",".join(run.run_id for run in runs)


def figures(response) -> list[dict]:
    """The figure dicts the page hands plotly.js (json_script), parsed as the browser does."""
    html = response.content.decode()
    found = []
    for chunk in html.split('<script id="compare-figure-')[1:]:
        body = chunk.split(">", 1)[1].split("</script>", 1)[0]
        found.append(json.loads(body))
    return found


def figure_types(response) -> list[str]:
    return [figure["data"][0]["type"] if figure["data"] else "empty" for figure in figures(response)]


def test_it_shows_the_selected_runs_with_their_parents_params_and_metrics(client, sweep):
    response = client.get(URL, {"runs": ids(sweep["c00"], sweep["c01"], sweep["c10"])})
    assert response.status_code == 200
    table = response.context["table"]
    assert [row.run.name for row in table.rows] == ["c00", "c01", "c10"]
    assert [row.run.parent_name for row in table.rows] == ["p0", "p0", "p1"]
    assert table.param_keys == ["lr", "opt", "seed"]
    assert table.metric_keys == ["acc", "loss"]
    assert [cell.text for cell in table.rows[1].cells] == ["0.01", "sgd", "7", "0.9000", "0.3000"]
    assert [row.duration for row in table.rows] == ["5.0 s"] * 3
    html = response.content.decode()
    assert f'data-run-id="{sweep["c10"].run_id}"' in html
    assert '<span class="parent" title="parent: p1">p1</span>' in html
    assert "finished" in html


def test_it_compares_all_children_of_a_parent(client, sweep):
    response = client.get(URL, {"parent": sweep["p0"].run_id})
    assert response.status_code == 200
    assert [row.run.name for row in response.context["table"].rows] == ["c00", "c01", "c02"]
    html = response.content.decode()
    assert "Children of p0" in html
    # The heading names the parent; the rows do not repeat it.
    assert '<span class="parent"' not in html


def test_a_deleted_child_is_not_compared_with_its_siblings(client, sweep):
    Run.objects.filter(pk=sweep["c02"].pk).update(lifecycle_stage="deleted")
    response = client.get(URL, {"parent": sweep["p0"].run_id})
    assert [row.run.name for row in response.context["table"].rows] == ["c00", "c01"]


def test_checkboxes_named_run_select_runs_too(client, sweep):
    response = client.get(f"{URL}?run={sweep['c00'].run_id}&run={sweep['c01'].run_id}")
    assert len(response.context["table"].rows) == 2


def test_differences_only_hides_params_equal_in_every_run(client, sweep):
    selection = ids(sweep["c00"], sweep["c01"])
    everything = client.get(URL, {"runs": selection}).context["table"]
    differences = client.get(URL, {"runs": selection, "diff": "1"}).context["table"]
    assert everything.param_keys == ["lr", "opt", "seed"]
    assert everything.varying == {"lr", "opt"}
    assert differences.param_keys == ["lr", "opt"]
    assert differences.hidden_params == 1


def test_a_param_missing_from_one_run_differs(client, sweep):
    extra = RunFactory(experiment=sweep["p0"].experiment, parent=sweep["p0"], name="bare")
    log(extra, params=[("lr", "0.1"), ("opt", "adam")])
    table = client.get(URL, {"runs": ids(sweep["c00"], extra), "diff": "1"}).context["table"]
    assert table.param_keys == ["seed"]
    assert table.rows[1].cells[0].css == "none"


def test_the_best_value_is_highlighted_by_the_metrics_goal(client, sweep):
    selection = {"runs": ids(sweep["c00"], sweep["c01"], sweep["c02"], sweep["c10"])}
    table = client.get(URL, selection).context["table"]
    acc = table.metric_keys.index("acc") + len(table.param_keys)
    # `acc` is better high, from its name (#17; it was "min" by default before). NaN never wins.
    assert ["best" in row.cells[acc].css for row in table.rows] == [False, True, False, False]
    assert table.rows[2].cells[acc].text == "NaN"
    assert table.goals["acc"] == "max"
    # The experiment's goal tag wins over the name.
    experiment_set_tag(experiment=sweep["p0"].experiment, key=GOAL_TAG_PREFIX + "acc", value="min")
    table = client.get(URL, selection).context["table"]
    assert ["best" in row.cells[acc].css for row in table.rows] == [True, False, False, False]
    assert table.goals["acc"] == "min"


def test_the_charts_are_built_for_the_chosen_metric_and_axes(client, sweep):
    response = client.get(URL, {"parent": sweep["p0"].run_id, "metric": "loss", "x": "params.opt"})
    assert figure_types(response) == ["parcoords", "scatter", "bar"]
    parcoords, scatter, bars = figures(response)
    assert parcoords["data"][0]["dimensions"][-1]["label"] == "loss"
    assert scatter["layout"]["xaxis"]["type"] == "category"
    assert scatter["layout"]["yaxis"]["title"]["text"] == "loss"
    assert bars["data"][0]["y"] == [0.3, 0.6, 0.85]


def test_the_page_fetches_the_history_of_the_chosen_metric(client, sweep):
    response = client.get(URL, {"parent": sweep["p0"].run_id, "history": "loss"})
    history_url = response.context["history_url"]
    assert history_url == f"{HISTORY_URL}?parent={sweep['p0'].run_id}&history=loss"
    assert f'data-figure-url="{HISTORY_URL}?parent={sweep["p0"].run_id}&amp;history=loss"' in response.content.decode()
    history = client.get(history_url)
    assert history.status_code == 200
    lines = history.json()["data"]
    assert [line["name"] for line in lines] == ["c00", "c01", "c02"]
    assert lines[1]["x"] == [0, 1, 2] and lines[1]["y"] == [1.0, 0.5, 0.3]


def test_the_history_of_selected_runs_by_id(client, sweep):
    response = client.get(HISTORY_URL, {"runs": ids(sweep["c10"], sweep["c00"]), "history": "loss"})
    assert [line["name"] for line in response.json()["data"]] == ["c00", "c10"]


def test_a_history_request_without_a_selection_or_a_metric_is_refused_in_json(client, sweep):
    assert client.get(HISTORY_URL, {"history": "loss"}).status_code == 400
    assert client.get(HISTORY_URL, {"parent": "f" * 32, "history": "loss"}).json()["error"].startswith("No run")
    assert client.get(HISTORY_URL, {"parent": sweep["p0"].run_id}).status_code == 400


def test_the_choices_live_in_the_url_and_unknown_ones_fall_back(client, sweep):
    response = client.get(URL, {"parent": sweep["p0"].run_id, "metric": "nope", "x": "params.<x>", "history": "acc"})
    state = response.context["state"]
    # acc comes first; only `loss` has a history; the scatter's x defaults to a param that varies.
    assert (state.metric, state.x, state.history) == ("acc", "params.lr", "loss")
    html = response.content.decode()
    assert '<option value="acc" selected>' in html
    assert f'<input type="hidden" name="parent" value="{sweep["p0"].run_id}">' in html


def test_a_metric_with_a_goal_is_chosen_first(client, sweep):
    experiment_set_tag(experiment=sweep["p0"].experiment, key=GOAL_TAG_PREFIX + "loss", value="min")
    assert client.get(URL, {"parent": sweep["p0"].run_id}).context["state"].metric == "loss"


def test_nan_metrics_keep_the_figures_valid_json(client, sweep):
    response = client.get(URL, {"parent": sweep["p0"].run_id, "metric": "acc"})
    for figure in figures(response):  # json.loads refuses NaN, as JSON.parse does
        assert "NaN" not in json.dumps(figure)


def test_run_names_are_escaped_in_the_table_and_the_figures(client, sweep):
    evil = RunFactory(experiment=sweep["p0"].experiment, parent=sweep["p0"], name="</script><script>alert(1)</script>")
    log(evil, params=[("lr", "<b>x</b>"), ("opt", '" onmouseover="alert(2)')], metrics=[("acc", 0.5)], history=[1, 0.5])
    html = client.get(URL, {"parent": sweep["p0"].run_id}).content.decode()
    assert "<script>alert(1)" not in html
    assert "<b>x</b>" not in html
    table = html[html.index('<table class="grid compare-table">') :]
    assert '" onmouseover' not in table
    assert "&lt;/script&gt;&lt;script&gt;alert(1)" in html
    assert 'title="&quot; onmouseover=&quot;alert(2)"' in html


def test_it_exports_the_table_as_csv_with_differences_only(client, sweep):
    response = client.get(URL, {"runs": ids(sweep["c00"], sweep["c02"]), "diff": "1", "format": "csv"})
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert "attachment" in response["Content-Disposition"]
    rows = list(csv.reader(io.StringIO(response.content.decode())))
    assert rows[0] == [
        "run_id",
        "run_name",
        "parent_run_id",
        "parent_name",
        "status",
        "duration_ms",
        "params.lr",
        "metrics.acc",
        "metrics.loss",
    ]
    assert rows[1] == [sweep["c00"].run_id, "c00", sweep["p0"].run_id, "p0", "FINISHED", "5000", "0.1", "0.7", "0.6"]
    assert rows[2][-2:] == ["NaN", "0.85"]


def test_csv_cells_that_a_spreadsheet_would_run_are_quoted(client, sweep):
    run = RunFactory(experiment=sweep["p0"].experiment, parent=sweep["p0"], name="=HYPERLINK(1)")
    log(run, params=[("lr", "-0.5"), ("opt", "@SUM(A1)")])
    rows = list(csv.reader(io.StringIO(client.get(URL, {"runs": ids(run), "format": "csv"}).content.decode())))
    assert rows[1][1] == "'=HYPERLINK(1)"
    assert rows[1][6:8] == ["-0.5", "'@SUM(A1)"]


def test_some_unknown_runs_are_named_and_the_rest_compared(client, sweep):
    response = client.get(URL, {"runs": ids(sweep["c00"]) + ",0123456789abcdef,deadbeef"})
    assert response.status_code == 200
    assert response.context["comparison"].missing_ids == ["0123456789abcdef", "deadbeef"]
    assert "2 of the selected runs were not found" in response.content.decode()


def test_runs_that_do_not_exist_are_a_404_with_the_page(client, db):
    response = client.get(URL, {"runs": "0123456789abcdef," + "x" * 300})
    assert response.status_code == 404
    html = response.content.decode()
    assert "None of the selected runs exists" in html
    assert "0123456789abcdef" in html


def test_an_empty_selection_is_a_400_with_the_page(client, db):
    for query in ({}, {"runs": ""}, {"runs": ",,"}):
        response = client.get(URL, query)
        assert response.status_code == 400
        assert "No runs selected" in response.content.decode()


def test_an_unknown_parent_is_a_404(client, db):
    response = client.get(URL, {"parent": "f" * 32})
    assert response.status_code == 404
    assert "no children to compare" in response.content.decode()


def test_a_parent_without_children_says_so(client, sweep):
    response = client.get(URL, {"parent": sweep["c00"].run_id})
    assert response.status_code == 200
    assert "has no child runs to compare" in response.content.decode()


def test_runs_without_metrics_show_the_table_and_no_charts(client, db):
    runs = [RunFactory(name=f"bare-{i}") for i in range(2)]
    response = client.get(URL, {"runs": ids(*runs)})
    assert response.status_code == 200
    assert response.context["figures"] == []
    assert "nothing to chart" in response.content.decode()


def test_it_refuses_post(client, sweep):
    assert client.post(URL, {"runs": ids(sweep["c00"])}).status_code == 405


# --- query counts ------------------------------------------------------------------------------


def sized_parent(size: int) -> Run:
    """A parent with `size` children, each with param1, metric1 and a 20-step loss history."""
    parent = RunFactory(name=f"parent-of-{size}")
    bulk_children(parent, size, metric_key="metric1")
    children = list(Run.objects.children_of(parent).values_list("pk", flat=True))
    Metric.objects.bulk_create(
        [
            Metric(run_id=pk, key="loss", value=1 / (step + 1), timestamp=step, step=step)
            for pk in children
            for step in range(20)
        ],
        batch_size=2000,
    )
    LatestMetric.objects.bulk_create(
        [LatestMetric(run_id=pk, key="loss", value=1 / 20, timestamp=19, step=19) for pk in children], batch_size=2000
    )
    return parent


@pytest.mark.parametrize("size", [2, 1000])
def test_comparing_by_ids_costs_the_same_queries_for_2_and_1000_runs(client, db, django_assert_max_num_queries, size):
    run_ids = ",".join(Run.objects.children_of(sized_parent(size)).values_list("run_id", flat=True))
    # Expect 8 queries: runs (with parents' and experiments' names), params, latest metrics, the
    # keys logged on a dataset (none), goal tags, whether metric1 (at step 0) was logged in a loop,
    # which of the runs are parents (to offer comparing them as sweeps), and which of the table
    # page's runs logged images by key.
    with django_assert_max_num_queries(8):
        response = client.get(URL, {"runs": run_ids, "metric": "metric1", "history": "loss"})
    assert response.status_code == 200
    assert response.context["table"].total == size
    assert len(response.context["table"].rows) == min(size, TABLE_ROWS)
    assert [figure["data"][0]["type"] for figure in figures(response)] == ["parcoords", "scatter", "bar"]
    # Expect 3 queries: runs, the number of points of the chosen metric (read whole or bucketed
    # in SQL by it), and the points (tracker/selectors/histories.py).
    with django_assert_max_num_queries(3):
        history = client.get(response.context["history_url"])
    points = [step for line in history.json()["data"] for step in line["x"] if step is not None]
    assert len(points) == size * 20


@pytest.mark.parametrize("size", [2, 1000])
def test_comparing_children_costs_the_same_queries_for_2_and_1000_runs(client, db, django_assert_max_num_queries, size):
    parent = sized_parent(size)
    # Expect 10 queries: the parent, then the 6 of a comparison by ids, the stored param
    # importance of the chosen metric, which of the table page's runs logged images by key, and
    # the parent's live version (the page polls it while the sweep runs).
    with django_assert_max_num_queries(10):
        response = client.get(URL, {"parent": parent.run_id, "history": "loss"})
    assert response.context["table"].total == size
    assert len(response.context["table"].rows) == min(size, TABLE_ROWS)
    assert response.context["state"].history == "loss"
    # Expect 4 queries: the parent, runs, the history's point count, its points.
    with django_assert_max_num_queries(4):
        assert client.get(response.context["history_url"]).status_code == 200


def test_the_csv_export_costs_the_same_queries_without_the_history(client, db, django_assert_max_num_queries):
    parent = sized_parent(50)
    # Expect 6 queries: the parent, runs, params, latest metrics, keys logged on a dataset, goal tags.
    with django_assert_max_num_queries(6):
        response = client.get(URL, {"parent": parent.run_id, "format": "csv"})
    assert len(response.content.decode().splitlines()) == 51


def test_unfinished_runs_show_their_status_and_no_duration(client, sweep):
    Run.objects.filter(pk=sweep["c00"].pk).update(status=RunStatus.RUNNING, end_time=None)
    row = client.get(URL, {"runs": ids(sweep["c00"])}).context["table"].rows[0]
    assert (row.run.status, row.duration) == ("RUNNING", "")


def test_the_table_pages_through_every_run_while_the_charts_and_the_best_cover_them_all(
    client, db, django_assert_max_num_queries
):
    parent = sized_parent(TABLE_ROWS * 2 + 20)
    best = Run.objects.children_of(parent).order_by("-pk").first()  # on the last page
    LatestMetric.objects.filter(run=best, key="loss").update(value=0.0)
    seen = []
    url, page = f"{URL}?parent={parent.run_id}", 0
    while url:
        page += 1
        # Expect 10 queries whatever the page: the parent, runs, params, latest metrics, keys
        # logged on a dataset, goal tags, which step-0 keys were logged in a loop, the parent's
        # stored param importance, which of the page's runs logged images, and the parent's live
        # version.
        with django_assert_max_num_queries(10):
            response = client.get(url)
        table = response.context["table"]
        seen += [row.run.run_id for row in table.rows]
        assert (table.page, table.pages, table.total) == (page, 3, TABLE_ROWS * 2 + 20)
        loss = len(table.param_keys) + table.metric_keys.index("loss")
        best_cells = [row.run.run_id for row in table.rows if "best" in row.cells[loss].css]
        assert best_cells == ([best.run_id] if page == 3 else [])
        bars = next(figure for figure in figures(response) if figure["data"][0]["type"] == "bar")
        assert len(bars["data"][0]["x"]) == TABLE_ROWS * 2 + 20
        next_link = response.context["table_pages"].get("next")
        url = URL + next_link if next_link else None
    assert page == 3
    assert sorted(seen) == sorted(Run.objects.children_of(parent).values_list("run_id", flat=True))
    assert len(set(seen)) == len(seen)
    html = response.content.decode()
    assert f"Runs {TABLE_ROWS * 2 + 1:,}–{TABLE_ROWS * 2 + 20:,} of {TABLE_ROWS * 2 + 20:,}" in html
    assert 'rel="prev"' in html and 'rel="next"' not in html


def log_on_datasets(run, *, train: float, test: float, losses: dict[str, list[float]]):
    """A model's accuracy on its train and test sets at step 0 (train logged last, so the run's
    latest `accuracy` is the train score), and a `loss` per epoch on each dataset in `losses`."""
    at = 1_700_000_000_000
    metrics = [
        MetricInput("accuracy", test, at, 0, dataset_name="test", dataset_digest="d1"),
        MetricInput("accuracy", train, at + 1, 0, dataset_name="train", dataset_digest="d0"),
    ]
    for offset, (dataset, values) in enumerate(losses.items()):
        metrics += [
            MetricInput("loss", v, at + 10 * step + offset, step, dataset_name=dataset) for step, v in enumerate(values)
        ]
    run_log_batch(run=run, metrics=metrics)


@pytest.fixture
def scored_on_datasets(db):
    """Two children of a sweep: `overfit` scores best on its train set and worst on test."""
    parent = RunFactory(name="sweep")
    overfit = RunFactory(experiment=parent.experiment, parent=parent, name="overfit")
    general = RunFactory(experiment=parent.experiment, parent=parent, name="general")
    log_on_datasets(overfit, train=0.99, test=0.60, losses={"train": [1.0, 0.2], "val": [1.0, 0.9]})
    log_on_datasets(general, train=0.85, test=0.82, losses={"train": [1.0, 0.4], "val": [1.0, 0.5]})
    experiment_set_tag(experiment=parent.experiment, key=GOAL_TAG_PREFIX + "accuracy", value="max")
    return parent, overfit, general


def test_a_key_logged_on_several_datasets_is_a_column_per_dataset_with_its_own_best(client, scored_on_datasets):
    parent, overfit, general = scored_on_datasets
    response = client.get(URL, {"parent": parent.run_id, "metric": "accuracy"})
    table = response.context["table"]
    assert "accuracy" not in table.metric_keys  # the latest value mixes train and test
    assert ["accuracy · test", "accuracy · train"] == table.metric_keys[:2]
    column = {key: len(table.param_keys) + table.metric_keys.index(key) for key in table.metric_keys}
    cells = {row.run.name: row.cells for row in table.rows}
    assert cells["overfit"][column["accuracy · train"]].text == "0.9900"
    assert cells["overfit"][column["accuracy · test"]].text == "0.6000"
    best_on_test = [name for name, row in cells.items() if "best" in row[column["accuracy · test"]].css]
    assert best_on_test == ["general"]  # the run's latest `accuracy` (train) would make it overfit
    # ?metric=accuracy names the key: the page colours and sorts by its first dataset's series.
    assert response.context["state"].metric == "accuracy · test"
    bars = next(figure for figure in figures(response) if figure["data"][0]["type"] == "bar")
    assert sorted(bars["data"][0]["y"]) == [0.6, 0.82]
    assert "Param importance for accuracy · test needs at least 10 children" in response.context["importance"].reason


def test_each_dataset_of_a_history_is_a_chart_choice_and_draws_only_its_points(client, scored_on_datasets):
    parent, overfit, general = scored_on_datasets
    response = client.get(URL, {"parent": parent.run_id, "history": "loss"})
    assert response.context["comparison"].history_keys == ["loss · train", "loss · val"]
    assert response.context["state"].history == "loss · train"
    history = client.get(HISTORY_URL, {"parent": parent.run_id, "history": "loss · val"}).json()
    lines = {line["name"]: line["y"] for line in history["data"]}
    assert lines == {"overfit": [1.0, 0.9], "general": [1.0, 0.5]}


def test_the_csv_export_has_a_column_per_dataset(client, scored_on_datasets):
    parent, _, _ = scored_on_datasets
    response = client.get(URL, {"parent": parent.run_id, "format": "csv"})
    rows = {row["run_name"]: row for row in csv.DictReader(io.StringIO(response.content.decode()))}
    assert (rows["general"]["metrics.accuracy · test"], rows["general"]["metrics.accuracy · train"]) == ("0.82", "0.85")
    assert "metrics.accuracy" not in rows["general"]


def test_a_key_on_one_dataset_in_every_run_stays_one_column(client, db):
    parent = RunFactory(name="sweep")
    for name, value in [("a", 0.5), ("b", 0.7)]:
        child = RunFactory(experiment=parent.experiment, parent=parent, name=name)
        run_log_batch(run=child, metrics=[MetricInput("accuracy", value, 1, 0, dataset_name="test")])
    table = client.get(URL, {"parent": parent.run_id}).context["table"]
    assert table.metric_keys == ["accuracy"]


def test_keys_on_datasets_cost_one_query_more_for_2_and_1000_runs(client, db, django_assert_max_num_queries):
    for size in (2, 1000):
        parent = sized_parent(size)
        children = list(Run.objects.children_of(parent).values_list("pk", flat=True))
        Metric.objects.bulk_create(
            [
                Metric(run_id=pk, key="metric1", value=0.5, timestamp=at, step=0, dataset_name=dataset)
                for pk in children
                for at, dataset in enumerate(("train", "test"))
            ],
            batch_size=2000,
        )
        # Expect 10 queries: the 9 of a comparison of children with no datasets, and the latest
        # values of the keys logged on datasets, per run and dataset.
        with django_assert_max_num_queries(10):
            response = client.get(URL, {"parent": parent.run_id})
        assert "metric1 · test" in response.context["table"].metric_keys


def test_a_metric_logged_in_a_loop_without_steps_is_offered_and_drawn_by_time(client, db):
    # `mlflow.log_metric("loss", value)` in a loop: every point at step 0, a second apart.
    parent = RunFactory(name="stepless-loops")
    bulk_children(parent, 3)
    children = list(Run.objects.children_of(parent).order_by("pk"))
    for child in children:
        Metric.objects.bulk_create(
            [
                Metric(run=child, key="loss", value=1 / (i + 1), timestamp=child.start_time + 1000 * i, step=0)
                for i in range(5)
            ]
            + [Metric(run=child, key="final_acc", value=0.9, timestamp=child.start_time + 5000, step=0)]
        )
        LatestMetric.objects.create(run=child, key="loss", value=0.2, timestamp=child.start_time + 4000, step=0)
        LatestMetric.objects.create(run=child, key="final_acc", value=0.9, timestamp=child.start_time + 5000, step=0)
    response = client.get(URL, {"parent": parent.run_id})
    # The loop has a history to draw; a key logged once has not.
    assert response.context["comparison"].history_keys == ["loss"]
    state = response.context["state"]
    assert (state.history, state.xaxis) == ("loss", "relative")  # by step, it would be a vertical line
    history = client.get(response.context["history_url"]).json()
    assert history["layout"]["xaxis"]["title"]["text"] == "time since start (s)"
    assert [trace["x"] for trace in history["data"]] == [[0, 1, 2, 3, 4]] * 3
    # Asked for by step, it is drawn by step: the viewer's choice stands.
    by_step = client.get(URL, {"parent": parent.run_id, "xaxis": "step"})
    assert by_step.context["state"].xaxis == "step"
