"""The goal of a metric, in one place: whether its best value is the smallest or the largest.

A metric's goal is the experiment tag `runtree.goal.<metric>` ("min" or "max") when it is set,
else `default_goal(metric)`, inferred from the metric's name: `val_acc`, `eval_accuracy`,
`training_r2_score`, `test/f1` are better high; `val_loss`, `rmse`, and any name that says
nothing, low. The summaries (and so the `runtree.best.*` tags), the compare page's highlights
and bars, the tree's goal switch and its best-first sorting all read it through here.
"""

import re
from collections.abc import Iterable
from dataclasses import dataclass

from tracker.constants import GOAL_TAG_PREFIX
from tracker.models import ExperimentTag, Goal

GOAL_VALUES = tuple(Goal.values)


# Words that make a metric better when higher: scores, rates of getting it right, rewards. A name
# holding one of them as a part (`val_acc`, `test/f1`, `training_r2_score`, `mAP50-95`) is "max".
HIGHER_IS_BETTER = frozenset(
    "accuracy acc auc f1 precision recall r2 score map iou dice bleu rouge reward return ndcg mrr psnr ssim".split()
)
# Words that make it better when lower, whatever else the name holds (`accuracy_loss` is a
# loss). Every other name is "min" too; these only outrank a higher-is-better word beside them.
LOWER_IS_BETTER = frozenset("loss error err rmse mse mae mape perplexity wer cer latency".split())
# scikit-learn's negated scorers (`neg_mean_squared_error`) turn an error into a score.
_NEGATED = "neg"
# A name's parts: separated by anything but letters and digits (`_ . / -` in practice, and the
# `@`, `:` or brackets of `recall@10`, `mAP50(B)`), and at camelCase humps (`valAcc`).
_SEPARATOR = re.compile(r"[^A-Za-z0-9]+")
_HUMP = re.compile(r"(?<=[a-z])(?=[A-Z][a-z])")


def _words(key: str) -> list[str]:
    """The lower-cased parts of a metric's name, each also without trailing digits (`map50`,
    `top1`): `mAP50-95(B)` → map50, map, 95, b; `valAcc` → valacc, val, acc."""
    words = []
    for part in filter(None, _SEPARATOR.split(key)):
        for piece in dict.fromkeys([part, *_HUMP.split(part)]):
            word = piece.lower()
            words.append(word)
            stripped = word.rstrip("0123456789")
            if stripped and stripped != word:
                words.append(stripped)
    return words


def names_a_goal(key: str) -> bool:
    """Whether a part of the name says which way is better (a score or a loss, not `epoch` or
    `fit_time`): among metrics logged equally often, the tree's default columns and best-child
    column prefer these."""
    return any(word in HIGHER_IS_BETTER or word in LOWER_IS_BETTER for word in _words(key))


def default_goal(key: str) -> str:
    """The goal of a metric whose experiment sets none, from its name: "max" when a part of it
    says higher is better (and none says lower), else "min"."""
    words = _words(key)
    if any(word in LOWER_IS_BETTER for word in words):
        goal = Goal.MIN
    elif any(word in HIGHER_IS_BETTER or word.startswith(("rouge", "bleu")) for word in words):
        goal = Goal.MAX
    else:
        return Goal.MIN
    if words and words[0] == _NEGATED:
        return Goal.MAX if goal == Goal.MIN else Goal.MIN
    return goal


@dataclass(frozen=True)
class GoalChoice:
    """A metric's goal, and whether the experiment set it (a tag) or Runtree inferred it from
    the name: the pages say which, since a set goal always wins."""

    key: str
    goal: str
    is_set: bool


def goal_choices_from_tags(tags: dict[str, str], keys: Iterable[str]) -> list[GoalChoice]:
    """A GoalChoice for each of `keys`, read off an experiment's tag dict (no query)."""
    return [GoalChoice(key, goal_from_tag(key, tags.get(goal_tag(key))), goal_tag(key) in tags) for key in keys]


def goal_tag(key: str) -> str:
    """The experiment tag that sets `key`'s goal."""
    return GOAL_TAG_PREFIX + key


def goal_metric(tag_key: str) -> str | None:
    """The metric a goal tag is about, or None when `tag_key` is not a goal tag."""
    return tag_key[len(GOAL_TAG_PREFIX) :] if tag_key.startswith(GOAL_TAG_PREFIX) else None


def goal_from_tag(key: str, value: str | None) -> str:
    """The goal that a goal tag's stored `value` (None: unset) gives metric `key`."""
    if value is None:
        return default_goal(key)
    return Goal.MAX if value == Goal.MAX else Goal.MIN


def goal_in(goals: dict[str, str], key: str) -> str:
    """`key`'s goal from a goals_of()/goals_for_experiments() map (which holds only set goals)."""
    return goals.get(key, default_goal(key))


def goals_from_tags(tags: dict[str, str], keys: Iterable[str]) -> list[tuple[str, str]]:
    """(metric, goal) for each of `keys`, read off an experiment's tag dict (no query)."""
    return [(key, goal_from_tag(key, tags.get(goal_tag(key)))) for key in keys]


def goals_of(experiment) -> dict[str, str]:
    """Every metric with a goal tag in `experiment` → its tag's value (one query); look a metric
    up with goal_in()."""
    tags = ExperimentTag.objects.filter(experiment=experiment, key__startswith=GOAL_TAG_PREFIX)
    return {key[len(GOAL_TAG_PREFIX) :]: value for key, value in tags.values_list("key", "value")}


def goals_for_experiments(experiment_ids: list[int]) -> dict[str, str]:
    """Metric key → "min"/"max" from the experiments' goal tags (one query). A selection
    spanning experiments that disagree takes the goal of the lowest experiment id."""
    tags = (
        ExperimentTag.objects.filter(experiment__in=experiment_ids, key__startswith=GOAL_TAG_PREFIX)
        .order_by("experiment_id")
        .values_list("key", "value")
    )
    goals: dict[str, str] = {}
    for key, value in tags:
        metric = key.removeprefix(GOAL_TAG_PREFIX)
        goals.setdefault(metric, goal_from_tag(metric, value))
    return goals
