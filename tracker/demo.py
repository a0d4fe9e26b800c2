"""The demo workload: the seed documents' runs, made with a fixed random seed.

- "Nested Child Association": MLflow's parent/child tutorial, three tuning rounds of
  5 parents × 5 children (test_identifier default, params_test_2, params_test_3).
- "Parent Child Association Challenge": the notebook's challenge, 5 parents × 25 children
  (subset_test), each parent logging its best child as the notebook's client code does.
- "explorer_history": the three-level tree of the hierarchy write-up
  (parent_run_name → child_1, child_2; child_1 → sub_child_1).

Each experiment is written in one transaction and skipped if it already exists, so loading
twice changes nothing.
"""

import random
import uuid

from django.db import transaction

from tracker import services
from tracker.constants import PARENT_RUN_ID_TAG
from tracker.models import Experiment, Run, RunStatus
from tracker.services import KeyValue, MetricInput

SEED = 20231123
TUNING_EXPERIMENT = "Nested Child Association"
CHALLENGE_EXPERIMENT = "Parent Child Association Challenge"
HIERARCHY_EXPERIMENT = "explorer_history"
HISTORY_STEPS = 10

# (param1 choices, param2 choices, test_identifier) for the tutorial's three tuning rounds.
TUNING_ROUNDS = [
    (["x", "y", "z"], ["u", "v", "w"], "default"),
    (["a", "b"], ["u", "v", "w"], "params_test_2"),
    (["b", "c"], ["d", "f"], "params_test_3"),
]


class _Clock:
    """Start times one second apart, so tree order is the order the workload ran in."""

    def __init__(self, start_ms: int):
        self.now = start_ms

    def tick(self) -> int:
        self.now += 1000
        return self.now


def load_demo(*, start_ms: int) -> list[str]:
    """Create whichever demo experiments are missing; return the names created."""
    rng = random.Random(SEED)
    clock = _Clock(start_ms)
    builders = [
        (TUNING_EXPERIMENT, _tuning_rounds),
        (CHALLENGE_EXPERIMENT, _challenge),
        (HIERARCHY_EXPERIMENT, _three_levels),
    ]
    created = []
    for name, build in builders:
        # Draw from the generator even when skipping, so each experiment's data is the same
        # whichever of them already exist.
        experiment_rng = random.Random(rng.random())
        if Experiment.objects.filter(name=name).exists():
            continue
        with transaction.atomic():
            experiment = services.experiment_create(name=name)
            build(experiment, experiment_rng, clock)
        created.append(name)
    return created


def _start(experiment, rng, clock, name, *, parent: Run | None = None, tags=()) -> Run:
    tags = list(tags)
    if parent is not None:
        tags.append(KeyValue(PARENT_RUN_ID_TAG, parent.run_id))
    return services.run_create(
        experiment=experiment,
        name=name,
        user_id="demo",
        start_time=clock.tick(),
        tags=tags,
        run_id=uuid.UUID(int=rng.getrandbits(128)).hex,
    )


def _end(run: Run, clock) -> None:
    services.run_update(run=run, status=RunStatus.FINISHED, end_time=clock.tick())


def _log_child(experiment, rng, clock, parent, name, param1_choices, param2_choices, ident) -> tuple:
    run = _start(experiment, rng, clock, name, parent=parent)
    param1, param2 = rng.choice(param1_choices), rng.choice(param2_choices)
    metric1, metric2 = rng.uniform(0, 1), abs(rng.gauss(5, 2.5))
    stamp = clock.now
    # A short loss curve per child, so run pages and compare charts have histories to draw.
    history = [
        MetricInput("loss", metric1 + (HISTORY_STEPS - step) * 0.1 * rng.uniform(0.5, 1.5), stamp + step, step)
        for step in range(HISTORY_STEPS)
    ]
    services.run_log_batch(
        run=run,
        params=[KeyValue("param1", param1), KeyValue("param2", param2)],
        metrics=[MetricInput("metric1", metric1, stamp), MetricInput("metric2", metric2, stamp), *history],
        tags=[KeyValue("test_identifier", ident)],
    )
    _end(run, clock)
    return metric1, param1, param2


def _tuning_round(experiment, rng, clock, test_no, param1_choices, param2_choices, ident, num_children=5):
    parent = _start(experiment, rng, clock, f"parent_run_test_{ident}_{test_no}")
    services.run_set_tag(run=parent, key="test_identifier", value=ident)
    results = [
        _log_child(experiment, rng, clock, parent, f"run_{i}_test_{test_no}", param1_choices, param2_choices, ident)
        for i in range(num_children)
    ]
    return parent, results


def _tuning_rounds(experiment, rng, clock) -> None:
    for param1_choices, param2_choices, ident in TUNING_ROUNDS:
        for test_no in range(5):
            parent, _ = _tuning_round(experiment, rng, clock, test_no, param1_choices, param2_choices, ident)
            _end(parent, clock)


def _challenge(experiment, rng, clock) -> None:
    for test_no in range(5):
        parent, results = _tuning_round(experiment, rng, clock, test_no, ["a", "b"], ["d", "f"], "subset_test", 25)
        best_metric1, best_param1, best_param2 = min(results)
        services.run_log_batch(
            run=parent,
            metrics=[MetricInput("best_metric1", best_metric1, clock.now)],
            params=[KeyValue("best_param1", best_param1), KeyValue("best_param2", best_param2)],
        )
        _end(parent, clock)


def _three_levels(experiment, rng, clock) -> None:
    parent = _start(experiment, rng, clock, "parent_run_name")
    child_1 = _start(experiment, rng, clock, "child_1", parent=parent)
    child_2 = _start(experiment, rng, clock, "child_2", parent=parent)
    sub_child_1 = _start(experiment, rng, clock, "sub_child_1", parent=child_1)
    for run in (sub_child_1, child_1, child_2, parent):
        stamp = clock.now
        services.run_log_batch(
            run=run,
            metrics=[
                MetricInput("accuracy", rng.uniform(0.7, 0.99), stamp + step, step) for step in range(HISTORY_STEPS)
            ],
            params=[KeyValue("learning_rate", str(rng.choice([0.1, 0.01, 0.001])))],
        )
        _end(run, clock)
