"""Images logged by key and step (`mlflow.log_image(image, key=..., step=...)`) through the real
client: the run page shows each key's steps as MLflow's thumbnails, each opening its full-size
PNG from the inline URL, the last STEPS_SHOWN steps of a long series."""

import io
import time

import mlflow
import numpy as np
import pytest

from tracker.constants import LOGGED_IMAGES_TAG
from tracker.selectors.logged_images import STEPS_SHOWN, image_name
from tracker.services.artifacts import artifact_put

pytestmark = pytest.mark.usefixtures("tracking_uri")


def square(shade: int) -> np.ndarray:
    return np.full((16, 16, 3), shade, dtype=np.uint8)


@pytest.fixture(params=["local", "s3"])
def store(request):
    """The artifact store: the embedded default's folder, or S3 (moto)."""
    if request.param == "s3":
        request.getfixturevalue("s3_artifact_bucket")


def test_the_run_page_shows_each_keys_images_by_step_and_opens_them_full_size(client, store):
    steps = STEPS_SHOWN + 6
    with mlflow.start_run() as run:
        for step in range(steps):
            mlflow.log_image(square(step), key="val/reconstruction", step=step)
        mlflow.log_image(square(1), key="input", step=0)
        time.sleep(0.01)
        mlflow.log_image(square(2), key="input", step=0)  # the same step again: the newer one shows
        mlflow.log_image(square(3), artifact_file="plots/not_by_key.png")
        # By key, mlflow.log_image uploads in the background (its default is synchronous=False);
        # this waits for the active run's uploads (outside a run it would start a new one).
        mlflow.flush_artifact_async_logging()

    response = client.get(f"/runs/{run.info.run_id}/")
    images = response.context["logged_images"]
    assert [series.key for series in images.series] == ["input", "val/reconstruction"]
    single, long_series = images.series
    assert single.steps == 1 and len(single.images) == 1
    assert long_series.steps == steps and long_series.earlier_steps == 6
    assert [image.step for image in long_series.images] == list(range(6, steps))
    page = response.content.decode()
    assert "the last 24 shown" in page and 'alt="val/reconstruction at step 29"' in page

    logged_input = {image_name(name.rsplit("/", 1)[-1]) for name in _listed(run.info.run_id, "images")}
    input_times = {named.timestamp for named in logged_input if named.key == "input"}
    assert len(input_times) == 2 and single.images[0].timestamp == max(input_times)
    thumbnail = client.get(f"/runs/{run.info.run_id}/artifacts/inline/", {"path": single.images[0].thumbnail})
    full_size = client.get(f"/runs/{run.info.run_id}/artifacts/inline/", {"path": single.images[0].path})
    assert (thumbnail.status_code, thumbnail["Content-Type"]) == (200, "image/webp")
    assert (full_size.status_code, full_size["Content-Type"]) == (200, "image/png")
    assert b"".join(full_size.streaming_content).startswith(b"\x89PNG")


def test_a_run_that_logged_no_image_by_key_has_no_images_section(client):
    with mlflow.start_run() as run:
        mlflow.log_image(square(3), artifact_file="plots/figure.png")
    response = client.get(f"/runs/{run.info.run_id}/")
    assert response.context["logged_images"] is None
    assert 'id="images-heading"' not in response.content.decode()


def test_older_clients_names_are_read_too():
    older = image_name("val#loss%step%3%timestamp%1700000000000%0b1c2d3e-aaaa-bbbb-cccc-123456789abc.png")
    current = image_name("val~loss+step+3+timestamp+1700000000000+0b1c2d3e-aaaa-bbbb-cccc-123456789abc+compressed.webp")
    assert (older.key, older.step, older.timestamp, older.compressed) == ("val/loss", 3, 1700000000000, False)
    assert (current.key, current.uuid, current.compressed) == ("val/loss", older.uuid, True)
    assert image_name("figure.png") is None and image_name("loss+step+x+timestamp+1+u.png") is None


def _listed(run_id: str, path: str) -> list[str]:
    return [entry.path for entry in mlflow.MlflowClient().list_artifacts(run_id, path)]


def test_compare_children_shows_each_childs_last_image_of_a_key_side_by_side(client):
    with mlflow.start_run(run_name="sweep") as parent:
        for number in range(3):
            with mlflow.start_run(run_name=f"trial-{number}", nested=True):
                mlflow.log_metric("loss", 1.0 / (number + 1))
                if number == 2:
                    continue  # logs no image
                for step in range(2):
                    mlflow.log_image(square(10 * number + step), key="sample", step=step)
                if number == 0:
                    mlflow.log_image(square(99), key="mask", step=5)
                mlflow.flush_artifact_async_logging()  # this child's background uploads

    response = client.get("/compare/", {"parent": parent.info.run_id})
    found = response.context["images"]["found"]
    assert (found.keys, found.key) == (["mask", "sample"], "sample")  # the key both logged
    shown = {label: run.image for label, _, run in response.context["images"]["runs"]}
    assert sorted(shown) == ["trial-0", "trial-1"]  # trial-2 logged none: not shown
    assert {label: image.step for label, image in shown.items()} == {"trial-0": 1, "trial-1": 1}
    page = response.content.decode()
    assert 'alt="trial-1: sample at step 1"' in page and "?parent=" in page and "images=mask" in page

    masks = client.get("/compare/", {"parent": parent.info.run_id, "images": "mask"}).context["images"]
    assert {label: run.image and run.image.step for label, _, run in masks["runs"]} == {"trial-0": 5, "trial-1": None}
    assert "no mask" in client.get("/compare/", {"parent": parent.info.run_id, "images": "mask"}).content.decode()


def test_compare_without_logged_images_has_no_images_section(client):
    with mlflow.start_run() as first, mlflow.start_run(nested=True) as second:
        mlflow.log_metric("loss", 0.5)
    response = client.get("/compare/", {"runs": f"{first.info.run_id},{second.info.run_id}"})
    assert response.context["images"] is None
    assert 'id="compare-images-heading"' not in response.content.decode()


def test_a_key_is_escaped_on_the_run_page(client):
    """An image's key comes from its file's name, which the artifact API takes from anyone who may write."""
    with mlflow.start_run() as run:
        mlflow.set_tag(LOGGED_IMAGES_TAG, "True")
    name = "<b onmouseover=alert(1)>x+step+1+timestamp+1+0b1c2d3e-aaaa-bbbb-cccc-123456789abc.png"
    artifact_put(path=f"0/{run.info.run_id}/artifacts/images/{name}", body=io.BytesIO(b"png"), content_length=3)
    page = client.get(f"/runs/{run.info.run_id}/").content.decode()
    assert "&lt;b onmouseover=alert(1)&gt;x" in page and "<b onmouseover" not in page
