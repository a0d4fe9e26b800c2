"""A long run name gives way in its middle, so sweep runs that share a start stay told apart."""

import pytest
from django.utils.html import escape

from dashboard.names import TAIL_CHARS, head_and_tail, short_name
from tests.factories import bulk_children
from tracker import services

pytestmark = pytest.mark.django_db


def test_names_that_share_their_start_keep_different_tails():
    names = [f"parent_run_test_params_test_3_{i}" for i in range(5)]
    tails = [head_and_tail(name)[1] for name in names]
    assert len(set(tails)) == 5
    assert all(head + tail == name for name, (head, tail) in zip(names, map(head_and_tail, names), strict=True))


def test_a_chart_label_keeps_the_start_and_the_end_of_a_long_name():
    names = [f"random-forest-grid-search-trial-n_estimators-200-max_depth-{depth}" for depth in range(3, 9)]
    labels = [short_name(name) for name in names]
    assert len(set(labels)) == 6
    assert labels[0] == "random-forest-grid-s…depth-3"
    assert short_name("run_2_test_4") == "run_2_test_4"


@pytest.mark.parametrize(
    ("name", "tail"),
    [
        ("parent_run_test_default_4", "default_4"),  # a whole word, not "efault_4"
        ("e3b0c44298fc1c149afbf4c8996fb924", "996fb924"),  # no word to begin: the last characters
        ("bold-shrimp-123", ""),  # short enough to stay whole
    ],
)
def test_the_tail_begins_with_a_whole_word_where_one_is_near(name, tail):
    assert head_and_tail(name)[1] == tail


def test_a_combining_accent_stays_with_its_letter():
    name = "experiment-" + "e\u0301" * 10
    head, tail = head_and_tail(name)
    assert head + tail == name
    assert not tail.startswith("\u0301")
    assert len(tail) >= TAIL_CHARS


def test_both_parts_are_escaped_and_the_tree_writes_the_whole_name_in_its_link(client):
    experiment = services.experiment_create(name="names")
    hostile = "<script>alert(1)</script>-sweep-trial-&-more_0017"
    parent = services.run_create(experiment=experiment, name=hostile)
    bulk_children(parent, 2)
    html = client.get(f"/experiments/{experiment.id}/").content.decode()
    assert "<script>alert(1)" not in html
    head, tail = head_and_tail(hostile)
    assert f'<span class="head">{escape(head)}</span><span class="tail">{escape(tail)}</span></a>' in html
    assert tail == "more_0017"


def test_the_lists_of_models_and_experiments_keep_the_ends_of_long_names(client):
    from registry import services as registry_services

    for name in ("churn-classifier-gradient-boosting-v1", "churn-classifier-gradient-boosting-v2"):
        registry_services.registered_model_create(name=name)
    for month in (11, 12):
        services.experiment_create(name=f"customer-churn-weekly-retrain-2026-{month}")
    models = client.get("/models/").content.decode()
    assert '<span class="tail">boosting-v1</span>' in models and '<span class="tail">boosting-v2</span>' in models
    experiments = client.get("/").content.decode()
    assert '<span class="tail">2026-11</span>' in experiments and '<span class="tail">2026-12</span>' in experiments
