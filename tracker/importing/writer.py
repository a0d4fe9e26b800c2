"""Writing imported experiments into Runtree in bulk: a chunk of runs (or of logged models) per
statement instead of a row, with the write services' rules and invariants (their checks, NaN as
NULL, the latest-metric rule, materialized paths and mlflow.rootRunId through
tracker/services/placement.py). What an import keeps is in tracker/importing/__init__.py."""

import math
import sys
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, fields, replace

from django.db import transaction

from tracker import services, tasks
from tracker.constants import PARENT_RUN_ID_TAG, RESERVED_TAG_PREFIX, ROOT_RUN_ID_TAG, RUN_NAME_TAG
from tracker.errors import InvalidParameterValue
from tracker.importing.source import SourceExperiment, SourceLoggedModel, SourceRun, chunks
from tracker.models import (
    ACTIVE,
    DELETED,
    Experiment,
    ExperimentTag,
    LatestMetric,
    LoggedModel,
    LoggedModelMetric,
    LoggedModelParam,
    LoggedModelStatus,
    LoggedModelTag,
    Metric,
    Param,
    Run,
    RunDatasetInput,
    RunModelInput,
    RunModelOutput,
    RunStatus,
    RunTag,
)
from tracker.services import MetricInput
from tracker.services.datasets import check_dataset_input, record_dataset_inputs
from tracker.services.logged_models import ModelOutput, check_model_name, check_model_status, check_model_type
from tracker.services.validation import (
    check_experiment_name,
    check_experiment_tag,
    check_integer,
    check_key,
    check_metric,
    check_optional_text,
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
MAX_MODEL_ID_LENGTH = LoggedModel._meta.get_field("model_id").max_length
# MLflow's SQL store cannot hold ±inf and keeps ±max float instead (SqlAlchemyStore.
# sanitize_metric_value); Runtree can, so the import gives back what was logged.
_SQL_STORE_INFINITY = sys.float_info.max


@dataclass
class ImportCounts:
    experiments_created: int = 0
    experiments_existing: int = 0
    runs_created: int = 0
    runs_existing: int = 0
    # Of the existing runs, those that took something from the source: a run still running here
    # that has since ended there, a deleted run given a deletion time (see _sync).
    runs_updated: int = 0
    # Runs whose ids Runtree already holds in a different experiment: left alone (see
    # _write_runs), each as (run id, the experiment holding it). A list, so counts add up.
    runs_elsewhere: list[tuple[str, str]] = field(default_factory=list)
    params: int = 0
    # Params whose source value differs from the one Runtree holds: Runtree's was kept.
    params_kept: int = 0
    tags: int = 0
    metric_points: int = 0
    # Datasets runs logged as inputs (mlflow.log_input) not held here yet.
    dataset_inputs: int = 0
    # MLflow 3 logged models not held here yet.
    logged_models: int = 0
    # Model ids Runtree already holds in a different experiment: left alone, as runs are.
    logged_models_elsewhere: int = 0

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


@dataclass
class _ModelLinks:
    """What runs say of logged models, gathered as the runs are written and linked once the
    experiment's models are: (run pk, model id, step) produced, (run pk, model id) used."""

    outputs: list[tuple[int, str, int]] = field(default_factory=list)
    inputs: list[tuple[int, str]] = field(default_factory=list)


# --- writing ---------------------------------------------------------------------------------


def experiment_import(
    *,
    experiment: SourceExperiment,
    run_chunks: Iterable[list[SourceRun]],
    model_chunks: Iterable[list[SourceLoggedModel]] = (),
    on_progress: Callable[[int], object] = lambda runs_done: None,
) -> ImportCounts:
    """Write one source experiment, all of its runs and its logged models in one transaction;
    return the counts.

    `run_chunks` and `model_chunks` may be lazy readers: they are consumed inside the
    transaction, so a source that fails mid-way leaves nothing of this experiment behind. The
    models are read once every run is written, so a model finds its source run and the runs
    that logged its metrics whichever chunk they came in. `on_progress` hears each run chunk's size."""
    counts = ImportCounts()
    links = _ModelLinks()
    with transaction.atomic():
        target = _experiment_upsert(experiment, counts)
        for chunk in run_chunks:
            _write_runs(target, [_checked_run(run) for run in chunk], counts, links)
            on_progress(len(chunk))
        moved = services.experiment_link_parents(experiment=target)
        for chunk in model_chunks:
            _write_logged_models(target, [_checked_model(model) for model in chunk], counts)
        _write_model_links(links)
        if _only_clashes(target, counts):
            # Made by this import, and every run of it is held in another experiment: an empty
            # experiment left behind would only puzzle (the clash is reported instead).
            target.delete()
            counts.experiments_created -= 1
            return counts
        if moved or counts.changed_runs:
            # Coarse on purpose: one UPDATE for the experiment rather than one per imported run.
            tasks.mark_experiment_stale_and_queue(experiment=target)
    return counts


def _only_clashes(experiment: Experiment, counts: ImportCounts) -> bool:
    """True when `experiment` was created by this import and holds nothing, because every run
    the source has for it is held by Runtree in another experiment."""
    return bool(
        counts.experiments_created
        and counts.runs_elsewhere
        and not counts.runs_created
        and not counts.logged_models
        and not experiment.runs.exists()
    )


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
    # Only the tags Runtree does not hold: one it holds may have been edited here since.
    held = set(experiment.tags.values_list("key", flat=True))
    new = [ExperimentTag(experiment=experiment, key=tag.key, value=tag.value) for tag in tags if tag.key not in held]
    ExperimentTag.objects.bulk_create(new, ignore_conflicts=True)
    counts.tags += len(new)
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
            model_outputs=[
                ModelOutput(_check_model_id(output.model_id), check_integer(output.step, "A model output's step"))
                for output in run.model_outputs
            ],
            model_inputs=[_check_model_id(model_id) for model_id in run.model_inputs],
        )
    except InvalidParameterValue as exc:
        raise InvalidParameterValue(f"Run {run.run_id}: {exc.message}") from None


def _checked_model(model: SourceLoggedModel) -> SourceLoggedModel:
    """`model` with every value through the write services' checks."""
    try:
        return SourceLoggedModel(
            model_id=_check_model_id(model.model_id),
            # Never None here: the service would make up a name, a different one each import.
            name=check_model_name(model.name or ""),
            model_type=check_model_type(model.model_type),
            status=check_model_status(model.status),
            status_message=model.status_message or "",
            lifecycle_stage=_check_lifecycle(model.lifecycle_stage),
            creation_time=_optional_integer(model.creation_time, "creation_time"),
            last_updated_time=_optional_integer(model.last_updated_time, "last_updated_time"),
            artifact_location=model.artifact_location or "",
            source_run_id=check_run_id(model.source_run_id, "Its source run id") if model.source_run_id else "",
            tags={check_key(k, "Tag"): check_text_value(v, "Tag", k) for k, v in model.tags.items()},
            params={check_key(k, "Param"): check_text_value(v, "Param", k) for k, v in model.params.items()},
            metrics={
                check_run_id(run_id, "A metric's run id"): [_with_infinity(check_metric(point)) for point in points]
                for run_id, points in model.metrics.items()
            },
        )
    except InvalidParameterValue as exc:
        raise InvalidParameterValue(f"Logged model {model.model_id}: {exc.message}") from None


def _check_model_id(model_id) -> str:
    checked = check_optional_text(model_id, "A logged model id", MAX_MODEL_ID_LENGTH)
    if checked is None:
        raise InvalidParameterValue("A logged model id cannot be empty")
    return checked


def _check_lifecycle(stage) -> str:
    if stage not in (ACTIVE, DELETED):
        raise InvalidParameterValue(f"Invalid lifecycle stage {stage!r}; expected '{ACTIVE}' or '{DELETED}'")
    return stage


def _optional_integer(value, what: str) -> int | None:
    return None if value is None else check_integer(value, what)


def _with_infinity(metric: MetricInput) -> MetricInput:
    if abs(metric.value) == _SQL_STORE_INFINITY:
        return replace(metric, value=math.copysign(math.inf, metric.value))
    return metric


def _write_runs(experiment: Experiment, runs: list[SourceRun], counts: ImportCounts, links: _ModelLinks) -> None:
    runs = list({run.run_id: run for run in runs}.values())  # a run listed twice is written once
    stored = {
        run.run_id: run
        for run in Run.objects.filter(run_id__in=[run.run_id for run in runs]).select_related("experiment")
    }
    # A run id already used in another experiment: moving the run, or merging into a tree this
    # import does not relink, would break that experiment's invariants. It is reported instead.
    elsewhere = {run_id for run_id, run in stored.items() if run.experiment_id != experiment.pk}
    runs = [run for run in runs if run.run_id not in elsewhere]
    counts.runs_elsewhere += [(run_id, stored[run_id].experiment.name) for run_id in sorted(elsewhere)]
    existing = {run_id: run for run_id, run in stored.items() if run_id not in elsewhere}

    created = _inserted(Run, [_new_run(experiment, run) for run in runs if run.run_id not in existing], "run_id")
    with_parent_tag = set(
        RunTag.objects.filter(run__in=existing.values(), key=PARENT_RUN_ID_TAG).values_list("run_id", flat=True)
    )
    updated = [
        held
        for run in runs
        if (held := existing.get(run.run_id)) and _sync(held, run, holds_parent_tag=held.pk in with_parent_tag)
    ]
    Run.objects.bulk_update(updated, _SYNCED_FIELDS, batch_size=500)
    counts.runs_created += len(created)
    counts.runs_existing += len(existing)
    counts.runs_updated += len(updated)

    pk_by_run_id = {run.run_id: run.pk for run in [*created, *existing.values()]}
    existing_pks = [run.pk for run in existing.values()]
    counts.params += _add_params(
        Param, "run", {pk_by_run_id[run.run_id]: run.params for run in runs}, existing_pks, counts
    )
    counts.tags += _add_tags(RunTag, "run", {pk_by_run_id[run.run_id]: run.tags for run in runs}, existing_pks)
    _write_metrics(runs, pk_by_run_id, existing_pks, counts)
    _write_dataset_inputs(experiment, runs, pk_by_run_id, counts)
    for run in runs:
        run_pk = pk_by_run_id[run.run_id]
        links.outputs.extend((run_pk, output.model_id, output.step) for output in run.model_outputs)
        links.inputs.extend((run_pk, model_id) for model_id in run.model_inputs)


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
        deleted_time=_deleted_time(run.lifecycle_stage, run.deleted_time),
        artifact_uri=run.artifact_uri,
        parent_run_id=run.tags.get(PARENT_RUN_ID_TAG, ""),
    )


def _deleted_time(lifecycle_stage: str, source_deleted_time: int | None) -> int | None:
    """A deleted run's deletion time: the source's, or the import's when the source cannot say
    (mlflow's client, so a tracking server or an mlruns folder, hides it). Without one, `gc
    --older-than` would never purge the run: the import's time is the latest it can have been."""
    if lifecycle_stage != DELETED:
        return None
    return source_deleted_time if source_deleted_time is not None else now_ms()


def _inserted(model, rows: list, natural_key: str) -> list:
    """`rows` inserted, each with its pk."""
    model.objects.bulk_create(rows, batch_size=INSERT_BATCH)
    if any(row.pk is None for row in rows):  # a backend that does not return ids from bulk inserts
        keys = [getattr(row, natural_key) for row in rows]
        pks = dict(model.objects.filter(**{f"{natural_key}__in": keys}).values_list(natural_key, "pk"))
        for row in rows:
            row.pk = pks[getattr(row, natural_key)]
    return rows


_SYNCED_FIELDS = ["status", "end_time", "deleted_time", "parent_run_id"]
_ENDED = {RunStatus.FINISHED, RunStatus.FAILED, RunStatus.KILLED}


def _sync(run: Run, source: SourceRun, *, holds_parent_tag: bool) -> bool:
    """Catch an existing run up with the source; True if it changed. A value Runtree holds is
    never overwritten (it may have been edited here since the last import); only gaps are filled:
    a run still running here (no end time) that has since ended there takes its status and end
    time; a deleted run without a deletion time gets one; a run with no parent link takes the one
    its new mlflow.parentRunId tag names (tags are only added, see _add_tags)."""
    changed = False
    if run.status == RunStatus.RUNNING and run.end_time is None and source.status in _ENDED:
        run.status, run.end_time = source.status, source.end_time
        changed = True
    if run.lifecycle_stage == DELETED and run.deleted_time is None:
        run.deleted_time = _deleted_time(DELETED, source.deleted_time)
        changed = True
    if not run.parent_run_id and source.tags.get(PARENT_RUN_ID_TAG) and not holds_parent_tag:
        run.parent_run_id = source.tags[PARENT_RUN_ID_TAG]
        changed = True
    return changed


def _add_params(model, owner: str, params_by_owner: dict[int, dict[str, str]], existing_pks, counts) -> int:
    """Add the params (of runs or of logged models: `owner` is the foreign key) not held yet;
    return how many. Params are write-once: a value that differs keeps the held one, and is counted."""
    stored: dict[int, dict[str, str]] = defaultdict(dict)
    held = model.objects.filter(**{f"{owner}__in": existing_pks}).values_list(f"{owner}_id", "key", "value")
    for owner_pk, key, value in held:
        stored[owner_pk][key] = value
    new = []
    for owner_pk, params in params_by_owner.items():
        for key, value in params.items():
            if key not in stored[owner_pk]:
                new.append(model(**{f"{owner}_id": owner_pk}, key=key, value=value))
            elif stored[owner_pk][key] != value:
                counts.params_kept += 1
    model.objects.bulk_create(new, batch_size=INSERT_BATCH)
    return len(new)


def _add_tags(model, owner: str, tags_by_owner: dict[int, dict[str, str]], existing_pks) -> int:
    """Add the tags (of runs or of logged models: `owner` is the foreign key) not held yet; return
    how many. A tag held keeps its value: it may have been set here since the last import."""
    held: dict[int, set[str]] = defaultdict(set)
    for owner_pk, key in model.objects.filter(**{f"{owner}__in": existing_pks}).values_list(f"{owner}_id", "key"):
        held[owner_pk].add(key)
    new = [
        model(**{f"{owner}_id": owner_pk}, key=key, value=value)
        for owner_pk, tags in tags_by_owner.items()
        for key, value in tags.items()
        if key not in held[owner_pk]
    ]
    # ignore_conflicts: a client may set the same tag while the import runs; its value stands.
    model.objects.bulk_create(new, batch_size=INSERT_BATCH, ignore_conflicts=True)
    return len(new)


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


def _write_logged_models(experiment: Experiment, models: list[SourceLoggedModel], counts: ImportCounts) -> None:
    models = list({model.model_id: model for model in models}.values())
    stored = {model.model_id: model for model in LoggedModel.objects.filter(model_id__in=[m.model_id for m in models])}
    # As for runs (see _write_runs): a model id held in another experiment is left alone, and counted.
    elsewhere = {model_id for model_id, model in stored.items() if model.experiment_id != experiment.pk}
    models = [model for model in models if model.model_id not in elsewhere]
    counts.logged_models_elsewhere += len(elsewhere)
    existing = {model_id: model for model_id, model in stored.items() if model_id not in elsewhere}
    # The runs a model names, in any experiment: its source run and those that logged its metrics.
    run_ids = {model.source_run_id for model in models} | {run_id for model in models for run_id in model.metrics}
    runs = {run.run_id: run for run in Run.objects.filter(run_id__in=run_ids - {""}).only("pk", "run_id")}

    new = [_new_logged_model(experiment, model, runs) for model in models if model.model_id not in existing]
    created = _inserted(LoggedModel, new, "model_id")
    updated = [
        existing[model.model_id]
        for model in models
        if model.model_id in existing and _sync_logged_model(existing[model.model_id], model, runs)
    ]
    LoggedModel.objects.bulk_update(updated, _SYNCED_MODEL_FIELDS, batch_size=500)
    counts.logged_models += len(created)

    pk_by_model_id = {model.model_id: model.pk for model in [*created, *existing.values()]}
    existing_pks = [model.pk for model in existing.values()]
    params = {pk_by_model_id[model.model_id]: model.params for model in models}
    _add_params(LoggedModelParam, "model", params, existing_pks, counts)
    _add_tags(LoggedModelTag, "model", {pk_by_model_id[model.model_id]: model.tags for model in models}, existing_pks)
    _write_logged_model_metrics(models, pk_by_model_id, existing_pks, runs)


def _new_logged_model(experiment: Experiment, model: SourceLoggedModel, runs: dict[str, Run]) -> LoggedModel:
    created = model.creation_time if model.creation_time is not None else now_ms()
    return LoggedModel(
        model_id=model.model_id,
        experiment=experiment,
        # None when the run is not held here (yet): _sync_logged_model links it on a later import.
        source_run=runs.get(model.source_run_id),
        name=model.name,
        model_type=model.model_type,
        status=model.status,
        status_message=model.status_message,
        # The source's, as a run keeps its artifact URI (see tracker/importing/__init__.py).
        artifact_location=model.artifact_location,
        lifecycle_stage=model.lifecycle_stage,
        creation_time=created,
        last_updated_time=model.last_updated_time if model.last_updated_time is not None else created,
    )


_SYNCED_MODEL_FIELDS = ["status", "status_message", "last_updated_time", "source_run"]


def _sync_logged_model(held: LoggedModel, source: SourceLoggedModel, runs: dict[str, Run]) -> bool:
    """Catch a held model up with the source, as _sync does a run; True if it changed. Only gaps
    are filled: a model still PENDING here that has since been finalized there takes its status,
    message and last update; a model whose source run was not held yet is linked to it."""
    changed = False
    if held.status == LoggedModelStatus.PENDING and source.status != LoggedModelStatus.PENDING:
        held.status, held.status_message = source.status, source.status_message
        if source.last_updated_time is not None and source.last_updated_time > held.last_updated_time:
            held.last_updated_time = source.last_updated_time
        changed = True
    if held.source_run_id is None and source.source_run_id in runs:
        held.source_run = runs[source.source_run_id]
        changed = True
    return changed


def _write_logged_model_metrics(
    models: list[SourceLoggedModel], pk_by_model_id: dict, existing_pks: list[int], runs: dict[str, Run]
) -> None:
    # A point is its model, run, key, step and timestamp (MLflow's key for it, and the unique
    # constraint's): one held already is skipped.
    stored = set(
        LoggedModelMetric.objects.filter(model__in=existing_pks).values_list("model", "run", "key", "step", "timestamp")
    )
    new = []
    for model in models:
        model_pk = pk_by_model_id[model.model_id]
        for run_id, points in model.metrics.items():
            if run_id not in runs:
                continue  # a run not held here (yet): a point needs its run
            for point in points:
                identity = (model_pk, runs[run_id].pk, point.key, point.step, point.timestamp)
                if identity in stored:
                    continue
                stored.add(identity)
                new.append(
                    LoggedModelMetric(
                        model_id=model_pk,
                        run=runs[run_id],
                        key=point.key,
                        value=stored_value(point.value),
                        timestamp=point.timestamp,
                        step=point.step,
                        dataset_name=point.dataset_name,
                        dataset_digest=point.dataset_digest,
                    )
                )
    LoggedModelMetric.objects.bulk_create(new, batch_size=INSERT_BATCH)


def _write_model_links(links: _ModelLinks) -> None:
    """Link runs to the models they produced and used, where Runtree holds the model (in any
    experiment, deleted or not); a link already held is left as it is, as the write path does."""
    for part in chunks(links.outputs, INSERT_BATCH):
        models = _held_models({model_id for _, model_id, _ in part})
        RunModelOutput.objects.bulk_create(
            [
                RunModelOutput(run_id=run_pk, model=models[model_id], step=step)
                for run_pk, model_id, step in part
                if model_id in models
            ],
            ignore_conflicts=True,
        )
    for part in chunks(links.inputs, INSERT_BATCH):
        models = _held_models({model_id for _, model_id in part})
        RunModelInput.objects.bulk_create(
            [RunModelInput(run_id=run_pk, model=models[model_id]) for run_pk, model_id in part if model_id in models],
            ignore_conflicts=True,
        )


def _held_models(model_ids: set[str]) -> dict[str, LoggedModel]:
    return {
        model.model_id: model for model in LoggedModel.objects.filter(model_id__in=model_ids).only("pk", "model_id")
    }


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
