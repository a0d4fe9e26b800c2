"""The migration that gives a run's dataset input its own context column copies the context out
of the tags of the inputs logged before it, so `datasets.context` filters find them too."""

import pytest

from tests.tracker.migrating import migrating


@pytest.mark.django_db(transaction=True)
def test_inputs_logged_before_the_migration_get_their_context_from_their_tags():
    with migrating(before="0016_summary_of_a_series", after="0017_dataset_input_context") as step:
        Experiment, Run, Dataset, RunDatasetInput = step.models_before(
            "Experiment", "Run", "Dataset", "RunDatasetInput"
        )
        experiment = Experiment.objects.create(name="old", creation_time=0, last_update_time=0)
        run = Run.objects.create(experiment=experiment, run_id="a" * 32, path="000000000001/")
        tags_by_dataset = {
            "train": [{"key": "source", "value": "s3"}, {"key": "mlflow.data.context", "value": "training"}],
            "empty": [{"key": "mlflow.data.context", "value": ""}],
            "untagged": [],
        }
        for name, tags in tags_by_dataset.items():
            dataset = Dataset.objects.create(experiment=experiment, name=name, digest="d", source_type="local")
            RunDatasetInput.objects.create(run=run, dataset=dataset, tags=tags)

        (RunDatasetInput,) = step.migrate("RunDatasetInput")

        contexts = dict(RunDatasetInput.objects.values_list("dataset__name", "context"))
        assert contexts == {"train": "training", "empty": "", "untagged": None}
        assert RunDatasetInput.objects.get(dataset__name="train").tags == tags_by_dataset["train"]
