"""The registry's pages: /models/, /models/<name>/, a version's page, the run page's
"registered as" line and the tree's badge; writers' forms; query counts flat in the versions."""

import pytest
from bs4 import BeautifulSoup

from registry import services
from registry.models import ModelVersion, RegisteredModel
from tests.factories import RunFactory, build_tree
from tests.trust.conftest import make_user
from tracker.models import DELETED, LatestMetric, Run
from tracker.services import run_set_lifecycle

pytestmark = pytest.mark.django_db


def register(name: str, run: Run, **kwargs) -> ModelVersion:
    model = RegisteredModel.objects.filter(name=name).first() or services.registered_model_create(name=name)
    source = services.resolve_source(source=f"runs:/{run.run_id}/model", run_id=run.run_id)
    return services.model_version_create(model=model, source=source, **kwargs)


@pytest.fixture
def sweep_versions():
    """A sweep (a parent with 4 children, each with an rmse) and model 'fraud' with a version
    from each of the first three children; @champion on v2, v3 in Staging."""
    parent, *children = build_tree([1, 4])
    parent.name = "hpo-sweep"
    parent.save()
    for index, child in enumerate(children):
        LatestMetric.objects.create(run=child, key="rmse", value=0.5 - index / 10, timestamp=1, step=0)
    versions = [register("fraud", child) for child in children[:3]]
    services.registered_model_set_alias(model=versions[0].registered_model, alias="champion", version=2)
    services.model_version_transition_stage(version=versions[2], stage="Staging")
    return parent, children, versions


def soup(response) -> BeautifulSoup:
    assert response.status_code == 200, response.content[:500]
    return BeautifulSoup(response.content, "html.parser")


def test_the_models_page_lists_each_model_with_its_latest_versions_and_aliases(client, sweep_versions):
    services.registered_model_create(name="churn", description="who leaves")
    page = soup(client.get("/models/"))
    rows = {row["data-model"]: row for row in page.select("tr[data-model]")}
    assert list(rows) == ["churn", "fraud"]
    fraud = rows["fraud"]
    assert [chip.get_text(" ", strip=True) for chip in fraud.select("a.chip.stage")] == ["no stage v2", "Staging v3"]
    assert fraud.select_one("a.chip.alias").get_text(" ", strip=True) == "@champion v2"
    assert fraud.select_one("a[href='/models/fraud/']")
    assert "who leaves" in rows["churn"].get_text()


def test_the_models_page_searches_names(client, sweep_versions):
    services.registered_model_create(name="churn")
    page = soup(client.get("/models/?q=FRA"))
    assert [row["data-model"] for row in page.select("tr[data-model]")] == ["fraud"]


def test_a_models_page_links_each_version_to_its_run_and_sweep_with_its_metrics(client, sweep_versions):
    parent, children, _ = sweep_versions
    page = soup(client.get("/models/fraud/"))
    rows = {row["data-version"]: row for row in page.select("tr[data-version]")}
    assert list(rows) == ["3", "2", "1"]
    for number, child in zip(["1", "2", "3"], children, strict=False):
        links = [a["href"] for a in rows[number].select("td.source a")]
        assert links == [f"/runs/{child.run_id}/", f"/runs/{parent.run_id}/"]
    assert rows["2"].select_one(".chip.alias").get_text() == "@champion"
    assert [cell.get_text(strip=True) for cell in rows["1"].select("td.num")][1:] == ["0.5000"]
    assert page.select_one("a[href='/models/fraud/versions/2/']")


def test_a_version_whose_run_was_deleted_says_its_source_is_gone(client, sweep_versions):
    _, children, _ = sweep_versions
    run_set_lifecycle(run=children[0], stage=DELETED)
    Run.objects.filter(pk=children[1].pk).delete()  # removed for good (gc)
    page = soup(client.get("/models/fraud/"))
    rows = {row["data-version"]: row for row in page.select("tr[data-version]")}
    assert "source run deleted" in rows["1"].get_text()
    assert "source run deleted" in rows["2"].get_text()
    assert "source run deleted" not in rows["3"].get_text()
    assert "source run deleted" in soup(client.get("/models/fraud/versions/2/")).get_text()


def test_a_version_page_shows_its_run_metrics_stage_and_how_to_load_it(client, sweep_versions):
    _, children, _ = sweep_versions
    page = soup(client.get("/models/fraud/versions/3/"))
    text = page.get_text(" ", strip=True)
    assert "Staging" in text and "rmse" in text and "models:/fraud/3" in text
    assert page.select_one(f"a[href='/runs/{children[2].run_id}/']")


def test_unknown_models_and_versions_are_404(client, sweep_versions):
    assert client.get("/models/nope/").status_code == 404
    assert client.get("/models/fraud/versions/9/").status_code == 404


def test_the_run_page_says_what_was_registered_from_it(client, sweep_versions):
    _, children, _ = sweep_versions
    register("churn", children[1])
    line = soup(client.get(f"/runs/{children[1].run_id}/")).select_one(".registrations")
    assert line.get_text(" ", strip=True) == "registered as churn v1 registered as fraud v2 @champion"
    assert line.select_one("a[href='/models/fraud/versions/2/']")
    assert soup(client.get(f"/runs/{children[3].run_id}/")).select_one(".registrations") is None


def test_the_tree_marks_registered_runs(client, sweep_versions):
    parent, children, _ = sweep_versions
    page = soup(client.get(f"/runs/{parent.run_id}/children/"))
    marked = {row["data-run-id"] for row in page.select("tr[data-run-id]") if row.select_one(".badge-registered")}
    assert marked == {child.run_id for child in children[:3]}
    badge = page.select_one(f"tr[data-run-id='{children[1].run_id}'] .badge-registered")
    assert badge["title"] == "Registered as fraud v2"


# --- writers' forms ----------------------------------------------------------------------------


def test_a_writer_edits_the_description_moves_an_alias_and_sets_a_stage(client, sweep_versions):
    assert client.post("/models/fraud/description/", {"description": "boosted trees"}).status_code == 302
    assert client.post("/models/fraud/aliases/", {"alias": "champion", "version": "3"}).status_code == 302
    response = client.post("/models/fraud/versions/1/stage/", {"stage": "Production", "back_to_version": "1"})
    assert response.status_code == 302 and response["Location"] == "/models/fraud/versions/1/"
    client.post("/models/fraud/aliases/", {"alias": "champion", "delete": "1"})
    client.post("/models/fraud/aliases/", {"alias": "challenger", "version": "1"})

    model = RegisteredModel.objects.get(name="fraud")
    assert model.description == "boosted trees"
    assert list(model.aliases.values_list("alias", "version__version")) == [("challenger", 1)]
    assert ModelVersion.objects.get(registered_model=model, version=1).stage == "Production"


@pytest.mark.parametrize("alias", ["latest", "v2", "bad alias"])
def test_a_bad_alias_from_the_form_is_a_400_and_changes_nothing(client, sweep_versions, alias):
    assert client.post("/models/fraud/aliases/", {"alias": alias, "version": "1"}).status_code == 400
    assert list(RegisteredModel.objects.get(name="fraud").aliases.values_list("alias", flat=True)) == ["champion"]


def test_the_forms_carry_the_csrf_token(sweep_versions):
    from django.test import Client

    csrf_client = Client(enforce_csrf_checks=True)
    page = soup(csrf_client.get("/models/fraud/"))
    forms = page.select("form[method=post]")
    assert forms and all(form.select_one("input[name=csrfmiddlewaretoken]") for form in forms)
    assert csrf_client.post("/models/fraud/description/", {"description": "forged"}).status_code == 403
    assert RegisteredModel.objects.get(name="fraud").description == ""


def test_a_viewer_sees_no_edit_controls_and_cannot_post(client, sweep_versions, settings):
    settings.RUNTREE_AUTH = "required"
    client.force_login(make_user("victor", "viewer"))
    for url in ["/models/fraud/", "/models/fraud/versions/2/"]:
        page = soup(client.get(url))
        assert not page.select("main form[method=post]"), url
        assert not page.select("main select, main textarea")
    assert client.post("/models/fraud/aliases/", {"alias": "champion", "version": "3"}).status_code == 403
    assert ModelVersion.objects.get_by_alias("fraud", "champion").version == 2


def test_a_writer_sees_the_edit_controls(client, sweep_versions, settings):
    settings.RUNTREE_AUTH = "required"
    client.force_login(make_user("wanda", "writer"))
    page = soup(client.get("/models/fraud/"))
    assert page.select("tr[data-version] select[name=stage]")
    assert page.select_one("form.alias-form input[name=alias]")


# --- query counts --------------------------------------------------------------------------------


@pytest.mark.parametrize("count", [2, 40])
def test_the_models_page_costs_the_same_queries_for_2_and_40_versions(client, django_assert_num_queries, count):
    parent, *children = build_tree([1, count])
    for child in children:
        register("fraud", child)
    services.registered_model_create(name="churn")
    # Expect 3 queries: the models with their version counts, their aliases, their latest versions.
    with django_assert_num_queries(3):
        assert client.get("/models/").status_code == 200


@pytest.mark.parametrize("count", [2, 40])
def test_a_models_page_costs_the_same_queries_for_2_and_40_versions(client, django_assert_num_queries, count):
    parent, *children = build_tree([1, count])
    for index, child in enumerate(children):
        LatestMetric.objects.create(run=child, key="rmse", value=index, timestamp=1, step=0)
        version = register("fraud", child)
        services.registered_model_set_alias(model=version.registered_model, alias=f"a{index}", version=version.version)
    # Expect 6 queries: the model, its versions with their runs and sweeps, their aliases, their
    # tags, the runs' metrics, the model's tags.
    with django_assert_num_queries(6):
        assert client.get("/models/fraud/").status_code == 200


def test_the_run_page_lists_every_registration_of_the_run(client):
    run = RunFactory()
    for name in ["fraud", "churn", "ltv"]:
        register(name, run)
    page = soup(client.get(f"/runs/{run.run_id}/"))
    assert len(page.select(".registration")) == 3


def test_a_version_page_costs_four_queries(client, sweep_versions, django_assert_num_queries):
    # Expect 4 queries: the version with its model, run and sweep; its aliases; its tags; the
    # run's metrics.
    with django_assert_num_queries(4):
        assert client.get("/models/fraud/versions/2/").status_code == 200
