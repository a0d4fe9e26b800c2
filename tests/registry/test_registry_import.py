"""`manage.py import_mlflow` brings a source's registry: models, versions with their numbers,
stages, aliases, descriptions and tags, each version linked to its imported run."""

from io import StringIO

import pytest
from django.core.management import call_command
from mlflow.tracking import MlflowClient

from registry.models import ModelVersion, RegisteredModel

pytestmark = pytest.mark.django_db


@pytest.fixture
def sqlite_source(tmp_path):
    """An MLflow SQLite store with a run and model 'fraud': v1 and v2 from the run (v1 in
    Production, @champion on v2), v3 deleted, tags and descriptions."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    experiment_id = client.create_experiment("sweep")
    run = client.create_run(experiment_id)
    client.create_registered_model("fraud", tags={"team": "risk"}, description="boosted trees")
    for _ in range(3):
        client.create_model_version("fraud", f"runs:/{run.info.run_id}/model", run_id=run.info.run_id)
    client.delete_model_version("fraud", "3")
    client.transition_model_version_stage("fraud", "1", "Production")
    client.set_registered_model_alias("fraud", "champion", "2")
    client.set_model_version_tag("fraud", "2", "validated", "yes")
    client.update_model_version("fraud", "2", description="5-fold")
    return uri, run.info


def import_mlflow(source: str) -> str:
    out = StringIO()
    call_command("import_mlflow", source, stdout=out, verbosity=0)
    return out.getvalue()


def test_the_registry_comes_with_the_runs(sqlite_source):
    uri, run = sqlite_source
    output = import_mlflow(uri)
    assert "Registry: 1 registered models (1 new); versions: 2 new, 0 updated; 1 aliases." in output

    model = RegisteredModel.objects.get(name="fraud")
    assert model.description == "boosted trees"
    assert dict(model.tags.values_list("key", "value")) == {"team": "risk"}
    versions = {v.version: v for v in ModelVersion.objects.filter(registered_model=model)}
    assert sorted(versions) == [1, 2]
    assert versions[1].stage == "Production"
    assert (versions[2].description, dict(versions[2].tags.values_list("key", "value"))) == (
        "5-fold",
        {"validated": "yes"},
    )
    assert versions[2].source_run.run_id == run.run_id
    assert versions[2].storage_location == f"{versions[2].source_run.artifact_uri}/model"
    assert ModelVersion.objects.get_by_alias("fraud", "champion").version == 2


def test_importing_again_updates_and_a_new_version_comes_after_the_imported_ones(sqlite_source):
    from registry import services

    uri, _ = sqlite_source
    import_mlflow(uri)
    output = import_mlflow(uri)
    assert "versions: 0 new, 2 updated" in output
    model = RegisteredModel.objects.get(name="fraud")
    source = services.resolve_source(source="s3://bucket/model", run_id="")
    assert services.model_version_create(model=model, source=source).version == 3


def test_a_version_registered_from_a_logged_model_finds_it_here(tmp_path, monkeypatch):
    from tracker.models import LoggedModel

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)  # mlflow's registry resolves models:/ with the default client
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    run = client.create_run(client.create_experiment("sweep"))
    logged = client.create_logged_model(run.info.experiment_id, name="net", source_run_id=run.info.run_id)
    client.create_registered_model("fraud")
    client.create_model_version("fraud", f"models:/{logged.model_id}", model_id=logged.model_id)
    import_mlflow(uri)
    version = ModelVersion.objects.get()
    assert version.source == f"models:/{logged.model_id}"
    # Resolved through the imported logged model, whose id was kept.
    assert version.storage_location == LoggedModel.objects.get(model_id=logged.model_id).artifact_location
    assert version.storage_location == logged.artifact_location
    assert version.source_run.run_id == run.info.run_id
    # MLflow's registry store keeps no model id; the source names it, and the version links to its model.
    assert client.get_model_version("fraud", "1").model_id is None
    assert version.model_id == logged.model_id
