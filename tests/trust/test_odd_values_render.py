"""Pages render any stored value: a run time that cannot be a date (nanoseconds sent as
milliseconds, the ends of int64, year 10000) shows as its number on every page, deleted or not."""

from html.parser import HTMLParser

import pytest
from django.test import Client

from tracker import services as ingest
from tracker.models import DELETED, Experiment, Run
from tracker.services import KeyValue

# Epoch "milliseconds" no date has: a nanosecond clock, int64's ends, the first ms of year 10000.
ODD_TIMES = [1_733_000_000_000_000_000, 2**63 - 1, -(2**63), 253_402_300_800_000]


@pytest.fixture
def lenient_client():
    return Client(raise_request_exception=False)


@pytest.fixture(params=ODD_TIMES, ids=["nanoseconds", "int64-max", "int64-min", "year-10000"])
def odd_run(request, db):
    """A run as an import may store it: the time straight from the source."""
    experiment = Experiment.objects.create(name="odd times", creation_time=0, last_update_time=0)
    return Run.objects.create(
        experiment=experiment, path="000000000001/", name="odd", start_time=request.param, end_time=request.param
    )


def pages(run: Run) -> list[str]:
    tree = f"/experiments/{run.experiment_id}/"
    return [
        "/",
        "/?show_deleted=1",
        tree,
        tree + "?show_deleted=1",
        tree + "?sort=-duration",
        tree + "?sort=start",
        f"/runs/{run.run_id}/",
        f"/compare/?runs={run.run_id}",
    ]


def test_a_time_that_is_no_date_shows_as_its_number_on_every_page(lenient_client, odd_run):
    for url in pages(odd_run):
        response = lenient_client.get(url)
        assert response.status_code == 200, url
    # The list shows the later of the experiment's update (0 here) and its newest run's start.
    shown_on = (["/"] if odd_run.start_time > 0 else []) + [pages(odd_run)[2], f"/runs/{odd_run.run_id}/"]
    for url in shown_on:
        assert str(odd_run.start_time) in lenient_client.get(url).content.decode(), url


def test_a_deleted_run_with_such_a_time_renders_too(lenient_client, odd_run):
    Run.objects.filter(pk=odd_run.pk).update(lifecycle_stage=DELETED)
    for url in pages(odd_run):
        assert lenient_client.get(url).status_code == 200, url


def test_a_100_kb_tag_value_makes_a_chip_without_a_link_the_server_would_refuse(lenient_client, db):
    experiment = Experiment.objects.create(name="long tags", creation_time=0, last_update_time=0)
    run = ingest.run_create(experiment=experiment, name="long")
    ingest.run_log_batch(run=run, tags=[KeyValue("blob", "x" * 100_000), KeyValue("team", "vision")])
    response = lenient_client.get(f"/experiments/{experiment.pk}/")
    assert response.status_code == 200
    links = [href for href in re_hrefs(response.content.decode()) if "filter=" in href]
    assert links and max(len(href) for href in links) < 8000
    assert any("vision" in href for href in links)  # an ordinary chip still links


def re_hrefs(html: str) -> list[str]:
    hrefs = []

    class Links(HTMLParser):
        def handle_starttag(self, tag, attrs):
            hrefs.extend(value for name, value in attrs if name == "href" and value)

    Links().feed(html)
    return hrefs


def test_a_compare_link_to_no_run_with_a_history_chart_is_a_404_page(lenient_client, db):
    """Found by the fuzzer: the problem page linked plotly.js without its version (a 500)."""
    response = lenient_client.get("/compare/", {"parent": "0" * 32, "history": "loss"})
    assert response.status_code == 404
