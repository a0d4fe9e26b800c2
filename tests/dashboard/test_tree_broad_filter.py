"""The tree page under a broad filter (tracker/selectors/tree.py, _BroadMatches): its roots are
found by asking the roots in order, its matches are counted up to a cap, and its pager does not
count the pages, yet it shows what the page of a filter read in one pass shows."""

import pytest

from tests.dashboard.conftest import tag_children
from tests.dashboard.test_tree_filter import FILTERED_PAGE_QUERIES
from tests.dashboard.test_tree_page import row_ids, tree_url
from tests.factories import ExperimentFactory, RunFactory, bulk_children
from tracker.models import Run, RunTag
from tracker.selectors import tree

pytestmark = pytest.mark.django_db

BROAD = "tags.subset = 'a'"
PER_PAGE = 2  # the first roots asked are 3: two of them hold a match, so the filter is broad


@pytest.fixture
def forest(db):
    """14 roots of 3 children each. Roots 7 and 11 hold no match; root 3 matches itself, not its
    children; every other root has matching children 0 and 2, and child 0 a matching grandchild."""
    experiment = ExperimentFactory(name="forest")
    for i in range(14):
        root = RunFactory(experiment=experiment, name=f"root-{i}")
        bulk_children(root, 3)
        if i % 4 == 3:
            tag_children(root, "subset", lambda j: "b")
            if i == 3:
                RunTag.objects.create(run=root, key="subset", value="a")
            continue
        tag_children(root, "subset", lambda j: "b" if j == 1 else "a")
        first = Run.objects.children_of(root).order_by("pk").first()
        grandchild = RunFactory(experiment=experiment, parent=first, name=f"grandchild-{i}")
        RunTag.objects.create(run=grandchild, key="subset", value="a")
    return experiment


def holding_roots_newest_first(experiment) -> list[str]:
    names = [f"root-{i}" for i in reversed(range(14)) if i not in (7, 11)]
    return [Run.objects.get(experiment=experiment, name=name).run_id for name in names]


def shown(response) -> list[tuple]:
    """The page's rows as a viewer tells them apart."""
    return [
        ("more", row.parent.run_id, row.shown, row.total, row.hidden)
        if getattr(row, "is_more", False)
        else (row.run_id, row.level, row.is_match, row.is_open, row.hidden)
        for row in response.context["tree"].rows
    ]


def read_once(monkeypatch):
    """Make the page read the matches in one pass, as for a filter of few matches."""
    monkeypatch.setattr(tree, "BROAD_ROOT_SHARE", 2.0)


def test_paging_through_a_broad_filter_shows_every_matching_root_once_in_order(client, forest):
    roots, page = [], 1
    while True:
        response = client.get(tree_url(forest, filter=BROAD, per_page=PER_PAGE, page=page))
        assert response.status_code == 200
        roots += [row.run_id for row in response.context["tree"].rows if getattr(row, "level", None) == 0]
        if not response.context["tree"].page.has_next:
            break
        page += 1
    assert roots == holding_roots_newest_first(forest)
    assert page == 6


def test_each_page_of_a_broad_filter_shows_what_a_filter_read_in_one_pass_shows(client, forest, monkeypatch):
    broad = [client.get(tree_url(forest, filter=BROAD, per_page=PER_PAGE, page=page)) for page in range(1, 7)]
    read_once(monkeypatch)
    whole = [client.get(tree_url(forest, filter=BROAD, per_page=PER_PAGE, page=page)) for page in range(1, 7)]
    for page, (broad_page, whole_page) in enumerate(zip(broad, whole, strict=True), start=1):
        assert shown(broad_page) == shown(whole_page), f"page {page}"
        assert row_ids(broad_page) == row_ids(whole_page)
    # Matches are shown inside their trees, their ancestors as context.
    grandchild = Run.objects.get(name="grandchild-13")
    assert (grandchild.run_id, 2, True, False, False) in shown(broad[0])
    assert (grandchild.parent.run_id, 1, True, True, False) in shown(broad[0])


def test_page_two_of_a_broad_filter_works_without_counting_the_pages(client, forest, monkeypatch):
    monkeypatch.setattr(tree, "ROOT_WALK_GROWTH", 2)  # so page 2 is found before every root is asked
    response = client.get(tree_url(forest, filter=BROAD, per_page=PER_PAGE, page=2))
    html = response.content.decode()
    assert "Page 2 · trees 3–4" in html
    assert " of " not in html.split('class="pager"')[1].split("</nav>")[0]
    assert 'rel="prev"' in html and 'rel="next"' in html
    roots = [row.run_id for row in response.context["tree"].rows if getattr(row, "level", None) == 0]
    assert roots == holding_roots_newest_first(forest)[2:4]


def test_the_last_page_of_a_broad_filter_has_no_next_page(client, forest):
    response = client.get(tree_url(forest, filter=BROAD, per_page=PER_PAGE, page=6))
    html = response.content.decode()
    assert 'rel="prev"' in html
    assert 'rel="next"' not in html
    # Every root was asked on the way, so the pages are counted after all.
    assert "Page 6 of 6" in html


def test_a_page_past_the_end_of_a_broad_filter_says_it_is_empty(client, forest):
    response = client.get(tree_url(forest, filter=BROAD, per_page=PER_PAGE, page=40))
    assert response.status_code == 200
    assert row_ids(response) == []
    assert "This page is empty" in response.content.decode()


def test_a_broad_filter_counts_its_matches_exactly_below_the_cap(client, forest, monkeypatch):
    monkeypatch.setattr(tree, "ROOT_WALK_GROWTH", 2)  # so page 1 is found before every root is asked
    html = client.get(tree_url(forest, filter=BROAD, per_page=PER_PAGE)).content.decode()
    # 11 roots × (2 children + 1 grandchild) and root 3.
    assert "34 matching runs" in html
    # The trees holding them are not counted: only the first roots were asked.
    assert " tree" not in html.split('class="match-count"')[1].split("</div>")[0]


def test_a_broad_filter_with_more_matches_than_the_cap_says_more_than(client, forest, monkeypatch):
    monkeypatch.setattr(tree, "BROAD_COUNT_LIMIT", 20)
    html = client.get(tree_url(forest, filter=BROAD, per_page=PER_PAGE)).content.decode()
    assert "More than 20 matching runs" in html


def test_a_filter_whose_first_roots_hold_no_match_is_counted_exactly(client, forest):
    # The newest roots (asked first) hold none of these: the matches are read in one pass.
    response = client.get(tree_url(forest, filter="run_name IN ('root-0', 'root-1', 'root-2')", per_page=PER_PAGE))
    html = response.content.decode()
    assert "3 matching runs" in html
    assert "in 3 trees" in html
    assert "Page 1 of 2" in html


@pytest.mark.parametrize(("page", "extra"), [(1, 0), (4, 2)])
def test_a_broad_filters_page_costs_a_bounded_number_of_queries(
    client, forest, page, extra, django_assert_max_num_queries
):
    # Past the first page: the roots counted, and one more batch of them asked.
    with django_assert_max_num_queries(FILTERED_PAGE_QUERIES + extra):
        response = client.get(tree_url(forest, filter=BROAD, per_page=PER_PAGE, page=page, columns="metrics.metric1"))
    assert "is-match" in response.content.decode()


def test_a_broad_filter_found_by_the_probe_fills_a_default_page_in_a_bounded_number_of_queries(
    client, forest, django_assert_max_num_queries
):
    # The probe asks the first 12 roots (BROAD_PROBE_ROOTS), 10 of which hold a match: broad.
    # It asks the rest of the page of 50 in one more batch; the forest has fewer roots than that,
    # so the walk counts them to know it asked them all.
    with django_assert_max_num_queries(FILTERED_PAGE_QUERIES + 2):
        response = client.get(tree_url(forest, filter=BROAD))
    roots = [row.run_id for row in response.context["tree"].rows if getattr(row, "level", None) == 0]
    assert roots == holding_roots_newest_first(forest)
    assert not response.context["tree"].page.has_next
