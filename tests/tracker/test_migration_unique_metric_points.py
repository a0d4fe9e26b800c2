"""The migration that makes metric points unique first removes the duplicates a retried write
left behind (issue #21, item 6), keeping one row of each point, NaN points included."""

import pytest

from tests.tracker.migrating import migrating


@pytest.mark.django_db(transaction=True)
def test_duplicated_points_are_removed_and_distinct_ones_kept():
    with migrating(before="0004_parent_run_id_index", after="0006_logged_models_datasets") as step:
        Experiment, Run, Metric = step.models_before("Experiment", "Run", "Metric")
        experiment = Experiment.objects.create(name="old", creation_time=0, last_update_time=0)
        run = Run.objects.create(experiment=experiment, run_id="a" * 32, path="000000000001/")
        points = [("loss", 0.5, 1, 0)] * 3 + [("loss", None, 2, 0)] * 2 + [("loss", 0.25, 1, 0), ("acc", 0.5, 1, 0)]
        Metric.objects.bulk_create(
            Metric(run=run, key=key, value=value, timestamp=timestamp, step=step)
            for key, value, timestamp, step in points
        )

        (Metric,) = step.migrate("Metric")

        stored = Metric.objects.order_by("pk").values_list("key", "value", "timestamp")
        assert list(stored) == [("loss", 0.5, 1), ("loss", None, 2), ("loss", 0.25, 1), ("acc", 0.5, 1)]
