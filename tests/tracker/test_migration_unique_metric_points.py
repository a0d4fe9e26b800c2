"""The migration that makes metric points unique first removes the duplicates a retried write
left behind (issue #21, item 6), keeping one row of each point, NaN points included."""

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

BEFORE = [("tracker", "0004_parent_run_id_index")]
AFTER = [("tracker", "0006_logged_models_datasets")]


@pytest.mark.django_db(transaction=True)
def test_duplicated_points_are_removed_and_distinct_ones_kept():
    executor = MigrationExecutor(connection)
    executor.migrate(BEFORE)
    apps = executor.loader.project_state(BEFORE).apps
    Experiment, Run, Metric = (apps.get_model("tracker", name) for name in ("Experiment", "Run", "Metric"))
    experiment = Experiment.objects.create(name="old", creation_time=0, last_update_time=0)
    run = Run.objects.create(experiment=experiment, run_id="a" * 32, path="000000000001/")
    points = [("loss", 0.5, 1, 0)] * 3 + [("loss", None, 2, 0)] * 2 + [("loss", 0.25, 1, 0), ("acc", 0.5, 1, 0)]
    Metric.objects.bulk_create(
        Metric(run=run, key=key, value=value, timestamp=timestamp, step=step) for key, value, timestamp, step in points
    )

    executor.loader.build_graph()
    executor.migrate(AFTER)

    apps = executor.loader.project_state(AFTER).apps
    stored = apps.get_model("tracker", "Metric").objects.order_by("pk").values_list("key", "value", "timestamp")
    assert list(stored) == [("loss", 0.5, 1), ("loss", None, 2), ("loss", 0.25, 1), ("acc", 0.5, 1)]
    # Leave the schema as the other tests expect it, whatever migrations come after this one.
    executor.loader.build_graph()
    executor.migrate(executor.loader.graph.leaf_nodes())
