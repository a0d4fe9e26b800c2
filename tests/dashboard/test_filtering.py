import pytest
from django.http import QueryDict

from dashboard.filtering import compile_filter, dataset_clause, quote_key, tag_clause, with_tag, without_tag
from dashboard.state import TreeState, parse_columns
from tracker.filtering import parse_filter
from tracker.selectors.tree import TableColumn


def test_a_tag_chip_starts_a_filter_or_adds_to_one():
    assert with_tag("", "team", "vision") == "tags.team = 'vision'"
    assert with_tag("metrics.a < 1", "team", "vision") == "metrics.a < 1 AND tags.team = 'vision'"


def test_a_tag_chip_keeps_an_or_from_swallowing_its_clause():
    assert with_tag("a = '1' OR b = '2'", "t", "v") == "(a = '1' OR b = '2') AND tags.t = 'v'"


def test_a_tag_chip_quotes_odd_keys_and_values():
    assert with_tag("", "my key", "it's") == "tags.`my key` = 'it''s'"
    assert quote_key("model.name") == "`model.name`"


@pytest.mark.parametrize("value", ["it's", 'say "hi"', 'it\'s "both"', "C:\\data\\", "\\'", "50% of_it"])
def test_a_quoted_value_reads_back_exactly_whatever_it_holds(value):
    # A value with both kinds of quote, or ending in a backslash, used to make a chip or a
    # dataset link whose filter did not parse, or meant another value.
    assert parse_filter(tag_clause("t", value)).value == value
    assert parse_filter(dataset_clause(value)).value == value


def test_a_chip_already_in_the_filter_is_not_added_twice():
    assert with_tag("tags.t = 'v'", "t", "v") == "tags.t = 'v'"


def test_chip_filters_parse():
    for text in (with_tag("", "my key", "it's"), with_tag("params.a = '1' OR params.b = '2'", "x.y", "v")):
        q, problem = compile_filter(text)
        assert problem is None, problem


def test_a_bad_filter_reports_where():
    q, problem = compile_filter("metrics.x <")
    assert q is None
    assert problem.position is not None and problem.message.startswith("Invalid filter")


def test_columns_come_from_a_comma_list_or_repeats_and_bad_ones_are_dropped():
    # Tag columns are accepted since #17 (the column picker offers tags).
    assert parse_columns(["params.a,metrics.b", "metrics.b", "tags.c", "params.", "bogus.d"]) == (
        TableColumn("params", "a"),
        TableColumn("metrics", "b"),
        TableColumn("tags", "c"),
    )


def test_the_state_falls_back_to_defaults_on_bad_values():
    state = TreeState.from_query(QueryDict("per_page=abc&sort=-evil;drop&expanded=zz$,abc"))
    assert state.per_page == 50
    assert state.sort == "-start"
    assert state.expanded == ("abc",)
    assert TreeState.from_query(QueryDict("per_page=100000")).per_page == 500


def test_an_active_chip_takes_its_clause_out_again():
    assert without_tag("tags.t = 'v'", "t", "v") == ""
    assert without_tag("metrics.a < 1 AND tags.t = 'v'", "t", "v") == "metrics.a < 1"
    assert without_tag("tags.t = 'v' AND metrics.a < 1", "t", "v") == "metrics.a < 1"
    assert without_tag("tags.t = 'v' OR metrics.a < 1", "t", "v") == "tags.t = 'v' OR metrics.a < 1"
