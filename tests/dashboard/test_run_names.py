"""A long run name gives way in its middle, so sweep runs that share a start stay told apart."""

import os

import pytest
from django.utils.html import escape
from hypothesis import given
from hypothesis import strategies as st

from dashboard.names import TAIL_CHARS, cut_parts, differing_starts, head_and_tail, short_name, tail_differs_early
from dashboard.templatetags.runtree import cut_middle_together
from tests.factories import RunFactory, bulk_children
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


def test_names_that_differ_before_their_end_keep_that_part_in_the_tail():
    names = ["bert-base-lr3e-5-bs32-squad", "bert-base-lr5e-5-bs32-squad", "bert-base-lr1e-4-bs32-squad"]
    # Alone, each would keep "bs32-squad", the part all three share.
    assert {head_and_tail(name)[1] for name in names} == {"bs32-squad"}
    starts = differing_starts(names)
    assert starts == [len("bert-base-lr")] * 3
    tails = [head_and_tail(name, start)[1] for name, start in zip(names, starts, strict=True)]
    assert tails == ["lr3e-5-bs32-squad", "lr5e-5-bs32-squad", "lr1e-4-bs32-squad"]


@pytest.mark.parametrize(
    ("names", "tails"),
    [
        # Differing at the end: the usual tail.
        (["parent_run_test_params_test_3_1", "parent_run_test_params_test_3_2"], ["test_3_1", "test_3_2"]),
        # Differing too far from the end to keep it all in sight: the usual tail too (and the
        # word where they differ kept in the middle, below).
        (
            [f"a-run-named-at-length-{v}-then-a-long-common-ending" for v in ("v1", "v2")],
            ["common-ending", "common-ending"],
        ),
        # The same name twice differs nowhere: the usual tail.
        (["the-same-name-twice-over", "the-same-name-twice-over"], ["twice-over", "twice-over"]),
    ],
)
def test_the_tail_reaches_back_only_as_far_as_it_can_show(names, tails):
    starts = differing_starts(names)
    assert [head_and_tail(name, start)[1] for name, start in zip(names, starts, strict=True)] == tails


@pytest.mark.parametrize(
    ("names", "keep_start"),
    [
        # A sweep's counter at the very end: a tail too wide for its box keeps its end.
        (["parent_run_test_subset_test_3", "parent_run_test_subset_test_4"], [False, False]),
        # Names that differ where the tail begins keep its start.
        (["bert-base-lr3e-5-bs32-squad", "bert-base-lr5e-5-bs32-squad"], [True, True]),
        # A name shown alone, or differing in its head, keeps its end.
        (["random-forest-grid-search-trial-7"], [False]),
        (["alpha-model-final-run-2026-11-30", "omega-model-final-run-2026-11-30"], [False, False]),
    ],
)
def test_a_tail_keeps_in_sight_the_half_where_the_names_differ(names, keep_start):
    starts = differing_starts(names)
    tails = [head_and_tail(name, start)[1] for name, start in zip(names, starts, strict=True)]
    assert [tail_differs_early(n, t, s) for n, t, s in zip(names, tails, starts, strict=True)] == keep_start
    shown = cut_middle_together(names)
    assert all(('class="tail keep-start"' in html) == keep for html, keep in zip(shown, keep_start, strict=True))


def test_the_pages_cut_names_where_they_differ_from_those_shown_beside_them(client):
    """A tree's siblings, a compare table's rows and the experiments list: names that end alike
    keep the part where they differ, which used to be cut away ("bert-base-…bs32-squad" twice)."""
    experiment = services.experiment_create(name="bert-finetune-lr1e-5-on-squad")
    services.experiment_create(name="bert-finetune-lr3e-5-on-squad")
    parent = RunFactory(experiment=experiment, name="sweep")
    for lr in ("lr3e-5", "lr5e-5"):
        RunFactory(experiment=experiment, name=f"bert-base-{lr}-bs32-squad", parent=parent)
    # A root whose name ends as the children's does is no sibling of theirs: its tail is the usual one.
    RunFactory(experiment=experiment, name="bert-base-lr3e-5-bs64-squad")
    tree = client.get(f"/experiments/{experiment.id}/").content.decode()
    children_rows = client.get(f"/runs/{parent.run_id}/children/").content.decode()
    for page in (children_rows, client.get("/compare/", {"parent": parent.run_id}).content.decode()):
        assert '<span class="tail keep-start">lr3e-5-bs32-squad</span>' in page
        assert '<span class="tail keep-start">lr5e-5-bs32-squad</span>' in page
    assert '<span class="tail">bs64-squad</span>' in tree  # differs from no sibling: keeps its end
    experiments = client.get("/").content.decode()
    assert '<span class="tail keep-start">lr1e-5-on-squad</span>' in experiments
    assert '<span class="tail keep-start">lr3e-5-on-squad</span>' in experiments


@pytest.mark.parametrize(
    ("names", "parts"),
    [
        (
            [f"customer-churn-{v}-weekly-retrain-pipeline" for v in ("v1", "v2")],
            [("customer-churn-", v, "-weekly-retrain-", "pipeline") for v in ("v1", "v2")],
        ),
        # A long word where they differ: a few characters before that place and the rest of it.
        (
            [f"project-{w}-and-then-a-long-common-ending" for w in ("alphabetagammadelta", "alphabetagammazeta")],
            [
                ("project-alphabetag", "ammadelta", "-and-then-a-long-", "common-ending"),
                ("project-alphabetag", "ammazeta", "-and-then-a-long-", "common-ending"),
            ],
        ),
        # Differing in the first few characters: the head shows it; two parts.
        (
            ["ab-then-a-long-common-ending-here", "ac-then-a-long-common-ending-here"],
            [("ab-then-a-long-common-", "ending-here"), ("ac-then-a-long-common-", "ending-here")],
        ),
    ],
)
def test_a_name_that_differs_far_from_its_end_keeps_that_word_in_its_middle(names, parts):
    assert [cut_parts(name, start) for name, start in zip(names, differing_starts(names), strict=True)] == parts
    assert all("".join(cut) == name for name, cut in zip(names, parts, strict=True))


def test_the_experiments_list_keeps_the_word_where_long_names_differ_far_from_their_end(client):
    for v in ("v1", "v2"):
        services.experiment_create(name=f"customer-churn-{v}-weekly-retrain-pipeline")
    page = client.get("/").content.decode()
    for v in ("v1", "v2"):
        assert (
            f'<span class="head">customer-churn-</span><span class="tail">{v}</span>'
            '<span class="head">-weekly-retrain-</span><span class="tail">pipeline</span></a>'
        ) in page


@given(st.lists(st.text(alphabet="ab-_1é", max_size=12), max_size=8))
def test_where_a_name_differs_is_its_longest_start_shared_with_any_other(labels):
    expected = [
        max((len(os.path.commonprefix([label, other])) for j, other in enumerate(labels) if j != i), default=0)
        for i, label in enumerate(labels)
    ]
    assert differing_starts(labels) == expected
