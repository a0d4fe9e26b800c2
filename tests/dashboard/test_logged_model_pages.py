"""MLflow 3's logged models on their own pages: an experiment's models with their latest
metrics as sortable columns, and one model's page (what it is, how to load it, its signature,
metrics per dataset, params, tags, registered versions and files)."""

import io
import json
import re

import pytest

from registry import services as registry_services
from registry.models import RegisteredModel
from tests.dashboard.test_run_page_inputs import MLMODEL, rows
from tracker import services
from tracker.services import KeyValue, artifacts, logged_models

pytestmark = pytest.mark.django_db

SIGNED_MLMODEL = MLMODEL + (
    b"mlflow_version: 3.17.2\n"
    b"model_size_bytes: 11264\n"
    b"saved_input_example_info:\n  artifact_path: input_example.json\n  type: dataframe\n"
    b"signature:\n"
    b'  inputs: \'[{"type": "double", "name": "sepal width", "required": true}, '
    b'{"type": "string", "name": "species", "required": false}]\'\n'
    b'  outputs: \'[{"type": "long", "required": true}]\'\n'
    b'  params: \'[{"name": "threshold", "type": "double", "default": 0.5, "shape": null}]\'\n'
)


@pytest.fixture
def run():
    experiment = services.experiment_create(name="models page")
    parent = services.run_create(experiment=experiment, name="sweep")
    return services.run_create(
        experiment=experiment, name="trial-1", tags=[KeyValue("mlflow.parentRunId", parent.run_id)]
    )


def logged_model(run, name="model", *, mlmodel=SIGNED_MLMODEL, step=3):
    model = logged_models.logged_model_create(experiment=run.experiment, name=name, source_run=run)
    logged_models.run_log_outputs(run=run, models=[logged_models.ModelOutput(model.model_id, step=step)])
    folder = artifacts.logged_model_artifact_path(model=model, path=None)
    for file_name, content in (("MLmodel", mlmodel), ("requirements.txt", b"scikit-learn==1.9.1\n")):
        artifacts.artifact_put(path=f"{folder}/{file_name}", body=io.BytesIO(content), content_length=len(content))
    logged_models.logged_model_finalize(model=model, status="READY")
    return model


def log_for(model, run, key, value, *, dataset=None, at=1_000, step=0):
    point = services.MetricInput(
        key,
        value,
        at,
        step,
        model_id=model.model_id,
        dataset_name=dataset,
        dataset_digest="ab12cd34ef" if dataset else None,
    )
    services.run_log_batch(run=run, metrics=[point])


def page_url(model):
    return f"/experiments/{model.experiment_id}/models/{model.model_id}/"


def text(html: str) -> str:
    return " ".join(re.sub(r"<[^>]+>", " ", html).split())


def test_the_model_page_says_what_it_is_how_to_load_it_and_what_it_takes(client, run):
    model = logged_model(run)
    logged_models.logged_model_log_params(model=model, params=[KeyValue("alpha", "0.5")])
    logged_models.logged_model_set_tags(model=model, tags=[KeyValue("team", "vision"), KeyValue("mlflow.user", "ana")])

    response = client.get(page_url(model))

    assert response.status_code == 200
    page = text(response.content.decode())
    assert "Source run trial-1 in sweep at step 3" in page
    assert "Flavor sklearn 1.9.1" in page and "Size 11.0 KB" in page and "Saved by MLflow 3.17.2" in page
    assert f'mlflow.pyfunc.load_model("models:/{model.model_id}")' in response.content.decode().replace("&quot;", '"')
    assert "Inputs sepal width: double species: string (optional) Outputs long Params threshold: double = 0.5" in page
    assert "an input example is saved with it" in page
    assert "alpha 0.5" in page and "team vision" in page
    assert "1 system tag" in page  # mlflow.user, folded away
    assert f'href="/runs/{run.run_id}/"' in response.content.decode()


def test_its_metrics_are_the_latest_per_metric_and_dataset(client, run):
    model = logged_model(run)
    log_for(model, run, "accuracy", 0.70, dataset="train", at=1_000, step=1)
    log_for(model, run, "accuracy", 0.90, dataset="train", at=2_000, step=2)
    log_for(model, run, "accuracy", 0.85, dataset="test", at=2_001, step=2)
    log_for(model, run, "loss", 0.3, at=2_002, step=2)

    shown = rows(client.get(page_url(model)).content.decode(), "data-metric")

    # One row per key: the table's rows are keyed by metric, so the last dataset of a key wins here.
    page = client.get(page_url(model)).context["page"]
    assert [(m.key, m.dataset_name, m.value, m.step, m.points) for m in page.metrics] == [
        ("accuracy", "test", 0.85, 2, 1),
        ("accuracy", "train", 0.90, 2, 2),
        ("loss", None, 0.3, 2, 1),
    ]
    assert shown["loss"] == "loss — 0.3000 2"


def test_a_model_of_another_experiment_a_deleted_or_an_unknown_one_is_not_found(client, run):
    model = logged_model(run)
    other = services.experiment_create(name="elsewhere")
    assert client.get(f"/experiments/{other.pk}/models/{model.model_id}/").status_code == 404
    assert client.get(f"/experiments/{model.experiment_id}/models/m-{'0' * 32}/").status_code == 404
    logged_models.logged_model_delete(model=model)
    assert client.get(page_url(model)).status_code == 404
    assert client.get(f"{page_url(model)}artifacts/?path=").status_code == 404


def test_its_files_preview_as_text_and_a_path_cannot_leave_its_folder(client, run):
    model = logged_model(run)
    services.run_log_batch(run=run, params=[KeyValue("secret", "x")])
    run_folder = artifacts.run_artifact_path(run=run, path=None)
    artifacts.artifact_put(path=f"{run_folder}/secret.txt", body=io.BytesIO(b"run only"), content_length=8)

    preview = client.get(f"{page_url(model)}artifacts/preview/?path=requirements.txt")
    assert preview.status_code == 200 and "scikit-learn==1.9.1" in preview.content.decode()
    listing = client.get(page_url(model)).content.decode()
    folder = artifacts.logged_model_artifact_path(model=model, path=None)
    assert f'href="/api/2.0/mlflow-artifacts/artifacts/{folder}/requirements.txt"' in listing

    escaped = client.get(f"{page_url(model)}artifacts/preview/?path=../../../{run.run_id}/artifacts/secret.txt")
    assert "run only" not in escaped.content.decode()
    assert "run only" not in client.get(f"{page_url(model)}artifacts/?path=../..").content.decode()
    assert (
        client.get(f"{page_url(model)}artifacts/inline/?path=requirements.txt").status_code == 404
    )  # text: download it


def test_the_page_shows_the_versions_registered_from_it_and_the_version_links_back(client, run):
    model = logged_model(run)
    registered = registry_services.registered_model_create(name="iris-classifier")
    source = registry_services.resolve_source(source=f"models:/{model.model_id}", model_id=model.model_id)
    registry_services.model_version_create(model=registered, source=source)
    registry_services.registered_model_set_alias(model=registered, alias="champion", version=1)

    page = client.get(page_url(model)).content.decode()
    version_page = client.get("/models/iris-classifier/versions/1/").content.decode()

    assert "registered as iris-classifier v1 @champion" in text(page)
    assert 'href="/models/iris-classifier/versions/1/"' in page
    assert f'href="{page_url(model)}"' in version_page


def test_names_tags_and_params_are_escaped(client, run):
    model = logged_model(run, name="<b onmouseover=alert(1)>x<b>")
    logged_models.logged_model_log_params(model=model, params=[KeyValue("p", "<img src=x onerror=alert(2)>")])
    log_for(model, run, "acc", 0.5, dataset="<i>set</i>")  # keys are checked; dataset names are not

    for url in (page_url(model), f"/experiments/{model.experiment_id}/models/", f"/runs/{run.run_id}/"):
        html = client.get(url).content.decode()
        assert "<b onmouseover" not in html and "<img src=x" not in html and "<i>set" not in html
        assert "&lt;b onmouseover=alert(1)&gt;x&lt;b&gt;" in html


def list_url(run, **query):
    encoded = "&".join(f"{key}={value}" for key, value in query.items())
    return f"/experiments/{run.experiment_id}/models/?{encoded}"


def listed(client, url) -> list[str]:
    response = client.get(url)
    return [row.model.name for row in response.context["listing"].rows]


def test_the_list_shows_each_models_latest_metrics_per_dataset_as_columns(client, run):
    models = [logged_model(run, name) for name in ("a", "b", "c")]
    for model, (train, test) in zip(models, ((0.9, 0.7), (0.8, 0.75), (0.95, 0.6)), strict=True):
        log_for(model, run, "accuracy", train, dataset="train", at=1_000)
        log_for(model, run, "accuracy", test, dataset="test", at=1_001)

    response = client.get(list_url(run))
    html = response.content.decode()

    headers = re.findall(r'<th scope="col" class="num value-col"[^>]*title="([^"]+)"', html)
    assert headers == ["accuracy on test", "accuracy on train"]
    shown = rows(html, "data-model-id")
    assert " ready " in shown[models[0].model_id]
    assert "0.7000 0.9000" in shown[models[0].model_id]  # test, then train
    assert listed(client, list_url(run)) == ["c", "b", "a"]  # newest first


def test_the_list_sorts_by_a_metric_on_its_dataset_best_first(client, run):
    models = [logged_model(run, name) for name in ("a", "b", "c")]
    for model, (train, test) in zip(models, ((0.9, 0.7), (0.8, 0.75), (0.95, 0.6)), strict=True):
        log_for(model, run, "accuracy", train, dataset="train", at=1_000)
        log_for(model, run, "accuracy", test, dataset="test", at=1_001)
        log_for(model, run, "loss", 1 - test, at=1_002)

    assert listed(client, list_url(run, sort="-metrics.accuracy", on="test")) == ["b", "a", "c"]
    assert listed(client, list_url(run, sort="-metrics.accuracy", on="train")) == ["c", "a", "b"]
    assert listed(client, list_url(run, sort="metrics.accuracy", on="test")) == ["c", "a", "b"]
    assert listed(client, list_url(run, sort="name")) == ["a", "b", "c"]
    html = client.get(list_url(run)).content.decode()
    # A first click sorts best first: accuracy (inferred goal max) descending, loss ascending.
    assert 'href="?sort=-metrics.accuracy&amp;on=test"' in html
    assert 'href="?sort=metrics.loss"' in html


def test_a_filter_narrows_the_list_and_a_bad_one_is_a_400_that_says_why(client, run):
    good, poor = logged_model(run, "good"), logged_model(run, "poor")
    log_for(good, run, "accuracy", 0.95)
    log_for(poor, run, "accuracy", 0.5)

    assert listed(client, list_url(run, filter="metrics.accuracy > 0.9")) == ["good"]
    assert listed(client, list_url(run, filter="name LIKE 'po%'")) == ["poor"]
    bad = client.get(list_url(run, filter="metrics.accuracy >>> 1"))
    assert bad.status_code == 400
    assert "This filter does not parse" in bad.content.decode()


def test_the_list_pages_and_costs_the_same_queries_for_5_models_or_60(client, run, django_assert_num_queries):
    for i in range(5):
        log_for(logged_model(run, f"m{i}"), run, "accuracy", i / 10)
    with django_assert_num_queries(MODEL_LIST_QUERIES):
        client.get(list_url(run))
    for i in range(5, 60):
        model = logged_models.logged_model_create(experiment=run.experiment, name=f"m{i}", source_run=run)
        log_for(model, run, "accuracy", i / 100)
    with django_assert_num_queries(MODEL_LIST_QUERIES):
        response = client.get(list_url(run))
    assert len(response.context["listing"].rows) == 50 and response.context["listing"].pages == 2
    assert len(client.get(list_url(run, page=2)).context["listing"].rows) == 10
    assert "page 2 of 2" in client.get(list_url(run, page=9)).content.decode()  # past the end: the last page


# The experiment and its tags, the page of models with their runs and the total, their latest
# metrics, the versions registered from them (their aliases only when there are some).
MODEL_LIST_QUERIES = 5


def test_the_model_page_costs_the_same_queries_however_many_metrics_params_and_tags(
    client, run, django_assert_num_queries
):
    model = logged_model(run)
    with django_assert_num_queries(MODEL_PAGE_QUERIES):
        client.get(page_url(model))
    logged_models.logged_model_log_params(model=model, params=[KeyValue(f"p{i}", str(i)) for i in range(40)])
    logged_models.logged_model_set_tags(model=model, tags=[KeyValue(f"t{i}", str(i)) for i in range(40)])
    for i in range(40):
        log_for(model, run, f"metric{i}", i, dataset=f"set{i % 3}", at=1_000 + i)
    with django_assert_num_queries(MODEL_PAGE_QUERIES):
        client.get(page_url(model))


# The model with its experiment, run and sweep; its step; tags; params; metrics; the versions
# made from it (their aliases only when there are some).
MODEL_PAGE_QUERIES = 6


def test_the_experiment_page_links_to_its_models_when_it_has_some(client, run):
    tree = f"/experiments/{run.experiment_id}/"
    assert "logged model" not in client.get(tree).content.decode()
    logged_model(run)
    logged_model(run, "second")
    html = client.get(tree).content.decode()
    assert f'href="/experiments/{run.experiment_id}/models/"' in html and "2 logged models" in html


def test_an_empty_list_says_how_to_log_a_model(client, run):
    html = client.get(list_url(run)).content.decode()
    assert "No logged models in this experiment yet" in html and "log_model" in html


def test_signature_columns_read_tensors_and_nested_types():
    from tracker.selectors.logged_models import describe_mlmodel

    described = describe_mlmodel(
        b"flavors: {pytorch: {pytorch_version: 2.13.0}, python_function: {}}\n"
        b"signature:\n"
        + b"  inputs: '"
        + json.dumps([{"type": "tensor", "tensor-spec": {"dtype": "float32", "shape": [-1, 28, 28]}}]).encode()
        + b"'\n  outputs: '"
        + json.dumps([{"type": {"type": "array", "items": {"type": "string"}}, "name": "labels"}]).encode()
        + b"'\n"
    )
    assert described.flavors == ["pytorch 2.13.0"]
    assert described.inputs == ["float32 [-1, 28, 28]"]
    assert described.outputs == ["labels: array<string>"]
    assert describe_mlmodel(b"- not a mapping") is None and describe_mlmodel(b"{unclosed") is None


def register_model(model, name="iris-classifier"):
    registered = RegisteredModel.objects.filter(name=name).first() or registry_services.registered_model_create(
        name=name
    )
    source = registry_services.resolve_source(source=f"models:/{model.model_id}", model_id=model.model_id)
    return registry_services.model_version_create(model=registered, source=source)


def test_a_version_made_from_a_logged_model_shows_the_models_metrics_per_dataset(client, run):
    model = logged_model(run)
    log_for(model, run, "accuracy", 0.99, dataset="train", at=1_000)
    log_for(model, run, "accuracy", 0.91, dataset="test", at=1_001)  # the run's latest accuracy
    register_model(model)

    version = text(client.get("/models/iris-classifier/versions/1/").content.decode())
    listing = client.get("/models/iris-classifier/").content.decode()

    assert "Metrics of its logged model, latest per dataset accuracy · test 0.9100 accuracy · train 0.9900" in version
    headers = re.findall(r'<th scope="col" class="num" title="([^"]+)">', listing)
    assert headers == ["accuracy · test", "accuracy · train"]


@pytest.mark.parametrize("count", [2, 20])
def test_a_registered_models_page_of_logged_model_versions_costs_the_same_queries(
    client, run, count, django_assert_num_queries
):
    for i in range(count):
        model = logged_model(run, f"m{i}")
        log_for(model, run, "accuracy", i / 100, dataset="test")
        register_model(model)
    # The model, its versions with their runs and sweeps, their aliases, their tags, the logged
    # models they came from, those models' metrics, their runs' metrics, the model's tags.
    with django_assert_num_queries(8):
        assert client.get("/models/iris-classifier/").status_code == 200
