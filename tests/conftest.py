import pytest


@pytest.fixture
def experiment(db):
    from tests.factories import ExperimentFactory

    return ExperimentFactory()


@pytest.fixture
def default_experiment(db):
    """Experiment 0, as the data migration makes it. Live-server tests flush the database
    afterwards, migration data included, so each test puts it back for itself."""
    from tracker.models import Experiment

    experiment, _ = Experiment.objects.get_or_create(
        pk=0,
        defaults={
            "name": "Default",
            "artifact_location": "mlflow-artifacts:/0",
            "creation_time": 0,
            "last_update_time": 0,
        },
    )
    return experiment
