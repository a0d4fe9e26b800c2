"""`manage.py import_mlflow` brings a source's registry: models, versions with their numbers,
stages, aliases, descriptions and tags, each version linked to its imported run."""

import uuid
from io import StringIO

import psycopg2
import pytest
from django.conf import settings
from django.core.management import call_command
from mlflow.tracking import MlflowClient

from registry import services
from registry.models import ModelVersion, RegisteredModel

pytestmark = pytest.mark.django_db


@pytest.fixture
def sqlite_source(tmp_path):
    return populate(f"sqlite:///{tmp_path / 'mlflow.db'}")


def populate(uri: str):
    """An MLflow store at `uri` with a run and model 'fraud': v1 and v2 from the run (v1 in
    Production, @champion on v2), v3 deleted, tags and descriptions."""
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
    assert "Registry: 1 registered models (1 new); versions: 2 new, 0 already here; 1 new aliases." in output

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


def test_importing_again_changes_nothing_and_a_new_version_comes_after_the_imported_ones(sqlite_source):
    uri, _ = sqlite_source
    import_mlflow(uri)
    output = import_mlflow(uri)
    assert "versions: 0 new, 2 already here; 0 new aliases." in output
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


def registry_state():
    model = RegisteredModel.objects.get(name="fraud")
    return {
        "description": model.description,
        "tags": dict(model.tags.values_list("key", "value")),
        "aliases": dict(model.aliases.values_list("alias", "version__version")),
        "versions": {
            version.version: (version.stage, version.description, dict(version.tags.values_list("key", "value")))
            for version in model.versions.all()
        },
    }


def test_importing_again_keeps_what_was_edited_here_and_adds_what_is_new(sqlite_source):
    uri, run = sqlite_source
    import_mlflow(uri)
    model = RegisteredModel.objects.get(name="fraud")
    services.registered_model_set_alias(model=model, alias="champion", version=1)
    services.registered_model_update(model=model, description="edited here")
    services.registered_model_set_tag(model=model, key="team", value="platform")
    services.model_version_update(version=model.versions.get(version=2), description="")
    services.model_version_transition_stage(version=model.versions.get(version=1), stage="Archived")
    services.model_version_set_tag(version=model.versions.get(version=2), key="validated", value="no")
    edited = registry_state()
    # Meanwhile in the source: a new version, a new alias, new tags.
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    client.create_model_version("fraud", f"runs:/{run.run_id}/model", run_id=run.run_id)
    client.set_registered_model_alias("fraud", "challenger", "4")
    client.set_registered_model_tag("fraud", "owner", "ann")
    client.set_model_version_tag("fraud", "2", "reviewed", "yes")

    output = import_mlflow(uri)

    assert "versions: 1 new, 2 already here; 1 new aliases." in output
    # @champion still loads the version it was pointed at here.
    assert ModelVersion.objects.get_by_alias("fraud", "champion").version == 1
    assert registry_state() == {
        "description": "edited here",
        "tags": {"team": "platform", "owner": "ann"},
        "aliases": {"champion": 1, "challenger": 4},
        "versions": {
            1: edited["versions"][1],
            2: ("None", "", {"validated": "no", "reviewed": "yes"}),
            4: ("None", "", {}),
        },
    }


# --- a PostgreSQL source ----------------------------------------------------------------------


def postgresql_server() -> str:
    """The PostgreSQL server the suite may create databases on: the test database's own on a
    PostgreSQL run, else the local one (CI has it for either run)."""
    database = settings.DATABASES["default"]
    if database["ENGINE"].endswith("postgresql"):
        password = f":{database['PASSWORD']}" if database["PASSWORD"] else ""
        return f"{database['USER']}{password}@{database['HOST'] or '127.0.0.1'}:{database['PORT'] or 5432}"
    return "postgres@127.0.0.1:5432"


@pytest.fixture
def postgresql_source():
    """An MLflow store in a PostgreSQL database of its own (made by mlflow, as `mlflow server
    --backend-store-uri postgresql://...` makes it), dropped afterwards; yields its server and name."""
    server, name = postgresql_server(), f"runtree_test_mlflow_source_{uuid.uuid4().hex[:8]}"
    admin = psycopg2.connect(f"postgresql://{server}/postgres")
    admin.autocommit = True
    with admin.cursor() as cursor:
        cursor.execute(f"CREATE DATABASE {name}")
    try:
        # mlflow's own spelling, so the store is made whatever Runtree reads the source with.
        populate(f"postgresql+psycopg2://{server}/{name}")
        yield server, name
    finally:
        # mlflow's engine keeps its connections pooled: FORCE closes them.
        with admin.cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.close()


@pytest.mark.parametrize("scheme", ["postgresql", "postgres"])
def test_a_postgresql_source_brings_its_registry_too(postgresql_source, scheme):
    server, name = postgresql_source
    output = import_mlflow(f"{scheme}://{server}/{name}")
    assert "runs: 1 new" in output
    assert "Registry: 1 registered models (1 new); versions: 2 new, 0 already here; 1 new aliases." in output
    assert ModelVersion.objects.get_by_alias("fraud", "champion").version == 2
