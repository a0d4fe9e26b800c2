import pytest

from tests.dashboard.test_tree_page import row_ids
from tests.factories import RunFactory, build_chain
from tracker.models import DELETED, Run
from tracker.services import run_set_lifecycle

pytestmark = pytest.mark.django_db


def children_url(run, **query):
    from urllib.parse import urlencode

    return f"/runs/{run.run_id}/children/" + (f"?{urlencode(query)}" if query else "")


def test_it_returns_the_children_as_rows_one_level_down(client, sweep):
    parent = Run.objects.get(name="parent-0")
    response = client.get(children_url(parent, level=1))
    assert response.status_code == 200
    expected = Run.objects.children_of(parent).order_by("-start_time")
    assert row_ids(response) == [c.run_id for c in expected]
    html = response.content.decode()
    assert html.count('data-level="1"') == 4
    assert "<html" not in html


def test_it_pages_with_a_show_more_row(client, sweep):
    parent = Run.objects.get(name="parent-0")
    first = client.get(children_url(parent, per_page=3))
    rest = client.get(children_url(parent, per_page=3, offset=3))
    assert len(row_ids(first)) == 3
    assert "offset=3" in first.content.decode()
    assert len(row_ids(rest)) == 1
    assert "more-row" not in rest.content.decode()
    assert set(row_ids(first)) | set(row_ids(rest)) == {c.run_id for c in Run.objects.children_of(parent)}


def test_the_show_more_row_spans_the_rows_cells_with_the_columns_asked_for(client, sweep):
    parent = Run.objects.get(name="parent-0")
    html = client.get(children_url(parent, per_page=3, columns="params.param1")).content.decode()
    # name, status, start, duration and the one column (the select box has its own cell)
    assert 'colspan="5"' in html


def test_a_grandchild_is_expandable_from_its_row(client):
    root, child, grandchild = build_chain(3)
    html = client.get(children_url(root, level=1)).content.decode()
    assert f"/runs/{child.run_id}/children/" in html
    assert 'aria-expanded="false"' in html
    assert row_ids(client.get(children_url(child, level=2))) == [grandchild.run_id]


def test_it_sorts_by_the_requested_column(client, sweep):
    parent = Run.objects.get(name="parent-1")
    response = client.get(children_url(parent, sort="-metrics.metric1", columns="metrics.metric1"))
    names = [Run.objects.get(run_id=i).name for i in row_ids(response)]
    assert names == ["child-1-1", "child-1-3", "child-1-0", "child-1-2"]


def test_under_a_filter_it_marks_matches_and_can_list_only_them(client, sweep):
    parent = Run.objects.get(name="parent-1")
    everything = client.get(children_url(parent, filter="params.param1 = 'a'"))
    assert len(row_ids(everything)) == 4
    assert everything.content.decode().count("is-match") == 2  # children 0 and 3
    only = client.get(children_url(parent, filter="params.param1 = 'a'", matches=1))
    assert len(row_ids(only)) == 2


def test_deleted_children_are_hidden_unless_asked_for(client, sweep):
    parent = Run.objects.get(name="parent-0")
    child = Run.objects.children_of(parent).first()
    run_set_lifecycle(run=child, stage=DELETED)
    assert child.run_id not in row_ids(client.get(children_url(parent)))
    assert child.run_id in row_ids(client.get(children_url(parent, show_deleted=1)))


def test_an_unknown_parent_is_a_404(client, db):
    assert client.get("/runs/0123456789abcdef0123456789abcdef/children/").status_code == 404


def test_a_bad_filter_is_a_400_not_a_server_error(client):
    run = RunFactory()
    assert client.get(children_url(run, filter="((")).status_code == 400


# Queries of a children page: the parent with its child count, the page, params and metrics
# for the columns, the rows' descriptions (mlflow.note.content, their tooltips); under
# matches=1 a count of the matching children; with a best-child metric, the summaries of the
# children that are parents (the first child is one); the rows with registered versions (the badge).
@pytest.mark.parametrize("sized_experiment", [10, 10_000], indirect=True)
@pytest.mark.parametrize(
    "query, queries",
    [
        ({"columns": "params.param1,metrics.metric1", "sort": "-metrics.metric1"}, 6),
        ({"filter": "tags.group = 'odd'", "matches": 1, "columns": "metrics.metric1", "offset": 1}, 6),
        ({"columns": "params.param1,metrics.metric1", "sort": "start", "best": "metric1"}, 7),
    ],
)
def test_children_queries_do_not_grow_with_the_parent(
    client, sized_experiment, query, queries, django_assert_max_num_queries
):
    big = Run.objects.get(experiment=sized_experiment, name="big-parent")
    with django_assert_max_num_queries(queries):
        response = client.get(children_url(big, level=1, **query))
    assert response.status_code == 200
    assert 0 < len(row_ids(response)) <= 50
