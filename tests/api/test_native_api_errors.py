"""The native API refuses what it cannot use: every bad parameter is a 400 that names it, and every
error, DRF's own included, is {"error_code", "message"} in JSON."""

import pytest

from tests.factories import build_tree
from tracker import services

pytestmark = pytest.mark.django_db

MISSING_RUN = "0" * 32


@pytest.fixture
def family(experiment):
    """A root with three children, named a, b and c."""
    [root] = build_tree([1], experiment=experiment)
    children = build_tree([3], parent=root)
    for name, child in zip("abc", children, strict=True):
        services.run_update(run=child, name=name)
    return root


def assert_error(response, status: int, error_code: str, *words: str):
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error_code", "message"}
    assert body["error_code"] == error_code
    for word in words:
        assert word in body["message"]


@pytest.mark.parametrize(
    ("path", "query", "named"),
    [
        # limit was ignored: experiments/ answered every experiment, runs/ a page of 100.
        ("/api/v1/experiments/", {"limit": "-1"}, "limit"),
        ("/api/v1/experiments/", {"limit": "0"}, "limit"),
        ("/api/v1/runs/", {"limit": "abc"}, "limit"),
        ("/api/v1/runs/", {"limit": str(10**20)}, "limit"),
        ("/api/v1/runs/", {"offset": "-1"}, "offset"),
        ("/api/v1/runs/", {"offset": str(10**23)}, "offset"),
        ("/api/v1/experiments/", {"view_type": "bogus"}, "view_type"),
        ("/api/v1/runs/", {"show_deleted": "maybe"}, "show_deleted"),
        ("/api/v1/runs/", {"experiment_id": "x"}, "experiment_id"),
        ("/api/v1/runs/", {"limt": "5"}, "limt"),
        ("/api/v1/experiments/", {"filter": "name = 'a'"}, "filter"),
        ("/api/v1/runs/{root}/subtree/", {"filter": "metrics.loss < 1"}, "filter"),
        ("/api/v1/runs/{root}/", {"filter": "metrics.loss < 1"}, "filter"),
    ],
)
def test_a_bad_parameter_is_a_400_that_names_it(client, family, path, query, named):
    response = client.get(path.format(root=family.run_id), query)
    assert_error(response, 400, "INVALID_PARAMETER_VALUE", f"'{named}'")


def test_a_good_limit_is_kept_and_a_large_one_capped_at_1000(client, family):
    assert len(client.get("/api/v1/runs/", {"limit": 2}).json()["results"]) == 2
    page = client.get("/api/v1/runs/", {"limit": 5000, "offset": 1})
    assert page.status_code == 200 and len(page.json()["results"]) == 3


def test_show_deleted_takes_a_bool_as_python_writes_it(client, family):
    child = family.children.get(name="a")
    services.run_set_lifecycle(run=child, stage="deleted")

    assert client.get("/api/v1/runs/", {"show_deleted": "True"}).json()["count"] == 4
    assert client.get("/api/v1/runs/", {"show_deleted": "false"}).json()["count"] == 3


def test_children_take_the_filter_and_order_of_the_run_listing(client, family):
    """They were ignored: a bad filter answered every child, a good one did not narrow them."""
    children = f"/api/v1/runs/{family.run_id}/children/"

    narrowed = client.get(children, {"filter": "attributes.run_name != 'b'", "order_by": "attributes.run_name"})
    assert [run["name"] for run in narrowed.json()["results"]] == ["a", "c"]
    assert_error(client.get(children, {"filter": "bogus"}), 400, "INVALID_PARAMETER_VALUE")


def test_children_under_a_filter_stay_within_their_query_budget(client, family, django_assert_max_num_queries):
    # Expect 6 queries: the run, the count, the page of children (with their child counts),
    # then one each for the page's params, latest metrics and tags.
    with django_assert_max_num_queries(6):
        response = client.get(f"/api/v1/runs/{family.run_id}/children/", {"filter": "attributes.run_name = 'a'"})
    assert response.json()["count"] == 1


@pytest.mark.parametrize("path", ["/api/v1/runs/", "/api/v1/experiments/", "/api/v1/"])
def test_an_unknown_format_is_a_406_that_names_the_formats_there_are(client, db, path):
    """It was a 404 {"detail": "Not found."}, as if the endpoint were not there."""
    response = client.get(path, {"format": "xml"})
    assert_error(response, 406, "INVALID_PARAMETER_VALUE", "'format'", "'json'")


def test_csv_where_it_is_not_offered_is_refused_the_same_way(client, db):
    assert_error(client.get("/api/v1/experiments/", {"format": "csv"}), 406, "INVALID_PARAMETER_VALUE", "'format'")


@pytest.mark.parametrize(
    ("request_args", "status", "error_code"),
    [
        ({"path": f"/api/v1/runs/{MISSING_RUN}/"}, 404, "RESOURCE_DOES_NOT_EXIST"),
        ({"path": f"/api/v1/runs/{MISSING_RUN}/children/"}, 404, "RESOURCE_DOES_NOT_EXIST"),
        ({"path": "/api/v1/experiments/12345/"}, 404, "RESOURCE_DOES_NOT_EXIST"),
        ({"path": "/api/v1/runs/", "method": "POST"}, 405, "ENDPOINT_NOT_FOUND"),
        ({"path": "/api/v1/", "method": "DELETE"}, 405, "ENDPOINT_NOT_FOUND"),
        ({"path": "/api/v1/runs/", "HTTP_ACCEPT": "application/xml"}, 406, "INVALID_PARAMETER_VALUE"),
    ],
)
def test_drfs_own_refusals_come_in_the_one_error_shape(client, db, request_args, status, error_code):
    """They were {"detail": ...}, beside {"offset": ...} and {"error_code", "message"}."""
    args = dict(request_args)
    response = client.generic(args.pop("method", "GET"), args.pop("path"), **args)
    assert_error(response, status, error_code)


@pytest.mark.parametrize("endpoint", ["", "children/", "subtree/", "ancestors/", "summary/"])
def test_an_error_asked_for_as_csv_is_still_json(client, db, endpoint):
    response = client.get(f"/api/v1/runs/{MISSING_RUN}/{endpoint}", {"format": "csv"})
    assert_error(response, 404, "RESOURCE_DOES_NOT_EXIST", MISSING_RUN)


def test_the_options_description_is_json_whatever_format_was_asked_for(client, db):
    """With ?format=csv it reached the CSV renderer, which has only rows to write."""
    response = client.options("/api/v1/runs/?format=csv")
    assert response.status_code == 200 and response.json()["name"] == "Run List"
