import pytest

from tests.factories import ExperimentFactory, build_tree
from tracker.models import DELETED
from tracker.services import experiment_set_lifecycle, experiment_set_tag

pytestmark = pytest.mark.django_db


def test_it_lists_experiments_with_run_counts_and_tags(client):
    experiment = ExperimentFactory(name="tuning")
    build_tree([2, 3], experiment=experiment)
    experiment_set_tag(experiment=experiment, key="team", value="vision")
    html = client.get("/").content.decode()
    assert f'href="/experiments/{experiment.id}/"' in html
    row = html.split(f'href="/experiments/{experiment.id}/"')[1].split("</tr>")[0]
    assert '<td class="num">8</td>' in row
    assert "team" in row and "vision" in row
    assert "<time" in row


def test_it_searches_by_name(client):
    ExperimentFactory(name="alpha-sweep")
    ExperimentFactory(name="beta")
    html = client.get("/?q=ALPHA").content.decode()
    assert "alpha-sweep" in html and ">beta<" not in html


def test_deleted_experiments_are_hidden_unless_asked_for(client):
    experiment = ExperimentFactory(name="old-one")
    experiment_set_lifecycle(experiment=experiment, stage=DELETED)
    assert "old-one" not in client.get("/").content.decode()
    shown = client.get("/?show_deleted=1").content.decode()
    assert "old-one" in shown and "badge-deleted" in shown


def test_with_no_runs_it_says_how_to_log_some(client):
    html = client.get("/").content.decode()
    assert "export MLFLOW_TRACKING_URI=http://testserver" in html


def test_names_and_tags_are_escaped(client):
    experiment = ExperimentFactory(name="<script>x</script>")
    experiment_set_tag(experiment=experiment, key="note", value="<b>hi</b>")
    html = client.get("/").content.decode()
    assert "<script>x</script>" not in html and "<b>hi</b>" not in html


# Queries: the experiments (run count and last activity as subqueries) and their tags.
@pytest.mark.parametrize("sized_experiment", [10, 10_000], indirect=True)
def test_list_queries_do_not_grow_with_runs(client, sized_experiment, django_assert_max_num_queries):
    with django_assert_max_num_queries(2):
        html = client.get("/").content.decode()
    assert f"{sized_experiment.runs.count():,}" in html
