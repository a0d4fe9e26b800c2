import pytest

from tests.factories import ExperimentFactory, RunFactory, bulk_children, insert_rows
from tracker.models import Run, RunTag
from tracker.services import KeyValue, MetricInput, run_log_batch
from tracker.summaries import refresh as summary_refresh


def tag_children(parent: Run, key: str, value_of) -> None:
    """Tag every child of `parent` in one bulk insert: value_of(i) for the i-th child (by pk)."""
    children = Run.objects.children_of(parent).order_by("pk").values_list("pk", flat=True)
    insert_rows(RunTag, ["run", "key", "value"], [(pk, key, value_of(i)) for i, pk in enumerate(children)])


@pytest.fixture
def sized_experiment(db, request):
    """An experiment of `request.param` runs: three roots, the first holding all but a few of
    the runs as children (each with param1, metric1 and a `group` tag), one grandchild. The
    big parent's summary is computed, so the pages' query counts include the best-child column."""
    size = request.param
    experiment = ExperimentFactory(name=f"sized-{size}")
    big = RunFactory(experiment=experiment, name="big-parent")
    RunFactory(experiment=experiment, name="small-root")
    RunFactory(experiment=experiment, name="latest-root")
    bulk_children(big, size - 4, metric_key="metric1")
    tag_children(big, "group", lambda i: "even" if i % 2 == 0 else "odd")
    first_child = Run.objects.children_of(big).order_by("pk").first()
    RunFactory(experiment=experiment, parent=first_child, name="grandchild")
    assert Run.objects.in_experiment(experiment).count() == size
    summary_refresh.recompute_all(experiment_id=experiment.id)
    return experiment


def metric1(parent: int, child: int) -> float:
    """The sweep's metric1: parents' children never overlap (parent 2's are all above 0.7), and
    within a parent it does not follow start order (best first: children 1, 3, 0, 2)."""
    return round(parent / 3 + [0.2, 0.3, 0.1, 0.25][child], 4)


@pytest.fixture
def sweep(db):
    """The tutorial's shape: 3 parents × 4 children, params, metrics (metric1 with 3 steps) and a
    tag on the parents."""
    experiment = ExperimentFactory(name="sweep")
    parents = []
    for p in range(3):
        parent = RunFactory(experiment=experiment, name=f"parent-{p}")
        run_log_batch(run=parent, tags=[KeyValue("test_identifier", f"round-{p}")])
        for c in range(4):
            child = RunFactory(experiment=experiment, parent=parent, name=f"child-{p}-{c}")
            run_log_batch(
                run=child,
                params=[KeyValue("param1", "abc"[c % 3]), KeyValue("param2", str(c))],
                metrics=[MetricInput("metric1", metric1(p, c), 1_700_000_000_000 + s, s) for s in range(3)],
                tags=[KeyValue("kind", "even" if c % 2 == 0 else "odd")],
            )
        parents.append(parent)
    return experiment
