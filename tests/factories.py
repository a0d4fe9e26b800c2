"""Builders for experiments and run trees of any shape.

Runs are created through factory_boy and placed in their trees by the production placement
(tracker/services/placement.py), so they carry the same parent, depth, path and
mlflow.parentRunId / mlflow.rootRunId tags as runs a client writes.
"""

import itertools

import factory

from tracker.constants import PARENT_RUN_ID_TAG, ROOT_RUN_ID_TAG, RUN_NAME_TAG
from tracker.models import Experiment, LatestMetric, Param, Run, RunStatus, RunTag
from tracker.services import placement

_clock = itertools.count(1_700_000_000_000, 1000)


class ExperimentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Experiment

    name = factory.Sequence(lambda n: f"experiment-{n}")
    creation_time = factory.LazyFunction(lambda: next(_clock))
    last_update_time = factory.SelfAttribute("creation_time")


class RunFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Run

    experiment = factory.LazyAttribute(lambda run: run.parent.experiment if run.parent else ExperimentFactory())
    name = factory.Sequence(lambda n: f"run-{n}")
    status = RunStatus.FINISHED
    start_time = factory.LazyFunction(lambda: next(_clock))
    end_time = factory.LazyAttribute(lambda run: run.start_time + 5000)
    parent = None

    @classmethod
    def _create(cls, model_class, *args, **kwargs):
        run = super()._create(model_class, *args, **kwargs)
        parent = run.parent
        placement.attach(run, parent, parent.run_id if parent else "")
        run.path = placement.tree_path(run, parent)
        run.save(update_fields=["parent_run_id", "depth", "path"])
        tags = [
            RunTag(run=run, key=RUN_NAME_TAG, value=run.name),
            RunTag(run=run, key=ROOT_RUN_ID_TAG, value=placement.root_run_id(run, parent)),
        ]
        if parent:
            tags.append(RunTag(run=run, key=PARENT_RUN_ID_TAG, value=parent.run_id))
        RunTag.objects.bulk_create(tags)
        return run


def build_tree(shape: list[int], *, experiment=None, parent=None) -> list[Run]:
    """Build a tree level by level: shape [3, 2] makes 3 roots, each with 2 children.
    Returns every run made, parents before children."""
    experiment = experiment or (parent.experiment if parent else ExperimentFactory())
    made: list[Run] = []
    level = [parent]
    for width in shape:
        next_level = []
        for node in level:
            for _ in range(width):
                next_level.append(RunFactory(experiment=experiment, parent=node))
        made.extend(next_level)
        level = next_level
    return made


def build_chain(depth: int, *, experiment=None) -> list[Run]:
    """A single path root → ... → leaf, `depth` runs long."""
    experiment = experiment or ExperimentFactory()
    chain: list[Run] = []
    for _ in range(depth):
        chain.append(RunFactory(experiment=experiment, parent=chain[-1] if chain else None))
    return chain


def bulk_children(parent: Run, count: int, *, metric_key: str | None = None) -> None:
    """`count` children under `parent` in a handful of bulk queries (for size tests), placed as
    the importer places runs (placement.experiment_link_parents), with their tags."""
    start = next(_clock)
    Run.objects.bulk_create(
        Run(
            experiment_id=parent.experiment_id,
            name=f"{parent.name}-child-{i}",
            status=RunStatus.FINISHED,
            start_time=start + i,
            end_time=start + i + 1000,
            parent_run_id=parent.run_id,
        )
        for i in range(count)
    )
    # Inserted unplaced (empty path), as the importer inserts them, then placed in bulk.
    placement.experiment_link_parents(experiment=parent.experiment)
    runs = list(Run.objects.filter(parent=parent).order_by("pk"))[-count:]
    RunTag.objects.bulk_create(
        [RunTag(run=r, key=key, value=value) for r in runs for key, value in _own_tags(r)], batch_size=1000
    )
    Param.objects.bulk_create(
        [Param(run=r, key="param1", value=str(i % 3)) for i, r in enumerate(runs)], batch_size=1000
    )
    if metric_key:
        LatestMetric.objects.bulk_create(
            [LatestMetric(run=r, key=metric_key, value=i / count, timestamp=start, step=0) for i, r in enumerate(runs)],
            batch_size=1000,
        )


def _own_tags(run: Run) -> list[tuple[str, str]]:
    """The tags a client gives a child (experiment_link_parents writes mlflow.rootRunId)."""
    return [(RUN_NAME_TAG, run.name), (PARENT_RUN_ID_TAG, run.parent_run_id)]
