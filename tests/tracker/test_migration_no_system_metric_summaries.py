"""The migration that keeps summaries to the model's metrics drops what was kept before it for
MLflow's system metrics: their summary rows, param importance, and the kept bands of the parents
that had them (recomputed by the worker without them). Everything else stays."""

import pytest

from tests.tracker.migrating import migrating

KEPT = ("RunSummary", "ChildBands", "ParamImportance")


@pytest.mark.django_db(transaction=True)
def test_system_metric_summaries_importance_and_their_parents_bands_are_dropped():
    with migrating(before="0012_latest_metric_value_beside_key", after="0013_no_summaries_of_system_metrics") as step:
        Experiment, Run, RunSummary, ChildBands, ParamImportance = step.models_before("Experiment", "Run", *KEPT)
        experiment = Experiment.objects.create(name="old", creation_time=0, last_update_time=0)
        with_system = Run.objects.create(experiment=experiment, run_id="a" * 32, path="000000000001/")
        without = Run.objects.create(experiment=experiment, run_id="b" * 32, path="000000000002/")
        for parent, keys in (
            (with_system, ["val_loss", "system/cpu_utilization_percentage", "System/latency"]),
            (without, ["val_loss"]),
        ):
            for key in keys:
                RunSummary.objects.create(run=parent, key=key, computed_at=1)
                ParamImportance.objects.create(run=parent, key=key, computed_at=1)
            ChildBands.objects.create(run=parent, bands=[{"key": key} for key in keys], version=1, computed_at=1)

        RunSummary, ChildBands, ParamImportance = step.migrate(*KEPT)

        expected = {("a" * 32, "System/latency"), ("a" * 32, "val_loss"), ("b" * 32, "val_loss")}
        assert set(RunSummary.objects.values_list("run__run_id", "key")) == expected
        assert set(ParamImportance.objects.values_list("run__run_id", "key")) == expected
        assert list(ChildBands.objects.values_list("run__run_id", flat=True)) == ["b" * 32]
