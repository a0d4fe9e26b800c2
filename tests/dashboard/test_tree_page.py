import re

import pytest

from registry import services as registry_services
from tests.factories import ExperimentFactory, RunFactory, build_chain, build_tree
from tracker.models import DELETED, Run
from tracker.services import KeyValue, MetricInput, run_log_batch, run_set_lifecycle
from tracker.summaries import refresh as summary_refresh

pytestmark = pytest.mark.django_db


def tree_url(experiment, **query):
    from urllib.parse import urlencode

    return f"/experiments/{experiment.id}/" + (f"?{urlencode(query)}" if query else "")


def row_ids(response) -> list[str]:
    """run ids of the tree rows, in display order."""
    return re.findall(r'<tr class="run-row[^"]*"\s+data-run-id="([0-9a-f]+)"', response.content.decode())


def row_html(response, run) -> str:
    html = response.content.decode()
    start = html.index(f'data-run-id="{run.run_id}"')
    return html[html.rindex("<tr", 0, start) : html.index("</tr>", start)]


def test_it_lists_the_roots_newest_first_with_child_counts(client, sweep):
    response = client.get(tree_url(sweep))
    assert response.status_code == 200
    parents = list(Run.objects.in_experiment(sweep).roots().order_by("-start_time"))
    assert row_ids(response) == [p.run_id for p in parents]
    first = row_html(response, parents[0])
    assert 'class="count"' in first and ">4<" in first
    assert 'aria-expanded="false"' in first
    assert f'input type="checkbox" name="run" value="{parents[0].run_id}"' in first


def test_it_pages_the_roots(client):
    experiment = ExperimentFactory()
    build_tree([7], experiment=experiment)
    first = client.get(tree_url(experiment, per_page=3))
    third = client.get(tree_url(experiment, per_page=3, page=3))
    assert len(row_ids(first)) == 3
    assert len(row_ids(third)) == 1
    assert "Page 1 of 3" in first.content.decode()
    assert 'rel="next"' in first.content.decode()


def test_it_opens_the_runs_named_in_expanded_at_any_depth(client):
    chain = build_chain(4)
    root, child, grandchild, leaf = chain
    response = client.get(tree_url(root.experiment, expanded=f"{root.run_id},{child.run_id},{grandchild.run_id}"))
    assert row_ids(response) == [r.run_id for r in chain]
    assert 'data-level="3"' in row_html(response, leaf)
    assert 'aria-expanded="true"' in row_html(response, grandchild)


def test_an_expanded_run_whose_ancestor_is_closed_stays_closed(client):
    root, child, grandchild = build_chain(3)
    response = client.get(tree_url(root.experiment, expanded=child.run_id))
    assert row_ids(response) == [root.run_id]


def test_a_big_parent_shows_a_page_of_children_and_a_show_more_row(client, sweep):
    parent = Run.objects.in_experiment(sweep).roots().first()
    response = client.get(tree_url(sweep, expanded=parent.run_id, per_page=3))
    html = response.content.decode()
    assert len([i for i in row_ids(response) if i != parent.run_id]) >= 3
    assert f"/runs/{parent.run_id}/children/?offset=3&amp;level=1" in html
    assert "3 of 4 shown" in html


def test_sorting_by_a_metric_sorts_siblings_within_their_parent(client, sweep):
    parents = list(Run.objects.in_experiment(sweep).roots())
    expanded = ",".join(p.run_id for p in parents)
    response = client.get(tree_url(sweep, expanded=expanded, sort="-metrics.metric1", columns="metrics.metric1"))
    names = [Run.objects.get(run_id=i).name for i in row_ids(response)]
    # The tree stays a tree: each parent is followed by its own children, best first (metric1
    # does not follow start order, which is the default).
    for p in range(3):
        at = names.index(f"parent-{p}")
        assert names[at + 1 : at + 5] == [f"child-{p}-{c}" for c in (1, 3, 0, 2)]


def test_sorting_ascending_reverses_the_siblings(client, sweep):
    parent = Run.objects.get(name="parent-0")
    response = client.get(tree_url(sweep, expanded=parent.run_id, sort="metrics.metric1"))
    names = [Run.objects.get(run_id=i).name for i in row_ids(response)]
    at = names.index("parent-0")
    assert names[at + 1 : at + 5] == ["child-0-2", "child-0-0", "child-0-3", "child-0-1"]


def test_it_shows_the_chosen_param_and_metric_columns(client, sweep):
    parent = Run.objects.in_experiment(sweep).roots().get(name="parent-1")
    response = client.get(tree_url(sweep, expanded=parent.run_id, columns="params.param1,metrics.metric1"))
    assert '<span class="key">param1</span>' in response.content.decode()
    child = Run.objects.get(name="child-1-2")
    row = row_html(response, child)
    assert '<td class="text" title="c">c</td>' in row
    assert ">0.4333<" in row  # 1/3 + 0.1


def test_it_offers_the_experiments_param_metric_and_tag_keys_as_columns(client, sweep):
    html = client.get(tree_url(sweep)).content.decode()
    for key in ("param1", "param2", "metric1"):
        assert key in html
    # One form of checkboxes (several keys in one submit), tags included since #17.
    for name in ("params.param1", "metrics.metric1", "tags.kind"):
        assert f'name="columns" value="{name}"' in html


def test_unknown_columns_and_sorts_fall_back_to_defaults(client, sweep):
    response = client.get(tree_url(sweep, columns="bogus.x,params.", sort="nonsense"))
    assert response.status_code == 200
    assert len(row_ids(response)) == 3


def test_a_url_naming_thousands_of_columns_shows_the_first_hundred(client, sweep):
    # Each column is read for every row: 3,800 of them in one URL held a thread for 18 s.
    names = [f"tags.t{index}" for index in range(3_000)]
    response = client.get(tree_url(sweep, columns=",".join(names)))
    assert response.status_code == 200
    shown = [f"{column.kind}.{column.key}" for column in response.context["state"].columns]
    assert shown == names[:100]


def test_deleted_runs_are_hidden_unless_asked_for(client, sweep):
    parent = Run.objects.in_experiment(sweep).roots().first()
    run_set_lifecycle(run=parent, stage=DELETED)
    assert parent.run_id not in row_ids(client.get(tree_url(sweep)))
    shown = client.get(tree_url(sweep, show_deleted=1))
    assert parent.run_id in row_ids(shown)
    assert "is-deleted" in row_html(shown, parent)


def test_runs_hidden_with_their_deleted_parent_are_counted_with_a_way_to_them(client, sweep):
    # MLflow deletes one run, never its children: the tree hangs them from their deleted parent,
    # so without a word they would vanish from the page.
    parent = Run.objects.in_experiment(sweep).roots().first()
    children = list(Run.objects.children_of(parent))
    run_set_lifecycle(run=parent, stage=DELETED)
    html = client.get(tree_url(sweep)).content.decode()
    assert f"{len(children)} runs whose parent is deleted are hidden with it" in html
    assert "show_deleted=1" in html[html.index("hidden with it") :]
    shown = client.get(tree_url(sweep, show_deleted=1, expanded=parent.run_id))
    assert {child.run_id for child in children} <= set(row_ids(shown))
    assert "hidden with it" not in shown.content.decode()
    run_set_lifecycle(run=parent, stage="active")
    assert "hidden with it" not in client.get(tree_url(sweep)).content.decode()


def test_run_names_are_escaped(client):
    run = RunFactory(name="<script>alert('x')</script>")
    html = client.get(tree_url(run.experiment)).content.decode()
    assert "<script>alert" not in html
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in html


def test_every_value_a_row_shows_is_escaped(client):
    """A row writes names, values, the description, the best child and registered names, all of
    them user input (dashboard/jinja.py escapes each in one place)."""
    hostile = "<img src=x onerror=alert(1)>'\""  # no "/": a registered model's name cannot hold one
    escaped = "&lt;img src=x onerror=alert(1)&gt;&#x27;&quot;"
    experiment = ExperimentFactory(name="hostile")
    parent = RunFactory(experiment=experiment, name=hostile)
    child = RunFactory(experiment=experiment, parent=parent, name=hostile + "child")
    run_log_batch(
        run=child,
        params=[KeyValue("p", hostile)],
        tags=[KeyValue("t", hostile), KeyValue("mlflow.note.content", hostile)],
        metrics=[MetricInput("loss", 0.5, 1, 0)],
    )
    summary_refresh.recompute_all(experiment_id=experiment.id)
    model = registry_services.registered_model_create(name=hostile)
    registry_services.model_version_create(
        model=model,
        source=registry_services.resolve_source(source=f"runs:/{child.run_id}/model", run_id=child.run_id),
    )
    response = client.get(
        tree_url(experiment, expanded=parent.run_id, columns="params.p,tags.t,metrics.loss", best="loss")
    )
    rows = row_html(response, parent) + row_html(response, child)
    assert "<img" not in rows
    # the name (link, label, title), the param and tag cells, the description, the best
    # child's name and params, the registered model's name
    assert rows.count(escaped) >= 10


def test_long_names_carry_the_full_name_in_a_title(client):
    run = RunFactory(name="x" * 300)
    assert f'title="{"x" * 300}"' in client.get(tree_url(run.experiment)).content.decode()


def test_an_empty_experiment_says_how_to_log_runs(client):
    experiment = ExperimentFactory()
    html = client.get(tree_url(experiment)).content.decode()
    assert "export MLFLOW_TRACKING_URI=http://testserver" in html


def test_a_missing_experiment_is_a_404(client, db):
    assert client.get("/experiments/999999/").status_code == 404


def test_selected_runs_are_checked_and_counted_in_the_compare_link(client, sweep):
    a, b = Run.objects.in_experiment(sweep).roots()[:2]
    html = client.get(tree_url(sweep, selected=f"{a.run_id},{b.run_id}")).content.decode()
    assert f"/compare/?runs={a.run_id},{b.run_id}" in html
    assert re.search(r">Compare \(2\)</a>", html)
    assert f'value="{a.run_id}" aria-label="Select {a.name}" checked' in html


def test_the_tag_chips_offer_the_common_user_tags_but_no_system_tags(client, sweep):
    html = client.get(tree_url(sweep)).content.decode()
    assert 'class="chip"' in html
    assert "kind <b>even</b>" in html
    assert "mlflow.runName" not in html.split('class="chips"')[1].split("</div>")[0]


# Queries of the tree page:
#   experiment, its tags (prefetch)             2
#   roots: count and page                       2
#   tag chips, column choices                   2
#   the metrics with summaries (best column)    1
#   children of the expanded runs               1
#   params and latest metrics for the columns   2
#   the shown parents' summaries of one metric  1
#   the live poll's starting version            1
#   the rows' descriptions (their tooltips)     1
#   the rows with registered versions (badge)   1
TREE_PAGE_QUERIES = 14


@pytest.mark.parametrize("sized_experiment", [10, 10_000], indirect=True)
def test_tree_page_queries_do_not_grow_with_the_experiment(client, sized_experiment, django_assert_max_num_queries):
    big = Run.objects.get(experiment=sized_experiment, name="big-parent")
    first_child = Run.objects.children_of(big).order_by("pk").first()
    url = tree_url(
        sized_experiment,
        expanded=f"{big.run_id},{first_child.run_id}",
        columns="params.param1,metrics.metric1",
        sort="-metrics.metric1",
    )
    with django_assert_max_num_queries(TREE_PAGE_QUERIES):
        response = client.get(url)
    assert response.status_code == 200
    assert len(row_ids(response)) <= 3 + 50 + 1


@pytest.mark.parametrize("sized_experiment", [10, 10_000], indirect=True)
def test_the_plain_tree_page_costs_thirteen_queries_at_any_size(
    client, sized_experiment, django_assert_max_num_queries
):
    # experiment + tags, roots count + page, tag chips, column choices, the metrics with
    # summaries, the shown parents' summaries of the first of them, the values of the
    # default columns (a param and a metric: 2), the live poll's starting version (1), the
    # rows' descriptions (1), and the rows with registered versions (1)
    with django_assert_max_num_queries(13):
        assert client.get(tree_url(sized_experiment)).status_code == 200
