"""Acting on what you watch (#17): writers tag, untag, delete and restore selected runs from the
tree, and rename and describe a run on its page; viewers get no controls and no writes."""

import pytest
from django.contrib.auth.models import User
from django.test import Client

from tests.dashboard.test_tree_page import row_html, tree_url
from tests.factories import ExperimentFactory, RunFactory
from tracker.constants import NOTE_TAG
from tracker.models import DELETED, Run, RunTag
from tracker.web.auth import user_set_role

pytestmark = pytest.mark.django_db


@pytest.fixture
def three_runs(db):
    experiment = ExperimentFactory(name="acting")
    return experiment, [RunFactory(experiment=experiment, name=f"r{i}") for i in range(3)]


def act(client, runs, action, **fields):
    return client.post("/selection/", {"runs": ",".join(run.run_id for run in runs), "action": action, **fields})


def test_a_writer_tags_and_untags_the_selected_runs(client, three_runs):
    experiment, runs = three_runs
    response = act(client, runs[:2], "tag", key="keep", value="yes", next=f"/experiments/{experiment.id}/?x=1")
    assert response.status_code == 302 and response["Location"] == f"/experiments/{experiment.id}/?x=1"
    assert set(RunTag.objects.filter(key="keep").values_list("run__name", "value")) == {("r0", "yes"), ("r1", "yes")}
    act(client, runs, "untag", key="keep")
    assert not RunTag.objects.filter(key="keep").exists()


def test_a_writer_deletes_and_restores_the_selected_runs(client, three_runs):
    experiment, runs = three_runs
    act(client, runs[1:], "delete")
    assert sorted(Run.objects.filter(lifecycle_stage=DELETED).values_list("name", flat=True)) == ["r1", "r2"]
    act(client, runs[1:], "restore")
    assert not Run.objects.filter(lifecycle_stage=DELETED).exists()


@pytest.mark.parametrize(
    "fields",
    [
        {"action": "tag"},
        {"action": "explode"},
        {"action": "tag", "key": "runtree.best.x"},
        {"action": "tag", "key": "bad\nkey"},
    ],
)
def test_bad_actions_are_400s_that_store_nothing(client, three_runs, fields):
    _, runs = three_runs
    before = RunTag.objects.count()
    assert client.post("/selection/", {"runs": ",".join(r.run_id for r in runs), **fields}).status_code == 400
    assert RunTag.objects.count() == before
    assert act(client, [], "delete").status_code == 400


def test_next_only_goes_back_to_this_site(client, three_runs):
    experiment, runs = three_runs
    response = act(client, runs[:1], "delete", next="https://evil.example/")
    assert response["Location"] == f"/experiments/{experiment.id}/"


def test_a_run_is_renamed_and_described_and_its_row_shows_the_description(client, three_runs):
    experiment, runs = three_runs
    response = client.post(f"/runs/{runs[0].run_id}/edit/", {"name": "baseline", "description": "**Strong** baseline"})
    assert response.status_code == 302
    run = Run.objects.get(pk=runs[0].pk)
    assert run.name == "baseline"
    assert RunTag.objects.get(run=run, key=NOTE_TAG).value == "**Strong** baseline"
    page = client.get(f"/runs/{run.run_id}/").content.decode()
    assert "<strong>Strong</strong> baseline" in page
    assert 'title="baseline&#10;&#10;**Strong** baseline"' in row_html(client.get(tree_url(experiment)), run)
    client.post(f"/runs/{run.run_id}/edit/", {"name": "", "description": ""})
    assert Run.objects.get(pk=run.pk).name == "baseline"
    assert not RunTag.objects.filter(run=run, key=NOTE_TAG).exists()


@pytest.mark.parametrize(
    "description, forbidden",
    [
        ("<script>alert(1)</script>", "<script>"),
        ('<img src=x onerror="alert(1)">', "<img"),
        ("[click](javascript:alert(1))", 'href="javascript:'),
        ("![pixel](https://tracker.example/p.png)", "<img"),
        ("<a href='x' onclick='alert(1)'>x</a>", "<a href='x'"),
        ("| a | b |\n|---|---|\n| <script>x</script> | [l](javascript:alert(1)) |", "<script>"),
        ("| a | b |\n|---|---|\n| <script>x</script> | [l](javascript:alert(1)) |", 'href="javascript:'),
    ],
)
def test_a_description_is_markdown_with_no_raw_html(client, three_runs, description, forbidden):
    _, runs = three_runs
    RunTag.objects.create(run=runs[0], key=NOTE_TAG, value=description)
    page = client.get(f"/runs/{runs[0].run_id}/").content.decode()
    shown = page.split('class="description markdown"', 1)[1].split("</div>", 1)[0]
    assert forbidden not in shown


def test_a_description_draws_a_markdown_table(client, three_runs):
    # MLflow's UI draws GitHub's tables; they showed as rows of pipes.
    _, runs = three_runs
    RunTag.objects.create(run=runs[0], key=NOTE_TAG, value="| lr | loss |\n|---|---|\n| 0.1 | 0.25 |")
    page = client.get(f"/runs/{runs[0].run_id}/").content.decode()
    shown = page.split('class="description markdown"', 1)[1].split("</div>", 1)[0]
    assert "<th>lr</th>" in shown and "<td>0.25</td>" in shown and "|" not in shown


@pytest.fixture
def auth_on(settings):
    settings.RUNTREE_AUTH = "required"


def logged_in(role: str) -> Client:
    user = User.objects.create_user(role, password="pw-123456789")
    user_set_role(user=user, role=role)
    client = Client()
    client.force_login(user)
    return client


def test_a_viewer_sees_no_controls_and_cannot_act(auth_on, three_runs):
    experiment, runs = three_runs
    viewer = logged_in("viewer")
    tree = viewer.get(tree_url(experiment)).content.decode()
    assert "js-act-form" not in tree
    assert "edit-run" not in viewer.get(f"/runs/{runs[0].run_id}/").content.decode()
    assert act(viewer, runs, "delete").status_code == 403
    assert viewer.post(f"/runs/{runs[0].run_id}/edit/", {"name": "x"}).status_code == 403
    assert not Run.objects.filter(lifecycle_stage=DELETED).exists()


def test_a_writer_sees_the_controls_and_a_write_needs_the_csrf_token(auth_on, three_runs):
    experiment, runs = three_runs
    writer = logged_in("writer")
    assert "js-act-form" in writer.get(tree_url(experiment)).content.decode()
    assert "edit-run" in writer.get(f"/runs/{runs[0].run_id}/").content.decode()
    assert act(writer, runs[:1], "delete").status_code == 302
    forged = Client(enforce_csrf_checks=True)
    forged.force_login(User.objects.get(username="writer"))
    assert act(forged, runs[1:], "delete").status_code == 403
    assert Run.objects.filter(lifecycle_stage=DELETED).count() == 1
