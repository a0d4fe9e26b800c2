import json
import re
from pathlib import Path

import pytest

from dashboard.run_charts import INLINE_CHARTS
from tests.factories import RunFactory, build_chain, bulk_children
from tracker.models import Run
from tracker.selectors.run_page import LONG_TABLE_ROWS
from tracker.services import KeyValue, MetricInput, run_log_batch

pytestmark = pytest.mark.django_db


def test_it_shows_a_breadcrumb_of_linked_ancestors(client):
    root, child, leaf = build_chain(3)
    html = client.get(f"/runs/{leaf.run_id}/").content.decode()
    crumbs = html.split('class="crumbs"')[1].split("</nav>")[0]
    assert f'href="/experiments/{root.experiment_id}/"' in crumbs
    assert crumbs.index(f"/runs/{root.run_id}/") < crumbs.index(f"/runs/{child.run_id}/")
    assert f"/runs/{leaf.run_id}/" not in crumbs  # the run itself is the current page, not a link


def test_it_shows_status_params_metrics_and_tags(client, sweep):
    child = Run.objects.get(name="child-2-1")
    html = client.get(f"/runs/{child.run_id}/").content.decode()
    assert "status-finished" in html
    assert "param1" in html and "param2" in html
    assert "metric1" in html and "0.9667" in html  # 2/3 + 0.3
    assert "kind" in html and "odd" in html
    assert "mlflow.runName" in html.split("system tag")[1]  # system tags are folded away


def test_it_hands_a_history_figure_per_multi_step_metric_to_plotly(client, sweep):
    child = Run.objects.get(name="child-0-1")
    run_log_batch(run=child, metrics=[MetricInput("single", 1.0, 1, 0)])
    html = client.get(f"/runs/{child.run_id}/").content.decode()
    scripts = re.findall(r'<script id="(figure-\d+)" type="application/json">(.*?)</script>', html, re.S)
    assert len(scripts) == 1  # metric1 has three steps; "single" has one
    figure = json.loads(scripts[0][1])
    assert figure["data"][0]["x"] == [0, 1, 2]
    assert re.search(r'<script src="/static/vendor/plotly-[\d.]+\.min\.js"', html)


def figure_titles(html):
    scripts = re.findall(r'<script id="figure-\d+" type="application/json">(.*?)</script>', html, re.S)
    return [json.loads(payload)["layout"]["title"]["text"] for payload in scripts]


def test_a_value_logged_again_at_its_step_draws_no_chart_but_a_loop_without_steps_does(client):
    run = RunFactory(name="evaluated")
    # mlflow.evaluate logs each metric twice at step 0 with the same value.
    twice = [MetricInput("accuracy_score", 0.95, 1_700_000_000_000 + i, 0) for i in range(2)]
    # A loop calling mlflow.log_metric("loss", v) without a step logs every point at step 0.
    looped = [MetricInput("loss", 1.0 / (i + 1), 1_700_000_000_000 + i, 0) for i in range(5)]
    run_log_batch(run=run, metrics=twice + looped)
    html = client.get(f"/runs/{run.run_id}/").content.decode()
    titles = figure_titles(html)
    assert len(titles) == 1 and titles[0].startswith("loss")
    assert "accuracy_score" in html.split("Metric history")[0]  # its value stays in the table


def test_values_on_different_datasets_at_one_step_draw_no_chart(client):
    # MLflow 3: a model's accuracy on its train and test sets, both at step 0, is no history.
    run = RunFactory(name="evaluated on two sets")
    on_sets = [
        MetricInput("accuracy", value, 1_700_000_000_000 + i, 0, dataset_name=name, dataset_digest="d")
        for i, (value, name) in enumerate(((0.99, "train"), (0.93, "test")))
    ]
    per_step = [MetricInput("loss", 1.0 / (i + 1), 1_700_000_000_000 + i, 0, dataset_name="train") for i in range(3)]
    run_log_batch(run=run, metrics=on_sets + per_step)
    html = client.get(f"/runs/{run.run_id}/").content.decode()
    titles = figure_titles(html)
    assert len(titles) == 1 and titles[0].startswith("loss")
    # The table reads each dataset's value, not the last one logged on either.
    assert metrics_table(html) == ["accuracy · test 0.9300 0", "accuracy · train 0.9900 0", "loss 0.3333 0"]


def metrics_table(html: str) -> list[str]:
    table = html.split('id="metrics-table"')[1].split("</table>")[0]
    rows = re.findall(r"<tr>(.*?)</tr>", table, re.S)
    return [" ".join(re.sub(r"<[^>]+>", " ", row).split()) for row in rows if "<td" in row]


def test_it_links_to_the_tree_and_to_compare_children(client, sweep):
    parent = Run.objects.get(name="parent-0")
    html = client.get(f"/runs/{parent.run_id}/").content.decode()
    assert f'href="/compare/?parent={parent.run_id}"' in html
    assert "Compare children (4)" in html
    assert f"/experiments/{sweep.id}/?filter=attributes.run_id%20%3D%20%27{parent.run_id}%27" in html


def test_open_in_tree_shows_the_run_inside_its_tree(client):
    root, child, leaf = build_chain(3)
    html = client.get(f"/experiments/{root.experiment_id}/?filter=attributes.run_id = '{leaf.run_id}'").content.decode()
    ids = re.findall(r'data-run-id="([0-9a-f]+)"', html)
    assert ids == [root.run_id, child.run_id, leaf.run_id]


def test_it_lists_the_children_as_a_small_paged_tree(client):
    parent = RunFactory(name="parent")
    bulk_children(parent, 45)
    html = client.get(f"/runs/{parent.run_id}/").content.decode()
    assert html.count('class="run-row') == 20
    assert "1–20 of 45" in html
    second = client.get(f"/runs/{parent.run_id}/?page=3").content.decode()
    assert second.count('class="run-row') == 5


def test_the_children_show_their_metrics(client, sweep):
    parent = Run.objects.get(name="parent-1")
    html = client.get(f"/runs/{parent.run_id}/").content.decode()
    children = html.split("<h2>Children")[1]
    assert '<span class="key">metric1</span>' in children
    assert ">0.4333<" in children  # child-1-2: 1/3 + 0.1
    assert 'data-columns="metrics.metric1"' in children  # expanding a child asks for the same columns


def test_a_leaf_says_how_children_are_made(client):
    run = RunFactory()
    assert "mlflow.start_run(nested=True)" in client.get(f"/runs/{run.run_id}/").content.decode()


def test_user_input_is_escaped(client):
    run = RunFactory(name="<img src=x onerror=alert(1)>")
    run_log_batch(run=run, params=[KeyValue("p", "<b>bold</b>")], tags=[KeyValue("t", "<i>x</i>")])
    html = client.get(f"/runs/{run.run_id}/").content.decode()
    assert "<img src=x" not in html and "<b>bold</b>" not in html and "<i>x</i>" not in html


def test_an_unknown_run_is_a_404(client):
    assert client.get("/runs/0123456789abcdef0123456789abcdef/").status_code == 404


def test_plotly_js_comes_from_the_installed_package_under_its_version(client):
    import plotly

    response = client.get(f"/static/vendor/plotly-{plotly.__version__}.min.js")
    assert response.status_code == 200
    body = b"".join(response.streaming_content)
    assert body == (Path(plotly.__file__).parent / "package_data" / "plotly.min.js").read_bytes()
    assert client.get("/static/vendor/plotly-0.0.1.min.js").status_code == 404


# Queries of the run page: the run (with experiment and child count), its ancestors, params,
# latest metrics, tags, children count and page, the listed children's latest metrics, and (for
# a parent) its summaries with their best runs; the charts' point counts per key
# (dashboard/run_charts.py) and, for a parent, the bands the worker kept for its summaries and
# (none kept) the keys its children log with history (dashboard/band_charts.py), and its stored
# param importance; the live poll's starting version; its datasets and its logged models (one
# query each); the versions registered from it and which listed children have registered
# versions (the badge). These runs log no history, so no histories or bands are aggregated
# (tests/dashboard/test_bands.py and test_run_history.py pin those).
RUN_PAGE_QUERIES = 17


@pytest.mark.parametrize("sized_experiment", [10, 10_000], indirect=True)
@pytest.mark.parametrize("which", ["big-parent", "grandchild"])
def test_run_page_queries_do_not_grow_with_the_experiment(
    client, sized_experiment, which, django_assert_max_num_queries
):
    run = Run.objects.get(experiment=sized_experiment, name=which)
    with django_assert_max_num_queries(RUN_PAGE_QUERIES):
        assert client.get(f"/runs/{run.run_id}/").status_code == 200


def test_only_a_long_params_or_metrics_table_gets_a_filter_box(client, sweep):
    child = Run.objects.get(name="child-0-1")
    html = client.get(f"/runs/{child.run_id}/").content.decode()
    assert "Filter params by key" not in html and "key_filter.js" not in html
    run_log_batch(run=child, params=[KeyValue(f"extra{i}", "1") for i in range(LONG_TABLE_ROWS)])
    html = client.get(f"/runs/{child.run_id}/").content.decode()
    assert "Filter params by key" in html and "key_filter.js" in html
    assert "Filter metrics by key" not in html


def test_charts_past_the_first_dozen_come_as_urls_that_answer_the_same_figure(client):
    run = RunFactory(name="per-layer")
    keys = [f"layer_{i:02d}/grad_norm" for i in range(INLINE_CHARTS + 3)]
    run_log_batch(
        run=run,
        metrics=[
            MetricInput(key, k + step / 10, 1_700_000_000_000 + step, step)
            for k, key in enumerate(keys)
            for step in range(5)
        ],
    )

    html = client.get(f"/runs/{run.run_id}/").content.decode()

    assert len(figure_titles(html)) == INLINE_CHARTS
    urls = re.findall(r'data-figure-url="([^"]+)" data-when-seen', html)
    assert len(urls) == 3
    fetched = client.get(urls[-1].replace("&amp;", "&")).json()
    assert fetched["layout"]["title"]["text"].startswith(keys[-1])
    assert fetched["data"][0]["y"] == [len(keys) - 1 + step / 10 for step in range(5)]
    assert '<script src="/static/js/run.js"' in html


def test_a_run_with_only_system_metric_histories_still_loads_plotly(client):
    run = RunFactory(name="machine-only")
    run_log_batch(
        run=run,
        metrics=[
            MetricInput("system/cpu_utilization_percentage", 10.0 + s, 1_700_000_000_000 + s, s) for s in range(3)
        ],
    )
    html = client.get(f"/runs/{run.run_id}/").content.decode()
    assert len(figure_titles(html)) == 1 and "/static/js/run.js" in html


def test_a_key_logged_on_two_datasets_each_epoch_draws_a_line_per_dataset_on_one_chart(client):
    # MLflow 3: log_metric("accuracy", v, step=epoch, dataset=train) and again with dataset=val.
    run = RunFactory(name="two sets")
    points = [
        MetricInput("accuracy", value, 1_700_000_000_000 + 2 * epoch + offset, epoch, dataset_name=name)
        for epoch in range(4)
        for offset, (name, value) in enumerate((("train", 0.5 + epoch / 10), ("val", 0.4 + epoch / 20)))
    ]
    run_log_batch(run=run, metrics=points)

    html = client.get(f"/runs/{run.run_id}/").content.decode()

    scripts = re.findall(r'<script id="figure-\d+" type="application/json">(.*?)</script>', html, re.S)
    assert len(scripts) == 1
    figure = json.loads(scripts[0])
    assert figure["layout"]["title"]["text"].startswith("accuracy")
    lines = {trace["name"]: trace["y"] for trace in figure["data"]}
    assert lines == {"accuracy · train": [0.5, 0.6, 0.7, 0.8], "accuracy · val": [0.4, 0.45, 0.5, 0.55]}
    assert metrics_table(html) == ["accuracy · train 0.8000 3", "accuracy · val 0.5500 3"]
    zoomed = client.get(f"/runs/{run.run_id}/history.json", {"key": "accuracy · val", "from": 1, "to": 2}).json()
    assert [(trace["name"], trace["y"]) for trace in zoomed["data"]] == [("accuracy · val", [0.45, 0.5])]
