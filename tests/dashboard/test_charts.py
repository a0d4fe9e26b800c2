import json
import math

import numpy as np
from django.http import QueryDict

from dashboard.charts import (
    AXIS_TITLE_CHARS,
    HistoryOptions,
    group_by_stem,
    history_figures,
    metric_stem,
    points_note,
    run_history_figure,
)
from dashboard.downsample import RUN_PAGE_BUDGET, ema, keep_extremes
from tracker.selectors.histories import Series


def series(values, steps=None) -> Series:
    made = Series(total=len(values))
    for index, value in enumerate(values):
        step = steps[index] if steps else index
        made.add(step, 1_700_000_000_000 + step * 1000, value)
    return made


def spike_run() -> Series:
    """5,000 steps of loss 1.0 with one 50.0 at step 1001: the issue's example."""
    return series([50.0 if step == 1001 else 1.0 for step in range(5000)])


def figure_of(histories, **options) -> dict:
    (figure,) = history_figures(histories, options=HistoryOptions(**options))
    return json.loads(json.dumps(figure, allow_nan=False))  # what json_script hands the browser


def test_a_one_step_spike_survives_downsampling_to_the_budget():
    thinned = keep_extremes(spike_run(), RUN_PAGE_BUDGET)
    assert len(thinned.values) == RUN_PAGE_BUDGET
    assert max(thinned.values) == 50.0
    assert thinned.steps[thinned.values.index(50.0)] == 1001
    assert thinned.steps[0] == 0 and thinned.steps[-1] == 4999  # the ends are kept


def test_the_chart_says_how_many_of_the_points_it_draws():
    figure = figure_of({"loss": spike_run()})
    assert "2,000 of 5,000 points" in figure["layout"]["title"]["text"]
    assert figure["layout"]["meta"]["shown"] == 2000 and figure["layout"]["meta"]["total"] == 5000
    assert max(figure["data"][0]["y"]) == 50.0


def test_a_short_history_is_drawn_whole_in_step_order():
    figure = figure_of({"loss": series([1.0, 0.7, 0.5])})
    assert figure["data"][0]["x"] == [0, 1, 2]
    assert figure["data"][0]["y"] == [1.0, 0.7, 0.5]
    assert figure["layout"]["title"]["text"].startswith("loss ")
    assert "3 points" in figure["layout"]["title"]["text"]


def test_nan_and_infinite_steps_are_marked_at_the_charts_edge_not_dropped():
    values = [1.0] * 10_000
    values[10], values[20], values[30] = None, math.inf, -math.inf
    figure = figure_of({"loss": series(values)})
    line, marks = figure["data"]
    assert None not in line["y"] and all(math.isfinite(value) for value in line["y"])
    assert marks["yaxis"] == "y2" and figure["layout"]["yaxis2"]["range"] == [0, 1]
    assert marks["x"] == [10, 20, 30]
    assert marks["y"] == [0.0, 1.0, 0.0]  # NaN and -inf at the bottom edge, +inf at the top
    assert marks["text"] == ["loss: NaN at step 10", "loss: +inf at step 20", "loss: -inf at step 30"]
    assert "3 NaN/inf marked" in figure["layout"]["title"]["text"]


def test_metrics_sharing_a_stem_share_a_chart_with_a_y_axis_title():
    assert metric_stem("train_loss") == metric_stem("val_loss") == "loss"
    assert metric_stem("train/acc") == metric_stem("val/acc") == "acc"
    assert metric_stem("learning_rate") == "learning_rate"  # "learning" names no split
    assert group_by_stem(["val_loss", "train_loss", "lr", "train/acc", "val/acc"]) == [
        ("acc", ["train/acc", "val/acc"]),
        ("loss", ["train_loss", "val_loss"]),
        ("lr", ["lr"]),
    ]
    figures = history_figures({"train_loss": series([2.0, 1.0]), "val_loss": series([2.5, 1.5])})
    assert len(figures) == 1
    assert [trace["name"] for trace in figures[0]["data"]] == ["train_loss", "val_loss"]
    assert figures[0]["layout"]["yaxis"]["title"]["text"] == "train_loss / val_loss"
    assert figures[0]["data"][0]["line"]["color"] != figures[0]["data"][1]["line"]["color"]


def test_a_long_key_gives_its_y_axis_title_way_in_the_middle_and_keeps_the_chart_title_whole():
    # A 66-character key ran past both ends of the axis and over the chart's title.
    key = "an_extraordinarily_long_metric_name_for_validation_loss_at_epoch_5"
    figure = figure_of({key: series([2.0, 1.0])})
    axis_title = figure["layout"]["yaxis"]["title"]["text"]
    assert len(axis_title) == AXIS_TITLE_CHARS
    assert axis_title.startswith("an_extraordinar") and axis_title.endswith("_loss_at_epoch_5") and "…" in axis_title
    assert key in figure["layout"]["title"]["text"]
    assert figure_of({"val_loss": series([1.0])})["layout"]["yaxis"]["title"]["text"] == "val_loss"


def test_smoothing_draws_the_ema_over_a_faint_raw_line():
    figure = figure_of({"loss": series([1.0, 0.0, 1.0, 0.0])}, smoothing=0.5)
    raw, smooth = figure["data"]
    assert raw["opacity"] == 0.25 and raw["y"] == [1.0, 0.0, 1.0, 0.0]
    assert smooth["y"] == [1.0, 1 / 3, 5 / 7, 5 / 15]  # debiased: the first point is the value
    assert ema(np.array([3.0, 3.0]), 0.9).tolist() == [3.0, 3.0]


def test_x_axis_step_relative_or_wall_time_and_log_axes():
    history = series([1.0, 2.0, 3.0])
    relative = run_history_figure(
        "m", [("m", keep_extremes(history, 10))], options=HistoryOptions(x="relative"), origin=1_699_999_999_000
    )
    assert relative["data"][0]["x"] == [1.0, 2.0, 3.0]  # seconds since the run's start
    wall = run_history_figure("m", [("m", keep_extremes(history, 10))], options=HistoryOptions(x="wall"))
    assert wall["layout"]["xaxis"]["type"] == "date" and wall["data"][0]["x"][0] == 1_700_000_000_000
    both_logs = HistoryOptions(log_x=True, log_y=True)
    logged = run_history_figure("m", [("m", keep_extremes(history, 10))], options=both_logs)
    assert logged["layout"]["xaxis"]["type"] == "log" and logged["layout"]["yaxis"]["type"] == "log"


def test_options_come_from_the_url_and_bad_values_fall_back():
    options = HistoryOptions.from_query(QueryDict("xaxis=wall&smooth=0.6&logy=1"))
    assert options == HistoryOptions(x="wall", smoothing=0.6, log_y=True)
    assert options.query == {"xaxis": "wall", "smooth": "0.6", "logy": "1"}
    assert HistoryOptions.from_query(QueryDict("xaxis=nope&smooth=nan")) == HistoryOptions()
    assert HistoryOptions.from_query(QueryDict("smooth=5")).smoothing == 0.99


def test_keys_are_escaped_for_plotlys_html_subset():
    figure = figure_of({"<b>x</b>%{y}": series([1.0, 2.0])})
    assert "<b>" not in figure["layout"]["title"]["text"]
    assert "%{y}" not in figure["data"][0]["hovertemplate"].split("<br>")[1]


def test_the_note_counts_every_line():
    lines = [keep_extremes(series([1.0] * 3000), 1000), keep_extremes(series([1.0] * 10), 1000)]
    assert points_note(lines) == "1,010 of 3,010 points"
