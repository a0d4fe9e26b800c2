from tracker.models import Experiment


def test_the_default_experiment_exists_with_id_zero(db):
    default = Experiment.objects.get(pk=0)
    assert default.name == "Default"
    assert default.lifecycle_stage == "active"
