"""The run page's Artifacts section: the artifact URI and top folder on the page, sub-folders and
previews as partials, and the inline URL that shows only images and sandboxed HTML."""

import pytest

from tests.factories import RunFactory
from tracker.services.artifacts import artifact_put

pytestmark = pytest.mark.django_db

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


class Body:
    def __init__(self, data: bytes):
        self.data = data

    def read(self, size: int) -> bytes:
        chunk, self.data = self.data[:size], self.data[size:]
        return chunk


@pytest.fixture
def run(experiment):
    run = RunFactory(experiment=experiment)
    run.artifact_uri = f"mlflow-artifacts:/{experiment.id}/{run.run_id}/artifacts"
    run.save(update_fields=["artifact_uri"])
    return run


def log(run, path: str, data: bytes) -> None:
    folder = f"{run.experiment_id}/{run.run_id}/artifacts"
    artifact_put(path=f"{folder}/{path}", body=Body(data), content_length=len(data))


def test_the_run_page_shows_the_artifact_uri_and_the_top_folder(client, run):
    log(run, "plots/loss.png", PNG)
    log(run, "notes.txt", b"hello")
    response = client.get(f"/runs/{run.run_id}/")
    folder = response.context["artifacts"]
    assert folder.artifact_uri == run.artifact_uri
    assert [(item.name, item.is_dir, item.size, item.preview) for item in folder.items] == [
        ("plots", True, None, None),
        ("notes.txt", False, 5, "text"),
    ]
    html = response.content.decode()
    assert run.artifact_uri in html
    assert f'href="/get-artifact?run_id={run.run_id}&amp;path=notes.txt"' in html


def test_a_run_without_artifacts_says_how_to_log_one(client, run):
    response = client.get(f"/runs/{run.run_id}/")
    assert response.context["artifacts"].items == []
    assert "mlflow.log_artifact" in response.content.decode()


def test_a_folder_opens_as_a_partial_with_paths_from_the_run_root(client, run):
    log(run, "plots/deep/a.png", PNG)
    log(run, "plots/b.svg", b"<svg/>")
    response = client.get(f"/runs/{run.run_id}/artifacts/", {"path": "plots"})
    items = response.context["folder"].items
    assert [(item.path, item.is_dir, item.preview) for item in items] == [
        ("plots/deep", True, None),
        ("plots/b.svg", False, "image"),
    ]


@pytest.mark.parametrize("path", ["../../x", "x" * 300])
def test_a_path_that_leaves_the_run_or_storage_cannot_take_lists_nothing_and_says_why(client, run, path):
    response = client.get(f"/runs/{run.run_id}/artifacts/", {"path": path})
    assert response.status_code == 200
    assert response.context["folder"].items == []
    assert "Invalid artifact path" in response.context["folder"].problem


def test_a_text_preview_shows_the_first_lines_escaped(client, run):
    log(run, "model/MLmodel", b"flavors:\n  python_function: {}\n<script>alert(1)</script>\n")
    response = client.get(f"/runs/{run.run_id}/artifacts/preview/", {"path": "model/MLmodel"})
    assert response.context["preview"].lines == ["flavors:", "  python_function: {}", "<script>alert(1)</script>"]
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in response.content.decode()
    assert "<script>" not in response.content.decode()


def test_a_long_text_preview_is_cut_and_a_binary_file_is_not_shown(client, run):
    log(run, "log.txt", b"".join(b"line %d\n" % i for i in range(500)))
    log(run, "data.csv", b"a,b\x00\x01")
    long = client.get(f"/runs/{run.run_id}/artifacts/preview/", {"path": "log.txt"}).context["preview"]
    assert len(long.lines) == 40 and long.truncated
    binary = client.get(f"/runs/{run.run_id}/artifacts/preview/", {"path": "data.csv"}).context["preview"]
    assert binary.lines == [] and "binary" in binary.problem


def preview(client, run, path):
    return client.get(f"/runs/{run.run_id}/artifacts/preview/", {"path": path})


def test_a_csv_previews_as_a_table_of_its_first_rows_escaped(client, run):
    rows = b"".join(b'%d,"<b>%d</b>, quoted"\n' % (i, i) for i in range(100))
    log(run, "metrics.csv", b"epoch,note\n" + rows)
    log(run, "small.tsv", b"a\tb\n1\t2\n")

    response = preview(client, run, "metrics.csv")

    table = response.context["preview"].table
    assert table.columns == ["epoch", "note"] and table.total_rows == 100
    assert len(table.rows) == 40 and table.rows[1] == ["1", "<b>1</b>, quoted"]
    html = response.content.decode()
    assert "&lt;b&gt;1&lt;/b&gt;, quoted" in html and "<b>" not in html
    assert "The first 40 of 100 rows" in html
    small = preview(client, run, "small.tsv")
    assert small.context["preview"].table.rows == [["1", "2"]] and "1 row." in small.content.decode()


def test_a_csv_longer_than_the_preview_read_drops_its_cut_last_line(client, run):
    log(run, "big.csv", b"x,y\n" + b"".join(b"%d,%d\n" % (i, i * i) for i in range(20_000)))
    table = preview(client, run, "big.csv").context["preview"].table
    assert table.total_rows is None and table.rows[-1] == ["39", "1521"]


def test_a_logged_table_previews_as_a_table_and_other_json_as_text(client, run):
    # What mlflow.log_table(pd.DataFrame(...), "tables/eval.json") writes.
    log(run, "tables/eval.json", b'{"columns":["input","score"],"data":[["<i>hi</i>",0.5],["b",null]]}')
    log(run, "conf.json", b'{"columns": "not a list"}')

    table = preview(client, run, "tables/eval.json").context["preview"].table
    assert table.columns == ["input", "score"] and table.rows == [["<i>hi</i>", "0.5"], ["b", "null"]]
    other = preview(client, run, "conf.json").context["preview"]
    assert other.table is None and other.lines == ['{"columns": "not a list"}']


def test_image_and_html_previews_load_from_the_inline_url(client, run):
    log(run, "plot.png", PNG)
    log(run, "estimator.html", b"<p>model</p>")
    image = client.get(f"/runs/{run.run_id}/artifacts/preview/", {"path": "plot.png"}).content.decode()
    assert f'<img class="artifact-image" src="/runs/{run.run_id}/artifacts/inline/?path=plot.png"' in image
    frame = client.get(f"/runs/{run.run_id}/artifacts/preview/", {"path": "estimator.html"}).content.decode()
    assert '<iframe class="artifact-html" sandbox referrerpolicy' in frame
    assert "allow-scripts" not in frame and "allow-same-origin" not in frame


def test_the_inline_url_serves_images_and_html_sandboxed(client, run):
    log(run, "plot.png", PNG)
    log(run, "report.html", b"<script>alert(1)</script>")
    image = client.get(f"/runs/{run.run_id}/artifacts/inline/", {"path": "plot.png"})
    assert b"".join(image.streaming_content) == PNG
    assert image["Content-Type"] == "image/png"
    html = client.get(f"/runs/{run.run_id}/artifacts/inline/", {"path": "report.html"})
    assert html["Content-Type"] == "text/html; charset=utf-8"
    for response in (image, html):
        assert response["X-Content-Type-Options"] == "nosniff"
        assert response["Content-Security-Policy"].startswith("sandbox; default-src 'none'")
        assert response["Content-Disposition"].startswith("inline")
        assert response["X-Frame-Options"] == "SAMEORIGIN"


@pytest.mark.parametrize("path", ["notes.txt", "model.pkl", "../x.png", "missing.png", "x" * 300 + ".png"])
def test_the_inline_url_serves_nothing_else(client, run, path):
    log(run, "notes.txt", b"text")
    log(run, "model.pkl", b"\x80\x04")
    assert client.get(f"/runs/{run.run_id}/artifacts/inline/", {"path": path}).status_code == 404


def test_a_run_whose_artifacts_live_elsewhere_says_so(client, run):
    run.artifact_uri = "s3://team-bucket/mlruns/7/abc/artifacts"  # an imported run, files not copied
    run.save(update_fields=["artifact_uri"])
    folder = client.get(f"/runs/{run.run_id}/").context["artifacts"]
    assert folder.items == [] and "outside this server's artifact store" in folder.problem
    assert "s3://team-bucket/mlruns/7/abc/artifacts" in client.get(f"/runs/{run.run_id}/").content.decode()


def test_the_partials_of_an_unknown_run_are_404(client):
    assert client.get(f"/runs/{'f' * 32}/artifacts/").status_code == 404


def test_on_s3_the_section_lists_previews_and_serves_inline(client, run, s3_artifact_bucket):
    log(run, "plots/loss.png", PNG)
    text = b"".join(b"line %d\n" % i for i in range(100_000))  # the preview reads only as far as it shows
    log(run, "log.txt", text)
    folder = client.get(f"/runs/{run.run_id}/").context["artifacts"]
    assert [(item.name, item.size) for item in folder.items] == [("plots", None), ("log.txt", len(text))]
    preview = client.get(f"/runs/{run.run_id}/artifacts/preview/", {"path": "log.txt"}).context["preview"]
    assert preview.lines[:2] == ["line 0", "line 1"] and preview.truncated
    image = client.get(f"/runs/{run.run_id}/artifacts/inline/", {"path": "plots/loss.png"})
    assert b"".join(image.streaming_content) == PNG and image["Content-Length"] == str(len(PNG))
    assert client.get(f"/runs/{run.run_id}/artifacts/inline/", {"path": "plots/none.png"}).status_code == 404
