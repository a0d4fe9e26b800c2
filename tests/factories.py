"""Builders for experiments and run trees of any shape.

Runs are created through factory_boy and placed in their trees by the production placement
(tracker/services/placement.py), so they carry the same parent, depth, path and
mlflow.parentRunId / mlflow.rootRunId tags as runs a client writes.
"""

import itertools

import factory
from django.db import connection

from tracker import hot_sql
from tracker.constants import PARENT_RUN_ID_TAG, ROOT_RUN_ID_TAG, RUN_NAME_TAG
from tracker.models import Experiment, LatestMetric, Param, Run, RunStatus, RunTag, new_run_id
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
    # Every column as a Run made with these values would have it (its defaults included), but
    # for the ones that differ from child to child.
    template = Run(experiment_id=parent.experiment_id, status=RunStatus.FINISHED, parent_run_id=parent.run_id)
    fields = [field for field in Run._meta.concrete_fields if not field.primary_key]
    columns = [field.attname for field in fields]
    row = [field.get_db_prep_save(getattr(template, field.attname), connection) for field in fields]
    varying = [columns.index(name) for name in ("run_id", "name", "start_time", "end_time")]
    rows = []
    for i in range(count):
        own = (new_run_id(), f"{parent.name}-child-{i}", start + i, start + i + 1000)
        for position, value in zip(varying, own, strict=True):
            row[position] = value
        rows.append(tuple(row))
    insert_rows(Run, [field.name for field in fields], rows)
    # Inserted unplaced (empty path), as the importer inserts them, then placed in bulk.
    placement.experiment_link_parents(experiment=parent.experiment)
    runs = list(Run.objects.filter(parent=parent).order_by("pk").values_list("pk", "name", "parent_run_id"))[-count:]
    tags = [(pk, key, value) for pk, name, parent_run_id in runs for key, value in _own_tags(name, parent_run_id)]
    insert_rows(RunTag, ["run", "key", "value"], tags)
    insert_rows(Param, ["run", "key", "value"], [(pk, "param1", str(i % 3)) for i, (pk, _, _) in enumerate(runs)])
    if metric_key:
        insert_rows(
            LatestMetric,
            ["run", "key", "value", "timestamp", "step"],
            [(pk, metric_key, i / count, start, 0) for i, (pk, _, _) in enumerate(runs)],
        )


def insert_rows(model, fields: list[str], rows: list[tuple]) -> None:
    """INSERT `rows` (values of `fields`, as the database stores them) in multi-row statements, in
    slices under SQLite's bound on parameters (hot_sql's). For the size fixtures' tens of thousands
    of plain rows: bulk_create builds a model instance and prepares every field of each row, which
    made a 10,000-run experiment take ~7 s."""
    table = connection.ops.quote_name(model._meta.db_table)
    columns = ", ".join(connection.ops.quote_name(model._meta.get_field(name).column) for name in fields)
    with connection.cursor() as cursor:
        for part in hot_sql._slices(rows, len(fields)):
            cursor.execute(
                f"INSERT INTO {table} ({columns}) VALUES {hot_sql._rows(len(part), len(fields))}",
                [value for values in part for value in values],
            )


def _own_tags(name: str, parent_run_id: str) -> list[tuple[str, str]]:
    """The tags a client gives a child (experiment_link_parents writes mlflow.rootRunId)."""
    return [(RUN_NAME_TAG, name), (PARENT_RUN_ID_TAG, parent_run_id)]
