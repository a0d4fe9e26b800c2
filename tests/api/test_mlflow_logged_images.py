"""Images logged by key and step (`mlflow.log_image(image, key=..., step=...)`) through the real
client: the run page shows each key's steps as MLflow's thumbnails, each opening its full-size
PNG from the inline URL, the last STEPS_SHOWN steps of a long series."""

import time

import mlflow
import numpy as np
import pytest

from tracker.selectors.logged_images import STEPS_SHOWN, image_name

pytestmark = pytest.mark.usefixtures("tracking_uri")


def square(shade: int) -> np.ndarray:
    return np.full((16, 16, 3), shade, dtype=np.uint8)


def test_the_run_page_shows_each_keys_images_by_step_and_opens_them_full_size(client):
    steps = STEPS_SHOWN + 6
    with mlflow.start_run() as run:
        for step in range(steps):
            mlflow.log_image(square(step), key="val/reconstruction", step=step)
        mlflow.log_image(square(1), key="input", step=0)
        time.sleep(0.01)
        mlflow.log_image(square(2), key="input", step=0)  # the same step again: the newer one shows
        mlflow.log_image(square(3), artifact_file="plots/not_by_key.png")

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
