"""Write services: every change to tracking data goes through here.

MLflow's rules and limits are enforced in this one module. Each service is atomic: a refusal
raises a typed error from tracker/errors.py and leaves nothing half-written.
"""

import contextlib
import math
import random
import re
import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from django.db import IntegrityError, transaction
from django.db.models import CharField, F, Max, OuterRef, Subquery, Value
from django.db.models.functions import Cast, Concat, LPad, Substr

from tracker import hierarchy_events, statements
from tracker.errors import InvalidParameterValue, ResourceAlreadyExists, ResourceDoesNotExist
from tracker.models import (
    ACTIVE,
    DELETED,
    PATH_SEGMENT_WIDTH,
    PATH_SEPARATOR,
    Experiment,
    ExperimentTag,
    Metric,
    Run,
    RunStatus,
    RunTag,
    metric_sort_key,
    path_ids,
    path_segment,
)

# MLflow's limits (mlflow/utils/validation.py), and Runtree's own bound on a stored value.
MAX_KEY_LENGTH = 250
MAX_EXPERIMENT_NAME_LENGTH = 500
MAX_RUN_NAME_LENGTH = 500
MAX_BATCH_METRICS = 1000
MAX_BATCH_PARAMS = 100
MAX_BATCH_TAGS = 100
MAX_BATCH_ENTRIES = 1000
# MLflow truncates param values at 6,000 and tag values at 8,000 characters and loses the rest.
# Runtree stores values whole, up to this bound, and refuses anything larger outright.
MAX_VALUE_BYTES = 1024 * 1024
# The materialized path holds one fixed-width segment per level (see models.PATH_SEGMENT_WIDTH).
MAX_DEPTH = Run._meta.get_field("path").max_length // (PATH_SEGMENT_WIDTH + 1) - 1

# The same key rule as MLflow: letters, digits, and _ - . space / :
_KEY_PATTERN = re.compile(r"^[/\w.\- :]+$")
# MLflow's run ids are 32 hex characters; other servers' ids are taken if they fit the column.
_RUN_ID_PATTERN = re.compile(r"[0-9a-zA-Z_\-]{1,32}")

PARENT_RUN_ID_TAG = "mlflow.parentRunId"
ROOT_RUN_ID_TAG = "mlflow.rootRunId"
RUN_NAME_TAG = "mlflow.runName"
USER_TAG = "mlflow.user"
# Tags in this namespace are written by Runtree itself (best-child summaries); clients read them.
RESERVED_TAG_PREFIX = "runtree."
GOAL_TAG_PREFIX = "runtree.goal."


@dataclass(frozen=True)
class MetricInput:
    key: str
    value: float
    timestamp: int
    step: int = 0
    # MLflow 3: the logged model and dataset the value was measured for (None: not said).
    model_id: str | None = None
    dataset_name: str | None = None
    dataset_digest: str | None = None


@dataclass(frozen=True)
class KeyValue:
    key: str
    value: str


def now_ms() -> int:
    return int(time.time() * 1000)


# --- validation: one place for each rule -------------------------------------------------


def _check_key(key, what: str) -> str:
    if not isinstance(key, str) or not key:
        raise InvalidParameterValue(f"{what} key must be a non-empty string, got {key!r}")
    if len(key) > MAX_KEY_LENGTH:
        raise InvalidParameterValue(
            f"{what} key '{key[:40]}...' is {len(key)} characters long; the limit is {MAX_KEY_LENGTH}"
        )
    if not _KEY_PATTERN.match(key) or ".." in key.split("/") or key.startswith("/"):
        raise InvalidParameterValue(
            f"Invalid {what.lower()} key {key!r}: keys may contain only letters, digits, "
            "underscores, dashes, periods, spaces, colons and slashes"
        )
    return key


def _check_text_value(value, what: str, key: str) -> str:
    if value is None:
        value = ""
    if not isinstance(value, str):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise InvalidParameterValue(f"{what} '{key}' value must be a string, got {type(value).__name__}")
        value = str(value)
    size = len(value.encode("utf-8"))
    if size > MAX_VALUE_BYTES:
        raise InvalidParameterValue(
            f"{what} '{key}' value is {size} bytes; Runtree stores values in full up to {MAX_VALUE_BYTES} bytes"
        )
    return value


def _check_metric(metric: MetricInput) -> MetricInput:
    key = _check_key(metric.key, "Metric")
    value = metric.value
    if isinstance(value, str):
        # MLflow's JSON carries NaN and infinities as strings.
        try:
            value = float(value)
        except ValueError:
            raise InvalidParameterValue(f"Metric '{key}' value {value!r} is not a number") from None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidParameterValue(f"Metric '{key}' value must be a number, got {type(value).__name__}")
    timestamp = _check_integer(metric.timestamp, f"Metric '{key}' timestamp")
    step = _check_integer(metric.step if metric.step is not None else 0, f"Metric '{key}' step")
    return MetricInput(
        key=key,
        value=float(value),
        timestamp=timestamp,
        step=step,
        model_id=_check_optional_text(metric.model_id, f"Metric '{key}' model_id", _MAX_MODEL_ID_LENGTH),
        dataset_name=_check_optional_text(metric.dataset_name, f"Metric '{key}' dataset_name", _MAX_DATASET_NAME),
        dataset_digest=_check_optional_text(
            metric.dataset_digest, f"Metric '{key}' dataset_digest", _MAX_DATASET_DIGEST
        ),
    )


_MAX_MODEL_ID_LENGTH = Metric._meta.get_field("model_id").max_length
_MAX_DATASET_NAME = Metric._meta.get_field("dataset_name").max_length
_MAX_DATASET_DIGEST = Metric._meta.get_field("dataset_digest").max_length


def _check_optional_text(value, what: str, limit: int) -> str | None:
    """An optional short string: None or '' is "not given" (protobuf's unset field)."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise InvalidParameterValue(f"{what} must be a string, got {type(value).__name__}")
    if len(value) > limit:
        raise InvalidParameterValue(f"{what} is {len(value)} characters long; the limit is {limit}")
    return value


def _check_integer(value, what: str) -> int:
    if isinstance(value, bool):
        raise InvalidParameterValue(f"{what} must be an integer, got a boolean")
    if isinstance(value, str):
        try:
            value = int(value)
        except ValueError:
            raise InvalidParameterValue(f"{what} must be an integer, got {value!r}") from None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if not isinstance(value, int):
        raise InvalidParameterValue(f"{what} must be an integer, got {value!r}")
    if not -(2**63) <= value < 2**63:
        raise InvalidParameterValue(f"{what} {value} is out of the 64-bit range")
    return value


def _check_user_id(user_id: str) -> str:
    limit = Run._meta.get_field("user_id").max_length
    if len(user_id) > limit:
        raise InvalidParameterValue(f"User id is {len(user_id)} characters long; the limit is {limit}")
    return user_id


def _check_run_name(name) -> str:
    if name is None:
        return ""
    if not isinstance(name, str):
        raise InvalidParameterValue(f"Run name must be a string, got {type(name).__name__}")
    if len(name) > MAX_RUN_NAME_LENGTH:
        raise InvalidParameterValue(f"Run name is {len(name)} characters long; the limit is {MAX_RUN_NAME_LENGTH}")
    return name


def _check_experiment_name(name) -> str:
    if not isinstance(name, str) or not name.strip():
        raise InvalidParameterValue("Experiment name must be a non-empty string")
    if len(name) > MAX_EXPERIMENT_NAME_LENGTH:
        raise InvalidParameterValue(
            f"Experiment name is {len(name)} characters long; the limit is {MAX_EXPERIMENT_NAME_LENGTH}"
        )
    return name


def _check_status(status) -> str:
    if status not in RunStatus.values:
        raise InvalidParameterValue(f"Invalid run status {status!r}; expected one of {', '.join(RunStatus.values)}")
    return status


def _check_run_id(value, what: str) -> str:
    if not isinstance(value, str) or not _RUN_ID_PATTERN.fullmatch(value):
        raise InvalidParameterValue(f"{what} must be a run id, got {value!r}")
    return value


def _check_experiment_tag(key, value) -> KeyValue:
    key = _check_key(key, "Tag")
    value = _check_text_value(value, "Tag", key)
    if key.startswith(GOAL_TAG_PREFIX) and value not in ("min", "max"):
        raise InvalidParameterValue(f"Experiment tag '{key}' must be 'min' or 'max', got {value!r}")
    return KeyValue(key, value)


def _check_active(run: Run) -> None:
    if run.lifecycle_stage != ACTIVE:
        raise InvalidParameterValue(f"The run {run.run_id} must be in the 'active' state; it is {run.lifecycle_stage}")


def _check_experiment_active(experiment: Experiment) -> None:
    if experiment.lifecycle_stage != ACTIVE:
        raise InvalidParameterValue(f"The experiment {experiment.id} must be in the 'active' state; it is deleted")


# --- experiments -----------------------------------------------------------------------------


def experiment_create(*, name: str, artifact_location: str = "", tags: Iterable[KeyValue] = ()) -> Experiment:
    name = _check_experiment_name(name)
    tags = [_check_experiment_tag(t.key, t.value) for t in tags]
    try:
        with transaction.atomic():
            if Experiment.objects.filter(name=name).exists():
                raise ResourceAlreadyExists(f"Experiment '{name}' already exists.")
            stamp = now_ms()
            experiment = Experiment.objects.create(
                name=name, artifact_location=artifact_location or "", creation_time=stamp, last_update_time=stamp
            )
            if not experiment.artifact_location:
                experiment.artifact_location = f"mlflow-artifacts:/{experiment.id}"
                experiment.save(update_fields=["artifact_location"])
            ExperimentTag.objects.bulk_create(
                [ExperimentTag(experiment=experiment, key=t.key, value=t.value) for t in tags]
            )
    except IntegrityError:
        # Two creators of one name (workers of a sweep calling set_experiment at once) both
        # passed the check above; the unique index let one through. The other is told what the
        # mlflow client expects, RESOURCE_ALREADY_EXISTS, and fetches the experiment.
        if Experiment.objects.filter(name=name).exists():
            raise ResourceAlreadyExists(f"Experiment '{name}' already exists.") from None
        raise
    return experiment


def experiment_rename(*, experiment: Experiment, new_name: str) -> Experiment:
    new_name = _check_experiment_name(new_name)
    try:
        with transaction.atomic():
            _check_experiment_active(experiment)
            if Experiment.objects.filter(name=new_name).exclude(pk=experiment.pk).exists():
                raise ResourceAlreadyExists(f"Experiment '{new_name}' already exists.")
            experiment.name = new_name
            experiment.last_update_time = now_ms()
            experiment.save(update_fields=["name", "last_update_time"])
    except IntegrityError:
        # Another rename or create took the name after the check (as in experiment_create).
        raise ResourceAlreadyExists(f"Experiment '{new_name}' already exists.") from None
    return experiment


def experiment_set_lifecycle(*, experiment: Experiment, stage: str) -> Experiment:
    """Delete or restore an experiment (soft, as MLflow): its runs follow."""
    if stage == DELETED and experiment.pk == 0:
        raise InvalidParameterValue("The Default experiment (id 0) cannot be deleted.")
    with transaction.atomic():
        experiment.lifecycle_stage = stage
        experiment.last_update_time = now_ms()
        experiment.save(update_fields=["lifecycle_stage", "last_update_time"])
        deleted_time = now_ms() if stage == DELETED else None
        Run.objects.filter(experiment=experiment).update(lifecycle_stage=stage, deleted_time=deleted_time)
    return experiment


def experiment_set_tag(*, experiment: Experiment, key: str, value: str) -> None:
    tag = _check_experiment_tag(key, value)
    with transaction.atomic():
        _check_experiment_active(experiment)
        ExperimentTag.objects.update_or_create(experiment=experiment, key=tag.key, defaults={"value": tag.value})
        Experiment.objects.filter(pk=experiment.pk).update(last_update_time=now_ms())
        if tag.key.startswith(GOAL_TAG_PREFIX):
            hierarchy_events.goal_changed(experiment=experiment, metric_key=tag.key[len(GOAL_TAG_PREFIX) :])


# --- runs ------------------------------------------------------------------------------------

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
    name = _check_run_name(name)
    tags = [KeyValue(_check_key(t.key, "Tag"), _check_text_value(t.value, "Tag", t.key)) for t in tags]
    tag_values = {t.key: t.value for t in tags}
    name = _check_run_name(name or tag_values.get(RUN_NAME_TAG)) or generate_run_name()
    if RUN_NAME_TAG in tag_values and tag_values[RUN_NAME_TAG] != name:
        raise InvalidParameterValue(
            f"Both 'run_name' ({name!r}) and the '{RUN_NAME_TAG}' tag ({tag_values[RUN_NAME_TAG]!r}) "
            "were given with different values"
        )
    start_time = now_ms() if start_time is None else _check_integer(start_time, "start_time")
    parent_run_id = tag_values.get(PARENT_RUN_ID_TAG, "")
    # No savepoint: a failure here fails the caller's transaction too (the create-run view's).
    with transaction.atomic(savepoint=False):
        _check_experiment_active(experiment)
        run = Run(
            experiment=experiment,
            name=name,
            user_id=_check_user_id(user_id or tag_values.get(USER_TAG, "")),
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
        parent = _find_parent(run, parent_run_id)
        run.parent, run.parent_run_id = parent, parent_run_id
        run.depth = parent.depth + 1 if parent else 0
        if run.depth > MAX_DEPTH:
            raise InvalidParameterValue(f"Run trees may be at most {MAX_DEPTH + 1} levels deep")
        statements.insert_run(run)
        run.artifact_uri = f"{experiment.artifact_location}/{run.run_id}/artifacts"
        run.path = (parent.path if parent else "") + path_segment(run.pk)
        statements.update_run(run, ["artifact_uri", "path"])
        root_run_id = _root_run_id(run, parent)
        for tag in tags:
            _check_client_tag(tag, root_run_id)
        given = [t for t in tags if t.key not in (RUN_NAME_TAG, ROOT_RUN_ID_TAG)]
        _upsert_tags(run, [KeyValue(RUN_NAME_TAG, name), KeyValue(ROOT_RUN_ID_TAG, root_run_id), *given])
        if chosen_run_id:  # nobody can have named a fresh random id as their parent yet
            _adopt_waiting_children(run)
    return run


def run_update(*, run: Run, status: str | None = None, end_time: int | None = None, name: str | None = None) -> Run:
    fields = []
    if status is not None:
        run.status = _check_status(status)
        fields.append("status")
    if end_time is not None:
        run.end_time = _check_integer(end_time, "end_time")
        fields.append("end_time")
    _check_active(run)
    if name:
        run.name = _check_run_name(name)
        fields.append("name")
    # Status and end time alone are one UPDATE, atomic by itself: no BEGIN and COMMIT around it
    # (the mlflow client's end_run; see _one_transaction). A new name also sets its tag.
    with _one_transaction(needed=bool(name)):
        if name:
            _upsert_tags(run, [KeyValue(RUN_NAME_TAG, run.name)])
        if fields:
            statements.update_run(run, fields)
    return run


def run_set_lifecycle(*, run: Run, stage: str) -> Run:
    """Delete or restore one run (soft, as MLflow). Its children keep their own state."""
    with transaction.atomic():
        if stage == ACTIVE:
            _check_experiment_active(run.experiment)
        run.lifecycle_stage = stage
        run.deleted_time = now_ms() if stage == DELETED else None
        run.save(update_fields=["lifecycle_stage", "deleted_time"])
        hierarchy_events.run_lifecycle_changed(run=run)
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
    metrics = [_check_metric(m) for m in metrics]
    params = _dedupe_params(
        [KeyValue(_check_key(p.key, "Param"), _check_text_value(p.value, "Param", p.key)) for p in params]
    )
    tags = [KeyValue(_check_key(t.key, "Tag"), _check_text_value(t.value, "Tag", t.key)) for t in tags]
    _check_active(run)
    # A param of a run that is some parent's best also refreshes that summary (a second write).
    params_matter = bool(params) and hierarchy_events.params_change_summaries(run=run)
    with _one_transaction(needed=_writes_more_than_one_statement(metrics, params, tags, params_matter)):
        if params:
            _insert_params(run, params, summaries_too=params_matter)
        if metrics:
            _insert_metrics(run, metrics)
        if tags:
            _apply_tags(run, tags)


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
        _check_active(run)
        if key == ROOT_RUN_ID_TAG or key == RUN_NAME_TAG or key.startswith(RESERVED_TAG_PREFIX):
            raise InvalidParameterValue(f"Tag '{key}' is kept by the server and cannot be deleted")
        if key == PARENT_RUN_ID_TAG:
            _set_parent(run, "")
        deleted, _ = RunTag.objects.filter(run=run, key=key).delete()
        if not deleted:
            raise ResourceDoesNotExist(f"No tag with name: {key} in run with id {run.run_id}")


# --- bulk writes (tracker/importer.py) --------------------------------------------------------


def experiment_link_parents(*, experiment: Experiment) -> list[int]:
    """Give every run of `experiment` the parent, depth, path and mlflow.rootRunId that its
    parent_run_id asks for, in a few bulk queries; return the pks of the runs that were placed
    or moved.

    Bulk writers insert runs with an empty path and call this once every run of the batch
    exists, so runs may arrive in any order. The rules are run_create's: a parent that is not in
    the experiment leaves the run a root marked "parent missing" (and it attaches when the
    parent arrives). A link that would close a cycle or nest deeper than MAX_DEPTH, which a
    single write refuses, is left unfollowed the same way: the runs already exist. Runs already
    in place are not touched, so calling this again changes nothing.
    """
    fields = ["pk", "run_id", "parent_run_id", "parent_id", "depth", "path"]
    rows = list(Run.objects.filter(experiment=experiment).values_list(*fields))
    pk_by_run_id = {run_id: pk for pk, run_id, *_ in rows}
    run_id_by_pk = {pk: run_id for run_id, pk in pk_by_run_id.items()}
    parent_of: dict[int, int | None] = {}
    children: dict[int, list[int]] = defaultdict(list)
    for pk, _, parent_run_id, *_ in rows:
        parent_pk = pk_by_run_id.get(parent_run_id) if parent_run_id else None
        parent_of[pk] = parent_pk if parent_pk != pk else None
        if parent_of[pk] is not None:
            children[parent_of[pk]].append(pk)

    places: dict[int, tuple[int | None, int, str]] = {}  # pk -> (parent pk, depth, path)

    def place_subtree(top: int) -> None:
        stack = [top]
        while stack:
            pk = stack.pop()
            parent_pk = parent_of[pk] if pk != top else None
            if parent_pk is not None and places[parent_pk][1] < MAX_DEPTH:
                _, parent_depth, parent_path = places[parent_pk]
                places[pk] = (parent_pk, parent_depth + 1, parent_path + path_segment(pk))
            else:
                places[pk] = (None, 0, path_segment(pk))
            stack.extend(child for child in children[pk] if child not in places)

    for pk, parent_pk in parent_of.items():
        if parent_pk is None:
            place_subtree(pk)
    # What is left hangs below a cycle (a → b → a): cut each cycle at its oldest run.
    for pk in sorted(parent_of):
        if pk in places:
            continue
        chain, seen = [pk], {pk}
        while parent_of[chain[-1]] not in seen:
            chain.append(parent_of[chain[-1]])
            seen.add(chain[-1])
        cycle = chain[chain.index(parent_of[chain[-1]]) :]
        place_subtree(min(cycle))

    moved = [pk for pk, _, _, parent_id, depth, path in rows if (parent_id, depth, path) != places[pk]]
    # One UPDATE per level (in batches), shallowest first, each computing the path in SQL from
    # the parent's, written by the level before: a CASE per row costs far more at 100,000 runs.
    moved_by_depth: dict[int, list[int]] = defaultdict(list)
    for pk in moved:
        moved_by_depth[places[pk][1]].append(pk)
    own_segment = Concat(LPad(Cast("pk", CharField()), PATH_SEGMENT_WIDTH, Value("0")), Value(PATH_SEPARATOR))
    # Below the roots a run's parent is the run its parent_run_id names (run ids are unique);
    # the links not followed (missing, cyclic, too deep) are all among the roots.
    parent = Run.objects.filter(run_id=OuterRef("parent_run_id"))
    for depth, pks in sorted(moved_by_depth.items()):
        for start in range(0, len(pks), 5000):
            level = Run.objects.filter(pk__in=pks[start : start + 5000])
            if depth == 0:
                level.update(parent=None, depth=0, path=own_segment)
            else:
                parent_path = Subquery(parent.values("path"))
                level.update(parent=Subquery(parent.values("pk")), depth=depth, path=Concat(parent_path, own_segment))
    RunTag.objects.bulk_create(
        [RunTag(run_id=pk, key=ROOT_RUN_ID_TAG, value=run_id_by_pk[path_ids(places[pk][2])[0]]) for pk in moved],
        update_conflicts=True,
        unique_fields=["run", "key"],
        update_fields=["value"],
        batch_size=1000,
    )
    return moved


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
    inserted = statements.insert_params(run.pk, [(p.key, p.value) for p in params])
    already_there = [p for p in params if p.key not in inserted]
    stored = statements.stored_params(run.pk, [p.key for p in already_there]) if already_there else {}
    for param in already_there:
        if stored[param.key] != param.value:
            raise InvalidParameterValue(
                f"Changing param values is not allowed. Param with key='{param.key}' was already logged "
                f"with value='{_preview(stored[param.key])}' for run ID='{run.run_id}'. "
                f"Attempted logging new value '{_preview(param.value)}'."
            )
    if summaries_too:
        hierarchy_events.params_changed(run=run)


def _preview(value: str, limit: int = 100) -> str:
    return value if len(value) <= limit else value[:limit] + "..."


def _stored_value(value: float) -> float | None:
    return None if math.isnan(value) else value


def _insert_metrics(run: Run, metrics: list[MetricInput]) -> None:
    # A point already stored is skipped (tracker/statements.py): a retry stores nothing twice.
    statements.insert_metrics(run.pk, [_history_row(m) for m in metrics])
    _insert_logged_model_metrics(run, [m for m in metrics if m.model_id])
    candidates: dict[str, MetricInput] = {}
    for metric in metrics:
        best = candidates.get(metric.key)
        if best is None or _order(metric) > _order(best):
            candidates[metric.key] = metric
    # One upsert per batch compares each candidate with the stored latest value on the locked
    # row (tracker/statements.py), so concurrent writers of a key never put an earlier value
    # over a later one.
    changed = statements.upsert_latest_metrics(run.pk, [_metric_row(m) for m in candidates.values()])
    if changed:
        hierarchy_events.metrics_changed(run=run, keys=changed)


def _metric_row(metric: MetricInput) -> tuple[str, float | None, int, int]:
    """(key, value, timestamp, step) as stored: a NaN as NULL."""
    return metric.key, _stored_value(metric.value), metric.timestamp, metric.step


def _history_row(metric: MetricInput) -> statements.MetricRow:
    return (*_metric_row(metric), metric.model_id, metric.dataset_name, metric.dataset_digest)


def _insert_logged_model_metrics(run: Run, metrics: list[MetricInput]) -> None:
    """A point that names a logged model is also that model's metric (what get_logged_model and
    search_logged_models read), as in MLflow. The model must exist and be active."""
    if not metrics:
        return
    known = statements.logged_model_pks(sorted({m.model_id for m in metrics}))
    for model_id in {m.model_id for m in metrics}:
        if model_id not in known or known[model_id][1] != ACTIVE:
            raise ResourceDoesNotExist(f"Logged model with ID '{model_id}' not found.")
    statements.insert_logged_model_metrics(
        [(known[m.model_id][0], run.pk, *_metric_row(m), m.dataset_name, m.dataset_digest) for m in metrics]
    )


def _order(metric: MetricInput) -> tuple:
    return metric_sort_key(metric.step, metric.timestamp, _stored_value(metric.value))


def _apply_tags(run: Run, tags: list[KeyValue]) -> None:
    plain: list[KeyValue] = []
    for tag in tags:
        if tag.key == ROOT_RUN_ID_TAG:
            _check_client_tag(tag, _root_run_id(run))
            continue
        _check_client_tag(tag, root_run_id=None)
        if tag.key == PARENT_RUN_ID_TAG:
            _set_parent(run, tag.value)
        elif tag.key == RUN_NAME_TAG:
            run.name = _check_run_name(tag.value)
            run.save(update_fields=["name"])
        plain.append(tag)
    _upsert_tags(run, plain)


def _check_client_tag(tag: KeyValue, root_run_id: str | None) -> None:
    """Refuse what a client may not write: the reserved namespace, and a root other than the
    server's (`root_run_id`, the run's actual root; only looked at for that tag)."""
    if tag.key.startswith(RESERVED_TAG_PREFIX):
        raise InvalidParameterValue(
            f"Tag '{tag.key}' is in the reserved '{RESERVED_TAG_PREFIX}' namespace, which Runtree writes itself"
        )
    if tag.key == ROOT_RUN_ID_TAG and tag.value != root_run_id:
        raise InvalidParameterValue(
            f"Tag '{ROOT_RUN_ID_TAG}' is kept by the server (it is {root_run_id!r} for this run); "
            "set 'mlflow.parentRunId' to move the run"
        )


def _upsert_tags(run: Run, tags: list[KeyValue]) -> None:
    last = {t.key: t.value for t in tags}  # a key given twice: the last value wins, as in MLflow
    if last:
        statements.upsert_tags(run.pk, list(last.items()))


def _root_run_id(run: Run, parent: Run | None = None) -> str:
    root_pk = run.root_pk
    for known in (run, parent):
        if known is not None and known.pk == root_pk:
            return known.run_id
    return statements.run_id_by_pk(root_pk)


def _set_parent(run: Run, parent_run_id: str) -> None:
    """Point `run` at `parent_run_id` ('' = root) and move its subtree. Refuses a cycle."""
    parent = _find_parent(run, parent_run_id)
    old_parent_pk = run.parent_id
    run.parent_run_id = parent_run_id
    run.parent = parent
    run.save(update_fields=["parent_run_id", "parent"])
    _move_subtree(run, parent)
    if old_parent_pk != run.parent_id:
        hierarchy_events.run_moved(run=run, old_parent_pk=old_parent_pk)


def _find_parent(run: Run, parent_run_id: str) -> Run | None:
    """The run `parent_run_id` names, if it is known yet (None: a root, or "parent missing").
    Refuses a malformed id, the run itself, a descendant (a cycle) and another experiment."""
    if parent_run_id:
        _check_run_id(parent_run_id, f"'{PARENT_RUN_ID_TAG}'")
    if parent_run_id == run.run_id:
        raise InvalidParameterValue(f"Run {run.run_id} cannot be its own parent")
    parent = statements.run_by_run_id(parent_run_id) if parent_run_id else None
    if parent is not None:
        if run.path and parent.path.startswith(run.path):
            raise InvalidParameterValue(
                f"Setting the parent of run {run.run_id} to {parent_run_id} would make a cycle: "
                f"{parent_run_id} is a descendant of {run.run_id}"
            )
        if parent.experiment_id != run.experiment_id:
            raise InvalidParameterValue(
                f"Parent run {parent_run_id} is in experiment {parent.experiment_id}, "
                f"but run {run.run_id} is in experiment {run.experiment_id}; a run tree lives in one experiment"
            )
    return parent


def _move_subtree(run: Run, parent: Run | None) -> None:
    """Rewrite the path and depth of `run` and every descendant in one UPDATE, then the
    mlflow.rootRunId tag of the whole subtree in another."""
    old_path = run.path
    new_path = (parent.path if parent else "") + path_segment(run.pk)
    if new_path == old_path:
        return
    depth_change = (parent.depth + 1 if parent else 0) - run.depth
    if depth_change > 0:
        deepest = Run.objects.subtree_of(run).aggregate(d=Max("depth"))["d"]
        if deepest + depth_change > MAX_DEPTH:
            raise InvalidParameterValue(f"Run trees may be at most {MAX_DEPTH + 1} levels deep")
    Run.objects.subtree_of(run).update(
        path=Concat(Value(new_path), Substr("path", len(old_path) + 1)),
        depth=F("depth") + depth_change,
    )
    run.path = new_path
    run.depth += depth_change
    root_run_id = parent and _root_run_id(parent) or run.run_id
    RunTag.objects.filter(key=ROOT_RUN_ID_TAG, run__in=Run.objects.subtree_of(run).values("pk")).update(
        value=root_run_id
    )


def _adopt_waiting_children(run: Run) -> None:
    """Attach runs that named this run as parent before it existed (imports arrive in any order)."""
    for child in statements.waiting_children(run):
        child.parent = run
        child.save(update_fields=["parent"])
        _move_subtree(child, run)
        hierarchy_events.run_moved(run=child, old_parent_pk=None)
