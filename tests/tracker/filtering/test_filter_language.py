"""The filter language: MLflow's search_runs grammar plus OR and parentheses, compiled to Q."""

import math
import re

import pytest
from django.db import connection
from django.db.models import Q
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.factories import RunFactory
from tracker import services
from tracker.errors import InvalidParameterValue
from tracker.filtering.ast import (
    MAX_COMPARISONS,
    MAX_FILTER_LENGTH,
    MAX_NESTING,
    And,
    Column,
    Comparison,
    FilterError,
    Or,
)
from tracker.filtering.compiler import compile_filter
from tracker.filtering.ordering import order_by_expressions
from tracker.filtering.parser import parse_filter
from tracker.models import LatestMetric, Param, Run, RunSummary, RunTag
from tracker.selectors.runs import runs_matching
from tracker.services import KeyValue, MetricInput
from tracker.services import datasets as datasets_service

pytestmark = pytest.mark.django_db

# Hypothesis runs many examples against one fixture's rows; the queries only read them.
fixture_settings = settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def make_run(name, *, params=None, tags=None, metrics=None, summaries=None, **fields):
    """A run with exactly these params, tags, latest metrics (None = NaN) and summary best values."""
    run = RunFactory(name=name, **fields)
    Param.objects.bulk_create([Param(run=run, key=k, value=v) for k, v in (params or {}).items()])
    RunTag.objects.bulk_create([RunTag(run=run, key=k, value=v) for k, v in (tags or {}).items()])
    LatestMetric.objects.bulk_create(
        [LatestMetric(run=run, key=k, value=v, timestamp=0, step=0) for k, v in (metrics or {}).items()]
    )
    RunSummary.objects.bulk_create(
        [RunSummary(run=run, key=k, best_value=v, computed_at=0) for k, v in (summaries or {}).items()]
    )
    return run


def dataset_input(name, digest, context=None):
    """A dataset as mlflow.log_input sends it, with its context tag when given."""
    tags = [] if context is None else [KeyValue("mlflow.data.context", context)]
    return datasets_service.DatasetInput(name=name, digest=digest, source_type="local", source="{}", tags=tags)


def names(filter_text):
    return {run.name for run in runs_matching(Run.objects.all(), filter_text)}


@pytest.fixture
def four_runs(experiment):
    """a and b are ordinary, c has NaN metrics and odd-cased values, d has nothing logged."""
    make_run(
        "a",
        experiment=experiment,
        user_id="alice",
        status="FINISHED",
        start_time=1000,
        end_time=2000,
        params={"optimizer": "adam"},
        tags={"team": "vision"},
        metrics={"loss": 0.1},
        summaries={"loss": 0.05},
    )
    make_run(
        "b",
        experiment=experiment,
        user_id="bob",
        status="FAILED",
        start_time=2000,
        end_time=None,
        params={"optimizer": "sgd"},
        tags={"team": "nlp"},
        metrics={"loss": 0.5},
        summaries={"loss": 0.4},
    )
    make_run(
        "c",
        experiment=experiment,
        user_id="carol",
        status="RUNNING",
        start_time=3000,
        end_time=None,
        params={"optimizer": "Adam"},
        tags={"team": "Vision"},
        metrics={"loss": None},
        summaries={"loss": None},
    )
    make_run("d", experiment=experiment, user_id="", status="KILLED", start_time=4000, end_time=9000)


# --- parsing -----------------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["", "   ", "\n\t", None])
def test_blank_text_is_no_filter_and_matches_every_run(text, four_runs):
    assert parse_filter(text) == And(())
    assert compile_filter(text) == Q()
    assert names(text) == {"a", "b", "c", "d"}


@pytest.mark.parametrize(
    ("text", "column"),
    [
        ("metrics.loss > 0", Column("metrics", "loss")),
        ("metric.loss > 0", Column("metrics", "loss")),
        ("params.lr = 'x'", Column("params", "lr")),
        ("param.lr = 'x'", Column("params", "lr")),
        ("parameter.lr = 'x'", Column("params", "lr")),
        ("parameters.lr = 'x'", Column("params", "lr")),
        ("tags.team = 'x'", Column("tags", "team")),
        ("tag.team = 'x'", Column("tags", "team")),
        ("attributes.status = 'x'", Column("attributes", "status")),
        ("attribute.status = 'x'", Column("attributes", "status")),
        ("attr.status = 'x'", Column("attributes", "status")),
        ("run.status = 'x'", Column("attributes", "status")),
        ("status = 'x'", Column("attributes", "status")),
        ("summary.loss > 0", Column("summary", "loss")),
        ("datasets.name = 'x'", Column("datasets", "name")),
        ("dataset.digest = 'x'", Column("datasets", "digest")),
        ("Datasets.context = 'x'", Column("datasets", "context")),
        ("created > 0", Column("attributes", "start_time")),
        ("attributes.created > 0", Column("attributes", "start_time")),
        ("`run name` = 'x'", Column("attributes", "run_name")),
    ],
)
def test_it_reads_every_entity_alias(text, column):
    assert parse_filter(text).column == column


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("metrics.`my metric` > 0", "my metric"),
        ('metrics."my metric" > 0', "my metric"),
        ("tags.mlflow.parentRunId = 'x'", "mlflow.parentRunId"),
        ("tags.`mlflow.parentRunId` = 'x'", "mlflow.parentRunId"),
        ("params.data/path:v-2 = 'x'", "data/path:v-2"),
    ],
)
def test_it_reads_quoted_and_dotted_keys(text, key):
    assert parse_filter(text).column.key == key


@pytest.mark.parametrize(
    ("literal", "value"),
    [("42", 42), ("-3", -3), ("+3", 3), ("0.5", 0.5), (".5", 0.5), ("1e-3", 0.001), ("-2.5E+2", -250.0)],
)
def test_it_reads_integers_floats_scientific_and_negative_numbers(literal, value):
    assert parse_filter(f"metrics.m = {literal}").value == value


@pytest.mark.parametrize(
    ("literal", "value"),
    [
        ("'adam'", "adam"),
        ('"adam"', "adam"),
        ("''", ""),
        ("'it''s'", "it's"),
        ("'it\\'s'", "it's"),
        ('"say ""hi"""', 'say "hi"'),
        ("'C:\\\\'", "C:\\"),
        ("'50\\%'", "50\\%"),  # other backslashes are kept, for LIKE
    ],
)
def test_it_reads_quoted_strings_with_their_escapes(literal, value):
    assert parse_filter(f"params.p = {literal}").value == value


def test_keywords_are_case_insensitive():
    lower = parse_filter("tags.t like 'x' and tags.t ilike 'y' or tags.t not in ('z') and tags.t is not null")
    upper = parse_filter("tags.t LIKE 'x' AND tags.t ILIKE 'y' OR tags.t NOT IN ('z') AND tags.t IS NOT NULL")
    assert lower == upper


def test_and_binds_tighter_than_or():
    a, b, c = (Comparison(Column("metrics", k), ">", 0) for k in "abc")
    assert parse_filter("metrics.a > 0 OR metrics.b > 0 AND metrics.c > 0") == Or((a, And((b, c))))
    assert parse_filter("(metrics.a > 0 OR metrics.b > 0) AND metrics.c > 0") == And((Or((a, b)), c))


# --- metrics -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("metrics.loss = 0.1", {"a"}),
        ("metrics.loss != 0.1", {"b"}),
        ("metrics.loss < 0.5", {"a"}),
        ("metrics.loss <= 0.5", {"a", "b"}),
        ("metrics.loss > 0.1", {"b"}),
        ("metrics.loss >= 0.1", {"a", "b"}),
        ("metrics.loss IS NULL", {"d"}),
        ("metrics.loss IS NOT NULL", {"a", "b", "c"}),
    ],
    ids=lambda value: value if isinstance(value, str) else "",
)
def test_it_matches_metrics_by_their_latest_value(text, expected, four_runs):
    assert names(text) == expected


@pytest.mark.parametrize(
    "text",
    ["metrics.loss != 0", "metrics.loss > -1e999", "metrics.loss < 1e999", "metrics.loss != 0.1", "metrics.loss >= 0"],
)
def test_a_nan_metric_never_matches_a_comparison(text, four_runs):
    assert "c" not in names(text)


def test_a_nan_logged_through_the_write_path_never_matches(experiment):
    run = services.run_create(experiment=experiment, name="nan")
    services.run_log_batch(run=run, metrics=[MetricInput("loss", math.nan, timestamp=1)])
    assert names("metrics.loss != 1") == set()
    assert names("metrics.loss < 1e999 OR metrics.loss > -1e999") == set()
    assert names("metrics.loss IS NOT NULL") == {"nan"}


def test_it_compares_a_metric_with_its_latest_value_not_its_history(experiment):
    run = services.run_create(experiment=experiment, name="trained")
    services.run_log_batch(
        run=run, metrics=[MetricInput("loss", 0.9, timestamp=1, step=0), MetricInput("loss", 0.2, timestamp=2, step=1)]
    )
    assert names("metrics.loss < 0.5") == {"trained"}
    assert names("metrics.loss > 0.5") == set()


# --- summaries ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("summary.loss = 0.05", {"a"}),
        ("summary.loss != 0.05", {"b"}),
        ("summary.loss < 0.4", {"a"}),
        ("summary.loss <= 0.4", {"a", "b"}),
        ("summary.loss > 0.05", {"b"}),
        ("summary.loss >= 0.05", {"a", "b"}),
        ("summary.loss IS NULL", {"d"}),
        ("summary.loss IS NOT NULL", {"a", "b", "c"}),
    ],
    ids=lambda value: value if isinstance(value, str) else "",
)
def test_it_matches_summaries_by_their_best_value(text, expected, four_runs):
    assert names(text) == expected


# --- params and tags ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("params.optimizer = 'adam'", {"a"}),
        ("params.optimizer != 'adam'", {"b", "c"}),  # not d: it has no optimizer at all (MLflow)
        ("params.optimizer LIKE 'a%'", {"a"}),
        ("params.optimizer ILIKE 'a%'", {"a", "c"}),
        ("params.optimizer IN ('adam', 'sgd')", {"a", "b"}),
        ("params.optimizer NOT IN ('adam')", {"b", "c"}),
        # f"IN {tuple(values)}": one value ends in a comma, and MLflow reads a Python literal.
        ("params.optimizer IN ('adam',)", {"a"}),
        ("params.optimizer NOT IN ('adam', 'sgd',)", {"c"}),
        ("params.optimizer IS NULL", {"d"}),
        ("params.optimizer IS NOT NULL", {"a", "b", "c"}),
    ],
    ids=lambda value: value if isinstance(value, str) else "",
)
def test_it_matches_params(text, expected, four_runs):
    assert names(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("tags.team = 'vision'", {"a"}),
        ("tags.team != 'vision'", {"b", "c"}),
        ("tags.team LIKE '%ision'", {"a", "c"}),
        ("tags.team LIKE 'v%'", {"a"}),
        ("tags.team ILIKE 'V%'", {"a", "c"}),
        ("tags.team IN ('vision', 'nlp')", {"a", "b"}),
        ("tags.team NOT IN ('vision', 'nlp')", {"c"}),
        ("tags.team IS NULL", {"d"}),
        ("tags.team IS NOT NULL", {"a", "b", "c"}),
    ],
    ids=lambda value: value if isinstance(value, str) else "",
)
def test_it_matches_tags(text, expected, four_runs):
    assert names(text) == expected


@pytest.fixture
def runs_with_datasets(experiment):
    """a trained on train and scored on test; b trained on train with no context; c logged none."""
    for name, inputs in [
        ("a", [("train", "d1", "training"), ("test", "d2", "evaluation")]),
        ("b", [("train", "d1", None)]),
        ("c", []),
    ]:
        run = make_run(name, experiment=experiment)
        datasets_service.run_log_inputs(run=run, datasets=[dataset_input(*given) for given in inputs])


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("datasets.name = 'train'", {"a", "b"}),
        ("dataset.name = 'test'", {"a"}),
        # Some dataset of the run is not named train: MLflow's meaning of != (and of NOT IN).
        ("datasets.name != 'train'", {"a"}),
        ("datasets.name NOT IN ('train')", {"a"}),
        ("datasets.name IN ('test', 'other')", {"a"}),
        ("datasets.name LIKE 't%'", {"a", "b"}),
        ("datasets.digest = 'd1'", {"a", "b"}),
        ("datasets.context = 'training'", {"a"}),
        ("datasets.context ILIKE 'EVAL%'", {"a"}),
        # An input without a context matches no comparison on it, not even !=.
        ("datasets.context != 'training'", {"a"}),
        ("datasets.context NOT IN ('training', 'evaluation')", set()),
        ("datasets.name IS NULL", {"c"}),
        ("datasets.name IS NOT NULL", {"a", "b"}),
        ("datasets.context IS NULL", {"b", "c"}),
        # Each comparison may match a different input of the run, as in MLflow.
        ("datasets.name = 'test' AND datasets.context = 'training'", {"a"}),
        ("datasets.name = 'train' AND run_name = 'b'", {"b"}),
    ],
)
def test_it_matches_a_run_by_the_datasets_it_logged(text, expected, runs_with_datasets):
    assert names(text) == expected


def test_sorting_by_a_dataset_is_refused_with_the_reason():
    with pytest.raises(FilterError, match="cannot sort by datasets.name: a run may have logged any number"):
        order_by_expressions(["datasets.name DESC"])


def test_it_matches_the_parent_run_id_tag(experiment):
    parent = make_run("parent", experiment=experiment)
    RunFactory(name="child", parent=parent)
    assert names(f"tags.mlflow.parentRunId = '{parent.run_id}'") == {"child"}
    assert names("tags.`mlflow.parentRunId` IS NULL") == {"parent"}


def test_the_parent_run_id_filter_finds_exactly_the_runs_carrying_that_tag_after_moves(experiment):
    # The filter reads Run.parent_run_id (tracker/filtering/); ingest must keep it equal to the tag.
    parent_tag = "mlflow.parentRunId"
    parent = services.run_create(experiment=experiment, name="parent")
    other = services.run_create(experiment=experiment, name="other")
    unborn = "f" * 32  # a parent that has not arrived yet

    def child(name, parent_run_id):
        return services.run_create(experiment=experiment, name=name, tags=[KeyValue(parent_tag, parent_run_id)])

    child("stays", parent.run_id)
    services.run_set_tag(run=child("moved", parent.run_id), key=parent_tag, value=other.run_id)
    services.run_delete_tag(run=child("cut loose", parent.run_id), key=parent_tag)
    child("waiting", unborn)

    for parent_run_id, expected in ((parent.run_id, {"stays"}), (other.run_id, {"moved"}), (unborn, {"waiting"})):
        carrying = RunTag.objects.filter(key=parent_tag, value=parent_run_id).values_list("run__name", flat=True)
        assert names(f"tags.mlflow.parentRunId = '{parent_run_id}'") == set(carrying) == expected
    assert names(f"tags.mlflow.parentRunId IN ('{parent.run_id}', '{unborn}')") == {"stays", "waiting"}
    assert names(f"tags.mlflow.parentRunId != '{parent.run_id}'") == {"moved", "waiting"}
    assert names("tags.mlflow.parentRunId IS NULL") == {"parent", "other", "cut loose"}


def test_equality_compares_the_whole_value_beyond_the_indexed_prefix(experiment):
    long_value = "x" * 300
    make_run("long", experiment=experiment, params={"p": long_value}, tags={"t": long_value})
    make_run("same-prefix", experiment=experiment, params={"p": "x" * 299 + "y"}, tags={"t": "x" * 299 + "y"})
    assert names(f"params.p = '{long_value}'") == {"long"}
    assert names(f"tags.t IN ('{long_value}', 'other')") == {"long"}


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ("a*b", {"a*b"}),
        ("a?b", {"a?b"}),
        ("a[b]", {"a[b]"}),
        ("a]b", {"a]b"}),
        ("a_b", {"a*b", "a?b", "a]b", "a%b", "a_b", "axb", "a\\b"}),
        ("a\\_b", {"a_b"}),
        ("a\\%b", {"a%b"}),
        ("a%", {"a*b", "a?b", "a[b]", "a]b", "a%b", "a_b", "axb", "a\\b"}),
        ("a\\\\\\\\b", {"a\\b"}),  # the string holds a\\b: an escaped backslash
        ("A%", set()),
    ],
)
def test_like_takes_percent_and_underscore_as_wildcards_and_nothing_else(pattern, expected, experiment):
    for value in ["a*b", "a?b", "a[b]", "a]b", "a%b", "a_b", "axb", "a\\b"]:
        make_run(value, experiment=experiment, tags={"v": value})
    assert names(f"tags.v LIKE '{pattern}'") == expected


def test_like_is_case_sensitive_and_ilike_is_not_on_this_database(experiment):
    make_run("lower", experiment=experiment, tags={"model": "resnet"})
    make_run("upper", experiment=experiment, tags={"model": "ResNet"})
    assert names("tags.model LIKE 'res%'") == {"lower"}, connection.vendor
    assert names("tags.model LIKE 'Res%'") == {"upper"}, connection.vendor
    assert names("tags.model ILIKE 'RES%'") == {"lower", "upper"}, connection.vendor
    assert names("run_name LIKE 'UP%'") == set(), connection.vendor


# --- attributes --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("run_name = 'a'", {"a"}),
        ("attributes.run_name != 'a'", {"b", "c", "d"}),
        ("run_name LIKE '_'", {"a", "b", "c", "d"}),
        ("run_name ILIKE 'A'", {"a"}),
        ("run_name IN ('a', 'b')", {"a", "b"}),
        ("run_name NOT IN ('a', 'b')", {"c", "d"}),
        ("status = 'FINISHED'", {"a"}),
        ("status != 'FINISHED'", {"b", "c", "d"}),
        ("status IN ('FINISHED', 'FAILED')", {"a", "b"}),
        ("status NOT IN ('FINISHED', 'FAILED')", {"c", "d"}),
        ("status LIKE 'F%'", {"a", "b"}),
        ("status ILIKE 'f%'", {"a", "b"}),
        ("status IS NULL", set()),
        ("user_id = 'bob'", {"b"}),
        ("user_id IS NULL", {"d"}),
        ("user_id IS NOT NULL", {"a", "b", "c"}),
        ("lifecycle_stage = 'active'", {"a", "b", "c", "d"}),
        ("artifact_uri LIKE '%'", {"a", "b", "c", "d"}),
        ("artifact_uri IS NULL", {"a", "b", "c", "d"}),  # the factory leaves it empty
    ],
    ids=lambda value: value if isinstance(value, str) else "",
)
def test_it_matches_string_attributes(text, expected, four_runs):
    assert names(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("start_time = 2000", {"b"}),
        ("start_time != 2000", {"a", "c", "d"}),
        ("start_time < 2000", {"a"}),
        ("start_time <= 2000", {"a", "b"}),
        ("start_time > 2000", {"c", "d"}),
        ("start_time >= 2000", {"b", "c", "d"}),
        ("created >= 3000", {"c", "d"}),
        ("attributes.created < 1500.5", {"a"}),
        ("start_time > 1999.5", {"b", "c", "d"}),
        ("start_time = 2000.5", set()),
        ("start_time < 99999999999999999999999", {"a", "b", "c", "d"}),
        ("start_time > -1e999", {"a", "b", "c", "d"}),
        ("end_time > 1000", {"a", "d"}),
        ("end_time != 2000", {"d"}),  # a missing end time is not "not equal"
        ("end_time IS NULL", {"b", "c"}),
        ("end_time IS NOT NULL", {"a", "d"}),
    ],
    ids=lambda value: value if isinstance(value, str) else "",
)
def test_it_matches_time_attributes(text, expected, four_runs):
    assert names(text) == expected


def test_it_matches_run_ids_in_a_list(four_runs):
    a, b = Run.objects.get(name="a"), Run.objects.get(name="b")
    assert names(f"run_id IN ('{a.run_id}', '{b.run_id}')") == {"a", "b"}
    assert names(f"attributes.run_id = '{a.run_id}'") == {"a"}


# --- AND, OR, parentheses ----------------------------------------------------------------------


def test_and_requires_both_sides(four_runs):
    assert names("metrics.loss < 1 AND params.optimizer = 'sgd'") == {"b"}


def test_or_takes_either_side(four_runs):
    assert names("params.optimizer = 'sgd' OR tags.team = 'vision'") == {"a", "b"}


def test_and_binds_tighter_than_or_when_matching(four_runs):
    assert names("metrics.loss < 0.2 OR params.optimizer = 'sgd' AND tags.team = 'vision'") == {"a"}
    assert names("(metrics.loss < 0.2 OR params.optimizer = 'sgd') AND tags.team = 'nlp'") == {"b"}


def test_nested_parentheses_match(four_runs):
    assert names("((status = 'KILLED') OR ((user_id = 'alice') AND (start_time < 1500)))") == {"a", "d"}


def test_a_filter_is_one_query(four_runs, django_assert_num_queries):
    # Expect 1 query: the runs, with every condition as a subquery inside it.
    with django_assert_num_queries(1):
        list(runs_matching(Run.objects.all(), "metrics.loss < 1 AND (tags.team = 'nlp' OR params.optimizer IS NULL)"))


def test_values_reach_the_database_as_parameters_never_as_sql(four_runs):
    sql, params = runs_matching(
        Run.objects.all(), "tags.team = 'x''; DROP TABLE tracker_run; --'"
    ).query.sql_with_params()
    assert "DROP" not in sql
    assert "x'; DROP TABLE tracker_run; --" in params
    assert names("tags.team = 'x''; DROP TABLE tracker_run; --'") == set()


def test_matching_chains_with_other_queryset_methods(four_runs, experiment):
    assert runs_matching(Run.objects.in_experiment(experiment), "metrics.loss > 0").in_start_order().count() == 2


# --- errors ------------------------------------------------------------------------------------


def test_a_bad_filter_names_the_position_and_what_was_expected():
    with pytest.raises(FilterError) as caught:
        parse_filter("metrics.loss < 1 AND metrics.acc foo 1")
    assert caught.value.position == 33
    assert caught.value.expected.startswith("a comparison operator")
    assert caught.value.message == (
        "Invalid filter at position 33: expected a comparison operator "
        "(=, !=, <, <=, >, >=, LIKE, ILIKE, IN, NOT IN, IS) but found 'foo'"
    )


def test_a_filter_error_is_an_invalid_parameter_value_answered_with_400():
    with pytest.raises(InvalidParameterValue) as caught:
        parse_filter("bogus")
    assert caught.value.http_status == 400
    assert caught.value.error_code == "INVALID_PARAMETER_VALUE"


@pytest.mark.parametrize(
    ("text", "position", "message"),
    [
        ("tags.team = 'vision", 12, "unterminated string"),
        ("metrics.`my metric > 1", 8, "unterminated string"),
        ("foo.bar = 1", 0, "Invalid entity type 'foo'. Valid: metrics, params, tags, attributes, summary"),
        ("attributes.colour = 'red'", 11, "Invalid attribute key 'colour'"),
        ("colour = 'red'", 0, "Invalid attribute key 'colour'"),
        ("datasets.size = 'x'", 9, "Invalid dataset key 'size'. Valid: name, digest, context"),
        ("datasets.name > 'x'", 14, "datasets.name is a string, so it cannot be compared with >"),
        ("datasets.name = 3", 16, "expected a quoted string to compare datasets.name with"),
        ("metrics = 1", 0, "expected '.' and a key after 'metrics'"),
        ("metrics. = 1", 8, "expected a key after 'metrics.'"),
        ("metrics.loss <", 14, "expected a number to compare metrics.loss with but found the end of the filter"),
        ("metrics.loss", 12, "expected a comparison operator"),
        ("metrics.loss > 1 metrics.acc > 1", 17, "expected AND, OR or the end of the filter but found 'metrics.acc'"),
        ("metrics.loss > 1)", 16, "expected AND, OR or the end of the filter but found ')'"),
        ("(metrics.loss > 1", 17, "expected AND, OR or ')' to close the '(' at position 0"),
        ("()", 1, "expected a column"),
        ("metrics.loss > 1 AND", 20, "expected a column"),
        ("AND metrics.loss > 1", 0, "expected a column"),
        ("status IN ()", 11, "expected a quoted string in the list of values"),
        ("status IN ('a',,)", 15, "expected a quoted string in the list of values"),
        ("status IN ('a' 'b')", 15, "expected ',' or ')'"),
        ("status IN 'a'", 10, "expected '(' to start the list of values"),
        ("status NOT 'a'", 11, "expected IN after NOT"),
        ("tags.t IS 'a'", 10, "expected NULL or NOT NULL after IS"),
        ("tags.t IS NOT 'a'", 14, "expected NULL after IS NOT"),
        ("metrics.loss = 'low'", 15, "expected a number to compare metrics.loss with but found 'low'"),
        ("start_time > 'yesterday'", 13, "expected a number to compare attributes.start_time with"),
        ("params.lr = 0.1", 12, "expected a quoted string to compare params.lr with (e.g. 'my-value') but found '0.1'"),
        ("tags.t = vision", 9, "expected a quoted string to compare tags.t with"),
        ("metrics.loss LIKE '%'", 13, "metrics.loss is a number, so it cannot be compared with LIKE"),
        ("metrics.loss IN (1)", 13, "cannot be compared with IN"),
        ("start_time IN ('1')", 11, "cannot be compared with IN"),
        ("params.lr > '0.1'", 10, "params.lr is a string, so it cannot be compared with >"),
        ("metrics.loss == 1", 14, "expected a number"),
        ("metrics.loss > 1 # comment", 17, "found '#'"),
    ],
)
def test_a_bad_filter_names_the_position_and_the_problem(text, position, message):
    with pytest.raises(FilterError) as caught:
        parse_filter(text)
    assert caught.value.position == position
    assert message in caught.value.message
    assert caught.value.message.startswith(f"Invalid filter at position {position}: ")


def test_a_filter_longer_than_the_limit_is_refused_before_parsing():
    with pytest.raises(FilterError, match=f"the limit is {MAX_FILTER_LENGTH}"):
        parse_filter("status = '" + "x" * MAX_FILTER_LENGTH + "'")


def test_parentheses_deeper_than_the_limit_are_refused():
    parse_filter("(" * MAX_NESTING + "status = 'x'" + ")" * MAX_NESTING)
    with pytest.raises(FilterError) as caught:
        parse_filter("(" * (MAX_NESTING + 1) + "status = 'x'" + ")" * (MAX_NESTING + 1))
    assert caught.value.position == MAX_NESTING
    assert "parentheses nest more than" in caught.value.message


def test_more_comparisons_than_the_limit_are_refused():
    with pytest.raises(FilterError, match=f"at most {MAX_COMPARISONS} comparisons"):
        parse_filter(" OR ".join(["status = 'x'"] * (MAX_COMPARISONS + 1)))


@pytest.mark.parametrize("char", ["\x00", "\ud800"])
def test_characters_no_database_can_take_are_refused(char):
    with pytest.raises(FilterError) as caught:
        parse_filter(f"tags.t = 'a{char}'")
    assert caught.value.position == 11


def test_a_filter_that_is_not_text_is_refused():
    with pytest.raises(FilterError, match="expected text but found int"):
        parse_filter(42)


# --- the limits still run on the database ------------------------------------------------------


def test_the_deepest_and_the_longest_allowed_filters_run(four_runs):
    deepest = "(" * MAX_NESTING + "tags.team = 'nlp'" + ")" * MAX_NESTING
    assert names(deepest) == {"b"}
    widest = " OR ".join(f"(tags.t{i} = 'v' AND metrics.m{i} != {i})" for i in range(MAX_COMPARISONS // 2))
    assert names(widest) == set()
    longest_list = "run_name IN (" + ", ".join(f"'{i}'" for i in range(1200)) + ", 'a')"
    assert len(longest_list) < MAX_FILTER_LENGTH
    assert names(longest_list) == {"a"}


# --- properties --------------------------------------------------------------------------------


_FILTER_CHARACTERS = "metrics.params tags`'\"()=!<>,%_\\ ANDORISNULLIKE0123456789-+e"


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200) | st.text(alphabet=_FILTER_CHARACTERS, max_size=80))
def test_any_text_either_parses_or_raises_a_filter_error(text):
    try:
        parse_filter(text)
    except FilterError as error:
        assert 0 <= error.position <= len(text)


def sql_string(text):
    return "'" + text.replace("\\", "\\\\").replace("'", "''") + "'"


# Pieces of filters, right and wrong, that hypothesis strings together. Some draws are
# well-typed comparisons, so that plenty of examples get past the parser to the database.
_COLUMNS = (
    "metrics.loss | metrics.`my metric` | params.optimizer | tags.team | tags.mlflow.runName | summary.loss | "
    "attributes.status | run_name | status | run_id | start_time | end_time | created | user_id | "
    "lifecycle_stage | artifact_uri | datasets.name | dataset.context | datasets.digest | datasets.size | "
    "foo.bar | metrics. | bogus | tags.`" + "k" * 300 + "`"
).split(" | ")
_OPERATOR_WORDS = "= | != | < | <= | > | >= | == | <> | LIKE | ilike | IN | NOT IN | NOT | IS | IS NULL | IS NOT NULL"
_OPERATORS = _OPERATOR_WORDS.split(" | ")
_LITERALS = (
    "'adam' | '%' | '_' | 'a''b' | '\\' | \"x\" | ' | ` | 0 | -1.5e3 | 1e999 | -1e999 | 1e-400 | 4.9e-324 | "
    "2.2e-308 | 99999999999999999999999 | " + "1" * 40 + " | .5 | +3 | 9223372036854775808 | -9223372036854775809 | "
    "('FINISHED', 'FAILED') | ('a',) | () | ('" + "x" * 300 + "')"
).split(" | ")
_CONNECTIVES = "AND | or | ( | ) | , | NULL".split(" | ")
_numbers = st.integers().map(str) | st.floats(allow_nan=False, allow_infinity=False).map(repr)
_values = st.sampled_from(_LITERALS) | st.text(max_size=12).map(sql_string) | _numbers
_well_typed = (
    st.tuples(
        st.sampled_from(["metrics.loss", "summary.loss", "start_time", "end_time"]),
        st.sampled_from(["=", "!=", "<", "<=", ">", ">="]),
        _numbers,
    )
    | st.tuples(
        st.sampled_from(["params.optimizer", "tags.team", "run_name", "status"]),
        st.sampled_from(["=", "!=", "LIKE", "ILIKE"]),
        st.text(max_size=12).map(sql_string),
    )
    | st.tuples(st.sampled_from(_COLUMNS), st.sampled_from(["IS NULL", "IS NOT NULL"]), st.just(""))
).map(" ".join)
_comparison_shaped = _well_typed | st.tuples(st.sampled_from(_COLUMNS), st.sampled_from(_OPERATORS), _values).map(
    " ".join
)
_piece = _comparison_shaped | st.sampled_from(_COLUMNS + _OPERATORS + _CONNECTIVES) | _values
_grammar_shaped = st.lists(_comparison_shaped, min_size=1, max_size=4).map(
    lambda clauses: " AND ".join(clauses[:2]) + "".join(f" OR ({clause})" for clause in clauses[2:])
) | st.lists(_piece, max_size=10).map(" ".join)


@fixture_settings
@given(text=_grammar_shaped)
def test_grammar_shaped_text_either_runs_or_raises_a_filter_error(four_runs, text):
    try:
        list(runs_matching(Run.objects.all(), text))
    except FilterError:
        pass


@pytest.mark.parametrize(
    "text",
    [
        "metrics.loss > 4.9e-324",
        "metrics.loss < 1e999",
        "metrics.loss = 99999999999999999999999",
        "metrics.loss != " + "9" * 400,
        "summary.loss >= -1e999",
        "start_time > 4.9e-324",
        "start_time < 9223372036854775808",
        "start_time >= -9223372036854775809",
        "end_time != 1e999",
        "created = " + "1" * 40,
        "tags.`" + "k" * 300 + "` = 'v'",
        "metrics.`" + "k" * 300 + "` > 0",
        "params.p = '" + "é" * 300 + "'",
        "tags.t LIKE '\\\\'",
        "tags.t ILIKE '%\\\\'",
        "run_name LIKE '[*?]'",
    ],
)
def test_extreme_numbers_keys_and_patterns_reach_the_database_safely(text, four_runs):
    assert names(text) <= {"a", "b", "c", "d"}


# A reference evaluation in Python, written from the rules in tracker/filtering/parser.py's docstring,
# against which the database's answers are checked.


def like_regex(pattern, *, ignore_case):
    parts, at = [], 0
    while at < len(pattern):
        if pattern[at] == "\\" and at + 1 < len(pattern):
            parts.append(re.escape(pattern[at + 1]))
            at += 2
            continue
        parts.append({"%": ".*", "_": "."}.get(pattern[at], re.escape(pattern[at])))
        at += 1
    return re.compile("".join(parts), re.DOTALL | (re.IGNORECASE if ignore_case else 0))


_COMPARE = {
    "=": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
    "LIKE": lambda a, b: like_regex(b, ignore_case=False).fullmatch(a) is not None,
    "ILIKE": lambda a, b: like_regex(b, ignore_case=True).fullmatch(a) is not None,
    "IN": lambda a, b: a in b,
    "NOT IN": lambda a, b: a not in b,
}
_MISSING = object()


def expected_match(node, run):
    if isinstance(node, And):
        return all(expected_match(child, run) for child in node.children)
    if isinstance(node, Or):
        return any(expected_match(child, run) for child in node.children)
    if node.column.entity == "datasets":
        # Some input matches; an input without the field (a context) never does.
        present = [given[node.column.key] for given in run["datasets"] if given[node.column.key] is not None]
        if node.operator in ("IS NULL", "IS NOT NULL"):
            return (not present) == (node.operator == "IS NULL")
        return any(_COMPARE[node.operator](value, node.value) for value in present)
    actual = run[node.column.entity].get(node.column.key, _MISSING)
    if node.operator in ("IS NULL", "IS NOT NULL"):
        is_missing = actual is _MISSING or (node.column.entity == "attributes" and actual in (None, ""))
        return is_missing == (node.operator == "IS NULL")
    if actual is _MISSING or actual is None:  # no row, a NaN, a missing end time: never matches
        return False
    return _COMPARE[node.operator](actual, node.value)


_ORACLE_RUNS = [
    dict(
        name="r1",
        user_id="u1",
        start_time=1000,
        end_time=2000,
        params={"p": "a_b", "q": "x"},
        tags={"t": "A%b"},
        metrics={"m": 0.5, "n": -1.0},
        summaries={"m": 0.25},
        datasets=[("ab", "d1", "training"), ("a_b", "d2", None)],
    ),
    dict(
        name="r2",
        user_id="",
        start_time=2000,
        end_time=None,
        params={"p": "a*b"},
        tags={"t": "a[b]", "u": ""},
        metrics={"m": None},
        summaries={"m": None},
        datasets=[("A%b", "d1", None)],
    ),
    dict(
        name="r3",
        user_id="u2",
        start_time=3000,
        end_time=3500,
        params={"p": "A\\b", "q": "y"},
        tags={"t": "ab"},
        metrics={"m": 2.0, "n": 1e300},
        summaries={},
        datasets=[("ab", "d3", "a[b]"), ("x", "d1", "")],
    ),
    dict(
        name="r4",
        user_id="u1",
        start_time=4000,
        end_time=None,
        params={},
        tags={},
        metrics={},
        summaries={},
        datasets=[],
    ),
]
_STRING_POOL = [
    "training",
    "d1",
    "d3",
    "a_b",
    "a*b",
    "A\\b",
    "A%b",
    "a[b]",
    "ab",
    "x",
    "y",
    "",
    "r1",
    "u1",
    "a%",
    "A%",
    "%b",
    "_",
    "a\\_b",
    "%[%",
    "a?b",
    "%\\%%",
    "a\\b",
    "%\\\\%",
]
_string_value = st.sampled_from(_STRING_POOL) | st.text(alphabet="aAbB_%*?[]\\'", max_size=5)
_number_value = st.sampled_from([0, 0.5, -1.0, 2.0, 1e300, 1000, 2000, 3500, 4000]) | st.floats(
    min_value=-1e6, max_value=1e6, allow_nan=False
)
_numeric_columns = [
    ("metrics", "m"),
    ("metrics", "n"),
    ("summary", "m"),
    ("attributes", "start_time"),
    ("attributes", "end_time"),
]
_string_columns = [
    ("params", "p"),
    ("params", "q"),
    ("tags", "t"),
    ("tags", "u"),
    ("attributes", "run_name"),
    ("attributes", "user_id"),
    ("datasets", "name"),
    ("datasets", "digest"),
    ("datasets", "context"),
]


@st.composite
def comparisons(draw):
    if draw(st.booleans()):
        column = Column(*draw(st.sampled_from(_numeric_columns)))
        operator = draw(st.sampled_from(["=", "!=", "<", "<=", ">", ">=", "IS NULL", "IS NOT NULL"]))
        value = None if operator.startswith("IS") else draw(_number_value)
    else:
        column = Column(*draw(st.sampled_from(_string_columns)))
        operator = draw(st.sampled_from(["=", "!=", "LIKE", "ILIKE", "IN", "NOT IN", "IS NULL", "IS NOT NULL"]))
        if operator.startswith("IS"):
            value = None
        elif operator.endswith("IN"):
            value = tuple(draw(st.lists(_string_value, min_size=1, max_size=3)))
        else:
            value = draw(_string_value)
    return Comparison(column, operator, value)


filters = st.recursive(
    comparisons(),
    lambda children: (
        st.builds(And, st.lists(children, min_size=2, max_size=3).map(tuple))
        | st.builds(Or, st.lists(children, min_size=2, max_size=3).map(tuple))
    ),
    max_leaves=8,
)


def as_text(node):
    if isinstance(node, (And, Or)):
        joiner = " AND " if isinstance(node, And) else " OR "
        return "(" + joiner.join(as_text(child) for child in node.children) + ")"
    column = f"{node.column.entity}.`{node.column.key}`"
    if node.value is None:
        return f"{column} {node.operator}"
    if isinstance(node.value, tuple):
        return f"{column} {node.operator} ({', '.join(map(sql_string, node.value))})"
    if isinstance(node.value, str):
        return f"{column} {node.operator} {sql_string(node.value)}"
    return f"{column} {node.operator} {node.value!r}"


@pytest.fixture
def oracle_runs(experiment):
    rows = []
    for spec in _ORACLE_RUNS:
        spec = dict(spec)
        data = {entity: spec.pop(entity) for entity in ("params", "tags", "metrics", "summaries")}
        datasets = spec.pop("datasets")
        run = make_run(experiment=experiment, **spec, **data)
        datasets_service.run_log_inputs(run=run, datasets=[dataset_input(*given) for given in datasets])
        rows.append(
            {
                "name": spec["name"],
                "params": data["params"],
                "tags": data["tags"],
                "metrics": data["metrics"],
                "summary": data["summaries"],
                "datasets": [
                    {"name": name, "digest": digest, "context": context} for name, digest, context in datasets
                ],
                "attributes": {
                    "run_name": spec["name"],
                    "user_id": spec["user_id"],
                    "start_time": spec["start_time"],
                    "end_time": spec["end_time"],
                },
            }
        )
    return rows


@fixture_settings
@given(node=filters)
def test_the_database_agrees_with_a_reference_evaluation(oracle_runs, node):
    text = as_text(node)
    assert parse_filter(text) == node
    expected = {run["name"] for run in oracle_runs if expected_match(node, run)}
    assert names(text) == expected, text
