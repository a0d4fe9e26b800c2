"""The best-child column's choices: the metric keys an experiment's parents have summaries of."""

from tests.factories import ExperimentFactory, RunFactory
from tracker.models import RunSummary
from tracker.selectors import tree


def summarise(run, *keys):
    for key in keys:
        RunSummary.objects.create(run=run, key=key, best_value=1.0, computed_at=1)


def test_the_keys_are_this_experiments_own_in_order_each_once(db, django_assert_num_queries):
    mine, other = ExperimentFactory(name="mine"), ExperimentFactory(name="other")
    summarise(RunFactory(experiment=other), "accuracy", "zeta", "loss")
    summarise(RunFactory(experiment=mine), "loss", "f1")
    summarise(RunFactory(experiment=mine), "loss", "val/acc")
    with django_assert_num_queries(1):
        assert tree.summary_keys(mine) == ["f1", "loss", "val/acc"]
    assert tree.summary_keys(other) == ["accuracy", "loss", "zeta"]
    assert tree.summary_keys(ExperimentFactory(name="empty")) == []
