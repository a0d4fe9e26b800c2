"""Series: a metric key's points, or, for a key logged on more than one dataset, one dataset's
points of it, named "accuracy · test". The run page, the compare page and the summaries all show
such a key by dataset, so they name and read its series here."""

from collections import defaultdict
from dataclasses import dataclass

from django.db.models import F, QuerySet, Window
from django.db.models.functions import RowNumber

from tracker.models import Metric
from tracker.values import read_value

# A key logged on more than one dataset (MLflow 3's log_metric(..., dataset=): accuracy on the
# train and the validation set each epoch) is one series per dataset, named "accuracy · val": drawn
# as one, its points zigzagged between the two. A metric key cannot hold "·", so a name reads back.
DATASET_SEPARATOR = " · "
NO_DATASET = "(no dataset)"


def series_name(key: str, dataset_name: str | None) -> str:
    """The name of one dataset's series of a key logged on several."""
    return f"{key}{DATASET_SEPARATOR}{dataset_name if dataset_name is not None else NO_DATASET}"


def series_key(name: str) -> str:
    """The metric key of series `name` (a key is its own series)."""
    return name.partition(DATASET_SEPARATOR)[0]


def in_series(points: QuerySet, name: str) -> QuerySet:
    """`points` (Metric) of series `name`: a key's, or one dataset's of a key split by dataset."""
    key, separator, dataset = name.partition(DATASET_SEPARATOR)
    points = points.filter(key=key)
    if separator:
        points = points.filter(dataset_name=None if dataset == NO_DATASET else dataset)
    return points


@dataclass(frozen=True)
class DatasetValue:
    dataset_name: str | None
    value: float  # NaN for a NaN (stored NULL)
    step: int


def split_latest_values(
    runs: QuerySet, *, labelled_keys: list[str] | None = None
) -> dict[tuple[int, str], list[tuple[str, float, int]]]:
    """(run pk, key) → [(series name, latest value, its step)], for the keys that `runs` between
    them logged on more than one dataset (a model's accuracy on train and on test, or with and without a dataset):
    what the compare page and a parent's summary show in place of their latest values, which
    mix the datasets.

    One query finds the keys logged with a dataset, through the partial index of such points
    (migration 0015), so runs that logged none cost an index probe each; a second, only when
    there are some, reads those keys' latest value per run and dataset. A caller that found
    the keys logged with a dataset itself passes them as `labelled_keys`."""
    selected = runs.order_by().values("pk")
    keys = labelled_keys
    if keys is None:
        labelled = Metric.objects.filter(run__in=selected, dataset_name__isnull=False)
        keys = list(labelled.order_by().values_list("key", flat=True).distinct())
    if not keys:
        return {}
    rows = list(latest_on_each_dataset(Metric.objects.filter(run__in=selected, key__in=keys)))
    datasets = defaultdict(set)
    for _, key, dataset_value in rows:
        datasets[key].add(dataset_value.dataset_name)
    found = defaultdict(list)
    for run_pk, key, latest in rows:
        if len(datasets[key]) > 1:
            found[run_pk, key].append((series_name(key, latest.dataset_name), latest.value, latest.step))
    return dict(found)


def latest_on_each_dataset(points: QuerySet):
    """(run pk, key, DatasetValue) of each run's latest point of each key on each dataset in
    `points`, by run, key and dataset."""
    newest_first = [F("step").desc(), F("timestamp").desc()]
    latest = (
        points.annotate(
            rank=Window(RowNumber(), partition_by=[F("run_id"), F("key"), F("dataset_name")], order_by=newest_first)
        )
        .filter(rank=1)
        .order_by("run_id", "key", "dataset_name")
        .values_list("run_id", "key", "dataset_name", "value", "step")
    )
    for run_pk, key, dataset_name, value, step in latest:
        yield run_pk, key, DatasetValue(dataset_name, read_value(value), step)
