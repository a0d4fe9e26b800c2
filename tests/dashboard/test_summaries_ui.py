"""Best-child summaries in the pages: the tree's column, the run page's section, the goal switch."""

import re

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from tests.dashboard.conftest import metric1
from tests.dashboard.test_children_partial import children_url
from tests.dashboard.test_tree_page import row_html, row_ids, tree_url
from tests.factories import ExperimentFactory, RunFactory
from tracker import services
from tracker.constants import GOAL_TAG_PREFIX
from tracker.models import ExperimentTag, Run
from tracker.services import KeyValue, MetricInput
from tracker.web.auth import user_set_role

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("eager_celery")]


@pytest.fixture
def challenge(committed):
    """3 parents × 4 children logging metric1 (conftest's `metric1`: best for min is child 2,
    for max child 1) and metric2, with params; summaries computed as the worker would."""
    experiment = ExperimentFactory(name="challenge")
    for p in range(3):
        parent = RunFactory(experiment=experiment, name=f"parent-{p}")
        for c in range(4):
            child = RunFactory(experiment=experiment, parent=parent, name=f"child-{p}-{c}")
            committed(
                services.run_log_batch,
                run=child,
                params=[KeyValue("param1", "abcd"[c]), KeyValue("param2", str(c))],
                metrics=[
                    MetricInput("metric1", metric1(p, c), 1_700_000_000_000, 0),
                    MetricInput("metric2", 10.0 * c, 1_700_000_000_000, 0),
                ],
            )
    assert not Run.objects.filter(experiment=experiment, summary_stale=True).exists()
    return experiment


def run(name) -> Run:
    return Run.objects.get(name=name)


def best_cell(response, run_name) -> str:
    row = row_html(response, run(run_name))
    return row[row.index('<td class="best">') :]


def set_goal(client, experiment, goal, *, metric="metric1", next_url=""):
    return client.post(f"/experiments/{experiment.id}/goal/", {"metric": metric, "goal": goal, "next": next_url})


# --- the tree's best-child column ----------------------------------------------------------------


def test_a_parent_shows_its_best_child_for_a_min_goal(client, challenge):
    response = client.get(tree_url(challenge))

    cell = best_cell(response, "parent-0")
    assert "↓" in cell and "0.1000" in cell
    assert f'href="/runs/{run("child-0-2").run_id}/"' in cell
    # The best run's params, in full, on hover.
    assert 'title="child-0-2: param1=c, param2=2"' in cell
    assert 'best</span> <span class="key">metric1</span>' in response.content.decode()


def test_a_max_goal_shows_the_largest_child_with_an_up_arrow(client, challenge, committed):
    committed(services.experiment_set_tag, experiment=challenge, key=GOAL_TAG_PREFIX + "metric1", value="max")

    cell = best_cell(client.get(tree_url(challenge)), "parent-1")

    assert "↑" in cell and "0.6333" in cell
    assert f'href="/runs/{run("child-1-1").run_id}/"' in cell


def test_the_best_query_parameter_picks_the_metric(client, challenge):
    response = client.get(tree_url(challenge, best="metric2"))

    cell = best_cell(response, "parent-2")
    assert ">0</span>" in cell and "child-2-0" in cell
    html = response.content.decode()
    assert '<option value="metric2" selected>' in html
    # The picker belongs to the filter form, so Apply keeps it; the filter box stays the one input named filter.
    assert 'name="best" form="filter-form"' in html and html.count('name="filter"') == 1


def test_leaf_rows_have_an_empty_best_cell(client, challenge):
    response = client.get(children_url(run("parent-0"), level=1, best="metric1"))

    assert response.content.decode().count('<td class="best"></td>') == 4


def test_without_summaries_there_is_no_best_column(client, sweep):
    html = client.get(tree_url(sweep)).content.decode()

    assert 'class="best"' not in html and "Best child" not in html


def test_a_stale_summary_is_marked_updating(client, challenge):
    Run.objects.filter(name="parent-1").update(summary_stale=True)

    response = client.get(tree_url(challenge))

    assert "updating" in best_cell(response, "parent-1")
    assert "updating" not in best_cell(response, "parent-0")


def test_sorting_by_the_best_column_orders_siblings(client, challenge):
    parents = [run(f"parent-{p}").run_id for p in range(3)]

    ascending = client.get(tree_url(challenge, sort="summary.metric1"))
    descending = client.get(tree_url(challenge, sort="-summary.metric1"))

    assert row_ids(ascending) == parents
    assert row_ids(descending) == parents[::-1]
    assert 'aria-sort="ascending"' in ascending.content.decode()


def test_a_parent_matches_a_summary_filter(client, challenge):
    response = client.get(tree_url(challenge, filter="summary.metric1 < 0.2"))

    assert row_ids(response) == [run("parent-0").run_id]
    assert "is-match" in row_html(response, run("parent-0"))


def test_run_names_are_escaped_in_the_cell(client, challenge):
    Run.objects.filter(name="child-0-2").update(name="<b>bold</b>")

    cell = best_cell(client.get(tree_url(challenge)), "parent-0")

    assert "&lt;b&gt;bold&lt;/b&gt;" in cell and "<b>" not in cell


def test_the_export_link_carries_the_filter(client, challenge):
    html = client.get(tree_url(challenge, filter="params.param1 = 'a'")).content.decode()

    link = re.search(r'<a class="button export" href="([^"]+)"', html).group(1)
    assert link == f"/api/v1/runs/?experiment_id={challenge.id}&amp;filter=params.param1%20%3D%20%27a%27&amp;format=csv"


@pytest.mark.parametrize("show_deleted", [False, True])
def test_the_export_holds_deleted_runs_exactly_when_the_page_shows_them(client, challenge, show_deleted):
    deleted = run("child-0-1")
    services.run_set_lifecycle(run=deleted, stage="deleted")
    query = {"show_deleted": "1"} if show_deleted else {}
    page = client.get(tree_url(challenge, **query)).content.decode()

    link = re.search(r'<a class="button export" href="([^"]+)"', page).group(1).replace("&amp;", "&")
    exported = b"".join(client.get(link).streaming_content).decode()

    assert run("child-0-2").run_id in exported
    assert (deleted.run_id in exported) == show_deleted


# Queries of the tree page with a best-child column (tests/dashboard/test_tree_page.py lists the
# rest): the metrics with summaries (1) and the shown parents' summaries of one metric (1).
@pytest.mark.parametrize("sized_experiment", [10, 10_000], indirect=True)
def test_the_best_column_costs_two_queries_at_any_size(client, sized_experiment, django_assert_num_queries):
    # experiment + tags, roots count + page, tag chips, column choices, metrics with summaries,
    # the shown parents' summaries, the default columns' params and latest metrics (2), and
    # the live poll's starting version (1), the rows' descriptions (1), the rows with registered versions (1)
    with django_assert_num_queries(13):
        response = client.get(tree_url(sized_experiment))
    assert "↓" in best_cell(response, "big-parent")


@pytest.mark.parametrize("sized_experiment", [10, 10_000], indirect=True)
def test_the_children_partial_reads_the_summaries_in_one_query(client, sized_experiment, django_assert_num_queries):
    big = Run.objects.get(experiment=sized_experiment, name="big-parent")
    # the parent with its child count, the page, the rows' descriptions (their tooltips), the
    # summaries of the children that are parents, the rows with registered versions
    with django_assert_num_queries(5):
        response = client.get(children_url(big, level=1, sort="start", best="metric1"))
    assert response.status_code == 200


# --- the run page's summary section --------------------------------------------------------------


def test_the_run_page_summarises_a_parent(client, challenge):
    html = client.get(f"/runs/{run('parent-0').run_id}/").content.decode()

    section = html[html.index('id="summary-heading"') : html.index("</section>", html.index('id="summary-heading"'))]
    assert "over 4 children, best in the whole subtree" in section
    metric1_row = section[section.index('data-metric="metric1"') : section.index('data-metric="metric2"')]
    assert "↓ min" in metric1_row and "0.1000" in metric1_row
    assert f'href="/runs/{run("child-0-2").run_id}/"' in metric1_row and "param1=c, param2=2" in metric1_row
    # count, min, max, mean over the direct children: 0.2, 0.3, 0.1, 0.25
    assert re.findall(r'<td class="num"[^>]*>([^<]*)</td>', metric1_row)[1:5] == ["4", "0.1000", "0.3000", "0.2125"]


def test_a_run_without_children_has_no_summary_section(client, challenge):
    html = client.get(f"/runs/{run('child-0-0').run_id}/").content.decode()

    assert "summary-heading" not in html


# --- the goal switch -----------------------------------------------------------------------------


def test_the_goal_switch_flips_the_goal_and_the_best_child(client, challenge, django_capture_on_commit_callbacks):
    next_url = tree_url(challenge, best="metric1", sort="name")
    before = client.get(next_url)
    assert 'name="goal" value="min" aria-pressed="true"' in before.content.decode()

    with django_capture_on_commit_callbacks(execute=True):
        response = set_goal(client, challenge, "max", next_url=next_url)

    assert response.status_code == 302 and response["Location"] == next_url
    assert ExperimentTag.objects.get(experiment=challenge, key="runtree.goal.metric1").value == "max"
    after = client.get(next_url)
    assert 'name="goal" value="max" aria-pressed="true"' in after.content.decode()
    cell = best_cell(after, "parent-0")
    assert "↑" in cell and "0.3000" in cell and "child-0-1" in cell


def test_a_reset_goal_is_read_off_the_name_again(client, challenge, django_capture_on_commit_callbacks):
    next_url = tree_url(challenge, best="metric1", sort="name")
    with django_capture_on_commit_callbacks(execute=True):
        set_goal(client, challenge, "max", next_url=next_url)
    assert 'value="from-name" class="goal-reset"' in client.get(next_url).content.decode()

    with django_capture_on_commit_callbacks(execute=True):
        response = set_goal(client, challenge, "from-name", next_url=next_url)
    again = set_goal(client, challenge, "from-name", next_url=next_url)  # a second click: nothing to undo

    assert response.status_code == again.status_code == 302 and response["Location"] == next_url
    assert not ExperimentTag.objects.filter(experiment=challenge, key="runtree.goal.metric1").exists()
    after = client.get(next_url).content.decode()
    assert 'name="goal" value="min" aria-pressed="true"' in after and "goal-reset" not in after
    cell = best_cell(client.get(next_url), "parent-0")
    assert "↓" in cell and "0.1000" in cell and "child-0-2" in cell


def test_the_goal_switch_only_goes_back_to_this_site(client, challenge):
    response = set_goal(client, challenge, "max", next_url="https://evil.example/")

    assert response["Location"] == f"/experiments/{challenge.id}/"


@pytest.mark.parametrize(
    "data",
    [
        {"metric": "metric1", "goal": "best"},
        {"metric": "metric1"},
        {"metric": "", "goal": "max"},
        {"metric": "bad\nkey", "goal": "max"},
    ],
)
def test_the_goal_switch_refuses_bad_input_with_a_400(client, challenge, data):
    response = client.post(f"/experiments/{challenge.id}/goal/", data)

    assert response.status_code == 400
    assert not ExperimentTag.objects.filter(experiment=challenge, key__startswith=GOAL_TAG_PREFIX).exists()


def test_the_goal_switch_takes_only_posts(client, challenge):
    assert client.get(f"/experiments/{challenge.id}/goal/?metric=metric1&goal=max").status_code == 405


def test_the_goal_switch_of_an_unknown_experiment_is_a_404(client):
    assert client.post("/experiments/999999/goal/", {"metric": "m", "goal": "max"}).status_code == 404


def test_the_goal_switch_needs_the_csrf_token(challenge):
    browser = Client(enforce_csrf_checks=True)

    assert set_goal(browser, challenge, "max").status_code == 403

    html = browser.get(tree_url(challenge)).content.decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html).group(1)
    data = {"metric": "metric1", "goal": "max", "csrfmiddlewaretoken": token}
    assert browser.post(f"/experiments/{challenge.id}/goal/", data).status_code == 302


@pytest.fixture
def logged_in(client, settings):
    settings.RUNTREE_AUTH = "required"

    def login(role):
        user = get_user_model().objects.create_user(username=f"a-{role}", password="pw")
        user_set_role(user=user, role=role)
        client.force_login(user)
        return client

    return login


def test_a_viewer_may_not_switch_a_goal(logged_in, challenge):
    response = set_goal(logged_in("viewer"), challenge, "max")

    assert response.status_code == 403
    assert not ExperimentTag.objects.filter(experiment=challenge, key__startswith=GOAL_TAG_PREFIX).exists()


def test_a_writer_may_switch_a_goal(logged_in, challenge):
    assert set_goal(logged_in("writer"), challenge, "max").status_code == 302


# --- the logout control --------------------------------------------------------------------------


def test_a_logged_in_user_gets_a_logout_form(logged_in, challenge):
    html = logged_in("viewer").get(tree_url(challenge)).content.decode()

    form = html[html.index('<form class="account"') : html.index("</form>", html.index('<form class="account"'))]
    assert 'method="post" action="/accounts/logout/"' in form
    assert "csrfmiddlewaretoken" in form and "a-viewer" in form and "Log out" in form


def test_without_a_login_there_is_no_logout_form(client, challenge):
    assert 'class="account"' not in client.get(tree_url(challenge)).content.decode()
