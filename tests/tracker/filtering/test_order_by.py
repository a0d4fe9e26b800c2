"""MLflow `order_by` clauses as ORDER BY expressions: missing and NaN values last, stable ties."""

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.tracker.filtering.test_filter_language import make_run
from tracker.errors import InvalidParameterValue
from tracker.filtering import FilterError, order_by_expressions, order_runs
from tracker.models import Run
from tracker.selectors.runs import runs_matching

pytestmark = pytest.mark.django_db


def ordered(*clauses, queryset=None):
    """Run names in the APIs' order (order_runs: joins), checked to be the pages' order too
    (order_by_expressions: correlated subqueries) where no clause is a metric: the pages leave a
    metric's NaNs among the runs without it (test_the_pages_leave_a_metrics_nans_with_the_missing)."""
    queryset = Run.objects.all() if queryset is None else queryset
    by_subquery = [run.name for run in queryset.order_by(*order_by_expressions(list(clauses)))]
    by_join = [run.name for run in order_runs(queryset, list(clauses))]
    if not any(clause.lower().startswith("metric") for clause in clauses):
        assert by_join == by_subquery
    return by_join


@pytest.fixture
def ranked_runs(experiment):
    """one < two; `nan` logged NaN and `missing` logged nothing, for every entity."""
    make_run(
        "one",
        experiment=experiment,
        start_time=1000,
        end_time=5000,
        params={"p": "a"},
        tags={"t": "a"},
        metrics={"my metric": 1.0},
        summaries={"loss": 1.0},
    )
    make_run(
        "two",
        experiment=experiment,
        start_time=2000,
        end_time=6000,
        params={"p": "b"},
        tags={"t": "b"},
        metrics={"my metric": 2.0},
        summaries={"loss": 2.0},
    )
    make_run(
        "nan",
        experiment=experiment,
        start_time=3000,
        end_time=None,
        metrics={"my metric": None},
        summaries={"loss": None},
    )
    make_run("missing", experiment=experiment, start_time=4000, end_time=None)


# Runs without a value come last in both directions, newest first among themselves; a metric's
# NaN comes before the runs that never logged it, as in MLflow's stores.
@pytest.mark.parametrize(
    ("clause", "expected"),
    [
        ("metrics.`my metric`", ["one", "two", "nan", "missing"]),
        ("metrics.`my metric` ASC", ["one", "two", "nan", "missing"]),
        ("metrics.`my metric` DESC", ["two", "one", "nan", "missing"]),
        ('metric."my metric" desc', ["two", "one", "nan", "missing"]),
        ("summary.loss ASC", ["one", "two", "missing", "nan"]),
        ("summary.loss DESC", ["two", "one", "missing", "nan"]),
        ("params.p ASC", ["one", "two", "missing", "nan"]),
        ("params.p DESC", ["two", "one", "missing", "nan"]),
        ("tags.t asc", ["one", "two", "missing", "nan"]),
        ("tags.t DESC", ["two", "one", "missing", "nan"]),
        ("end_time ASC", ["one", "two", "missing", "nan"]),
        ("attributes.end_time DESC", ["two", "one", "missing", "nan"]),
    ],
)
def test_missing_and_nan_values_sort_last_in_both_directions(clause, expected, ranked_runs):
    assert ordered(clause) == expected


@pytest.mark.parametrize(
    ("clause", "expected"),
    [
        ("attributes.start_time", ["one", "two", "nan", "missing"]),
        ("start_time DESC", ["missing", "nan", "two", "one"]),
        ("created ASC", ["one", "two", "nan", "missing"]),
        ("run_name", ["missing", "nan", "one", "two"]),
        ("attributes.run_name DESC", ["two", "one", "nan", "missing"]),
    ],
)
def test_it_sorts_by_attributes(clause, expected, ranked_runs):
    assert ordered(clause) == expected


def test_without_clauses_runs_are_newest_first(ranked_runs):
    assert ordered() == ["missing", "nan", "two", "one"]


def test_ties_are_broken_by_start_time_descending_then_run_id(experiment):
    make_run("older", experiment=experiment, run_id="c" * 32, start_time=1000, metrics={"m": 1.0})
    make_run("newer-b", experiment=experiment, run_id="b" * 32, start_time=2000, metrics={"m": 1.0})
    make_run("newer-a", experiment=experiment, run_id="a" * 32, start_time=2000, metrics={"m": 1.0})
    assert ordered("metrics.m") == ["newer-a", "newer-b", "older"]
    assert ordered("metrics.m DESC") == ["newer-a", "newer-b", "older"]


def test_later_clauses_break_ties_of_earlier_ones(experiment):
    make_run("x1", experiment=experiment, params={"group": "x"}, metrics={"m": 1.0})
    make_run("x2", experiment=experiment, params={"group": "x"}, metrics={"m": 2.0})
    make_run("y1", experiment=experiment, params={"group": "y"}, metrics={"m": 1.0})
    assert ordered("params.group DESC", "metrics.m DESC") == ["y1", "x2", "x1"]


@pytest.mark.parametrize(
    ("clause", "expected"),
    [
        ("metrics.`my metric` ASC", ["one", "two", "missing", "nan"]),
        ("metrics.`my metric` DESC", ["two", "one", "missing", "nan"]),
    ],
)
def test_the_pages_leave_a_metrics_nans_with_the_missing(clause, expected, ranked_runs):
    assert [run.name for run in Run.objects.order_by(*order_by_expressions([clause]))] == expected


def test_the_expressions_end_with_the_tie_breakers(ranked_runs):
    expressions = order_by_expressions(["metrics.`my metric` DESC"])
    assert [str(e) for e in expressions[1:]] == [
        "OrderBy(F(start_time), descending=True)",
        "OrderBy(F(run_id), descending=False)",
    ]


def test_a_single_clause_given_as_text_is_one_clause(ranked_runs):
    assert [run.name for run in Run.objects.order_by(*order_by_expressions("params.p DESC"))] == [
        "two",
        "one",
        "missing",
        "nan",
    ]


def test_ordering_chains_with_a_filter_in_one_query(ranked_runs, django_assert_num_queries):
    # Expect 2 queries, one for each way of ordering that ordered() compares: the matching runs
    # sorted by a correlated subquery, and the same sorted over a join.
    with django_assert_num_queries(2):
        assert ordered("metrics.`my metric` DESC", queryset=runs_matching(Run.objects.all(), "start_time < 3500")) == [
            "two",
            "one",
            "nan",
        ]


@pytest.mark.parametrize(
    ("clause", "position", "message"),
    [
        ("metrics.m SIDEWAYS", 10, "expected ASC, DESC or the end of the clause but found 'SIDEWAYS'"),
        ("metrics.m DESC extra", 15, "expected ASC, DESC or the end of the clause but found 'extra'"),
        ("colour", 0, "Invalid attribute key 'colour'"),
        ("foo.bar", 0, "Invalid entity type 'foo'"),
        ("", 0, "expected a column to sort by"),
        ("DESC", 0, "Invalid attribute key 'DESC'"),
        ("metrics.`unterminated", 8, "unterminated string"),
        ("(metrics.m)", 0, "expected a column to sort by"),
    ],
)
def test_a_bad_clause_names_the_position_and_what_was_expected(clause, position, message):
    with pytest.raises(FilterError) as caught:
        order_by_expressions([clause])
    assert caught.value.position == position
    assert message in caught.value.message
    assert caught.value.message.startswith(f"Invalid order_by clause {clause!r} at position {position}: ")


def test_a_bad_clause_is_an_invalid_parameter_value():
    with pytest.raises(InvalidParameterValue):
        order_by_expressions(["start_time", "bogus.key"])


_CLAUSE_PIECES = st.sampled_from(
    "metrics.`my metric` | metrics.m | params.p | tags.t | summary.loss | start_time | created | run_name | "
    "attributes.end_time | foo.bar | metrics. | ASC | desc | ( | ) | , | 'x' | 1 | `".split(" | ")
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(clauses=st.lists(st.lists(_CLAUSE_PIECES | st.text(max_size=8), max_size=3).map(" ".join), max_size=3))
def test_any_clauses_either_sort_or_raise_a_filter_error(ranked_runs, clauses):
    try:
        expressions = order_by_expressions(clauses)
    except FilterError:
        return
    assert len(list(Run.objects.order_by(*expressions))) == 4
