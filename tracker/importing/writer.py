"""Writing imported experiments into Runtree in bulk: a chunk of runs per statement instead of a
row, with the write services' rules and invariants (their checks, NaN as NULL, the latest-metric
rule, materialized paths and mlflow.rootRunId through tracker/services/placement.py).
What an import keeps is in tracker/importing/__init__.py."""

import math
import sys
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, fields

from django.db import transaction

from tracker import services, tasks
from tracker.constants import PARENT_RUN_ID_TAG, RESERVED_TAG_PREFIX, ROOT_RUN_ID_TAG, RUN_NAME_TAG
from tracker.errors import InvalidParameterValue
from tracker.importing.source import SourceExperiment, SourceRun
from tracker.models import (
    ACTIVE,
    DELETED,
    Experiment,
    ExperimentTag,
    LatestMetric,
    Metric,
    Param,
    Run,
    RunDatasetInput,
    RunTag,
)
from tracker.services import MetricInput
from tracker.services.datasets import check_dataset_input, record_dataset_inputs
from tracker.services.validation import (
    check_experiment_name,
    check_experiment_tag,
    check_integer,
    check_key,
    check_metric,
    check_run_id,
    check_run_name,
    check_status,
    check_text_value,
)
from tracker.values import metric_sort_key, now_ms, stored_value

# Rows per INSERT: large enough to amortize a round trip, small enough for PostgreSQL's planner
# (SQLite's variable limit is applied by Django on top).
INSERT_BATCH = 2000
MAX_USER_ID_LENGTH = Run._meta.get_field("user_id").max_length
# MLflow's SQL store cannot hold ±inf and keeps ±max float instead (SqlAlchemyStore.
# sanitize_metric_value); Runtree can, so the import gives back what was logged.
_SQL_STORE_INFINITY = sys.float_info.max


@dataclass
class ImportCounts:
    experiments_created: int = 0
    experiments_existing: int = 0
    runs_created: int = 0
    runs_existing: int = 0
    # Of the existing runs, those whose name, status, end time or lifecycle changed.
    runs_updated: int = 0
    # Run ids Runtree already holds in a different experiment: left alone (see _write_runs).
    runs_elsewhere: int = 0
    params: int = 0
    # Params whose source value differs from the one Runtree holds: Runtree's was kept.
    params_kept: int = 0
    tags: int = 0
    metric_points: int = 0
    # Datasets runs logged as inputs (mlflow.log_input) not held here yet.
    dataset_inputs: int = 0

    def __iadd__(self, other: "ImportCounts") -> "ImportCounts":
        for counter in fields(self):
            setattr(self, counter.name, getattr(self, counter.name) + getattr(other, counter.name))
        return self

    @property
    def changed_runs(self) -> bool:
        return bool(
            self.runs_created
            or self.runs_updated
            or self.params
            or self.tags
            or self.metric_points
            or self.dataset_inputs
        )


# --- writing ---------------------------------------------------------------------------------


def experiment_import(
    *,
    experiment: SourceExperiment,
    run_chunks: Iterable[list[SourceRun]],
    on_progress: Callable[[int], object] = lambda runs_done: None,
) -> ImportCounts:
    """Write one source experiment and all of its runs in one transaction; return the counts.

    `run_chunks` may be a lazy reader: it is consumed inside the transaction, so a source that
    fails mid-way leaves nothing of this experiment behind. `on_progress` hears each chunk's size."""
    counts = ImportCounts()
    with transaction.atomic():
        target = _experiment_upsert(experiment, counts)
        for chunk in run_chunks:
            _write_runs(target, [_checked_run(run) for run in chunk], counts)
            on_progress(len(chunk))
        moved = services.experiment_link_parents(experiment=target)
        if moved or counts.changed_runs:
            # Coarse on purpose: one UPDATE for the experiment rather than one per imported run.
            tasks.mark_experiment_stale_and_queue(experiment=target)
    return counts


def _experiment_upsert(source: SourceExperiment, counts: ImportCounts) -> Experiment:
    try:
        name = check_experiment_name(source.name)
        tags = [check_experiment_tag(key, value) for key, value in source.tags.items()]
        lifecycle_stage = _check_lifecycle(source.lifecycle_stage)
    except InvalidParameterValue as exc:
        raise InvalidParameterValue(f"Experiment {source.name!r}: {exc.message}") from None
    experiment = Experiment.objects.filter(name=name).first()
    if experiment is None:
        stamp = now_ms()
        experiment = Experiment.objects.create(
            name=name,
            artifact_location=source.artifact_location or "",
            lifecycle_stage=lifecycle_stage,
            creation_time=source.creation_time if source.creation_time is not None else stamp,
            last_update_time=source.last_update_time if source.last_update_time is not None else stamp,
        )
        counts.experiments_created += 1
    else:
        counts.experiments_existing += 1
    stored = dict(experiment.tags.values_list("key", "value"))
    changed = [
        ExperimentTag(experiment=experiment, key=t.key, value=t.value) for t in tags if stored.get(t.key) != t.value
    ]
    _upsert(ExperimentTag, changed, unique_fields=["experiment", "key"], update_fields=["value"])
    counts.tags += len(changed)
    return experiment


def _checked_run(run: SourceRun) -> SourceRun:
    """`run` with every value through ingest's checks (and normalized as they normalize)."""
    try:
        tags = {}
        for key, value in run.tags.items():
            if key == ROOT_RUN_ID_TAG or key.startswith(RESERVED_TAG_PREFIX):
                continue
            tags[check_key(key, "Tag")] = check_text_value(value, "Tag", key)
        if tags.get(PARENT_RUN_ID_TAG):
            check_run_id(tags[PARENT_RUN_ID_TAG], f"'{PARENT_RUN_ID_TAG}'")
        user_id = run.user_id or ""
        if len(user_id) > MAX_USER_ID_LENGTH:
            raise InvalidParameterValue(f"User id is {len(user_id)} characters long; the limit is {MAX_USER_ID_LENGTH}")
        return SourceRun(
            run_id=check_run_id(run.run_id, "Its run_id"),
            # As MLflow reads a run: its name, else the mlflow.runName tag.
            name=check_run_name(run.name or tags.get(RUN_NAME_TAG, "")),
            user_id=user_id,
            status=check_status(run.status),
            start_time=_optional_integer(run.start_time, "start_time"),
            end_time=_optional_integer(run.end_time, "end_time"),
            lifecycle_stage=_check_lifecycle(run.lifecycle_stage),
            deleted_time=_optional_integer(run.deleted_time, "deleted_time"),
            artifact_uri=run.artifact_uri or "",
            params={check_key(k, "Param"): check_text_value(v, "Param", k) for k, v in run.params.items()},
            tags=tags,
            metrics=[_with_infinity(check_metric(metric)) for metric in run.metrics],
            datasets=[check_dataset_input(dataset) for dataset in run.datasets],
        )
    except InvalidParameterValue as exc:
        raise InvalidParameterValue(f"Run {run.run_id}: {exc.message}") from None


def _check_lifecycle(stage) -> str:
    if stage not in (ACTIVE, DELETED):
        raise InvalidParameterValue(f"Invalid lifecycle stage {stage!r}; expected '{ACTIVE}' or '{DELETED}'")
    return stage


def _optional_integer(value, what: str) -> int | None:
    return None if value is None else check_integer(value, what)


def _with_infinity(metric: MetricInput) -> MetricInput:
    if abs(metric.value) == _SQL_STORE_INFINITY:
        return MetricInput(metric.key, math.copysign(math.inf, metric.value), metric.timestamp, metric.step)
    return metric


def _write_runs(experiment: Experiment, runs: list[SourceRun], counts: ImportCounts) -> None:
    runs = list({run.run_id: run for run in runs}.values())  # a run listed twice is written once
    stored = {run.run_id: run for run in Run.objects.filter(run_id__in=[run.run_id for run in runs])}
    # A run id already used in another experiment: moving the run, or merging into a tree this
    # import does not relink, would break that experiment's invariants. It is counted instead.
    elsewhere = {run_id for run_id, run in stored.items() if run.experiment_id != experiment.pk}
    runs = [run for run in runs if run.run_id not in elsewhere]
    counts.runs_elsewhere += len(elsewhere)
    existing = {run_id: run for run_id, run in stored.items() if run_id not in elsewhere}

    created = _insert_runs([_new_run(experiment, run) for run in runs if run.run_id not in existing])
    updated = [existing[run.run_id] for run in runs if run.run_id in existing and _sync(existing[run.run_id], run)]
    Run.objects.bulk_update(updated, _SYNCED_FIELDS, batch_size=500)
    counts.runs_created += len(created)
    counts.runs_existing += len(existing)
    counts.runs_updated += len(updated)

    pk_by_run_id = {run.run_id: run.pk for run in [*created, *existing.values()]}
    existing_pks = [run.pk for run in existing.values()]
    _write_params(runs, pk_by_run_id, existing_pks, counts)
    _write_tags(runs, pk_by_run_id, existing_pks, counts)
    _write_metrics(runs, pk_by_run_id, existing_pks, counts)
    _write_dataset_inputs(experiment, runs, pk_by_run_id, counts)


def _new_run(experiment: Experiment, run: SourceRun) -> Run:
    # No place in a tree yet (empty path): services.experiment_link_parents gives one once every
    # run of the experiment exists.
    return Run(
        run_id=run.run_id,
        experiment=experiment,
        name=run.name,
        user_id=run.user_id,
        status=run.status,
        start_time=run.start_time,
        end_time=run.end_time,
        lifecycle_stage=run.lifecycle_stage,
        deleted_time=run.deleted_time,
        artifact_uri=run.artifact_uri,
        parent_run_id=run.tags.get(PARENT_RUN_ID_TAG, ""),
    )


def _insert_runs(runs: list[Run]) -> list[Run]:
    Run.objects.bulk_create(runs, batch_size=INSERT_BATCH)
    if any(run.pk is None for run in runs):  # a backend that does not return ids from bulk inserts
        pks = dict(Run.objects.filter(run_id__in=[run.run_id for run in runs]).values_list("run_id", "pk"))
        for run in runs:
            run.pk = pks[run.run_id]
    return runs


_SYNCED_FIELDS = ["name", "status", "end_time", "lifecycle_stage", "deleted_time", "parent_run_id"]


def _sync(run: Run, source: SourceRun) -> bool:
    """Give an existing run the source's changeable attributes; True if any changed."""
    wanted = {"status": source.status, "end_time": source.end_time, "lifecycle_stage": source.lifecycle_stage}
    if source.name:
        wanted["name"] = source.name
    # A reader that cannot see deletion times (MLflow's client hides them) must not erase one.
    if source.deleted_time is not None or source.lifecycle_stage != run.lifecycle_stage:
        wanted["deleted_time"] = source.deleted_time
    # Tags are upserted, never removed: a parent link only changes when the source names one.
    if PARENT_RUN_ID_TAG in source.tags:
        wanted["parent_run_id"] = source.tags[PARENT_RUN_ID_TAG]
    changed = {name: value for name, value in wanted.items() if getattr(run, name) != value}
    for name, value in changed.items():
        setattr(run, name, value)
    return bool(changed)


def _write_params(runs: list[SourceRun], pk_by_run_id: dict, existing_pks: list[int], counts: ImportCounts) -> None:
    stored: dict[int, dict[str, str]] = defaultdict(dict)
    for run_pk, key, value in Param.objects.filter(run_id__in=existing_pks).values_list("run_id", "key", "value"):
        stored[run_pk][key] = value
    new = []
    for run in runs:
        run_pk = pk_by_run_id[run.run_id]
        for key, value in run.params.items():
            if key not in stored[run_pk]:
                new.append(Param(run_id=run_pk, key=key, value=value))
            elif stored[run_pk][key] != value:
                counts.params_kept += 1
    Param.objects.bulk_create(new, batch_size=INSERT_BATCH)
    counts.params += len(new)


def _write_tags(runs: list[SourceRun], pk_by_run_id: dict, existing_pks: list[int], counts: ImportCounts) -> None:
    stored: dict[int, dict[str, str]] = defaultdict(dict)
    for run_pk, key, value in RunTag.objects.filter(run_id__in=existing_pks).values_list("run_id", "key", "value"):
        stored[run_pk][key] = value
    changed = [
        RunTag(run_id=pk_by_run_id[run.run_id], key=key, value=value)
        for run in runs
        for key, value in run.tags.items()
        if stored[pk_by_run_id[run.run_id]].get(key) != value
    ]
    _upsert(RunTag, changed, unique_fields=["run", "key"], update_fields=["value"])
    counts.tags += len(changed)


def _write_metrics(runs: list[SourceRun], pk_by_run_id: dict, existing_pks: list[int], counts: ImportCounts) -> None:
    stored: dict[int, set[tuple]] = defaultdict(set)
    for run_pk, *point in Metric.objects.filter(run_id__in=existing_pks).values_list(
        "run_id", "key", "step", "timestamp", "value"
    ):
        stored[run_pk].add(tuple(point))
    new = []
    # (run pk, key) -> the newest of the points written now, by MLflow's "latest" order.
    newest: dict[tuple[int, str], Metric] = {}
    for run in runs:
        run_pk = pk_by_run_id[run.run_id]
        for metric in run.metrics:
            value = stored_value(metric.value)
            point = (metric.key, metric.step, metric.timestamp, value)
            if point in stored[run_pk]:
                continue
            stored[run_pk].add(point)
            row = Metric(run_id=run_pk, key=metric.key, value=value, timestamp=metric.timestamp, step=metric.step)
            new.append(row)
            best = newest.get((run_pk, metric.key))
            if best is None or _order(row) > _order(best):
                newest[(run_pk, metric.key)] = row
    Metric.objects.bulk_create(new, batch_size=INSERT_BATCH)
    counts.metric_points += len(new)

    touched_existing = {run_pk for run_pk, _ in newest}.intersection(existing_pks)
    current = {
        (latest.run_id, latest.key): latest for latest in LatestMetric.objects.filter(run_id__in=touched_existing)
    }
    winners = [
        LatestMetric(run_id=run_pk, key=key, value=row.value, timestamp=row.timestamp, step=row.step)
        for (run_pk, key), row in newest.items()
        if (run_pk, key) not in current or _order(row) > _order(current[(run_pk, key)])
    ]
    _upsert(LatestMetric, winners, unique_fields=["run", "key"], update_fields=["value", "timestamp", "step"])


def _write_dataset_inputs(experiment: Experiment, runs: list[SourceRun], pk_by_run_id: dict, counts: ImportCounts):
    inputs_by_run_pk = {pk_by_run_id[run.run_id]: run.datasets for run in runs if run.datasets}
    if not inputs_by_run_pk:
        return
    held = RunDatasetInput.objects.filter(run_id__in=inputs_by_run_pk)
    before = held.count()
    record_dataset_inputs(experiment_id=experiment.pk, inputs_by_run_pk=inputs_by_run_pk)
    counts.dataset_inputs += held.count() - before


def _order(row: Metric | LatestMetric) -> tuple:
    return metric_sort_key(row.step, row.timestamp, row.value)


def _upsert(model, rows: list, *, unique_fields: list[str], update_fields: list[str]) -> None:
    model.objects.bulk_create(
        rows,
        batch_size=INSERT_BATCH,
        update_conflicts=True,
        unique_fields=unique_fields,
        update_fields=update_fields,
    )
