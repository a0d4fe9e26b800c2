import math

from dashboard.charts import MAX_POINTS, history_figures, metric_history_figure, thin


def test_a_history_figure_plots_values_by_step_in_order():
    figure = metric_history_figure("loss", [(2, 0.5), (0, 1.0), (1, 0.7)])
    trace = figure["data"][0]
    assert trace["x"] == [0, 1, 2]
    assert trace["y"] == [1.0, 0.7, 0.5]
    assert figure["layout"]["title"]["text"] == "loss"


def test_nan_leaves_a_gap():
    figure = metric_history_figure("loss", [(0, 1.0), (1, None), (2, math.nan)])
    assert figure["data"][0]["y"] == [1.0, None, None]


def test_a_long_history_is_thinned_keeping_the_ends():
    points = [(i, float(i)) for i in range(100_001)]
    thinned = thin(points)
    assert len(thinned) <= MAX_POINTS
    assert thinned[0] == (0, 0.0) and thinned[-1] == (100_000, 100_000.0)


def test_only_metrics_with_several_values_get_a_figure():
    figures = history_figures([("b", 0, 1.0), ("b", 1, 2.0), ("a", 0, 1.0), ("c", 0, 1.0), ("c", 5, 1.0)])
    assert [f["layout"]["title"]["text"] for f in figures] == ["b", "c"]


def test_keys_are_escaped_for_plotlys_html_subset():
    figure = metric_history_figure("<b>x</b>%{y}", [(0, 1.0), (1, 2.0)])
    assert "<b>" not in figure["layout"]["title"]["text"]
    assert "%{y}" not in figure["data"][0]["hovertemplate"].split("<br>")[1]
