import numpy as np
import pytest

from tests.factories import RunFactory
from tracker import tasks
from tracker.models import LatestMetric, Param, ParamImportance, Run
from tracker.services import MetricInput, run_log_batch
from tracker.summaries import importance, refresh
from tracker.summaries.importance import MIN_CHILDREN, param_importance, refresh_importance


def synthetic(n: int, seed: int = 1):
    generator = np.random.default_rng(seed)
    return generator, [{} for _ in range(n)]


def test_a_numeric_param_driving_the_metric_ranks_first_with_its_sign():
    generator, params = synthetic(120)
    values = []
    for row in params:
        depth, width, dropout = generator.integers(1, 9), generator.integers(16, 512), generator.uniform(0, 0.5)
        row.update(depth=str(depth), width=str(width), dropout=f"{dropout:.3f}")
        values.append(1.0 - 0.1 * depth + generator.normal(0, 0.02))
    ranked = param_importance(params, values)
    assert ranked[0].param == "depth" and ranked[0].kind == "numeric"
    assert ranked[0].correlation < -0.9  # deeper: lower loss
    assert ranked[0].importance > 0.5
    assert sum(item.importance for item in ranked) == pytest.approx(1.0)


def test_a_categorical_param_driving_the_metric_ranks_first():
    generator, params = synthetic(120, seed=2)
    values = []
    effect = {"adam": 0.2, "sgd": 0.8, "rmsprop": 0.5}
    for row in params:
        optimizer = str(generator.choice(list(effect)))
        row.update(optimizer=optimizer, seed=str(generator.integers(0, 10**6)), batch=str(generator.choice([32, 64])))
        values.append(effect[optimizer] + generator.normal(0, 0.03))
    ranked = param_importance(params, values)
    assert ranked[0].param == "optimizer"
    assert ranked[0].kind == "categorical" and ranked[0].correlation is None


def test_a_log_uniform_param_is_detected_and_ranks_first():
    generator, params = synthetic(150, seed=3)
    values = []
    for row in params:
        learning_rate = 10 ** generator.uniform(-6, -1)
        momentum = generator.uniform(0.8, 0.99)
        row.update(lr=repr(learning_rate), momentum=f"{momentum:.4f}", warmup=str(generator.integers(0, 1000)))
        values.append((np.log10(learning_rate) + 3) ** 2 / 10 + generator.normal(0, 0.02))
    ranked = param_importance(params, values)
    by_name = {item.param: item for item in ranked}
    assert ranked[0].param == "lr" and by_name["lr"].log is True
    assert by_name["momentum"].log is False and by_name["warmup"].log is False  # 0 is not positive


def test_params_that_never_vary_are_left_out():
    params = [{"seed": "1", "lr": str(i)} for i in range(20)]
    assert [item.param for item in param_importance(params, [float(i) for i in range(20)])] == ["lr"]


@pytest.mark.django_db
def test_refresh_stores_the_importance_of_metrics_enough_children_have_and_skips_an_unchanged_sweep():
    parent = RunFactory(name="sweep")
    generator = np.random.default_rng(4)
    for number in range(MIN_CHILDREN + 2):
        child = RunFactory(parent=parent, name=f"c{number}")
        lr = 10 ** generator.uniform(-5, -1)
        Param.objects.bulk_create([Param(run=child, key="lr", value=repr(lr)), Param(run=child, key="seed", value="1")])
        LatestMetric.objects.create(run=child, key="loss", value=float(np.log10(lr) ** 2), timestamp=0, step=3)
        if number < 3:  # too few children have acc
            LatestMetric.objects.create(run=child, key="acc", value=0.5, timestamp=0, step=0)
    assert refresh_importance(parent_pk=parent.pk) == 1
    (stored,) = ParamImportance.objects.filter(run=parent)
    assert stored.key == "loss" and stored.children == MIN_CHILDREN + 2
    assert stored.params[0]["param"] == "lr" and stored.params[0]["log"] is True
    assert refresh_importance(parent_pk=parent.pk) == 0  # nothing changed: not refitted
    assert importance.importance_for(parent)["loss"].pk == stored.pk


@pytest.mark.django_db
def test_a_key_logged_on_two_datasets_is_fitted_per_dataset():
    """The test score follows `depth`, the train score `seed`: fitted on the children's latest
    `accuracy` (the train score, logged last) the sweep would credit the wrong param."""
    parent = RunFactory(name="sweep")
    generator = np.random.default_rng(5)
    for number in range(MIN_CHILDREN + 2):
        child = RunFactory(parent=parent, name=f"c{number}")
        depth, seed = generator.integers(1, 20), generator.integers(1, 20)
        Param.objects.bulk_create(
            [Param(run=child, key="depth", value=str(depth)), Param(run=child, key="seed", value=str(seed))]
        )
        run_log_batch(
            run=child,
            metrics=[
                MetricInput("accuracy", float(depth) / 20, 1, 0, dataset_name="test"),
                MetricInput("accuracy", float(seed) / 20, 2, 0, dataset_name="train"),
            ],
        )
    assert refresh_importance(parent_pk=parent.pk) == 2
    fitted = importance.importance_for(parent)
    assert sorted(fitted) == ["accuracy · test", "accuracy · train"]
    assert fitted["accuracy · test"].params[0]["param"] == "depth"
    assert fitted["accuracy · train"].params[0]["param"] == "seed"
    assert fitted["accuracy · test"].children == MIN_CHILDREN + 2


def _stale_sweep() -> Run:
    parent = RunFactory(name="sweep")
    for number in range(MIN_CHILDREN):
        child = RunFactory(parent=parent, name=f"c{number}")
        Param.objects.create(run=child, key="lr", value=str(number))
        LatestMetric.objects.create(run=child, key="loss", value=float(number), timestamp=0, step=0)
    Run.objects.filter(pk=parent.pk).update(summary_stale=True)
    return parent


@pytest.mark.django_db
def test_in_process_a_summary_refresh_never_fits_the_importance(eager_celery):
    """No broker: the refresh runs inside the write (or the import) that queued it, and a fit
    there would make it wait; the parent stays listed for a worker's refit."""
    parent = _stale_sweep()
    assert tasks.in_process()
    tasks.refresh_tree.delay(parent.pk)
    assert not Run.objects.get(pk=parent.pk).summary_stale  # the summary was refreshed ...
    assert not ParamImportance.objects.filter(run=parent).exists()  # ... the fit left alone
    assert importance.stale_parents() == [parent.pk]


@pytest.mark.django_db
def test_a_summary_refresh_queues_the_refit_and_an_unchanged_sweep_is_left_alone(eager_celery, monkeypatch):
    monkeypatch.setattr(tasks, "in_process", lambda: False)  # a worker's task (its queue runs inline here)
    parent = _stale_sweep()
    tasks.refresh_tree(parent.pk)  # the worker's task: summaries, then the importance
    assert ParamImportance.objects.get(run=parent, key="loss").params[0]["param"] == "lr"
    assert importance.stale_parents() == []
    # The summary changes again within the refit interval: the task leaves it to the beat's refit.
    Run.objects.filter(pk=parent.pk).update(summary_stale=True)
    refresh.refresh_tree(root_pk=parent.pk)
    assert importance.stale_parents(min_age_ms=importance.REFIT_INTERVAL_MS) == []
    assert importance.stale_parents() == [parent.pk]
    assert tasks.refit_stale_importance() == 1
