"""The native REST API at /api/v1/: experiments, runs with filters, and the hierarchy reads."""

import csv
import io

import pytest

from tests.factories import build_tree
from tracker import services
from tracker.services import KeyValue, MetricInput

pytestmark = pytest.mark.django_db


@pytest.fixture
def tree(experiment):
    """2 roots × 3 children × 2 grandchildren, with a param and metric on each child."""
    runs = build_tree([2, 3, 2], experiment=experiment)
    children = [run for run in runs if run.depth == 1]
    for i, child in enumerate(children):
        services.run_log_batch(
            run=child,
            params=[KeyValue("optimizer", "adam" if i % 2 else "sgd")],
            metrics=[MetricInput("loss", i / 10, 1)],
        )
    return runs


def test_it_lists_active_experiments_with_their_tags(client, experiment):
    services.experiment_set_tag(experiment=experiment, key="team", value="vision")
    gone = services.experiment_create(name="gone")
    services.experiment_set_lifecycle(experiment=gone, stage="deleted")

    body = client.get("/api/v1/experiments/").json()

    names = {e["name"]: e for e in body["results"]}
    assert set(names) == {"Default", experiment.name}
    assert names[experiment.name]["tags"] == {"team": "vision"}


def test_it_filters_runs_with_the_filter_language(client, tree):
    body = client.get("/api/v1/runs/", {"filter": "params.optimizer = 'adam' AND metrics.loss < 0.4"}).json()
    assert {run["metrics"]["loss"] for run in body["results"]} == {0.1, 0.3}
    assert all(run["params"] == {"optimizer": "adam"} for run in body["results"])


def test_a_bad_filter_is_a_400_that_says_where(client, tree):
    response = client.get("/api/v1/runs/", {"filter": "metrics.loss <<< 1"})
    assert response.status_code == 400
    assert response.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    assert "position" in response.json()["message"]


def test_it_orders_runs_by_a_metric(client, tree):
    body = client.get("/api/v1/runs/", {"filter": "metrics.loss >= 0", "order_by": "metrics.loss DESC"}).json()
    losses = [run["metrics"]["loss"] for run in body["results"]]
    assert losses == sorted(losses, reverse=True) and len(losses) == 6


def test_children_are_paged_with_their_own_child_counts(client, tree, django_assert_max_num_queries):
    root = tree[0]
    # Expect 6 queries: the run, the count, the page of children (with their child counts),
    # then one each for the page's params, latest metrics and tags.
    with django_assert_max_num_queries(6):
        body = client.get(f"/api/v1/runs/{root.run_id}/children/", {"limit": 2}).json()
    assert body["count"] == 3
    assert [run["child_count"] for run in body["results"]] == [2, 2]
    assert body["next"]


def test_ancestors_come_root_first(client, tree):
    leaf = tree[-1]
    body = client.get(f"/api/v1/runs/{leaf.run_id}/ancestors/").json()
    assert [run["depth"] for run in body] == [0, 1]
    assert body[1]["run_id"] == leaf.parent_run_id


def test_the_subtree_holds_the_run_and_every_descendant(client, tree):
    root = tree[0]
    body = client.get(f"/api/v1/runs/{root.run_id}/subtree/").json()
    assert body["count"] == 1 + 3 + 6
    assert body["results"][0]["run_id"] == root.run_id


def test_an_unknown_run_is_a_404(client, db):
    assert client.get(f"/api/v1/runs/{'0' * 32}/children/").status_code == 404
    assert client.get(f"/api/v1/runs/{'0' * 32}/").status_code == 404


def test_the_openapi_schema_and_its_offline_page_are_served(client, db):
    schema = client.get("/api/v1/schema/")
    assert schema.status_code == 200
    assert b"/api/v1/runs/{run_id}/subtree/" in schema.content
    page = client.get("/api/v1/docs/")
    assert page.status_code == 200
    # The UI's script comes from this server (drf-spectacular-sidecar), not a CDN.
    assert b"/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js" in page.content
    assert client.get("/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js").status_code == 200


def test_the_api_docs_page_carries_the_apps_top_bar_back_to_the_app(client, admin_client):
    """Swagger UI's page used to be a dead end: no link back to Runtree."""
    page = client.get("/api/v1/docs/").content.decode()
    top_bar = page[page.index('<header class="topbar">') : page.index("</header>")]
    assert 'href="/"' in top_bar and 'href="/models/"' in top_bar
    assert 'href="/api/v1/docs/" aria-current="page">API</a>' in top_bar
    assert "/static/css/frame.css" in page  # its styles, without runtree.css's (they would restyle Swagger UI)
    assert "/static/css/runtree.css" not in page
    assert page.index("</header>") < page.index('id="swagger-ui"')
    # Logged in, it offers to log out, as every page does (a form with its CSRF token).
    logged_in = admin_client.get("/api/v1/docs/").content.decode()
    assert 'action="/accounts/logout/"' in logged_in and "csrfmiddlewaretoken" in logged_in


@pytest.fixture
def sweep(experiment, django_capture_on_commit_callbacks):
    """A parent with children a, b, c that logged loss 0.4, 0.1, 0.7 and their lr; its summary kept."""
    with django_capture_on_commit_callbacks(execute=True):
        parent = services.run_create(experiment=experiment, name="sweep")
    losses = {"a": 0.4, "b": 0.1, "c": 0.7}
    for name, loss in losses.items():
        with django_capture_on_commit_callbacks(execute=True):
            child = services.run_create(
                experiment=experiment, name=name, tags=[KeyValue("mlflow.parentRunId", parent.run_id)]
            )
            services.run_log_batch(run=child, params=[KeyValue("lr", name)], metrics=[MetricInput("loss", loss, 1)])
    return parent


def test_a_parents_summary_names_its_best_child_and_the_childrens_stats(client, sweep):
    [summary] = client.get(f"/api/v1/runs/{sweep.run_id}/summary/").json()

    assert summary["key"] == "loss" and summary["goal"] == "min"
    assert summary["best_value"] == 0.1 and summary["best_run_name"] == "b"
    assert summary["best_params"] == {"lr": "b"}
    assert summary["count"] == 3 and summary["max_value"] == 0.7
    assert summary["stale"] is False


def test_runs_export_as_csv_with_the_filter_applied(client, tree):
    response = client.get("/api/v1/runs/", {"filter": "params.optimizer = 'adam'", "format": "csv"})

    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    header, body = rows[0], rows[1:]
    assert header[:3] == ["run_id", "run_name", "experiment_id"]
    assert {"params.optimizer", "metrics.loss", "tags.mlflow.parentRunId"} <= set(header)
    assert len(body) == 3  # every match, not a page
    assert {row[header.index("params.optimizer")] for row in body} == {"adam"}
    assert sorted(float(row[header.index("metrics.loss")]) for row in body) == [0.1, 0.3, 0.5]


def test_a_csv_cell_that_a_spreadsheet_would_run_is_made_text(client, experiment):
    run = services.run_create(experiment=experiment, name='=HYPERLINK("http://x")')
    services.run_log_param(run=run, key="lr", value="-0.5")

    response = client.get("/api/v1/runs/", {"format": "csv"})

    text = b"".join(response.streaming_content).decode()
    assert "'=HYPERLINK" in text and ",-0.5" in text


def test_a_bad_filter_in_a_csv_export_is_still_a_clear_400(client, tree):
    response = client.get("/api/v1/runs/", {"filter": "params.x ==", "format": "csv"})
    assert response.status_code == 400
    assert b"INVALID_PARAMETER_VALUE" in response.content


def csv_rows(response) -> list[dict[str, str]]:
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    return list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))


@pytest.mark.parametrize(
    ("endpoint", "expected"),
    [
        # Every row, not a page: the limit of the JSON page does not apply to the file.
        ("children", lambda tree: {run.run_id for run in tree[2:5]}),
        ("subtree", lambda tree: {tree[0].run_id, *(run.run_id for run in tree[2:5] + tree[8:14])}),
    ],
)
def test_a_runs_children_and_subtree_export_as_csv_with_the_listings_columns(client, tree, endpoint, expected):
    """They answered text/csv with a Python repr of the JSON page ("count: 3\nnext: None ...")."""
    rows = csv_rows(client.get(f"/api/v1/runs/{tree[0].run_id}/{endpoint}/", {"format": "csv", "limit": 1}))

    assert {row["run_id"] for row in rows} == expected(tree)
    assert list(rows[0])[:3] == ["run_id", "run_name", "experiment_id"]
    assert {"params.optimizer", "metrics.loss", "tags.mlflow.parentRunId"} <= set(rows[0])


def test_a_runs_ancestors_and_the_run_itself_export_as_csv(client, tree):
    leaf = tree[-1]
    ancestors = csv_rows(client.get(f"/api/v1/runs/{leaf.run_id}/ancestors/", {"format": "csv"}))
    assert [(row["depth"], row["run_id"]) for row in ancestors] == [("0", tree[1].run_id), ("1", leaf.parent_run_id)]

    [run] = csv_rows(client.get(f"/api/v1/runs/{leaf.run_id}/", {"format": "csv"}))
    assert run["run_id"] == leaf.run_id and run["tags.mlflow.parentRunId"] == leaf.parent_run_id


def test_a_summary_exports_as_csv_one_row_per_metric_with_a_column_per_best_param(client, sweep):
    [row] = csv_rows(client.get(f"/api/v1/runs/{sweep.run_id}/summary/", {"format": "csv"}))

    assert row["key"] == "loss" and row["goal"] == "min" and row["count"] == "3"
    assert float(row["best_value"]) == 0.1 and row["best_run_name"] == "b"
    assert row["best_params.lr"] == "b" and float(row["max_value"]) == 0.7


def test_the_schema_offers_csv_as_text_on_every_run_read(client, db):
    paths = client.get("/api/v1/schema/", {"format": "json"}).json()["paths"]
    run_reads = [path for path in paths if path.startswith("/api/v1/runs/")]

    assert len(run_reads) == 6
    for path in run_reads:
        assert paths[path]["get"]["responses"]["200"]["content"]["text/csv"]["schema"] == {"type": "string"}


@pytest.mark.parametrize(("endpoint", "component"), [("ancestors", "Run"), ("summary", "RunSummary")])
def test_ancestors_and_summary_are_plain_lists_in_the_schema_and_the_response(client, sweep, endpoint, component):
    """The schema said PaginatedRunList with limit and offset; the response was a bare list.
    Both are bounded lists (one run per level, one summary per metric), so both say list."""
    paths = client.get("/api/v1/schema/", {"format": "json"}).json()["paths"]
    operation = paths[f"/api/v1/runs/{{run_id}}/{endpoint}/"]
    schema = operation["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    assert schema == {"type": "array", "items": {"$ref": f"#/components/schemas/{component}"}}
    assert {parameter["name"] for parameter in operation["get"]["parameters"]} == {"run_id", "format"}

    child = sweep.children.get(name="b")
    run = child if endpoint == "ancestors" else sweep
    assert isinstance(client.get(f"/api/v1/runs/{run.run_id}/{endpoint}/").json(), list)
    # A page it cannot give is refused, not ignored.
    refused = client.get(f"/api/v1/runs/{run.run_id}/{endpoint}/", {"limit": 1})
    assert refused.status_code == 400 and "'limit'" in refused.json()["message"]
