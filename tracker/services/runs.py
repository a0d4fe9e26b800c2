"""Write services for runs: create, update, delete or restore, log metrics, params and tags.

MLflow's rules and limits are enforced through tracker/services/validation.py. Each service is
atomic: a refusal raises a typed error from tracker/errors.py and leaves nothing half-written.
"""

import contextlib
import random
from collections.abc import Iterable

from django.db import connection, transaction

from tracker import hot_sql, tasks
from tracker.constants import (
    MAX_BATCH_ENTRIES,
    MAX_BATCH_METRICS,
    MAX_BATCH_PARAMS,
    MAX_BATCH_TAGS,
    PARENT_RUN_ID_TAG,
    RESERVED_TAG_PREFIX,
    ROOT_RUN_ID_TAG,
    RUN_NAME_TAG,
    USER_TAG,
    is_system_metric,
)
from tracker.errors import InvalidParameterValue, ResourceAlreadyExists, ResourceDoesNotExist
from tracker.models import ACTIVE, DELETED, Experiment, Run, RunStatus, RunTag, path_ids
from tracker.services import placement
from tracker.services.validation import (
    KeyValue,
    MetricInput,
    check_active,
    check_client_tag,
    check_epoch_ms,
    check_experiment_active,
    check_key,
    check_metric,
    check_run_name,
    check_status,
    check_text_value,
    check_user_id,
)
from tracker.summaries import staleness
from tracker.values import metric_sort_key, now_ms, stored_value

_ADJECTIVES = [
    "amber",
    "brisk",
    "calm",
    "daring",
    "eager",
    "fleet",
    "gentle",
    "hazy",
    "keen",
    "lucid",
    "mellow",
    "nimble",
]
_NOUNS = ["owl", "fox", "heron", "lynx", "otter", "wren", "hare", "ibis", "moth", "newt", "panda", "yak"]


def generate_run_name() -> str:
    """A readable default name, as MLflow gives a run created without one."""
    return f"{random.choice(_ADJECTIVES)}-{random.choice(_NOUNS)}-{random.randint(100, 999)}"


def run_create(
    *,
    experiment: Experiment,
    name: str = "",
    user_id: str = "",
    start_time: int | None = None,
    tags: Iterable[KeyValue] = (),
    run_id: str | None = None,
) -> Run:
    name = check_run_name(name)
    tags = [KeyValue(check_key(t.key, "Tag"), check_text_value(t.value, "Tag", t.key)) for t in tags]
    tag_values = {t.key: t.value for t in tags}
    name = check_run_name(name or tag_values.get(RUN_NAME_TAG)) or generate_run_name()
    if RUN_NAME_TAG in tag_values and tag_values[RUN_NAME_TAG] != name:
        raise InvalidParameterValue(
            f"Both 'run_name' ({name!r}) and the '{RUN_NAME_TAG}' tag ({tag_values[RUN_NAME_TAG]!r}) "
            "were given with different values"
        )
    start_time = now_ms() if start_time is None else check_epoch_ms(start_time, "start_time")
    parent_run_id = tag_values.get(PARENT_RUN_ID_TAG, "")
    # No savepoint: a failure here fails the caller's transaction too (the create-run view's).
    with transaction.atomic(savepoint=False):
        check_experiment_active(experiment)
        run = Run(
            experiment=experiment,
            name=name,
            user_id=check_user_id(user_id or tag_values.get(USER_TAG, "")),
            status=RunStatus.RUNNING,
            start_time=start_time,
        )
        chosen_run_id = run_id is not None
        if chosen_run_id:
            run.run_id = run_id
            if Run.objects.filter(run_id=run.run_id).exists():
                raise ResourceAlreadyExists(f"Run '{run.run_id}' already exists.")
        # A new run has no subtree yet: it is placed in its tree as it is inserted, rather than
        # moved there (the hot path of every sweep: one INSERT, one UPDATE for the path).
        parent = placement.place_new_run(run, parent_run_id)
        hot_sql.insert_run(run)
        # As mlflow joins them: a location given with a trailing slash makes no empty segment.
        run.artifact_uri = f"{experiment.artifact_location.rstrip('/')}/{run.run_id}/artifacts"
        run.path = placement.tree_path(run, parent)
        hot_sql.update_run(run, ["artifact_uri", "path"])
        root_run_id = placement.root_run_id(run, parent)
        for tag in tags:
            check_client_tag(tag, root_run_id)
        given = [t for t in tags if t.key not in (RUN_NAME_TAG, ROOT_RUN_ID_TAG)]
        _upsert_tags(run, [KeyValue(RUN_NAME_TAG, name), KeyValue(ROOT_RUN_ID_TAG, root_run_id), *given])
        if chosen_run_id:  # nobody can have named a fresh random id as their parent yet
            placement.adopt_waiting_children(run)
    return run


def run_update(*, run: Run, status: str | None = None, end_time: int | None = None, name: str | None = None) -> Run:
    fields = []
    if status is not None:
        run.status = check_status(status)
        fields.append("status")
    if end_time is not None:
        run.end_time = check_epoch_ms(end_time, "end_time")
        fields.append("end_time")
    check_active(run)
    if name:
        run.name = check_run_name(name)
        fields.append("name")
    # Status and end time alone are one UPDATE, atomic by itself: no BEGIN and COMMIT around it
    # (the mlflow client's end_run; see _one_transaction). A new name also sets its tag.
    with _one_transaction(needed=bool(name)):
        if name:
            _upsert_tags(run, [KeyValue(RUN_NAME_TAG, run.name)])
        if fields:
            hot_sql.update_run(run, fields)
    return run


def run_set_lifecycle(*, run: Run, stage: str) -> Run:
    """Delete or restore one run (soft, as MLflow). Its children keep their own state."""
    with transaction.atomic():
        if stage == ACTIVE:
            check_experiment_active(run.experiment)
        run.lifecycle_stage = stage
        run.deleted_time = now_ms() if stage == DELETED else None
        run.save(update_fields=["lifecycle_stage", "deleted_time"])
        tasks.mark_parents_stale_and_queue(run=run)
    return run


def run_log_batch(
    *,
    run: Run,
    metrics: Iterable[MetricInput] = (),
    params: Iterable[KeyValue] = (),
    tags: Iterable[KeyValue] = (),
) -> None:
    """Log metrics, params and tags in one transaction (MLflow's log-batch and its single-item kin)."""
    metrics, params, tags = list(metrics), list(params), list(tags)
    if len(metrics) > MAX_BATCH_METRICS:
        raise InvalidParameterValue(f"A batch logged {len(metrics)} metrics; the limit is {MAX_BATCH_METRICS}")
    if len(params) > MAX_BATCH_PARAMS:
        raise InvalidParameterValue(f"A batch logged {len(params)} params; the limit is {MAX_BATCH_PARAMS}")
    if len(tags) > MAX_BATCH_TAGS:
        raise InvalidParameterValue(f"A batch logged {len(tags)} tags; the limit is {MAX_BATCH_TAGS}")
    if len(metrics) + len(params) + len(tags) > MAX_BATCH_ENTRIES:
        raise InvalidParameterValue(f"A batch may hold at most {MAX_BATCH_ENTRIES} metrics, params and tags in all")
    metrics = [check_metric(m) for m in metrics]
    params = _dedupe_params(
        [KeyValue(check_key(p.key, "Param"), check_text_value(p.value, "Param", p.key)) for p in params]
    )
    tags = [KeyValue(check_key(t.key, "Tag"), check_text_value(t.value, "Tag", t.key)) for t in tags]
    check_active(run)
    # A param of a run that is some parent's best also refreshes that summary (a second write).
    params_matter = bool(params) and staleness.params_change_summaries(run=run)
    if _is_one_child_metric(run, metrics, params, tags) and connection.vendor == "postgresql":
        if hot_sql.log_child_metric(run.pk, run.parent_id, _metric_row(metrics[0])):
            # The statement marked the parent stale itself: only the tree's refresh is left.
            tasks.queue_refresh_after_commit([path_ids(run.path)[0]])
        return
    with _one_transaction(needed=_writes_more_than_one_statement(metrics, params, tags, params_matter)):
        if params:
            _insert_params(run, params, summaries_too=params_matter)
        if metrics:
            _insert_metrics(run, metrics)
        if tags:
            _apply_tags(run, tags)


def _is_one_child_metric(run: Run, metrics, params, tags) -> bool:
    """The sweep's commonest call (log_metric on a child, naming no logged model or dataset),
    which PostgreSQL takes in one statement."""
    return (
        len(metrics) == 1
        and not params
        and not tags
        and run.parent_id is not None
        and not (metrics[0].model_id or metrics[0].dataset_name or metrics[0].dataset_digest)
    )


def _writes_more_than_one_statement(metrics, params, tags, params_matter: bool) -> bool:
    """Whether a batch needs a transaction around its writes. The single-item calls a sweep makes
    (log_param, set_tag) are each one INSERT, which is atomic by itself; a metric is three
    statements (its history, its latest value, the parent's stale mark)."""
    if metrics or (params and tags) or params_matter:
        return True
    if params:
        # A refused value among several params must leave the others unwritten too.
        return len(params) > 1
    # Tags are one upsert, unless one moves or renames the run.
    return any(tag.key in (PARENT_RUN_ID_TAG, RUN_NAME_TAG) for tag in tags)


def _one_transaction(*, needed: bool):
    """A transaction around a service's writes when it has more than one statement; otherwise
    the statement runs on its own (autocommit). On PostgreSQL that saves BEGIN and COMMIT, two
    of a small write's four round trips; each call still commits, and is as durable."""
    return transaction.atomic() if needed else contextlib.nullcontext()


def run_log_metric(*, run: Run, metric: MetricInput) -> None:
    run_log_batch(run=run, metrics=[metric])


def run_log_param(*, run: Run, key: str, value: str) -> None:
    run_log_batch(run=run, params=[KeyValue(key, value)])


def run_set_tag(*, run: Run, key: str, value: str) -> None:
    run_log_batch(run=run, tags=[KeyValue(key, value)])


def run_delete_tag(*, run: Run, key: str) -> None:
    with transaction.atomic():
        check_active(run)
        if key == ROOT_RUN_ID_TAG or key == RUN_NAME_TAG or key.startswith(RESERVED_TAG_PREFIX):
            raise InvalidParameterValue(f"Tag '{key}' is kept by the server and cannot be deleted")
        if key == PARENT_RUN_ID_TAG:
            placement.set_parent(run, "")
        deleted, _ = RunTag.objects.filter(run=run, key=key).delete()
        if not deleted:
            raise ResourceDoesNotExist(f"No tag with name: {key} in run with id {run.run_id}")


# --- internals -------------------------------------------------------------------------------


def _dedupe_params(params: list[KeyValue]) -> list[KeyValue]:
    seen: dict[str, str] = {}
    for param in params:
        if param.key in seen and seen[param.key] != param.value:
            raise InvalidParameterValue(f"Param '{param.key}' was given twice in one batch with different values")
        seen[param.key] = param.value
    return [KeyValue(k, v) for k, v in seen.items()]


def _insert_params(run: Run, params: list[KeyValue], *, summaries_too: bool) -> None:
    # Insert first, then compare with what is stored: a concurrent writer of the same key either
    # committed first (this insert is ignored and the read sees its value) or waits for this
    # transaction. Reading first would let two different values both "succeed", one of them lost.
    inserted = hot_sql.insert_params(run.pk, [(p.key, p.value) for p in params])
    already_there = [p for p in params if p.key not in inserted]
    stored = hot_sql.stored_params(run.pk, [p.key for p in already_there]) if already_there else {}
    for param in already_there:
        if stored[param.key] != param.value:
            raise InvalidParameterValue(
                f"Changing param values is not allowed. Param with key='{param.key}' was already logged "
                f"with value='{_preview(stored[param.key])}' for run ID='{run.run_id}'. "
                f"Attempted logging new value '{_preview(param.value)}'."
            )
    if summaries_too:
        tasks.mark_parents_stale_and_queue(run=run)


def _preview(value: str, limit: int = 100) -> str:
    return value if len(value) <= limit else value[:limit] + "..."


def _insert_metrics(run: Run, metrics: list[MetricInput]) -> None:
    # A point already stored is skipped (tracker/hot_sql.py): a retry stores nothing twice.
    hot_sql.insert_metrics(run.pk, [_history_row(m) for m in metrics])
    _insert_logged_model_metrics(run, [m for m in metrics if m.model_id])
    candidates: dict[str, MetricInput] = {}
    for metric in metrics:
        best = candidates.get(metric.key)
        if best is None or _order(metric) > _order(best):
            candidates[metric.key] = metric
    # One upsert per batch compares each candidate with the stored latest value on the locked
    # row (tracker/hot_sql.py), so concurrent writers of a key never put an earlier value
    # over a later one.
    changed = hot_sql.upsert_latest_metrics(run.pk, [_metric_row(m) for m in candidates.values()])
    # Summaries are of the model's metrics: a batch of the machine's (what MLflow's system metrics
    # monitor sends every few seconds) leaves them as they are, and queues no refresh.
    if any(not is_system_metric(key) for key in changed):
        tasks.mark_parents_stale_and_queue(run=run)


def _metric_row(metric: MetricInput) -> tuple[str, float | None, int, int]:
    """(key, value, timestamp, step) as stored: a NaN as NULL."""
    return metric.key, stored_value(metric.value), metric.timestamp, metric.step


def _history_row(metric: MetricInput) -> hot_sql.MetricRow:
    return (*_metric_row(metric), metric.model_id, metric.dataset_name, metric.dataset_digest)


def _insert_logged_model_metrics(run: Run, metrics: list[MetricInput]) -> None:
    """A point that names a logged model is also that model's metric (what get_logged_model and
    search_logged_models read), as in MLflow. The model must exist and be active."""
    if not metrics:
        return
    known = hot_sql.logged_model_pks(sorted({m.model_id for m in metrics}))
    for model_id in {m.model_id for m in metrics}:
        if model_id not in known or known[model_id][1] != ACTIVE:
            raise ResourceDoesNotExist(f"Logged model with ID '{model_id}' not found.")
    hot_sql.insert_logged_model_metrics(
        [(known[m.model_id][0], run.pk, *_metric_row(m), m.dataset_name, m.dataset_digest) for m in metrics]
    )


def _order(metric: MetricInput) -> tuple:
    return metric_sort_key(metric.step, metric.timestamp, stored_value(metric.value))


def _apply_tags(run: Run, tags: list[KeyValue]) -> None:
    plain: list[KeyValue] = []
    for tag in tags:
        if tag.key == ROOT_RUN_ID_TAG:
            check_client_tag(tag, placement.root_run_id(run))
            continue
        check_client_tag(tag, root_run_id=None)
        if tag.key == PARENT_RUN_ID_TAG:
            placement.set_parent(run, tag.value)
        elif tag.key == RUN_NAME_TAG:
            run.name = check_run_name(tag.value)
            run.save(update_fields=["name"])
        plain.append(tag)
    _upsert_tags(run, plain)


def _upsert_tags(run: Run, tags: list[KeyValue]) -> None:
    last = {t.key: t.value for t in tags}  # a key given twice: the last value wins, as in MLflow
    if last:
        hot_sql.upsert_tags(run.pk, list(last.items()))
