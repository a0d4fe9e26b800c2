import pytest


@pytest.fixture
def experiment(db):
    from tests.factories import ExperimentFactory

    return ExperimentFactory()
