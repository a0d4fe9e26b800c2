"""Sorted pages by keyset (tracker/filtering/paging.py): page after page gives every run once,
in order_runs' order, whatever the ties, missing values and NaNs; runs arriving meanwhile never
shift a page; a token only works for the order that gave it."""

import base64
import json
import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.tracker.filtering.test_filter_language import make_run
from tracker.errors import InvalidParameterValue
from tracker.filtering import order_runs, sorted_page
from tracker.models import Run

pytestmark = pytest.mark.django_db

FIELDS = ("id", "run_id", "name")


def all_pages(order_by, size, queryset=None):
    """Names page by page, following the tokens to the end."""
    queryset = Run.objects.all() if queryset is None else queryset
    pages, token = [], None
    while True:
        page, token = sorted_page(queryset, order_by, token=token, size=size, fields=FIELDS)
        pages.append([row.name for row in page])
        if token is None:
            return pages
        assert len(page) == size  # only the last page may be short


def in_one_sort(order_by):
    return [run.name for run in order_runs(Run.objects.all(), order_by)]


@pytest.fixture
def tied_runs(experiment):
    """40 runs with few distinct values: ties on every key, shared start times, NULL start times,
    NaN metrics, and runs without the metric, param or tag at all."""
    rng = random.Random(5)
    for index in range(40):
        metric = rng.choice([0.5, 0.25, 1.0, None, "absent"])
        param = rng.choice(["a", "b", "absent"])
        make_run(
            f"run-{index:02d}",
            experiment=experiment,
            start_time=rng.choice([1000, 2000, None]),
            end_time=rng.choice([3000, None]),
            metrics={} if metric == "absent" else {"m": metric},
            params={} if param == "absent" else {"p": param},
            tags={"t": rng.choice("xy")},
            summaries={"m": rng.choice([0.5, None])},
        )


ORDERS = st.lists(
    st.sampled_from(
        [
            "metrics.m",
            "metrics.m DESC",
            "params.p",
            "params.p DESC",
            "tags.t DESC",
            "summary.m",
            "attributes.start_time ASC",
            "attributes.end_time DESC",
            "attributes.run_name",
            "status",
        ]
    ),
    max_size=3,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(order_by=ORDERS, size=st.integers(1, 45))
def test_pages_hold_every_run_once_in_the_order_of_one_sort(tied_runs, order_by, size):
    pages = all_pages(order_by, size)

    assert [name for page in pages for name in page] == in_one_sort(order_by)


@pytest.mark.parametrize("order_by", [["metrics.m"], ["metrics.m DESC"], ["params.p", "end_time"], []])
def test_the_page_after_a_token_is_the_same_when_asked_twice(tied_runs, order_by):
    _, token = sorted_page(Run.objects.all(), order_by, token=None, size=7, fields=FIELDS)
    first, _ = sorted_page(Run.objects.all(), order_by, token=token, size=7, fields=FIELDS)
    again, _ = sorted_page(Run.objects.all(), order_by, token=token, size=7, fields=FIELDS)
    assert [row.name for row in first] == [row.name for row in again]


def test_runs_logged_between_two_pages_neither_repeat_nor_hide_a_run(experiment):
    for index in range(10):
        make_run(f"old-{index}", experiment=experiment, start_time=1000 + index, metrics={"m": index / 10})
    page_one, token = sorted_page(Run.objects.all(), ["metrics.m"], token=None, size=5, fields=FIELDS)
    # A run sorting before the cursor (OFFSET would now repeat old-4), and one after it.
    make_run("new-first", experiment=experiment, start_time=5000, metrics={"m": -1.0})
    make_run("new-later", experiment=experiment, start_time=5000, metrics={"m": 0.85})

    page_two, token = sorted_page(Run.objects.all(), ["metrics.m"], token=token, size=10, fields=FIELDS)

    assert [row.name for row in page_one] == [f"old-{index}" for index in range(5)]
    assert [row.name for row in page_two] == ["old-5", "old-6", "old-7", "old-8", "new-later", "old-9"]
    assert token is None


def test_a_token_from_another_order_is_refused(tied_runs):
    _, token = sorted_page(Run.objects.all(), ["metrics.m"], token=None, size=5, fields=FIELDS)
    with pytest.raises(InvalidParameterValue, match="another order_by"):
        sorted_page(Run.objects.all(), ["metrics.m DESC"], token=token, size=5, fields=FIELDS)


@pytest.mark.parametrize(
    "token",
    [
        "not base64!",
        "eyJvZmZzZXQiOiAxMDB9",  # an offset token: {"offset": 100}
        "W10=",  # []
    ],
)
def test_a_token_this_server_did_not_issue_is_refused(tied_runs, token):
    with pytest.raises(InvalidParameterValue, match="not issued by this server"):
        sorted_page(Run.objects.all(), ["metrics.m"], token=token, size=5, fields=FIELDS)


@pytest.mark.parametrize("order_by", [["metrics.m"], ["params.p"]])
def test_a_tampered_token_is_refused_not_a_server_error(tied_runs, order_by):
    _, token = sorted_page(Run.objects.all(), order_by, token=None, size=5, fields=FIELDS)
    payload = json.loads(base64.urlsafe_b64decode(token))
    after = payload["after"]
    # Each is the right shape; the strings where a metric's number was, and the numbers where a
    # param's string was, reached the next page's query and failed there as a 500.
    for tampered in (
        {**payload, "after": after[:-1]},
        {**payload, "after": [{"x": 1}] * 3},
        {**payload, "after": ["x"] * len(after)},
        {**payload, "after": [1] * len(after)},
        {**payload, "seal": "0" * 32},
        {key: value for key, value in payload.items() if key != "seal"},
    ):
        with pytest.raises(InvalidParameterValue, match="not issued by this server"):
            bad = base64.urlsafe_b64encode(json.dumps(tampered).encode()).decode()
            sorted_page(Run.objects.all(), order_by, token=bad, size=5, fields=FIELDS)


@pytest.fixture
def many_values(experiment):
    """30 runs whose param has many small tie groups, a large one, and long values that share
    their first 200 characters (the indexed prefix) and differ after it."""
    rng = random.Random(11)
    long_prefix = "x" * 200
    values = [f"v{index:02d}" for index in range(12)] + ["big"] * 10 + [long_prefix + tail for tail in "cab"]
    values += [long_prefix, "x" * 199, "x" * 201, "w" * 250]
    for index, value in enumerate(values):
        make_run(
            f"run-{index:02d}",
            experiment=experiment,
            start_time=rng.choice([1000, 2000, 3000, None]),
            end_time=None,
            params={"p": value},
            tags={"t": value[::-1]},
        )
    make_run("no-value", experiment=experiment, start_time=500)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    order_by=st.sampled_from([["params.p"], ["params.p DESC"], ["tags.t"], ["tags.t DESC"], ["params.p", "tags.t"]]),
    size=st.integers(1, 32),
)
def test_pages_through_many_tie_groups_and_long_values_hold_every_run_once(many_values, order_by, size):
    pages = all_pages(order_by, size)

    assert [name for page in pages for name in page] == in_one_sort(order_by)


def test_long_values_sort_as_text_past_the_indexed_prefix(many_values):
    """On SQLite and on a byte-wise PostgreSQL collation (the test databases') the order is the
    values' own: what Python's sorted gives."""
    runs = {run.name: run.params.get().value for run in Run.objects.exclude(name="no-value")}
    expected = [name for name, _ in sorted(runs.items(), key=lambda item: (item[1], item[0]))]

    by_value = [name for page in all_pages(["params.p"], 4) for name in page if name != "no-value"]

    # Ties (the ten "big" runs) follow start_time and run_id, not name: compare the values only.
    assert [runs[name] for name in by_value] == [runs[name] for name in expected]


def test_a_page_over_many_small_tie_groups_takes_a_bounded_number_of_queries(
    many_values, django_assert_max_num_queries
):
    # One value's group at a time for a few groups, then the rest of the page in one query: a
    # page over thirty one-run groups does not cost a query or two per run.
    with django_assert_max_num_queries(2 * 4 + 2):
        page, _ = sorted_page(Run.objects.all(), ["params.p"], token=None, size=25, fields=FIELDS)
    assert len(page) == 25
