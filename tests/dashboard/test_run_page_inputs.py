"""The run page's Datasets and Models sections: what a run used and the models it logged,
read in two queries however many there are."""

import io
import json
import re
from html.parser import HTMLParser

import pytest

from tests.dashboard.test_run_page import RUN_PAGE_QUERIES
from tracker import services
from tracker.selectors.run_inputs import MAX_MODELS_SHOWN
from tracker.services import KeyValue, artifacts, datasets, logged_models

pytestmark = pytest.mark.django_db

MLMODEL = b"""artifact_path: model
flavors:
  python_function:
    loader_module: mlflow.sklearn
  sklearn:
    sklearn_version: 1.9.1
    serialization_format: cloudpickle
model_id: m-x
"""
SCHEMA = json.dumps({"mlflow_colspec": [{"type": "double", "name": "feature"}, {"type": "long", "name": "label"}]})


class Rows(HTMLParser):
    """The text of each table row of one section, by its data attribute."""

    def __init__(self, attribute: str):
        super().__init__()
        self.attribute, self.rows, self.current = attribute, {}, None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "tr" and self.attribute in attrs:
            self.current = attrs[self.attribute]
            self.rows[self.current] = ""
        elif self.current:
            self.rows[self.current] += " "  # each element's text a word of its own
            self.href = attrs.get("href")

    def handle_endtag(self, tag):
        if tag == "tr":
            self.current = None
        elif tag == "a" and self.current:
            self.rows[self.current] += f" [{self.href}]"

    def handle_data(self, data):
        if self.current:
            self.rows[self.current] += data


def rows(html: str, attribute: str) -> dict[str, str]:
    parser = Rows(attribute)
    parser.feed(html)
    return {key: " ".join(text.split()) for key, text in parser.rows.items()}


@pytest.fixture
def run():
    """A run made as the API makes one: its experiment has an artifact location (the store's)."""
    return services.run_create(experiment=services.experiment_create(name="page"), name="trained")


def log_dataset(run, name: str, context: str, digest: str = "abc123"):
    dataset = datasets.DatasetInput(
        name=name,
        digest=digest,
        source_type="s3",
        source=json.dumps({"uri": f"s3://bucket/{name}.csv"}),
        schema=SCHEMA,
        tags=[KeyValue("mlflow.data.context", context)],
    )
    datasets.run_log_inputs(run=run, datasets=[dataset])


def log_model(run, name: str, *, upload: bool = True):
    model = logged_models.logged_model_create(experiment=run.experiment, name=name, source_run=run)
    logged_models.run_log_outputs(run=run, models=[logged_models.ModelOutput(model.model_id, step=4)])
    if upload:
        folder = artifacts.logged_model_artifact_path(model=model, path=None)
        for file_name, content in (("MLmodel", MLMODEL), ("model.pkl", b"\x80\x04.")):
            artifacts.artifact_put(path=f"{folder}/{file_name}", body=io.BytesIO(content), content_length=len(content))
        logged_models.logged_model_finalize(model=model, status="READY")
    return model


def test_a_run_without_datasets_or_models_shows_neither_section(client, run):
    html = client.get(f"/runs/{run.run_id}/").content.decode()
    assert 'id="datasets-heading"' not in html and 'id="models-heading"' not in html


def test_datasets_show_name_digest_context_source_and_schema(client, run):
    log_dataset(run, "train", "training")
    log_dataset(run, "holdout", "validation", digest="def456")

    response = client.get(f"/runs/{run.run_id}/")

    shown = rows(response.content.decode(), "data-dataset")
    train_link = f"[/experiments/{run.experiment_id}/?filter=datasets.name%20%3D%20%27train%27]"
    assert shown["train"] == f"train {train_link} training abc123 s3 s3://bucket/train.csv feature: double, label: long"
    assert shown["holdout"].startswith("holdout [")
    assert "validation def456" in shown["holdout"]
    assert [d.context for d in response.context["inputs"].datasets] == ["training", "validation"]


def test_a_datasets_name_opens_the_runs_of_the_experiment_that_logged_it(client, run):
    other = services.run_create(experiment=run.experiment, name="other")
    log_dataset(run, 'it\'s "odd"', "training")
    log_dataset(other, "holdout", "validation")
    html = client.get(f"/runs/{run.run_id}/").content.decode()

    link = re.search(r'<th scope="row" class="wrap"><a href="([^"]+)"', html).group(1)
    tree = client.get(link.replace("&amp;", "&"))

    assert tree.status_code == 200 and "does not parse" not in tree.content.decode()
    listed = re.findall(r'<tr class="run-row[^"]*"\s+data-run-id="([0-9a-f]+)"', tree.content.decode())
    assert listed == [run.run_id]


def test_a_dataset_made_in_code_shows_the_script_that_made_it(client, run):
    # mlflow.data.from_pandas(df) without a source records the logging script's tags as the
    # source; the page shows the script, not that JSON.
    source = {"tags": {"mlflow.user": "ana", "mlflow.source.name": "train.py", "mlflow.source.type": "LOCAL"}}
    dataset = datasets.DatasetInput(name="frame", digest="c0de", source_type="code", source=json.dumps(source))
    datasets.run_log_inputs(run=run, datasets=[dataset])

    shown = rows(client.get(f"/runs/{run.run_id}/").content.decode(), "data-dataset")

    assert shown["frame"].endswith("] — c0de code train.py —")


def test_models_show_name_flavor_status_step_metrics_and_link_to_their_pages_and_files(client, run):
    ready = log_model(run, "model")
    pending = log_model(run, "still-uploading", upload=False)
    used = logged_models.logged_model_create(experiment=run.experiment, name="base")
    datasets.run_log_inputs(run=run, model_ids=[used.model_id])
    for at, value, dataset in ((1_000, 0.91, "train"), (1_001, 0.84, "test")):
        point = services.MetricInput("accuracy", value, at, 4, model_id=ready.model_id, dataset_name=dataset)
        services.run_log_batch(run=run, metrics=[point])

    shown = rows(client.get(f"/runs/{run.run_id}/").content.decode(), "data-model-id")

    folder = f"/api/2.0/mlflow-artifacts/artifacts/{run.experiment_id}/models/{ready.model_id}/artifacts"
    page = f"/experiments/{run.experiment_id}/models/{ready.model_id}/"
    assert shown[ready.model_id] == (
        f"model [{page}] {ready.model_id} sklearn 1.9.1 ready logged by this run 4 "
        "accuracy 0.8400 test accuracy 0.9100 train "
        f"MLmodel [{folder}/MLmodel] · model.pkl [{folder}/model.pkl]"
    )
    assert shown[pending.model_id].endswith(f"{pending.model_id} — pending logged by this run 4 — no files yet")
    assert shown[used.model_id].endswith(f"{used.model_id} — pending used by this run — — no files yet")
    assert client.get(f"{folder}/MLmodel").getvalue() == MLMODEL


def test_the_sections_cost_two_queries_however_many_datasets_and_models(client, run, django_assert_max_num_queries):
    for i in range(6):
        log_dataset(run, f"set-{i}", "training", digest=f"d{i}")
        log_model(run, f"model-{i}")
    with django_assert_max_num_queries(RUN_PAGE_QUERIES):
        response = client.get(f"/runs/{run.run_id}/")
    assert len(response.context["inputs"].models) == 6 and len(response.context["inputs"].datasets) == 6


def test_a_run_that_checkpoints_shows_its_newest_models_and_links_to_all(client, run, django_assert_max_num_queries):
    for epoch in range(MAX_MODELS_SHOWN + 3):
        log_model(run, f"checkpoint-{epoch}")
    with django_assert_max_num_queries(RUN_PAGE_QUERIES + 1):  # the count of all of them
        html = client.get(f"/runs/{run.run_id}/").content.decode()

    shown = [text.split()[0] for text in rows(html, "data-model-id").values()]
    newest = [f"checkpoint-{epoch}" for epoch in range(MAX_MODELS_SHOWN + 2, 2, -1)]
    assert shown == newest
    assert f"The newest {MAX_MODELS_SHOWN} of {MAX_MODELS_SHOWN + 3}." in html
    link = re.search(r'href="([^"]+)">All the models this run logged', html).group(1)
    listing = client.get(link.replace("&amp;", "&")).context["listing"]
    assert listing.total == MAX_MODELS_SHOWN + 3
