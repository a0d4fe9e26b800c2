"""The migration that keeps summaries to the model's metrics drops what was kept before it for
MLflow's system metrics: their summary rows, param importance, and the kept bands of the parents
that had them (recomputed by the worker without them). Everything else stays."""

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

BEFORE = [("tracker", "0012_latest_metric_value_beside_key")]
AFTER = [("tracker", "0013_no_summaries_of_system_metrics")]


@pytest.mark.django_db(transaction=True)
def test_system_metric_summaries_importance_and_their_parents_bands_are_dropped():
    executor = MigrationExecutor(connection)
    executor.migrate(BEFORE)
    apps = executor.loader.project_state(BEFORE).apps
    Experiment, Run, RunSummary, ChildBands, ParamImportance = (
        apps.get_model("tracker", name) for name in ("Experiment", "Run", "RunSummary", "ChildBands", "ParamImportance")
    )
    experiment = Experiment.objects.create(name="old", creation_time=0, last_update_time=0)
    with_system, without = (
        Run.objects.create(experiment=experiment, run_id=letter * 32, path=f"00000000000{number}/")
        for number, letter in ((1, "a"), (2, "b"))
    )
    for parent, keys in (
        (with_system, ["val_loss", "system/cpu_utilization_percentage", "System/latency"]),
        (without, ["val_loss"]),
    ):
        for key in keys:
            RunSummary.objects.create(run=parent, key=key, computed_at=1)
            ParamImportance.objects.create(run=parent, key=key, computed_at=1)
        ChildBands.objects.create(run=parent, bands=[{"key": key} for key in keys], version=1, computed_at=1)

    executor.loader.build_graph()
    executor.migrate(AFTER)

    apps = executor.loader.project_state(AFTER).apps
    RunSummary, ChildBands, ParamImportance = (
        apps.get_model("tracker", name) for name in ("RunSummary", "ChildBands", "ParamImportance")
    )
    expected = {("a" * 32, "System/latency"), ("a" * 32, "val_loss"), ("b" * 32, "val_loss")}
    assert set(RunSummary.objects.values_list("run__run_id", "key")) == expected
    assert set(ParamImportance.objects.values_list("run__run_id", "key")) == expected
    assert list(ChildBands.objects.values_list("run__run_id", flat=True)) == ["b" * 32]
    # Leave the schema as the other tests expect it, whatever migrations come after this one.
    executor.loader.build_graph()
    executor.migrate(executor.loader.graph.leaf_nodes())
