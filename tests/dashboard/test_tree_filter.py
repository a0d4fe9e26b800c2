import re

import pytest

from tests.dashboard.test_tree_page import row_html, row_ids, tree_url
from tracker.models import Run
from tracker.selectors import tree

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True, params=["read once", "broad"])
def match_strategy(request, monkeypatch):
    """Every test runs both ways the tree page handles matches: read in one pass (few
    matches) and asked about the page's trees only (more than MATCH_SCAN_LIMIT)."""
    if request.param == "broad":
        monkeypatch.setattr(tree, "MATCH_SCAN_LIMIT", 0)
    return request.param


def count_text(match_strategy: str, runs: int) -> str:
    """How the toolbar counts `runs` matches: a broad filter's (here, with MATCH_SCAN_LIMIT 0,
    any filter that matches) are not counted past the limit."""
    if match_strategy == "broad":
        return "More than 0 matching runs"
    return f"{runs} matching run{'s' if runs != 1 else ''}"


def test_matching_children_appear_inside_their_parents_marked_as_context(client, sweep, match_strategy):
    response = client.get(tree_url(sweep, filter="metrics.metric1 > 0.7"))
    assert response.status_code == 200
    parent = Run.objects.get(name="parent-2")
    matches = list(Run.objects.filter(parent=parent).order_by("-start_time"))
    assert row_ids(response) == [parent.run_id, *[m.run_id for m in matches]]
    context_row = row_html(response, parent)
    assert "is-context" in context_row
    assert "context, an ancestor of matching runs" in context_row
    assert 'aria-expanded="true"' in context_row
    for match in matches:
        assert "is-match" in row_html(response, match)
    assert count_text(match_strategy, 4) in response.content.decode()
    # Counted either way: past MATCH_SCAN_LIMIT the page asked every root (there are 3).
    assert "in 1 tree" in response.content.decode()


def test_an_or_filter_matches_across_trees(client, sweep, match_strategy):
    response = client.get(tree_url(sweep, filter="run_name = 'child-0-1' OR run_name = 'child-2-3'"))
    names = {Run.objects.get(run_id=i).name for i in row_ids(response)}
    assert names == {"parent-0", "child-0-1", "parent-2", "child-2-3"}
    assert count_text(match_strategy, 2) in response.content.decode()


def test_a_matching_parent_stays_collapsed_and_can_still_be_expanded(client, sweep):
    parent = Run.objects.get(name="parent-1")
    response = client.get(tree_url(sweep, filter="tags.test_identifier = 'round-1'"))
    assert row_ids(response) == [parent.run_id]
    row = row_html(response, parent)
    assert "is-match" in row and 'aria-expanded="false"' in row
    expanded = client.get(tree_url(sweep, filter="tags.test_identifier = 'round-1'", expanded=parent.run_id))
    assert len(row_ids(expanded)) == 1 + 4
    # Its children do not match the filter: shown, but not as matches.
    child = Run.objects.filter(parent=parent).first()
    assert "is-match" not in row_html(expanded, child)


def test_a_parent_that_matches_with_matching_children_shows_both(client, sweep):
    response = client.get(tree_url(sweep, filter="run_name LIKE '%-2%'"))
    parent = Run.objects.get(name="parent-2")
    assert "is-match" in row_html(response, parent)
    assert 'aria-expanded="true"' in row_html(response, parent)


def test_a_collapsed_context_parent_keeps_its_rows_hidden(client, sweep):
    parent = Run.objects.get(name="parent-2")
    response = client.get(tree_url(sweep, filter="metrics.metric1 > 0.7", collapsed=parent.run_id))
    child = Run.objects.filter(parent=parent).first()
    assert 'aria-expanded="false"' in row_html(response, parent)
    assert re.search(r"\bhidden\b", row_html(response, child))


def test_a_bad_filter_shows_the_parsers_message_and_keeps_the_text(client, sweep):
    response = client.get(tree_url(sweep, filter="metrics.metric1 <"))
    assert response.status_code == 400
    html = response.content.decode()
    assert 'value="metrics.metric1 &lt;"' in html
    assert "Invalid filter at position" in html
    assert 'role="alert"' in html
    assert 'aria-invalid="true"' in html


@pytest.mark.parametrize("text", ["((", "tags.", "metrics.x > 'a'", "params.p IN ()", "AND", "`", "run_name = 'x' OR"])
def test_no_bad_filter_makes_a_server_error(client, sweep, text):
    assert client.get(tree_url(sweep, filter=text)).status_code == 400


def test_no_match_says_so(client, sweep):
    html = client.get(tree_url(sweep, filter="params.param1 = 'zzz'")).content.decode()
    assert "No runs match this filter" in html
    assert "0 matching runs" in html


def test_a_tag_chip_adds_its_clause_to_the_filter(client, sweep):
    html = client.get(tree_url(sweep, filter="metrics.metric1 > 0.5")).content.decode()
    assert "filter=metrics.metric1+%3E+0.5+AND+tags.kind+%3D+%27even%27" in html


def test_a_chip_already_in_the_filter_is_shown_active_and_takes_itself_out(client, sweep):
    html = client.get(tree_url(sweep, filter="metrics.metric1 > 0.5 AND tags.kind = 'even'")).content.decode()
    chip = html.split('class="chip is-active"')[1].split("</a>")[0]
    assert 'href="?filter=metrics.metric1+%3E+0.5"' in chip
    assert 'aria-current="true"' in chip


def test_filter_state_is_kept_by_the_sort_links(client, sweep):
    html = client.get(tree_url(sweep, filter="metrics.metric1 > 0.5", columns="metrics.metric1")).content.decode()
    # metric1's goal is min, so its header's first click sorts ascending: best first (#17).
    assert "filter=metrics.metric1+%3E+0.5&amp;columns=metrics.metric1&amp;sort=metrics.metric1" in html


def test_matches_beyond_a_page_per_parent_get_a_show_more_row(client, sweep):
    parent = Run.objects.get(name="parent-0")
    response = client.get(tree_url(sweep, filter="run_name LIKE 'child-0-%'", per_page=2))
    assert len(row_ids(response)) == 1 + 2
    assert f"/runs/{parent.run_id}/children/?offset=2&amp;level=1&amp;matches=1" in response.content.decode()


def test_a_page_of_many_trees_shares_its_matches_between_them(client, sweep, monkeypatch):
    monkeypatch.setattr(tree, "MATCHES_PER_PAGE", 6)
    monkeypatch.setattr(tree, "MIN_MATCHES_PER_PARENT", 1)
    response = client.get(tree_url(sweep, filter="run_name LIKE 'child-%'"))
    names = [Run.objects.get(run_id=i).name for i in row_ids(response)]
    # Three trees, 6 matches for the page: two per parent, newest first, each with "show more".
    assert names == [
        *("parent-2", "child-2-3", "child-2-2"),
        *("parent-1", "child-1-3", "child-1-2"),
        *("parent-0", "child-0-3", "child-0-2"),
    ]
    assert response.content.decode().count("2 of 4 shown") == 3


# Queries of the tree page under a filter:
#   experiment, its tags (prefetch)                                  2
#   the first roots asked whether their tree holds a match           1
#   the matches, read once                                           1
#   roots holding a match: count and page                            2
#   (past MATCH_SCAN_LIMIT, or a broad filter: the roots counted,
#    the page, the page's matches windowed 3; a broad filter's capped
#    count replaces the read)
#   the page's matches with their ancestors                          1
#   children of the expanded runs                                    1
#   params and latest metrics for the columns                        2
#   tag chips, column choices                                        2
#   the metrics with summaries, the shown parents' summaries of one  2
#   the live poll's starting version                                 1
#   the rows' descriptions (mlflow.note.content, their tooltips)     1
#   the rows with registered versions (the badge)                    1
FILTERED_PAGE_QUERIES = 18


@pytest.mark.parametrize("sized_experiment", [10, 10_000], indirect=True)
def test_filtered_page_queries_do_not_grow_with_the_experiment(client, sized_experiment, django_assert_max_num_queries):
    big = Run.objects.get(experiment=sized_experiment, name="big-parent")
    url = tree_url(
        sized_experiment,
        filter="tags.group = 'even' AND metrics.metric1 >= 0",
        expanded=big.run_id,
        columns="params.param1,metrics.metric1",
    )
    with django_assert_max_num_queries(FILTERED_PAGE_QUERIES):
        response = client.get(url)
    assert response.status_code == 200
    assert "is-match" in response.content.decode()
