"""experiments/search: MLflow's experiment filter, order_by, view types and paging."""

import json

import pytest

from tests.factories import ExperimentFactory
from tracker import services
from tracker.models import DELETED, Experiment

pytestmark = pytest.mark.django_db

URL = "/api/2.0/mlflow/experiments/search"


def names(client, **body) -> list[str]:
    response = client.post(URL, json.dumps(body), content_type="application/json")
    assert response.status_code == 200, response.content
    return [experiment["name"] for experiment in response.json()["experiments"]]


@pytest.fixture
def experiments(db):
    """Five experiments besides Default (id 0, created at time 0, from the data migration)."""
    made = {
        name: ExperimentFactory(name=name, creation_time=created, last_update_time=updated)
        for name, created, updated in [
            ("sweep-a", 1000, 5000),
            ("sweep-b", 2000, 4000),
            ("Sweep-C", 3000, 3000),
            ("baseline", 4000, 2000),
            ("it's", 5000, 1000),
        ]
    }
    services.experiment_set_tag(experiment=made["sweep-a"], key="team", value="vision")
    services.experiment_set_tag(experiment=made["sweep-b"], key="team", value="speech")
    services.experiment_set_tag(experiment=made["baseline"], key="team name", value="vision")
    for experiment in made.values():  # setting a tag touched last_update_time
        Experiment.objects.filter(pk=experiment.pk).update(last_update_time=experiment.last_update_time)
    return made


@pytest.mark.parametrize(
    ("filter_text", "expected"),
    [
        ("name = 'sweep-a'", ["sweep-a"]),
        ('attribute.name = "baseline"', ["baseline"]),
        ("name = 'it''s'", ["it's"]),
        ("name != 'sweep-a'", ["it's", "baseline", "Sweep-C", "sweep-b", "Default"]),
        ("name LIKE 'sweep%'", ["sweep-b", "sweep-a"]),
        ("name ILIKE 'sweep%'", ["Sweep-C", "sweep-b", "sweep-a"]),
        ("name like 'sweep-_'", ["sweep-b", "sweep-a"]),
        ("tags.team = 'vision'", ["sweep-a"]),
        ("tags.team != 'vision'", ["sweep-b"]),
        ("tags.`team name` LIKE 'vis%'", ["baseline"]),
        ("creation_time > 2000 AND last_update_time >= 2000", ["baseline", "Sweep-C"]),
        ("name ILIKE 'SWEEP%' and tags.team = 'speech'", ["sweep-b"]),
        ("", ["it's", "baseline", "Sweep-C", "sweep-b", "sweep-a", "Default"]),
    ],
)
def test_a_filter_selects_experiments_newest_first(client, experiments, filter_text, expected):
    assert names(client, filter=filter_text) == expected


@pytest.mark.parametrize(
    ("order_by", "expected"),
    [
        (["name"], ["Sweep-C", "baseline", "it's", "sweep-a", "sweep-b"]),
        (["name DESC"], ["sweep-b", "sweep-a", "it's", "baseline", "Sweep-C"]),
        (["attribute.last_update_time ASC"], ["it's", "baseline", "Sweep-C", "sweep-b", "sweep-a"]),
        (["creation_time"], ["sweep-a", "sweep-b", "Sweep-C", "baseline", "it's"]),
        (["experiment_id DESC"], ["it's", "baseline", "Sweep-C", "sweep-b", "sweep-a"]),
    ],
)
def test_order_by_sorts_on_any_of_mlflows_columns(client, experiments, order_by, expected):
    assert names(client, order_by=order_by, filter="name != 'Default'") == expected


def test_view_type_chooses_active_deleted_or_all(client, experiments):
    services.experiment_set_lifecycle(experiment=experiments["baseline"], stage=DELETED)
    assert "baseline" not in names(client)
    assert names(client, view_type="DELETED_ONLY") == ["baseline"]
    assert len(names(client, view_type="ALL")) == 6


def test_paging_visits_every_experiment_once(client, experiments):
    seen, token = [], None
    while True:
        body = {"max_results": 2, "order_by": ["name"], **({"page_token": token} if token else {})}
        page = client.post(URL, json.dumps(body), content_type="application/json").json()
        seen.extend(experiment["name"] for experiment in page["experiments"])
        token = page.get("next_page_token")
        if not token:
            break
    assert seen == ["Default", "Sweep-C", "baseline", "it's", "sweep-a", "sweep-b"]


def test_the_get_form_reads_repeated_keys_from_the_query_string(client, experiments):
    response = client.get(URL, {"filter": "name LIKE 'sweep%'", "order_by": ["name DESC"], "max_results": "1"})
    body = response.json()
    assert [e["name"] for e in body["experiments"]] == ["sweep-b"] and body["next_page_token"]


@pytest.mark.parametrize(
    ("filter_text", "says"),
    [
        ("name", "position 4: expected an operator for name"),
        ("name = ", "position 7: expected a quoted string but found the end of the filter"),
        ("colour = 'red'", "position 0: expected name, creation_time, last_update_time or tags.<key>"),
        ("name < 'x'", "expected an operator for name (=, !=, LIKE, ILIKE)"),
        ("creation_time = 'soon'", "expected an integer"),
        ("name = 'a' OR name = 'b'", "position 11: expected AND or the end of the filter"),
        ("name = 'unterminated", 'position 7: expected a column, an operator or a value but found "\'unterminated"'),
        ("tags.team LIKE 5", "expected a quoted string"),
    ],
)
def test_a_bad_filter_is_refused_with_where_and_what(client, experiments, filter_text, says):
    response = client.post(URL, json.dumps({"filter": filter_text}), content_type="application/json")
    assert response.status_code == 400
    assert response.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    assert says in response.json()["message"]


@pytest.mark.parametrize("order_by", ["colour", "name SIDEWAYS", "name ASC extra", ""])
def test_a_bad_order_by_is_refused(client, order_by):
    response = client.post(URL, json.dumps({"order_by": [order_by]}), content_type="application/json")
    assert response.status_code == 400
    assert "Invalid order_by clause" in response.json()["message"]
