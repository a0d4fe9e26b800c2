"""The goal of a metric, in one place: whether its best value is the smallest or the largest.

A metric's goal is the experiment tag `runtree.goal.<metric>` ("min" or "max") when it is set,
else `default_goal(metric)` ("min": Runtree infers nothing from the name yet; this is where it
would). The summaries, the compare page and the tree's goal switch all read it through here.
"""

from collections.abc import Iterable

from tracker.constants import GOAL_TAG_PREFIX
from tracker.models import ExperimentTag, Goal

GOAL_VALUES = tuple(Goal.values)


def default_goal(key: str) -> str:
    """The goal of a metric whose experiment sets none."""
    return Goal.MIN


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
