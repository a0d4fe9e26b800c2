from tests.factories import RunFactory
from tracker.goals import goal_in, goal_tag, goals_for_experiments, goals_from_tags, goals_of
from tracker.models import ExperimentTag


def test_the_goal_is_min_unless_the_experiment_says_max(db):
    parent = RunFactory()
    ExperimentTag.objects.create(experiment=parent.experiment, key=goal_tag("accuracy"), value="max")

    assert goal_in(goals_of(parent.experiment), "accuracy") == "max"
    assert goal_in(goals_of(parent.experiment), "loss") == "min"
    assert goals_from_tags(parent.experiment.tag_dict(), ["accuracy", "loss"]) == [("accuracy", "max"), ("loss", "min")]
    assert goals_for_experiments([parent.experiment_id]) == {"accuracy": "max"}
