"""The registry through the real mlflow mlflow_client (MlflowClient) against a live server: every RPC,
and each refusal with MLflow's error code and nothing stored."""

import pytest
from mlflow.exceptions import MlflowException

from registry import services
from registry.models import ModelVersion, RegisteredModel


def refusal(call, *args, **kwargs) -> MlflowException:
    with pytest.raises(MlflowException) as raised:
        call(*args, **kwargs)
    return raised.value


def source_of(run_info) -> str:
    return f"runs:/{run_info.run_id}/model"


def test_a_registered_model_is_created_read_described_tagged_and_renamed(mlflow_client):
    created = mlflow_client.create_registered_model("fraud", tags={"team": "risk"}, description="first try")
    assert (created.name, created.description, created.tags) == ("fraud", "first try", {"team": "risk"})

    mlflow_client.update_registered_model("fraud", description="gradient boosting, v2 features")
    mlflow_client.set_registered_model_tag("fraud", "owner", "ana")
    mlflow_client.delete_registered_model_tag("fraud", "team")
    mlflow_client.rename_registered_model("fraud", "fraud-detector")

    model = mlflow_client.get_registered_model("fraud-detector")
    assert model.description == "gradient boosting, v2 features"
    assert model.tags == {"owner": "ana"}
    assert model.creation_timestamp <= model.last_updated_timestamp
    assert refusal(mlflow_client.get_registered_model, "fraud").error_code == "RESOURCE_DOES_NOT_EXIST"


def test_versions_are_ready_at_once_and_numbered_without_reuse(mlflow_client, logged_run):
    mlflow_client.create_registered_model("fraud")
    first = mlflow_client.create_model_version("fraud", source_of(logged_run), run_id=logged_run.run_id)
    second = mlflow_client.create_model_version("fraud", source_of(logged_run), run_id=logged_run.run_id)
    assert (first.version, second.version) == ("1", "2")
    assert first.status == "READY"
    assert first.run_id == logged_run.run_id
    assert first.current_stage == "None"

    mlflow_client.delete_model_version("fraud", "2")
    third = mlflow_client.create_model_version("fraud", source_of(logged_run), run_id=logged_run.run_id)
    assert third.version == "3"  # 2 is never given again
    assert [v.version for v in mlflow_client.search_model_versions("name = 'fraud'")] == ["3", "1"]
    assert refusal(mlflow_client.get_model_version, "fraud", "2").error_code == "RESOURCE_DOES_NOT_EXIST"


def test_a_version_has_a_description_tags_and_a_download_uri_in_its_runs_artifacts(mlflow_client, logged_run):
    mlflow_client.create_registered_model("fraud")
    mlflow_client.create_model_version(
        "fraud", source_of(logged_run), run_id=logged_run.run_id, tags={"data": "2026-11"}, description="baseline"
    )
    mlflow_client.update_model_version("fraud", "1", description="baseline, 5-fold")
    mlflow_client.set_model_version_tag("fraud", "1", "validated", "yes")
    mlflow_client.delete_model_version_tag("fraud", "1", "data")

    version = mlflow_client.get_model_version("fraud", "1")
    assert version.description == "baseline, 5-fold"
    assert version.tags == {"validated": "yes"}
    assert mlflow_client.get_model_version_download_uri("fraud", "1") == f"{logged_run.artifact_uri}/model"


def test_aliases_point_at_versions_and_move(mlflow_client, logged_run):
    mlflow_client.create_registered_model("fraud")
    for _ in range(2):
        mlflow_client.create_model_version("fraud", source_of(logged_run), run_id=logged_run.run_id)

    mlflow_client.set_registered_model_alias("fraud", "champion", "1")
    assert mlflow_client.get_model_version_by_alias("fraud", "champion").version == "1"
    assert mlflow_client.get_model_version("fraud", "1").aliases == ["champion"]

    mlflow_client.set_registered_model_alias("fraud", "champion", "2")
    assert mlflow_client.get_model_version_by_alias("fraud", "champion").version == "2"
    assert mlflow_client.get_registered_model("fraud").aliases == {"champion": "2"}
    assert mlflow_client.get_model_version_by_alias("fraud", "latest").version == "2"

    mlflow_client.delete_registered_model_alias("fraud", "champion")
    assert mlflow_client.get_registered_model("fraud").aliases == {}
    assert (
        refusal(mlflow_client.get_model_version_by_alias, "fraud", "champion").error_code == "INVALID_PARAMETER_VALUE"
    )


def test_deleting_a_version_deletes_its_aliases(mlflow_client, logged_run):
    mlflow_client.create_registered_model("fraud")
    mlflow_client.create_model_version("fraud", source_of(logged_run), run_id=logged_run.run_id)
    mlflow_client.set_registered_model_alias("fraud", "champion", "1")
    mlflow_client.delete_model_version("fraud", "1")
    assert mlflow_client.get_registered_model("fraud").aliases == {}


def test_stages_and_latest_versions(mlflow_client, logged_run):
    mlflow_client.create_registered_model("fraud")
    for _ in range(3):
        mlflow_client.create_model_version("fraud", source_of(logged_run), run_id=logged_run.run_id)
    mlflow_client.transition_model_version_stage("fraud", "1", "Production")
    mlflow_client.transition_model_version_stage("fraud", "2", "staging")  # any case, as in MLflow
    moved = mlflow_client.transition_model_version_stage("fraud", "3", "Production", archive_existing_versions=True)
    assert moved.current_stage == "Production"

    stages = {v.version: v.current_stage for v in mlflow_client.search_model_versions("name = 'fraud'")}
    assert stages == {"1": "Archived", "2": "Staging", "3": "Production"}
    latest = mlflow_client.get_latest_versions("fraud", stages=["Production", "Staging"])
    assert sorted((v.current_stage, v.version) for v in latest) == [("Production", "3"), ("Staging", "2")]
    model = mlflow_client.get_registered_model("fraud")
    assert sorted(v.version for v in model.latest_versions) == ["1", "2", "3"]


def test_what_a_version_was_registered_without_reads_as_an_empty_string(mlflow_client, logged_run):
    """mlflow's server stores a description, run id and run link the request leaves out as "",
    and sends them: `version.description.strip()` works on a version nobody described."""
    mlflow_client.create_registered_model("fraud")
    created = mlflow_client.create_model_version("fraud", source_of(logged_run), run_id=logged_run.run_id)
    mlflow_client.transition_model_version_stage("fraud", "1", "Production")
    without_run = mlflow_client.create_model_version("fraud", "s3://bucket/fraud/model")

    read = [
        created,
        without_run,
        mlflow_client.get_model_version("fraud", "1"),
        *mlflow_client.search_model_versions("name = 'fraud'"),
        *mlflow_client.get_latest_versions("fraud"),
        *mlflow_client.get_registered_model("fraud").latest_versions,
        *mlflow_client.search_registered_models()[0].latest_versions,
    ]
    assert [version.description for version in read] == [""] * len(read)
    assert [version.run_link for version in read] == [""] * len(read)
    assert (without_run.run_id, mlflow_client.get_model_version("fraud", "2").run_id) == ("", "")
    # A registered model's description reads "" too (the client fills it in when it is left out).
    assert mlflow_client.get_registered_model("fraud").description == ""
    assert mlflow_client.search_registered_models()[0].description == ""


# (stage each version is moved to, in order) -> latest_versions as mlflow server 3.17.2 (SQLite,
# its default store) lists them: get_registered_model and get_latest_versions put each stage
# where its oldest version comes; search_registered_models lists the stages by name.
LATEST_VERSIONS_ORDER = [
    (
        ["Production", "Staging", "None"],
        [("1", "Production"), ("2", "Staging"), ("3", "None")],
        [("3", "None"), ("1", "Production"), ("2", "Staging")],
    ),
    (
        ["None", "Production", "None"],
        [("3", "None"), ("2", "Production")],
        [("3", "None"), ("2", "Production")],
    ),
    (
        ["Archived", "None", "Staging", "Production", "Archived", "None"],
        [("5", "Archived"), ("6", "None"), ("3", "Staging"), ("4", "Production")],
        [("5", "Archived"), ("6", "None"), ("4", "Production"), ("3", "Staging")],
    ),
]


@pytest.mark.parametrize(("stages", "as_got", "as_searched"), LATEST_VERSIONS_ORDER)
def test_latest_versions_come_in_mlflows_order(mlflow_client, logged_run, stages, as_got, as_searched):
    mlflow_client.create_registered_model("fraud")
    for _ in stages:
        mlflow_client.create_model_version("fraud", source_of(logged_run), run_id=logged_run.run_id)
    for number, stage in enumerate(stages, start=1):
        if stage != "None":
            mlflow_client.transition_model_version_stage("fraud", str(number), stage)

    def listed(versions):
        return [(version.version, version.current_stage) for version in versions]

    assert listed(mlflow_client.get_registered_model("fraud").latest_versions) == as_got
    assert listed(mlflow_client.get_latest_versions("fraud")) == as_got
    assert listed(mlflow_client.search_registered_models()[0].latest_versions) == as_searched


def test_search_registered_models_filters_orders_and_pages(mlflow_client):
    for name in ["fraud-a", "Fraud-b", "churn", "fraud-c"]:
        mlflow_client.create_registered_model(name)
    mlflow_client.set_registered_model_tag("churn", "team", "growth")

    assert [m.name for m in mlflow_client.search_registered_models("name LIKE 'fraud%'")] == ["fraud-a", "fraud-c"]
    assert [m.name for m in mlflow_client.search_registered_models("name ILIKE 'fraud%'")] == [
        "Fraud-b",
        "fraud-a",
        "fraud-c",
    ]
    assert [m.name for m in mlflow_client.search_registered_models("name = 'churn'")] == ["churn"]
    assert [m.name for m in mlflow_client.search_registered_models("tags.team = 'growth'")] == ["churn"]
    assert [m.name for m in mlflow_client.search_registered_models(order_by=["name DESC"])][:2] == [
        "fraud-c",
        "fraud-a",
    ]

    first = mlflow_client.search_registered_models(max_results=3)
    assert len(first) == 3 and first.token
    rest = mlflow_client.search_registered_models(max_results=3, page_token=first.token)
    assert [m.name for m in rest] == ["fraud-c"] and not rest.token


def test_search_model_versions_by_run_id_and_source(mlflow_client, logged_run, tracking_uri):
    mlflow_client.create_registered_model("fraud")
    mlflow_client.create_registered_model("churn")
    mlflow_client.create_model_version("fraud", source_of(logged_run), run_id=logged_run.run_id)
    mlflow_client.create_model_version("churn", f"{logged_run.artifact_uri}/other", run_id=logged_run.run_id)

    by_run = mlflow_client.search_model_versions(f"run_id = '{logged_run.run_id}'")
    assert sorted(v.name for v in by_run) == ["churn", "fraud"]
    by_source = mlflow_client.search_model_versions(f"source_path = '{logged_run.artifact_uri}/other'")
    assert [v.name for v in by_source] == ["churn"]
    by_name = mlflow_client.search_model_versions("name LIKE 'fr%' AND version_number >= 1")
    assert [(v.name, v.version) for v in by_name] == [("fraud", "1")]


def test_a_tag_key_may_be_backquoted_or_in_quotes_as_in_mlflow(mlflow_client, logged_run):
    mlflow_client.create_registered_model("churn", tags={"team": "risk"})
    mlflow_client.create_registered_model("fraud", tags={"team": "growth"})
    mlflow_client.create_model_version("churn", source_of(logged_run), run_id=logged_run.run_id, tags={"env": "prod"})
    mlflow_client.create_model_version("fraud", source_of(logged_run), run_id=logged_run.run_id, tags={"env": "prod"})

    for key in ['"team"', "'team'", "`team`", "team"]:
        assert [m.name for m in mlflow_client.search_registered_models(f"tags.{key} = 'risk'")] == ["churn"]
    found = mlflow_client.search_model_versions("tags.\"env\" = 'prod' AND name = 'churn'")
    assert [(v.name, v.version) for v in found] == [("churn", "1")]


def test_an_and_at_the_end_joins_nothing_as_in_mlflow(mlflow_client, logged_run):
    """The client appends `AND tag.`mlflow.prompt.is_prompt` != 'true'` to a model search, so
    the server reads `... AND AND ...`; MLflow's skips every AND."""
    mlflow_client.create_registered_model("churn")
    mlflow_client.create_registered_model("fraud")
    mlflow_client.create_model_version("churn", source_of(logged_run), run_id=logged_run.run_id)
    assert [m.name for m in mlflow_client.search_registered_models("name LIKE 'churn%' AND")] == ["churn"]
    assert [v.name for v in mlflow_client.search_model_versions("name LIKE 'churn%' AND")] == ["churn"]


def test_prompts_are_left_out_unless_the_filter_asks_for_them(mlflow_client):
    mlflow_client.create_registered_model("churn")
    # As mlflow.genai.register_prompt stores one (the client refuses the tag on a model).
    services.registered_model_create(name="greeting", tags=[services.Tag("mlflow.prompt.is_prompt", "true")])

    def names(filter_string=None):
        return [m.name for m in mlflow_client.search_registered_models(filter_string)]

    assert names() == names("tags.`mlflow.prompt.is_prompt` = 'false'") == ["churn"]
    assert names("tags.`mlflow.prompt.is_prompt` = 'true'") == names("tags.\"mlflow.prompt.is_prompt\" = 'true'")
    assert names("tags.`mlflow.prompt.is_prompt` = 'true'") == ["greeting"]


def test_a_version_number_may_be_quoted_as_in_mlflow(mlflow_client, logged_run):
    mlflow_client.create_registered_model("churn")
    for _ in range(2):
        mlflow_client.create_model_version("churn", source_of(logged_run), run_id=logged_run.run_id)
    assert [v.version for v in mlflow_client.search_model_versions("version_number = '1'")] == ["1"]
    assert [v.version for v in mlflow_client.search_model_versions("version_number > '1'")] == ["2"]
    error = refusal(mlflow_client.search_model_versions, "version_number = '1.5'")
    assert error.error_code == "INVALID_PARAMETER_VALUE"
    assert "expected an integer to compare version_number with but found '1.5'" in error.message


def test_deleting_a_model_deletes_its_versions(mlflow_client, logged_run):
    mlflow_client.create_registered_model("fraud")
    mlflow_client.create_model_version("fraud", source_of(logged_run), run_id=logged_run.run_id)
    mlflow_client.delete_registered_model("fraud")
    assert (RegisteredModel.objects.count(), ModelVersion.objects.count()) == (0, 0)
    assert refusal(mlflow_client.delete_registered_model, "fraud").error_code == "RESOURCE_DOES_NOT_EXIST"


# --- refusals ----------------------------------------------------------------------------------


def test_a_name_taken_is_resource_already_exists(mlflow_client):
    mlflow_client.create_registered_model("fraud")
    mlflow_client.create_registered_model("churn")
    assert refusal(mlflow_client.create_registered_model, "fraud").error_code == "RESOURCE_ALREADY_EXISTS"
    assert refusal(mlflow_client.rename_registered_model, "churn", "fraud").error_code == "RESOURCE_ALREADY_EXISTS"
    assert sorted(RegisteredModel.objects.values_list("name", flat=True)) == ["churn", "fraud"]


@pytest.mark.parametrize("name", ["", "   ", "a/b", "a:b", "..", "./x"])
def test_a_bad_name_is_invalid_parameter_value(mlflow_client, name):
    assert refusal(mlflow_client.create_registered_model, name).error_code == "INVALID_PARAMETER_VALUE"
    assert RegisteredModel.objects.count() == 0


@pytest.mark.parametrize("alias", ["latest", "LATEST", "v1", "V12", "has space", "dot.ted"])
def test_a_reserved_or_malformed_alias_is_refused(mlflow_client, logged_run, alias):
    mlflow_client.create_registered_model("fraud")
    mlflow_client.create_model_version("fraud", source_of(logged_run), run_id=logged_run.run_id)
    assert (
        refusal(mlflow_client.set_registered_model_alias, "fraud", alias, "1").error_code == "INVALID_PARAMETER_VALUE"
    )
    assert mlflow_client.get_registered_model("fraud").aliases == {}


def test_an_alias_to_a_missing_version_or_model_is_refused(mlflow_client, logged_run):
    mlflow_client.create_registered_model("fraud")
    assert (
        refusal(mlflow_client.set_registered_model_alias, "fraud", "champion", "1").error_code
        == "RESOURCE_DOES_NOT_EXIST"
    )
    assert (
        refusal(mlflow_client.set_registered_model_alias, "nope", "champion", "1").error_code
        == "RESOURCE_DOES_NOT_EXIST"
    )
    assert refusal(mlflow_client.get_model_version_by_alias, "nope", "champion").error_code == "RESOURCE_DOES_NOT_EXIST"


@pytest.mark.parametrize("version", ["x", "1.5"])
def test_a_malformed_version_is_invalid_parameter_value(mlflow_client, version):
    mlflow_client.create_registered_model("fraud")
    assert refusal(mlflow_client.get_model_version, "fraud", version).error_code == "INVALID_PARAMETER_VALUE"


@pytest.mark.parametrize("version", ["0", "-1"])
def test_a_version_below_one_does_not_exist_as_in_mlflow(mlflow_client, version):
    mlflow_client.create_registered_model("fraud")
    error = refusal(mlflow_client.get_model_version, "fraud", version)
    assert error.error_code == "RESOURCE_DOES_NOT_EXIST"
    assert f"Model Version (name=fraud, version={version}) not found" in error.message


def test_a_version_of_a_missing_model_is_refused(mlflow_client, logged_run):
    error = refusal(mlflow_client.create_model_version, "nope", source_of(logged_run), run_id=logged_run.run_id)
    assert error.error_code == "RESOURCE_DOES_NOT_EXIST"
    assert ModelVersion.objects.count() == 0


@pytest.mark.parametrize(
    "source",
    [
        "/tmp/model",
        "file:///tmp/model",
        "runs:/0123456789abcdef0123456789abcdef/model",  # not the run given
        "mlflow-artifacts:/0/elsewhere/artifacts/model",  # outside the run's folder
        "mlflow-artifacts:/0/{run_id}/artifacts/../../other/artifacts",
        "mlflow-artifacts:/0/{run_id}/artifacts/%2e%2e/%2e%2e/other",
    ],
)
def test_a_source_outside_the_run_is_refused(mlflow_client, logged_run, source):
    mlflow_client.create_registered_model("fraud")
    source = source.format(run_id=logged_run.run_id)
    error = refusal(mlflow_client.create_model_version, "fraud", source, run_id=logged_run.run_id)
    assert error.error_code == "INVALID_PARAMETER_VALUE"
    assert ModelVersion.objects.count() == 0


def test_a_version_from_an_unknown_run_is_refused(mlflow_client):
    mlflow_client.create_registered_model("fraud")
    run_id = "0123456789abcdef0123456789abcdef"
    error = refusal(mlflow_client.create_model_version, "fraud", f"runs:/{run_id}/model", run_id=run_id)
    assert error.error_code == "INVALID_PARAMETER_VALUE"


def test_a_bad_stage_or_archiving_outside_active_stages_is_refused(mlflow_client, logged_run):
    mlflow_client.create_registered_model("fraud")
    mlflow_client.create_model_version("fraud", source_of(logged_run), run_id=logged_run.run_id)
    assert (
        refusal(mlflow_client.transition_model_version_stage, "fraud", "1", "Live").error_code
        == "INVALID_PARAMETER_VALUE"
    )
    error = refusal(
        mlflow_client.transition_model_version_stage, "fraud", "1", "Archived", archive_existing_versions=True
    )
    assert error.error_code == "INVALID_PARAMETER_VALUE"
    assert mlflow_client.get_model_version("fraud", "1").current_stage == "None"


@pytest.mark.parametrize(
    "filter_string", ["name = ", "nme = 'x'", "name > 'x'", "name = 'x' OR name = 'y'", "tags.t IN ('a')"]
)
def test_a_bad_search_filter_is_invalid_parameter_value(mlflow_client, filter_string):
    assert refusal(mlflow_client.search_registered_models, filter_string).error_code == "INVALID_PARAMETER_VALUE"


def test_a_bad_order_by_or_page_size_is_refused(mlflow_client):
    assert refusal(mlflow_client.search_registered_models, order_by=["size"]).error_code == "INVALID_PARAMETER_VALUE"
    assert refusal(mlflow_client.search_registered_models, max_results=1001).error_code == "INVALID_PARAMETER_VALUE"
    assert refusal(mlflow_client.search_model_versions, "version_number = 'x'").error_code == "INVALID_PARAMETER_VALUE"
