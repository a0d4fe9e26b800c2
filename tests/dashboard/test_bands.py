import math

import numpy as np
import pytest
from django.core.cache import cache
from django.db.models import F, Max

from dashboard.charts import band_figure, history_figures
from tests.factories import RunFactory
from tracker.models import LatestMetric, Metric, Run, RunSummary
from tracker.selectors.histories import Series
from tracker.summaries import bands, refresh
from tracker.summaries.bands import SETTLE_MS, band_keys, parent_bands, refresh_bands, stale_band_parents
from tracker.tasks import refresh_settled_bands

pytestmark = pytest.mark.django_db

STEPS, CHILDREN = 30, 7


@pytest.fixture(autouse=True)
def no_cached_bands():
    """Bands cached by another test's parent (pks are reused after a rollback) never leak in."""
    cache.clear()


def add_latest(parent):
    """The latest `loss` of each child, as the write path keeps it (the compare page reads it)."""
    LatestMetric.objects.bulk_create(
        LatestMetric(
            run=child,
            key="loss",
            step=child.metrics.filter(key="loss").aggregate(Max("step"))["step__max"],
            timestamp=0,
            value=1.0,
        )
        for child in parent.children.all()
    )


@pytest.fixture
def sweep_parent():
    """A parent of 7 children logging `loss` for 30 steps (one NaN, one inf, one child stopping
    early) and `acc` once: only loss has a history to band."""
    parent = RunFactory(name="sweep")
    generator = np.random.default_rng(7)
    values = generator.normal(1.0, 0.3, size=(CHILDREN, STEPS))
    rows = []
    for child_number in range(CHILDREN):
        child = RunFactory(parent=parent, name=f"c{child_number}")
        rows.append(Metric(run=child, key="acc", step=0, timestamp=0, value=0.5))
        for step in range(STEPS if child_number else 10):  # child 0 stops at step 9
            value = float(values[child_number, step])
            rows.append(Metric(run=child, key="loss", step=step, timestamp=step, value=value))
    rows.append(Metric(run=child, key="loss", step=5, timestamp=99, value=None))  # a NaN, stored as NULL
    rows.append(Metric(run=child, key="loss", step=6, timestamp=99, value=math.inf))
    Metric.objects.bulk_create(rows)
    add_latest(parent)
    matrix = np.full((CHILDREN, STEPS), np.nan)
    matrix[0, :10] = values[0, :10]
    matrix[1:] = values[1:]
    return parent, matrix


def test_the_bands_mean_and_std_per_step_equal_numpys(sweep_parent):
    parent, matrix = sweep_parent
    keys = band_keys([parent])
    assert list(keys.ranges) == ["loss"]
    (band,) = parent_bands(parent, keys)
    assert band.steps == list(range(STEPS))
    assert band.mean == pytest.approx(np.nanmean(matrix, axis=0).tolist())
    assert band.std == pytest.approx(np.nanstd(matrix, axis=0).tolist())
    assert band.low == pytest.approx(np.nanmin(matrix, axis=0).tolist())
    assert band.high == pytest.approx(np.nanmax(matrix, axis=0).tolist())
    assert band.count[:10] == [CHILDREN] * 10 and band.count[10:] == [CHILDREN - 1] * (STEPS - 10)


def test_median_and_quartiles_equal_numpys(sweep_parent):
    parent, matrix = sweep_parent
    (band,) = parent_bands(parent, band_keys([parent]), quartiles=True)
    assert band.median == pytest.approx(np.nanmedian(matrix, axis=0).tolist())
    assert band.q1 == pytest.approx(np.nanpercentile(matrix, 25, axis=0).tolist())
    assert band.q3 == pytest.approx(np.nanpercentile(matrix, 75, axis=0).tolist())


def test_a_long_history_is_banded_over_step_buckets(sweep_parent, monkeypatch):
    monkeypatch.setattr(bands, "BAND_STEPS", 10)
    parent, matrix = sweep_parent
    (band,) = parent_bands(parent, band_keys([parent]))
    assert band.bucket == 3 and band.steps == list(range(0, STEPS, 3))
    assert band.mean[0] == pytest.approx(np.nanmean(matrix[:, :3]))


def test_the_band_figure_fills_between_its_edges_and_counts_children_on_hover(sweep_parent):
    parent, _ = sweep_parent
    (band,) = parent_bands(parent, band_keys([parent]))
    figure = band_figure("loss", [("sweep", "#1f77b4", band, "/compare/?parent=x")])
    lower, upper, centre = figure["data"]
    assert upper["fill"] == "tonexty" and upper["fillcolor"] == "rgba(31,119,180,0.2)"
    assert [round(u - c, 9) for u, c in zip(upper["y"], centre["y"], strict=True)] == [round(s, 9) for s in band.std]
    assert centre["customdata"][0][0] == CHILDREN and "children" in centre["hovertemplate"]
    assert centre["meta"]["link"] == upper["meta"]["link"] == "/compare/?parent=x"
    # The whole fill answers a hover, and so a click, saying where it leads.
    assert upper["hoveron"] == "fills" and upper["name"] == "sweep: click to compare its children"
    assert "click a band to compare its children" in figure["layout"]["title"]["text"]
    minmax = band_figure("loss", [("sweep", "#1f77b4", band, "")], mode="minmax")
    assert minmax["data"][0]["y"] == band.low and minmax["data"][1]["y"] == band.high


def test_the_parents_run_page_draws_a_band_per_metric_with_history(client, sweep_parent, django_assert_max_num_queries):
    parent, _ = sweep_parent
    response = client.get(f"/runs/{parent.run_id}/")
    (chart,) = response.context["bands"].figures
    assert chart["figure"]["data"][1]["fill"] == "tonexty"
    assert 'id="band-0"' in response.content.decode()
    lines = client.get(f"/runs/{parent.run_id}/", {"lines": "1", "band": "quartiles"}).context["bands"].figures[0]
    children = lines["figure"]["data"][0]
    assert children["line"]["width"] == 1 and children["x"].count(None) == CHILDREN


def test_a_parents_bands_of_one_stem_share_a_chart_as_its_history_lines_do(client, sweep_parent):
    parent, _ = sweep_parent
    for number, child in enumerate(parent.children.order_by("name")):
        Metric.objects.bulk_create(
            [Metric(run=child, key="val_loss", step=step, timestamp=step, value=2.0 + number) for step in range(STEPS)]
        )
        LatestMetric.objects.create(run=child, key="val_loss", step=STEPS - 1, timestamp=0, value=2.0 + number)
    response = client.get(f"/runs/{parent.run_id}/", {"lines": "1"})
    (chart,) = response.context["bands"].figures  # loss and val_loss: one chart, titled by their stem
    figure = chart["figure"]
    assert figure["layout"]["title"]["text"].startswith("loss by step")
    assert figure["layout"]["yaxis"]["title"]["text"] == "loss / val_loss"
    centres = [trace for trace in figure["data"] if "customdata" in trace]
    assert [trace["name"] for trace in centres] == ["loss", "val_loss"]
    assert centres[1]["y"] == [2.0 + (CHILDREN - 1) / 2] * STEPS
    # Each band in the colour its key's line has on a run page's history chart.
    (history,) = history_figures({"loss": Series(), "val_loss": Series()})
    assert [trace["line"]["color"] for trace in centres] == [trace["line"]["color"] for trace in history["data"]]
    assert figure["layout"]["showlegend"] is True
    # Each band's children drawn as thin lines, and its own link to them.
    thin = [trace for trace in figure["data"] if trace.get("name", "").endswith(": children")]
    assert [trace["name"] for trace in thin] == ["loss: children", "val_loss: children"]
    assert centres[1]["meta"]["link"].endswith("metric=val_loss&history=val_loss")


def test_a_leafs_run_page_has_no_bands(client, sweep_parent):
    parent, _ = sweep_parent
    child = parent.children.first()
    assert client.get(f"/runs/{child.run_id}/").context["bands"] is None


def test_the_bands_cost_three_queries_whatever_the_number_of_children(client, sweep_parent, django_assert_num_queries):
    parent, _ = sweep_parent
    # Expect 17 queries: the run page's 13 for a root parent (run, params, latest metrics, tags,
    # children count and page, the children's metrics, its summaries, the live poll's starting
    # version, its datasets, its logged models, its registrations, the children's registered
    # badges), the charts' point counts per key, then 3 for the bands: the keys the children log
    # with history (off their latest values), which of them were logged on a dataset (none), and
    # every band's aggregates in one GROUP BY.
    with django_assert_num_queries(17):
        client.get(f"/runs/{parent.run_id}/")


def second_sweep(experiment) -> Run:
    """A parent of 3 children logging `loss` at 2, 3 and 4 every step: a band apart from the first."""
    other = RunFactory(name="sweep-2", experiment=experiment)
    for number in range(3):
        child = RunFactory(parent=other, name=f"d{number}")
        Metric.objects.bulk_create(
            [Metric(run=child, key="loss", step=step, timestamp=step, value=2.0 + number) for step in range(STEPS)]
        )
    add_latest(other)
    return other


def test_compare_sweeps_draws_one_band_per_parent_in_its_own_colour(client, sweep_parent):
    parent, _ = sweep_parent
    other = second_sweep(parent.experiment)
    response = client.get("/compare/", {"parents": f"{parent.run_id},{other.run_id}", "history": "loss"})
    assert response.status_code == 200
    assert len(response.context["table"].rows) == CHILDREN + 3
    band = next(chart["figure"] for chart in response.context["figures"] if chart["figure"]["layout"].get("meta"))
    centres = [trace for trace in band["data"] if "customdata" in trace]
    assert [trace["name"] for trace in centres] == ["sweep", "sweep-2"]
    assert centres[0]["line"]["color"] != centres[1]["line"]["color"]
    assert centres[1]["y"] == [3.0] * STEPS and centres[1]["customdata"][0][0] == 3
    # A click on a band opens its children's comparison, drawing the band's metric.
    assert centres[1]["meta"]["link"] == f"/compare/?parent={other.run_id}&metric=loss&history=loss"
    assert "Compare sweeps" in response.content.decode()


def test_the_table_marks_each_row_with_its_runs_colour_on_the_charts(client, sweep_parent):
    parent, _ = sweep_parent
    response = client.get("/compare/", {"parent": parent.run_id, "metric": "loss"})
    rows = {row.run.name: row.color for row in response.context["table"].rows}
    bars = next(
        chart["figure"]["data"][0]
        for chart in response.context["figures"]
        if chart["figure"]["data"][0]["type"] == "bar"
    )
    assert dict(zip(bars["text"], bars["marker"]["color"], strict=True)) == rows
    assert f'class="swatch" style="background:{rows["c0"]}"' in response.content.decode()


def test_parents_picked_in_the_tree_link_to_their_comparison_as_sweeps(client, sweep_parent):
    parent, _ = sweep_parent
    other = RunFactory(name="sweep-2", experiment=parent.experiment)
    RunFactory(parent=other, name="d0")
    response = client.get("/compare/", {"runs": f"{parent.run_id},{other.run_id}"})
    assert response.context["sweeps_url"].startswith("/compare/?parents=")
    assert set(response.context["sweeps_url"].split("=")[1].split("&")[0].split("%2C")) == {parent.run_id, other.run_id}
    assert "Compare their children as sweeps" in response.content.decode()
    leaves = client.get("/compare/", {"runs": ",".join(parent.children.values_list("run_id", flat=True)[:2])})
    assert leaves.context["sweeps_url"] == ""


def test_the_bands_of_one_summary_version_are_computed_once(client, sweep_parent, django_assert_num_queries):
    parent, _ = sweep_parent
    refresh.recompute_all(experiment_id=parent.experiment_id)
    first = client.get(f"/runs/{parent.run_id}/").context["bands"].figures
    # Expect 15 queries: the run page's 13 for a root parent (live version, datasets, models,
    # registrations and the children's badges included), the charts' point counts and the
    # stored importance; the bands (the worker's, none yet, and the 3 of aggregating them) are
    # the first request's, for the same summaries.
    with django_assert_num_queries(15):
        again = client.get(f"/runs/{parent.run_id}/").context["bands"].figures
    assert again == first
    # A child's new value: its refresh gives the summary a new version, and the bands are read again.
    child = parent.children.first()
    Metric.objects.create(run=child, key="loss", step=STEPS, timestamp=STEPS, value=100.0)
    LatestMetric.objects.filter(run=child, key="loss").update(step=STEPS, value=100.0)
    refresh.recompute_all(experiment_id=parent.experiment_id)
    latest = client.get(f"/runs/{parent.run_id}/").context["bands"].figures[0]["figure"]
    assert latest["data"][2]["x"][-1] == STEPS and latest["data"][2]["y"][-1] == 100.0


# --- bands kept by the worker ----------------------------------------------------------------------


def settle(parent):
    """The parent's summaries as they are once its sweep has been quiet for a while."""
    refresh.recompute_all(experiment_id=parent.experiment_id)
    RunSummary.objects.filter(run=parent).update(computed_at=F("computed_at") - SETTLE_MS)


def test_a_parents_page_draws_the_bands_the_worker_kept_without_aggregating(
    client, sweep_parent, django_assert_num_queries
):
    parent, _ = sweep_parent
    settle(parent)
    aggregated = client.get(f"/runs/{parent.run_id}/", {"band": "quartiles"}).context["bands"].figures
    cache.clear()
    assert stale_band_parents() == [parent.pk]
    assert refresh_settled_bands() == 1  # the beat's task: it queues (here, runs) refresh_bands
    assert stale_band_parents() == []
    # The page reads them (one query), even with the children's points gone from under it.
    Metric.objects.filter(run__parent=parent).delete()
    # Expect 16 queries: the run page's 13, the charts' point counts, the stored importance and
    # the kept bands (aggregating would be 2 more).
    with django_assert_num_queries(16):
        kept = client.get(f"/runs/{parent.run_id}/", {"band": "quartiles"}).context["bands"].figures
    assert kept[0]["figure"]["data"] == aggregated[0]["figure"]["data"]
    assert kept[0]["figure"]["layout"]["title"] == aggregated[0]["figure"]["layout"]["title"]


def test_kept_bands_are_not_served_once_a_childs_new_value_refreshes_the_summary(client, sweep_parent):
    parent, _ = sweep_parent
    settle(parent)
    refresh_bands(parent_pk=parent.pk)
    child = parent.children.order_by("name").last()
    Metric.objects.create(run=child, key="loss", step=STEPS, timestamp=STEPS, value=100.0)
    LatestMetric.objects.filter(run=child, key="loss").update(step=STEPS, value=100.0)
    refresh.recompute_all(experiment_id=parent.experiment_id)
    centre = client.get(f"/runs/{parent.run_id}/").context["bands"].figures[0]["figure"]["data"][2]
    assert centre["x"][-1] == STEPS and centre["y"][-1] == 100.0  # aggregated afresh, not the kept
    # Nor kept again while the sweep has not settled: its bands would be out of date at once.
    assert stale_band_parents() == []


def test_compare_sweeps_draws_kept_bands_and_aggregates_the_others(client, sweep_parent):
    parent, _ = sweep_parent
    other = second_sweep(parent.experiment)
    settle(parent)
    query = {"parents": f"{parent.run_id},{other.run_id}", "history": "loss"}
    before = client.get("/compare/", query).context["figures"][0]["figure"]
    refresh_bands(parent_pk=parent.pk)
    Metric.objects.filter(run__parent=parent).delete()  # only the kept bands can draw it now
    after = client.get("/compare/", query).context["figures"][0]["figure"]
    assert after["data"] == before["data"]


@pytest.fixture
def sweep_on_datasets():
    """A parent of 5 children logging `loss` each step on a train set and on a val set, the val
    loss well above the train loss."""
    parent = RunFactory(name="sweep on datasets")
    generator = np.random.default_rng(8)
    curves = {"train": generator.normal(0.2, 0.05, size=(5, STEPS)), "val": generator.normal(1.0, 0.1, size=(5, STEPS))}
    rows = []
    for child_number in range(5):
        child = RunFactory(parent=parent, name=f"c{child_number}")
        for offset, (dataset, values) in enumerate(curves.items()):
            rows += [
                Metric(
                    run=child,
                    key="loss",
                    step=step,
                    timestamp=2 * step + offset,
                    value=float(values[child_number, step]),
                    dataset_name=dataset,
                )
                for step in range(STEPS)
            ]
    Metric.objects.bulk_create(rows)
    add_latest(parent)
    return parent, curves


@pytest.mark.parametrize("quartiles", [False, True])
def test_a_key_logged_on_two_datasets_is_a_band_per_dataset(sweep_on_datasets, quartiles):
    parent, curves = sweep_on_datasets
    found = {band.key: band for band in parent_bands(parent, band_keys([parent]), quartiles=quartiles)}
    # One band of both would have each step's mean between the curves and a std spanning them.
    assert sorted(found) == ["loss · train", "loss · val"]
    for dataset, values in curves.items():
        band = found[f"loss · {dataset}"]
        assert band.mean == pytest.approx(values.mean(axis=0).tolist())
        assert band.std == pytest.approx(values.std(axis=0).tolist())
        if quartiles:
            assert band.median == pytest.approx(np.median(values, axis=0).tolist())


def test_compare_sweeps_draws_the_band_of_the_chosen_dataset(client, sweep_on_datasets):
    parent, curves = sweep_on_datasets
    response = client.get("/compare/", {"parents": parent.run_id, "history": "loss · val"})
    band = next(chart["figure"] for chart in response.context["figures"] if chart["figure"]["layout"].get("meta"))
    (centre,) = [trace for trace in band["data"] if "customdata" in trace]
    assert centre["y"] == pytest.approx(curves["val"].mean(axis=0).tolist())
    # A click on it opens the children's comparison, drawing the same dataset's lines.
    assert centre["meta"]["link"].endswith("&history=loss+%C2%B7+val")


def test_the_worker_keeps_a_band_per_dataset(sweep_on_datasets):
    parent, _ = sweep_on_datasets
    refresh.recompute_all(experiment_id=parent.experiment_id)
    assert refresh_bands(parent_pk=parent.pk) == 2
    kept = bands.stored_bands(parent, bands.summaries_version(parent.pk))
    assert [band.key for band in kept] == ["loss · train", "loss · val"]
