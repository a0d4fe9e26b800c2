"""The goal inferred from a metric's name (#17), over names real training code logs."""

import pytest

from tests.factories import ExperimentFactory
from tracker.goals import default_goal, goal_choices_from_tags, goal_in, goal_tag, goals_of
from tracker.models import ExperimentTag

HIGHER = [
    # MLflow autolog (scikit-learn, XGBoost, LightGBM)
    "training_r2_score",
    "training_accuracy_score",
    "training_f1_score",
    "training_precision_score",
    "training_recall_score",
    "training_roc_auc",
    "training_score",
    "validation_0-auc",
    "valid_0-auc",
    "mean_test_score",
    "neg_mean_squared_error",  # scikit-learn's negated scorers are better high
    # Keras
    "accuracy",
    "val_accuracy",
    "val_acc",
    "acc",
    "sparse_categorical_accuracy",
    "val_auc",
    # PyTorch Lightning
    "val/acc",
    "test/f1",
    "val_acc_epoch",
    "train/iou",
    "valid/dice",
    # Hugging Face Trainer
    "eval_accuracy",
    "eval_f1",
    "eval_precision",
    "eval_recall",
    "eval_bleu",
    "eval_rouge1",
    "eval_rougeLsum",
    "eval_map",
    # elsewhere
    "test_f1_score",
    "r2",
    "episode_reward",
    "episode-return",
    "metrics/mAP50-95(B)",
    "recall@10",
    "valAcc",
    "top1.acc",
]

LOWER = [
    "val_loss",
    "loss",
    "train/loss",
    "train_loss_step",
    "eval_loss",
    "training_mean_squared_error",
    "training_mean_absolute_error",
    "training_root_mean_squared_error",
    "training_log_loss",
    "validation_0-rmse",
    "validation_0-error",
    "valid_0-binary_logloss",
    "rmse",
    "mse",
    "mae",
    "mape",
    "perplexity",
    "eval_wer",
    "test.cer",
    "latency_ms",
    "err",
    "accuracy_loss",  # a loss, whatever it is of
    # names that say nothing: lower
    "eval_runtime",
    "learning_rate",
    "epoch",
    "grad_norm",
    "metric1",
    "accurate",  # not a whole word
    "scoreboard",
]


@pytest.mark.parametrize("name", HIGHER)
def test_names_that_say_higher_is_better_are_max(name):
    assert default_goal(name) == "max"


@pytest.mark.parametrize("name", LOWER)
def test_losses_errors_and_every_other_name_are_min(name):
    assert default_goal(name) == "min"


def test_an_experiments_goal_tag_wins_over_the_name_and_says_so(db):
    experiment = ExperimentFactory()
    ExperimentTag.objects.create(experiment=experiment, key=goal_tag("accuracy"), value="min")
    ExperimentTag.objects.create(experiment=experiment, key=goal_tag("val_loss"), value="max")
    goals = goals_of(experiment)
    assert goal_in(goals, "accuracy") == "min"
    assert goal_in(goals, "val_loss") == "max"
    assert goal_in(goals, "val_acc") == "max"
    choices = goal_choices_from_tags(experiment.tag_dict(), ["accuracy", "val_acc"])
    assert [(c.key, c.goal, c.is_set) for c in choices] == [("accuracy", "min", True), ("val_acc", "max", False)]
