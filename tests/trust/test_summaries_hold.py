"""Best-child summaries never stop updating: children logging infinities or values near the
largest double keep their parent's summary right on both databases; a refresh that fails is
logged and tried again; a claim left by a process killed mid-refresh does not stop the tree."""

import logging
import math

import pytest
from django.db import DatabaseError

from tests.factories import build_tree
from tracker import services, tasks
from tracker.models import Run, RunSummary
from tracker.services import MetricInput
from tracker.summaries import computation

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("eager_celery")]


def log(committed, run, value, key="loss", step=0):
    committed(services.run_log_metric, run=run, metric=MetricInput(key=key, value=value, timestamp=1, step=step))


def summary(parent, key="loss"):
    return RunSummary.objects.get(run=parent, key=key)


@pytest.fixture
def family(experiment):
    parent, *children = build_tree([1, 4], experiment=experiment)
    return parent, children


def test_an_infinity_child_keeps_its_parents_summary_right(committed, family):
    parent, (a, b, c, d) = family
    for child, value in zip((a, b, c), (0.5, math.inf, 0.25), strict=True):
        log(committed, child, value)
    log(committed, d, -math.inf)  # the best loss there can be

    row = summary(parent)
    assert not Run.objects.get(pk=parent.pk).summary_stale
    assert (row.best_value, row.best_run_id) == (-math.inf, d.pk)
    assert (row.count, row.min_value, row.max_value) == (4, -math.inf, math.inf)
    assert row.mean_value is None and row.std_value is None  # +inf and -inf: NaN, stored as NULL


def test_a_plus_infinity_makes_the_mean_infinite(committed, family):
    parent, (a, b, _, _) = family
    log(committed, a, 0.5)
    log(committed, b, math.inf)
    row = summary(parent)
    assert (row.best_value, row.mean_value, row.std_value) == (0.5, math.inf, None)


def test_children_near_the_largest_double_do_not_overflow_the_parents_summary(committed, family):
    parent, (a, b, c, d) = family
    for child, value in zip((a, b, c, d), (1e308, 1.5e308, -1e308, 1.0), strict=True):
        log(committed, child, value)

    row = summary(parent)
    assert not Run.objects.get(pk=parent.pk).summary_stale
    assert (row.best_value, row.best_run_id) == (-1e308, c.pk)
    assert row.mean_value == pytest.approx(1.5e308 / 4)  # summed naively, 1e308 + 1.5e308 overflows
    assert math.isfinite(row.std_value) and row.std_value > 1e307


def test_mean_and_std_of_values_past_the_double_range_when_summed():
    assert computation.mean_and_std([1.7e308, 1.7e308]) == (1.7e308, 0.0)
    mean, std = computation.mean_and_std([math.inf, 1.0])
    assert (mean, math.isnan(std)) == (math.inf, True)
    assert math.isnan(computation.mean_and_std([math.inf, -math.inf])[0])


def test_a_claim_left_by_a_crash_does_not_stop_the_tree_in_process(committed, family):
    """The embedded default (no broker, no beat): a process killed between claiming the tree and
    refreshing it left `summary_queued` set, and no later write refreshed the tree again."""
    parent, (a, b, c, _) = family
    log(committed, a, 16.0)
    Run.objects.filter(pk=parent.pk).update(summary_queued=True)  # the crash
    log(committed, b, -12345.0)  # the claim looks taken: no refresh now

    tasks._last_in_process_repair[0] = 0  # the repair interval has passed
    log(committed, c, 20.0)  # the next write repairs the tree

    assert summary(parent).best_value == -12345.0
    assert not Run.objects.get(pk=parent.pk).summary_stale


def test_a_refresh_that_fails_is_logged_and_a_later_write_or_the_repair_catches_up(
    committed, family, experiment, monkeypatch, caplog
):
    parent, (a, b, _, _) = family
    real = computation.recompute_summary
    calls = []

    def fails_once(run_pk, **kwargs):
        calls.append(run_pk)
        if len(calls) == 1:
            raise DatabaseError("could not serialize access")  # a transient failure
        return real(run_pk, **kwargs)

    monkeypatch.setattr("tracker.summaries.refresh.recompute_summary", fails_once)
    with caplog.at_level(logging.WARNING):
        log(committed, a, 0.5)
    assert "failed" in caplog.text
    assert Run.objects.get(pk=parent.pk).summary_stale  # left stale for a retry, not stuck

    tasks._last_in_process_repair[0] = 0  # the repair interval has passed
    _, elsewhere = build_tree([1, 1], experiment=experiment)
    log(committed, elsewhere, 1.0)  # a write into another tree
    assert not Run.objects.get(pk=parent.pk).summary_stale
    assert summary(parent).best_value == 0.5


def test_the_run_page_shows_infinite_and_nan_statistics_by_name(client, committed, family):
    parent, (a, b, c, _) = family
    log(committed, a, 0.5)
    log(committed, b, math.inf)
    log(committed, c, -math.inf)
    response = client.get(f"/runs/{parent.run_id}/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "−∞" in html  # the best loss and the minimum
    assert "NaN" in html  # the mean and std over +∞ and −∞
