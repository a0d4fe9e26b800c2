"""Responses go out gzipped when the client accepts it: pages, JSON, plotly.js; downloads never."""

import gzip
import json

import plotly
import pytest
from django.http import HttpResponse

from tests.factories import bulk_children
from tracker.models import Run
from tracker.web.compression import CompressTextResponses

pytestmark = pytest.mark.django_db

GZIP = {"HTTP_ACCEPT_ENCODING": "gzip, deflate, br"}


def body(response) -> bytes:
    return b"".join(response.streaming_content) if response.streaming else response.content


def test_a_tree_page_is_gzipped_for_a_client_that_accepts_it_and_plain_otherwise(client, sweep):
    url = f"/experiments/{Run.objects.get(name='parent-0').experiment_id}/"

    plain = client.get(url)
    zipped = client.get(url, **GZIP)

    assert "Content-Encoding" not in plain
    assert zipped["Content-Encoding"] == "gzip"
    assert "Accept-Encoding" in zipped["Vary"]
    # The same page, fewer bytes (the CSRF token is masked anew in each response, so compare text).
    html = gzip.decompress(zipped.content).decode()
    assert 'data-run-id="' in html and len(zipped.content) < len(plain.content) / 3


def test_mlflow_search_json_is_gzipped(client, sweep):
    experiment_id = str(Run.objects.get(name="parent-0").experiment_id)
    response = client.post(
        "/api/2.0/mlflow/runs/search",
        data={"experiment_ids": [experiment_id], "max_results": 100},
        content_type="application/json",
        **GZIP,
    )
    assert response.status_code == 200
    assert response["Content-Encoding"] == "gzip"
    assert len(json.loads(gzip.decompress(response.content))["runs"]) == Run.objects.count()


def test_a_small_answer_is_not_worth_compressing(client, sweep):
    response = client.get("/api/2.0/mlflow/experiments/get-by-name", {"experiment_name": "sweep"}, **GZIP)
    assert response.status_code == 200
    assert "Content-Encoding" not in response


def test_plotly_js_goes_out_gzipped_from_the_finders_as_make_run_serves_it(client):
    response = client.get(f"/static/vendor/plotly-{plotly.__version__}.min.js", **GZIP)
    assert response.status_code == 200
    assert response["Content-Encoding"] == "gzip"
    sent = body(response)
    assert len(sent) < 2_000_000  # 4.8 MB before
    assert gzip.decompress(sent).startswith(b"/**")


def test_a_csv_download_keeps_its_bytes_and_length(client, sweep):
    parent = Run.objects.get(name="parent-0")
    bulk_children(parent, 200, metric_key="metric1")
    response = client.get("/compare/", {"parent": parent.run_id, "format": "csv"}, **GZIP)
    assert response.status_code == 200
    assert "Content-Encoding" not in response
    assert body(response).startswith(b"run_id,")


def test_the_streaming_csv_export_of_the_native_api_still_streams_plain(client, sweep):
    response = client.get("/api/v1/runs/", {"format": "csv"}, **GZIP)
    assert response.status_code == 200
    assert response.streaming
    assert "Content-Encoding" not in response
    assert body(response).splitlines()[0].startswith(b"run_id")


def test_a_whole_body_is_compressed_at_the_fast_level_as_gzipmiddleware_would_mark_it(rf):
    # CompressTextResponses does GZipMiddleware's steps itself for a whole body (to choose the
    # level): the same headers must come out.
    text = json.dumps([{"key": f"metric{i}", "value": i / 7} for i in range(500)]).encode()
    original = HttpResponse(text, content_type="application/json")
    original["ETag"] = '"v1"'
    response = CompressTextResponses(lambda request: original)(rf.get("/", HTTP_ACCEPT_ENCODING="gzip"))
    assert response["Content-Encoding"] == "gzip"
    assert response["Vary"] == "Accept-Encoding"
    assert response["ETag"] == 'W/"v1"'
    assert int(response["Content-Length"]) == len(response.content) < len(text) / 3
    assert gzip.decompress(response.content) == text
