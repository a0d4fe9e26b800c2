"""The compare page's figure builders, from plain runs to Plotly figure dicts, without a browser."""

import json
import math

import pytest

from dashboard.charts import (
    MAX_BAR_LABELS,
    MAX_HISTORY_TRACES,
    MAX_LEGEND_ENTRIES,
    MAX_PARALLEL_AXES,
    MISSING_LABEL,
    PARENT_COLORS,
    band_figure,
    history_lines_figure,
    importance_figure,
    metric_bars_figure,
    parallel_coordinates_figure,
    run_colors,
    scatter_figure,
)
from tracker.selectors.compare import ComparedRun
from tracker.summaries.bands import Band


def run(name, parent="p1", params=None, metrics=None, pk=0):
    return ComparedRun(
        run_id=f"id-{name}",
        name=name,
        pk=pk,
        parent_run_id=parent,
        parent_name=f"parent {parent}" if parent else "",
        params=params or {},
        metrics=metrics or {},
    )


def valid_json(figure) -> dict:
    """What json_script hands the browser: JSON.parse refuses NaN and Infinity."""
    return json.loads(json.dumps(figure, allow_nan=False))


@pytest.fixture
def sweep():
    return [
        run("a", "p1", {"lr": "0.1", "opt": "adam", "seed": "1"}, {"loss": 0.5, "acc": 0.7}, pk=1),
        run("b", "p1", {"lr": "0.01", "opt": "sgd", "seed": "1"}, {"loss": 0.2, "acc": 0.9}, pk=2),
        run("c", "p2", {"lr": "0.001", "opt": "adam", "seed": "1"}, {"loss": 0.9, "acc": 0.6}, pk=3),
    ]


# --- parallel coordinates ----------------------------------------------------------------------


def test_parallel_coordinates_has_an_axis_per_varying_param_then_the_metric(sweep):
    figure = parallel_coordinates_figure(sweep, ["lr", "opt", "seed"], "loss")
    trace = figure["data"][0]
    assert trace["type"] == "parcoords"
    # `seed` is the same in every run: an axis of one value tells nothing.
    assert [d["label"] for d in trace["dimensions"]] == ["lr", "opt", "loss"]
    assert trace["dimensions"][-1]["values"] == [0.5, 0.2, 0.9]


def test_a_numeric_param_is_a_number_axis(sweep):
    lr = parallel_coordinates_figure(sweep, ["lr"], "loss")["data"][0]["dimensions"][0]
    assert lr["values"] == [0.1, 0.01, 0.001]
    assert "ticktext" not in lr


def test_a_categorical_param_gets_its_own_labelled_axis(sweep):
    opt = parallel_coordinates_figure(sweep, ["opt"], "loss")["data"][0]["dimensions"][0]
    assert opt["ticktext"] == ["adam", "sgd"]
    assert opt["tickvals"] == [0, 1]
    assert opt["values"] == [0, 1, 0]


def test_the_metric_colours_the_lines_best_runs_bright_whatever_the_goal(sweep):
    lowest_best = parallel_coordinates_figure(sweep, ["lr"], "loss", goal="min")["data"][0]["line"]
    highest_best = parallel_coordinates_figure(sweep, ["lr"], "acc", goal="max")["data"][0]["line"]
    assert lowest_best["color"] == [0.5, 0.2, 0.9]
    assert lowest_best["reversescale"] is True
    assert highest_best["reversescale"] is False
    assert lowest_best["colorbar"]["title"]["text"] == "loss"


def test_runs_with_a_nan_or_no_metric_are_left_out_and_counted_in_the_title(sweep):
    sweep[0].metrics["loss"] = math.nan
    del sweep[1].metrics["loss"]
    figure = valid_json(parallel_coordinates_figure(sweep, ["lr", "opt"], "loss"))
    assert figure["data"][0]["dimensions"][-1]["values"] == [0.9]
    assert "2 without loss" in figure["layout"]["title"]["text"]


def test_a_run_missing_a_categorical_param_sits_at_none(sweep):
    del sweep[1].params["opt"]
    opt = parallel_coordinates_figure(sweep, ["opt"], "loss")["data"][0]["dimensions"][0]
    assert opt["ticktext"] == ["adam", MISSING_LABEL]
    assert opt["values"] == [0, 1, 0]


def test_a_run_missing_a_numeric_param_sits_below_the_axis_range(sweep):
    del sweep[2].params["lr"]
    lr = valid_json(parallel_coordinates_figure(sweep, ["lr"], "loss"))["data"][0]["dimensions"][0]
    below = lr["values"][2]
    assert lr["values"][:2] == [0.1, 0.01]
    assert below < 0.01 and lr["range"][0] == below
    assert lr["ticktext"][0] == MISSING_LABEL and lr["tickvals"][0] == below


def test_parallel_coordinates_caps_the_number_of_axes():
    runs = [run(str(i), params={f"p{k:02d}": str(i * k) for k in range(30)}, metrics={"m": i}) for i in range(3)]
    figure = parallel_coordinates_figure(runs, [f"p{k:02d}" for k in range(30)], "m")
    # p00 is 0 in every run; the next MAX_PARALLEL_AXES vary.
    assert len(figure["data"][0]["dimensions"]) == MAX_PARALLEL_AXES + 1


def test_many_categories_are_labelled_sparsely():
    runs = [run(str(i), params={"path": f"/data/{i:03d}"}, metrics={"m": i}) for i in range(100)]
    axis = parallel_coordinates_figure(runs, ["path"], "m")["data"][0]["dimensions"][0]
    assert len(axis["ticktext"]) <= 25
    assert len(axis["ticktext"]) == len(axis["tickvals"])


def test_infinite_metrics_are_not_written_as_invalid_json(sweep):
    sweep[0].metrics["loss"] = math.inf
    sweep[1].params["lr"] = "inf"
    figure = valid_json(parallel_coordinates_figure(sweep, ["lr"], "loss"))
    assert figure["data"][0]["dimensions"][-1]["values"] == [0.2, 0.9]


# --- scatter -----------------------------------------------------------------------------------


def test_scatter_has_one_trace_and_colour_per_parent(sweep):
    figure = scatter_figure(sweep, "params.lr", "loss")
    assert [trace["name"] for trace in figure["data"]] == ["parent p1", "parent p2"]
    assert [trace["marker"]["color"] for trace in figure["data"]] == PARENT_COLORS[:2]
    assert figure["data"][0]["x"] == [0.1, 0.01]
    assert figure["data"][0]["y"] == [0.5, 0.2]
    assert figure["data"][0]["hovertext"] == ["a", "b"]
    assert figure["layout"]["xaxis"]["title"]["text"] == "lr"
    assert figure["layout"]["yaxis"]["title"]["text"] == "loss"
    assert "type" not in figure["layout"]["xaxis"]


def test_scatter_of_a_categorical_param_uses_a_category_axis(sweep):
    figure = scatter_figure(sweep, "params.opt", "loss")
    assert figure["layout"]["xaxis"]["type"] == "category"
    assert figure["data"][0]["x"] == ["adam", "sgd"]


def test_scatter_against_another_metric(sweep):
    figure = scatter_figure(sweep, "metrics.acc", "loss")
    assert figure["data"][1]["x"] == [0.6]
    assert figure["layout"]["title"]["text"].startswith("loss vs acc")


def test_scatter_leaves_out_runs_without_both_values(sweep):
    sweep[0].metrics["loss"] = math.nan
    del sweep[2].params["lr"]
    figure = valid_json(scatter_figure(sweep, "params.lr", "loss"))
    assert [trace["hovertext"] for trace in figure["data"]] == [["b"]]
    assert "2 without both values" in figure["layout"]["title"]["text"]


def test_top_level_runs_share_a_group_and_two_parents_of_one_name_stay_apart():
    runs = [
        run("a", parent="", metrics={"m": 1}, params={"x": "1"}),
        run("b", parent="p1", metrics={"m": 2}, params={"x": "1"}),
        run("c", parent="p2", metrics={"m": 3}, params={"x": "1"}),
    ]
    runs[2].parent_name = runs[1].parent_name
    figure = scatter_figure(runs, "params.x", "m")
    assert [trace["name"] for trace in figure["data"]] == ["(top level)", "parent p1", "parent p1"]
    assert len({trace["marker"]["color"] for trace in figure["data"]}) == 3


def test_user_text_is_escaped_for_plotlys_html_subset():
    runs = [run("<img src=x onerror=alert(1)>", params={"<b>k": "<i>v"}, metrics={"m%{y}": 1.0})]
    figure = scatter_figure(runs, "params.<b>k", "m%{y}")
    text = json.dumps(figure)
    assert "<img" not in text and "<b>k" not in text and "<i>v" not in text
    assert "%{y}<" not in figure["data"][0]["hovertemplate"].split("<br>")[-1]


# --- metric history ----------------------------------------------------------------------------


def test_history_draws_one_line_per_run_coloured_by_parent(sweep):
    histories = {1: [(1, 0.7), (0, 1.0)], 2: [(0, 0.8), (1, 0.2)], 3: [(0, 1.2), (1, 0.9)]}
    figure = history_lines_figure(sweep, histories, "loss")
    assert [trace["name"] for trace in figure["data"]] == ["a", "b", "c"]
    assert figure["data"][0]["x"] == [0, 1]
    assert figure["data"][0]["y"] == [1.0, 0.7]
    colors = [trace["line"]["color"] for trace in figure["data"]]
    assert colors[0] == colors[1] != colors[2]
    assert figure["layout"]["xaxis"]["title"]["text"] == "step"
    assert figure["layout"]["yaxis"]["title"]["text"] == "loss"


def test_history_lines_of_one_parents_runs_get_a_colour_each(sweep):
    histories = {1: [(0, 1.0)], 2: [(0, 0.8)]}
    figure = history_lines_figure(sweep[:2], histories, "loss")
    assert [trace["line"]["color"] for trace in figure["data"]] == PARENT_COLORS[:2]


def test_a_nan_in_a_history_is_a_gap(sweep):
    figure = valid_json(history_lines_figure(sweep[:1], {1: [(0, 1.0), (1, None), (2, math.nan), (3, 0.5)]}, "loss"))
    assert figure["data"][0]["y"] == [1.0, None, None, 0.5]
    assert figure["data"][0]["connectgaps"] is False


def test_runs_without_a_history_are_left_out(sweep):
    figure = history_lines_figure(sweep, {2: [(0, 1.0), (1, 0.5)]}, "loss")
    assert [trace["name"] for trace in figure["data"]] == ["b"]
    assert "2 without a history" in figure["layout"]["title"]["text"]


def test_many_runs_share_one_trace_per_parent_split_by_gaps():
    runs = [run(f"r{i}", parent=f"p{i % 2}", pk=i) for i in range(MAX_HISTORY_TRACES + 1)]
    histories = {i: [(0, float(i)), (1, i + 0.5)] for i in range(MAX_HISTORY_TRACES + 1)}
    figure = history_lines_figure(runs, histories, "loss")
    assert len(figure["data"]) == 2
    first = figure["data"][0]
    assert first["x"][:6] == [0, 1, None, 0, 1, None]
    assert first["y"][:3] == [0.0, 0.5, None]
    assert first["text"][:4] == ["r0", "r0", "r0", "r2"]
    assert first["opacity"] < 1 and first["line"]["width"] == 1


# --- bars --------------------------------------------------------------------------------------


def test_bars_are_sorted_best_first_by_the_goal(sweep):
    lowest = metric_bars_figure(sweep, "loss", goal="min")["data"][0]
    highest = metric_bars_figure(sweep, "acc", goal="max")["data"][0]
    assert lowest["y"] == [0.2, 0.5, 0.9]
    assert lowest["text"] == ["b", "a", "c"]
    assert highest["y"] == [0.9, 0.7, 0.6]


def test_bars_are_placed_by_run_id_and_labelled_by_name(sweep):
    sweep[1].name = sweep[0].name  # two runs of one name are still two bars
    figure = metric_bars_figure(sweep, "loss")
    assert figure["data"][0]["x"] == ["id-b", "id-a", "id-c"]
    assert figure["layout"]["xaxis"]["ticktext"] == ["a", "a", "c"]
    assert figure["data"][0]["marker"]["color"] == [PARENT_COLORS[0], PARENT_COLORS[0], PARENT_COLORS[1]]


def test_bars_leave_out_nan_and_missing_values(sweep):
    sweep[0].metrics["loss"] = math.nan
    del sweep[2].metrics["loss"]
    figure = valid_json(metric_bars_figure(sweep, "loss"))
    assert figure["data"][0]["y"] == [0.2]
    assert "2 without loss" in figure["layout"]["title"]["text"]


def test_many_bars_hide_their_labels():
    runs = [run(str(i), metrics={"m": float(i)}) for i in range(MAX_BAR_LABELS + 1)]
    figure = metric_bars_figure(runs, "m")
    assert figure["layout"]["xaxis"]["showticklabels"] is False


def test_every_builder_copes_with_no_runs():
    for figure in (
        parallel_coordinates_figure([], ["p"], "m"),
        scatter_figure([], "params.p", "m"),
        history_lines_figure([], {}, "m"),
        metric_bars_figure([], "m"),
    ):
        valid_json(figure)


# --- one colour per run, log axes ----------------------------------------------------------------


def test_a_run_has_one_colour_on_every_chart_and_its_table_row():
    runs = [
        run(f"r{i}", parent=f"p{i % 3}", params={"lr": str(10.0**-i)}, metrics={"m": float(i)}, pk=i) for i in range(25)
    ]
    colors = run_colors([r.run_id for r in runs])
    assert len(set(colors.values())) == 25  # past the ten of the palette, still one each
    assert colors == run_colors([r.run_id for r in runs])  # stable
    scatter = scatter_figure(runs, "params.lr", "m", colors=colors)
    bars = metric_bars_figure(runs, "m", colors=colors)
    history = history_lines_figure(runs, {r.pk: [(0, 1.0), (1, 2.0)] for r in runs}, "m", colors=colors)
    scatter_color = {r: c for t in scatter["data"] for r, c in zip(t["text"], t["marker"]["color"], strict=True)}
    bar_color = dict(zip(bars["data"][0]["text"], bars["data"][0]["marker"]["color"], strict=True))
    history_color = {t["name"]: t["line"]["color"] for t in history["data"]}
    for r in runs:
        assert scatter_color[r.name] == bar_color[r.name] == history_color[r.name] == colors[r.run_id]


def test_a_sweep_of_25_children_gets_a_legend_naming_each_history_line():
    runs = [run(f"child-{i}", parent="p1", metrics={"m": float(i)}, pk=i) for i in range(25)]
    history = history_lines_figure(runs, {r.pk: [(0, 1.0), (1, 2.0)] for r in runs}, "m")
    assert history["layout"]["showlegend"] is True
    assert [trace["name"] for trace in history["data"]] == [f"child-{i}" for i in range(25)]
    crowd = [run(f"child-{i}", parent="p1", pk=i) for i in range(MAX_LEGEND_ENTRIES + 1)]
    too_many = history_lines_figure(crowd, {r.pk: [(0, 1.0), (1, 2.0)] for r in crowd}, "m")
    assert too_many["layout"]["showlegend"] is False  # the hover names each line instead


def test_a_few_points_are_labelled_with_their_runs_name(sweep):
    figure = scatter_figure(sweep, "params.lr", "loss", colors=run_colors([r.run_id for r in sweep]))
    assert figure["data"][0]["mode"] == "markers+text" and figure["data"][0]["text"] == ["a", "b"]


def test_runs_stacked_on_a_grids_values_are_named_on_hover_not_beside_each_point():
    # 12 children over two values of a param (and a numeric one with two values): the names of a
    # column would print over one another.
    grid = [run(f"trial-{i}", params={"opt": "ab"[i % 2], "lr": str(0.1 * (1 + i % 2))}, metrics={"m": i / 10}, pk=i)
            for i in range(12)]  # fmt: skip
    colors = run_colors([r.run_id for r in grid])
    for x in ("params.opt", "params.lr"):
        trace = scatter_figure(grid, x, "m", colors=colors)["data"][0]
        assert trace["mode"] == "markers" and "text" not in trace
        assert trace["hovertext"][0] == "trial-0"
    spread = [run(f"trial-{i}", params={"opt": "abc"[i % 3]}, metrics={"m": i / 10}, pk=i) for i in range(6)]
    assert scatter_figure(spread, "params.opt", "m", colors=colors)["data"][0]["mode"] == "markers+text"


def test_a_param_spanning_three_decades_gets_a_log_axis(sweep):
    sweep[2].params["lr"] = "0.00001"
    scatter = scatter_figure(sweep, "params.lr", "loss")
    assert scatter["layout"]["xaxis"]["type"] == "log"
    axis = parallel_coordinates_figure(sweep, ["lr"], "loss")["data"][0]["dimensions"][0]
    assert axis["label"] == "lr (log)"
    assert axis["values"] == pytest.approx([-1, -2, -5])
    assert axis["ticktext"][0] == "1e-5" and axis["ticktext"][-1] == "1e-1"


def test_log_toggles_set_the_axes(sweep):
    figure = scatter_figure(sweep, "params.lr", "loss", log_x=True, log_y=True)
    assert figure["layout"]["xaxis"]["type"] == "log" and figure["layout"]["yaxis"]["type"] == "log"
    assert metric_bars_figure(sweep, "loss", log_y=True)["layout"]["yaxis"]["type"] == "log"
    assert history_lines_figure(sweep, {1: [(0, 1.0)]}, "loss", log_y=True)["layout"]["yaxis"]["type"] == "log"


def test_band_and_importance_charts_escape_names_for_plotlys_html_subset():
    band = Band(key="m", steps=[0, 1], count=[2, 2], mean=[1.0, 2.0], std=[0.1, 0.1], low=[0.9, 1.9], high=[1.1, 2.1])
    hostile = "<img src=x onerror=alert(1)>"
    figures = [
        band_figure("<b>m%{y}", [(hostile, "#1f77b4", band, "/compare/?parent=x")]),
        importance_figure("<b>m", [{"param": hostile, "importance": 1.0, "spread": 0, "correlation": 0.5}]),
    ]
    for figure in figures:
        text = json.dumps(valid_json(figure))
        assert "<img" not in text and "<b>m" not in text


def test_importance_names_each_params_correlation_under_it_and_shows_every_whisker_whole():
    params = [
        {"param": "lr", "importance": 0.5, "spread": 0.45, "correlation": -0.81, "log": True},
        {"param": "optimizer", "importance": 0.3, "spread": 0.1, "correlation": None},
    ]
    figure = importance_figure("loss", params)
    (bars,) = figure["data"]
    ticks = dict(zip(figure["layout"]["yaxis"]["tickvals"], figure["layout"]["yaxis"]["ticktext"], strict=True))
    # Written beside a bar, the label sat on that bar's whisker; under the name it is clear of it.
    assert "corr -0.81" in ticks["lr (log)"] and "categorical" in ticks["optimizer"]
    assert "text" not in bars
    assert figure["layout"]["xaxis"]["range"][1] >= 0.5 + 0.45


def test_long_names_are_shortened_in_the_middle_where_plotly_writes_them_and_whole_in_hovers():
    sweep = [
        run(
            f"random-forest-grid-search-trial-n_estimators-200-max_depth-{depth}",
            params={"lr": str(depth / 100)},
            metrics={"loss": depth / 10},
            pk=depth,
        )
        for depth in range(3, 9)
    ]
    colors = {each.run_id: "#123456" for each in sweep}
    scatter = valid_json(scatter_figure(sweep, "params.lr", "loss", colors=colors))
    labels = [label for trace in scatter["data"] for label in trace["text"]]
    assert labels and all(label.startswith("random-forest-grid-") and "…depth-" in label for label in labels)
    assert all(len(label) <= 28 for label in labels)
    assert all(
        name.startswith("random-forest-grid-search-trial") for trace in scatter["data"] for name in trace["hovertext"]
    )
    bars = valid_json(metric_bars_figure(sweep, "loss"))
    ticks = bars["layout"]["xaxis"]["ticktext"]
    assert len(set(ticks)) == len(ticks) and all("…depth-" in tick for tick in ticks)
    assert all(
        text.endswith(tick.rpartition("…")[2]) for text, tick in zip(bars["data"][0]["text"], ticks, strict=True)
    )
