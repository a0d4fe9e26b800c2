import pytest
from django.core.management import call_command

from tracker.models import Experiment, Param, Run

pytestmark = pytest.mark.django_db


def shape(name):
    runs = Run.objects.filter(experiment__name=name)
    return (
        runs.filter(depth=0).count(),
        runs.filter(depth=1).count(),
        runs.filter(depth=2).count(),
    )


def test_the_demo_loads_the_seed_workloads_with_exact_counts():
    call_command("demo")
    assert Experiment.objects.count() == 4  # Default + three demo experiments
    # Three tuning rounds of 5 parents × 5 children.
    assert shape("Nested Child Association") == (15, 75, 0)
    # The challenge: 5 parents × 25 children, each parent logging its best child.
    assert shape("Parent Child Association Challenge") == (5, 125, 0)
    assert (
        Param.objects.filter(key="best_param1", run__experiment__name="Parent Child Association Challenge").count() == 5
    )
    # The three-level tree: parent → child_1, child_2; child_1 → sub_child_1.
    assert shape("explorer_history") == (1, 2, 1)
    sub_child = Run.objects.get(name="sub_child_1")
    assert [run.name for run in Run.objects.ancestors_of(sub_child)] == ["parent_run_name", "child_1"]


def test_the_demo_tags_each_tuning_round():
    call_command("demo")
    tuning = Run.objects.filter(experiment__name="Nested Child Association")
    for ident in ("default", "params_test_2", "params_test_3"):
        assert tuning.filter(tags__key="test_identifier", tags__value=ident).count() == 30


def test_loading_the_demo_twice_adds_nothing():
    call_command("demo")
    before = Run.objects.count()
    call_command("demo")
    assert Run.objects.count() == before == 90 + 130 + 4
