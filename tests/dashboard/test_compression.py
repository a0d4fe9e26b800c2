"""Responses go out gzipped when the client accepts it: pages, JSON, plotly.js; downloads never."""

import gzip
import json

import plotly
import pytest
from django.http import HttpResponse, StreamingHttpResponse

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


def test_a_streamed_text_is_compressed_piece_by_piece_and_marked_like_a_whole_one(rf):
    pieces = ["".join(f"child-{i}-{n},loss,{n / 7:.4f}\n" for n in range(20_000)).encode() for i in range(4)]
    handed_out = []

    def stream():
        for piece in pieces:
            handed_out.append(piece)
            yield piece

    original = StreamingHttpResponse(stream(), content_type="text/plain")
    original["ETag"] = '"v2"'
    response = CompressTextResponses(lambda request: original)(rf.get("/", HTTP_ACCEPT_ENCODING="gzip"))
    assert response["Content-Encoding"] == "gzip"
    assert response["Vary"] == "Accept-Encoding"
    assert response["ETag"] == 'W/"v2"'
    assert "Content-Length" not in response
    sent, pieces_read_when_sent = [], []
    for chunk in response.streaming_content:
        sent.append(chunk)
        pieces_read_when_sent.append(len(handed_out))
    # Compressed data went out before the stream ended: it streams, not whole at the end.
    assert any(0 < read < len(pieces) and chunk for read, chunk in zip(pieces_read_when_sent, sent, strict=True))
    assert len(b"".join(sent)) < len(b"".join(pieces)) / 3
    assert gzip.decompress(b"".join(sent)) == b"".join(pieces)


def test_the_same_page_compresses_to_lengths_that_vary_against_breach(rf):
    text = json.dumps([{"key": f"metric{i}", "value": i / 7} for i in range(500)]).encode()
    sizes = set()
    for _ in range(20):
        response = CompressTextResponses(lambda request: HttpResponse(text, content_type="application/json"))(
            rf.get("/", HTTP_ACCEPT_ENCODING="gzip")
        )
        assert gzip.decompress(response.content) == text
        sizes.add(len(response.content))
    assert len(sizes) > 5
