"""experiments/search: MLflow's experiment filter, order_by, view types and paging."""

import json

import pytest
from mlflow import MlflowClient

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
    ("filter_text", "expected"),
    [
        ("tags.team IS NULL", ["it's", "baseline", "Sweep-C", "Default"]),
        ("tags.team IS NOT NULL", ["sweep-b", "sweep-a"]),
        ("tags.`team name` is not null", ["baseline"]),
        ("tags.team IS NULL AND tags.`team name` IS NULL", ["it's", "Sweep-C", "Default"]),
        ("tags.team IS NOT NULL AND tags.team != 'vision'", ["sweep-b"]),
        ("tags.team IS NULL AND tags.team = 'vision'", []),
        ("tags.team IS NULL AND name ILIKE 'sweep%'", ["Sweep-C"]),
    ],
)
def test_tags_is_null_and_is_not_null_ask_whether_an_experiment_has_the_tag(client, experiments, filter_text, expected):
    assert names(client, filter=filter_text) == expected


@pytest.mark.parametrize(
    ("filter_text", "expected"),
    [
        ("""tags."team" = 'vision'""", ["sweep-a"]),
        ("""tag.'team' = 'vision'""", ["sweep-a"]),
        ("""tags."team name" LIKE 'vis%'""", ["baseline"]),
        ("""tags."team" IS NOT NULL""", ["sweep-b", "sweep-a"]),
        ("\"name\" = 'baseline'", ["baseline"]),
        ("""attribute."creation_time" >= 4000""", ["it's", "baseline"]),
    ],
)
def test_a_double_quoted_key_or_attribute_reads_as_the_bare_one(client, experiments, filter_text, expected):
    assert names(client, filter=filter_text) == expected


@pytest.mark.parametrize(
    ("filter_template", "expected"),
    [
        ("experiment_id = '{a}'", ["sweep-a"]),
        ('attribute.experiment_id = "{a}"', ["sweep-a"]),
        ("experiment_id != '{a}'", ["it's", "baseline", "Sweep-C", "sweep-b", "Default"]),
        ("experiment_id IN ('{a}', '{b}')", ["sweep-b", "sweep-a"]),
        ("experiment_id IN ('{a}',)", ["sweep-a"]),  # a one-item Python tuple, as f"IN {tuple(ids)}" writes it
        ("experiment_id not in ('{a}', '{b}', '0')", ["it's", "baseline", "Sweep-C"]),
        ("experiment_id = ' +{a}'", ["sweep-a"]),  # read as MLflow reads it, with int()
        ("experiment_id IN ('{a}') AND tags.team IS NOT NULL", ["sweep-a"]),
    ],
)
def test_experiment_id_takes_equality_and_lists_of_quoted_ids(client, experiments, filter_template, expected):
    filter_text = filter_template.format(a=experiments["sweep-a"].pk, b=experiments["sweep-b"].pk)
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


def test_ties_of_an_order_fall_to_the_newest_id_as_in_mlflows_store(client, db):
    # mlflow's store breaks a given order's ties by experiment_id DESC; with no order_by, newest
    # first and then experiment_id ASC.
    for name in ("tie-1", "tie-2", "tie-3"):
        ExperimentFactory(name=name, creation_time=7000, last_update_time=7000)
    tied = {"filter": "name LIKE 'tie-%'"}
    assert names(client, order_by=["creation_time"], **tied) == ["tie-3", "tie-2", "tie-1"]
    assert names(client, order_by=["last_update_time DESC"], **tied) == ["tie-3", "tie-2", "tie-1"]
    assert names(client, **tied) == ["tie-1", "tie-2", "tie-3"]


@pytest.mark.parametrize(
    ("order_by", "expected"),
    [
        (["`name` DESC"], ["sweep-b", "sweep-a", "it's", "baseline", "Sweep-C"]),
        (['"name" desc'], ["sweep-b", "sweep-a", "it's", "baseline", "Sweep-C"]),
        (["attribute.`last_update_time`"], ["it's", "baseline", "Sweep-C", "sweep-b", "sweep-a"]),
        (['attribute."experiment_id" DESC'], ["it's", "baseline", "Sweep-C", "sweep-b", "sweep-a"]),
    ],
)
def test_order_by_reads_a_backquoted_or_double_quoted_column(client, experiments, order_by, expected):
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
        ("colour = 'red'", "position 0: expected name, experiment_id, creation_time, last_update_time or tags.<key>"),
        ("name < 'x'", "expected an operator for name (=, !=, LIKE, ILIKE)"),
        ("creation_time = 'soon'", "expected an integer"),
        ("name = 'a' OR name = 'b'", "position 11: expected AND or the end of the filter"),
        ("name = 'unterminated", "position 7: unterminated string: expected a closing ' to match the ' here"),
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


@pytest.mark.parametrize(
    ("filter_text", "says"),
    [
        ("name IS NULL", "IS NULL and IS NOT NULL apply to tags only"),
        ("creation_time IS NOT NULL", "IS NULL and IS NOT NULL apply to tags only"),
        ("tags.team IS 'vision'", "position 13: expected NULL or NOT NULL after IS"),
        ("tags.team IN ('vision')", "expected an operator for tags.team (=, !=, LIKE, ILIKE, IS NULL, IS NOT NULL)"),
        ("experiment_id LIKE '1%'", "expected an operator for experiment_id (=, !=, IN, NOT IN)"),
        ("experiment_id = 5", "position 16: expected an experiment ID in quotes"),
        ("experiment_id = 'five'", "position 16: expected an experiment ID (an integer)"),
        ("experiment_id IN ()", "position 18: expected an experiment ID in quotes"),
        ("experiment_id IN ('1', 2)", "position 23: expected an experiment ID in quotes"),
        ("'name' = 'a'", "position 0: expected name, experiment_id, creation_time, last_update_time or tags.<key>"),
        ("`tags`.team = 'a'", "position 0: expected name, experiment_id, creation_time, last_update_time or"),
        ("creation_time = 1.5", "position 16: expected an integer"),
        ("creation_time = 99999999999999999999", "position 16: expected an integer"),
        ("name <> 'a'", "position 5: expected an operator for name (=, !=, LIKE, ILIKE)"),  # mlflow: not <>
    ],
)
def test_what_mlflow_refuses_is_refused_with_where_and_what(client, experiments, filter_text, says):
    response = client.post(URL, json.dumps({"filter": filter_text}), content_type="application/json")
    assert response.status_code == 400
    assert response.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    assert says in response.json()["message"]


@pytest.mark.parametrize(
    ("order_by", "says"),
    [
        ("tags.team", "experiments sort by an attribute (name, experiment_id, creation_time or last_update_time)"),
        ("'name' DESC", "position 0: expected name, experiment_id, creation_time or last_update_time"),
        ("name DESC ASC", "position 10: expected ASC, DESC or the end of the clause"),
    ],
)
def test_an_order_by_mlflow_refuses_is_refused_with_where_and_what(client, order_by, says):
    response = client.post(URL, json.dumps({"order_by": [order_by]}), content_type="application/json")
    assert response.status_code == 400
    assert response.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    assert says in response.json()["message"]


def test_the_mlflow_client_searches_with_null_tags_quoted_keys_ids_and_quoted_order_keys(tracking_uri, experiments):
    """The forms a differential probe found mlflow server taking and Runtree refusing."""
    client = MlflowClient()

    def searched(filter_string, order_by=None) -> list[str]:
        return [e.name for e in client.search_experiments(filter_string=filter_string, order_by=order_by)]

    sweep_a, sweep_b = experiments["sweep-a"].pk, experiments["sweep-b"].pk
    assert searched("tags.team IS NULL AND name != 'Default'") == ["it's", "baseline", "Sweep-C"]
    assert searched("tags.team IS NOT NULL") == ["sweep-b", "sweep-a"]
    assert searched("""tags."team" = 'vision'""") == ["sweep-a"]
    assert searched(f"experiment_id = '{sweep_a}'") == ["sweep-a"]
    assert searched(f"experiment_id IN ('{sweep_a}', '{sweep_b}')") == ["sweep-b", "sweep-a"]
    assert searched(f"experiment_id != '{sweep_a}' AND name LIKE 'sweep%'") == ["sweep-b"]
    assert searched("name LIKE 'sweep%'", order_by=["`name` DESC"]) == ["sweep-b", "sweep-a"]
