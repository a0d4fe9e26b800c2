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


def test_a_description_reads_as_one_under_the_name_not_as_a_tag_chip(client):
    # MLflow's UI keeps an experiment's description in the mlflow.note.content tag: it showed as a
    # chip cut at 40 characters, in the list and on the experiment's page.
    experiment = ExperimentFactory(name="described")
    note = "Tuning **ResNet** for the <b>spring</b> release.\n\n| lr | loss |\n|---|---|\n| 0.1 | 0.25 |"
    experiment_set_tag(experiment=experiment, key="mlflow.note.content", value=note)
    experiment_set_tag(experiment=experiment, key="team", value="vision")
    html = client.get("/").content.decode()
    row = html.split(f'href="/experiments/{experiment.id}/"')[1].split("</tr>")[0]
    assert "Tuning <strong>ResNet</strong> for the &lt;b&gt;spring&lt;/b&gt; release.</div>" in row  # its first line
    assert "mlflow.note.content" not in row and "team" in row

    page = client.get(f"/experiments/{experiment.id}/").content.decode()
    head = page.split('class="page-head"', 1)[1].split('id="filter-form"', 1)[0]
    assert "<strong>ResNet</strong>" in head and "<td>0.25</td>" in head and "&lt;b&gt;spring" in head
    assert "mlflow.note.content" not in head and "vision" in head


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
